"""A headline and a photo count on each alert, so a row of the feed says what happened.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE incidents
            ADD COLUMN headline    text,
            ADD COLUMN photo_count integer NOT NULL DEFAULT 0
        """
    )


def downgrade() -> None:
    op.execute("ALTER TABLE incidents DROP COLUMN headline, DROP COLUMN photo_count")
