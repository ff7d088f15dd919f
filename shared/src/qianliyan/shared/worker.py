"""A long-running consumer loop owned by a service's lifespan.

Its state feeds the health endpoints: a loop that died is not live, so the
orchestrator (or a person reading /health/live) sees it and restarts the service.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

LoopBody = Callable[[asyncio.Event], Awaitable[None]]


class BackgroundLoop:
    """Runs `body(stop)` as a task until `stop()` sets the event it watches."""

    def __init__(self, name: str, body: LoopBody) -> None:
        self.name = name
        self._body = body
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the loop in the background."""
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def _run(self) -> None:
        try:
            await self._body(self._stop)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s stopped on an error", self.name)
            raise

    async def stop(self, *, timeout_s: float = 10.0, cleanup_s: float = 5.0) -> None:
        """Ask the loop to finish its current batch within `timeout_s`, else cancel it and
        wait up to `cleanup_s` for its cleanup (its consumer leaving the group, its
        producers closing): the service's resources close after it, and the process ends."""
        self._stop.set()
        task = self._task
        if task is None:
            return
        # Waited for, not awaited: neither its error (logged by _run, the service's
        # liveness says so) nor its CancelledError is this caller's.
        done, _ = await asyncio.wait([task], timeout=timeout_s)
        if not done:
            log.warning("%s did not stop within %g s; cancelling it", self.name, timeout_s)
            task.cancel()
            done, _ = await asyncio.wait([task], timeout=cleanup_s)
            if not done:
                log.error("%s is still running %g s after it was cancelled", self.name, cleanup_s)
                return
        if not task.cancelled():
            task.exception()  # read, so that asyncio does not log it a second time

    async def is_alive(self) -> bool:
        """True while the loop runs (or is stopping on request)."""
        return self._task is not None and not self._task.done()
