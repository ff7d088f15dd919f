"""An alert remembers where it was raised and the route its upgrade took.

The alerter chose an alert's route again every moment from the incident's earliest
report, so a late report of another unit captured earlier moved an alert's next steps
to other people midway. It now keeps the route the alert was raised on (or upgraded to)
while that route still takes the unit and place the alert was raised for: those, and
the upgrade's route, are kept here from AlertRaised and AlertUpgraded. Older rows have
none of them and are routed as before until `qianliyan rebuild` fills them from the log
(`check` lists them meanwhile).

Revision ID: 0016
Revises: 0015
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE alerts ADD COLUMN unit text, ADD COLUMN place text, "
        "ADD COLUMN upgraded_route text"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE alerts DROP COLUMN unit, DROP COLUMN place, DROP COLUMN upgraded_route")
