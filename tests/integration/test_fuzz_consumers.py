"""Malformed and unknown messages on every consumed topic: each malformed one is parked on
the topic's dead-letter twin with the reason, unknown event types are skipped, and the
valid event right behind them on the same partition is still processed.

About fifty messages per topic, the same list on `incidents.reports` (read by triage and
notify), `incidents.triage` and `incidents.alerts` (read by notify): random bytes, text
that is not JSON, JSON that is not an object, envelopes without a usable type or version,
known types with missing or wrong fields, versions this code does not know, huge strings,
deep nesting, a tombstone, odd Kafka keys and a good event keyed otherwise. All go to the
partition that the valid report, its triage decision and a dispatcher's note then use.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID, uuid4

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from qianliyan.shared.events import (
    Actor,
    ActorKind,
    AlertNoteAdded,
    AlertNoteAddedPayload,
    AlertRaised,
    AlertRaisedPayload,
    EventDecodeError,
    ReportSubmitted,
    ReportSubmittedPayload,
    ReportTriaged,
    ReportTriagedPayload,
    Severity,
    decode,
    encode,
)
from qianliyan.shared.topics import dead_letter_topic
from qianliyan.stack.config import StackConfig
from tests.integration.clients import as_suite
from tests.integration.topic_reader import read_topic, wait_for

pytestmark = pytest.mark.integration

TOPICS = ("incidents.reports", "incidents.triage", "incidents.alerts")
# Who reads each topic, and so who must dead-letter what it cannot read.
READERS = {
    "incidents.reports": {"qianliyan-triage", "qianliyan-notify"},
    "incidents.triage": {"qianliyan-notify"},
    "incidents.alerts": {"qianliyan-notify"},
}
CASE_HEADER = "fuzz.case"

Expect = Literal["dead", "skipped"]


@dataclass(frozen=True)
class Poison:
    """One message to produce, and what the consumers must do with it."""

    name: str
    value: bytes | None
    expect: Expect
    key: bytes | Literal["partition key"] | None = "partition key"


def _json(document: object) -> bytes:
    return json.dumps(document, ensure_ascii=False).encode()


def _templates(report_id: UUID) -> dict[str, dict[str, Any]]:
    """A valid event of each family, as JSON, to be broken field by field."""
    reporter = Actor(kind=ActorKind.REPORTER, id="fuzz")
    now = datetime.now(UTC)
    submitted = ReportSubmitted.first(
        key=f"report:{report_id}",
        actor=reporter,
        payload=ReportSubmittedPayload(
            report_id=report_id, text="fuzz", captured_at=now, received_at=now
        ),
    )
    triaged = ReportTriaged.caused_by(
        submitted,
        key=str(report_id),
        actor=Actor(kind=ActorKind.SERVICE, id="triage"),
        payload=ReportTriagedPayload(
            report_id=report_id,
            incident_id=report_id,
            severity=Severity.MINOR,
            rule_set_version="fuzz",
            captured_at=now,
        ),
    )
    note = AlertNoteAdded.first(
        key=str(report_id),
        actor=Actor(kind=ActorKind.DISPATCHER, id="fuzz"),
        payload=AlertNoteAddedPayload(incident_id=report_id, acted_on_version=0, note="fuzz"),
    )
    raised = AlertRaised.first(
        key=str(report_id),
        actor=Actor(kind=ActorKind.SERVICE, id="notify"),
        payload=AlertRaisedPayload(
            incident_id=report_id,
            round=0,
            severity=Severity.MAJOR,
            route="fuzz",
            routing_version="fuzz",
        ),
    )
    return {
        event.type: event.model_dump(mode="json") for event in (submitted, triaged, note, raised)
    }


def _changed(document: dict[str, Any], change: Callable[[dict[str, Any]], object]) -> bytes:
    copy = json.loads(json.dumps(document))
    change(copy)
    return _json(copy)


def poisons(report_id: UUID, seed: int) -> list[Poison]:
    """The messages, the same for every topic; `seed` fixes the random bytes."""
    rng = random.Random(seed)
    templates = _templates(report_id)
    submitted, triaged = templates["ReportSubmitted"], templates["ReportTriaged"]
    note, raised = templates["AlertNoteAdded"], templates["AlertRaised"]
    dead: list[tuple[str, bytes | None]] = [
        # Bytes that are not text, or text that is not JSON.
        *((f"random bytes ({n})", rng.randbytes(n)) for n in (1, 16, 300, 4096)),
        ("zero bytes", b"\0" * 64),
        ("invalid UTF-8", b'{"type": "\xff\xfe"}'),
        ("UTF-16 JSON", '{"type": "ReportSubmitted", "version": 1}'.encode("utf-16")),
        ("empty value", b""),
        ("not JSON", b"{not json"),
        ("HTML", b"<html><body>503 Service Unavailable</body></html>"),
        ("truncated JSON", _json(submitted)[:-40]),
        ("NaN", b"NaN"),
        # JSON, but not an object.
        *((f"JSON {text}", text.encode()) for text in ("null", "42", '"ReportSubmitted"', "true")),
        ("JSON list", b"[]"),
        ("JSON list of an event", _json([submitted])),
        # Envelopes without a usable type or version.
        ("empty object", b"{}"),
        ("no version", _json({"type": "ReportSubmitted", "payload": {}})),
        ("no type", _json({"version": 1, "payload": {}})),
        ("type is a number", _json({"type": 7, "version": 1})),
        ("type is null", _json({"type": None, "version": 1})),
        ("version is text", _changed(submitted, lambda d: d.update(version="1"))),
        ("version is a float", _changed(submitted, lambda d: d.update(version=1.0))),
        ("version is null", _changed(submitted, lambda d: d.update(version=None))),
        # Versions this code does not understand.
        ("newer version", _changed(submitted, lambda d: d.update(version=2))),
        ("version 0", _changed(triaged, lambda d: d.update(version=0))),
        ("negative version", _changed(note, lambda d: d.update(version=-1))),
        ("enormous version", _changed(raised, lambda d: d.update(version=10**30))),
        # Known types with fields missing or wrong.
        ("payload missing", _changed(submitted, lambda d: d.pop("payload"))),
        ("payload null", _changed(triaged, lambda d: d.update(payload=None))),
        ("payload a list", _changed(note, lambda d: d.update(payload=[]))),
        ("no report_id", _changed(submitted, lambda d: d["payload"].pop("report_id"))),
        ("report_id not a UUID", _changed(triaged, lambda d: d["payload"].update(report_id="x"))),
        ("text a number", _changed(submitted, lambda d: d["payload"].update(text=5))),
        ("unknown severity", _changed(triaged, lambda d: d["payload"].update(severity="doom"))),
        ("no actor", _changed(note, lambda d: d.pop("actor"))),
        ("empty key", _changed(raised, lambda d: d.update(key=""))),
        (
            "time without zone",
            _changed(submitted, lambda d: d.update(occurred_at="2026-11-25T02:10:00")),
        ),
        ("time not a time", _changed(triaged, lambda d: d.update(occurred_at="yesterday"))),
        ("correlation not a UUID", _changed(note, lambda d: d.update(correlation_id=12))),
        ("round negative", _changed(raised, lambda d: d["payload"].update(round=-1))),
        ("note empty", _changed(note, lambda d: d["payload"].update(note=""))),
        # Valid JSON and a valid model, but PostgreSQL could store it nowhere.
        ("text holding NUL", _changed(submitted, lambda d: d["payload"].update(text="a\u0000b"))),
        ("note holding NUL", _changed(note, lambda d: d["payload"].update(note="\u0000"))),
        # Huge strings: past the field limits, and a type name nobody could mean.
        ("huge text", _changed(submitted, lambda d: d["payload"].update(text="报" * 100_000))),
        ("huge note", _changed(note, lambda d: d["payload"].update(note="x" * 300_000))),
        # A tombstone (compaction's delete marker) is not an event.
        ("tombstone", None),
    ]
    skipped: list[tuple[str, bytes | None]] = [
        ("unknown type", _json({"type": "ReportTeleported", "version": 1, "payload": {}})),
        (
            "unknown type, other case",
            _changed(submitted, lambda d: d.update(type="reportsubmitted")),
        ),
        ("unknown type, empty name", _json({"type": "", "version": 1})),
        ("unknown type, huge name", _json({"type": "T" * 200_000, "version": 1})),
        ("unknown type, newer version", _json({"type": "ReportEscalated", "version": 99})),
    ]
    odd_keys: list[Poison] = [
        Poison("no key", b"{not json", "dead", key=None),
        Poison("key not UTF-8", b"{not json", "dead", key=b"\xff\xfe\x00"),
        Poison("huge key", b"{not json", "dead", key=b"k" * 10_000),
        # A good event whose record is keyed otherwise may sit apart from its key's others.
        Poison("key not the event's", _json(submitted), "dead", key=b"not-the-event-key"),
    ]
    # Once, before the codec refused it, this one message stopped every consumer.
    dead.append(("deep nesting", DEEP_NESTING))
    return [
        *(Poison(name, value, "dead") for name, value in dead),
        *(Poison(name, value, "skipped") for name, value in skipped),
        *odd_keys,
    ]


# 5 KB of JSON nested deeper than Python's recursion limit.
DEEP_NESTING = b"[" * 5000


def test_deeply_nested_json_is_a_decode_error_not_a_crash() -> None:
    with pytest.raises(EventDecodeError, match="nested too deeply"):
        decode(DEEP_NESTING)


def _partition_of(key: str, partitions: set[int]) -> int:
    """The partition Kafka's default partitioner gives `key`, as the services' producers do."""
    ordered = sorted(partitions)
    partition: int = DefaultPartitioner()(key.encode(), ordered, ordered)
    return partition


async def test_malformed_messages_are_dead_lettered_and_the_partition_moves_on(
    running_stack: StackConfig,
) -> None:
    config = running_stack
    run = uuid4().hex[:12]
    report_id = uuid4()
    # A report alone is its own incident, so its triage decision and the note on it are
    # keyed by the report's id; the report itself by its area (none here: the report).
    keys = {
        "incidents.reports": f"report:{report_id}",
        "incidents.triage": str(report_id),
        "incidents.alerts": str(report_id),
    }
    cases = poisons(report_id, seed=20261125)
    sent: dict[str, tuple[str, Poison, int]] = {}  # case id -> topic, poison, partition
    partitions: dict[str, set[int]] = {topic: set() for topic in TOPICS}  # poison and valid

    producer = AIOKafkaProducer(
        bootstrap_servers=config.kafka_bootstrap, acks="all", max_request_size=4 * 1024 * 1024
    )
    await producer.start()
    try:
        for topic in TOPICS:
            partition = _partition_of(keys[topic], await producer.partitions_for(topic))
            partitions[topic].add(partition)
            for number, poison in enumerate(cases):
                case_id = f"{run}:{topic}:{number}"
                key = keys[topic].encode() if poison.key == "partition key" else poison.key
                await producer.send_and_wait(
                    topic,
                    poison.value,
                    key=key,
                    partition=partition,
                    headers=[(CASE_HEADER, case_id.encode())],
                )
                sent[case_id] = (topic, poison, partition)
        # Then the real thing, on the same partitions, behind every poison message.
        valid = _valid_report(report_id, keys["incidents.reports"])
        written = await producer.send_and_wait(
            "incidents.reports", encode(valid), key=valid.key.encode()
        )
        partitions["incidents.reports"].add(written.partition)
    finally:
        await producer.stop()

    # Triage read past the poison to triage the report, and notify read past it on two
    # topics to project the report and its decision.
    view = await wait_for(lambda: _report_view(config, report_id), timeout_s=90)
    assert view["incident_id"] == str(report_id), "the report joined another incident"
    # Notify reads past the poison on incidents.alerts too: a dispatcher's note arrives.
    await _note_arrives(config, report_id, note=f"fuzz note {run}")

    # The valid events really came after the poison, on the same partitions.
    for topic in ("incidents.triage", "incidents.alerts"):
        records = await read_topic(config.kafka_bootstrap, topic)
        partitions[topic] |= {
            record.partition
            for record in records
            if record.key == keys[topic].encode() and not _case_of(record.headers)
        }
    assert all(len(found) == 1 for found in partitions.values()), partitions

    # Every malformed message is parked, once per reader, saying why.
    expected = {
        case_id: READERS[topic]
        for case_id, (topic, poison, _) in sent.items()
        if poison.expect == "dead"
    }
    letters = await wait_for(lambda: _dead_letters(config, run, expected), timeout_s=90)
    for case_id, found in letters.items():
        topic, poison, partition = sent[case_id]
        if poison.expect == "skipped":
            raise AssertionError(f"{poison.name!r} on {topic} was dead-lettered, not skipped")
        for group, letter in found.items():
            where = f"{poison.name!r} on {topic}, dead-lettered by {group}"
            assert letter["error"], f"{where}: no reason given"
            assert letter["origin"] == (topic, partition), where
            assert letter["value"] == poison.value, f"{where}: the bytes were changed"
            expected_key = keys[topic].encode() if poison.key == "partition key" else poison.key
            assert letter["key"] == expected_key, f"{where}: the key was changed"

    for port in (config.triage_port, config.notify_port):
        async with httpx.AsyncClient(headers=as_suite(config)) as client:
            live = await client.get(f"http://127.0.0.1:{port}/health/live")
        assert live.status_code == 200, live.text


def _valid_report(report_id: UUID, key: str) -> ReportSubmitted:
    now = datetime.now(UTC)
    return ReportSubmitted.first(
        key=key,
        actor=Actor(kind=ActorKind.REPORTER, id="fuzz-reporter"),
        payload=ReportSubmittedPayload(
            report_id=report_id,
            text=f"站台照明灯闪烁 fuzz {report_id.hex[:8]}",
            captured_at=now,
            received_at=now,
        ),
    )


async def _report_view(config: StackConfig, report_id: UUID) -> dict[str, Any] | None:
    async with httpx.AsyncClient(
        headers=as_suite(config), base_url=f"http://127.0.0.1:{config.notify_port}"
    ) as client:
        answer = await client.get(f"/v1/reports/{report_id}")
    if answer.status_code != 200:
        return None
    view: dict[str, Any] = answer.json()
    return view if view["status"] != "received" else None


async def _note_arrives(config: StackConfig, incident_id: UUID, *, note: str) -> None:
    async with httpx.AsyncClient(
        headers=as_suite(config), base_url=f"http://127.0.0.1:{config.notify_port}"
    ) as client:
        incident = (await client.get(f"/v1/incidents/{incident_id}")).json()
        accepted = await client.post(
            f"/v1/incidents/{incident_id}/actions",
            json={
                "action": "note",
                "note": note,
                "expected_version": incident["version"],
            },
        )
        assert accepted.status_code == 202, accepted.text

        async def noted() -> bool:
            timeline = (await client.get(f"/v1/incidents/{incident_id}")).json()["timeline"]
            return note in json.dumps(timeline, ensure_ascii=False)

        await wait_for(noted, timeout_s=60)


async def _dead_letters(
    config: StackConfig, run: str, expected: dict[str, set[str]]
) -> dict[str, dict[str, dict[str, Any]]] | None:
    """This run's dead letters by case and consumer group, once all expected are there."""
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for topic in TOPICS:
        for record in await read_topic(config.kafka_bootstrap, dead_letter_topic(topic)):
            headers = dict(record.headers or ())
            if not _case_of(record.headers).startswith(f"{run}:"):
                continue
            case_id = _case_of(record.headers)
            group = headers["dlq.consumer_group"].decode()
            found.setdefault(case_id, {})[group] = {
                "error": headers.get("dlq.error", b"").decode(errors="replace"),
                "origin": (
                    headers["dlq.origin.topic"].decode(),
                    int(headers["dlq.origin.partition"]),
                ),
                "value": record.value,
                "key": record.key,
            }
    missing = {
        case_id: groups - set(found.get(case_id, {}))
        for case_id, groups in expected.items()
        if groups - set(found.get(case_id, {}))
    }
    return None if missing else found


def _case_of(headers: Sequence[tuple[str, bytes]] | None) -> str:
    """The fuzz case a record carries in its headers; "" for any other record."""
    return dict(headers or ()).get(CASE_HEADER, b"").decode()
