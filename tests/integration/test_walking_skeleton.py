"""One report through every hop of the real stack: ingest, MinIO, Kafka, triage, notify, Postgres.

Nothing here is mocked: the suite's own Kafka, MinIO and PostgreSQL run natively on
loopback ports of their own, and the three services run as separate processes.
"""

from __future__ import annotations

import hashlib
import io
from uuid import UUID

import asyncpg
import httpx
import pytest
from PIL import Image

from qianliyan.shared.events import (
    Event,
    ReportSubmitted,
    ReportTriaged,
)
from qianliyan.shared.storage import photo_key, preview_key
from qianliyan.stack.config import StackConfig
from tests.integration.clients import (
    TRIAGED,
    as_suite,
    events_about,
    jpeg_photo,
    read_object,
    submit,
)
from tests.integration.topic_reader import read_topic, wait_for

pytestmark = pytest.mark.integration


async def test_a_report_flows_through_every_hop(running_stack: StackConfig) -> None:
    config = running_stack
    photo = jpeg_photo()
    response = await submit(
        config,
        {"text": "3号站台配电箱冒烟，有焦味", "place": "3号站台", "reporter_id": "worker-42"},
        [photo],
    )
    assert response.status_code == 202, response.text
    accepted = response.json()
    report_id = accepted["report_id"]
    assert accepted["status_url"].endswith(f"/v1/reports/{report_id}")

    # Hop 1: the photo is in MinIO under the sha256 of its stored bytes (pixels only), with
    # the same pixels, and a small preview beside it.
    [sha256] = accepted["photos"]
    stored = read_object(config, photo_key(sha256))
    assert hashlib.sha256(stored).hexdigest() == sha256
    assert Image.open(io.BytesIO(stored)).size == Image.open(io.BytesIO(photo)).size
    assert Image.open(io.BytesIO(read_object(config, preview_key(sha256)))).format == "JPEG"

    # Hop 2: ReportSubmitted is in incidents.reports.
    [submitted] = events_about(
        await read_topic(config.kafka_bootstrap, "incidents.reports"), report_id
    )
    assert isinstance(submitted, ReportSubmitted)
    assert submitted.payload.photos[0].sha256 == sha256
    assert submitted.actor.id == "worker-42"
    assert submitted.actor.via == "token:test-suite"  # the integration that sent it for them

    # Hop 3: triage produced ReportTriaged with the same correlation id.
    async def triaged() -> list[Event]:
        return events_about(await read_topic(config.kafka_bootstrap, "incidents.triage"), report_id)

    [triage_event] = await wait_for(triaged)
    assert isinstance(triage_event, ReportTriaged)
    assert triage_event.correlation_id == submitted.correlation_id
    assert triage_event.causation_id == submitted.event_id
    assert triage_event.payload.severity == "critical"
    assert any("冒烟" in reason.evidence for reason in triage_event.payload.reasons)

    # Hop 4: notify projected both events into the Postgres read model.
    connection = await asyncpg.connect(config.postgres_dsn)
    try:

        async def projected() -> asyncpg.Record | None:
            return await connection.fetchrow(
                "SELECT * FROM reports WHERE report_id = $1 AND severity IS NOT NULL",
                UUID(report_id),
            )

        row = await wait_for(projected)
    finally:
        await connection.close()
    assert row["correlation_id"] == submitted.correlation_id
    assert row["text"] == "3号站台配电箱冒烟，有焦味"
    assert row["severity"] == "critical"
    assert row["reporter_via"] == "token:test-suite"

    # Hop 5: notify's HTTP API answers with the same state.
    async with httpx.AsyncClient(
        headers=as_suite(config), base_url=f"http://127.0.0.1:{config.notify_port}"
    ) as client:
        view = (await client.get(f"/v1/reports/{report_id}")).json()
    assert view["status"] in TRIAGED
    assert view["severity"] == "critical"
    assert view["correlation_id"] == str(submitted.correlation_id)
    assert view["photos"][0]["sha256"] == sha256
    assert view["place"] == "3号站台"
    assert (view["reporter_id"], view["reporter_via"]) == ("worker-42", "token:test-suite")

    # Photos are reachable only through the time-limited links in the view.
    async with httpx.AsyncClient() as client:
        signed = await client.get(view["photos"][0]["url"])
        preview = await client.get(view["photos"][0]["preview_url"])
        unsigned = await client.get(
            f"http://{config.minio_endpoint}/{config.bucket}/{photo_key(sha256)}"
        )
    assert hashlib.sha256(signed.content).hexdigest() == sha256
    assert preview.status_code == 200
    assert unsigned.status_code == 403

    # The phone reads the same state from the status URL it was given, on ingest's origin.
    async with httpx.AsyncClient(headers=as_suite(config)) as client:
        status = await client.get(accepted["status_url"])
    assert accepted["status_url"].startswith(f"http://127.0.0.1:{config.ingest_port}/")
    assert status.status_code == 200
    assert status.json()["severity"] == "critical"
