"""Projecting a batch of events into the read models, in one transaction, once per event id."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from qianliyan.notify.projections import alerts, incidents, reports
from qianliyan.shared.db import Connection
from qianliyan.shared.events import (
    AlertingEvent,
    Event,
    IncidentAction,
    ReportSubmitted,
    ReportTriaged,
)


async def project_batch(pool: asyncpg.Pool, events: Sequence[Event]) -> None:
    """Apply `events` in one transaction; events already projected are skipped."""
    async with pool.acquire() as connection, connection.transaction():
        for event in events:
            if await _claim(connection, event):
                await _apply(connection, event)


async def _claim(connection: Connection, event: Event) -> bool:
    """Record the event as projected; False when an earlier delivery already did."""
    claimed = await connection.fetchval(
        "INSERT INTO projected_events (event_id, event_type) VALUES ($1, $2) "
        "ON CONFLICT (event_id) DO NOTHING RETURNING true",
        event.event_id,
        event.type,
    )
    return bool(claimed)


async def _apply(connection: Connection, event: Event) -> None:
    if isinstance(event, ReportSubmitted):
        await reports.apply_submitted(connection, event)
        # Triage may have been projected first (another topic): complete its incident.
        incident_id = await connection.fetchval(
            "SELECT incident_id FROM reports WHERE report_id = $1", event.payload.report_id
        )
        if incident_id is not None:
            await incidents.refresh(connection, incident_id)
    elif isinstance(event, ReportTriaged):
        await reports.apply_triaged(connection, event)
        await incidents.apply_triaged(connection, event)
    elif isinstance(event, IncidentAction):
        await incidents.apply_action(connection, event)
    elif isinstance(event, AlertingEvent):
        await alerts.apply(connection, event)
