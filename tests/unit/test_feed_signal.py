"""A live stream wakes for every change to the feed, also one recorded while it reads."""

from __future__ import annotations

import asyncio

from qianliyan.notify.feed_signal import FeedSignal


async def test_a_change_recorded_while_a_stream_reads_wakes_it_at_once() -> None:
    signal = FeedSignal()
    change = signal.next_change()  # taken before the stream reads the changes
    signal.on_notify()  # recorded while it reads
    async with asyncio.timeout(1):
        await FeedSignal.wait(change, timeout_s=30)


async def test_a_stream_waits_for_a_change_after_the_one_it_read() -> None:
    signal = FeedSignal()
    signal.on_notify()  # already read by the stream
    change = signal.next_change()
    waiting = asyncio.create_task(FeedSignal.wait(change, timeout_s=30))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    signal.on_notify()
    async with asyncio.timeout(1):
        await waiting


async def test_without_a_change_a_stream_rechecks_after_its_timeout() -> None:
    signal = FeedSignal()
    async with asyncio.timeout(1):
        await FeedSignal.wait(signal.next_change(), timeout_s=0.01)
