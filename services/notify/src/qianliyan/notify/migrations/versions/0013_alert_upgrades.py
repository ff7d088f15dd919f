"""An alert that grows more severe tells its people again, at the new severity.

A delivery was one per (incident, round, step, recipient, channel), so a dispatch desk
told "major" at step 0 was never told "critical" at step 0 of the critical route: that
delivery was done. Deliveries and the alerter's claims now say the level they tell of
(`severity`), and a step told at a level is told again at a more severe one; an alert
records the level it was upgraded to (`AlertUpgraded`).

The keys stay as they were and the new columns are nullable: null is read as the
alert's raised severity, which every delivery so far told. An instance of the last
release keeps running on this schema, but it knows nothing of upgrades: it skips
`AlertUpgraded`, writes null for what it tells, and can record a retry over a more
severe level's row. Stop notify's old instances before starting this release (or run
`qianliyan check` after the rollout, and `rebuild` if it differs). A step the last
release told after its incident grew worse is told once more, at the upgraded level.

Revision ID: 0013
Revises: 0012
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE alerts ADD COLUMN upgraded_to text, ADD COLUMN upgraded_at timestamptz")
    op.execute("ALTER TABLE alert_deliveries ADD COLUMN severity text")
    op.execute("ALTER TABLE delivery_claims ADD COLUMN severity text")


def downgrade() -> None:
    op.execute("ALTER TABLE delivery_claims DROP COLUMN severity")
    op.execute("ALTER TABLE alert_deliveries DROP COLUMN severity")
    op.execute("ALTER TABLE alerts DROP COLUMN upgraded_to, DROP COLUMN upgraded_at")
