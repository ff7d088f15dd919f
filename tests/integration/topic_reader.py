"""Reading topics and waiting for conditions, for assertions against the real stack; and
making a test's own topics (the broker creates none by itself)."""

from __future__ import annotations

import asyncio

from aiokafka import ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient

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


async def create_topics(bootstrap: str, *topics: str, config: dict[str, str] | None = None) -> None:
    """Topics of one partition each, with `config` for every one of them."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(topic, num_partitions=1, replication_factor=1, topic_configs=config or {})
                for topic in topics
            ]
        )
    finally:
        await admin.close()


async def broker_serving(bootstrap: str, *, timeout_s: float = 60.0) -> None:
    """Wait until the broker lists itself again: one paused for longer than its session
    with the controller comes back fenced for a while, its metadata naming no broker, and
    a client that looks for a coordinator meanwhile finds none (aiokafka asserts)."""
    async with asyncio.timeout(timeout_s):
        while True:
            client = AIOKafkaClient(bootstrap_servers=bootstrap)
            try:
                await client.bootstrap()
                if client.get_random_node() is not None:
                    return
            except Exception:
                pass  # not serving yet: ask again
            finally:
                await client.close()
            await asyncio.sleep(0.5)
