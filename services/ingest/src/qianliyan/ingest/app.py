"""Ingest's app factory: the lifespan builds the producer and photo store once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import httpx
from fastapi import FastAPI

from qianliyan.ingest.api import photos, reports
from qianliyan.ingest.api.dependencies import IngestResources
from qianliyan.ingest.ledger import SubmissionLedger
from qianliyan.ingest.settings import IngestSettings
from qianliyan.ingest.web import WEB_DIR, mount_web
from qianliyan.shared import db
from qianliyan.shared.access.http import install_access, start_access
from qianliyan.shared.access.org import DEFAULT_ORG, Org, parse_org
from qianliyan.shared.config_files import WatchedFile
from qianliyan.shared.http import (
    ReadinessCheck,
    RequestSizeLimit,
    health_router,
    install_problem_handlers,
)
from qianliyan.shared.kafka import EventPublisher, create_producer, kafka_reachable
from qianliyan.shared.metrics import instrument
from qianliyan.shared.storage import PhotoStore


def create_app(settings: IngestSettings | None = None, *, web_dir: Path = WEB_DIR) -> FastAPI:
    """The ingest HTTP app, configured from `settings` or the environment, serving the
    reporter's page from `web_dir` (another release of it, in a test of a deploy)."""
    settings = settings or IngestSettings()
    # A bad organisation file at start is fatal, named with its line; later bad edits are not.
    org = WatchedFile[Org](settings.org_file or DEFAULT_ORG, parse_org, what="organisation")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await db.create_pool(settings.postgres)
        app.state.access = await start_access(settings.access, pool)
        producer = create_producer(settings.kafka, client_id="ingest")
        notify = httpx.AsyncClient(base_url=settings.notify_url, timeout=5.0, trust_env=False)
        try:
            await producer.start()
            app.state.resources = IngestResources(
                settings=settings,
                publisher=EventPublisher(producer, timeout_s=settings.kafka.publish_timeout_s),
                photos=PhotoStore(settings.storage),
                ledger=SubmissionLedger(pool, lease=timedelta(seconds=settings.claim_lease_s)),
                notify=notify,
                org=org,
            )
            yield
        finally:
            await notify.aclose()
            await producer.stop()
            await pool.close()

    def readiness() -> dict[str, ReadinessCheck]:
        res: IngestResources = app.state.resources
        return {
            "kafka": lambda: kafka_reachable(settings.kafka),
            "object_store": res.photos.is_reachable,
            "postgres": lambda: db.is_reachable(res.ledger.pool),
        }

    # Room for one photo past the report's limit, so a phone that sends a little too much
    # hears how much from our own check ("the photos add up to …"), not from the door.
    max_body = settings.max_report_bytes + settings.max_photo_bytes
    # Paths are answered as documented: one with a trailing slash added is a 404, not a
    # redirect that a client would have to follow (and re-send a POST to).
    app = FastAPI(
        title="Qianliyan ingest", version="0.1.0", lifespan=lifespan, redirect_slashes=False
    )
    install_problem_handlers(app)
    app.add_middleware(RequestSizeLimit, max_bytes=max_body)
    install_access(app, settings.access)
    instrument(app)
    app.include_router(health_router(readiness))
    app.include_router(reports.router)
    app.include_router(photos.router)
    mount_web(app, web_dir)
    return app
