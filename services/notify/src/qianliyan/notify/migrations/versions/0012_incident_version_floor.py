"""An incident's version is past every version a dispatcher acted on.

The version counted the changes projected onto the incident. How many depends on the
order the topics are read in: a submission projected after its triage refreshes the
incident once more than one projected before it. A rebuild, which reads the topics side
by side, could so leave an incident at or below a version a dispatcher had acted on,
and the next action taken on it looked like a copy of that one (the first action on
each version is applied): answered 202, and never applied.

`version_floor` is one past the newest version acted on; the incident's version is now
the greater of it and the count (`version` keeps counting, as before, so an instance of
the last release still writes it while this one rolls out). Both grow by commutative
steps (a sum, a maximum), so a batch and one event at a time still end at the same
version. Live, the count is already past every version acted on: no version changes
here. Downgrading keeps each version as it reads now.

Revision ID: 0012
Revises: 0011
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE incidents ADD COLUMN version_floor integer NOT NULL DEFAULT 0")
    op.execute(
        """
        UPDATE incidents i SET version_floor = a.newest + 1
          FROM (SELECT incident_id, max(acted_on_version) AS newest
                  FROM incident_actions GROUP BY incident_id) a
         WHERE a.incident_id = i.incident_id
        """
    )


def downgrade() -> None:
    # The count takes the version as it reads, or an action already taken on a version
    # past the count would make the next one taken there a copy.
    op.execute("UPDATE incidents SET version = GREATEST(version, version_floor)")
    op.execute("ALTER TABLE incidents DROP COLUMN version_floor")
