"""Photos uploaded one at a time, then referenced by the report: for breaking networks."""

from __future__ import annotations

import hashlib
import uuid

import httpx
import pytest

from qianliyan.shared.storage import UPLOADS_PREFIX, preview_key
from qianliyan.stack.config import StackConfig
from tests.integration.clients import (
    as_suite,
    as_user,
    bearer,
    expire_upload,
    jpeg_photo,
    machine_token,
    minio_client,
    read_object,
    submit,
    submitted_events,
)

pytestmark = pytest.mark.integration


async def upload(
    config: StackConfig, photo: bytes, auth: dict[str, str] | None = None
) -> httpx.Response:
    async with httpx.AsyncClient(
        headers=auth or as_suite(config), base_url=f"http://127.0.0.1:{config.ingest_port}"
    ) as client:
        return await client.post(
            "/v1/photos", files={"photo": ("x.jpg", photo, "image/jpeg")}, timeout=30
        )


async def test_photos_uploaded_one_by_one_join_the_report(running_stack: StackConfig) -> None:
    first, second = jpeg_photo(), jpeg_photo()
    staged = [await upload(running_stack, photo) for photo in (first, second)]
    assert [answer.status_code for answer in staged] == [201, 201]
    photo_ids = [answer.json()["photo_id"] for answer in staged]
    # A retried upload of the same photo is the same photo.
    again = await upload(running_stack, first)
    assert again.json()["photo_id"] == photo_ids[0]

    inline = jpeg_photo()
    accepted = await submit(
        running_stack, {"text": "接触网挂异物", "photo_ids": photo_ids}, [inline]
    )
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["photos"][1:] == photo_ids

    [event] = await submitted_events(running_stack, accepted.json()["report_id"])
    refs = event.payload.photos
    assert [ref.sha256 for ref in refs][1:] == photo_ids
    for ref in refs:
        stored = read_object(running_stack, ref.object_key)
        assert hashlib.sha256(stored).hexdigest() == ref.sha256
        assert read_object(running_stack, preview_key(ref.sha256))


async def test_a_retry_after_the_uploads_expired_still_gets_its_first_answer(
    running_stack: StackConfig,
) -> None:
    # The answer to an accepted report was lost; by the phone's retry, the store's
    # lifecycle rule has removed the uploads the report named (a week, by default).
    photo_id = (await upload(running_stack, jpeg_photo())).json()["photo_id"]
    report, key = {"text": "隧道渗水", "photo_ids": [photo_id]}, str(uuid.uuid4())
    accepted = await submit(running_stack, report, [], idempotency_key=key)
    assert accepted.status_code == 202, accepted.text
    expire_upload(running_stack, photo_id)
    retried = await submit(running_stack, report, [], idempotency_key=key)
    assert retried.status_code == 202, retried.text
    assert retried.json() == accepted.json()


async def test_a_photo_that_was_never_uploaded_is_named_in_the_422(
    running_stack: StackConfig,
) -> None:
    unknown = hashlib.sha256(b"never uploaded").hexdigest()
    refused = await submit(running_stack, {"text": "x", "photo_ids": [unknown]}, [])
    assert refused.status_code == 422
    assert refused.json()["errors"] == [
        {
            "field": "report.photo_ids.0",
            "code": "photo_not_uploaded",
            "message": f"no uploaded photo {unknown}",
        }
    ]


async def test_only_whoever_uploaded_a_photo_may_name_it_in_a_report(
    running_stack: StackConfig,
) -> None:
    # A photo's id is its hash: a dispatcher's screen shows it, a forwarded picture gives
    # it away. Knowing it does not make another person's upload one's own evidence.
    config = running_stack
    owner = as_user(config, f"rep-{uuid.uuid4().hex[:6]}", "reporter")
    other = as_user(config, f"rep-{uuid.uuid4().hex[:6]}", "reporter")
    photo = jpeg_photo()
    photo_id = (await upload(config, photo, owner)).json()["photo_id"]

    taken = await submit(config, {"text": "借用照片", "photo_ids": [photo_id]}, [], auth=other)
    assert taken.status_code == 422, taken.text
    assert taken.json()["errors"] == [
        {
            "field": "report.photo_ids.0",
            "code": "photo_not_uploaded",
            "message": f"no uploaded photo {photo_id}",
        }
    ]
    # Once both have uploaded the same picture, each may name it.
    assert (await upload(config, photo, other)).json()["photo_id"] == photo_id
    for auth in (other, owner):
        sent = await submit(config, {"text": "同一张照片", "photo_ids": [photo_id]}, [], auth=auth)
        assert sent.status_code == 202, sent.text
        assert sent.json()["photos"] == [photo_id]

    # Two integrations issued under one name (two stations' chat bridges) are two uploaders.
    bridges = [bearer(machine_token(config, "wecom-bridge")) for _ in range(2)]
    bridged = (await upload(config, jpeg_photo(), bridges[0])).json()["photo_id"]
    report = {"text": "转发的照片", "reporter_id": "wx-1", "photo_ids": [bridged]}
    assert (await submit(config, report, [], auth=bridges[1])).status_code == 422
    assert (await submit(config, report, [], auth=bridges[0])).status_code == 202


async def test_an_upload_that_is_not_a_photo_is_refused(running_stack: StackConfig) -> None:
    refused = await upload(running_stack, b"MZ\x90\x00 a program")
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "photos[1]"


async def test_a_photo_past_the_limit_is_refused_naming_its_own_size(
    running_stack: StackConfig,
) -> None:
    # Only the limit's worth is ever read, but the sender is told the size it sent.
    refused = await upload(running_stack, jpeg_photo() + b"\0" * (25 * 1024 * 1024))
    assert refused.status_code == 422
    assert refused.json()["errors"] == [
        {
            "field": "photos[1]",
            "code": "photo_too_large",
            "message": "the file is 25.0 MB, more than the limit of 10.0 MB",
            "context": {"size": "25.0 MB", "limit": "10.0 MB"},
        }
    ]


def test_unreferenced_uploads_expire_by_the_stores_own_lifecycle_rule(
    running_stack: StackConfig,
) -> None:
    config = minio_client(running_stack).get_bucket_lifecycle(running_stack.bucket)
    assert config is not None, "the bucket has no lifecycle configuration"
    [rule] = config.rules
    assert rule.rule_filter is not None and rule.rule_filter.prefix == UPLOADS_PREFIX
    assert rule.expiration is not None and rule.expiration.days == 7
    assert rule.status == "Enabled"
