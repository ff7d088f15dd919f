"""The event contracts: round trips, unknown and bad messages, and schema drift."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest
from aiokafka import ConsumerRecord

from qianliyan.shared.events import (
    Actor,
    ActorKind,
    EventDecodeError,
    ReportSubmitted,
    ReportSubmittedPayload,
    UnknownEvent,
    codec,
    decode,
    encode,
)
from qianliyan.shared.events.envelope import derived_event_id
from qianliyan.shared.events.reports import correlation_key
from qianliyan.shared.events.schemas import SCHEMA_DIR, generated_schemas
from qianliyan.shared.kafka import decode_records

REPORTER = Actor(kind=ActorKind.REPORTER, id="worker-7")


def submitted(text: str = "3号道岔附近冒烟") -> ReportSubmitted:
    now = datetime.now(UTC)
    report_id = uuid4()
    return ReportSubmitted.first(
        key=str(report_id),
        actor=REPORTER,
        payload=ReportSubmittedPayload(
            report_id=report_id, text=text, captured_at=now, received_at=now
        ),
    )


def test_round_trip_keeps_every_field_and_chinese_text() -> None:
    event = submitted()
    raw = encode(event)
    assert "冒烟".encode() in raw  # readable on the wire, not \u-escaped
    assert decode(raw) == event


def test_an_event_holding_nul_is_neither_written_nor_read() -> None:
    # PostgreSQL stores NUL in neither text nor jsonb: such an event could never be shown,
    # so no producer writes one, and every consumer parks one with the same reason.
    with pytest.raises(ValueError, match="NUL"):
        encode(submitted("道岔\u0000故障"))
    raw = encode(submitted("placeholder")).replace(b"placeholder", b"a\\u0000b")
    with pytest.raises(EventDecodeError, match="NUL"):
        decode(raw)


@pytest.mark.parametrize("text", ["a\\u0000b", "\\\\u0000", "u0000", "\\"])
def test_text_that_only_looks_like_a_nul_escape_round_trips(text: str) -> None:
    event = submitted(text)
    assert decode(encode(event)) == event


def test_first_event_starts_its_own_correlation() -> None:
    event = submitted()
    assert event.correlation_id == event.event_id
    assert event.causation_id is None
    assert event.event_id.version == 7


def test_unknown_type_is_skippable_not_an_error() -> None:
    raw = json.dumps({"type": "AlertTeleported", "version": 3, "event_id": "x"}).encode()
    assert decode(raw) == UnknownEvent("AlertTeleported", 3, "x")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not an object"),
        (b'{"version": 1}', "lacks a string 'type'"),
        (None, "tombstone"),
    ],
)
def test_malformed_messages_raise_decode_errors(raw: bytes | None, message: str) -> None:
    with pytest.raises(EventDecodeError, match=message):
        decode(raw)


@pytest.mark.parametrize("version", [1.0, True, "1"])
def test_a_version_that_is_not_a_json_integer_is_refused(version: object) -> None:
    document = json.loads(encode(submitted()))
    document["version"] = version
    with pytest.raises(EventDecodeError):
        decode(json.dumps(document).encode())


def test_a_newer_version_than_understood_is_refused_not_misread() -> None:
    document = json.loads(encode(submitted()))
    document["version"] = 2
    with pytest.raises(EventDecodeError, match="newer than this code understands"):
        decode(json.dumps(document).encode())


def test_invalid_payload_names_the_problem() -> None:
    document = json.loads(encode(submitted()))
    del document["payload"]["text"]
    with pytest.raises(EventDecodeError, match="text"):
        decode(json.dumps(document).encode())


def test_fields_added_by_newer_producers_are_ignored() -> None:
    event = submitted()
    document = json.loads(encode(event))
    document["payload"]["weather"] = "雨"
    document["trace"] = "abc"
    assert decode(json.dumps(document).encode()) == event


def test_old_versions_are_upcast(monkeypatch: pytest.MonkeyPatch) -> None:
    event = submitted()
    document = json.loads(encode(event))
    document["version"] = 0
    document["payload"]["body"] = document["payload"].pop("text")

    def v0_to_v1(old: dict[str, object]) -> dict[str, object]:
        payload = dict(old["payload"])  # type: ignore[call-overload]
        payload["text"] = payload.pop("body")
        return {**old, "payload": payload}

    monkeypatch.setitem(codec.UPCASTERS, ("ReportSubmitted", 0), v0_to_v1)
    assert decode(json.dumps(document).encode()) == event


def test_checked_in_schemas_match_the_models() -> None:
    """Fails when a model changed without `python -m qianliyan.shared.events.schemas`."""
    generated = generated_schemas()
    on_disk = {path.name: path.read_text(encoding="utf-8") for path in SCHEMA_DIR.glob("*.json")}
    assert set(on_disk) == set(generated), "schema files differ from the registered events"
    for name, text in generated.items():
        assert on_disk[name] == text, f"{name} is stale; regenerate the schemas"


def test_derived_ids_are_deterministic_time_ordered_v7() -> None:
    source = submitted().event_id
    first = derived_event_id(source, "triage:v1")
    assert first == derived_event_id(source, "triage:v1")
    assert first != derived_event_id(source, "triage:v2")
    assert first.version == 7
    assert first.bytes[:6] == source.bytes[:6]  # same millisecond timestamp


def test_derived_ids_do_not_change_between_releases() -> None:
    # A decision re-made after an upgrade (a redelivery, a re-drive) must carry the id the
    # old release gave it, or readers would keep both: these are the ids it gave.
    assert derived_event_id(
        UUID("01939a6e-2f3c-7d41-9b2a-5c6d7e8f9a0b"), "triage:2026-11-25.1"
    ) == UUID("01939a6e-2f3c-754d-94b0-6f8b86db6e8a")
    assert derived_event_id(UUID("ffffffff-ffff-7fff-bfff-ffffffffffff"), "alert:x") == UUID(
        "ffffffff-ffff-788c-84ab-dd928559442a"
    )


def test_every_report_of_an_area_has_one_key_written_any_way() -> None:
    assert correlation_key("华北 路局") == correlation_key(" 华北路局") == "area:华北路局"
    assert correlation_key("Bureau") == correlation_key("bureau")
    assert correlation_key("华北路局") != correlation_key("华东路局")


def _record(value: bytes | None, key: bytes | None, offset: int = 0) -> ConsumerRecord:
    return ConsumerRecord(
        topic="incidents.reports",
        partition=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=len(key or b""),
        serialized_value_size=len(value or b""),
        headers=[],
    )


def test_a_record_not_keyed_by_its_events_key_is_a_dead_letter_saying_both_keys() -> None:
    event = submitted()
    records = [
        _record(encode(event), event.key.encode(), offset=0),
        _record(encode(event), b"another-area", offset=1),
        _record(encode(event), None, offset=2),
    ]
    events, dead = decode_records(records)
    assert [record.offset for record, _ in events] == [0]
    assert [letter.record.offset for letter in dead] == [1, 2]
    assert dead[0].error == (
        f"the record has the key b'another-area', not its event's key {event.key!r}"
    )
    assert dead[1].error.startswith("the record has no key, not its event's key")
