"""A lease on each claim to act on an incident version.

A claim was held until its action was projected or the request gave it back. A request
that died in between (notify killed, or PostgreSQL away when it tried to give the claim
back) left a claim nobody held, and every later action on that version was a 409 until
a new report moved the version on: an incident nobody could acknowledge, escalating.
Now a claim is held until `claimed_until`, and a later request takes over one whose
time has run out, as the alerter's delivery claims do. Claims left before this
migration run out a minute after they were made.

Revision ID: 0010
Revises: 0009
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE incident_action_claims ADD COLUMN claimed_until timestamptz")
    op.execute("UPDATE incident_action_claims SET claimed_until = claimed_at + interval '1 minute'")
    op.execute("ALTER TABLE incident_action_claims ALTER COLUMN claimed_until SET NOT NULL")


def downgrade() -> None:
    op.execute("ALTER TABLE incident_action_claims DROP COLUMN claimed_until")
