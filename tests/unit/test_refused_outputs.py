"""Finding the record whose output the broker refused: which transactions, and when the
search is over."""

from __future__ import annotations

import logging

import pytest
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, UnknownError

from qianliyan.shared.exactly_once import RefusedOutputs, may_succeed_anew

PARTITION = TopicPartition("incidents.reports", 0)


def _records(*offsets: int) -> list[ConsumerRecord]:
    return [
        ConsumerRecord(
            PARTITION.topic, PARTITION.partition, offset, 0, 0, b"k", b"v", None, 1, 1, []
        )
        for offset in offsets
    ]


def _offsets(transactions: list[list[ConsumerRecord]]) -> list[list[int]]:
    return [[record.offset for record in transaction] for transaction in transactions]


def test_without_a_refusal_a_fetch_is_one_transaction() -> None:
    assert _offsets(RefusedOutputs().transactions(PARTITION, _records(3, 4, 5))) == [[3, 4, 5]]


def test_after_a_refused_batch_its_records_go_one_at_a_time_and_the_rest_together() -> None:
    refused = RefusedOutputs()
    refused.note(PARTITION, _records(3, 4, 5), MessageSizeTooLargeError())
    assert refused.culprits(PARTITION) == {}
    transactions = refused.transactions(PARTITION, _records(3, 4, 5, 6, 7))
    assert _offsets(transactions) == [[3], [4], [5], [6, 7]]
    other = TopicPartition(PARTITION.topic, 1)
    assert _offsets(refused.transactions(other, _records(3, 4))) == [[3, 4]]


def test_a_record_refused_alone_is_the_culprit_until_the_partition_is_past_it() -> None:
    refused = RefusedOutputs()
    refused.note(PARTITION, _records(3, 4, 5), MessageSizeTooLargeError())
    refused.passed(PARTITION, 3)
    refused.note(PARTITION, _records(4), MessageSizeTooLargeError("too big"))
    assert refused.culprits(PARTITION) == {
        4: "its output was refused: [Error 10] MessageSizeTooLargeError: too big"
    }
    assert _offsets(refused.transactions(PARTITION, _records(4, 5, 6))) == [[4], [5], [6]]
    refused.passed(PARTITION, 4)
    assert refused.culprits(PARTITION)  # 5 may hold another
    refused.passed(PARTITION, 5)
    assert refused.culprits(PARTITION) == {}
    assert _offsets(refused.transactions(PARTITION, _records(6, 7))) == [[6, 7]]


def test_a_culprit_refused_again_is_an_error_that_names_it() -> None:
    refused = RefusedOutputs()
    refused.note(PARTITION, _records(9), MessageSizeTooLargeError())
    assert list(refused.culprits(PARTITION)) == [9]
    with pytest.raises(RuntimeError, match=r"incidents.reports\[0\]@9 was refused as well"):
        refused.note(PARTITION, _records(9), MessageSizeTooLargeError())


def test_a_refusal_no_single_record_explains_says_the_limits_are_to_be_asked_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    refused = RefusedOutputs()
    refused.note(PARTITION, _records(3, 4, 5), MessageSizeTooLargeError())
    assert [refused.passed(PARTITION, offset) for offset in (3, 4, 5)] == [False, False, True]
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING and "alone" in r.msg]
    expected = "refused together ([Error 10] MessageSizeTooLargeError) and each taken alone"
    assert expected in warning.getMessage()
    assert _offsets(refused.transactions(PARTITION, _records(6, 7))) == [[6, 7]]


def test_a_search_that_found_its_culprit_or_a_passing_code_leaves_the_limits_be() -> None:
    refused = RefusedOutputs()
    refused.note(PARTITION, _records(3, 4), MessageSizeTooLargeError())
    refused.note(PARTITION, _records(3), MessageSizeTooLargeError())
    assert [refused.passed(PARTITION, offset) for offset in (3, 4)] == [False, False]
    refused.note(PARTITION, _records(5, 6), UnknownError())
    assert [refused.passed(PARTITION, offset) for offset in (5, 6)] == [False, False]


def test_a_partition_given_to_another_member_is_forgotten() -> None:
    refused = RefusedOutputs()
    refused.note(PARTITION, _records(9), MessageSizeTooLargeError())
    refused.forget(PARTITION)
    assert refused.culprits(PARTITION) == {}
    assert _offsets(refused.transactions(PARTITION, _records(9, 10))) == [[9, 10]]


def test_a_record_refused_alone_with_a_code_aiokafka_cannot_name_is_blamed_the_second_time() -> (
    None
):
    refused = RefusedOutputs()
    refused.note(PARTITION, _records(9), UnknownError())
    assert refused.culprits(PARTITION) == {}, "it may have been a passing error"
    assert _offsets(refused.transactions(PARTITION, _records(9, 10))) == [[9], [10]]
    refused.note(PARTITION, _records(9), UnknownError())
    assert list(refused.culprits(PARTITION)) == [9]


def test_a_search_left_behind_by_the_partition_is_dropped_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    refused = RefusedOutputs()
    refused.note(PARTITION, _records(3, 4, 5), MessageSizeTooLargeError())
    caplog.clear()
    # Revoked mid-search; the partition comes back after another member finished it.
    assert _offsets(refused.transactions(PARTITION, _records(8, 9))) == [[8, 9]]
    refused.passed(PARTITION, 9)
    assert not caplog.records


def test_a_dead_letter_refused_by_a_code_aiokafka_cannot_name_stops_the_partition() -> None:
    refused = RefusedOutputs()
    for _ in range(2):
        refused.note(PARTITION, _records(9), UnknownError())
    with pytest.raises(RuntimeError) as stopped:
        refused.note(PARTITION, _records(9), UnknownError())
    assert not may_succeed_anew(stopped.value), "it would be tried for ever"


def test_a_producer_whose_sender_died_of_an_unknown_code_is_opened_anew() -> None:
    try:
        raise KafkaError("Unexpected error during batch delivery") from UnknownError()
    except KafkaError as error:
        assert may_succeed_anew(error)
