"""A dispatcher's severity override: one winner among concurrent ones, kept by a re-triage."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import httpx
import pytest

from qianliyan.stack.config import StackConfig
from qianliyan.triage.retriage import apply_plan, build_plan
from tests.integration.clients import (
    as_suite,
    default_rules_with,
    override_severity,
    submit,
    triage_settings,
)
from tests.integration.topic_reader import wait_for

pytestmark = pytest.mark.integration


async def incident(config: StackConfig, incident_id: str) -> dict[str, object] | None:
    async with httpx.AsyncClient(headers=as_suite(config)) as client:
        answer = await client.get(
            f"http://127.0.0.1:{config.notify_port}/v1/incidents/{incident_id}"
        )
    return answer.json() if answer.status_code == 200 else None


async def test_an_override_wins_once_and_survives_a_retriage(running_stack: StackConfig) -> None:
    config = running_stack
    accepted = await submit(
        config, {"text": "道岔信号故障", "place": f"咽喉区{uuid4().hex[:6]}"}, []
    )
    incident_id = accepted.json()["report_id"]  # a lone report opens its own incident

    async def settled() -> dict[str, object] | None:
        # The incident exists once the triage is projected, but the submission (another
        # topic) may come after it and move the version on: wait for both.
        async with httpx.AsyncClient(headers=as_suite(config)) as client:
            answer = await client.get(
                f"http://127.0.0.1:{config.notify_port}/v1/reports/{incident_id}"
            )
        report = answer.json() if answer.status_code == 200 else {}
        if report.get("text") is None or report.get("severity") is None:
            return None
        return await incident(config, incident_id)

    before = await wait_for(settled)
    assert before["severity"] == before["rule_severity"] == "major"

    first, second = await asyncio.gather(
        override_severity(config, incident_id, before["version"], "critical", "dispatcher-a"),
        override_severity(config, incident_id, before["version"], "minor", "dispatcher-b"),
    )
    assert sorted([first.status_code, second.status_code]) == [202, 409]
    winner, loser = (first, second) if first.status_code == 202 else (second, first)
    # Taken while the winner's event is on its way, stale once it is projected: either
    # way the loser is told to reload, and never that version N is not N.
    refusal = loser.json()
    if refusal["title"] == "Incident changing":
        assert f"action on version {before['version']} is being recorded" in refusal["detail"]
    else:
        assert refusal["title"] == "Incident changed"
        assert f"at version {before['version']}," not in refusal["detail"]
    assert "decide again" in refusal["detail"]
    expected = "critical" if winner is first else "minor"

    async def overridden() -> dict[str, object] | None:
        found = await incident(config, incident_id)
        return found if found and found["override_severity"] else None

    after = await wait_for(overridden)
    assert after["severity"] == expected
    assert after["version"] == winner.json()["incident_version"]

    stale = await override_severity(config, incident_id, before["version"], "info", "dispatcher-c")
    assert stale.status_code == 409

    # Rules that make signal failures minor, run over history: the override still wins.
    softer = default_rules_with(
        "soft-signals",
        "紅光帶, signal failure]\n    severity: major",
        "紅光帶, signal failure]\n    severity: minor",
    )
    settings = triage_settings(config)
    await apply_plan(settings, await build_plan(settings, softer))

    async def retriaged() -> dict[str, object] | None:
        found = await incident(config, incident_id)
        return found if found and found["rule_severity"] == "minor" else None

    final = await wait_for(retriaged)
    assert final["severity"] == expected
