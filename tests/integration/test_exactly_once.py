"""The broker behaviour triage's exactly-once rests on, against the real Kafka: the member
that opens a partition fences the one that had it, mid-transaction included."""

from __future__ import annotations

from uuid import uuid4

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from qianliyan.shared.exactly_once import LOST_PRODUCER, transactional_id
from qianliyan.shared.kafka import create_producer
from qianliyan.shared.settings import KafkaSettings
from qianliyan.stack.config import StackConfig
from tests.integration.topic_reader import read_topic

pytestmark = pytest.mark.integration


async def test_opening_a_partition_aborts_and_fences_its_previous_owner(
    running_stack: StackConfig,
) -> None:
    kafka = KafkaSettings(bootstrap_servers=running_stack.kafka_bootstrap)
    topic = f"test.fencing.{uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    partition = TopicPartition("incidents.reports", 0)
    tid = transactional_id(f"test-{uuid4().hex[:8]}", partition)

    old_owner = create_producer(kafka, client_id="old-owner", transactional_id=tid)
    new_owner = create_producer(kafka, client_id="new-owner", transactional_id=tid)
    await old_owner.start()
    try:
        await old_owner.begin_transaction()
        await (await old_owner.send(topic, b"from the old owner"))
        await new_owner.start()  # the partition is given to another member
        try:
            with pytest.raises(LOST_PRODUCER):
                await old_owner.commit_transaction()
            async with new_owner.transaction():
                await new_owner.send(topic, b"from the new owner")
        finally:
            await new_owner.stop()
    finally:
        await old_owner.stop()

    values = [record.value for record in await read_topic(kafka.bootstrap_servers, topic)]
    assert values == [b"from the new owner"]
