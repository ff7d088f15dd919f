"""Python's cycle collector, set for processes that turn a stream of events into objects.

Every service allocates thousands of small objects a second (decoded events, their
models, rows) that reference counting frees at once; few form cycles. With CPython's
default threshold the cycle collector still runs every 700 allocations, walking the
young objects each time and, as they pile up in a batch, promoting and walking them
again. Measured over 5,000 reports held in one process: decoding took 26.6 µs an event
with the default and 8.5 µs with a young generation of 50,000; triage's transform 81 and
56 µs.

What start-up made (modules, pydantic's validators, settings) lives as long as the process:
`gc.freeze` moves it out of the collector's sight, so no collection walks it again.
Cycles are still collected, only in larger, rarer rounds.
"""

from __future__ import annotations

import gc

YOUNG_GENERATION = 50_000


def settle_long_lived_objects() -> None:
    """Collect once, freeze what start-up made, and collect the young generation less
    often; the older generations keep their own thresholds."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION, middle, old)
