"""The benchmark: our figures against the raw cost of the same work, on one machine, in one run.

    uv run python -m bench.run [--quick] [--json bench-results.json]

It starts a stack of its own (Kafka, MinIO, PostgreSQL and the three services on ports
of its own, data in a temporary folder) and measures, each beside its raw baseline done
by a plain asyncio script in the same run:

1. ingest: accepted reports/s with one ~500 KB JPEG and with five, at a fixed
   concurrency; raw is the MinIO puts of the same bytes plus an acks=all produce of the
   same event. Both paths are warmed up first (untimed), so the fresh broker's JIT
   compiling is charged to neither; ours until the broker's CPU per report settles.
   The peak RSS of every service is read after this load (VmHWM).
2. end-to-end: critical reports at a steady rate, each timed from ingest's 202 to its
   alert on the SSE feed (p50, p99, any missing); raw is three Kafka hops
   (produce → consume+produce → consume+produce → consume) at the same rate.
3. a peer: the same alert burst into our ingest-to-feed path and into Alerta (its own
   database on the same PostgreSQL), alerts/s and latency side by side.
4. triage: the real service, in a fresh group, through 20,000 reports of history (a
   transaction per partition of each fetch of up to 2,000 records); raw is a plain
   non-transactional consume-produce-commit loop over the same records. Each runs twice,
   alternating, and the better run of each is compared (the raw loop's rate swings).
5. replay: notify's `project_history` rebuilding the read models from all topics
   (`--replay-events`, 100,000 by default); raw is a plain consume of the same topics.

Ingest is measured with triage and notify running, as deployed: they share the cores
with it, as they would. After each stage a slice of the same load is sampled with
py-spy (after, so the profiler never slows a measured figure); the stage furthest from
its goal has its profile printed in full. Everything is written to `--json`, py-spy's
stacks to bench/results/profiles/. `--quick` runs small sizes for development (about
three minutes); the default sizes are meant to finish within fifteen minutes on a
quiet two-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

from bench import alerta_peer, load, pipeline, raw
from bench.measure import LoadResult, percentile, process_stat
from bench.photos import Photo, photo_set
from bench.profiling import Profile, record
from bench.report import Figure, table
from bench.scale_out import side_by_side
from qianliyan.shared.collector import settle_long_lived_objects
from qianliyan.shared.events import encode
from qianliyan.stack.config import SERVICE_NAMES, StackConfig
from qianliyan.stack.infra import Infra, Service
from qianliyan.stack.init import init_stack
from qianliyan.stack.kafka import Kafka

# The bench sends from one address as fast as it can: far above people's limits.
BENCH_SERVICE_SETTINGS = {
    "INGEST_ACCESS__SUBMIT_LIMIT": "1000000/minute",
    "INGEST_ACCESS__SUBMIT_ADDRESS_LIMIT": "1000000/minute",
}
# Below the ephemeral range (32768 and up), clear of a dev stack, of the test suite (and
# its offsets of 100 and 200) and of bench/scale_out.py.
BENCH_PORTS = {
    "kafka_port": 27092,
    "kafka_controller_port": 27093,
    "minio_port": 27000,
    "minio_console_port": 27001,
    "postgres_port": 26432,
    "ingest_port": 27081,
    "triage_port": 27082,
    "notify_port": 27083,
}
ALERTA_PORT = 27090
MEMORY_LIMIT_MB = 200.0
# py-spy's collapsed stacks, kept for a flame graph (git-ignored with bench/results/).
PROFILES_DIR = Path(__file__).resolve().parent / "results" / "profiles"


# The broker has settled once a warm-up round costs it at least this share of the last
# (falls by less than a tenth).
WARM_UP_SETTLED = 0.9


@dataclass(frozen=True)
class Sizes:
    """How much of each load; the defaults are the issue's, `--quick` is for development."""

    concurrency: int = 8
    # Reports through each ingest path before anything is timed: a fresh broker compiles
    # its hot paths (the JIT) over the first minute or so, which would otherwise be
    # charged to whichever path runs first. Ours takes at least `warm_up_min_rounds` of
    # these, and more, up to `warm_up_rounds`, while the broker's CPU per report still
    # falls by a tenth or more: its transactions and consumer groups are hot paths the
    # raw path never takes, and they settle later (here, 29, 20, 17, then 9 to 12 ms a
    # report in rounds of 300).
    warm_up_reports: int = 400
    warm_up_min_rounds: int = 3
    warm_up_rounds: int = 5
    ingest_one_photo: int = 400
    ingest_five_photos: int = 150
    e2e_rate: float = 10.0
    e2e_seconds: float = 60.0
    peer_alerts: int = 500
    triage_reports: int = 20_000
    replay_events: int = 100_000
    profile_seconds: float = 15.0


QUICK = Sizes(
    warm_up_reports=40,
    warm_up_min_rounds=1,
    warm_up_rounds=1,
    ingest_one_photo=40,
    ingest_five_photos=12,
    e2e_rate=5.0,
    e2e_seconds=15.0,
    peer_alerts=100,
    triage_reports=3_000,
    replay_events=10_000,
    profile_seconds=6.0,
)


def bench_config(data_dir: Path) -> StackConfig:
    """The bench's own stack, with the packaged rules and routing (whose recipients have
    no channels, so alerts are raised and recorded but nobody is paged)."""
    return StackConfig(
        data_dir=data_dir,
        service_settings=BENCH_SERVICE_SETTINGS,
        **BENCH_PORTS,  # type: ignore[arg-type]
    )


@asynccontextmanager
async def bench_stack(prefix: str) -> AsyncIterator[tuple[StackConfig, Infra]]:
    """Kafka, MinIO and PostgreSQL of the bench's own, with data in a temporary folder;
    stopped and the folder removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=prefix) as folder:
        config = bench_config(Path(folder))
        infra = Infra(config)
        say("starting Kafka, MinIO and PostgreSQL (provisioned into the cache if missing)")
        await asyncio.to_thread(infra.provision)
        await asyncio.to_thread(infra.start)
        try:
            yield config, infra
        finally:
            await asyncio.to_thread(infra.stop)


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set size (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def service_pid(service: Service) -> int:
    """The pid of a running service."""
    pid = service.status().pid
    if pid is None:
        raise RuntimeError(f"{service.name} is not running")
    return pid


async def under_load(
    recordings: Sequence[Awaitable[Profile]], load_once: Callable[[], Awaitable[object]]
) -> list[Profile]:
    """Keep a load going, in rounds, until every recording has finished."""
    tasks = [asyncio.ensure_future(r) for r in recordings]
    while not all(t.done() for t in tasks):
        await load_once()
    return [t.result() for t in tasks]


def ms(seconds: float) -> float:
    """Seconds as milliseconds."""
    return seconds * 1000


def summary(result: LoadResult) -> dict[str, Any]:
    """A load's numbers for the results file."""
    return {
        "ok": result.ok,
        "failed": result.failed,
        "elapsed_s": round(result.elapsed_s, 3),
        "rate_per_s": round(result.rate, 2),
        "latency_p50_ms": round(ms(percentile(result.latencies_s, 50)), 1),
        "latency_p99_ms": round(ms(percentile(result.latencies_s, 99)), 1),
        "errors": result.errors,
    }


def say(message: str) -> None:
    """Progress, so a long run shows where it is."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


class Bench:
    """One run: the stack, the figures gathered so far and the profiles of each stage."""

    def __init__(self, config: StackConfig, sizes: Sizes, out_dir: Path) -> None:
        self.config = config
        self.sizes = sizes
        self.out_dir = out_dir
        self.figures: list[Figure] = []
        self.details: dict[str, Any] = {}
        self.profiles: dict[str, list[Profile]] = {}
        self.services = {name: Service(config, name) for name in SERVICE_NAMES}
        self.burst: load.FeedResult | None = None  # ours, for the peer comparison

    def profile(
        self, stage: str, process: str, pid: int, seconds: float | None = None
    ) -> Awaitable[Profile]:
        """A py-spy recording of `pid` over a slice of the stage's load."""
        return record(
            self.config.cache_dir,
            stage=stage,
            process=process,
            pid=pid,
            seconds=seconds or self.sizes.profile_seconds,
            out_dir=self.out_dir,
        )

    async def warm_up_ours(self, photos: Sequence[Photo]) -> None:
        """Rounds of reports through our path, untimed, until the broker's CPU per report
        settles: the least number of rounds, then until a round costs it no more than a
        tenth less than the one before."""
        count = self.sizes.warm_up_reports
        kafka = Kafka(self.config).status().pid
        rounds: list[float] = []
        for number in range(1, self.sizes.warm_up_rounds + 1):
            before = process_stat(kafka) if kafka is not None else None
            await load.ingest_load(self.config.ingest_port, photos, count, self.sizes.concurrency)
            after = process_stat(kafka) if kafka is not None else None
            unread = before is None or after is None
            if before is not None and after is not None:
                rounds.append((after[1] - before[1]) * 1000 / count)
                say(f"ingest: warm-up round {number}: Kafka {rounds[-1]:.1f} ms CPU a report")
            else:
                say(f"ingest: warm-up round {number} (Kafka's CPU could not be read)")
            settled = len(rounds) > 1 and rounds[-1] > WARM_UP_SETTLED * rounds[-2]
            # Without the broker's CPU to go by, the least number of rounds is the warm-up.
            if number >= self.sizes.warm_up_min_rounds and (settled or unread):
                break
        self.details["ingest_warm_up_kafka_cpu_ms_per_report"] = [round(ms, 2) for ms in rounds]

    async def ingest(self, photos: Sequence[Photo]) -> None:
        """Reports/s with one and five photos, ours and raw; peak RSS after; a profile."""
        port, conc = self.config.ingest_port, self.sizes.concurrency
        await self.warm_up_ours(photos[:1])
        warm_up = self.sizes.warm_up_reports
        say(f"ingest: warming up the raw path, {warm_up} reports (not timed)")
        await raw.raw_ingest(self.config, photos[:1], warm_up, conc)
        for label, chosen, count in (
            ("1 photo", photos[:1], self.sizes.ingest_one_photo),
            ("5 photos", photos, self.sizes.ingest_five_photos),
        ):
            say(f"ingest, {label}: {count} reports at concurrency {conc}")
            ours = await load.ingest_load(port, chosen, count, conc)
            say(f"ingest, {label}: raw MinIO puts + acks=all produce")
            base = await raw.raw_ingest(self.config, chosen, count, conc)
            self.details[f"ingest_{label.replace(' ', '_')}"] = {
                "ours": summary(ours),
                "raw": summary(base),
            }
            self.figures.append(
                Figure(
                    f"ingest, {label} of ~500 KB",
                    "reports/s",
                    ours.rate,
                    base.rate,
                    goal=0.6,
                    goal_kind="ratio_at_least",
                    note="" if not ours.failed else f"{ours.failed} refused: {ours.errors[:1]}",
                    stage="ingest",
                )
            )
        peaks = {name: peak_rss_mb(service_pid(s)) for name, s in self.services.items()}
        self.details["peak_rss_mb_after_ingest"] = peaks
        for name, peak in peaks.items():
            self.figures.append(
                Figure(
                    f"peak RSS {name} under ingest load",
                    "MB",
                    peak,
                    goal=MEMORY_LIMIT_MB,
                    goal_kind="ours_at_most",
                )
            )
        say("ingest: profiling the ingest process under the 1-photo load")
        self.profiles["ingest"] = await under_load(
            [self.profile("ingest", "ingest", service_pid(self.services["ingest"]))],
            lambda: load.ingest_load(port, photos[:1], 2 * conc, conc),
        )

    async def end_to_end(self) -> None:
        """202-to-feed latency at a steady rate, against three raw Kafka hops; the peer
        burst through our path; profiles of all three services under the steady load."""
        rate = self.sizes.e2e_rate
        count = round(rate * self.sizes.e2e_seconds)
        ingest_port = self.config.ingest_port
        with load.FeedWatcher(self.config.notify_port, self.config.kafka_bootstrap) as watcher:
            say(f"end-to-end: {count} critical reports at {rate:g}/s, 202 to SSE feed")
            ours = await load.steady_alerts(ingest_port, watcher, rate, count)
            say(
                f"peer, ours: {self.sizes.peer_alerts} alerts at concurrency "
                f"{self.sizes.concurrency}, request to SSE feed"
            )
            burst = await load.alert_burst(
                ingest_port, watcher, self.sizes.peer_alerts, self.sizes.concurrency
            )
            say("end-to-end: profiling ingest, triage and notify under the steady load")
            self.profiles["end-to-end"] = await under_load(
                [
                    self.profile("end-to-end", name, service_pid(service))
                    for name, service in self.services.items()
                ],
                lambda: load.steady_alerts(ingest_port, watcher, rate, round(rate * 2)),
            )
        self.details["peer_ours"] = self._feed_details(burst)
        say(f"end-to-end: raw three Kafka hops, {count} messages at {rate:g}/s")
        event = raw.report_event(text=load.CRITICAL_TEXT, place="raw-hops")
        hops = await raw.raw_hops(self.config.kafka_bootstrap, encode(event), rate, count)
        self.details["end_to_end"] = {
            "ours": self._feed_details(ours),
            "raw": {
                "sent": hops.sent,
                "missing": hops.missing,
                "latency_p50_ms": ms(percentile(hops.latencies_s, 50)),
                "latency_p99_ms": ms(percentile(hops.latencies_s, 99)),
            },
        }
        for p, goal in ((50, 2.0), (99, 3.0)):
            self.figures.append(
                Figure(
                    f"end-to-end p{p}, 202 to SSE at {rate:g}/s",
                    "ms",
                    ms(percentile(ours.latencies_s, p)),
                    ms(percentile(hops.latencies_s, p)),
                    goal=goal,
                    goal_kind="ratio_at_most",
                    stage="end-to-end",
                )
            )
        self.figures.append(
            Figure(
                "end-to-end alerts missing",
                "alerts",
                ours.missing,
                hops.missing,
                goal=0,
                goal_kind="ours_at_most",
                note=f"{ours.accepted} accepted, {ours.failed} refused by ingest",
            )
        )
        self.details["peak_rss_mb_after_end_to_end"] = {
            name: peak_rss_mb(service_pid(s)) for name, s in self.services.items()
        }
        self.burst = burst

    @staticmethod
    def _feed_details(result: load.FeedResult) -> dict[str, Any]:
        def p(values: list[float], n: int) -> float:
            return round(ms(percentile(values, n)), 1)

        return {
            "accepted": result.accepted,
            "refused": result.failed,
            "missing": result.missing,
            "alerts_per_s": round(result.alerts_per_s, 2),
            "latency_p50_ms": p(result.latencies_s, 50),
            "latency_p99_ms": p(result.latencies_s, 99),
            "to_triage_decision_p50_ms": p(result.to_triage_s, 50),
            "to_triage_decision_p99_ms": p(result.to_triage_s, 99),
            "triage_decision_to_feed_p50_ms": p(result.triage_to_feed_s, 50),
            "triage_decision_to_feed_p99_ms": p(result.triage_to_feed_s, 99),
            "errors": result.errors,
        }

    async def peer(self) -> None:
        """The same burst into Alerta; its figures sit in the raw column, beside ours."""
        burst = self.burst
        if burst is None:
            return
        alerta = alerta_peer.Alerta(self.config, ALERTA_PORT)
        try:
            say("peer: starting Alerta (alerta-server under gunicorn, database 'alerta')")
            await alerta_peer.create_database(self.config)
            await asyncio.to_thread(alerta.start)
            say(f"peer: {self.sizes.peer_alerts} alerts into Alerta's POST /alert")
            theirs, stored = await alerta_peer.push_alerts(
                alerta, self.sizes.peer_alerts, self.sizes.concurrency
            )
        except Exception as exc:
            self.details["peer_alerta"] = {"error": f"{type(exc).__name__}: {exc}"}
            say(f"peer: Alerta could not be measured: {exc} (log: {alerta.log_path})")
            return
        finally:
            await asyncio.to_thread(alerta.stop)
        self.details["peer_alerta"] = {**summary(theirs), "stored": stored}
        note = "raw column: Alerta (request to stored); ours: request to SSE feed"
        self.figures += [
            Figure("peer alerts/s (vs Alerta)", "alerts/s", burst.alerts_per_s, theirs.rate,
                   note=note),
            Figure("peer latency p50 (vs Alerta)", "ms",
                   ms(percentile(burst.latencies_s, 50)), ms(percentile(theirs.latencies_s, 50))),
            Figure("peer latency p99 (vs Alerta)", "ms",
                   ms(percentile(burst.latencies_s, 99)), ms(percentile(theirs.latencies_s, 99))),
        ]  # fmt: skip

    async def triage(self) -> None:
        """A fresh triage process through a history of reports, against a plain loop."""
        count = self.sizes.triage_reports
        say(f"triage: producing {count:,} reports of history into {pipeline.TRIAGE_IN}")
        await pipeline.produce_history(self.config, count, topic=pipeline.TRIAGE_IN, pairs=False)
        # The raw loop's rate swings by half between runs on a busy box (9,000 to 17,000
        # here), so each side runs twice, alternating, and the better run of each counts.
        samples: dict[str, list[raw.StreamResult]] = {"ours": [], "raw": []}
        for attempt in (1, 2):
            service, group = pipeline.triage_service(self.config)
            say(f"triage: a fresh triage process through them (transactions), run {attempt}")
            await asyncio.to_thread(service.start)
            try:
                samples["ours"].append(await pipeline.triage_throughput(self.config, group))
            finally:
                await asyncio.to_thread(service.stop)
            say(f"triage: raw non-transactional consume-produce-commit loop, run {attempt}")
            samples["raw"].append(
                await raw.raw_consume_produce(
                    self.config.kafka_bootstrap, pipeline.TRIAGE_IN, raw.RAW_TRIAGE_OUT
                )
            )
        say(
            "triage: events/s, ours "
            + " and ".join(f"{run.rate:,.0f}" for run in samples["ours"])
            + ", raw "
            + " and ".join(f"{run.rate:,.0f}" for run in samples["raw"])
        )
        ours = max(samples["ours"], key=lambda run: run.rate)
        base = max(samples["raw"], key=lambda run: run.rate)
        self.details["triage"] = {
            side: [{"events": run.records, "elapsed_s": run.elapsed_s} for run in runs]
            for side, runs in samples.items()
        }
        self.figures.append(
            Figure(
                f"triage of {count:,} reports, transactional",
                "events/s",
                ours.rate,
                base.rate,
                goal=0.5,
                goal_kind="ratio_at_least",
                stage="triage",
            )
        )
        say("triage: profiling a second fresh triage process over the same reports")
        profiled, _ = pipeline.triage_service(self.config)
        await asyncio.to_thread(profiled.start)
        try:
            self.profiles["triage"] = [
                await self.profile("triage", "triage", service_pid(profiled))
            ]
        finally:
            await asyncio.to_thread(profiled.stop)

    async def replay(self) -> None:
        """Rebuild the read models from every topic into an empty schema; raw consume."""
        bootstrap = self.config.kafka_bootstrap
        before = await topic_sizes(bootstrap, pipeline.NOTIFY_TOPICS)
        pairs = max(0, (self.sizes.replay_events - before) // 2)
        say(f"replay: producing {pairs:,} reports with their triage decisions")
        await pipeline.produce_history(self.config, pairs, topic="incidents.reports", pairs=True)
        total = await topic_sizes(bootstrap, pipeline.NOTIFY_TOPICS)
        say(f"replay: rebuilding the read models from {total:,} events")
        ours = await pipeline.replay(self.config, await pipeline.fresh_schema(self.config, "a"))
        say("replay: raw consume of the same topics")
        base = await raw.raw_consume(bootstrap, pipeline.NOTIFY_TOPICS)
        self.details["replay"] = {
            "ours": {"events": ours.events, "elapsed_s": ours.elapsed_s},
            "raw": {"records": base.records, "elapsed_s": base.elapsed_s},
        }
        self.figures.append(
            Figure(
                f"replay of {ours.events:,} events",
                "events/s",
                ours.rate,
                base.rate,
                goal=0.5,
                goal_kind="ratio_at_least",
                stage="replay",
            )
        )
        say("replay: profiling a second rebuild (this process)")
        rebuild = asyncio.create_task(
            pipeline.replay(self.config, await pipeline.fresh_schema(self.config, "b"))
        )
        try:
            self.profiles["replay"] = [await self.profile("replay", "bench-rebuild", os.getpid())]
        finally:
            rebuild.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await rebuild

    def start_services(self) -> None:
        """Ingest, triage and notify, side by side."""
        side_by_side([s.start for s in self.services.values()])
        load.authorise(self.config.token_key_file)

    def stop_services(self) -> None:
        """Stop the three services."""
        side_by_side([s.stop for s in self.services.values()])


async def topic_sizes(bootstrap: str, topics: Sequence[str]) -> int:
    """Records in all `topics`, from their offsets."""
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = list(consumer.assignment())
        start = await consumer.beginning_offsets(partitions)
        end = await consumer.end_offsets(partitions)
        return sum(end[p] - start[p] for p in partitions)
    finally:
        await consumer.stop()


def slowest_stage(figures: Sequence[Figure]) -> Figure | None:
    """The stage figure furthest from its goal, of those with a goal against raw."""
    staged = [f for f in figures if f.stage and f.goal_kind.startswith("ratio")]
    return max(staged, key=lambda f: f.shortfall, default=None)


def print_profiles(profiles: dict[str, list[Profile]], slowest: str | None) -> None:
    """The slowest stage's profile in full, the others in a line each."""
    for stage, recorded in profiles.items():
        for profile in recorded:
            if stage == slowest:
                print("\n".join(profile.lines()))
            elif profile.error:
                print(f"profile of {stage} ({profile.process}): {profile.error}")
            else:
                top = ", ".join(f"{name} {share:.0%}" for name, share in profile.by_package[:4])
                ours = profile.our_code[0][0] if profile.our_code else "-"
                print(
                    f"profile of {stage} ({profile.process}, on CPU {profile.busy:.0%}): {top}; "
                    f"our code nearest the CPU: {ours}"
                )


# The stages `--stage` picks: ingest takes end-to-end and the peer along, as the three
# share the running services and the peer compares with end-to-end's burst.
STAGES = ("ingest", "triage", "replay")


async def run(sizes: Sizes, json_path: Path, label: str, stages: Sequence[str] = STAGES) -> int:
    """Start the stack, measure the stages chosen, print and write the results."""
    started = datetime.now(UTC)
    load_before = os.getloadavg()
    async with bench_stack("qly-bench-") as (config, _):
        bench = Bench(config, sizes, PROFILES_DIR)
        failure: str | None = None
        photos: list[Photo] = []
        try:
            await asyncio.to_thread(init_stack, config)
            await raw.create_topics(
                config.kafka_bootstrap, [*raw.RAW_TOPICS, pipeline.TRIAGE_IN, pipeline.TRIAGE_OUT]
            )
            if "ingest" in stages:
                photos = await asyncio.to_thread(photo_set, 5)
                say(f"photos: {', '.join(f'{len(p.data) / 1024:.0f} KB' for p in photos)}")
                say("starting ingest, triage and notify")
                await asyncio.to_thread(bench.start_services)
                try:
                    await bench.ingest(photos)
                    await bench.end_to_end()
                finally:
                    await asyncio.to_thread(bench.stop_services)
                await bench.peer()
            if "triage" in stages:
                await bench.triage()
            if "replay" in stages:
                await bench.replay()
        except Exception as exc:
            # What was measured before the failure is still printed and written.
            failure = f"{type(exc).__name__}: {exc}"
            say(f"stopped by a failure: {failure}")
    slowest = slowest_stage(bench.figures)
    slowest_name = slowest.stage if slowest else None
    results = {
        "started_at": started.isoformat(),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        },
        "sizes": asdict(sizes),
        "photo_bytes": [len(p.data) for p in photos],
        "figures": [f.as_json() for f in bench.figures],
        "details": bench.details,
        "slowest_stage": slowest_name,
        "failure": failure,
        "profiles": {s: [p.as_json() for p in ps] for s, ps in bench.profiles.items()},
    }
    text = json.dumps(results, indent=2, ensure_ascii=False)
    await asyncio.to_thread(json_path.write_text, text, encoding="utf-8")
    print()
    print(table(bench.figures))
    print(
        f"\nmachine: {os.cpu_count()} cores, load average {load_before[0]:.2f} before and "
        f"{os.getloadavg()[0]:.2f} after; sizes: {label}"
    )
    e2e = bench.details.get("end_to_end", {}).get("ours")
    if e2e:
        print(
            "end-to-end split (p50 / p99): 202 to triage's decision readable on "
            f"incidents.triage {e2e['to_triage_decision_p50_ms']:.0f} / "
            f"{e2e['to_triage_decision_p99_ms']:.0f} ms; decision to SSE feed "
            f"{e2e['triage_decision_to_feed_p50_ms']:.0f} / "
            f"{e2e['triage_decision_to_feed_p99_ms']:.0f} ms"
        )
    alerta = bench.details.get("peer_alerta", {})
    if "error" in alerta:
        print(f"peer: Alerta not measured: {alerta['error']}")
    if slowest:
        ratio = "n/a" if slowest.ratio is None else f"{slowest.ratio:.2f}"
        print(f"\nslowest stage: {slowest.stage} ({slowest.name}: ratio {ratio}, "
              f"goal {slowest.goal_text()})")  # fmt: skip
    print_profiles(bench.profiles, slowest_name)
    print(f"\nwrote {json_path}")
    if failure:
        print(f"INCOMPLETE: {failure}")
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for development")
    parser.add_argument("--json", type=Path, default=Path("bench-results.json"))
    parser.add_argument("--concurrency", type=int, help="requests in flight (default 8)")
    parser.add_argument("--replay-events", type=int, help="events to rebuild from")
    parser.add_argument("--e2e-rate", type=float, help="critical reports per second")
    parser.add_argument(
        "--stage",
        action="append",
        choices=STAGES,
        help="run only this stage (repeatable); ingest includes end-to-end and the peer",
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    overrides = {
        "concurrency": args.concurrency,
        "replay_events": args.replay_events,
        "e2e_rate": args.e2e_rate,
    }
    sizes = replace(sizes, **{k: v for k, v in overrides.items() if v is not None})
    # The replay runs notify's rebuild in this process: set up as its command line is.
    settle_long_lived_objects()
    stages = args.stage or STAGES
    label = (
        ("quick" if args.quick else "full")
        + (" with overrides" if any(overrides.values()) else "")
        + ("" if stages == STAGES else f", stages {', '.join(stages)} only")
    )
    return asyncio.run(run(sizes, args.json, label, stages))


if __name__ == "__main__":
    sys.exit(main())
