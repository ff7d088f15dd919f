"""Kafka is the source of truth: a rebuild of every read model from the topics equals live.

It runs over the whole history of the suite's stack so far (alerts delivered and failed,
escalations, overrides, acknowledgements, re-triage, dead letters) plus a scenario of its
own, and it pages nobody: delivery events are projected, not performed.
"""

from __future__ import annotations

import asyncio
from uuid import UUID, uuid4

import asyncpg
import pytest

from qianliyan.notify.rebuild import CheckResult, check
from qianliyan.shared.kafka import group_lag
from qianliyan.shared.settings import KafkaSettings
from qianliyan.stack.config import StackConfig
from tests.integration.alert_receivers import alert_detail, alert_known
from tests.integration.clients import jpeg_photo, submit
from tests.integration.test_incident_actions import Dispatcher
from tests.integration.topic_reader import wait_for

pytestmark = pytest.mark.integration

TOPICS = ("incidents.reports", "incidents.triage", "incidents.alerts")


async def notify_caught_up(config: StackConfig) -> bool:
    lags = await group_lag(config.kafka_bootstrap, "qianliyan-notify", *TOPICS)
    return all(lag.behind == 0 for lag in lags)


async def test_a_rebuild_from_the_topics_equals_the_live_read_models(
    running_stack: StackConfig,
) -> None:
    config = running_stack
    place = f"重建{uuid4().hex[:6]}"
    first = await submit(config, {"text": "候车室冒烟", "place": place}, [jpeg_photo()])
    incident_id = first.json()["report_id"]
    await alert_known(config, incident_id)
    await submit(config, {"text": "候车室有烟味", "place": place, "reporter_id": "w-9"}, [])

    async def both_reports_in() -> bool:
        return bool((await alert_detail(config, incident_id))["report_count"] == 2)

    await wait_for(both_reports_in)
    dispatcher = Dispatcher(config, incident_id, "调度员丙")
    override = await dispatcher.act(
        "override_severity", severity="major", reason="已确认为电器冒烟"
    )
    assert override.status_code == 202
    assert (await dispatcher.act("acknowledge")).status_code == 202
    assert (await dispatcher.act("resolve", resolution="已断电处理")).status_code == 202
    assert (await dispatcher.act("reopen", reason="再次冒烟")).status_code == 202

    kafka = KafkaSettings(bootstrap_servers=config.kafka_bootstrap)
    result: CheckResult | None = None
    # Events still on their way (the alerter publishes each second) show as a difference
    # in the newest rows; a real one stays. Three looks, a quiet moment apart.
    for _ in range(3):
        await wait_for(lambda: notify_caught_up(config), timeout_s=60)
        await asyncio.sleep(2)
        result = await check(kafka, config.postgres_dsn, lambda done, total: None)
        if result.identical:
            break
    assert result is not None
    assert result.differences == {}
    assert result.events > 0 and result.rows["incident_timeline"] > 0
    assert result.rows["alert_deliveries"] > 0 or result.rows["alerts"] > 0

    # The check sees a read model that drifted from the log, and names the row.
    live = await asyncpg.connect(config.postgres_dsn)
    try:
        await live.execute(
            "UPDATE incidents SET assignee = 'not in the log' WHERE incident_id = $1",
            UUID(incident_id),
        )
        drifted = await check(kafka, config.postgres_dsn, lambda done, total: None)
        await live.execute(
            "UPDATE incidents SET assignee = NULL WHERE incident_id = $1", UUID(incident_id)
        )
    finally:
        await live.close()
    # (Another incident may differ too if an event was on its way; the drift is ours.)
    tampered = [r for r in drifted.differences["incidents"].only_live if "not in the log" in r]
    assert len(tampered) == 1 and incident_id in tampered[0]
