"""Re-triage against the real log: the dry run produces nothing, --apply moves the read model."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from uuid import uuid4

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from qianliyan.shared.events import ReportTriaged
from qianliyan.shared.kafka import create_producer, decode_records
from qianliyan.stack.config import StackConfig
from qianliyan.stack.infra import Infra
from qianliyan.triage.retriage import apply_plan, build_plan, settle_earlier_apply
from tests.integration.clients import TRIAGED, as_suite, default_rules_with, submit, triage_settings
from tests.integration.topic_reader import broker_serving, read_topic, wait_for

pytestmark = pytest.mark.integration


async def report_view(config: StackConfig, report_id: str) -> dict[str, object]:
    async with httpx.AsyncClient(headers=as_suite(config)) as client:
        answer = await client.get(f"http://127.0.0.1:{config.notify_port}/v1/reports/{report_id}")
    return answer.json() if answer.status_code == 200 else {}


async def test_a_stricter_crowding_rule_over_history(running_stack: StackConfig) -> None:
    config = running_stack
    accepted = await submit(config, {"text": "候车室拥挤，需要疏导"}, [])
    report_id = accepted.json()["report_id"]
    view = await wait_for(lambda: _triaged(config, report_id))
    assert view["severity"] == "minor"

    stricter = default_rules_with(
        "crowding-major",
        "[拥挤, 踩踏, 擁擠, crowd]\n    severity: minor",
        "[拥挤, 踩踏, 擁擠, crowd]\n    severity: major",
    )
    settings = triage_settings(config)
    triaged_before = len(await read_topic(config.kafka_bootstrap, "incidents.triage"))

    plan = await build_plan(settings, stricter)
    [change] = [c for c in plan.changes if str(c.report_id) == report_id]
    assert (change.before, change.after, change.direction) == ("minor", "major", "up")
    assert len(await read_topic(config.kafka_bootstrap, "incidents.triage")) == triaged_before

    await apply_plan(settings, plan)
    after = await wait_for(lambda: _at_version(config, report_id, "crowding-major"))
    assert after["severity"] == "major"


async def test_an_apply_cut_short_keeps_its_batches_and_a_second_run_finishes_it(
    running_stack: StackConfig,
) -> None:
    """Each batch is its own transaction (a year of history outlasts one), so a run cut
    short leaves what it committed; running it again produces the rest, none twice."""
    config = running_stack
    for text in ("站台积水", "道岔故障", "信号故障"):
        accepted = await submit(config, {"text": text}, [])
        # Decided live first: a live decision after the plan would count as the latest.
        await wait_for(lambda: _triaged(config, accepted.json()["report_id"]))  # noqa: B023
    settings = triage_settings(config)
    version = f"resumed-apply-{uuid4().hex[:8]}"  # the suite's data may outlive a run
    rules = default_rules_with(version, "", "")  # the suite's rules, under a new version
    plan = await build_plan(settings, rules)
    everything = {event.event_id for event in plan.to_produce}
    batch = max(1, len(everything) // 3)

    def cut_short(done: int, total: int) -> None:
        raise RuntimeError(f"cut short after {done} of {total}")

    with pytest.raises(RuntimeError, match=f"cut short after {batch} of {len(everything)}"):
        await apply_plan(settings, plan, batch_events=batch, progress=cut_short)

    again = await build_plan(settings, rules)
    assert len(again.in_log) == batch
    committed: list[int] = []
    produced = await apply_plan(
        settings, again, batch_events=batch, progress=lambda done, _: committed.append(done)
    )
    rest = len(everything) - batch
    assert produced == rest
    assert committed == [*range(batch, rest, batch), rest]

    # The topic holds the fuzz tests' unreadable records too: read as notify does.
    decisions, _ = decode_records(await read_topic(config.kafka_bootstrap, "incidents.triage"))
    ours = Counter(
        event.event_id
        for _, event in decisions
        if isinstance(event, ReportTriaged) and event.payload.rule_set_version == version
    )
    assert set(ours) == everything
    assert {event_id: n for event_id, n in ours.items() if n != 1} == {}


# A wait with no end would hold the suite's broker paused until the timeout.
@pytest.mark.timeout(120)
async def test_an_apply_with_kafka_quiet_ends_at_its_deadline_and_a_second_run_finishes_it(
    running_stack: StackConfig,
) -> None:
    """The broker stops answering (paused: its connections stay open, so nothing is
    refused) after the first batch: the run says so at its deadline rather than waiting
    for ever, and the next one produces the rest, none twice."""
    config = running_stack
    for text in ("站台照明故障", "电梯停运"):
        accepted = await submit(config, {"text": text}, [])
        await wait_for(lambda: _triaged(config, accepted.json()["report_id"]))  # noqa: B023
    settings = triage_settings(config)
    version = f"quiet-kafka-{uuid4().hex[:8]}"
    rules = default_rules_with(version, "", "")
    plan = await build_plan(settings, rules)
    everything = {event.event_id for event in plan.to_produce}
    batch = max(1, len(everything) // 2)
    kafka = Infra(config).kafka.status().pid
    assert kafka is not None

    def broker_stops(done: int, total: int) -> None:
        os.kill(kafka, signal.SIGSTOP)

    # In an event loop of its own, which ends with the run, as the command's process does.
    cut_short = apply_plan(settings, plan, batch_events=batch, progress=broker_stops, deadline_s=5)
    try:
        with pytest.raises(
            TimeoutError, match=f"within 5 s while producing decisions {batch + 1} "
        ):
            await asyncio.to_thread(asyncio.run, cut_short)
    finally:
        os.kill(kafka, signal.SIGCONT)
    await broker_serving(config.kafka_bootstrap)

    # Its records never reached Kafka: they are planned again, and produced once.
    await settle_earlier_apply(settings)
    again = await build_plan(settings, rules)
    assert len(again.in_log) == batch
    assert await apply_plan(settings, again, batch_events=batch) == len(everything) - batch
    decisions, _ = decode_records(await read_topic(config.kafka_bootstrap, "incidents.triage"))
    ours = Counter(
        event.event_id
        for _, event in decisions
        if isinstance(event, ReportTriaged) and event.payload.rule_set_version == version
    )
    assert ours == Counter(everything)


async def test_an_apply_first_settles_a_batch_an_earlier_run_left_open(
    running_stack: StackConfig,
) -> None:
    """A run killed mid-batch leaves its transaction open, and a committed reader of the
    log stops at it until Kafka aborts it (a minute on): a plan read then would miss every
    decision after it. `--apply` has it aborted (or its commit finished) first."""
    config = running_stack
    settings = triage_settings(config)

    async def killed_mid_batch() -> tuple[TopicPartition, int]:
        producer = create_producer(
            settings.kafka,
            client_id="tests",
            transactional_id=f"{settings.transactional_ids}-retriage",
        )
        await producer.start()
        await producer.begin_transaction()
        sent = await producer.send_and_wait(settings.kafka.triage_topic, b"never committed")
        return TopicPartition(sent.topic, sent.partition), sent.offset

    # Its event loop ends with it, as a killed process's would, leaving the batch open.
    partition, offset = await asyncio.to_thread(asyncio.run, killed_mid_batch())
    assert await committed_end(config.kafka_bootstrap, partition) == offset
    await settle_earlier_apply(settings)
    # The record and its abort marker are behind the reader's end now, and unread.
    assert await committed_end(config.kafka_bootstrap, partition) >= offset + 2


async def committed_end(bootstrap: str, partition: TopicPartition) -> int:
    """Where a committed reader of `partition` stops now."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed")
    await consumer.start()
    try:
        consumer.assign([partition])
        return int((await consumer.end_offsets([partition]))[partition])
    finally:
        await consumer.stop()


async def _triaged(config: StackConfig, report_id: str) -> dict[str, object] | None:
    view = await report_view(config, report_id)
    return view if view.get("status") in TRIAGED else None


async def _at_version(
    config: StackConfig, report_id: str, version: str
) -> dict[str, object] | None:
    view = await report_view(config, report_id)
    return view if view.get("rule_set_version") == version else None


async def test_triage_says_which_rules_it_applies(running_stack: StackConfig) -> None:
    async with httpx.AsyncClient(headers=as_suite(running_stack)) as client:
        answer = await client.get(f"http://127.0.0.1:{running_stack.triage_port}/v1/rules")
    assert answer.status_code == 200
    body = answer.json()
    assert body["version"] == "2026-12-08.5"
    assert body["file"] == str(running_stack.triage_rules_file)
    assert "fire-smoke" in body["rules"]
    assert body["refused_edit"] is None
    assert body["categories_off_the_page"] == {}


async def test_a_bad_rule_edit_is_refused_by_line_and_a_good_one_applies(
    running_stack: StackConfig,
) -> None:
    config = running_stack
    assert config.triage_rules_file is not None
    rules_file = config.triage_rules_file
    original = rules_file.read_text(encoding="utf-8")
    url = f"http://127.0.0.1:{config.triage_port}/v1/rules"
    try:
        rules_file.write_text(original.replace("severity: minor", "severity: tiny"), "utf-8")
        os.utime(rules_file, ns=(1, 1))
        async with httpx.AsyncClient(headers=as_suite(config)) as client:
            refused = (await client.get(url)).json()
        assert refused["version"] == "2026-12-08.5"
        # The line of the one minor rule's severity, as the file stands.
        line = original[: original.index("severity: minor")].count("\n") + 1
        assert f"line {line}: rules.7.severity" in refused["refused_edit"]

        # Reports keep being triaged with the last good rules meanwhile.
        during = await submit(config, {"text": "站台拥挤"}, [])
        view = await wait_for(lambda: _triaged(config, during.json()["report_id"]))
        assert view["rule_set_version"] == "2026-12-08.5"

        # A rule naming a category the page does not offer loads, and is pointed out.
        misspelt = "  - id: signal-category\n    summary: x\n    categories: [singal]\n"
        edited = original.replace('"2026-12-08.5"', '"2026-12-08.6"')
        rules_file.write_text(f"{edited.rstrip()}\n{misspelt}    raise_by: 0\n", "utf-8")
        os.utime(rules_file, ns=(2, 2))
        after = await submit(config, {"text": "站台拥挤"}, [])
        view = await wait_for(lambda: _triaged(config, after.json()["report_id"]))
        assert view["rule_set_version"] == "2026-12-08.6"
        async with httpx.AsyncClient(headers=as_suite(config)) as client:
            applied = (await client.get(url)).json()
        assert applied["categories_off_the_page"] == {
            "signal-category": ["'singal' (did you mean 'signal'?)"]
        }
    finally:
        rules_file.write_text(original, "utf-8")
        os.utime(rules_file, ns=(3, 3))
