"""The feed puts what came in last first, within each severity.

The feed ordered each severity by when the incident opened: its first report's capture
time on the phone. A report that waited on a phone without network for an hour, the
case this system exists for, opened its incident an hour back and landed below every
alert of that severity reported since, where a dispatcher scanning the top of the list
did not see it. It now orders by `last_received_at`, when the incident's latest report
reached ingest (an incident whose report just arrived is news, however old), served by
an index on the new order as the old one served the old.

Revision ID: 0015
Revises: 0014
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX incidents_feed_by_arrival ON incidents ((COALESCE(severity_rank, 0)) DESC, "
        "(COALESCE(last_received_at, '-infinity'::timestamptz)) DESC, incident_id DESC)"
    )
    op.execute("DROP INDEX incidents_feed")


def downgrade() -> None:
    op.execute(
        "CREATE INDEX incidents_feed ON incidents ((COALESCE(severity_rank, 0)) DESC, "
        "(COALESCE(opened_at, '-infinity'::timestamptz)) DESC, incident_id DESC)"
    )
    op.execute("DROP INDEX incidents_feed_by_arrival")
