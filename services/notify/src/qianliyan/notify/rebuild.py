"""Rebuilding the read models from the log, and checking the live ones against a rebuild.

Kafka is the source of truth: projecting every topic from its start into an empty
schema must give exactly the live read models. `check` does that into a scratch
schema, compares row by row, says what differs, and drops the scratch schema.
Delivery events are projected, never performed: a rebuild pages nobody.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

from qianliyan.notify import migrations
from qianliyan.notify.projections.events import project_batch
from qianliyan.shared.kafka import decode_records, history
from qianliyan.shared.settings import KafkaSettings

# Each read model, and the columns that record when or how often a row was written rather
# than what it says (the order of topics differs between live and a rebuild).
READ_MODELS: dict[str, tuple[str, ...]] = {
    "reports": ("updated_at",),
    "incidents": ("version", "updated_at"),
    "incident_timeline": (),
    "alerts": (),
    "alert_deliveries": (),
    "projected_events": ("projected_at",),
}

Progress = Callable[[int, int], None]


async def project_history(kafka: KafkaSettings, pool: asyncpg.Pool, progress: Progress) -> int:
    """Project every event of the notify topics into `pool`'s database; the number projected.

    Records that cannot be read were dead-lettered when they were live; here they are
    skipped, as the live projection skipped them.
    """
    projected = 0
    topics = (kafka.reports_topic, kafka.triage_topic, kafka.alerts_topic)
    async for batch in history(kafka.bootstrap_servers, *topics):
        events, _dead = decode_records(batch.records)
        if events:
            await project_batch(pool, [event for _, event in events])
            projected += len(events)
        progress(batch.done, batch.total)
    return projected


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


async def check(
    kafka: KafkaSettings, live_dsn: str, progress: Progress, *, keep: bool = False
) -> CheckResult:
    """Rebuild into a scratch schema, compare it with the live read models, then drop it.

    Events that arrive during the check are not in the rebuild: run it on a quiet system,
    or read a difference in the newest rows with that in mind.
    """
    scratch = f"check_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(live_dsn)
    try:
        await admin.execute(f"CREATE SCHEMA {scratch}")
        try:
            scratch_dsn = in_schema(live_dsn, scratch)
            await asyncio.to_thread(migrations.upgrade, scratch_dsn)
            live = await asyncpg.create_pool(live_dsn, min_size=1, max_size=2)
            rebuilt = await asyncpg.create_pool(scratch_dsn, min_size=1, max_size=2)
            assert live is not None and rebuilt is not None
            try:
                events = await project_history(kafka, rebuilt, progress)
                differences = await compare(live, rebuilt)
                rows = {
                    table: int(await live.fetchval(f"SELECT count(*) FROM {table}"))  # noqa: S608
                    for table in READ_MODELS
                }
            finally:
                await live.close()
                await rebuilt.close()
        finally:
            if not keep:
                await admin.execute(f"DROP SCHEMA IF EXISTS {scratch} CASCADE")
    finally:
        await admin.close()
    return CheckResult(events=events, rows=rows, differences=differences)
