"""The alerting read models: alerts in rounds, their level and escalation step, each
delivery's outcome."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from qianliyan.notify.projections.incidents import (
    SEVERITY_SCALE_SQL,
    sync_alert_step,
    timeline,
    timeline_detail,
)
from qianliyan.shared.db import Connection
from qianliyan.shared.events import (
    AlertDelivered,
    AlertDeliveryFailed,
    AlertEscalated,
    AlertingEvent,
    AlertRaised,
    AlertUpgraded,
)

# The first AlertRaised of a round makes its alert; a repeat changes nothing.
RAISE = (
    "INSERT INTO alerts (incident_id, round, raised_at, severity, route, routing_version, "
    "unit, place) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
    "ON CONFLICT (incident_id, round) DO NOTHING"
)
# Levels only go up, as steps do: an upgrade replayed late never makes the alert milder.
UPGRADE = f"""
    UPDATE alerts SET upgraded_to = $3, upgraded_at = $4
     WHERE incident_id = $1 AND round = $2
       AND array_position({SEVERITY_SCALE_SQL}, $3::text)
         > array_position({SEVERITY_SCALE_SQL}, COALESCE(upgraded_to, severity))
"""  # noqa: S608 - fixed names
# Steps only go up: an escalation replayed late never takes the alert back a step.
ESCALATE = (
    "UPDATE alerts SET step = $3, escalated_at = $4 "
    "WHERE incident_id = $1 AND round = $2 AND step < $3"
)


def level_of(row: str) -> str:
    """SQL for the rank (1 for info to 4 for critical) of the level a delivery or claim
    row tells of: its severity, or where that is null (recorded before upgrades were told,
    or by the last release while this one rolls out) its alert's raised severity."""
    raised = (
        f"SELECT a.severity FROM alerts a "  # noqa: S608 - fixed names
        f"WHERE a.incident_id = {row}.incident_id AND a.round = {row}.round"
    )
    return f"array_position({SEVERITY_SCALE_SQL}, COALESCE({row}.severity, ({raised})))"


# One row per step, recipient and channel: its most severe level, and of that level the
# latest attempt, whatever order a rebuild projects them in (the timeline keeps them all).
_MORE_SEVERE = f"{level_of('EXCLUDED')} > {level_of('alert_deliveries')}"
_SAME_LEVEL = f"{level_of('EXCLUDED')} IS NOT DISTINCT FROM {level_of('alert_deliveries')}"
DELIVERY = f"""
    INSERT INTO alert_deliveries (
        incident_id, round, step, recipient, channel, severity, outcome, attempts,
        last_error, next_attempt_at, updated_at
    )
    VALUES ($1, $2, $3, $4, $5, $11, $6, $7, $8, $9, $10)
    ON CONFLICT (incident_id, round, step, recipient, channel) DO UPDATE SET
        severity = EXCLUDED.severity,
        outcome = EXCLUDED.outcome,
        attempts = EXCLUDED.attempts,
        last_error = CASE WHEN {_SAME_LEVEL}
                          THEN COALESCE(EXCLUDED.last_error, alert_deliveries.last_error)
                          ELSE EXCLUDED.last_error END,
        next_attempt_at = EXCLUDED.next_attempt_at,
        updated_at = EXCLUDED.updated_at
    WHERE {_MORE_SEVERE}
       OR ({_SAME_LEVEL} AND alert_deliveries.attempts <= EXCLUDED.attempts)
"""  # noqa: S608 - fixed names


async def apply(connection: Connection, event: AlertingEvent) -> None:
    """Project one alerting event and put it on its incident's timeline."""
    payload = event.payload
    if isinstance(event, AlertRaised):
        await connection.execute(RAISE, *raise_values(event))
        await sync_alert_step(connection, payload.incident_id)
    elif isinstance(event, AlertUpgraded):
        await connection.execute(UPGRADE, *upgrade_values(event))
    elif isinstance(event, AlertEscalated):
        await connection.execute(ESCALATE, *escalate_values(event))
        await sync_alert_step(connection, payload.incident_id)
    else:
        await connection.execute(DELIVERY, *delivery_values(event))
    await timeline(connection, event, payload.incident_id, timeline_detail(event))


def raise_values(event: AlertRaised) -> tuple[Any, ...]:
    """The parameters of `RAISE` for the event."""
    payload = event.payload
    return (
        payload.incident_id,
        payload.round,
        event.occurred_at,
        payload.severity.value,
        payload.route,
        payload.routing_version,
        payload.unit,
        payload.place,
    )


def upgrade_values(event: AlertUpgraded) -> tuple[Any, ...]:
    """The parameters of `UPGRADE` for the event."""
    payload = event.payload
    return (payload.incident_id, payload.round, payload.severity.value, event.occurred_at)


def escalate_values(event: AlertEscalated) -> tuple[Any, ...]:
    """The parameters of `ESCALATE` for the event."""
    payload = event.payload
    return (payload.incident_id, payload.round, payload.step, event.occurred_at)


def delivery_values(event: AlertDelivered | AlertDeliveryFailed) -> tuple[Any, ...]:
    """The parameters of `DELIVERY` for the event."""
    payload = event.payload
    if isinstance(event, AlertDelivered):
        outcome, error, next_at = "delivered", None, None
    else:
        error, next_at = event.payload.error, event.payload.next_attempt_at
        outcome = "retrying" if next_at is not None else "failed"
    return (
        payload.incident_id,
        payload.round,
        payload.step,
        payload.recipient,
        payload.channel,
        outcome,
        payload.attempt,
        error,
        next_at,
        event.occurred_at,
        payload.severity.value if payload.severity is not None else None,
    )


async def fetch_alerting(pool: asyncpg.Pool, incident_id: UUID) -> dict[str, Any]:
    """The incident's alerts (one per round, newest first) and every delivery's outcome."""
    rounds = await pool.fetch(
        "SELECT round, raised_at, severity, route, routing_version, upgraded_to, upgraded_at, "
        "step, escalated_at FROM alerts WHERE incident_id = $1 ORDER BY round DESC",
        incident_id,
    )
    deliveries = await pool.fetch(
        "SELECT d.round, COALESCE(d.severity, a.severity) AS severity, d.step, d.recipient, "
        "d.channel, d.outcome, d.attempts, d.last_error, d.next_attempt_at, d.updated_at "
        "FROM alert_deliveries d LEFT JOIN alerts a USING (incident_id, round) "
        "WHERE d.incident_id = $1 ORDER BY d.round, d.step, d.recipient, d.channel",
        incident_id,
    )
    return {"alerts": [dict(r) for r in rounds], "deliveries": [dict(d) for d in deliveries]}
