"""Our producers place a keyed record where Kafka's own clients would."""

from __future__ import annotations

import random
import uuid

import pytest
from aiokafka.partitioner import DefaultPartitioner

from qianliyan.shared.kafka import PARTITIONER

# Kafka's murmur2 of these keys, as its Java client computes them (UtilsTest.testMurmur2).
JAVA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.mark.parametrize(("key", "java_hash"), JAVA_MURMUR2.items())
def test_a_key_goes_where_the_java_client_puts_it(key: bytes, java_hash: int) -> None:
    partitions = list(range(1000))
    assert PARTITIONER(key, partitions, partitions) == (java_hash & 0x7FFFFFFF) % 1000


def test_a_key_goes_where_aiokafka_puts_it() -> None:
    chosen = random.Random(7)
    keys = [str(uuid.UUID(int=chosen.getrandbits(128))).encode() for _ in range(2000)]
    keys += [chosen.randbytes(length) for length in range(65) for _ in range(20)]
    keys += [f"unit:基准站{i}".encode() for i in range(100)]
    for count in (1, 2, 3, 7, 12):
        partitions = list(range(count))
        for key in keys:
            expected = DefaultPartitioner()(key, partitions, partitions)
            assert PARTITIONER(key, partitions, partitions) == expected, key


def test_a_record_without_a_key_goes_to_an_available_partition() -> None:
    assert {PARTITIONER(None, [0, 1, 2], [2]) for _ in range(20)} == {2}
    assert {PARTITIONER(None, [0, 1, 2], []) for _ in range(200)} == {0, 1, 2}
