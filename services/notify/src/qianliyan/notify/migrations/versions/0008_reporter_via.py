"""Who sent a report on its reporter's behalf (a chat bridge's token), beside the reporter.

Filled from new events on; `qianliyan rebuild` fills it for the reports already projected
(their events carry `actor.via`), and `qianliyan check` lists them until then.

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE reports ADD COLUMN reporter_via text")


def downgrade() -> None:
    op.execute("ALTER TABLE reports DROP COLUMN reporter_via")
