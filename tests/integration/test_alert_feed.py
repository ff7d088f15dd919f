"""The dispatch feed: most severe first, filtered, paged by cursor without gaps or repeats."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest

from qianliyan.notify.projections.events import project_batch
from qianliyan.notify.projections.incidents import FeedFilter, FeedPosition, list_alerts
from qianliyan.notify.rebuild import scratch_schema
from qianliyan.shared.events import (
    Actor,
    ActorKind,
    Event,
    ReportSubmitted,
    ReportSubmittedPayload,
    ReportTriaged,
    ReportTriagedPayload,
    Severity,
)
from qianliyan.stack.config import StackConfig
from tests.integration.clients import as_suite, jpeg_photo, submit
from tests.integration.topic_reader import wait_for

pytestmark = pytest.mark.integration


async def feed(config: StackConfig, **params: Any) -> httpx.Response:
    async with httpx.AsyncClient(headers=as_suite(config)) as client:
        return await client.get(f"http://127.0.0.1:{config.notify_port}/v1/alerts", params=params)


async def test_the_feed_orders_filters_and_pages(running_stack: StackConfig) -> None:
    config = running_stack
    unit = f"测试站{uuid4().hex[:8]}"  # this test's alerts only
    texts = ["配电箱冒烟", "信号故障", "站台拥挤", "灯泡坏了", "座椅松动"]
    for i, text in enumerate(texts):
        answer = await submit(config, {"text": text, "unit": unit, "place": f"点{i}"}, [])
        assert answer.status_code == 202

    async def all_listed() -> list[dict[str, Any]] | None:
        alerts = (await feed(config, unit=unit, limit=50)).json()["alerts"]
        complete = len(alerts) == 5 and all(a["severity"] for a in alerts)
        return alerts if complete else None

    everything = await wait_for(all_listed)
    assert [a["severity"] for a in everything] == ["critical", "major", "minor", "info", "info"]
    # Within a rank, the one that came in last first.
    assert everything[3]["last_received_at"] >= everything[4]["last_received_at"]
    assert everything[0]["place"] == "点0" and everything[0]["report_count"] == 1

    pages, cursor = [], None
    while True:
        params: dict[str, Any] = {"unit": unit, "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await feed(config, **params)).json()
        pages.append([a["incident_id"] for a in page["alerts"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [i for p in pages for i in p] == [a["incident_id"] for a in everything]

    serious = (await feed(config, unit=unit, min_severity="major")).json()["alerts"]
    assert [a["severity"] for a in serious] == ["critical", "major"]
    assert (await feed(config, unit=unit, status="resolved")).json()["alerts"] == []

    bad = await feed(config, cursor="not-a-cursor")
    assert bad.status_code == 422
    assert "cursor" in bad.json()["detail"]
    # A cursor given out before the feed went by arrival held an opening time: refused,
    # not read as an arrival (a client paging across the upgrade starts again).
    position = [3, "2026-12-01T08:00:00+00:00", everything[0]["incident_id"]]
    old = base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")
    stale = await feed(config, cursor=old)
    assert stale.status_code == 422
    assert "before the feed went by arrival" in stale.json()["detail"]


async def test_a_report_that_waited_on_a_phone_is_on_top_when_it_arrives(
    running_stack: StackConfig,
) -> None:
    """Two reports of one severity: one captured five minutes ago, then one captured an
    hour ago that waited on a phone without network. The late one is what is new."""
    config = running_stack
    unit = f"迟到站{uuid4().hex[:8]}"
    now = datetime.now(UTC)
    ids = []
    for minutes, place in ((5, "北咽喉"), (60, "南咽喉")):
        captured = (now - timedelta(minutes=minutes)).isoformat()
        fields = {"text": "道岔故障", "unit": unit, "place": place, "occurred_at": captured}
        answer = await submit(config, fields, [])
        assert answer.status_code == 202, answer.text
        ids.append(answer.json()["report_id"])

    async def both_listed() -> list[dict[str, Any]] | None:
        alerts = (await feed(config, unit=unit)).json()["alerts"]
        return alerts if len(alerts) == 2 and all(a["severity"] for a in alerts) else None

    recent, late = ids
    listed = await wait_for(both_listed)
    assert listed[0]["severity"] == listed[1]["severity"]
    assert [a["incident_id"] for a in listed] == [late, recent]
    assert listed[0]["opened_at"] < listed[1]["opened_at"]  # opened earlier, listed first
    # Paging keeps that order.
    first = (await feed(config, unit=unit, limit=1)).json()
    rest = (await feed(config, unit=unit, limit=1, cursor=first["next_cursor"])).json()
    assert [first["alerts"][0]["incident_id"], rest["alerts"][0]["incident_id"]] == [late, recent]


async def test_an_alert_shows_its_reports_photos_reasons_and_timeline(
    running_stack: StackConfig,
) -> None:
    config = running_stack
    unit = f"测试站{uuid4().hex[:8]}"
    answer = await submit(
        config, {"text": "接触网断线冒烟", "unit": unit, "place": "K12+300"}, [jpeg_photo()]
    )
    assert answer.status_code == 202
    report_id = answer.json()["report_id"]

    async def triaged_alert() -> dict[str, Any] | None:
        alerts = (await feed(config, unit=unit)).json()["alerts"]
        return alerts[0] if alerts and alerts[0]["severity"] else None

    alert = await wait_for(triaged_alert)
    async with httpx.AsyncClient(headers=as_suite(config)) as client:
        base = f"http://127.0.0.1:{config.notify_port}/v1/alerts"
        detail = (await client.get(f"{base}/{alert['incident_id']}")).json()
        [report] = detail["reports"]
        assert report["report_id"] == report_id and report["text"] == "接触网断线冒烟"
        assert report["reasons"] and all(r["rule_id"] for r in report["reasons"])
        [photo] = report["photos"]
        # The links are signed and work without credentials, for a while.
        assert "X-Amz-Signature" in photo["url"] and "X-Amz-Signature" in photo["preview_url"]
        async with httpx.AsyncClient() as anyone:
            preview = await anyone.get(photo["preview_url"])
        assert preview.status_code == 200 and preview.content[:2] == b"\xff\xd8"
        # Triaged first; raising the alert (critical routes to the duty desk) may follow.
        assert detail["timeline"][0]["event_type"] == "ReportTriaged"
        assert detail["place"] == "K12+300" and detail["report_count"] == 1

        unknown = await client.get(f"{base}/{uuid4()}")
        assert unknown.status_code == 404


async def test_paging_passes_incidents_left_without_reports_once_each(infra: StackConfig) -> None:
    """A triage older than its report's last (delivered late) still refreshes its
    incident, which then holds no report: no opening time, so it sorts last. A page
    ending on one must not bring it back, nor stop the pages short of the others."""
    reporter, triage = Actor(kind=ActorKind.REPORTER, id="w-1"), Actor(kind=ActorKind.OPS, id="t")
    merged_into, emptied = uuid4(), []
    events: list[Event] = []
    for minute in range(3):
        report_id, first = uuid4(), uuid4()
        captured = datetime(2026, 3, 1, 8, minute, tzinfo=UTC)
        submitted = ReportSubmitted.first(
            key=str(report_id),
            actor=reporter,
            payload=ReportSubmittedPayload(
                report_id=report_id, text="道岔故障", captured_at=captured, received_at=captured
            ),
        )
        events.append(submitted)
        for incident, triaged_at in ((merged_into, captured + timedelta(1)), (first, captured)):
            decision = ReportTriagedPayload(
                report_id=report_id,
                incident_id=incident,
                severity=Severity.MAJOR,
                rule_set_version="v1",
                reasons=[],
                captured_at=captured,
            )
            triaged = ReportTriaged.caused_by(
                submitted, key=str(report_id), actor=triage, payload=decision
            )
            events.append(triaged.model_copy(update={"occurred_at": triaged_at}))
        emptied.append(first)
    async with scratch_schema(infra.postgres_dsn, "feed") as dsn:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
        assert pool is not None
        try:
            await project_batch(pool, events)
            listed = await list_alerts(pool, where=FeedFilter(), after=None, limit=10)
            assert [row["last_received_at"] for row in listed[1:]] == [None, None, None]
            paged: list[UUID] = []
            after = None
            while len(paged) < 10 and (
                page := await list_alerts(pool, where=FeedFilter(), after=after, limit=1)
            ):
                row = page[0]
                paged.append(row["incident_id"])
                after = FeedPosition(
                    row["severity_rank"], row["last_received_at"], row["incident_id"]
                )
        finally:
            await pool.close()
    assert paged == [row["incident_id"] for row in listed]
    assert sorted(paged) == sorted([merged_into, *emptied])
