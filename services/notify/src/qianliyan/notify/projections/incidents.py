"""The incidents read model: severity from the rules over its reports, unless overridden."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from qianliyan.shared.db import Connection
from qianliyan.shared.events import ReportTriaged, SeverityOverridden

# The most severe of the incident's reports, by their latest triage.
_RULE_SEVERITY = """
    SELECT severity FROM reports
     WHERE incident_id = $1 AND severity IS NOT NULL
     ORDER BY array_position(ARRAY['info', 'minor', 'major', 'critical'], severity) DESC
     LIMIT 1
"""


async def apply_triaged(connection: Connection, event: ReportTriaged) -> None:
    """Recompute the incident's rule severity after one of its reports was (re)triaged."""
    incident_id = event.payload.incident_id
    rule_severity = await connection.fetchval(_RULE_SEVERITY, incident_id)
    await connection.execute(
        """
        INSERT INTO incidents (incident_id, version, rule_severity) VALUES ($1, 1, $2)
        ON CONFLICT (incident_id) DO UPDATE SET
            rule_severity = EXCLUDED.rule_severity,
            version = incidents.version + 1,
            updated_at = now()
        """,
        incident_id,
        rule_severity,
    )


async def apply_overridden(connection: Connection, event: SeverityOverridden) -> None:
    """Record a dispatcher's severity; it stays until another override."""
    await connection.execute(
        """
        INSERT INTO incidents (
            incident_id, version, override_severity, override_reason, overridden_by, overridden_at
        )
        VALUES ($1, 1, $2, $3, $4, $5)
        ON CONFLICT (incident_id) DO UPDATE SET
            override_severity = EXCLUDED.override_severity,
            override_reason = EXCLUDED.override_reason,
            overridden_by = EXCLUDED.overridden_by,
            overridden_at = EXCLUDED.overridden_at,
            version = incidents.version + 1,
            updated_at = now()
        """,
        event.payload.incident_id,
        event.payload.severity.value,
        event.payload.reason,
        event.actor.id,
        event.occurred_at,
    )


async def fetch_incident(pool: asyncpg.Pool, incident_id: UUID) -> dict[str, Any] | None:
    """One incident with its reports, or None when unknown."""
    row = await pool.fetchrow("SELECT * FROM incidents WHERE incident_id = $1", incident_id)
    if row is None:
        return None
    incident = dict(row)
    incident["report_ids"] = [
        r["report_id"]
        for r in await pool.fetch(
            "SELECT report_id FROM reports WHERE incident_id = $1 ORDER BY captured_at",
            incident_id,
        )
    ]
    return incident


async def claim_action(
    pool: asyncpg.Pool, *, incident_id: UUID, version: int, event_id: UUID
) -> bool:
    """Claim the right to act on `version` of the incident; False when it is stale or taken."""
    async with pool.acquire() as connection, connection.transaction():
        current = await connection.fetchval(
            "SELECT version FROM incidents WHERE incident_id = $1 FOR UPDATE", incident_id
        )
        if current != version:
            return False
        claimed = await connection.fetchval(
            "INSERT INTO incident_action_claims (incident_id, version, event_id) "
            "VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING true",
            incident_id,
            version,
            event_id,
        )
        return bool(claimed)


async def release_claim(pool: asyncpg.Pool, *, incident_id: UUID, version: int) -> None:
    """Give a claim back when its event could not be published, so a retry may act."""
    await pool.execute(
        "DELETE FROM incident_action_claims WHERE incident_id = $1 AND version = $2",
        incident_id,
        version,
    )
