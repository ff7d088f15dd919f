"""Alerting: alerts in rounds, their deliveries, and the alerter's own working state.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A reopened incident is alerted afresh: its round counts the reopenings.
    op.execute(
        """
        ALTER TABLE incidents
            ADD COLUMN alert_round integer NOT NULL DEFAULT 0,
            ADD COLUMN alert_step  integer
        """
    )
    # Read model: one alert per incident and round, projected from AlertRaised/Escalated.
    op.execute(
        """
        CREATE TABLE alerts (
            incident_id     uuid NOT NULL,
            round           integer NOT NULL,
            raised_at       timestamptz NOT NULL,
            severity        text NOT NULL,
            route           text NOT NULL,
            routing_version text NOT NULL,
            step            integer NOT NULL DEFAULT 0,
            escalated_at    timestamptz,
            PRIMARY KEY (incident_id, round)
        )
        """
    )
    # Read model: the outcome of each delivery, from AlertDelivered/AlertDeliveryFailed.
    op.execute(
        """
        CREATE TABLE alert_deliveries (
            incident_id     uuid NOT NULL,
            round           integer NOT NULL,
            step            integer NOT NULL,
            recipient       text NOT NULL,
            channel         text NOT NULL,
            outcome         text NOT NULL CHECK (outcome IN ('delivered', 'retrying', 'failed')),
            attempts        integer NOT NULL,
            last_error      text,
            next_attempt_at timestamptz,
            updated_at      timestamptz NOT NULL,
            PRIMARY KEY (incident_id, round, step, recipient, channel)
        )
        """
    )
    # The alerter's working state, not a read model: which delivery an instance has taken
    # (until its lease ends), how often it was tried, and whether it is settled. A rebuild
    # leaves it alone; even without it, the projected deliveries stop a second page.
    op.execute(
        """
        CREATE TABLE delivery_claims (
            incident_id   uuid NOT NULL,
            round         integer NOT NULL,
            step          integer NOT NULL,
            recipient     text NOT NULL,
            channel       text NOT NULL,
            attempts      integer NOT NULL DEFAULT 0,
            claimed_until timestamptz NOT NULL,
            settled       boolean NOT NULL DEFAULT false,
            PRIMARY KEY (incident_id, round, step, recipient, channel)
        )
        """
    )
    # Events the alerter decided on, written in the same transaction as its claims, then
    # published: a crash between deciding and publishing loses nothing.
    op.execute(
        """
        CREATE TABLE alert_outbox (
            event_id   uuid PRIMARY KEY,
            event      jsonb NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE alert_outbox")
    op.execute("DROP TABLE delivery_claims")
    op.execute("DROP TABLE alert_deliveries")
    op.execute("DROP TABLE alerts")
    op.execute("ALTER TABLE incidents DROP COLUMN alert_round, DROP COLUMN alert_step")
