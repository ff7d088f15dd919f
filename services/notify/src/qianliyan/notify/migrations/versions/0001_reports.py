"""Reports read model and the ledger of projected events.

Revision ID: 0001
Revises:
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every projected event id is recorded in the same transaction as its effect, so a
    # redelivered event is recognised and skipped: projection is idempotent by event_id.
    op.execute(
        """
        CREATE TABLE projected_events (
            event_id     uuid PRIMARY KEY,
            event_type   text NOT NULL,
            projected_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    # One row per report. ReportSubmitted and ReportTriaged arrive on different topics
    # in no guaranteed order, so either may create the row and the other completes it.
    op.execute(
        """
        CREATE TABLE reports (
            report_id          uuid PRIMARY KEY,
            correlation_id     uuid,
            reporter_id        text,
            text               text,
            category           text,
            place              text,
            unit               text,
            location           jsonb,
            photos             jsonb NOT NULL DEFAULT '[]'::jsonb,
            client_report_id   text,
            captured_at        timestamptz,
            received_at        timestamptz,
            submitted_event_id uuid,
            incident_id        uuid,
            severity           text,
            rule_set_version   text,
            reasons            jsonb,
            triaged_at         timestamptz,
            triaged_event_id   uuid,
            updated_at         timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX reports_captured_at ON reports (captured_at DESC)")
    op.execute("CREATE INDEX reports_incident ON reports (incident_id)")


def downgrade() -> None:
    op.execute("DROP TABLE reports")
    op.execute("DROP TABLE projected_events")
