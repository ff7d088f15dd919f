"""Resources built once by the lifespan, handed to routes by dependency."""

from __future__ import annotations

import asyncpg
from fastapi import Request

from qianliyan.shared.kafka import EventPublisher
from qianliyan.shared.storage import PhotoStore


def db_pool(request: Request) -> asyncpg.Pool:
    """The read-model connection pool of the running app."""
    pool: asyncpg.Pool = request.app.state.pool
    return pool


def photo_store(request: Request) -> PhotoStore:
    """The photo store, for signing links to photos."""
    store: PhotoStore = request.app.state.photos
    return store


def event_publisher(request: Request) -> EventPublisher:
    """Where dispatcher actions are appended as events."""
    found: EventPublisher = request.app.state.publisher
    return found


def alerts_topic(request: Request) -> str:
    """The topic of alert and incident events."""
    topic: str = request.app.state.alerts_topic
    return topic
