"""Who reports what: per reporter and per unit, reports sent, confirmed, incidents opened
first, and the median time from capture to arrival."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx
import pytest

from qianliyan.stack.config import StackConfig
from tests.integration.alert_receivers import alert_detail, alert_known
from tests.integration.clients import as_suite, submit
from tests.integration.test_incident_actions import Dispatcher
from tests.integration.topic_reader import wait_for

pytestmark = pytest.mark.integration


async def test_reporters_and_units_are_credited_for_what_they_reported(
    running_stack: StackConfig,
) -> None:
    config = running_stack
    unit, tag = f"贡献站{uuid4().hex[:6]}", uuid4().hex[:6]
    a, b, c = (f"{who}-{tag}" for who in ("w-a", "w-b", "w-c"))
    ten_minutes_ago = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()

    async def report(reporter: str, text: str, place: str, **extra: str) -> str:
        body = {"text": text, "place": place, "unit": unit, "reporter_id": reporter, **extra}
        answer = await submit(config, body, [])
        assert answer.status_code == 202, answer.text
        return str(answer.json()["report_id"])

    smoke = await report(a, "站台冒烟", "1站台", occurred_at=ten_minutes_ago)
    await alert_known(config, smoke)
    joined = await report(b, "站台冒烟很大", "1站台")

    async def grouped() -> bool:
        detail = await alert_detail(config, smoke)
        return joined in {r["report_id"] for r in detail["reports"]}

    await wait_for(grouped)
    lamp = await report(a, "路灯不亮", "站前广场")
    seat = await report(c, "座椅松动", "候车室")
    for incident in (lamp, seat):
        await alert_known(config, incident)
    assert (await Dispatcher(config, smoke, "调度员").act("acknowledge")).status_code == 202

    async def credited() -> dict[str, Any] | None:
        async with httpx.AsyncClient(headers=as_suite(config)) as client:
            answer = await client.get(
                f"http://127.0.0.1:{config.notify_port}/v1/contributions", params={"unit": unit}
            )
        body: dict[str, Any] = answer.json()
        counted = {row["name"]: row for row in body["reporters"]}
        return body if counted.get(a, {}).get("confirmed_reports") == 1 else None

    body = await wait_for(credited)
    rows = {row["name"]: row for row in body["reporters"]}
    assert [row["name"] for row in body["reporters"]] == [a, b, c]
    assert (rows[a]["reports"], rows[a]["confirmed_reports"], rows[a]["first_reports"]) == (2, 1, 2)
    assert rows[a]["first_of_confirmed"] == 1
    assert (rows[b]["reports"], rows[b]["confirmed_reports"], rows[b]["first_reports"]) == (1, 1, 0)
    assert (rows[c]["reports"], rows[c]["confirmed_reports"], rows[c]["first_reports"]) == (1, 0, 1)
    # A's reports took ten minutes and a moment to arrive: the median is in between.
    assert 250 < rows[a]["median_seconds_to_report"] < 350
    [whole_unit] = body["units"]
    assert whole_unit["name"] == unit
    assert (whole_unit["reports"], whole_unit["confirmed_reports"]) == (4, 2)
    assert (whole_unit["first_reports"], whole_unit["first_of_confirmed"]) == (3, 1)
