"""`given_up_after`, for work that, like aiokafka's end of a transaction, does not end when
it is cancelled once: its caller still gets its answer in time, and the process can end."""

from __future__ import annotations

import asyncio
import threading

import pytest

from qianliyan.shared.kafka import given_up_after


async def a_transaction_that_will_not_end() -> None:
    """Waits for ever; cancelled, it aborts, and waits for ever again (as aiokafka's
    shielded wait for the transaction's end does) until cancelled a second time."""
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        await asyncio.Event().wait()


def ends_within(seconds: float, main: object) -> None:
    """Run `main` as a command's process would (`asyncio.run`), and fail if the process
    would not end: the event loop's end must get every task out."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(main)  # type: ignore[arg-type]
        except BaseException as error:  # handed to the test's thread
            failure.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "the event loop never ended: a task is stuck for good"
    if failure:
        raise failure[0]


def test_the_answer_is_given_at_the_deadline_and_the_loop_still_ends() -> None:
    async def main() -> None:
        started = asyncio.get_running_loop().time()
        with pytest.raises(TimeoutError, match=r"within 0\.2 s while committing a letter"):
            await given_up_after(0.2, a_transaction_that_will_not_end(), "committing a letter")
        assert asyncio.get_running_loop().time() - started < 2

    ends_within(10, main())


def test_a_caller_cancelled_before_the_deadline_leaves_nothing_stuck() -> None:
    # Ctrl-C: asyncio.run cancels the command's main task, long before any deadline.
    async def main() -> None:
        waiting = asyncio.create_task(
            given_up_after(3600, a_transaction_that_will_not_end(), "committing a letter")
        )
        await asyncio.sleep(0.1)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting

    ends_within(10, main())


def test_work_done_in_time_is_its_answer() -> None:
    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    async def main() -> None:
        assert await given_up_after(5, answer(), "answering") == 42
        with pytest.raises(ValueError, match="refused"):
            await given_up_after(5, refused(), "refusing")

    async def refused() -> None:
        raise ValueError("refused")

    ends_within(10, main())
