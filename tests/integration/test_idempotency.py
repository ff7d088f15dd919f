"""A phone that retries never makes a second report, whatever the timing."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import pytest

from qianliyan.stack.config import StackConfig
from qianliyan.stack.infra import Service
from tests.integration.clients import jpeg_photo, submit, submitted_events

pytestmark = pytest.mark.integration


async def test_a_retry_with_the_same_key_gets_the_same_answer(running_stack: StackConfig) -> None:
    key = str(uuid4())
    report = {"text": "K56+300 断轨", "reporter_id": "inspector-3"}
    photo = jpeg_photo()
    first = await submit(running_stack, report, [photo], idempotency_key=key)
    second = await submit(running_stack, report, [photo], idempotency_key=key)
    assert first.status_code == second.status_code == 202
    assert second.json() == first.json()
    assert len(await submitted_events(running_stack, first.json()["report_id"])) == 1


async def test_retries_racing_the_first_request_create_one_report(
    running_stack: StackConfig,
) -> None:
    report = {"text": "站台积水", "client_report_id": f"phone-{uuid4()}", "reporter_id": "w-9"}
    photo = jpeg_photo()
    answers = await asyncio.gather(*(submit(running_stack, report, [photo]) for _ in range(6)))
    assert {answer.status_code for answer in answers} == {202}
    report_ids = {answer.json()["report_id"] for answer in answers}
    assert len(report_ids) == 1
    assert len(await submitted_events(running_stack, report_ids.pop())) == 1


async def test_the_same_client_id_from_another_reporter_is_another_report(
    running_stack: StackConfig,
) -> None:
    client_id = f"phone-{uuid4()}"
    a = await submit(
        running_stack, {"text": "x", "client_report_id": client_id, "reporter_id": "a"}, []
    )
    b = await submit(
        running_stack, {"text": "x", "client_report_id": client_id, "reporter_id": "b"}, []
    )
    assert a.status_code == b.status_code == 202
    assert a.json()["report_id"] != b.json()["report_id"]


async def test_a_reused_key_with_different_content_is_refused(running_stack: StackConfig) -> None:
    key = str(uuid4())
    first = await submit(running_stack, {"text": "信号故障"}, [], idempotency_key=key)
    reused = await submit(running_stack, {"text": "另一件事"}, [], idempotency_key=key)
    assert first.status_code == 202
    assert reused.status_code == 422
    assert "already used for a different report" in reused.json()["detail"]
    assert reused.json()["errors"] == [
        {
            "field": "header.Idempotency-Key",
            "code": "used_for_another_report",
            "message": "already used for a different report",
        }
    ]
    # Sent as the phone's own report id, the same refusal names that field.
    phone_id = str(uuid4())
    await submit(running_stack, {"text": "信号故障", "client_report_id": phone_id}, [])
    again = await submit(running_stack, {"text": "另一件事", "client_report_id": phone_id}, [])
    assert again.status_code == 422
    assert [error["field"] for error in again.json()["errors"]] == ["report.client_report_id"]


async def test_a_retry_after_ingest_restarted_gets_the_same_answer(
    running_stack: StackConfig,
) -> None:
    key = str(uuid4())
    report = {"text": "道口栏杆损坏", "reporter_id": "w-2"}
    first = await submit(running_stack, report, [], idempotency_key=key)
    ingest = Service(running_stack, "ingest")
    ingest.stop()
    ingest.start()
    retried = await submit(running_stack, report, [], idempotency_key=key)
    assert retried.status_code == 202
    assert retried.json() == first.json()
    assert len(await submitted_events(running_stack, first.json()["report_id"])) == 1
