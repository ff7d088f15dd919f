"""Our side of the ingest, end-to-end and peer figures: talking to the stack as phones
and a dispatch desk do.

Reports go to ingest as the reporter's page sends them (multipart, a `client_report_id`
per report, so the idempotency ledger does its real work). The dispatch desk is an SSE
client of notify's live stream, run in a thread with its own event loop so that the
load generator's work never delays the moment an alert is seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer

from bench.measure import LoadResult, closed_loop, open_loop
from bench.photos import Photo
from qianliyan.shared.access.policy import MACHINE_SCOPES
from qianliyan.shared.access.tokens import TokenSigner, load_signing_key, new_token_id

TEXTS = ["道岔故障", "线路异物", "候车室拥挤", "信号故障", "站台积水", "配电箱冒烟", "路灯不亮"]
# The default rules make any report mentioning smoke critical, so every one raises an alert.
CRITICAL_TEXT = "配电箱冒烟 smoke from a signal cabinet"


def report_part(i: int, run: str, *, text: str, unique_place: bool) -> str:
    """The JSON `report` part; a unique place makes the report open an incident of its own."""
    report = {
        "text": f"{text} #{i}",
        "place": f"{run}-{i}" if unique_place else f"基准点{i % 40}",
        "client_report_id": f"{run}-{i}",
        "reporter_id": f"bench-{i % 25}",
    }
    return json.dumps(report, ensure_ascii=False)


async def post_report(
    client: httpx.AsyncClient, report: str, photos: Sequence[Photo]
) -> httpx.Response:
    """POST /v1/reports as the phone does; raises unless the answer is 202."""
    files = [("photos", (f"p{n}.jpg", p.data, "image/jpeg")) for n, p in enumerate(photos)]
    response = await client.post("/v1/reports", data={"report": report}, files=files or None)
    if response.status_code != httpx.codes.ACCEPTED:
        raise RuntimeError(f"{response.status_code}: {response.text[:200]}")
    return response


# The bench's one integration token (see `authorise`): it submits for many reporters and
# follows the whole feed, as a load of phones and a dispatch desk together would.
_AUTH: dict[str, str] = {}


def authorise(key_file: Path) -> None:
    """Sign the bench's token with the stack's key, once the stack has made it."""
    signer = TokenSigner(load_signing_key(key_file))
    issued = signer.for_machine(
        token_id=new_token_id(),
        name="bench",
        scopes=MACHINE_SCOPES,
        units=(),
        expires_at=datetime.now(UTC) + timedelta(days=1),
    )
    _AUTH["Authorization"] = f"Bearer {issued.token}"


def ingest_client(port: int, concurrency: int) -> httpx.AsyncClient:
    """One keep-alive connection per worker, as a fleet of phones would hold."""
    return httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}",
        headers=_AUTH,
        timeout=120,
        trust_env=False,
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
    )


async def ingest_load(
    port: int, photos: Sequence[Photo], reports: int, concurrency: int
) -> LoadResult:
    """`reports` reports with these photos each, `concurrency` in flight: accepted reports/s."""
    run = uuid.uuid4().hex[:8]
    async with ingest_client(port, concurrency) as client:

        async def one(i: int) -> None:
            part = report_part(i, run, text=TEXTS[i % len(TEXTS)], unique_place=False)
            await post_report(client, part, photos)

        await closed_loop(concurrency, concurrency, lambda i: one(reports + i))  # warm-up
        return await closed_loop(reports, concurrency, one)


class FeedWatcher:
    """Follows GET /v1/alerts/stream and notes when each incident first appears on it.

    It also reads `incidents.triage` as notify does (read_committed), noting when each
    report's decision became readable, which splits an alert's latency in two: ingest
    to triage's committed decision, and that decision to the feed (projection + SSE).
    """

    def __init__(self, port: int, bootstrap: str) -> None:
        self._url = f"http://127.0.0.1:{port}/v1/alerts/stream"
        self._bootstrap = bootstrap
        self.seen: dict[str, float] = {}
        self.triaged: dict[str, float] = {}
        self._ready = threading.Barrier(3)
        self._thread = threading.Thread(target=self._run, name="feed-watcher", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Future[Any] | None = None
        self.error: BaseException | None = None

    def __enter__(self) -> FeedWatcher:
        self._thread.start()
        try:
            self._ready.wait(timeout=30)
        except threading.BrokenBarrierError:
            raise RuntimeError(f"the alert stream did not answer: {self.error}") from None
        return self

    def __exit__(self, *_: object) -> None:
        if self._loop is not None and self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._task = task = asyncio.gather(self._follow_feed(), self._follow_triage())
            with contextlib.suppress(asyncio.CancelledError):
                await task

        try:
            asyncio.run(main())
        except BaseException as exc:
            self.error = exc
            self._ready.abort()

    def _arrived(self) -> None:
        # Blocking for a moment is fine: this loop does nothing else until both are ready.
        self._ready.wait(timeout=30)

    async def _follow_feed(self) -> None:
        async with (
            # notify pings every 15 s, so a minute without a line means the stream is gone.
            httpx.AsyncClient(
                timeout=httpx.Timeout(10.0, read=60.0), trust_env=False, headers=_AUTH
            ) as client,
            client.stream("GET", self._url) as response,
        ):
            response.raise_for_status()
            await asyncio.to_thread(self._arrived)
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    now = time.perf_counter()
                    self.seen.setdefault(json.loads(line[5:])["incident_id"], now)

    async def _follow_triage(self) -> None:
        consumer = AIOKafkaConsumer(
            "incidents.triage",
            bootstrap_servers=self._bootstrap,
            enable_auto_commit=False,
            isolation_level="read_committed",
        )
        await consumer.start()
        try:
            partitions = list(consumer.assignment())
            await consumer.seek_to_end(*partitions)
            for partition in partitions:
                await consumer.position(partition)
            await asyncio.to_thread(self._arrived)
            while True:
                batches = await consumer.getmany(timeout_ms=500)
                now = time.perf_counter()
                for records in batches.values():
                    for record in records:
                        report = json.loads(record.value)["payload"].get("report_id")
                        if report:
                            self.triaged.setdefault(report, now)
        finally:
            await consumer.stop()


@dataclass
class FeedResult:
    """Reports accepted, how long each took to show on the feed, and which never did."""

    accepted: int
    failed: int
    missing: int
    latencies_s: list[float]
    elapsed_s: float
    errors: list[str]
    to_triage_s: list[float]
    triage_to_feed_s: list[float]

    @property
    def alerts_per_s(self) -> float:
        """Alerts that reached the feed per second, first request to last alert seen."""
        return len(self.latencies_s) / self.elapsed_s if self.elapsed_s > 0 else 0.0


async def _await_feed(watcher: FeedWatcher, started: dict[str, float], timeout_s: float) -> None:
    deadline = time.perf_counter() + timeout_s
    while any(r not in watcher.seen for r in started) and time.perf_counter() < deadline:  # noqa: ASYNC110 - the watcher thread fills `seen`
        await asyncio.sleep(0.05)


def _feed_result(
    watcher: FeedWatcher, started: dict[str, float], failures: LoadResult, began: float
) -> FeedResult:
    seen, triaged = watcher.seen, watcher.triaged
    latencies = [seen[r] - t for r, t in started.items() if r in seen]
    last = max((seen[r] for r in started if r in seen), default=began)
    return FeedResult(
        accepted=len(started),
        failed=failures.failed,
        missing=len(started) - len(latencies),
        latencies_s=latencies,
        elapsed_s=last - began,
        errors=failures.errors,
        to_triage_s=[triaged[r] - t for r, t in started.items() if r in triaged],
        triage_to_feed_s=[seen[r] - triaged[r] for r in started if r in seen and r in triaged],
    )


async def steady_alerts(
    ingest_port: int, watcher: FeedWatcher, rate: float, count: int, timeout_s: float = 60.0
) -> FeedResult:
    """Critical reports at a steady `rate`; each timed from its 202 to its alert on the feed.

    The first report of an incident gives the incident its id, and a unique place makes
    each report its own incident, so the feed event to wait for is the report's own id.
    """
    run = uuid.uuid4().hex[:8]
    accepted: dict[str, float] = {}
    failures = LoadResult()
    async with ingest_client(ingest_port, 64) as client:

        async def one(i: int) -> None:
            try:
                response = await post_report(
                    client, report_part(i, run, text=CRITICAL_TEXT, unique_place=True), ()
                )
            except Exception as exc:
                failures.note_error(f"{type(exc).__name__}: {exc}")
                return
            accepted[response.json()["report_id"]] = time.perf_counter()

        began = time.perf_counter()
        await open_loop(rate, count, one)
    await _await_feed(watcher, accepted, timeout_s)
    return _feed_result(watcher, accepted, failures, began)


async def alert_burst(
    ingest_port: int, watcher: FeedWatcher, count: int, concurrency: int, timeout_s: float = 120.0
) -> FeedResult:
    """`count` critical reports as fast as `concurrency` allows; each timed from its request
    to its alert on the feed, the way a peer's alert is timed from request to stored."""
    run = uuid.uuid4().hex[:8]
    sent: dict[str, float] = {}
    async with ingest_client(ingest_port, concurrency) as client:

        async def one(i: int) -> None:
            began = time.perf_counter()
            response = await post_report(
                client, report_part(i, run, text=CRITICAL_TEXT, unique_place=True), ()
            )
            sent[response.json()["report_id"]] = began

        began = time.perf_counter()
        load = await closed_loop(count, concurrency, one)
    await _await_feed(watcher, sent, timeout_s)
    return _feed_result(watcher, sent, load, began)
