"""What must not happen: a refused report written anywhere, or a bad message stopping a consumer."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from minio.error import S3Error

from qianliyan.shared.storage import photo_key
from qianliyan.stack.config import StackConfig
from tests.integration.clients import TRIAGED, as_suite, jpeg_photo, minio_client, submit
from tests.integration.topic_reader import read_topic, wait_for

pytestmark = pytest.mark.integration


async def report_status(config: StackConfig, report_id: str) -> dict[str, object] | None:
    async with httpx.AsyncClient(
        headers=as_suite(config), base_url=f"http://127.0.0.1:{config.notify_port}"
    ) as client:
        response = await client.get(f"/v1/reports/{report_id}")
    if response.status_code == 404:
        return None
    body: dict[str, object] = response.json()
    return body if body["status"] in TRIAGED else None


async def test_a_refused_report_leaves_no_event_and_no_photo(running_stack: StackConfig) -> None:
    config = running_stack
    marker = uuid4().hex
    good_photo = jpeg_photo()
    response = await submit(config, {"text": f"marker {marker}"}, [good_photo, b"GIF89a fake"])

    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["errors"] == [
        {
            "field": "photos[2]",
            "code": "photo_not_an_image",
            "message": "the content is not a JPEG, PNG, WebP or HEIC image",
        }
    ]

    # A later good report reaching notify shows ingest has moved on; the refused one
    # must have left nothing behind in the log or the store.
    accepted = await submit(config, {"text": "后续正常报告"}, [])
    assert accepted.status_code == 202
    await wait_for(lambda: report_status(config, accepted.json()["report_id"]))
    records = await read_topic(config.kafka_bootstrap, "incidents.reports")
    assert not [r for r in records if r.value and marker.encode() in r.value]
    with pytest.raises(S3Error):
        minio_client(config).stat_object(
            config.bucket, photo_key(hashlib.sha256(good_photo).hexdigest())
        )


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"report": "{not json"}, "report"),
        ({"report": json.dumps({"text": ""})}, "report.text"),
        ({"report": json.dumps({"text": "x", "colour": "red"})}, "report.colour"),
        (
            {"report": json.dumps({"text": "x", "location": {"lat": 91, "lon": 0}})},
            "report.location.lat",
        ),
        ({}, "body.report"),
        # PostgreSQL stores no NUL: once, such an id was a 500 from the ledger, and such a
        # reporter a 202 whose report every read model then refused.
        (
            {"report": json.dumps({"text": "x", "client_report_id": "c\u0000"})},
            "report.client_report_id",
        ),
        ({"report": json.dumps({"text": "x", "reporter_id": "王\u0000"})}, "report.reporter_id"),
    ],
)
async def test_malformed_reports_get_a_422_naming_the_field(
    running_stack: StackConfig, form: dict[str, str], field: str
) -> None:
    async with httpx.AsyncClient(
        headers=as_suite(running_stack), base_url=f"http://127.0.0.1:{running_stack.ingest_port}"
    ) as client:
        response = await client.post("/v1/reports", data=form)
    assert response.status_code == 422, response.text
    assert field in {error["field"] for error in response.json()["errors"]}


async def test_poison_and_unknown_messages_never_stop_the_pipeline(
    running_stack: StackConfig,
) -> None:
    config = running_stack
    poison_key = f"poison-{uuid4().hex}".encode()
    unknown = {"type": "ReportTeleported", "version": 1, "event_id": str(uuid4())}
    producer = AIOKafkaProducer(bootstrap_servers=config.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        partitions = await producer.partitions_for("incidents.reports")
        # Every partition gets a poison message and an unknown event ahead of real work.
        for partition in partitions:
            await producer.send_and_wait(
                "incidents.reports", b"{not json", key=poison_key, partition=partition
            )
            await producer.send_and_wait(
                "incidents.reports", json.dumps(unknown).encode(), partition=partition
            )
    finally:
        await producer.stop()

    accepted = await submit(config, {"text": "道口信号故障"}, [jpeg_photo()])
    assert accepted.status_code == 202
    view = await wait_for(lambda: report_status(config, accepted.json()["report_id"]))
    assert view["severity"] == "major"

    async def dead_letters() -> list[dict[str, bytes]]:
        records = await read_topic(config.kafka_bootstrap, "incidents.reports.dlq")
        return [dict(r.headers) for r in records if r.key == poison_key]

    letters = await wait_for(lambda: _groups_done(dead_letters, expected=len(partitions) * 2))
    groups = {letter["dlq.consumer_group"] for letter in letters}
    assert groups == {b"qianliyan-triage", b"qianliyan-notify"}
    assert all(b"not JSON" in letter["dlq.error"] for letter in letters)
    # The unknown type was skipped, not dead-lettered.
    all_letters = await read_topic(config.kafka_bootstrap, "incidents.reports.dlq")
    assert not [r for r in all_letters if b"ReportTeleported" in (r.value or b"")]
    for port in (config.triage_port, config.notify_port):
        async with httpx.AsyncClient(headers=as_suite(config)) as client:
            live = await client.get(f"http://127.0.0.1:{port}/health/live")
        assert live.status_code == 200, live.text


async def _groups_done(read, *, expected: int):  # type: ignore[no-untyped-def]
    letters = await read()
    return letters if len(letters) >= expected else None


async def test_status_of_an_unknown_report_is_a_404_with_a_reason(
    running_stack: StackConfig,
) -> None:
    async with httpx.AsyncClient(
        headers=as_suite(running_stack), base_url=f"http://127.0.0.1:{running_stack.ingest_port}"
    ) as client:
        unknown = await client.get(f"/v1/reports/{uuid4()}")
        malformed = await client.get("/v1/reports/not-a-uuid")
    assert unknown.status_code == 404
    assert "may take a moment" in unknown.json()["detail"]
    assert malformed.status_code == 422


async def test_a_report_whose_photos_add_up_past_the_limit_is_a_413(
    running_stack: StackConfig,
) -> None:
    # Each part is under the per-photo limit (10 MB); together they pass 30 MB.
    eight_mb = b"\0" * (8 * 1024 * 1024)
    refused = await submit(running_stack, {"text": "太大了"}, [eight_mb] * 4)
    assert refused.status_code == 413
    assert refused.json()["detail"].startswith("The photos add up to 32.0 MB")


async def test_a_phone_clock_running_ahead_is_taken_from_its_arrival(
    running_stack: StackConfig,
) -> None:
    # Refused once ("occurred_at is in the future"), and every attempt the page made
    # stamped the same wrong clock again: the reporter had no way in.
    ahead = datetime.now(UTC) + timedelta(hours=2)
    answer = await submit(running_stack, {"text": "时钟快了", "occurred_at": ahead.isoformat()}, [])
    assert answer.status_code == 202, answer.text
    shown = await wait_for(lambda: report_status(running_stack, answer.json()["report_id"]))
    assert shown["captured_at"] == shown["received_at"] == answer.json()["received_at"]


async def test_too_many_photos_is_a_422_naming_where_they_came_from(
    running_stack: StackConfig,
) -> None:
    staged = hashlib.sha256(b"staged").hexdigest()
    refused = await submit(
        running_stack, {"text": "照片太多", "photo_ids": [staged]}, [jpeg_photo()] * 5
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"] == [
        {
            "field": "photos",
            "code": "too_many_photos",
            "message": "5 of 6 photos; at most 5",
            "context": {"count": 5, "total": 6, "limit": 5},
        },
        {
            "field": "report.photo_ids",
            "code": "too_many_photos",
            "message": "1 of 6 photos; at most 5",
            "context": {"count": 1, "total": 6, "limit": 5},
        },
    ]
