"""One report can be followed through every service: its trace context rides in the Kafka
headers from ingest through triage, and log lines about it carry its correlation id."""

from __future__ import annotations

from uuid import uuid4

import pytest
from aiokafka import ConsumerRecord

from qianliyan.shared.events import EventDecodeError, ReportSubmitted, ReportTriaged, decode
from qianliyan.stack.config import StackConfig
from tests.integration.alert_receivers import alert_known
from tests.integration.clients import submit
from tests.integration.topic_reader import read_topic

pytestmark = pytest.mark.integration


def trace_id(headers: list[tuple[str, bytes]] | None) -> str | None:
    """The trace id of a W3C traceparent header: version-traceid-spanid-flags."""
    found = dict(headers or ()).get("traceparent")
    return found.decode().split("-")[1] if found else None


def about(
    records: list[ConsumerRecord], kind: type[ReportSubmitted | ReportTriaged], report_id: str
) -> list[tuple[ConsumerRecord, ReportSubmitted | ReportTriaged]]:
    """The records in `records` of events of `kind` about `report_id`."""
    found = []
    for record in records:
        try:
            event = decode(record.value)
        except EventDecodeError:
            continue
        if isinstance(event, kind) and str(event.payload.report_id) == report_id:
            found.append((record, event))
    return found


async def test_the_trace_of_a_report_continues_from_ingest_through_triage(
    running_stack: StackConfig,
) -> None:
    config = running_stack
    answer = await submit(config, {"text": "站台冒烟", "place": f"追踪{uuid4().hex[:6]}"}, [])
    report_id = answer.json()["report_id"]
    await alert_known(config, report_id)

    reports = await read_topic(config.kafka_bootstrap, "incidents.reports")
    decisions = await read_topic(config.kafka_bootstrap, "incidents.triage")
    [(submitted, event)] = about(reports, ReportSubmitted, report_id)
    [(triaged, _)] = about(decisions, ReportTriaged, report_id)
    started = trace_id(submitted.headers)
    assert started is not None and started != "0" * 32
    assert trace_id(triaged.headers) == started  # triage continued the report's trace
    assert dict(submitted.headers)["correlation_id"].decode() == str(event.correlation_id)
