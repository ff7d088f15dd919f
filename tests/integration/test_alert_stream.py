"""The live feed (SSE) resumes after a disconnect from Last-Event-ID, with no gap or repeat."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest

from qianliyan.notify.api.alerts import CHANGES_PER_READ, STREAM_RECHECK_S
from qianliyan.stack.config import StackConfig
from tests.integration.clients import as_suite, as_user, submit

pytestmark = pytest.mark.integration


async def read_until(
    config: StackConfig,
    last_event_id: int,
    incident_id: str,
    *,
    timeout_s: float = 30,
    in_query: bool = False,
    caller: dict[str, str] | None = None,
) -> list[tuple[int, dict[str, Any]]]:
    """Events from the stream after `last_event_id`, until one about `incident_id` arrives,
    as `caller` (the suite's token when None) sees them.

    The id goes in the Last-Event-ID header, as EventSource sends it, or `in_query`, as a
    page that opens a new EventSource itself passes it.
    """
    url = f"http://127.0.0.1:{config.notify_port}/v1/alerts/stream"
    received: list[tuple[int, dict[str, Any]]] = []
    event: dict[str, str] = {}
    async with (
        asyncio.timeout(timeout_s),
        httpx.AsyncClient(headers=caller or as_suite(config), timeout=None) as client,
    ):
        if in_query:
            headers, params = {}, {"last_event_id": str(last_event_id)}
        else:
            headers, params = {"Last-Event-ID": str(last_event_id)}, {}
        async with client.stream("GET", url, headers=headers, params=params) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            async for line in response.aiter_lines():
                if line:
                    name, _, value = line.partition(":")
                    event[name] = value.strip()
                    continue
                if "data" in event:  # not an id alone, where the stream stands
                    data = json.loads(event["data"])
                    received.append((int(event["id"]), data))
                    if data["incident_id"] == incident_id:
                        return received
                event = {}
    raise AssertionError("the stream ended early")


async def test_a_client_resumes_without_gaps_or_repeats(running_stack: StackConfig) -> None:
    config = running_stack
    connection = await asyncpg.connect(config.postgres_dsn)
    try:
        start = await connection.fetchval("SELECT COALESCE(max(change_id), 0) FROM feed_changes")

        first = await submit(config, {"text": "站台冒烟", "place": f"A{uuid4().hex[:6]}"}, [])
        before_disconnect = await read_until(config, start, first.json()["report_id"])

        # Disconnected: meanwhile another alert arrives.
        second = await submit(config, {"text": "信号故障", "place": f"B{uuid4().hex[:6]}"}, [])
        resumed_from = before_disconnect[-1][0]
        after_reconnect = await read_until(
            config, resumed_from, second.json()["report_id"], in_query=True
        )

        ids = [change_id for change_id, _ in before_disconnect + after_reconnect]
        assert ids == sorted(set(ids)), "a change was repeated or out of order"
        in_log = await connection.fetch(
            "SELECT change_id FROM feed_changes WHERE change_id > $1 AND change_id <= $2 "
            "ORDER BY change_id",
            start,
            ids[-1],
        )
        assert ids == [row["change_id"] for row in in_log], "a change was skipped"
    finally:
        await connection.close()
    assert after_reconnect[-1][1]["severity"] == "major"


async def test_a_stream_that_sent_no_change_yet_still_resumes_without_a_gap(
    running_stack: StackConfig,
) -> None:
    """A new stream's first message is where it starts, an id alone, and a manager's is
    moved on past changes of other units the same way: a browser resumes a blip from the
    last id it holds, and with none it would resume from a later "now", past a change
    made during the blip."""
    config = running_stack
    url = f"http://127.0.0.1:{config.notify_port}/v1/alerts/stream"
    manager = as_user(config, f"m-{uuid4().hex[:6]}", "manager", units=["北京南站"])

    async def frames(headers: dict[str, str], until_id: int, **params: str) -> list[dict[str, str]]:
        """The stream's messages, each as its fields, up to one with an id of `until_id`
        or later."""
        found: list[dict[str, str]] = []
        frame: dict[str, str] = {}
        async with (
            asyncio.timeout(30),
            httpx.AsyncClient(headers=headers, timeout=None) as client,
            client.stream("GET", url, params=params) as response,
        ):
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if line:
                    name, _, value = line.partition(":")
                    frame[name] = value.strip()
                    continue
                if frame:
                    found.append(frame)
                    if int(frame.get("id", -1)) >= until_id:
                        return found
                frame = {}
        raise AssertionError("the stream ended early")

    connection = await asyncpg.connect(config.postgres_dsn)
    try:
        start = await connection.fetchval("SELECT COALESCE(max(change_id), 0) FROM feed_changes")
    finally:
        await connection.close()
    [opened] = await frames(as_suite(config), start)
    # Where it starts (later, should the alerter have changed something meanwhile), and
    # no data: no event fires in a browser.
    assert set(opened) == {"id"} and int(opened["id"]) >= start, opened
    # The blip: a change while the stream is away, then the browser's resumption from it.
    other = await submit(config, {"text": "站台冒烟", "place": f"D{uuid4().hex[:6]}"}, [])
    resumed = await read_until(config, int(opened["id"]), other.json()["report_id"])
    assert resumed[0][0] > start

    # A manager sees none of it (a report of no unit), and is moved past it all the same.
    seen = await frames(manager, resumed[-1][0], last_event_id=str(start))
    assert all("data" not in frame for frame in seen), seen
    assert int(seen[-1]["id"]) >= resumed[-1][0]


async def test_a_malformed_last_event_id_is_a_422(running_stack: StackConfig) -> None:
    async with httpx.AsyncClient(headers=as_suite(running_stack)) as client:
        answer = await client.get(
            f"http://127.0.0.1:{running_stack.notify_port}/v1/alerts/stream",
            headers={"Last-Event-ID": "yesterday"},
        )
    assert answer.status_code == 422


async def test_a_client_far_behind_catches_up_without_pausing(running_stack: StackConfig) -> None:
    """A stream reads the change log a page at a time; a full page means more are waiting,
    so it goes on at once rather than waiting for the next change (or its re-check)."""
    config = running_stack
    backlog = 5 * CHANGES_PER_READ
    connection = await asyncpg.connect(config.postgres_dsn)
    try:
        latest = "SELECT COALESCE(max(change_id), 0) FROM feed_changes"
        answer = await submit(config, {"text": "站台冒烟", "place": f"C{uuid4().hex[:6]}"}, [])
        received = await read_until(
            config, await connection.fetchval(latest), answer.json()["report_id"]
        )
        alert = received[-1][1]
        start = await connection.fetchval(latest)
        # As a re-triage that moved many incidents leaves it, without waking the streams.
        await connection.execute(
            "INSERT INTO feed_changes (incident_id) SELECT $1 FROM generate_series(1, $2)",
            UUID(alert["incident_id"]),
            backlog,
        )
    finally:
        await connection.close()
    began = time.monotonic()
    caught_up = await read_count(config, start, backlog)
    took_s = time.monotonic() - began
    assert len(caught_up) == backlog
    # Waiting after each full page took at least STREAM_RECHECK_S four times over.
    assert took_s < 2 * STREAM_RECHECK_S, f"{backlog} changes took {took_s:.1f} s"


async def read_count(config: StackConfig, last_event_id: int, count: int) -> list[int]:
    """The ids of the first `count` events on the stream after `last_event_id`."""
    url = f"http://127.0.0.1:{config.notify_port}/v1/alerts/stream"
    ids: list[int] = []
    async with (
        asyncio.timeout(60),
        httpx.AsyncClient(headers=as_suite(config), timeout=None) as client,
        client.stream("GET", url, headers={"Last-Event-ID": str(last_event_id)}) as response,
    ):
        async for line in response.aiter_lines():
            if line.startswith("id:"):
                ids.append(int(line.removeprefix("id:")))
                if len(ids) == count:
                    return ids
    raise AssertionError("the stream ended early")
