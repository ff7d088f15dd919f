"""Related reports become one incident, also across a restart of triage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import httpx
import pytest
from aiokafka import TopicPartition

from qianliyan.shared.kafka import read_partition
from qianliyan.stack.config import StackConfig
from qianliyan.stack.infra import Service
from tests.integration.clients import TRIAGED, as_suite, submit
from tests.integration.topic_reader import read_topic, wait_for

pytestmark = pytest.mark.integration


async def triaged(config: StackConfig, report_id: str) -> dict[str, object] | None:
    async with httpx.AsyncClient(headers=as_suite(config)) as client:
        answer = await client.get(f"http://127.0.0.1:{config.notify_port}/v1/reports/{report_id}")
    body: dict[str, object] = answer.json()
    return body if answer.status_code == 200 and body["status"] in TRIAGED else None


async def test_three_reporters_of_one_crowding_make_one_more_severe_incident(
    running_stack: StackConfig,
) -> None:
    config = running_stack
    place = f"候车室{uuid4().hex[:6]}"  # a place no other test uses

    async def report(reporter: str, text: str) -> dict[str, object]:
        answer = await submit(config, {"text": text, "place": place, "reporter_id": reporter}, [])
        assert answer.status_code == 202, answer.text
        view: dict[str, object] = await wait_for(
            lambda: triaged(config, answer.json()["report_id"])
        )
        return view

    first = await report("w-1", "候车室拥挤，排队很长")
    second = await report("w-2", "候车室很拥挤")
    # Triage restarts: its grouping is folded again from the log before it goes on.
    triage = Service(config, "triage")
    triage.stop()
    triage.start()
    third = await report("w-3", "候车室拥挤，需要疏导")
    elsewhere = await submit(config, {"text": "候车室拥挤", "place": f"{place}-东"}, [])
    other = await wait_for(lambda: triaged(config, elsewhere.json()["report_id"]))

    assert first["incident_id"] == second["incident_id"] == third["incident_id"]
    assert first["incident_id"] == first["report_id"]
    assert other["incident_id"] != first["incident_id"]
    assert [first["severity"], second["severity"], third["severity"]] == ["minor", "minor", "major"]
    reasons = {reason["rule_id"] for reason in third["reasons"]}  # type: ignore[attr-defined]
    assert {"crowding", "same-incident", "independent-reporters"} <= reasons


async def test_a_partition_is_re_read_only_as_far_back_as_the_grouping_needs(
    running_stack: StackConfig,
) -> None:
    config = running_stack
    answer = await submit(config, {"text": "站台积水", "place": f"回读{uuid4().hex[:6]}"}, [])
    assert answer.status_code == 202
    records = await read_topic(config.kafka_bootstrap, "incidents.reports")
    mine = next(r for r in records if answer.json()["report_id"].encode() in (r.value or b""))
    partition = TopicPartition("incidents.reports", mine.partition)
    end = mine.offset + 1

    everything = await read_partition(config.kafka_bootstrap, partition, until_offset=end)
    recent = await read_partition(
        config.kafka_bootstrap,
        partition,
        until_offset=end,
        since=datetime.now(UTC) - timedelta(seconds=60),
    )
    future = await read_partition(
        config.kafka_bootstrap,
        partition,
        until_offset=end,
        since=datetime.now(UTC) + timedelta(hours=1),
    )
    assert everything[-1].offset == recent[-1].offset == mine.offset
    assert 1 <= len(recent) <= len(everything)
    assert all(
        r.timestamp >= (datetime.now(UTC) - timedelta(seconds=90)).timestamp() * 1000
        for r in recent
    )
    assert future == []
