"""The alerting read models: alerts in rounds, their escalation step, each delivery's outcome."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from qianliyan.notify.projections.incidents import sync_alert_step, timeline, timeline_detail
from qianliyan.shared.db import Connection
from qianliyan.shared.events import (
    AlertDelivered,
    AlertDeliveryFailed,
    AlertEscalated,
    AlertingEvent,
    AlertRaised,
)

# The first AlertRaised of a round makes its alert; a repeat changes nothing.
RAISE = (
    "INSERT INTO alerts (incident_id, round, raised_at, severity, route, routing_version) "
    "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (incident_id, round) DO NOTHING"
)
# Steps only go up: an escalation replayed late never takes the alert back a step.
ESCALATE = (
    "UPDATE alerts SET step = $3, escalated_at = $4 "
    "WHERE incident_id = $1 AND round = $2 AND step < $3"
)
# Attempts may be projected out of order in a rebuild; the latest attempt wins.
DELIVERY = """
    INSERT INTO alert_deliveries (
        incident_id, round, step, recipient, channel, outcome, attempts, last_error,
        next_attempt_at, updated_at
    )
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
    ON CONFLICT (incident_id, round, step, recipient, channel) DO UPDATE SET
        outcome = EXCLUDED.outcome,
        attempts = EXCLUDED.attempts,
        last_error = COALESCE(EXCLUDED.last_error, alert_deliveries.last_error),
        next_attempt_at = EXCLUDED.next_attempt_at,
        updated_at = EXCLUDED.updated_at
    WHERE alert_deliveries.attempts <= EXCLUDED.attempts
"""


async def apply(connection: Connection, event: AlertingEvent) -> None:
    """Project one alerting event and put it on its incident's timeline."""
    payload = event.payload
    if isinstance(event, AlertRaised):
        await connection.execute(RAISE, *raise_values(event))
        await sync_alert_step(connection, payload.incident_id)
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
    )


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
    )


async def fetch_alerting(pool: asyncpg.Pool, incident_id: UUID) -> dict[str, Any]:
    """The incident's alerts (one per round, newest first) and every delivery's outcome."""
    rounds = await pool.fetch(
        "SELECT round, raised_at, severity, route, routing_version, step, escalated_at "
        "FROM alerts WHERE incident_id = $1 ORDER BY round DESC",
        incident_id,
    )
    deliveries = await pool.fetch(
        "SELECT round, step, recipient, channel, outcome, attempts, last_error, "
        "next_attempt_at, updated_at FROM alert_deliveries WHERE incident_id = $1 "
        "ORDER BY round, step, recipient, channel",
        incident_id,
    )
    return {"alerts": [dict(r) for r in rounds], "deliveries": [dict(d) for d in deliveries]}
