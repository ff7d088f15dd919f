"""Ledger of submissions by idempotency key, so a retrying phone never makes two reports.

Revision ID: 0001
Revises:
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A row is claimed (in_flight, with a lease) before any photo or event is written and
    # marked accepted with the answer once Kafka acknowledged the event. A retry replays
    # the answer, waits for the claim holder, or takes over a claim whose lease expired
    # (ingest crashed mid-request) with the same report and event ids.
    op.execute(
        """
        CREATE TABLE ingest_submissions (
            idempotency_key text PRIMARY KEY,
            fingerprint     text NOT NULL,
            report_id       uuid NOT NULL UNIQUE,
            event_id        uuid NOT NULL UNIQUE,
            received_at     timestamptz NOT NULL,
            state           text NOT NULL CHECK (state IN ('in_flight', 'accepted')),
            lease_until     timestamptz NOT NULL,
            response        jsonb,
            updated_at      timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE ingest_submissions")
