"""Prometheus metrics, one set for every service: what each one counts is named the same.

HTTP requests are counted by prometheus-fastapi-instrumentator; the event flow (consumed,
produced, dead-lettered, how long a batch took, how far behind a group is) is counted
where it happens, in the Kafka adapter, and deliveries in notify's alerter.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import IllegalStateError
from fastapi import FastAPI
from prometheus_client import Counter, Gauge, Histogram
from prometheus_fastapi_instrumentator import Instrumentator

EVENTS_CONSUMED = Counter(
    "qianliyan_events_consumed", "Events read from a topic and handled", ["topic", "type"]
)
EVENTS_PRODUCED = Counter(
    "qianliyan_events_produced", "Events written to a topic", ["topic", "type"]
)
DEAD_LETTERS = Counter(
    "qianliyan_dead_letters", "Messages parked on a dead-letter topic", ["topic"]
)
BATCH_SECONDS = Histogram(
    "qianliyan_batch_processing_seconds",
    "Time to handle one batch of a partition (projection or transaction)",
    ["topic"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
CONSUMER_LAG = Gauge(
    "qianliyan_consumer_lag",
    "Records between this member's position and the end of the partition",
    ["group", "topic", "partition"],
)
SUBMISSIONS_REPLAYED = Counter(
    "qianliyan_submissions_replayed",
    "Retries of an accepted report given its first answer, by whether their photos were "
    "decoded first (they are not when sent as before)",
    ["photos"],
)
DELIVERIES = Counter(
    "qianliyan_alert_deliveries", "Alert delivery attempts by outcome", ["channel", "outcome"]
)


def count_events(counter: Counter, events: Iterable[tuple[str, str]]) -> None:
    """Add (topic, event type) pairs to `counter`: one increment a label set, not one an
    event (a batch is hundreds of events of a few types)."""
    for (topic, event_type), count in collections.Counter(events).items():
        counter.labels(topic, event_type).inc(count)


def instrument(app: FastAPI) -> None:
    """Count and time the app's HTTP requests, and serve everything at `/metrics`."""
    Instrumentator(
        excluded_handlers=["/metrics", "/health/live", "/health/ready"],
        should_group_status_codes=False,
    ).instrument(app).expose(app, include_in_schema=False)


async def record_lag(
    consumer: AIOKafkaConsumer, group: str, partitions: list[TopicPartition]
) -> None:
    """Set the lag gauge of `partitions` from what the consumer last heard of their ends;
    a partition a rebalance took from the consumer meanwhile is left out."""
    for partition in partitions:
        end = consumer.highwater(partition)
        if end is None:
            continue
        try:
            position = await consumer.position(partition)
        except IllegalStateError:
            continue
        CONSUMER_LAG.labels(group, partition.topic, str(partition.partition)).set(
            max(0, end - position)
        )
