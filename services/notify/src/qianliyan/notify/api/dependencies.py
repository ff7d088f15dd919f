"""Resources built once by the lifespan, handed to routes by dependency."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from fastapi import Request

from qianliyan.notify.domain.routing import Routing
from qianliyan.notify.feed_signal import FeedSignal
from qianliyan.notify.settings import NotifySettings
from qianliyan.shared.access.org import Org
from qianliyan.shared.config_files import WatchedFile
from qianliyan.shared.kafka import EventPublisher
from qianliyan.shared.storage import PhotoStore


@dataclass(frozen=True, slots=True)
class NotifyResources:
    """What a request handler may use; nothing is imported as a global."""

    settings: NotifySettings
    pool: asyncpg.Pool
    photos: PhotoStore
    publisher: EventPublisher
    feed_signal: FeedSignal
    routing: WatchedFile[Routing]
    org: WatchedFile[Org]


def resources(request: Request) -> NotifyResources:
    """The resources of the running app."""
    found: NotifyResources = request.app.state.resources
    return found
