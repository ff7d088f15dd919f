"""Projecting a batch of events into the read models, in one transaction, once per event id."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import asyncpg

from qianliyan.notify.projections import alerts, batch, incidents, reports
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
        fresh = await _claim(connection, events)
        if not fresh:
            return
        try:
            async with connection.transaction():  # a savepoint, for going one by one
                await batch.apply(connection, fresh)
        except batch.OrderMatters:
            for event in fresh:
                await _apply(connection, event)


async def project_one_by_one(pool: asyncpg.Pool, events: Sequence[Event]) -> None:
    """`project_batch` event by event: what it must equal, kept to show that it does."""
    async with pool.acquire() as connection, connection.transaction():
        for event in events:
            if await _claim(connection, [event]):
                await _apply(connection, event)


async def _claim(connection: Connection, events: Sequence[Event]) -> list[Event]:
    """Record the events as projected; those no earlier delivery did, in order, once each."""
    first: dict[UUID, Event] = {}
    for event in events:
        first.setdefault(event.event_id, event)
    claimed = await connection.fetch(
        "INSERT INTO projected_events (event_id, event_type) "
        "SELECT * FROM unnest($1::uuid[], $2::text[]) ON CONFLICT (event_id) DO NOTHING "
        "RETURNING event_id",
        list(first),
        [event.type for event in first.values()],
    )
    fresh = {row["event_id"] for row in claimed}
    return [event for event in first.values() if event.event_id in fresh]


async def _apply(connection: Connection, event: Event) -> None:
    if isinstance(event, ReportSubmitted):
        await reports.apply_submitted(connection, event)
        # Triage may have been projected first (another topic): complete its incident.
        incident_id = await _incident_of(connection, event.payload.report_id)
        if incident_id is not None:
            await incidents.refresh(connection, incident_id)
    elif isinstance(event, ReportTriaged):
        before = await _incident_of(connection, event.payload.report_id)
        await reports.apply_triaged(connection, event)
        await incidents.apply_triaged(connection, event)
        if before is not None and before != await _incident_of(connection, event.payload.report_id):
            # The report left `before` (a re-triage grouped it otherwise): that incident is
            # counted and judged again without it, or it keeps showing the report's severity
            # and unit.
            await incidents.refresh(connection, before)
    elif isinstance(event, IncidentAction):
        await incidents.apply_action(connection, event)
    elif isinstance(event, AlertingEvent):
        await alerts.apply(connection, event)


async def _incident_of(connection: Connection, report_id: UUID) -> UUID | None:
    incident_id: UUID | None = await connection.fetchval(
        "SELECT incident_id FROM reports WHERE report_id = $1", report_id
    )
    return incident_id
