"""Reading a whole topic as committed consumers see it, for assertions."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, ConsumerRecord


async def read_topic(
    bootstrap: str, topic: str, *, timeout_s: float = 20.0
) -> list[ConsumerRecord]:
    """Every committed record of `topic` up to its current end, in partition order."""
    # Without a group id the consumer is assigned every partition of the topic itself.
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        partitions = list(consumer.assignment())
        if not partitions:
            raise AssertionError(f"topic {topic} does not exist or has no partitions")
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        records: list[ConsumerRecord] = []
        deadline = asyncio.get_running_loop().time() + timeout_s
        while [p for p in partitions if await consumer.position(p) < end[p]]:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"could not read {topic} to its end in {timeout_s}s")
            batch = await consumer.getmany(timeout_ms=500)
            for part_records in batch.values():
                records.extend(part_records)
        return records
    finally:
        await consumer.stop()


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
