"""What the alert feed lists and sorts by: place, unit, when, how many, how severe.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE incidents
            ADD COLUMN opened_at      timestamptz,
            ADD COLUMN last_report_at timestamptz,
            ADD COLUMN report_count   integer NOT NULL DEFAULT 0,
            ADD COLUMN place          text,
            ADD COLUMN unit           text,
            ADD COLUMN severity_rank  smallint GENERATED ALWAYS AS (
                array_position(
                    ARRAY['info', 'minor', 'major', 'critical'],
                    COALESCE(override_severity, rule_severity)
                )
            ) STORED
        """
    )
    # The feed's order (most severe, then newest) served by an index, so paging stays cheap
    # past tens of thousands of alerts.
    op.execute(
        "CREATE INDEX incidents_feed ON incidents ((COALESCE(severity_rank, 0)) DESC, "
        "(COALESCE(opened_at, '-infinity'::timestamptz)) DESC, incident_id DESC)"
    )


def downgrade() -> None:
    op.execute("DROP INDEX incidents_feed")
    op.execute(
        """
        ALTER TABLE incidents
            DROP COLUMN severity_rank, DROP COLUMN opened_at, DROP COLUMN last_report_at,
            DROP COLUMN report_count, DROP COLUMN place, DROP COLUMN unit
        """
    )
