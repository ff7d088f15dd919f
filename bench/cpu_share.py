"""Where the CPU of one ingested report goes, process by process, beside the raw path's.

    uv run python -m bench.cpu_share [--reports 300]

It starts the bench's stack (its ports, a temporary folder), warms both paths up, then
reads every process's CPU time (user and system, from /proc; PostgreSQL's backends count
with their postmaster; this process, the load generator, counts alone) around our ingest load (one
~500 KB photo a report at concurrency 8, triage and notify running, as deployed) and
around the raw path (the photo's MinIO put and an acks=all produce). It prints CPU
milliseconds per report for each process, and their sum: on a box whose cores are all
busy, that sum is what sets reports/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from bench import load, raw
from bench.measure import process_stat
from bench.photos import photo_set
from bench.run import QUICK, Bench, bench_stack, say, service_pid
from qianliyan.stack.init import init_stack

# PostgreSQL serves each connection from a process of its own, a child of the postmaster.
_COUNTED_WITH_CHILDREN = frozenset({"postgres"})


def cpu_seconds(processes: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far of each named process (PostgreSQL's with its backends)."""
    parent_of: dict[int, int] = {}
    used: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := process_stat(int(entry.name))) is not None:
            parent_of[int(entry.name)], used[int(entry.name)] = stat
    return {
        name: used.get(pid, 0.0)
        + (
            sum(seconds for child, seconds in used.items() if parent_of.get(child) == pid)
            if name in _COUNTED_WITH_CHILDREN
            else 0.0
        )
        for name, pid in processes.items()
    }


async def per_report(
    processes: dict[str, int], reports: int, work: Callable[[], Awaitable[object]]
) -> dict[str, float]:
    """CPU milliseconds per report of each process while `work` runs."""
    before = cpu_seconds(processes)
    await work()
    after = cpu_seconds(processes)
    return {name: (after[name] - before[name]) * 1000 / reports for name in processes}


def show(label: str, shares: dict[str, float]) -> None:
    """One line a process, then the sum."""
    print(f"\n{label} [CPU ms per report]")
    for name, ms in sorted(shares.items(), key=lambda item: -item[1]):
        print(f"  {name:<10} {ms:6.1f}")
    print(f"  {'sum':<10} {sum(shares.values()):6.1f}")


async def run(reports: int) -> None:
    """Start the stack, warm up, measure ours and raw."""
    async with bench_stack("qly-cpu-") as (config, infra):
        bench = Bench(config, QUICK, config.data_dir / "profiles")
        await asyncio.to_thread(init_stack, config)
        await raw.create_topics(config.kafka_bootstrap, list(raw.RAW_TOPICS))
        photos = (await asyncio.to_thread(photo_set, 1))[:1]
        await asyncio.to_thread(bench.start_services)
        try:
            port, concurrency = config.ingest_port, QUICK.concurrency
            say(f"warming up: {reports} reports through each path")
            await load.ingest_load(port, photos, reports, concurrency)
            await raw.raw_ingest(config, photos, reports, concurrency)
            processes: dict[str, int] = {
                name: service_pid(service) for name, service in bench.services.items()
            }
            for part in infra.status():
                if part.pid is not None:
                    processes[part.name] = part.pid
            processes["load"] = os.getpid()
            say(f"ours: {reports} reports")
            ours = await per_report(
                processes,
                reports,
                lambda: load.ingest_load(port, photos, reports, concurrency),
            )
            say(f"raw: {reports} reports")
            base = await per_report(
                processes,
                reports,
                lambda: raw.raw_ingest(config, photos, reports, concurrency),
            )
        finally:
            await asyncio.to_thread(bench.stop_services)
    show("ours: ingest, 1 photo of ~500 KB", ours)
    show("raw: MinIO put + acks=all produce", base)


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line and run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reports", type=int, default=300, help="reports a path (default 300)")
    asyncio.run(run(parser.parse_args(argv).reports))


if __name__ == "__main__":
    main()
