"""A phone that retries never makes a second report, whatever the timing."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from uuid import uuid4

import asyncpg
import pytest

from qianliyan.ingest.domain.idempotency import StillInFlight, SubmissionKeys
from qianliyan.ingest.ledger import SubmissionLedger
from qianliyan.stack.config import StackConfig
from qianliyan.stack.infra import Service
from tests.integration.clients import jpeg_photo, scrape, submit, submitted_events, total

pytestmark = pytest.mark.integration


async def change_ledger(config: StackConfig, filed_under: str, assignments: str) -> None:
    """Set `assignments` (SQL) on the one ledger row filed under `filed_under`."""
    connection = await asyncpg.connect(config.postgres_dsn)
    try:
        changed = await connection.execute(
            f"UPDATE ingest_submissions SET {assignments} WHERE idempotency_key = $1",
            filed_under,
        )
        assert changed == "UPDATE 1"
    finally:
        await connection.close()


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


async def test_a_retry_under_a_fresh_header_with_the_same_report_id_is_the_same_report(
    running_stack: StackConfig,
) -> None:
    # A client that makes a new Idempotency-Key for each attempt, and keeps its own id.
    report = {"text": "接触网挂异物", "client_report_id": f"phone-{uuid4()}", "reporter_id": "w-4"}
    photo = jpeg_photo()
    first = await submit(running_stack, report, [photo], idempotency_key=str(uuid4()))
    retried = await submit(running_stack, report, [photo], idempotency_key=str(uuid4()))
    without_header = await submit(running_stack, report, [photo])
    assert first.status_code == retried.status_code == without_header.status_code == 202
    assert retried.json() == without_header.json() == first.json()
    assert len(await submitted_events(running_stack, first.json()["report_id"])) == 1


async def test_retries_under_fresh_headers_racing_the_first_request_create_one_report(
    running_stack: StackConfig,
) -> None:
    report = {"text": "站台雨棚漏水", "client_report_id": f"phone-{uuid4()}", "reporter_id": "w-5"}
    photo = jpeg_photo()
    answers = await asyncio.gather(
        *(submit(running_stack, report, [photo], idempotency_key=str(uuid4())) for _ in range(6))
    )
    assert {answer.status_code for answer in answers} == {202}
    report_ids = {answer.json()["report_id"] for answer in answers}
    assert len(report_ids) == 1
    assert len(await submitted_events(running_stack, report_ids.pop())) == 1


async def test_a_header_and_a_report_id_that_name_other_reports_are_refused(
    running_stack: StackConfig,
) -> None:
    header, phone_id = str(uuid4()), f"phone-{uuid4()}"
    first = await submit(running_stack, {"text": "信号机灭灯"}, [], idempotency_key=header)
    by_id = {"text": "信号机灭灯", "client_report_id": phone_id}
    second = await submit(running_stack, by_id, [])
    assert first.status_code == second.status_code == 202
    # The second report's content under the first one's header is the second's retry.
    retried = await submit(running_stack, by_id, [], idempotency_key=header)
    assert retried.status_code == 202
    assert retried.json() == second.json()
    # Content of neither: each key names another report.
    both = await submit(
        running_stack,
        {"text": "信号机灭灯，已恢复", "client_report_id": phone_id},
        [],
        idempotency_key=header,
    )
    assert both.status_code == 422
    assert [error["field"] for error in both.json()["errors"]] == [
        "header.Idempotency-Key",
        "report.client_report_id",
    ]
    # Other content under a known report id names that field only.
    other = await submit(
        running_stack,
        {"text": "另一件事", "client_report_id": phone_id},
        [],
        idempotency_key=str(uuid4()),
    )
    assert other.status_code == 422
    assert [error["field"] for error in other.json()["errors"]] == ["report.client_report_id"]


async def test_a_submission_filed_before_report_ids_were_keys_learns_its_id_from_a_retry(
    running_stack: StackConfig,
) -> None:
    header, phone_id = str(uuid4()), f"phone-{uuid4()}"
    report = {"text": "护栏倒伏", "client_report_id": phone_id, "reporter_id": "w-6"}
    first = await submit(running_stack, report, [], idempotency_key=header)
    assert first.status_code == 202
    # As migration 0002 leaves a row filed under its header before it.
    await change_ledger(running_stack, f"w-6\x1f{header}", "client_report_key = NULL")
    by_header = await submit(running_stack, report, [], idempotency_key=header)
    by_id = await submit(running_stack, report, [], idempotency_key=str(uuid4()))
    assert by_header.json() == by_id.json() == first.json()
    assert len(await submitted_events(running_stack, first.json()["report_id"])) == 1


async def replays(config: StackConfig) -> dict[str, float]:
    """Ingest's count of retries given their first answer, by whether photos were decoded."""
    samples = (await scrape(config.ingest_port)).get("qianliyan_submissions_replayed_total", {})
    return {photos: total(samples, photos=photos) for photos in ("decoded", "not_decoded")}


async def test_a_retry_that_resends_the_same_photos_is_answered_without_decoding_them(
    running_stack: StackConfig,
) -> None:
    report = {"text": "雨棚玻璃破裂", "client_report_id": f"phone-{uuid4()}", "reporter_id": "w-7"}
    photos = [jpeg_photo(), jpeg_photo((640, 480))]
    first = await submit(running_stack, report, photos)
    before = await replays(running_stack)
    retried = await submit(running_stack, report, photos)
    assert retried.status_code == 202
    assert retried.json() == first.json()
    assert await replays(running_stack) == before | {"not_decoded": before["not_decoded"] + 1}
    # Other bytes under the same id are decoded, and refused as another report's.
    changed = await submit(running_stack, report, [photos[1], photos[0]])
    assert changed.status_code == 422
    assert await replays(running_stack) == before | {"not_decoded": before["not_decoded"] + 1}


async def test_a_submission_filed_before_photos_were_fingerprinted_as_sent_learns_it(
    running_stack: StackConfig,
) -> None:
    phone_id = f"phone-{uuid4()}"
    report = {"text": "电缆槽盖板缺失", "client_report_id": phone_id, "reporter_id": "w-8"}
    photo = jpeg_photo()
    first = await submit(running_stack, report, [photo])
    # As migration 0003 leaves a row filed before it.
    await change_ledger(running_stack, f"w-8\x1f{phone_id}", "sent_fingerprint = NULL")
    before = await replays(running_stack)
    decoded = await submit(running_stack, report, [photo])
    assert await replays(running_stack) == before | {"decoded": before["decoded"] + 1}
    not_decoded = await submit(running_stack, report, [photo])
    assert decoded.json() == not_decoded.json() == first.json()
    assert await replays(running_stack) == {
        "decoded": before["decoded"] + 1,
        "not_decoded": before["not_decoded"] + 1,
    }


async def test_a_retry_under_a_fresh_header_takes_over_an_abandoned_first_attempt(
    running_stack: StackConfig,
) -> None:
    header, phone_id = str(uuid4()), f"phone-{uuid4()}"
    report = {"text": "隧道口落石", "client_report_id": phone_id, "reporter_id": "w-9"}
    first = await submit(running_stack, report, [], idempotency_key=header)
    # As an ingest killed after the claim leaves it: in flight, its lease run out.
    await change_ledger(
        running_stack,
        f"w-9\x1f{header}",
        "state = 'in_flight', response = NULL, lease_until = now() - interval '1 second'",
    )
    taken_over = await submit(running_stack, report, [], idempotency_key=str(uuid4()))
    assert taken_over.status_code == 202
    assert taken_over.json()["report_id"] == first.json()["report_id"]
    # The answer went on record under the row's own key: the first header replays it.
    again = await submit(running_stack, report, [], idempotency_key=header)
    assert again.json() == taken_over.json()
    events = await submitted_events(running_stack, first.json()["report_id"])
    assert len({event.event_id for event in events}) == 1  # published again, the same event


async def test_a_first_attempt_filed_meanwhile_without_the_locks_is_waited_for(
    running_stack: StackConfig,
) -> None:
    # A pod of the version before 0002 files under the header and takes no lock: its row
    # is uncommitted while this ledger looks, so this one's insert meets it there.
    pool = await asyncpg.create_pool(running_stack.postgres_dsn, min_size=1, max_size=2)
    assert pool is not None
    old_pod = await asyncpg.connect(running_stack.postgres_dsn)
    try:
        ledger = SubmissionLedger(pool, lease=timedelta(seconds=30))
        keys = SubmissionKeys(header=f"w-10\x1f{uuid4()}", client_report=None)
        filing = old_pod.transaction()
        await filing.start()
        await old_pod.execute(
            "INSERT INTO ingest_submissions (idempotency_key, fingerprint, report_id, event_id, "
            "received_at, state, lease_until) "
            "VALUES ($1, 'same', $2, $3, now(), 'in_flight', now() + interval '30 seconds')",
            keys.primary,
            uuid4(),
            uuid4(),
        )
        claim = asyncio.create_task(ledger.claim(keys, fingerprint="same", sent_fingerprint=None))
        await asyncio.sleep(0.5)
        assert not claim.done()  # waiting on the other row's key
        await filing.commit()
        assert await claim == StillInFlight()
        # Looked at again, the old pod's row is the one in flight.
        again = await ledger.claim(keys, fingerprint="same", sent_fingerprint=None)
        assert again == StillInFlight()
        assert (
            await pool.fetchval(
                "SELECT count(*) FROM ingest_submissions WHERE idempotency_key = $1", keys.primary
            )
            == 1
        )
    finally:
        await old_pod.close()
        await pool.close()
