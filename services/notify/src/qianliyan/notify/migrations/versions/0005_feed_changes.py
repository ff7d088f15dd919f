"""An ordered log of changes to the feed, for the live stream to resume from.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE feed_changes (
            change_id   bigserial PRIMARY KEY,
            incident_id uuid NOT NULL,
            changed_at  timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE feed_changes")
