"""Every HTTP operation of the three services, fuzzed from its own OpenAPI document.

Schemathesis reads each service's live `/openapi.json` and sends schema-valid and
schema-violating requests (its examples, coverage and fuzzing phases). Whatever arrives,
a service answers without a 5xx, with a status and content type its document lists
and a body its schema allows. Path identifiers are
sometimes swapped for incidents and reports that exist, and the `report` and `photos`
parts of an upload for report-shaped JSON and real or damaged images, so the fuzzing
reaches past "not found" and "not JSON" into the code behind them. Every report accepted
along the way must be in the log and shown by notify, and nothing the fuzzing had accepted
may be parked by a reader: a 202 is never half-written, nor lost downstream.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import struct
import time
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import pytest
import requests
import schemathesis

# What schemathesis imports on first loading a document, compiled (and rewritten by pytest)
# here at collection: compiled inside the test once, CPython 3.11.7's AST constructor failed
# with "recursion depth mismatch".
import schemathesis.specs.openapi.schemas
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from schemathesis import APIOperation, Case, CheckFunction, GenerationMode
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    negative_data_rejection,
    positive_data_acceptance,
)

from qianliyan.shared.events import ReportSubmitted, decode
from qianliyan.shared.topics import dead_letter_topic
from qianliyan.stack.config import StackConfig
from tests.integration.clients import as_suite, as_user, bearer, jpeg_photo, machine_token
from tests.integration.topic_reader import read_topic

pytestmark = pytest.mark.integration

AnyCase = Case[Any]
Operation = APIOperation[Any, Any, Any, Any]

SERVICES = ("ingest", "triage", "notify")
DEAD_LETTER_TOPICS = [
    dead_letter_topic(topic)
    for topic in ("incidents.reports", "incidents.triage", "incidents.alerts")
]
EXAMPLES_PER_OPERATION = 100
REQUEST_TIMEOUT_S = 30  # a request still unanswered by then is a hang, and fails the case

# Checks left out everywhere, each for a reason that is a finding about the documents,
# not about the behaviour this test guards (reported with the test). Every other check
# runs, status codes and content types among them: each operation documents its errors
# as problem details (422, 4XX and 503, by `install_problem_handlers`).
EXCLUDED_CHECKS: list[CheckFunction] = [
    # The schemas cannot say that `report` must be JSON of a report or that `cursor` must
    # be one the feed gave out: a schema-valid string is rightly refused with a 422.
    positive_data_acceptance,
]
# Negative data runs everywhere: a count is digits (`WholeNumber`) and a time ISO 8601
# (`IsoTime`), where pydantic alone read `limit=1.0` as 1 and `until=0` as 1970.


@dataclass
class Known:
    """Things that exist in the stack, to aim generated requests at."""

    incident_ids: list[str]
    report_ids: list[str]
    photo_id: str
    config: StackConfig
    # Reports ingest accepted (202) while fuzzing, checked against the log afterwards,
    # and how many submissions were sent in all.
    accepted: set[str] = field(default_factory=set)
    submissions: int = 0
    # Requests sent, by operation, printed at the end of each service's run.
    sent: Counter[str] = field(default_factory=Counter)


KNOWN: list[Known] = []  # filled by the `known` fixture, read by the last test

# The live stream never ends, so the usual call (which reads the whole body) can only
# time out: it gets a check of its own, `_fuzz_stream`. Its framing, resumption and
# reconnection are tested in test_alert_stream.py.
STREAM = "GET /v1/alerts/stream"
STREAM_EXAMPLES = 25
STREAM_QUIET_S = 1.0  # a healthy stream is still open, and silent, after this long


def _image(image_format: str, size: tuple[int, int] = (40, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 120, 200)).save(buffer, format=image_format)
    return buffer.getvalue()


def _zip() -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("readme.txt", "not a photo")
    return archive.getvalue()


def _bomb() -> bytes:
    """A tiny PNG whose header declares 12000x12000 pixels, past the 50-megapixel limit."""
    data = bytearray(_image("PNG"))
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", 12_000, 12_000)
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", zlib.crc32(data[ihdr : ihdr + 17]))
    return bytes(data)


# Upload parts that reach the image checks: good, damaged, disguised and oversized.
PHOTO_PARTS: list[bytes] = [
    _image("JPEG"),
    _image("PNG"),
    _image("WEBP"),
    _image("JPEG")[:200],
    _image("PNG")[:-20],
    _image("JPEG") + _zip(),
    _image("PNG") + b"<html><script>alert(1)</script></html>",
    _image("GIF"),
    _bomb(),
    b"",
]
GOOD_PHOTOS = PHOTO_PARTS[:3]

# Times at the ends of the calendar, in zones that push them past it once in UTC.
edge_times = st.sampled_from(
    ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00Z"]
) | st.datetimes(timezones=st.timezones()).map(lambda moment: moment.isoformat())


# Text PostgreSQL cannot store, or that no name should hold.
unstorable = st.sampled_from(["a\u0000b", "\u0000", "line\nbreak", "\u007f"])
json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
random_documents = st.fixed_dictionaries(
    {"text": st.text(min_size=1, max_size=80) | json_scalars},
    optional={
        "place": st.text(max_size=30) | json_scalars,
        "unit": st.text(max_size=30) | json_scalars,
        "category": st.text(max_size=30) | json_scalars,
        "location": st.fixed_dictionaries(
            {"lat": st.floats(-95, 95) | json_scalars, "lon": st.floats(-185, 185)}
        )
        | json_scalars,
        "occurred_at": st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat())
        | json_scalars,
        "client_report_id": st.text(max_size=120) | json_scalars,
        "photo_ids": st.lists(st.text(max_size=64), max_size=6) | json_scalars,
        "reporter_id": st.text(max_size=30) | json_scalars,
    },
)
# A good report but for one field at an edge: it passes every other check, so the edge
# reaches the ledger, the event and the read models. Most fully random documents are
# refused for one field or another long before.
EDGES = {
    "text": unstorable,
    "place": unstorable,
    "unit": unstorable,
    "client_report_id": unstorable,
    "reporter_id": unstorable,
    "occurred_at": edge_times,
}
one_edge = st.sampled_from(sorted(EDGES)).flatmap(
    lambda name: EDGES[name].map(lambda value: {"text": "模糊测试：道岔故障", name: value})
)
# A report valid in every field, its values still generated. Edges and random documents
# are mostly refused, and a run that landed none left the check on accepted reports
# nothing to check; these make three fifths of the aimed documents, so that a run lands
# about ten (8 of 100 submissions with half, in a run on 2026-12-06).
printable_ascii = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
words = st.text(st.characters(categories=("L", "N", "P", "S")), min_size=1, max_size=40)
valid_documents = st.fixed_dictionaries(
    {"text": words},
    optional={
        "place": words,
        "unit": words,
        "category": words,
        "location": st.fixed_dictionaries({"lat": st.floats(-90, 90), "lon": st.floats(-180, 180)}),
        "occurred_at": st.datetimes(
            min_value=datetime(1970, 1, 2), max_value=datetime(2026, 1, 1), timezones=st.timezones()
        ).map(lambda moment: moment.isoformat()),
        "client_report_id": st.text(printable_ascii, min_size=1, max_size=100),
    },
)
report_documents: st.SearchStrategy[dict[str, Any]] = st.one_of(
    valid_documents, valid_documents, valid_documents, one_edge, random_documents
)

# The feed's cursor is opaque to the schema: base64 of JSON that only the feed writes.
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=6)
cursors = (st.lists(json_values, min_size=3, max_size=3) | json_values).map(
    lambda position: base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")
)


@pytest.fixture(scope="module")
def known(running_stack: StackConfig) -> Known:
    """Two incidents, one of them with a photo, and a staged photo, as notify sees them."""
    config = running_stack
    with httpx.Client(
        headers=as_suite(config), base_url=f"http://127.0.0.1:{config.ingest_port}", timeout=60
    ) as ingest:
        # Uploaded in the name the fuzzed reports are sent in, which alone may name it.
        staged = ingest.post(
            "/v1/photos",
            files={"photo": ("p.jpg", jpeg_photo(), "image/jpeg")},
            headers=_valid_token_for_reports(config),
        )
        assert staged.status_code == 201, staged.text
        report_ids = []
        for text, photos in (
            ("模糊测试：站台有积水", [jpeg_photo()]),
            ("fuzzing: smoke in tunnel", []),
        ):
            answer = ingest.post(
                "/v1/reports",
                data={"report": json.dumps({"text": text, "unit": "模糊测试站"})},
                files=[("photos", ("p.jpg", photo, "image/jpeg")) for photo in photos],
            )
            assert answer.status_code == 202, answer.text
            report_ids.append(answer.json()["report_id"])
    incident_ids = [_incident_of(config, report_id) for report_id in report_ids]
    found = Known(
        incident_ids=incident_ids,
        report_ids=report_ids,
        photo_id=staged.json()["photo_id"],
        config=config,
    )
    KNOWN.append(found)
    return found


def _incident_of(config: StackConfig, report_id: str, timeout_s: float = 60) -> str:
    deadline = time.monotonic() + timeout_s
    with httpx.Client(
        headers=as_suite(config), base_url=f"http://127.0.0.1:{config.notify_port}"
    ) as notify:
        while time.monotonic() < deadline:
            answer = notify.get(f"/v1/reports/{report_id}")
            if answer.status_code == 200 and answer.json()["incident_id"]:
                incident_id: str = answer.json()["incident_id"]
                return incident_id
            time.sleep(0.3)
    raise AssertionError(f"notify did not triage report {report_id} in {timeout_s}s")


@pytest.mark.parametrize("service", SERVICES)
def test_no_input_makes_a_service_fail_or_break_its_schema(
    running_stack: StackConfig, known: Known, service: str
) -> None:
    port = getattr(running_stack, f"{service}_port")
    api = schemathesis.openapi.from_url(f"http://127.0.0.1:{port}/openapi.json", timeout=30)
    failures: dict[str, str] = {}
    tested = []
    known.sent.clear()
    for loaded in api.get_all_operations():
        if not isinstance(loaded, Ok):
            failures[f"{service} schema"] = str(loaded.err())
            continue
        operation = loaded.ok()
        tested.append(operation.label)
        try:
            if operation.label == STREAM:
                _fuzz_stream(operation, known)
            else:
                _fuzz(operation, known)
        # One operation's failures must not hide the others'. Schemathesis raises its
        # check failures as a BaseExceptionGroup subclass, not as an Exception.
        except (Exception, BaseExceptionGroup) as failure:
            failures[operation.label] = _describe(failure)
    assert tested, f"{service} documents no operation"
    print(f"\n{service}: {sum(known.sent[label] for label in tested)} requests")
    for label in tested:
        print(f"  {known.sent[label]:4d} {label}")
    assert not failures, "\n\n".join(f"{label}\n{text}" for label, text in failures.items())


def _describe(failure: BaseException) -> str:
    text = f"{type(failure).__name__}: {failure}"
    if isinstance(failure, BaseExceptionGroup):
        for inner in failure.exceptions:
            text += "\n  - " + _describe(inner).replace("\n", "\n    ")
    return text


def _fuzz(operation: Operation, known: Known) -> None:
    """Schema-valid and schema-violating requests to one operation, checked as they come."""
    cases = st.one_of([operation.as_strategy(mode) for mode in GenerationMode])

    @given(case=cases, data=st.data())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        print_blob=True,
    )
    def requests_to_operation(case: AnyCase, data: st.DataObject) -> None:
        excluded = list(EXCLUDED_CHECKS)
        if _aim_at_known_things(case, data, known):
            # Generated as schema-violating, perhaps, but no longer once aimed.
            excluded = [*excluded, negative_data_rejection]
        case.headers.update(_valid_token_for(operation, known.config))
        response = case.call_and_validate(excluded_checks=excluded, timeout=REQUEST_TIMEOUT_S)
        known.sent[operation.label] += 1
        if operation.label == "POST /v1/reports":
            known.submissions += 1
            if response.status_code == 202:
                known.accepted.add(response.json()["report_id"])

    requests_to_operation()


def _valid_token_for(operation: Operation, config: StackConfig) -> dict[str, str]:
    """A token that may use `operation`, so the fuzzing reaches past the door.

    A fresh one per case: a generated sign-out revokes the token it was sent with.
    """
    if operation.path.startswith("/v1/access"):
        return as_user(config, "fuzz-admin", "admin")
    return _valid_token_for_reports(config)


def _valid_token_for_reports(config: StackConfig) -> dict[str, str]:
    return bearer(machine_token(config, "fuzz"))


def _fuzz_stream(operation: Operation, known: Known) -> None:
    """Requests to the live stream: refused with a 4xx, or open and staying open."""
    resume_ids = st.sampled_from(["0", "1", "²", "٣", "-1", "9" * 20, str(2**63), " 1"])

    @given(case=st.one_of([operation.as_strategy(mode) for mode in GenerationMode]), data=st.data())
    @settings(
        max_examples=STREAM_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        print_blob=True,
    )
    def opens_stream(case: AnyCase, data: st.DataObject) -> None:
        known.sent[operation.label] += 1
        if data.draw(st.booleans(), label="aimed"):
            resume = data.draw(resume_ids, label="last event id")
            if data.draw(st.booleans(), label="in the header"):
                case.headers["Last-Event-ID"] = resume
            else:
                case.query = {"last_event_id": resume}
        case.headers.update(_valid_token_for(operation, known.config))
        request = case.as_transport_kwargs()
        try:
            stream = requests.request(**request, stream=True, timeout=(10, STREAM_QUIET_S))
        except (requests.exceptions.InvalidHeader, UnicodeEncodeError):
            return  # a header value the client itself refuses to send (not Latin-1, say)
        with stream:
            curl = case.as_curl_command()
            assert stream.status_code < 500, f"{stream.status_code} for {curl}"
            if stream.status_code != 200:
                return
            try:
                for _ in stream.iter_content(chunk_size=None):
                    pass
            except requests.exceptions.ConnectionError:
                return  # still open and quiet after STREAM_QUIET_S: as it should be
            raise AssertionError(f"the stream ended by itself, or broke, for {curl}")

    opens_stream()


def operation_label(case: AnyCase) -> str:
    """`GET /v1/alerts`, say."""
    return str(case.operation.label)


def _aim_at_known_things(case: AnyCase, data: st.DataObject, known: Known) -> bool:
    """Sometimes swap generated identifiers and upload parts for ones that lead somewhere."""
    if not data.draw(st.booleans(), label="aimed"):
        return False
    for name in ("incident_id", "report_id"):
        if name in (case.path_parameters or {}):
            pool = known.incident_ids + known.report_ids
            case.path_parameters[name] = data.draw(st.sampled_from(pool), label=name)
    if operation_label(case) == "GET /v1/alerts":
        query = case.query if isinstance(case.query, dict) else {}
        # One at a time: a refused cursor would hide a time that breaks the query.
        name = data.draw(st.sampled_from(["cursor", "from", "until"]), label="aimed at")
        query[name] = data.draw(cursors if name == "cursor" else edge_times, label=name)
        case.query = query
    # Upload parts only where the body is a form: a JSON body generated to hold a field
    # of that name (a schema-violating one can) cannot carry a file's bytes.
    if isinstance(case.body, dict) and (case.media_type or "").startswith("multipart/"):
        body: dict[str, Any] = case.body
        if "report" in body:
            document = data.draw(report_documents, label="report")
            if isinstance(document.get("photo_ids"), list) and data.draw(st.booleans()):
                document["photo_ids"] = [known.photo_id]
            body["report"] = json.dumps(document)
        if "photos" in body:
            parts = st.sampled_from(GOOD_PHOTOS) | st.sampled_from(PHOTO_PARTS)
            body["photos"] = data.draw(st.lists(parts, max_size=3), label="photos")
        if "photo" in body:
            body["photo"] = data.draw(st.sampled_from(PHOTO_PARTS), label="photo")
    return True


async def test_every_report_accepted_while_fuzzing_is_in_the_log_and_shown(
    running_stack: StackConfig,
) -> None:
    if not KNOWN or not KNOWN[0].submissions:
        pytest.skip("ingest was not fuzzed in this run (run the fuzz test first)")
    config, known = running_stack, KNOWN[0]
    accepted = known.accepted
    assert accepted, f"none of {known.submissions} fuzzed submissions was accepted"
    print(f"\n{len(accepted)} of {known.submissions} fuzzed submissions accepted")
    records = await read_topic(config.kafka_bootstrap, "incidents.reports")
    logged: set[str] = set()
    for record in records:
        try:
            event = decode(record.value)
        except ValueError:
            continue
        if isinstance(event, ReportSubmitted):
            logged.add(str(event.payload.report_id))
    assert accepted <= logged, f"answered 202 but not in the log: {sorted(accepted - logged)}"

    # In the log is not enough: an event a reader parks is a report lost all the same.
    # Once, a reporter id holding NUL and a capture time before the calendar were both.
    unseen = set(accepted)
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(
        headers=as_suite(config), base_url=f"http://127.0.0.1:{config.notify_port}"
    ) as notify:
        while unseen and time.monotonic() < deadline:
            for report_id in sorted(unseen):
                answer = await notify.get(f"/v1/reports/{report_id}")
                shown = answer.json() if answer.status_code == 200 else {}
                if shown.get("text") is not None and shown.get("severity") is not None:
                    unseen.discard(report_id)
            await asyncio.sleep(0.5)
    ours = accepted | set(known.incident_ids) | set(known.report_ids)
    parked = [
        f"{record.topic}: {dict(record.headers).get('dlq.error', b'').decode()[:300]}"
        for topic in DEAD_LETTER_TOPICS
        for record in await read_topic(config.kafka_bootstrap, topic)
        if record.value and any(item.encode() in record.value for item in ours)
    ]
    assert not parked, "what the fuzzing had accepted was parked:\n" + "\n".join(parked)
    assert not unseen, f"answered 202 but never shown by notify: {sorted(unseen)}"
