"""What aiokafka leaves unread in a producer it gave up is not logged as an error; every
other unread error still is."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka.errors import KafkaError, ProducerFenced, UnknownError

from qianliyan.shared.exactly_once import quiet_lost_producers


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    with quiet_lost_producers(loop):
        yield loop
    loop.close()


def _left_unread(loop: asyncio.AbstractEventLoop, error: BaseException) -> None:
    future = loop.create_future()
    future.set_exception(error)
    del future
    gc.collect()


def _fenced_commit() -> KafkaError:
    # How aiokafka 0.14's sender reports a code it has no name for.
    try:
        raise KafkaError("Unexpected error during batch delivery") from UnknownError()
    except KafkaError as error:
        return error


@pytest.mark.parametrize("error", [ProducerFenced(), _fenced_commit()], ids=["fenced", "commit"])
def test_a_lost_producers_unread_error_is_not_an_error_in_the_log(
    loop: asyncio.AbstractEventLoop, error: BaseException, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        _left_unread(loop, error)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert f"unread in a producer given up: {type(error).__name__}" in caplog.text


def test_any_other_unread_error_is_still_logged_as_one(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        _left_unread(loop, ValueError("ours"))
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert record.getMessage().startswith("Future exception was never retrieved")
    assert "ValueError: ours" in caplog.text


def test_the_handler_there_was_gets_the_rest_and_is_back_afterwards(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = asyncio.new_event_loop()
    handed: list[str] = []

    def theirs(_: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        handed.append(context["message"])

    loop.set_exception_handler(theirs)
    with quiet_lost_producers(loop):
        _left_unread(loop, ProducerFenced())
        _left_unread(loop, UnknownError())  # a refusal, not a lost producer
    assert handed == ["Future exception was never retrieved"]
    assert loop.get_exception_handler() is theirs
    loop.close()
