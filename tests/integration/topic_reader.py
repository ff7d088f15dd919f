"""Reading topics and waiting for conditions, for assertions against the real stack."""

from __future__ import annotations

import asyncio

from aiokafka import ConsumerRecord

from qianliyan.shared.kafka import read_to_end


async def read_topic(
    bootstrap: str, topic: str, *, timeout_s: float = 20.0
) -> list[ConsumerRecord]:
    """Every committed record of `topic` up to its current end."""
    return await read_to_end(bootstrap, topic, timeout_s=timeout_s)


async def wait_for(predicate, *, timeout_s: float = 30.0, interval_s: float = 0.2):  # type: ignore[no-untyped-def]
    """Poll the async `predicate` until it returns something truthy; return that."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        result = await predicate()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(interval_s)
