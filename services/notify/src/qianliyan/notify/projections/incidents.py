"""The incidents read model: status, severity from the rules unless overridden, a timeline."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import asyncpg

from qianliyan.notify.domain.actions import status_after
from qianliyan.shared.db import Connection
from qianliyan.shared.events import (
    AlertAcknowledged,
    AlertAssigned,
    AlertResolved,
    Event,
    IncidentAction,
    ReportTriaged,
    SeverityOverridden,
)

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
    detail = {
        "report_id": str(event.payload.report_id),
        "severity": event.payload.severity.value,
        "rule_set_version": event.payload.rule_set_version,
    }
    await _timeline(connection, event, incident_id, detail)


async def apply_action(connection: Connection, event: IncidentAction) -> None:
    """Apply a dispatcher's action to the incident and put it on the timeline."""
    payload = event.payload
    status = await connection.fetchval(
        "SELECT status FROM incidents WHERE incident_id = $1", payload.incident_id
    )
    changes: dict[str, Any] = {"status": status_after(event, status or "open")}
    if isinstance(event, SeverityOverridden):
        changes |= {
            "override_severity": event.payload.severity.value,
            "override_reason": event.payload.reason,
            "overridden_by": event.actor.id,
            "overridden_at": event.occurred_at,
        }
    elif isinstance(event, AlertAcknowledged):
        changes |= {"acknowledged_by": event.actor.id, "acknowledged_at": event.occurred_at}
    elif isinstance(event, AlertAssigned):
        changes |= {"assignee": event.payload.assignee}
    elif isinstance(event, AlertResolved):
        changes |= {
            "resolved_by": event.actor.id,
            "resolved_at": event.occurred_at,
            "resolution": event.payload.resolution,
        }
    # Column names come from the fixed keys above, never from input.
    columns = ", ".join(changes)
    placeholders = ", ".join(f"${i}" for i in range(2, len(changes) + 2))
    updates = ", ".join(f"{name} = EXCLUDED.{name}" for name in changes)
    # An action may be projected before the incident's first triage when a rebuild reads
    # the topics side by side, so the row is created if it is missing.
    await connection.execute(
        f"INSERT INTO incidents (incident_id, version, {columns}) "  # noqa: S608
        f"VALUES ($1, 1, {placeholders}) ON CONFLICT (incident_id) DO UPDATE SET {updates}, "
        "version = incidents.version + 1, updated_at = now()",
        payload.incident_id,
        *changes.values(),
    )
    detail = payload.model_dump(mode="json", exclude={"incident_id"})
    await _timeline(connection, event, payload.incident_id, detail)


async def _timeline(
    connection: Connection, event: Event, incident_id: UUID, detail: dict[str, Any]
) -> None:
    await connection.execute(
        "INSERT INTO incident_timeline (event_id, incident_id, occurred_at, actor, event_type, "
        "detail) VALUES ($1, $2, $3, $4, $5, $6::jsonb) ON CONFLICT (event_id) DO NOTHING",
        event.event_id,
        incident_id,
        event.occurred_at,
        event.actor.id,
        event.type,
        json.dumps(detail, ensure_ascii=False),
    )


async def fetch_incident(pool: asyncpg.Pool, incident_id: UUID) -> dict[str, Any] | None:
    """One incident with its reports and timeline, or None when unknown."""
    row = await pool.fetchrow("SELECT * FROM incidents WHERE incident_id = $1", incident_id)
    if row is None:
        return None
    incident = dict(row)
    reports = await pool.fetch(
        "SELECT report_id FROM reports WHERE incident_id = $1 ORDER BY captured_at", incident_id
    )
    incident["report_ids"] = [r["report_id"] for r in reports]
    timeline = await pool.fetch(
        "SELECT occurred_at, actor, event_type, detail FROM incident_timeline "
        "WHERE incident_id = $1 ORDER BY occurred_at, event_id",
        incident_id,
    )
    incident["timeline"] = [{**dict(t), "detail": json.loads(t["detail"])} for t in timeline]
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
