"""Wakes the live streams when the projection records a feed change (PostgreSQL NOTIFY)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

from qianliyan.notify.projections.incidents import FEED_CHANNEL
from qianliyan.shared.kafka import retry_pause

log = logging.getLogger(__name__)

# How often the listening connection is asked whether it still reaches PostgreSQL, and how
# long it has to answer.
CHECK_EVERY_S = 30.0
CHECK_TIMEOUT_S = 5.0


class FeedSignal:
    """One listening connection for the whole app; streams wait on it instead of polling.

    A connection PostgreSQL drops (a restart) or that stops answering (a failover, a
    dropped route: asked every CHECK_EVERY_S) is made again, and the streams are woken
    once it is back, to read what was recorded meanwhile. Until then they re-check on
    their timeout, as without it.
    """

    def __init__(self) -> None:
        self._changed = asyncio.Event()
        self._connection: asyncpg.Connection | None = None
        self._stopping = asyncio.Event()
        self._listening: asyncio.Task[None] | None = None

    async def start(self, dsn: str) -> None:
        """Listen on the feed's channel, now and again after each lost connection."""
        lost = await self._listen(dsn)
        self._listening = asyncio.create_task(self._keep_listening(dsn, lost))

    async def stop(self) -> None:
        """Stop listening."""
        self._stopping.set()
        if self._listening is not None:
            self._listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listening
        if self._connection is not None:
            await self._connection.close()

    async def _listen(self, dsn: str) -> asyncio.Event:
        """Connect and listen; the event returned is set when the connection is lost."""
        lost = asyncio.Event()
        connection = await asyncpg.connect(dsn)
        try:
            connection.add_termination_listener(lambda _: lost.set())
            await connection.add_listener(FEED_CHANNEL, self.on_notify)
        except BaseException:  # stopped, or failed, half way: the connection goes too
            connection.terminate()
            raise
        self._connection = connection
        return lost

    async def _answers(self) -> bool:
        """Whether the listening connection still reaches PostgreSQL. One whose server
        vanished without closing it (a failover, a dropped route) is never told so: it only
        waits, and nothing is sent on it to find out."""
        assert self._connection is not None
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                await self._connection.fetchval("SELECT 1")
        except Exception:
            return False
        return True

    async def _keep_listening(self, dsn: str, lost: asyncio.Event) -> None:
        while True:
            try:
                await asyncio.wait_for(lost.wait(), timeout=CHECK_EVERY_S)
            except TimeoutError:
                if await self._answers():
                    continue
                assert self._connection is not None
                self._connection.terminate()
            log.warning("the feed's notification connection was lost; connecting again")
            attempt = 0
            while True:
                await retry_pause(attempt, self._stopping)
                if self._stopping.is_set():
                    return
                try:
                    lost = await self._listen(dsn)
                    break
                # Whatever the failure, the streams still re-check on their own: keep trying.
                except Exception as exc:
                    log.warning(
                        "connecting for feed notifications failed (%s: %s)",
                        type(exc).__name__,
                        exc,
                    )
                    attempt += 1
            log.info("listening for feed changes again")
            self.on_notify()  # changes recorded while nobody listened

    def on_notify(self, *_: object) -> None:
        """A change was recorded (PostgreSQL's NOTIFY on the feed's channel)."""
        # Wake every waiting stream, then arm a fresh event for the next change.
        self._changed.set()
        self._changed = asyncio.Event()

    def next_change(self) -> asyncio.Event:
        """Set by the next change. A stream takes it before it reads the changes, so that
        one recorded while it reads wakes it at once, not at the change after (which came
        tens of milliseconds later at ten reports a second: the feed's p99)."""
        return self._changed

    @staticmethod
    async def wait(change: asyncio.Event, timeout_s: float) -> None:
        """Return once `change` is set, or after `timeout_s` (streams re-check either way)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(change.wait(), timeout=timeout_s)
