"""Load shapes and statistics shared by our side and the raw side of every figure.

Both sides of a comparison go through the same loop here, so a difference in a figure
is a difference in the work, not in how the bench drove it.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def process_stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds used in user and system mode) of a process; None once it
    is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # After the name: state, ppid, ... utime is the 12th field from there, stime the 13th.
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICKS_PER_S


@dataclass
class LoadResult:
    """What a burst of requests gave: how many succeeded, how long it took, each latency."""

    ok: int = 0
    failed: int = 0
    elapsed_s: float = 0.0
    latencies_s: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Successful operations per second over the whole burst."""
        return self.ok / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def note_error(self, error: str) -> None:
        """Count a failure, keeping the first few messages for the report."""
        self.failed += 1
        if len(self.errors) < 5:
            self.errors.append(error[:300])


async def closed_loop(
    count: int, concurrency: int, one: Callable[[int], Awaitable[None]]
) -> LoadResult:
    """Run `one(i)` for i in 0..count-1 with `concurrency` in flight; time it all.

    A closed loop (each worker starts the next request when its last one answered) is
    how a throughput is measured: the figure is what the server sustains, not what we
    pushed. `one` raises to count a failure.
    """
    result = LoadResult()
    next_index = iter(range(count))

    async def worker() -> None:
        for i in next_index:
            began = time.perf_counter()
            try:
                await one(i)
            except Exception as exc:
                result.note_error(f"{type(exc).__name__}: {exc}")
                continue
            result.ok += 1
            result.latencies_s.append(time.perf_counter() - began)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.elapsed_s = time.perf_counter() - began
    return result


async def open_loop(rate: float, count: int, one: Callable[[int], Awaitable[None]]) -> float:
    """Start `one(i)` every 1/rate seconds regardless of answers; wait for all; the seconds.

    An open loop is how a latency is measured at a steady rate: a slow answer does not
    slow the arrivals down, as it would not in the field. `one` handles its own errors.
    """
    loop = asyncio.get_running_loop()
    began = loop.time()
    tasks: list[asyncio.Future[None]] = []
    for i in range(count):
        delay = began + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(i)))
    await asyncio.gather(*tasks)
    return loop.time() - began


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100) by nearest rank; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]
