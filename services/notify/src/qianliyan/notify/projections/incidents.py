"""The incidents read model: status, severity from the rules unless overridden, a timeline."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from uuid import UUID

import asyncpg

from qianliyan.notify.domain.actions import (
    ActionRefused,
    IncidentStatus,
    check_allowed,
    status_after,
)
from qianliyan.shared.db import Connection
from qianliyan.shared.events import (
    AlertAcknowledged,
    AlertAssigned,
    AlertDelivered,
    AlertDeliveryFailed,
    AlertingEvent,
    AlertReopened,
    AlertResolved,
    Event,
    IncidentAction,
    ReportTriaged,
    SeverityOverridden,
)
from qianliyan.shared.events.reports import SEVERITY_SCALE

# An incident's version, as dispatchers act on it: its count of changes (`version`, which
# the projection moves), or one past the newest version acted on when that is more (a
# rebuild can count fewer changes; migration 0012). Every read of the version is this.
CURRENT_VERSION = "GREATEST(version, version_floor)"

# The severity scale as SQL, least severe first: `array_position` of a severity in it is
# its rank (1 for info to 4 for critical), as `severity_rank` is in Python.
SEVERITY_SCALE_SQL = f"ARRAY[{', '.join(repr(s.value) for s in SEVERITY_SCALE)}]"

# Each incident's rule severity (the most severe of its reports, by their latest triage)
# and what the feed shows of it (when, where, how many), upserted in one statement for
# any number of incidents. $2 counts the refreshes each incident gets: its count of
# changes (`version`, see CURRENT_VERSION) moves by one per refresh, so a batch of
# refreshes ends at the version one-by-one would give.
# Ties in capture time go to the lower report id, so the choice never depends on a plan.
_REFRESH = f"""
    WITH touched AS (
        SELECT * FROM unnest($1::uuid[], $2::int[]) AS t(incident_id, refreshes)
    ), summary AS (
        SELECT incident_id,
               (array_agg(severity ORDER BY array_position({SEVERITY_SCALE_SQL}, severity) DESC)
                   FILTER (WHERE severity IS NOT NULL))[1] AS rule_severity,
               min(captured_at) AS opened_at, max(captured_at) AS last_report_at,
               -- A report's capture time until its submission is projected, beside the
               -- arrival of those already read.
               max(COALESCE(received_at, captured_at)) AS last_received_at,
               count(*) AS report_count,
               (array_agg(place ORDER BY captured_at, report_id)
                   FILTER (WHERE place IS NOT NULL))[1] AS place,
               (array_agg(unit ORDER BY captured_at, report_id)
                   FILTER (WHERE unit IS NOT NULL))[1] AS unit,
               COALESCE(array_agg(DISTINCT unit ORDER BY unit) FILTER (WHERE unit IS NOT NULL),
                        ARRAY[]::text[]) AS units,
               left((array_agg(text ORDER BY captured_at, report_id)
                   FILTER (WHERE text IS NOT NULL))[1], 140) AS headline,
               sum(jsonb_array_length(photos)) AS photo_count
          FROM reports WHERE incident_id = ANY($1::uuid[])
         GROUP BY incident_id
    )
    INSERT INTO incidents (
        incident_id, version, rule_severity, opened_at, last_report_at, last_received_at,
        report_count, place, unit, units, headline, photo_count
    )
    SELECT t.incident_id, t.refreshes, s.rule_severity, s.opened_at, s.last_report_at,
           s.last_received_at, COALESCE(s.report_count, 0), s.place, s.unit,
           COALESCE(s.units, ARRAY[]::text[]), s.headline, COALESCE(s.photo_count, 0)
      FROM touched t LEFT JOIN summary s USING (incident_id)
    ON CONFLICT (incident_id) DO UPDATE SET
        rule_severity = EXCLUDED.rule_severity,
        opened_at = EXCLUDED.opened_at,
        last_report_at = EXCLUDED.last_report_at,
        last_received_at = EXCLUDED.last_received_at,
        report_count = EXCLUDED.report_count,
        place = EXCLUDED.place,
        unit = EXCLUDED.unit,
        units = EXCLUDED.units,
        headline = EXCLUDED.headline,
        photo_count = EXCLUDED.photo_count,
        version = incidents.version + EXCLUDED.version,
        updated_at = now()
"""  # noqa: S608 - fixed names


async def apply_triaged(connection: Connection, event: ReportTriaged) -> None:
    """Recompute the incident after one of its reports was (re)triaged; note it."""
    await refresh(connection, event.payload.incident_id)
    await timeline(connection, event, event.payload.incident_id, timeline_detail(event))


# Why an action changed nothing, as its timeline entry says: the action that came first on
# its version (`superseded_by`), or the refusal of the status it met (`refused`, with
# `status_then`). Empty for an action applied.
NotApplied = Mapping[str, str]


def timeline_detail(
    event: ReportTriaged | IncidentAction | AlertingEvent, *, not_applied: NotApplied | None = None
) -> dict[str, Any]:
    """What the incident's timeline says of the event; of an action not applied, why."""
    if isinstance(event, ReportTriaged):
        return {
            "report_id": str(event.payload.report_id),
            "severity": event.payload.severity.value,
            "rule_set_version": event.payload.rule_set_version,
        }
    detail = event.payload.model_dump(mode="json", exclude={"incident_id"})
    if isinstance(event, AlertDelivered | AlertDeliveryFailed) and detail["severity"] is None:
        # Recorded before upgrades were told: its entry reads as it did then, so a rebuild
        # equals the timeline written live at the time.
        del detail["severity"]
    return detail | dict(not_applied or {})


FEED_CHANNEL = "feed_changes"
# Any constant: it names the lock that orders feed changes.
_FEED_LOCK = 7_306_551


async def record_change(connection: Connection, incident_id: UUID) -> None:
    """Append to the feed's change log and wake the live streams."""
    await record_changes(connection, [incident_id])


async def carry_versions_over(
    connection: Connection, retired: str, corrected: Collection[UUID], news: Collection[UUID]
) -> None:
    """After a rebuild's switch, each incident's version as readers go on from it: at
    least the one they saw live (in the `retired` schema's incidents), and past it where
    the rebuild changed what they saw (the `corrected` incidents, and those of the `news`
    whose row differs from live), so a page takes the rebuilt row rather than keep its
    own, while an incident that reads as it did keeps its version, and an action on it
    its place. Each count of changes is brought up to its floor too: a rebuild that
    counted fewer changes than live ends below it, and the next change would leave the
    version readers see where it was, with an action on it still accepted (see 0012)."""
    await connection.execute(
        "UPDATE incidents SET version = version_floor WHERE version < version_floor"
    )
    await connection.execute(
        f"""
        UPDATE incidents n
           SET version = seen.version
          FROM (SELECT o.incident_id,
                       GREATEST(o.version, o.version_floor)
                       + CASE WHEN o.incident_id = ANY($1::uuid[])
                                OR (o.incident_id = ANY($2::uuid[])
                                    AND to_jsonb(o.*) - 'version' - 'updated_at'
                                        IS DISTINCT FROM to_jsonb(r.*) - 'version' - 'updated_at')
                              THEN 1 ELSE 0 END AS version
                  FROM {retired}.incidents o
                  JOIN incidents r ON r.incident_id = o.incident_id) seen
         WHERE seen.incident_id = n.incident_id AND n.version < seen.version
        """,  # noqa: S608 - a schema the rebuild named
        list(corrected),
        list(news),
    )


async def record_changes(connection: Connection, incident_ids: Sequence[UUID]) -> None:
    """Append one change per incident to the feed's change log and wake the live streams.

    The lock is held until the transaction commits, so change ids become visible in id
    order even with several notify instances: a stream never skips an id committed late.
    The streams read every change after their last, so one NOTIFY wakes them for all.
    """
    if not incident_ids:
        return
    await connection.execute("SELECT pg_advisory_xact_lock($1)", _FEED_LOCK)
    await connection.execute(
        "WITH added AS (INSERT INTO feed_changes (incident_id) SELECT unnest($1::uuid[]) "
        "RETURNING change_id) SELECT pg_notify($2, max(change_id)::text) FROM added",
        list(incident_ids),
        FEED_CHANNEL,
    )


async def sync_alert_step(
    connection: Connection, incident_id: UUID, *, changed: bool = False
) -> None:
    """Show the current round's escalation step on the incident, and tell the streams.

    The topics are projected side by side, so an alert may be projected before its
    incident exists: whichever comes second brings the step over. The version stays: it
    marks what a dispatcher decides on, and an alert being sent out must not turn a
    dispatcher's acknowledgement into a conflict.
    """
    moved = await sync_alert_steps(connection, [incident_id])
    if moved or changed:
        await record_change(connection, incident_id)


async def sync_alert_steps(connection: Connection, incident_ids: Sequence[UUID]) -> set[UUID]:
    """Bring the current round's escalation step over to each incident; those it moved."""
    rows = await connection.fetch(
        """
        UPDATE incidents i SET alert_step = a.step
          FROM (SELECT i2.incident_id,
                       (SELECT step FROM alerts a
                         WHERE a.incident_id = i2.incident_id AND a.round = i2.alert_round)
                       AS step
                  FROM incidents i2 WHERE i2.incident_id = ANY($1::uuid[])) a
         WHERE i.incident_id = a.incident_id AND i.alert_step IS DISTINCT FROM a.step
        RETURNING i.incident_id
        """,
        list(incident_ids),
    )
    return {row["incident_id"] for row in rows}


async def refresh(connection: Connection, incident_id: UUID) -> None:
    """Recompute the incident's rule severity and summary from its reports."""
    await lock(connection, [incident_id])
    await refresh_many(connection, {incident_id: 1})
    await sync_alert_step(connection, incident_id, changed=True)


async def refresh_many(connection: Connection, refreshes: Mapping[UUID, int]) -> None:
    """Recompute each incident's rule severity and summary from its reports, as that many
    refreshes one by one would leave it (the feed and the alert step are the caller's).

    The caller holds the incidents already (`lock`): the statement then reads the reports
    as they are once every other member's refresh of these incidents has committed."""
    if refreshes:
        await connection.execute(_REFRESH, list(refreshes), list(refreshes.values()))


# An incident's lock is one of 1,024 in its schema's own space (pg_advisory_xact_lock's
# first key: the schema's hash, so a rebuild's scratch schema never waits on the live
# projection): each held lock takes a slot in PostgreSQL's lock table, whose size is
# `max_locks_per_transaction` times the connections, and a rebuild's batch can touch
# thousands of incidents. Two incidents sharing a lock only wait on each other.
_LOCK_BUCKETS = 1024
# Taken in the order of their keys within one batch's statement.
_LOCK = f"""
    SELECT count(pg_advisory_xact_lock(hashtext(current_schema()), key))
      FROM (SELECT DISTINCT abs(hashtext(id::text) % {_LOCK_BUCKETS}) AS key
              FROM unnest($1::uuid[]) AS id ORDER BY key) AS keys
"""  # noqa: S608 - a constant


async def lock(connection: Connection, incident_ids: Iterable[UUID]) -> None:
    """Hold `incident_ids` until the transaction ends.

    The reports topic is keyed by area, the triage topic by incident, so two members
    (or a member's two partitions) can have one incident in transactions at once. A
    refresh computes the incident from its reports as the statement found them and
    upserts; one that had to wait for the other's row would write back a summary without
    the other's report. Held, the second refresh starts only once the first committed.
    """
    await connection.execute(_LOCK, list(incident_ids))


async def apply_action(connection: Connection, event: IncidentAction) -> None:
    """Apply a dispatcher's action to the incident and put it on the timeline."""
    not_applied = await upsert_action(connection, event)
    await sync_alert_step(connection, event.payload.incident_id, changed=True)
    detail = timeline_detail(event, not_applied=not_applied)
    await timeline(connection, event, event.payload.incident_id, detail)


async def upsert_action(connection: Connection, event: IncidentAction) -> NotApplied:
    """What a dispatcher's action changes on the incident (its version moves by one);
    empty when it is applied, or what the timeline says of why it changed nothing.

    Only the first action in the log on each version is applied: the claim that keeps a
    second request off a version can be given back while a publish that timed out still
    lands. A later one names the one that came first. Nor is an action applied that the
    status it meets no longer allows: two dispatchers can act on two versions at once
    when a report lands between them (one resolves on 5, a triage makes 6, the other
    acknowledges 6), and a resolved incident must not turn acknowledged.
    """
    payload = event.payload
    first = await connection.fetchval(
        "INSERT INTO incident_actions (incident_id, acted_on_version, event_id) "
        "VALUES ($1, $2, $3) ON CONFLICT (incident_id, acted_on_version) "
        "DO UPDATE SET event_id = incident_actions.event_id RETURNING event_id",
        payload.incident_id,
        payload.acted_on_version,
        event.event_id,
    )
    if first != event.event_id:
        return {"superseded_by": str(first)}
    status: IncidentStatus = (
        await connection.fetchval(
            "SELECT status FROM incidents WHERE incident_id = $1", payload.incident_id
        )
        or "open"
    )
    try:
        check_allowed(event, status)
    except ActionRefused as refused:
        # Its version is taken all the same: the version moves past it, as if applied,
        # and its count of changes with it (its timeline entry is a change), or the next
        # refresh would leave the version readers see where the floor put it.
        await connection.execute(
            "INSERT INTO incidents (incident_id, version, version_floor) "
            "VALUES ($1, 1, $2::int + 1) ON CONFLICT (incident_id) DO UPDATE "
            "SET version = incidents.version + 1, "
            "version_floor = GREATEST(incidents.version_floor, EXCLUDED.version_floor)",
            payload.incident_id,
            payload.acted_on_version,
        )
        return {"refused": str(refused), "status_then": status}
    changes: dict[str, Any] = {"status": status_after(event, status)}
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
    # the topics side by side, so the row is created if it is missing. The version ends
    # past the one acted on, however many refreshes this order of topics counted (see
    # migration 0012): the next action is taken on a version no action holds.
    floor = f"${len(changes) + 2}::int + 1"
    await connection.execute(
        f"INSERT INTO incidents (incident_id, version, version_floor, {columns}) "  # noqa: S608
        f"VALUES ($1, 1, {floor}, {placeholders}) ON CONFLICT (incident_id) DO UPDATE SET "
        f"{updates}, version = incidents.version + 1, "
        f"version_floor = GREATEST(incidents.version_floor, {floor}), updated_at = now()",
        payload.incident_id,
        *changes.values(),
        payload.acted_on_version,
    )
    if isinstance(event, AlertReopened):
        # A new round: the incident is alerted and escalated afresh.
        await connection.execute(
            "UPDATE incidents SET alert_round = alert_round + 1 WHERE incident_id = $1",
            payload.incident_id,
        )
    return {}


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


async def timeline_many(
    connection: Connection,
    events: Sequence[ReportTriaged | IncidentAction | AlertingEvent],
    not_applied: Mapping[UUID, NotApplied],
) -> None:
    """Put each event on its incident's timeline (one statement for them all);
    `not_applied` says, by event id, why an action changed nothing."""
    if not events:
        return
    await connection.execute(
        "INSERT INTO incident_timeline (event_id, incident_id, occurred_at, actor, event_type, "
        "detail) SELECT event_id, incident_id, occurred_at, actor, event_type, detail::jsonb "
        "FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::text[], $5::text[], "
        "$6::text[]) AS t(event_id, incident_id, occurred_at, actor, event_type, detail) "
        "ON CONFLICT (event_id) DO NOTHING",
        [event.event_id for event in events],
        [event.payload.incident_id for event in events],
        [event.occurred_at for event in events],
        [event.actor.id for event in events],
        [event.type for event in events],
        [
            json.dumps(
                timeline_detail(event, not_applied=not_applied.get(event.event_id)),
                ensure_ascii=False,
            )
            for event in events
        ],
    )


async def fetch_incident(pool: asyncpg.Pool, incident_id: UUID) -> dict[str, Any] | None:
    """One incident with its reports and timeline, or None when unknown."""
    row = await pool.fetchrow(
        f"SELECT *, {CURRENT_VERSION} AS current_version FROM incidents WHERE incident_id = $1",  # noqa: S608
        incident_id,
    )
    if row is None:
        return None
    incident = dict(row)
    incident["version"] = incident.pop("current_version")
    del incident["version_floor"]
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
        "SELECT report_id, reporter_id, reporter_via, text, category, place, unit, location, "
        "photos, captured_at, received_at, severity, reasons, rule_set_version FROM reports "
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


@dataclass(frozen=True, slots=True)
class ActionClaim:
    """The answer to a claim: "stale" when the incident is at another `version` than the one
    acted on, "taken" when another action on it holds a claim that has not run out (its
    event is being published, or is published and not projected yet)."""

    outcome: Literal["claimed", "stale", "taken"]
    version: int | None


async def claim_action(
    pool: asyncpg.Pool, *, incident_id: UUID, version: int, event_id: UUID, lease: timedelta
) -> ActionClaim:
    """Claim the right to act on `version` of the incident for `lease`, taking over a
    claim whose lease ran out (its request died before it published or gave it back)."""
    async with pool.acquire() as connection, connection.transaction():
        current = await connection.fetchval(
            f"SELECT {CURRENT_VERSION} FROM incidents WHERE incident_id = $1 FOR UPDATE",  # noqa: S608
            incident_id,
        )
        if current != version:
            return ActionClaim("stale", current)
        claimed = await connection.fetchval(
            "INSERT INTO incident_action_claims (incident_id, version, event_id, claimed_until) "
            "VALUES ($1, $2, $3, now() + $4::interval) "
            "ON CONFLICT (incident_id, version) DO UPDATE SET event_id = EXCLUDED.event_id, "
            "claimed_at = now(), claimed_until = EXCLUDED.claimed_until "
            "WHERE incident_action_claims.claimed_until <= now() RETURNING true",
            incident_id,
            version,
            event_id,
            lease,
        )
        return ActionClaim("claimed" if claimed else "taken", current)


async def release_claim(pool: asyncpg.Pool, *, incident_id: UUID, event_id: UUID) -> None:
    """Give a claim back when its event could not be published, so a retry may act."""
    await pool.execute(
        "DELETE FROM incident_action_claims WHERE incident_id = $1 AND event_id = $2",
        incident_id,
        event_id,
    )


@dataclass(frozen=True, slots=True)
class FeedPosition:
    """Where a page of the feed ended: the sort key of its last alert."""

    severity_rank: int | None
    last_received_at: datetime | None
    incident_id: UUID


@dataclass(frozen=True, slots=True)
class FeedFilter:
    """Which alerts a feed shows."""

    statuses: tuple[str, ...] = ()
    min_severity_rank: int | None = None
    unit: str | None = None  # one of the units its reports came from
    opened_from: datetime | None = None
    opened_until: datetime | None = None
    # The units a manager may see (None: every unit, as for the dispatch centre); an
    # incident any of whose reports came from one of them is theirs too.
    within_units: frozenset[str] | None = None


# The feed's sort key; the incidents_feed_by_arrival index is on exactly these expressions.
_FEED_KEY = (
    "COALESCE(severity_rank, 0), COALESCE(last_received_at, '-infinity'::timestamptz), incident_id"
)
_FEED_ORDER = (
    "COALESCE(severity_rank, 0) DESC, COALESCE(last_received_at, '-infinity'::timestamptz) DESC, "
    "incident_id DESC"
)
_FEED_COLUMNS = (
    f"incident_id, {CURRENT_VERSION} AS version, status, severity, severity_rank, opened_at, "
    "last_report_at, last_received_at, report_count, place, unit, units, assignee, "
    "alert_step, headline, photo_count"
)


async def list_alerts(
    pool: asyncpg.Pool, *, where: FeedFilter, after: FeedPosition | None, limit: int
) -> list[dict[str, Any]]:
    """One page of the feed, most severe first, then the latest to hear of something new
    (its latest report's arrival, however long ago its phone captured it); keyset-paged
    after `after`."""
    conditions = ["true"]
    values: list[Any] = []

    def value(item: Any) -> str:
        values.append(item)
        return f"${len(values)}"

    if where.statuses:
        conditions.append(f"status = ANY({value(list(where.statuses))}::text[])")
    if where.min_severity_rank is not None:
        conditions.append(f"severity_rank >= {value(where.min_severity_rank)}")
    # An incident is of every unit its reports came from (the GIN index incidents_units).
    if where.unit:
        conditions.append(f"units @> ARRAY[{value(where.unit)}::text]")
    if where.within_units is not None:
        conditions.append(f"units && {value(sorted(where.within_units))}::text[]")
    if where.opened_from:
        conditions.append(f"opened_at >= {value(where.opened_from)}")
    if where.opened_until:
        conditions.append(f"opened_at < {value(where.opened_until)}")
    if after is not None:
        # Rows strictly after the cursor in the feed's order, its key made as the rows' is:
        # an incident left without reports has no arrival time, and sorts last.
        rank, received, ident = (
            value(after.severity_rank),
            value(after.last_received_at),
            value(after.incident_id),
        )
        cursor_key = (
            f"COALESCE({rank}::smallint, 0), COALESCE({received}::timestamptz, '-infinity'), "
            f"{ident}"
        )
        conditions.append(f"({_FEED_KEY}) < ({cursor_key})")
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
