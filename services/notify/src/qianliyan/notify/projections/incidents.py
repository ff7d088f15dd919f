"""The incidents read model: status, severity from the rules unless overridden, a timeline."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg

from qianliyan.notify.domain.actions import status_after
from qianliyan.shared.db import Connection
from qianliyan.shared.events import (
    AlertAcknowledged,
    AlertAssigned,
    AlertReopened,
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


# What the feed shows of an incident, from its reports: when, where, how many.
_SUMMARY = """
    SELECT min(captured_at) AS opened_at, max(captured_at) AS last_report_at,
           count(*) AS report_count,
           (array_agg(place ORDER BY captured_at) FILTER (WHERE place IS NOT NULL))[1] AS place,
           (array_agg(unit ORDER BY captured_at) FILTER (WHERE unit IS NOT NULL))[1] AS unit,
           left((array_agg(text ORDER BY captured_at) FILTER (WHERE text IS NOT NULL))[1],
                140) AS headline,
           COALESCE(sum(jsonb_array_length(photos)), 0) AS photo_count
      FROM reports WHERE incident_id = $1
"""


async def apply_triaged(connection: Connection, event: ReportTriaged) -> None:
    """Recompute the incident after one of its reports was (re)triaged; note it."""
    await refresh(connection, event.payload.incident_id)
    detail = {
        "report_id": str(event.payload.report_id),
        "severity": event.payload.severity.value,
        "rule_set_version": event.payload.rule_set_version,
    }
    await timeline(connection, event, event.payload.incident_id, detail)


FEED_CHANNEL = "feed_changes"
# Any constant: it names the lock that orders feed changes.
_FEED_LOCK = 7_306_551


async def record_change(connection: Connection, incident_id: UUID) -> None:
    """Append to the feed's change log and wake the live streams.

    The lock is held until the transaction commits, so change ids become visible in id
    order even with several notify instances: a stream never skips an id committed late.
    """
    await connection.execute("SELECT pg_advisory_xact_lock($1)", _FEED_LOCK)
    change_id = await connection.fetchval(
        "INSERT INTO feed_changes (incident_id) VALUES ($1) RETURNING change_id", incident_id
    )
    await connection.execute("SELECT pg_notify($1, $2)", FEED_CHANNEL, str(change_id))


async def sync_alert_step(
    connection: Connection, incident_id: UUID, *, changed: bool = False
) -> None:
    """Show the current round's escalation step on the incident, and tell the streams.

    The topics are projected side by side, so an alert may be projected before its
    incident exists: whichever comes second brings the step over. The version stays: it
    marks what a dispatcher decides on, and an alert being sent out must not turn a
    dispatcher's acknowledgement into a conflict.
    """
    moved = await connection.fetchval(
        """
        UPDATE incidents i SET alert_step = a.step
          FROM (SELECT (SELECT step FROM alerts a
                         WHERE a.incident_id = i2.incident_id AND a.round = i2.alert_round)
                       AS step
                  FROM incidents i2 WHERE i2.incident_id = $1) a
         WHERE i.incident_id = $1 AND i.alert_step IS DISTINCT FROM a.step
        RETURNING true
        """,
        incident_id,
    )
    if moved or changed:
        await record_change(connection, incident_id)


async def refresh(connection: Connection, incident_id: UUID) -> None:
    """Recompute the incident's rule severity and summary from its reports."""
    rule_severity = await connection.fetchval(_RULE_SEVERITY, incident_id)
    summary = await connection.fetchrow(_SUMMARY, incident_id)
    assert summary is not None  # an aggregate always returns a row
    await connection.execute(
        """
        INSERT INTO incidents (
            incident_id, version, rule_severity, opened_at, last_report_at, report_count,
            place, unit, headline, photo_count
        )
        VALUES ($1, 1, $2, $3, $4, $5, $6, $7, $8, $9)
        ON CONFLICT (incident_id) DO UPDATE SET
            rule_severity = EXCLUDED.rule_severity,
            opened_at = EXCLUDED.opened_at,
            last_report_at = EXCLUDED.last_report_at,
            report_count = EXCLUDED.report_count,
            place = EXCLUDED.place,
            unit = EXCLUDED.unit,
            headline = EXCLUDED.headline,
            photo_count = EXCLUDED.photo_count,
            version = incidents.version + 1,
            updated_at = now()
        """,
        incident_id,
        rule_severity,
        summary["opened_at"],
        summary["last_report_at"],
        summary["report_count"],
        summary["place"],
        summary["unit"],
        summary["headline"],
        summary["photo_count"],
    )
    await sync_alert_step(connection, incident_id, changed=True)


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
    if isinstance(event, AlertReopened):
        # A new round: the incident is alerted and escalated afresh.
        await connection.execute(
            "UPDATE incidents SET alert_round = alert_round + 1 WHERE incident_id = $1",
            payload.incident_id,
        )
    await sync_alert_step(connection, payload.incident_id, changed=True)
    detail = payload.model_dump(mode="json", exclude={"incident_id"})
    await timeline(connection, event, payload.incident_id, detail)


async def timeline(
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


async def fetch_alert_reports(pool: asyncpg.Pool, incident_id: UUID) -> list[dict[str, Any]]:
    """The incident's reports as the detail view shows them, oldest capture first."""
    rows = await pool.fetch(
        "SELECT report_id, reporter_id, text, category, place, unit, location, photos, "
        "captured_at, received_at, severity, reasons, rule_set_version FROM reports "
        "WHERE incident_id = $1 ORDER BY captured_at, report_id",
        incident_id,
    )
    found = []
    for row in rows:
        report = dict(row)
        for column in ("location", "photos", "reasons"):
            report[column] = json.loads(report[column]) if report[column] is not None else None
        report["photos"] = report["photos"] or []
        report["reasons"] = report["reasons"] or []
        found.append(report)
    return found


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


@dataclass(frozen=True, slots=True)
class FeedPosition:
    """Where a page of the feed ended: the sort key of its last alert."""

    severity_rank: int | None
    opened_at: datetime | None
    incident_id: UUID


@dataclass(frozen=True, slots=True)
class FeedFilter:
    """Which alerts a feed shows."""

    statuses: tuple[str, ...] = ()
    min_severity_rank: int | None = None
    unit: str | None = None
    opened_from: datetime | None = None
    opened_until: datetime | None = None
    # The units a manager may see (None: every unit, as for the dispatch centre).
    within_units: frozenset[str] | None = None


# The feed's sort key; the incidents_feed index is on exactly these expressions.
_FEED_KEY = "COALESCE(severity_rank, 0), COALESCE(opened_at, '-infinity'::timestamptz), incident_id"
_FEED_ORDER = (
    "COALESCE(severity_rank, 0) DESC, COALESCE(opened_at, '-infinity'::timestamptz) DESC, "
    "incident_id DESC"
)
_FEED_COLUMNS = (
    "incident_id, version, status, severity, severity_rank, opened_at, last_report_at, "
    "report_count, place, unit, assignee, alert_step, headline, photo_count"
)


async def list_alerts(
    pool: asyncpg.Pool, *, where: FeedFilter, after: FeedPosition | None, limit: int
) -> list[dict[str, Any]]:
    """One page of the feed, most severe first, then newest; keyset-paged after `after`."""
    conditions = ["true"]
    values: list[Any] = []

    def value(item: Any) -> str:
        values.append(item)
        return f"${len(values)}"

    if where.statuses:
        conditions.append(f"status = ANY({value(list(where.statuses))}::text[])")
    if where.min_severity_rank is not None:
        conditions.append(f"severity_rank >= {value(where.min_severity_rank)}")
    if where.unit:
        conditions.append(f"unit = {value(where.unit)}")
    if where.within_units is not None:
        conditions.append(f"unit = ANY({value(sorted(where.within_units))}::text[])")
    if where.opened_from:
        conditions.append(f"opened_at >= {value(where.opened_from)}")
    if where.opened_until:
        conditions.append(f"opened_at < {value(where.opened_until)}")
    if after is not None:
        # Rows strictly after the cursor in (rank DESC NULLS LAST, opened DESC, id DESC).
        rank, opened, ident = (
            value(after.severity_rank if after.severity_rank is not None else 0),
            value(after.opened_at or datetime.min.replace(tzinfo=UTC)),
            value(after.incident_id),
        )
        conditions.append(f"({_FEED_KEY}) < ({rank}, {opened}, {ident})")
    query = (
        f"SELECT {_FEED_COLUMNS} FROM incidents WHERE {' AND '.join(conditions)} "  # noqa: S608
        f"ORDER BY {_FEED_ORDER} LIMIT {value(limit)}"
    )
    return [dict(row) for row in await pool.fetch(query, *values)]


async def changes_after(
    pool: asyncpg.Pool, change_id: int, *, limit: int = 500
) -> list[dict[str, Any]]:
    """Feed changes after `change_id`, each with its incident's current feed row."""
    rows = await pool.fetch(
        f"SELECT c.change_id, {_FEED_COLUMNS} "  # noqa: S608 - fixed column list
        "FROM feed_changes c JOIN incidents USING (incident_id) "
        "WHERE c.change_id > $1 ORDER BY c.change_id LIMIT $2",
        change_id,
        limit,
    )
    return [dict(row) for row in rows]


async def last_change_id(pool: asyncpg.Pool) -> int:
    """The newest change id (0 when there is none)."""
    return int(await pool.fetchval("SELECT COALESCE(max(change_id), 0) FROM feed_changes"))
