"""An incident belongs to every unit its reports came from.

The incident's `unit` is its first report's, which the routing goes by. A manager saw
only the incidents whose first report was from one of their units: when a worker of
theirs reported into an incident another unit had opened (two departments at one
platform), the manager could neither list it, open it nor act on it. `units` holds every
unit its reports name, kept by the same refresh as the other summary columns, and the
feed, the live stream, the detail view and actions reach a manager through any of them.

An instance of the last release refreshes incidents without writing `units`: stop
notify's old instances before starting this release (or run `qianliyan check` after the
rollout, and `rebuild` if it differs). The backfill takes the reports as they stand; an
incident a re-triage moved a report away from without refreshing it keeps that unit after
a rebuild, which `check` then lists (rare; `rebuild` sets it right).

Revision ID: 0014
Revises: 0013
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE incidents ADD COLUMN units text[] NOT NULL DEFAULT '{}'")
    op.execute(
        """
        UPDATE incidents i SET units = r.units
          FROM (SELECT incident_id, array_agg(DISTINCT unit ORDER BY unit) AS units
                  FROM reports WHERE unit IS NOT NULL GROUP BY incident_id) r
         WHERE r.incident_id = i.incident_id
        """
    )
    op.execute("CREATE INDEX incidents_units ON incidents USING gin (units)")


def downgrade() -> None:
    op.execute("DROP INDEX incidents_units")
    op.execute("ALTER TABLE incidents DROP COLUMN units")
