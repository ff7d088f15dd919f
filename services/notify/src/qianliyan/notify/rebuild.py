"""Rebuilding the read models from the log, and checking the live ones against a rebuild.

Kafka is the source of truth: projecting every topic from its start into an empty
schema must give exactly the live read models. `check` does that into a scratch
schema, compares row by row, says what differs, and drops the scratch schema.
Delivery events are projected, never performed: a rebuild pages nobody.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit
from uuid import UUID

import asyncpg
from aiokafka import TopicPartition

from qianliyan.notify import migrations
from qianliyan.notify.projections.events import project_batch
from qianliyan.notify.projections.incidents import (
    FeedFilter,
    carry_versions_over,
    fetch_incident,
    list_alerts,
    record_changes,
)
from qianliyan.shared.kafka import HistoryBatch, decode_records, history
from qianliyan.shared.progress import ProgressCallback
from qianliyan.shared.settings import KafkaSettings

# Each read model, and the columns that record when or how often a row was written rather
# than what it says (the order of topics differs between live and a rebuild).
READ_MODELS: dict[str, tuple[str, ...]] = {
    "reports": ("updated_at",),
    "incidents": ("version", "updated_at"),
    "incident_timeline": (),
    "incident_actions": (),
    "alerts": (),
    "alert_deliveries": (),
    "projected_events": ("projected_at",),
}

Progress = ProgressCallback


async def project_history(
    kafka: KafkaSettings,
    pool: asyncpg.Pool,
    progress: Progress,
    *,
    after: dict[TopicPartition, int] | None = None,
    until: datetime | None = None,
) -> tuple[int, dict[TopicPartition, int]]:
    """Project the events of the notify topics (all, or those past `after`, or those in
    the log by `until`) into `pool`'s schema; the number projected, and the offsets where
    the reading stopped.

    Records that cannot be read were dead-lettered when they were live; here they are
    skipped, as the live projection skipped them.
    """
    projected = 0
    ends: dict[TopicPartition, int] = dict(after or {})
    topics = (kafka.reports_topic, kafka.triage_topic, kafka.alerts_topic)
    cutoff_ms = int(until.timestamp() * 1000) if until is not None else None
    # PostgreSQL works in a process of its own: while it writes one batch, the next is
    # fetched and decoded here, rather than each waiting for the other. Batches still
    # commit in order, one at a time.
    writing: asyncio.Task[None] | None = None
    written: tuple[int, HistoryBatch] | None = None

    async def finish_writing() -> None:
        nonlocal projected, ends
        if writing is not None:
            await writing
        if written is not None:
            count, batch = written
            projected, ends = projected + count, batch.ends
            progress(batch.done, batch.total)

    try:
        async for batch in history(kafka.bootstrap_servers, *topics, after=after):
            records = batch.records
            if cutoff_ms is not None:
                records = [r for r in records if r.timestamp <= cutoff_ms]
            events = [event for _, event in decode_records(records)[0]]
            await finish_writing()
            writing = asyncio.create_task(project_batch(pool, events)) if events else None
            written = (len(events), batch)
        await finish_writing()
    finally:
        if writing is not None and not writing.done():
            writing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writing
    return projected, ends


@dataclass
class TableDifference:
    """Rows of one read model found on one side only (each as its JSON text)."""

    only_live: list[str] = field(default_factory=list)
    only_rebuilt: list[str] = field(default_factory=list)


@dataclass
class CheckResult:
    """What a rebuild into a scratch schema found."""

    events: int
    rows: dict[str, int]
    differences: dict[str, TableDifference]

    @property
    def identical(self) -> bool:
        return not self.differences


async def rows_of(pool: asyncpg.Pool, table: str, excluded: tuple[str, ...]) -> Counter[str]:
    """The table's rows as JSON texts (without `excluded` columns), counted."""
    rows = await pool.fetch(f"SELECT to_jsonb(t.*) AS row FROM {table} t")  # noqa: S608 - fixed names
    found: Counter[str] = Counter()
    for row in rows:
        document: dict[str, Any] = json.loads(row["row"])
        for column in excluded:
            document.pop(column, None)
        found[json.dumps(document, sort_keys=True, ensure_ascii=False)] += 1
    return found


async def compare(live: asyncpg.Pool, rebuilt: asyncpg.Pool) -> dict[str, TableDifference]:
    """Every read model compared row by row; only the tables that differ are named."""
    differences: dict[str, TableDifference] = {}
    for table, excluded in READ_MODELS.items():
        ours, theirs = await rows_of(live, table, excluded), await rows_of(rebuilt, table, excluded)
        if ours != theirs:
            differences[table] = TableDifference(
                only_live=sorted((ours - theirs).elements()),
                only_rebuilt=sorted((theirs - ours).elements()),
            )
    return differences


def in_schema(dsn: str, schema: str) -> str:
    """The same database, with `schema` first on the search path (asyncpg and psycopg)."""
    parts = urlsplit(dsn)
    option = f"options={quote(f'-csearch_path={schema}')}"
    return urlunsplit(parts._replace(query=f"{parts.query}&{option}" if parts.query else option))


@asynccontextmanager
async def scratch_schema(live_dsn: str, prefix: str, *, keep: bool = False) -> AsyncIterator[str]:
    """A fresh schema with notify's tables, dropped afterwards; yields its DSN."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(live_dsn)
    try:
        await admin.execute(f"CREATE SCHEMA {name}")
        try:
            dsn = in_schema(live_dsn, name)
            await asyncio.to_thread(migrations.upgrade, dsn)
            yield dsn
        finally:
            if not keep:
                await admin.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
    finally:
        await admin.close()


async def state_as_of(
    kafka: KafkaSettings,
    live_dsn: str,
    moment: datetime,
    progress: Progress,
    *,
    incident_id: UUID | None = None,
    limit: int = 20,
) -> dict[str, Any]:
    """An incident, or the top of the feed, as it stood at `moment`, answered from the log.

    The events in the log by then are projected into a scratch schema and read back.
    """
    async with scratch_schema(live_dsn, "asof") as dsn:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        assert pool is not None
        try:
            events, _ = await project_history(kafka, pool, progress, until=moment)
            if incident_id is not None:
                return {"events": events, "incident": await fetch_incident(pool, incident_id)}
            feed = await list_alerts(pool, where=FeedFilter(), after=None, limit=limit)
            return {"events": events, "alerts": feed}
        finally:
            await pool.close()


async def check(
    kafka: KafkaSettings, live_dsn: str, progress: Progress, *, keep: bool = False
) -> CheckResult:
    """Rebuild into a scratch schema, compare it with the live read models, then drop it.

    Events that arrive during the check are not in the rebuild: run it on a quiet system,
    or read a difference in the newest rows with that in mind.
    """
    async with scratch_schema(live_dsn, "check", keep=keep) as scratch_dsn:
        live = await asyncpg.create_pool(live_dsn, min_size=1, max_size=2)
        rebuilt = await asyncpg.create_pool(scratch_dsn, min_size=1, max_size=2)
        assert live is not None and rebuilt is not None
        try:
            events, _ = await project_history(kafka, rebuilt, progress)
            differences = await compare(live, rebuilt)
            rows = {
                table: int(await live.fetchval(f"SELECT count(*) FROM {table}"))  # noqa: S608
                for table in READ_MODELS
            }
        finally:
            await live.close()
            await rebuilt.close()
    return CheckResult(events=events, rows=rows, differences=differences)


# Held for a whole rebuild: one at a time, and a killed one's leftovers are safe to drop.
_REBUILD_LOCK = 7_306_552


@dataclass
class RebuildResult:
    """What a rebuild did: events projected from the history, those that arrived meanwhile
    (projected before the switch committed), and where the old read models went."""

    events: int
    caught_up: int
    retired_schema: str | None


async def rebuild(
    kafka: KafkaSettings,
    live_dsn: str,
    progress: Progress,
    *,
    keep_retired: bool = True,
    before_switch: Callable[[], Awaitable[None]] | None = None,
) -> RebuildResult:
    """Rebuild every read model from the topics into a fresh schema, then switch over.

    The live read models keep serving meanwhile. The switch moves the live tables out to
    a `retired_…` schema and the rebuilt ones in, in one transaction: readers see the old
    or the new, never a mix. What arrived while the history was projected goes into the
    new tables before the switch, and what arrived after that, inside it, while the live
    projection waits: when the switch commits, the new tables hold every event the old
    ones did, so there is nothing left to do after it that a failure could lose (the live
    projection has committed its offsets for those events). A rebuild that fails or is
    killed before the switch commits leaves the live schema untouched; its scratch schema
    is dropped then, or by the next rebuild.
    """
    admin = await asyncpg.connect(live_dsn)
    try:
        if not await admin.fetchval("SELECT pg_try_advisory_lock($1)", _REBUILD_LOCK):
            raise RuntimeError("another rebuild is running")
        for (leftover,) in await admin.fetch(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'rebuild\\_%'"
        ):
            await admin.execute(f"DROP SCHEMA {leftover} CASCADE")  # a killed rebuild's
        scratch = f"rebuild_{uuid.uuid4().hex[:12]}"
        await admin.execute(f"CREATE SCHEMA {scratch}")
        try:
            scratch_dsn = in_schema(live_dsn, scratch)
            await asyncio.to_thread(migrations.upgrade, scratch_dsn)
            await _same_schema_version(admin, scratch)
            rebuilt = await asyncpg.create_pool(scratch_dsn, min_size=1, max_size=2)
            assert rebuilt is not None
            try:
                events, snapshot = await project_history(kafka, rebuilt, progress)
                # The incidents from here on are the live streams' news (`_switch`).
                news_after = await _last_change(admin, scratch)
                # What arrived meanwhile, still without holding anyone up.
                caught_up, snapshot = await project_history(
                    kafka, rebuilt, progress, after=snapshot
                )
                corrected = await _differing(admin, scratch)
                if before_switch is not None:
                    await before_switch()
                retired = f"retired_{scratch.removeprefix('rebuild_')}"

                async def last_moment() -> int:
                    projected, _ = await project_history(kafka, rebuilt, progress, after=snapshot)
                    return projected

                caught_up += await _switch(
                    admin, scratch, retired, last_moment, news_after, corrected
                )
            finally:
                await rebuilt.close()
        finally:
            await admin.execute(f"DROP SCHEMA IF EXISTS {scratch} CASCADE")
        if not keep_retired:
            await admin.execute(f"DROP SCHEMA {retired} CASCADE")
        return RebuildResult(events, caught_up, retired if keep_retired else None)
    finally:
        await admin.close()  # the session lock goes with it


async def _same_schema_version(admin: asyncpg.Connection, scratch: str) -> None:
    table = migrations.VERSION_TABLE
    live = await admin.fetchval(f"SELECT version_num FROM public.{table}")  # noqa: S608
    new = await admin.fetchval(f"SELECT version_num FROM {scratch}.{table}")  # noqa: S608
    if live != new:
        raise RuntimeError(
            f"the live schema is at migration {live}, the code at {new}: migrate first"
        )


async def _last_change(admin: asyncpg.Connection, scratch: str) -> int:
    latest = await admin.fetchval(f"SELECT max(change_id) FROM {scratch}.feed_changes")  # noqa: S608
    return int(latest or 0)


async def _switch(
    admin: asyncpg.Connection,
    scratch: str,
    retired: str,
    catch_up: Callable[[], Awaitable[int]],
    news_after: int,
    corrected: set[UUID],
) -> int:
    """Move the live read models out and the rebuilt ones in, atomically, once `catch_up`
    has projected into the rebuilt ones the last events the live projection committed;
    the number it projected. The live streams are told of the incidents the catch-ups
    changed (their changes after `news_after` in the scratch schema's feed): the live
    projection, finding those events projected, tells them nothing. They are told too of
    the `corrected` incidents (`_differing`)."""
    # projected_events first: the live projection's first write is there, so it either
    # finishes before the switch or waits for all of it; neither can deadlock the other.
    order = sorted(READ_MODELS, key=lambda table: table != "projected_events")
    tables = ", ".join(f"public.{t}" for t in order)
    async with admin.transaction():
        # The live projection waits here for a moment, then carries on in the new tables;
        # readers wait too, so a catch-up that takes too long gives the switch up.
        await admin.execute(f"LOCK TABLE {tables} IN ACCESS EXCLUSIVE MODE")
        try:
            async with asyncio.timeout(_SWITCH_CATCH_UP_S):
                caught_up = await catch_up()
        except TimeoutError:
            raise RuntimeError(
                f"the last events did not reach the rebuilt read models within "
                f"{_SWITCH_CATCH_UP_S:g} s of the switch; the live ones are untouched, "
                "try again (is Kafka slow?)"
            ) from None
        await admin.execute(f"CREATE SCHEMA {retired}")
        for table in READ_MODELS:
            await admin.execute(f"ALTER TABLE public.{table} SET SCHEMA {retired}")
            await admin.execute(f"ALTER TABLE {scratch}.{table} SET SCHEMA public")
        news = await admin.fetch(
            f"SELECT DISTINCT incident_id FROM {scratch}.feed_changes WHERE change_id > $1 "  # noqa: S608
            "ORDER BY incident_id",
            news_after,
        )
        touched = {row["incident_id"] for row in news}
        await carry_versions_over(admin, retired, corrected, touched)
        await record_changes(admin, sorted(touched | corrected))
    return caught_up


async def _differing(admin: asyncpg.Connection, scratch: str) -> set[UUID]:
    """The incidents whose rows differ, in any read model, between the live tables and
    the rebuilt ones: what `check` would list, and some more where live is ahead.

    Told to the live streams at the switch, so a dispatcher's open feed learns of what
    the rebuild corrected then, not at the incident's next change. Compared before the
    switch, not within it, where readers wait while the whole of every table is read.
    What changes after the comparison is the switch's news already (`news_after`); one
    told that needed no telling is read again, the same."""
    found: set[UUID] = set()
    for table, excluded in READ_MODELS.items():
        if table == "projected_events":
            continue  # of events, not incidents
        row = "to_jsonb(t.*)" + "".join(f" - '{column}'" for column in excluded)
        rows = await admin.fetch(
            f"""
            SELECT DISTINCT incident_id FROM (
                (SELECT incident_id, {row} FROM public.{table} t
                 EXCEPT ALL SELECT incident_id, {row} FROM {scratch}.{table} t)
                UNION ALL
                (SELECT incident_id, {row} FROM {scratch}.{table} t
                 EXCEPT ALL SELECT incident_id, {row} FROM public.{table} t)
            ) differing WHERE incident_id IS NOT NULL
            """  # noqa: S608 - fixed names
        )
        found.update(r["incident_id"] for r in rows)
    return found


# How long readers and the live projection may wait on the switch's own catch-up.
_SWITCH_CATCH_UP_S = 30.0
