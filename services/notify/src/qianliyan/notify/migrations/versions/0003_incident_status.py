"""Incident status, assignment and a timeline of everything that happened to it.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE incidents
            ADD COLUMN status          text NOT NULL DEFAULT 'open'
                                       CHECK (status IN ('open', 'acknowledged', 'resolved')),
            ADD COLUMN assignee        text,
            ADD COLUMN acknowledged_by text,
            ADD COLUMN acknowledged_at timestamptz,
            ADD COLUMN resolved_by     text,
            ADD COLUMN resolved_at     timestamptz,
            ADD COLUMN resolution      text
        """
    )
    # The audit trail of an incident, in the order things happened: who, when, what.
    op.execute(
        """
        CREATE TABLE incident_timeline (
            event_id    uuid PRIMARY KEY,
            incident_id uuid NOT NULL,
            occurred_at timestamptz NOT NULL,
            actor       text NOT NULL,
            event_type  text NOT NULL,
            detail      jsonb NOT NULL
        )
        """
    )
    op.execute(
        "CREATE INDEX incident_timeline_by_incident ON incident_timeline (incident_id, occurred_at)"
    )


def downgrade() -> None:
    op.execute("DROP TABLE incident_timeline")
    op.execute(
        """
        ALTER TABLE incidents
            DROP COLUMN status, DROP COLUMN assignee, DROP COLUMN acknowledged_by,
            DROP COLUMN acknowledged_at, DROP COLUMN resolved_by, DROP COLUMN resolved_at,
            DROP COLUMN resolution
        """
    )
