"""One dispatcher action per incident version, the first in the log.

A claim keeps two requests from acting on the same version, but not always: a publish
that timed out may still land after its claim was given back or ran out, beside the
action a retry published. Each action names the version it was decided on, and the
projection now applies only the first in the log for each version; a later one goes on
the timeline as not applied, naming the one that came first. This table records which
action took each version. Existing rows are filled from the timeline, earliest first,
as a rebuild of the same log would.

Revision ID: 0011
Revises: 0010
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

ACTION_TYPES = (
    "'SeverityOverridden', 'AlertAcknowledged', 'AlertAssigned', 'AlertNoteAdded', "
    "'AlertResolved', 'AlertReopened'"
)


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE incident_actions (
            incident_id      uuid NOT NULL,
            acted_on_version integer NOT NULL,
            event_id         uuid NOT NULL,
            PRIMARY KEY (incident_id, acted_on_version)
        )
        """
    )
    op.execute(
        f"""
        INSERT INTO incident_actions (incident_id, acted_on_version, event_id)
        SELECT DISTINCT ON (incident_id, (detail->>'acted_on_version')::integer)
               incident_id, (detail->>'acted_on_version')::integer, event_id
          FROM incident_timeline
         WHERE event_type IN ({ACTION_TYPES})
         ORDER BY incident_id, (detail->>'acted_on_version')::integer, occurred_at, event_id
        """  # noqa: S608 - fixed names
    )


def downgrade() -> None:
    op.execute("DROP TABLE incident_actions")
