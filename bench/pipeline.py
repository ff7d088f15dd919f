"""Our side of the triage and replay figures: the real triage service and notify's rebuild.

Both run over history made here and produced straight into Kafka: reports captured a
minute apart (1,440 a day, a busy section), so that triage's grouping, which remembers
48 hours of reports per partition, holds what it would hold in the field rather than
every report of the run at once.

Triage runs as its own process in a fresh consumer group, reading a topic of its own
(`bench.triage.in`) and writing to one nobody reads, so no other consumer competes for
the two cores; it is timed by its group's commits, which are the ends of its
transactions. The replay calls notify's own `project_history` into an empty schema,
exactly what `qianliyan-notify check` and a rebuild do.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from bench.raw import BENCH_ACTOR, BENCH_AREA, StreamResult
from qianliyan.notify import migrations as notify_migrations
from qianliyan.notify.rebuild import in_schema, project_history
from qianliyan.shared.events import (
    Event,
    GeoPoint,
    ReportSubmitted,
    ReportSubmittedPayload,
    encode,
)
from qianliyan.shared.events.codec import headers_for
from qianliyan.shared.events.reports import correlation_key
from qianliyan.shared.kafka import create_producer, group_lag
from qianliyan.shared.settings import KafkaSettings
from qianliyan.stack.config import StackConfig
from qianliyan.stack.infra import Service
from qianliyan.triage.domain.rules import parse_rules
from qianliyan.triage.domain.triage import triage_report
from qianliyan.triage.rulebook import DEFAULT_RULES

NOTIFY_TOPICS = ("incidents.reports", "incidents.triage", "incidents.alerts")
TRIAGE_IN = "bench.triage.in"
TRIAGE_OUT = "bench.triage.out"
CAPTURE_SPACING = timedelta(minutes=1)
TEXTS = ["道岔故障", "线路异物", "候车室拥挤", "信号故障", "站台积水", "配电箱冒烟", "路灯不亮"]
# Fine enough that the first and last commit are placed within a quarter second, coarse
# enough that asking Kafka does not take a noticeable share of the two cores.
LAG_POLL_S = 0.25


def history(count: int) -> Iterator[ReportSubmitted]:
    """`count` reports over 64 units and 400 places, captured a minute apart up to now,
    each where its phone was: within a few hundred metres of its unit's station, the
    stations half a degree apart over a bureau's eight by five degrees, so grouping
    compares positions as it does live. A unit reports again after 64 minutes, past the
    grouping window, so every report opens its incident, as before positions were given."""
    first = datetime.now(UTC) - count * CAPTURE_SPACING
    for i in range(count):
        report_id = uuid.uuid4()
        station, spot = i % 64, i % 400
        place, unit = f"基准点{spot}", f"基准站{station}"
        captured = first + i * CAPTURE_SPACING
        yield ReportSubmitted.first(
            key=correlation_key(BENCH_AREA),
            actor=BENCH_ACTOR,
            payload=ReportSubmittedPayload(
                report_id=report_id,
                text=f"{TEXTS[i % len(TEXTS)]} #{i}",
                place=place,
                unit=unit,
                location=GeoPoint(
                    lat=36 + station // 8 * 0.5 + (spot % 7 - 3) * 0.0008,
                    lon=113 + station % 8 * 0.5 + (spot // 7 % 7 - 3) * 0.0008,
                ),
                captured_at=captured,
                received_at=captured,
            ),
        )


async def produce_history(config: StackConfig, count: int, *, topic: str, pairs: bool) -> None:
    """Produce `count` reports into `topic`; with `pairs`, each report's triage decision too.

    The decisions are the real rules' (severity and reasons) with every report its own
    incident: grouping is triage's work, measured on its own.
    """
    rules = parse_rules(DEFAULT_RULES.read_text(encoding="utf-8"))
    producer = create_producer(
        KafkaSettings(bootstrap_servers=config.kafka_bootstrap), client_id="bench-history"
    )
    await producer.start()
    try:
        sends = []
        for report in history(count):
            events: list[tuple[str, Event]] = [(topic, report)]
            if pairs:
                events.append(("incidents.triage", triage_report(report, rules)))
            for to, event in events:
                sends.append(
                    await producer.send(
                        to, encode(event), key=event.key.encode(), headers=headers_for(event)
                    )
                )
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


def triage_service(config: StackConfig, python: str = sys.executable) -> tuple[Service, str]:
    """A triage process from `bench.triage.in` to `bench.triage.out` in a fresh consumer
    group (its name returned too), whose transactional ids are its own; run by `python`
    (another checkout's, to compare two versions)."""
    group = f"bench-triage-{uuid.uuid4().hex[:8]}"
    env = {
        "TRIAGE_CONSUMER_GROUP": group,
        "TRIAGE_KAFKA__REPORTS_TOPIC": TRIAGE_IN,
        "TRIAGE_KAFKA__TRIAGE_TOPIC": TRIAGE_OUT,
    }
    return Service(config, "triage", env=env, python=python), group


async def triage_throughput(config: StackConfig, group: str) -> StreamResult:
    """Events/s of a started triage process in `group` through `bench.triage.in`.

    Timed from the group's first commit to its last, counting the events after the
    first, so process start-up and joining the group are left out (as for the raw loop).
    """
    first_commit, done_at_first = 0.0, 0
    while True:
        partitions = await group_lag(config.kafka_bootstrap, group, TRIAGE_IN)
        done, behind = sum(p.committed for p in partitions), sum(p.behind for p in partitions)
        now = time.perf_counter()
        if done and not first_commit:
            first_commit, done_at_first = now, done
        if first_commit and behind == 0:
            return StreamResult(done - done_at_first, now - first_commit)
        await asyncio.sleep(LAG_POLL_S)


@dataclass
class ReplayResult:
    """A rebuild of the read models: events projected and seconds taken."""

    events: int
    elapsed_s: float

    @property
    def rate(self) -> float:
        """Events projected per second."""
        return self.events / self.elapsed_s if self.elapsed_s > 0 else 0.0


async def fresh_schema(config: StackConfig, tag: str) -> str:
    """An empty schema with notify's read models migrated into it; its DSN."""
    schema = f"bench_replay_{tag}_{uuid.uuid4().hex[:6]}"
    admin = await asyncpg.connect(config.postgres_dsn)
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
    finally:
        await admin.close()
    dsn = in_schema(config.postgres_dsn, schema)
    await asyncio.to_thread(notify_migrations.upgrade, dsn)
    return dsn


async def replay(config: StackConfig, dsn: str) -> ReplayResult:
    """Project every event of notify's topics into the (empty) read models at `dsn`."""
    kafka = KafkaSettings(bootstrap_servers=config.kafka_bootstrap)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    assert pool is not None
    try:
        began = time.perf_counter()
        events, _ends = await project_history(kafka, pool, lambda _done, _total: None)
        return ReplayResult(events, time.perf_counter() - began)
    finally:
        await pool.close()
