"""Every service serves Prometheus metrics: requests, events consumed and produced per
topic, batch latency, consumer lag, dead letters and deliveries."""

from __future__ import annotations

from uuid import uuid4

import pytest

from qianliyan.stack.config import StackConfig
from tests.integration.alert_receivers import alert_known
from tests.integration.clients import scrape, submit, total

pytestmark = pytest.mark.integration


async def test_each_service_counts_its_work(running_stack: StackConfig) -> None:
    config = running_stack
    answer = await submit(config, {"text": "站台冒烟", "place": f"指标{uuid4().hex[:6]}"}, [])
    assert answer.status_code == 202
    await alert_known(config, answer.json()["report_id"])

    ingest = await scrape(config.ingest_port)
    assert total(ingest["http_requests_total"], handler="/v1/reports", method="POST") >= 1
    produced = ingest["qianliyan_events_produced_total"]
    assert total(produced, topic="incidents.reports", type="ReportSubmitted") >= 1

    triage = await scrape(config.triage_port)
    consumed = triage["qianliyan_events_consumed_total"]
    assert total(consumed, topic="incidents.reports", type="ReportSubmitted") >= 1
    produced = triage["qianliyan_events_produced_total"]
    assert total(produced, topic="incidents.triage", type="ReportTriaged") >= 1
    assert total(triage["qianliyan_consumer_lag"], group="qianliyan-triage") >= 0
    assert "qianliyan_batch_processing_seconds_count" in triage

    notify = await scrape(config.notify_port)
    consumed = notify["qianliyan_events_consumed_total"]
    assert total(consumed, topic="incidents.triage", type="ReportTriaged") >= 1
    lag = notify["qianliyan_consumer_lag"]
    assert {dict(key)["topic"] for key in lag} >= {"incidents.reports", "incidents.triage"}
    assert total(notify["qianliyan_batch_processing_seconds_count"]) >= 1
    # Families of what has not happened yet in this process are still declared.
    assert "qianliyan_alert_deliveries" in notify and "qianliyan_dead_letters" in notify
