"""Notify's app: the projection runs in the background of the read-model API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

from fastapi import FastAPI

from qianliyan.notify.alerter import Alerter
from qianliyan.notify.api import access as access_api
from qianliyan.notify.api import alerts, audit, contributions, incidents, reports
from qianliyan.notify.api import routing as routing_api
from qianliyan.notify.api.dependencies import NotifyResources
from qianliyan.notify.domain.outbound import OutboundPolicy
from qianliyan.notify.domain.routing import Routing, parse_routing
from qianliyan.notify.feed_signal import FeedSignal
from qianliyan.notify.projections.events import project_batch
from qianliyan.notify.settings import NotifySettings
from qianliyan.notify.web import mount_web
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
from qianliyan.shared.kafka import (
    EventPublisher,
    create_consumer,
    create_producer,
    kafka_reachable,
    run_projection,
)
from qianliyan.shared.metrics import instrument
from qianliyan.shared.storage import PhotoStore
from qianliyan.shared.worker import BackgroundLoop

DEFAULT_ROUTING = Path(__file__).parent / "routing" / "default.yaml"
# Notify takes actions, sign-ins and admin changes: small JSON bodies only.
MAX_BODY_BYTES = 256 * 1024


def create_app(settings: NotifySettings | None = None) -> FastAPI:
    """The notify service: project events into Postgres and serve the read models."""
    settings = settings or NotifySettings()
    kafka = settings.kafka

    async def projection(stop: asyncio.Event) -> None:
        consumer = create_consumer(
            kafka,
            kafka.reports_topic,
            kafka.triage_topic,
            kafka.alerts_topic,
            group_id=settings.consumer_group,
            client_id="notify",
        )
        dead_letters = create_producer(kafka, client_id="notify-dlq")
        await dead_letters.start()
        await consumer.start()
        try:
            await run_projection(
                consumer,
                dead_letters,
                partial(project_batch, app.state.resources.pool),
                group_id=settings.consumer_group,
                stop=stop,
                max_records=settings.max_batch,
            )
        finally:
            await consumer.stop()
            await dead_letters.stop()

    loop = BackgroundLoop("notify-projection", projection)
    # A bad routing file at start is fatal, named with its line; later bad edits are not.
    routing = WatchedFile[Routing](
        settings.routing_file or DEFAULT_ROUTING,
        partial(parse_routing, outbound=OutboundPolicy.from_entries(settings.outbound_allow)),
        what="routing",
    )
    org = WatchedFile[Org](settings.org_file or DEFAULT_ORG, parse_org, what="organisation")

    async def alerting(stop: asyncio.Event) -> None:
        resources: NotifyResources = app.state.resources
        alerter = Alerter(
            pool=resources.pool,
            publisher=resources.publisher,
            topic=kafka.alerts_topic,
            routing=resources.routing,
            public_url=settings.public_url,
            max_parallel=settings.max_parallel_deliveries,
        )
        await alerter.run(stop, interval_s=settings.alerter_interval_s)

    alerter_loop = BackgroundLoop("notify-alerter", alerting)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await db.create_pool(settings.postgres)
        app.state.access = await start_access(settings.access, pool)
        producer = create_producer(kafka, client_id="notify")
        feed_signal = FeedSignal()
        try:
            await producer.start()
            await feed_signal.start(settings.postgres.dsn.get_secret_value())
            app.state.resources = NotifyResources(
                settings=settings,
                pool=pool,
                photos=PhotoStore(settings.storage),
                publisher=EventPublisher(producer, timeout_s=kafka.publish_timeout_s),
                feed_signal=feed_signal,
                routing=routing,
                org=org,
            )
            loop.start()
            alerter_loop.start()
            yield
        finally:
            await alerter_loop.stop(timeout_s=30)
            await loop.stop()
            await feed_signal.stop()
            await producer.stop()
            await pool.close()

    def liveness() -> dict[str, ReadinessCheck]:
        return {"projection": loop.is_alive, "alerter": alerter_loop.is_alive}

    def readiness() -> dict[str, ReadinessCheck]:
        return {
            "projection": loop.is_alive,
            "alerter": alerter_loop.is_alive,
            "kafka": lambda: kafka_reachable(kafka),
            "postgres": lambda: db.is_reachable(app.state.resources.pool),
        }

    # Paths are answered as documented: one with a trailing slash added is a 404, not a
    # redirect that a client would have to follow (and re-send a POST to).
    app = FastAPI(
        title="Qianliyan notify", version="0.1.0", lifespan=lifespan, redirect_slashes=False
    )
    install_problem_handlers(app)
    app.add_middleware(RequestSizeLimit, max_bytes=MAX_BODY_BYTES)
    install_access(app, settings.access)
    instrument(app)
    app.include_router(health_router(readiness, liveness))
    app.include_router(reports.router)
    app.include_router(incidents.router)
    app.include_router(alerts.router)
    app.include_router(routing_api.router)
    app.include_router(contributions.router)
    app.include_router(audit.router)
    app.include_router(access_api.router)
    mount_web(app)
    return app
