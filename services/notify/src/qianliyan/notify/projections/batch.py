"""Projecting a batch of events in a few set-based statements, as one by one would.

Event by event, the projection makes about ten round trips to PostgreSQL per event, so a
rebuild from the log waits on the socket. Here a batch is written table by table: the
reports in one upsert for their submissions and one for their triages, each touched
incident refreshed once (its version moved by as many refreshes as one by one would
make), its alert step synced once, one feed change per incident and one NOTIFY. The read
models end exactly as one by one leaves them.

That holds because refreshing an incident reads only its reports, and every change to
a report's row is followed by a refresh of its incident (of both, when a triage moves
the report to another), so the last refresh of a batch sees what an earlier one would.
One order breaks it, and the plan says so with `OrderMatters` for the caller to go event
by event: an escalation, an upgrade or a delivery ahead of its alert (one by one finds
no alert to change, or to read a delivery's level from).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from qianliyan.notify.projections import alerts, incidents, reports
from qianliyan.shared.db import Connection
from qianliyan.shared.events import (
    AlertDelivered,
    AlertDeliveryFailed,
    AlertEscalated,
    AlertingEvent,
    AlertRaised,
    AlertUpgraded,
    Event,
    IncidentAction,
    ReportSubmitted,
    ReportTriaged,
)


class OrderMatters(Exception):
    """The batch holds an order that a set-based projection would not reproduce."""


@dataclass(frozen=True, slots=True)
class Triage:
    """Where a report stands before the batch's triages: its incident, and when it was
    last triaged (both None before its first triage)."""

    incident_id: UUID | None
    triaged_at: datetime | None


UNTRIAGED = Triage(None, None)


def last_submissions(events: Iterable[ReportSubmitted]) -> list[ReportSubmitted]:
    """The last submission of each report: each writes every column, so the last wins."""
    return list({event.payload.report_id: event for event in events}.values())


def triage_per_report(
    events: Iterable[ReportTriaged],
) -> list[tuple[ReportTriaged, ReportTriaged]]:
    """Per report, its first triage (which makes a missing row) and the one whose decision
    stands: the newest, the later of equals, as the upsert's guard lets one by one keep."""
    found: dict[UUID, tuple[ReportTriaged, ReportTriaged]] = {}
    for event in events:
        report_id = event.payload.report_id
        first, newest = found.get(report_id, (event, event))
        if newest.occurred_at <= event.occurred_at:
            newest = event
        found[report_id] = (first, newest)
    return list(found.values())


def incident_refreshes(
    events: Iterable[ReportSubmitted | ReportTriaged], before: Mapping[UUID, Triage]
) -> tuple[Counter[UUID], dict[UUID, Triage]]:
    """How many refreshes one by one makes of each incident for these report events, in
    their order, given where each report stood; and where each written report stands
    after them. A triage that moves a report refreshes the incident it left as well."""
    state = dict(before)
    refreshes: Counter[UUID] = Counter()
    written: set[UUID] = set()  # the rows the upsert changes
    for event in events:
        report_id = event.payload.report_id
        current = state.get(report_id, UNTRIAGED)
        if isinstance(event, ReportSubmitted):
            touched = current.incident_id
            written.add(report_id)
        else:
            # A late triage changes nothing, though it still refreshes its incident.
            touched = event.payload.incident_id
            if current.triaged_at is None or current.triaged_at <= event.occurred_at:
                old = current.incident_id
                if old is not None and old != touched:
                    refreshes[old] += 1
                state[report_id] = Triage(touched, event.occurred_at)
                written.add(report_id)
        if touched is not None:
            refreshes[touched] += 1
    return refreshes, {report_id: state.get(report_id, UNTRIAGED) for report_id in written}


def check_alert_order(events: Iterable[AlertingEvent]) -> None:
    """Raise `OrderMatters` when an escalation, an upgrade or a delivery comes before the
    raising of its alert."""
    ahead: set[tuple[UUID, int]] = set()
    for event in events:
        key = (event.payload.incident_id, event.payload.round)
        if not isinstance(event, AlertRaised):
            ahead.add(key)
        elif key in ahead:
            raise OrderMatters("an event about an alert comes before the alert")


async def apply(connection: Connection, events: Sequence[Event]) -> None:
    """Project `events` (each claimed once already), in order, as one by one would."""
    submitted = [e for e in events if isinstance(e, ReportSubmitted)]
    triaged = [e for e in events if isinstance(e, ReportTriaged)]
    actions = [e for e in events if isinstance(e, IncidentAction)]
    alerting = [e for e in events if isinstance(e, AlertingEvent)]
    check_alert_order(alerting)

    # The reports are locked as they stood, their triages played through in order, then
    # written; a row that then reads otherwise was written by another instance meanwhile.
    report_ids = {e.payload.report_id for e in submitted} | {e.payload.report_id for e in triaged}
    refreshes, expected = incident_refreshes(
        (e for e in events if isinstance(e, ReportSubmitted | ReportTriaged)),
        await _triage_states(connection, report_ids),
    )
    # Every incident the batch writes, at once and before any of its rows: a refresh or
    # an action waiting for one of them while holding another could deadlock.
    await incidents.lock(
        connection,
        refreshes.keys()
        | {e.payload.incident_id for e in actions}
        | {e.payload.incident_id for e in alerting},
    )
    written = await reports.upsert(
        connection, last_submissions(submitted), triage_per_report(triaged)
    )
    if {row["report_id"]: Triage(row["incident_id"], row["triaged_at"]) for row in written} != (
        expected
    ):
        raise OrderMatters("reports were written by another projection meanwhile")

    # Actions are few and each depends on the status the one before left.
    acted: set[UUID] = set()
    not_applied: dict[UUID, incidents.NotApplied] = {}
    for action in actions:
        if why := await incidents.upsert_action(connection, action):
            not_applied[action.event_id] = why
        acted.add(action.payload.incident_id)

    await _alerting(connection, alerting)
    await incidents.refresh_many(connection, refreshes)
    await incidents.timeline_many(connection, [*triaged, *actions, *alerting], not_applied)

    stepped = {
        e.payload.incident_id for e in alerting if isinstance(e, AlertRaised | AlertEscalated)
    }
    moved = await incidents.sync_alert_steps(connection, sorted(refreshes.keys() | acted | stepped))
    await incidents.record_changes(connection, sorted(refreshes.keys() | acted | moved))


async def _triage_states(connection: Connection, report_ids: set[UUID]) -> dict[UUID, Triage]:
    if not report_ids:
        return {}
    rows = await connection.fetch(
        "SELECT report_id, incident_id, triaged_at FROM reports "
        "WHERE report_id = ANY($1::uuid[]) ORDER BY report_id FOR UPDATE",
        list(report_ids),
    )
    return {row["report_id"]: Triage(row["incident_id"], row["triaged_at"]) for row in rows}


async def _alerting(connection: Connection, events: Sequence[AlertingEvent]) -> None:
    # Each statement runs once per event, in order, pipelined: deliveries, upgrades and
    # escalations depend on the order of their own kind only (once alerts come first).
    raised = [alerts.raise_values(e) for e in events if isinstance(e, AlertRaised)]
    upgraded = [alerts.upgrade_values(e) for e in events if isinstance(e, AlertUpgraded)]
    escalated = [alerts.escalate_values(e) for e in events if isinstance(e, AlertEscalated)]
    delivered = [
        alerts.delivery_values(e)
        for e in events
        if isinstance(e, AlertDelivered | AlertDeliveryFailed)
    ]
    for statement, values in (
        (alerts.RAISE, raised),
        (alerts.UPGRADE, upgraded),
        (alerts.ESCALATE, escalated),
        (alerts.DELIVERY, delivered),
    ):
        if values:
            await connection.executemany(statement, values)
