"""Throughput of triage and notify with one, two and three instances in one consumer group.

    uv run python -m bench.scale_out [--reports 3000] [--json bench-scale-out.json]

It runs a stack of its own (its own ports and a temporary data folder),
loads ReportSubmitted events straight into Kafka, and for each instance count:

- triage: k instances of a fresh consumer group start and wait; the events are produced;
  the figure is events/s from the first produce until the group has committed them all;
- notify: k instances of a fresh consumer group project every topic from the start into a
  fresh schema; the figure is events/s from the group's first commit until it is caught up.

On a two-core machine expect little gain from more instances: the point here is that the
groups share the work correctly, and the figure says what a bigger machine would give.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from qianliyan.notify import migrations as notify_migrations
from qianliyan.notify.rebuild import in_schema
from qianliyan.shared.events import ReportSubmitted, ReportSubmittedPayload, encode
from qianliyan.shared.events.envelope import Actor, ActorKind
from qianliyan.shared.events.reports import correlation_key
from qianliyan.shared.kafka import create_producer, group_lag
from qianliyan.shared.settings import KafkaSettings
from qianliyan.stack.config import StackConfig
from qianliyan.stack.infra import Infra, Service
from qianliyan.stack.init import init_stack

# Below the ephemeral range (32768 and up), where a client's own port could take one, and
# clear of the test suite's ports and of a dev stack's.
BENCH_PORTS = {
    "kafka_port": 29592,
    "kafka_controller_port": 29593,
    "minio_port": 29500,
    "minio_console_port": 29501,
    "postgres_port": 25932,
    "ingest_port": 28581,
    "triage_port": 28582,
    "notify_port": 28583,
}
# Bureaus of one national cluster, each an area of its own: triage can spread only areas.
BUREAUS = 18
TEXTS = ["道岔故障", "线路异物", "候车室拥挤", "信号故障", "站台积水", "配电箱冒烟", "路灯不亮"]
NO_ROUTES = 'version: "bench"\nrecipients: []\nroutes: []\n'


def bench_config(data_dir: Path) -> StackConfig:
    routing = data_dir / "routing.yaml"
    routing.write_text(NO_ROUTES, encoding="utf-8")  # projection only: nobody is paged
    return StackConfig(data_dir=data_dir, notify_routing_file=routing, **BENCH_PORTS)  # type: ignore[arg-type]


async def produce_reports(config: StackConfig, count: int) -> None:
    """`count` ReportSubmitted events, spread over many places (so over every partition)."""
    kafka = KafkaSettings(bootstrap_servers=config.kafka_bootstrap)
    producer = create_producer(kafka, client_id="bench-loader")
    await producer.start()
    try:
        now = datetime.now(UTC)
        sends = []
        for i in range(count):
            report_id = uuid.uuid4()
            place, unit = f"基准点{i % 400}", f"基准站{i % 60}"
            payload = ReportSubmittedPayload(
                report_id=report_id,
                text=f"{TEXTS[i % len(TEXTS)]} #{i}",
                place=place,
                unit=unit,
                captured_at=now,
                received_at=now,
            )
            key = correlation_key(f"基准路局{i % BUREAUS}")
            event = ReportSubmitted.first(
                key=key, actor=Actor(kind=ActorKind.REPORTER, id="bench"), payload=payload
            )
            sends.append(await producer.send("incidents.reports", encode(event), key=key.encode()))
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


async def lag(config: StackConfig, group: str, topics: Sequence[str]) -> tuple[int, int]:
    """(records the group has committed, records it has still to go) over `topics`."""
    partitions = await group_lag(config.kafka_bootstrap, group, *topics)
    return sum(p.committed for p in partitions), sum(p.behind for p in partitions)


def side_by_side(actions: Sequence[Callable[[], object]]) -> None:
    with ThreadPoolExecutor(max_workers=len(actions)) as pool:
        for future in [pool.submit(action) for action in actions]:
            future.result()


async def triage_run(config: StackConfig, instances: int, reports: int) -> float:
    group = f"bench-triage-{instances}-{uuid.uuid4().hex[:6]}"
    services = [
        Service(config, "triage", instance=i, env={"TRIAGE_CONSUMER_GROUP": group})
        for i in range(instances)
    ]
    side_by_side([s.start for s in services])
    try:
        # Wait for the group to settle to its members before any event arrives.
        await asyncio.sleep(8)
        before, _ = await lag(config, group, ["incidents.reports"])
        started = time.perf_counter()
        await produce_reports(config, reports)
        while True:
            done, _ = await lag(config, group, ["incidents.reports"])
            if done - before >= reports:
                break
            await asyncio.sleep(0.2)
        return reports / (time.perf_counter() - started)
    finally:
        side_by_side([s.stop for s in services])


async def notify_run(config: StackConfig, instances: int) -> tuple[float, int]:
    schema = f"bench_notify_{instances}_{uuid.uuid4().hex[:6]}"
    admin = await asyncpg.connect(config.postgres_dsn)
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
    finally:
        await admin.close()
    dsn = in_schema(config.postgres_dsn, schema)  # fresh read models for each run
    notify_migrations.upgrade(dsn)
    group = f"bench-notify-{instances}-{uuid.uuid4().hex[:6]}"
    topics = ["incidents.reports", "incidents.triage", "incidents.alerts"]
    # The read models are the run's own; who may sign in, and what is revoked, stay the
    # site's, in the public schema behind them.
    service_dsn = in_schema(config.postgres_dsn, f"{schema},public")
    env = {"NOTIFY_CONSUMER_GROUP": group, "NOTIFY_POSTGRES__DSN": service_dsn}
    services = [Service(config, "notify", instance=i, env=env) for i in range(instances)]
    side_by_side([s.start for s in services])
    try:
        first_commit: float | None = None
        while True:
            done, remaining = await lag(config, group, topics)
            if done and first_commit is None:
                first_commit, done_at_first = time.perf_counter(), done
            if first_commit is not None and remaining == 0:
                elapsed = time.perf_counter() - first_commit
                return (done - done_at_first) / elapsed, done
            await asyncio.sleep(0.2)
    finally:
        side_by_side([s.stop for s in services])


async def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reports", type=int, default=3000, help="events per triage run")
    parser.add_argument("--json", type=Path, default=Path("bench-scale-out.json"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="qly-bench-") as folder:
        config = bench_config(Path(folder))
        infra = Infra(config)
        infra.provision()
        infra.start()
        try:
            init_stack(config)
            results: dict[str, dict[int, float]] = {
                "triage_events_per_s": {},
                "notify_events_per_s": {},
            }
            for k in (1, 2, 3):
                rate = await triage_run(config, k, args.reports)
                results["triage_events_per_s"][k] = rate
                print(f"triage  x{k}: {rate:8.1f} reports/s", flush=True)
            for k in (1, 2, 3):
                rate, total = await notify_run(config, k)
                results["notify_events_per_s"][k] = rate
                print(f"notify  x{k}: {rate:8.1f} events/s ({total} events projected)", flush=True)
        finally:
            infra.stop()
    for name, figures in results.items():
        base = figures[1]
        print(f"{name}: " + ", ".join(f"x{k} = {v / base:.2f} of one" for k, v in figures.items()))
    args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
