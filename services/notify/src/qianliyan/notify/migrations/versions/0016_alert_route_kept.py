"""An alert remembers the unit and place it was raised for.

The alerter routed an alert, every moment, by the incident's earliest report's unit and
place, so a late report of another unit captured earlier moved an alert's next steps to
other people midway. It now routes by the unit and place the alert was raised for (from
AlertRaised), whatever joins later. Rows raised before are filled from their incident's
unit and place now, the nearest known; `qianliyan rebuild` sets them from the log, and
`check` lists those that differ meanwhile. An alert the last release's instances raise
during a rolling update has neither, and is routed by its incident's, as before.

Revision ID: 0016
Revises: 0015
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE alerts ADD COLUMN unit text, ADD COLUMN place text")
    op.execute(
        "UPDATE alerts a SET unit = i.unit, place = i.place "
        "FROM incidents i WHERE i.incident_id = a.incident_id"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE alerts DROP COLUMN unit, DROP COLUMN place")
