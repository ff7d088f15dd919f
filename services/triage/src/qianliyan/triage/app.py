"""Triage's app: the transactional pipeline runs in the background of a health endpoint."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated

from aiokafka import TopicPartition
from fastapi import Depends, FastAPI
from pydantic import BaseModel, Field

from qianliyan.shared import db
from qianliyan.shared.access.http import install_access, require, start_access
from qianliyan.shared.access.policy import Permission, Principal
from qianliyan.shared.exactly_once import (
    PartitionTransactions,
    quiet_lost_producers,
    run_transactional,
)
from qianliyan.shared.http import (
    ReadinessCheck,
    RequestSizeLimit,
    health_router,
    install_problem_handlers,
)
from qianliyan.shared.kafka import (
    create_consumer,
    decode_records,
    kafka_reachable,
    read_partition,
)
from qianliyan.shared.metrics import instrument
from qianliyan.shared.worker import BackgroundLoop
from qianliyan.triage.domain.rules import categories_off_the_page
from qianliyan.triage.domain.triage import TriagePipeline
from qianliyan.triage.rulebook import DEFAULT_RULES, RuleBook
from qianliyan.triage.settings import TriageSettings

log = logging.getLogger(__name__)


class RulesInForce(BaseModel):
    """What ops see of the rule file: a refused edit is shown, not silently ignored."""

    version: str
    file: str
    rules: list[str]
    refused_edit: str | None
    categories_off_the_page: dict[str, list[str]] = Field(
        description="Per rule, categories it names that the reporter's page does not offer "
        "(a typo, or an integration's own): reports from the page never match them"
    )


class _GroupingFromLog:
    """Each partition's grouping, folded again from its already-triaged history whenever
    this member opens the partition (given it, or after losing its producer)."""

    def __init__(
        self, pipeline: TriagePipeline, bootstrap_servers: str, *, window: timedelta
    ) -> None:
        self._pipeline = pipeline
        self._bootstrap = bootstrap_servers
        self._window = window

    async def rebuild(self, partition: TopicPartition, committed: int) -> None:
        records = await read_partition(
            self._bootstrap,
            partition,
            until_offset=committed,
            since=datetime.now(UTC) - self._window,
        )
        events, _ = decode_records(records)  # dead letters were parked when live
        self._pipeline.replay(partition.partition, (event for _, event in events))
        log.info("grouping of %s rebuilt from %d records", partition, len(records))

    def forget(self, partition: TopicPartition) -> None:
        # Nothing to hand over: the next owner folds the log itself.
        self._pipeline.forget(partition.partition)


def create_app(settings: TriageSettings | None = None) -> FastAPI:
    """The triage service: consume reports, produce triage decisions, exactly once."""
    settings = settings or TriageSettings()
    kafka = settings.kafka
    rule_book = RuleBook(settings.rules_file or DEFAULT_RULES)
    pipeline = TriagePipeline(rule_book.current, output_topic=kafka.triage_topic)

    async def run_pipeline(stop: asyncio.Event) -> None:
        grouping = _GroupingFromLog(
            pipeline, kafka.bootstrap_servers, window=timedelta(hours=settings.regroup_window_h)
        )
        partitions = PartitionTransactions(
            kafka,
            transactional_id_prefix=settings.transactional_ids,
            client_id="triage",
            on_opened=grouping.rebuild,
            on_closed=grouping.forget,
        )
        consumer = create_consumer(
            kafka,
            kafka.reports_topic,
            group_id=settings.consumer_group,
            client_id="triage",
            listener=partitions,
        )
        partitions.bind(consumer)
        await consumer.start()
        try:
            await run_transactional(
                consumer,
                partitions,
                pipeline.for_batch,
                group_id=settings.consumer_group,
                stop=stop,
                max_records=settings.max_batch,
            )
        finally:
            await consumer.stop()
            await partitions.close()

    loop = BackgroundLoop("triage-pipeline", run_pipeline)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Only the revocation list is read from PostgreSQL: triage keeps no read models.
        pool = await db.create_pool(settings.postgres)
        app.state.access = await start_access(settings.access, pool)
        with quiet_lost_producers(asyncio.get_running_loop()):
            loop.start()
            try:
                yield
            finally:
                await loop.stop()
                await pool.close()

    def liveness() -> dict[str, ReadinessCheck]:
        return {"pipeline": loop.is_alive}

    def readiness() -> dict[str, ReadinessCheck]:
        return {"pipeline": loop.is_alive, "kafka": lambda: kafka_reachable(kafka)}

    # Triage takes no request bodies at all.
    # Paths are answered as documented: one with a trailing slash added is a 404, not a
    # redirect that a client would have to follow (and re-send a POST to).
    app = FastAPI(
        title="Qianliyan triage", version="0.1.0", lifespan=lifespan, redirect_slashes=False
    )
    install_problem_handlers(app)
    app.add_middleware(RequestSizeLimit, max_bytes=0)
    install_access(app, settings.access, sign_in=False)
    instrument(app)
    app.include_router(health_router(readiness, liveness))

    @app.get("/v1/rules", tags=["rules"])
    async def rules_in_force(
        _: Annotated[Principal, Depends(require(Permission.READ_RULES))],
    ) -> RulesInForce:
        """Which rule version triage applies, from which file, and why an edit was refused."""
        current = rule_book.current()
        return RulesInForce(
            version=current.version,
            file=str(rule_book.path),
            rules=[rule.id for rule in current.spec.rules],
            refused_edit=rule_book.last_error,
            categories_off_the_page=categories_off_the_page(current.spec),
        )

    return app
