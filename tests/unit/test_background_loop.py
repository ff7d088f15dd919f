"""Stopping a service's consumer loop: it finishes, or is cancelled and cleans up first."""

from __future__ import annotations

import asyncio
import logging

import pytest

from qianliyan.shared.worker import BackgroundLoop


async def test_a_loop_that_stops_on_request_is_not_cancelled() -> None:
    finished = asyncio.Event()

    async def body(stop: asyncio.Event) -> None:
        await stop.wait()
        await asyncio.sleep(0.01)  # its last batch
        finished.set()

    loop = BackgroundLoop("polite", body)
    loop.start()
    await loop.stop(timeout_s=1)
    assert finished.is_set()
    assert not await loop.is_alive()


async def test_a_loop_that_will_not_stop_is_cancelled_and_its_cleanup_waited_for(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cleaned_up = asyncio.Event()

    async def body(_: asyncio.Event) -> None:
        try:
            await asyncio.sleep(3600)  # a batch that never ends
        finally:
            await asyncio.sleep(0.02)  # leaving the group, closing producers
            cleaned_up.set()

    loop = BackgroundLoop("stubborn", body)
    loop.start()
    await loop.stop(timeout_s=0.2)
    assert cleaned_up.is_set(), "stop() returned before the loop's cleanup ran"
    assert not await loop.is_alive()
    assert "stubborn did not stop within 0.2 s; cancelling it" in caplog.text


async def test_a_loop_that_ignores_its_cancellation_is_reported_and_left(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = asyncio.Event()

    async def body(_: asyncio.Event) -> None:
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue  # swallowed: nothing can stop it

    loop = BackgroundLoop("deaf", body)
    loop.start()
    with caplog.at_level(logging.ERROR):
        await asyncio.wait_for(loop.stop(timeout_s=0.05, cleanup_s=0.05), timeout=1)
    assert "deaf is still running 0.05 s after it was cancelled" in caplog.text
    release.set()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert not await loop.is_alive()


async def test_a_loop_that_failed_on_its_own_is_not_taken_for_one_that_will_not_stop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def body(stop: asyncio.Event) -> None:
        await stop.wait()
        raise TimeoutError("Kafka did not answer")  # its own failure, while stopping

    loop = BackgroundLoop("failing", body)
    loop.start()
    await loop.stop(timeout_s=1)
    assert "failing stopped on an error" in caplog.text
    assert "did not stop" not in caplog.text
