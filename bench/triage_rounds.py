"""Triage of one or more checkouts, round after round on one stack, beside the raw loop.

    uv run python -m bench.triage_rounds [--rounds 4] [--reports 20000] [PYTHON ...]

Each PYTHON is the interpreter of a checkout's virtual environment (`.venv/bin/python`;
this one's when none is given); its triage process runs that checkout's code. Every
round runs a fresh triage process of each, in turn, through the same history of reports,
then the raw consume-produce-commit loop, and prints for each: events/s, and the CPU
microseconds an event of the triage process and of Kafka (from /proc).

The raw loop's rate swings by half from run to run on a busy two-core box; the CPU an
event of each process, measured around the very run, tells two versions apart where
rates alone do not.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from bench import pipeline, raw
from bench.cpu_share import cpu_seconds
from bench.run import bench_stack, say, service_pid
from qianliyan.shared.collector import settle_long_lived_objects
from qianliyan.stack.init import init_stack


async def run(pythons: Sequence[str], rounds: int, reports: int) -> None:
    """Start the stack, make the history, and run the rounds."""
    async with bench_stack("qly-triage-rounds-") as (config, infra):
        await asyncio.to_thread(init_stack, config)
        await raw.create_topics(
            config.kafka_bootstrap, [*raw.RAW_TOPICS, pipeline.TRIAGE_IN, pipeline.TRIAGE_OUT]
        )
        say(f"producing {reports:,} reports of history into {pipeline.TRIAGE_IN}")
        await pipeline.produce_history(config, reports, topic=pipeline.TRIAGE_IN, pairs=False)
        kafka = next(part.pid for part in infra.status() if part.name == "kafka")
        assert kafka is not None, "Kafka is not running"
        for round_number in range(1, rounds + 1):
            for python in pythons:
                service, group = pipeline.triage_service(config, python)
                await asyncio.to_thread(service.start)
                processes = {"triage": service_pid(service), "kafka": kafka}
                before = cpu_seconds(processes)
                try:
                    result = await pipeline.triage_throughput(config, group)
                finally:
                    after = cpu_seconds(processes)
                    await asyncio.to_thread(service.stop)
                per_event = {
                    name: (after[name] - before[name]) * 1e6 / reports for name in processes
                }
                print(
                    f"round {round_number} {python}: {result.rate:,.0f} events/s; CPU an event: "
                    f"triage {per_event['triage']:.0f} µs, Kafka {per_event['kafka']:.0f} µs",
                    flush=True,
                )
            base = await raw.raw_consume_produce(
                config.kafka_bootstrap, pipeline.TRIAGE_IN, raw.RAW_TRIAGE_OUT
            )
            print(f"round {round_number} raw loop: {base.rate:,.0f} events/s", flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line and run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pythons", nargs="*", metavar="PYTHON", help="checkouts' interpreters")
    parser.add_argument("--rounds", type=int, default=4, help="rounds (default 4)")
    parser.add_argument("--reports", type=int, default=20_000, help="reports (default 20,000)")
    args = parser.parse_args(argv)
    settle_long_lived_objects()
    asyncio.run(run(args.pythons or [sys.executable], args.rounds, args.reports))


if __name__ == "__main__":
    main()
