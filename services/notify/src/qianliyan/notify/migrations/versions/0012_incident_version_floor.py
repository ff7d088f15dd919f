"""An incident's version ends past every version a dispatcher acted on.

The version counted the changes projected onto the incident. How many depends on the
order the topics are read in: a submission projected after its triage refreshes the
incident once more than one projected before it. A rebuild, which reads the topics side
by side, could so leave an incident at or below a version a dispatcher had acted on,
and the next action taken on it looked like a copy of that one (the first action on
each version is applied): answered 202, and never applied.

The count is now `change_count`, and `version_floor` is one past the newest version
acted on. `version` is the greater of the two. Both grow by commutative steps (a sum, a
maximum), so a batch and one event at a time still end at the same version. Live, the
count is already past every version acted on, so no version changes here.

Revision ID: 0012
Revises: 0011
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE incidents RENAME COLUMN version TO change_count")
    op.execute("ALTER TABLE incidents ADD COLUMN version_floor integer NOT NULL DEFAULT 0")
    op.execute(
        """
        UPDATE incidents i SET version_floor = a.newest + 1
          FROM (SELECT incident_id, max(acted_on_version) AS newest
                  FROM incident_actions GROUP BY incident_id) a
         WHERE a.incident_id = i.incident_id
        """
    )
    op.execute(
        "ALTER TABLE incidents ADD COLUMN version integer "
        "GENERATED ALWAYS AS (GREATEST(change_count, version_floor)) STORED"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE incidents DROP COLUMN version")
    op.execute("ALTER TABLE incidents DROP COLUMN version_floor")
    op.execute("ALTER TABLE incidents RENAME COLUMN change_count TO version")
