"""Incidents read model: the rules' severity, a dispatcher's override, and a version.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE incidents (
            incident_id       uuid PRIMARY KEY,
            version           integer NOT NULL DEFAULT 0,
            rule_severity     text,
            override_severity text,
            override_reason   text,
            overridden_by     text,
            overridden_at     timestamptz,
            -- A dispatcher's word wins over the rules, including after a re-triage.
            severity          text GENERATED ALWAYS AS (
                                  COALESCE(override_severity, rule_severity)
                              ) STORED,
            updated_at        timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    # One action per incident version: of two dispatchers acting on the same version,
    # the first to claim it wins and the other gets a 409.
    op.execute(
        """
        CREATE TABLE incident_action_claims (
            incident_id uuid NOT NULL,
            version     integer NOT NULL,
            event_id    uuid NOT NULL,
            claimed_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (incident_id, version)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE incident_action_claims")
    op.execute("DROP TABLE incidents")
