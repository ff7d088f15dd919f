"""When an incident's latest report arrived, beside when it was captured.

The alerter tells news from history by this: a report that reaches ingest now is news
even when its phone captured it days ago (offline in a tunnel, or a clock gone wrong),
while a re-triage of last month's reports pages nobody. Until a report's own submission
is projected, its capture time stands in. Existing incidents are filled here from the
reports already projected, as a refresh would fill them, so a rebuild gives the same.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE incidents ADD COLUMN last_received_at timestamptz")
    op.execute(
        """
        UPDATE incidents i SET last_received_at = s.last_received_at
          FROM (SELECT incident_id,
                       COALESCE(max(received_at), max(captured_at)) AS last_received_at
                  FROM reports GROUP BY incident_id) s
         WHERE s.incident_id = i.incident_id
        """
    )


def downgrade() -> None:
    op.execute("ALTER TABLE incidents DROP COLUMN last_received_at")
