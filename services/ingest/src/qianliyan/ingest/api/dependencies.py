"""Resources built once by the lifespan, handed to routes by dependency."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from fastapi import Request

from qianliyan.ingest.ledger import SubmissionLedger
from qianliyan.ingest.settings import IngestSettings
from qianliyan.shared.kafka import EventPublisher
from qianliyan.shared.storage import PhotoStore


@dataclass(frozen=True, slots=True)
class IngestResources:
    """What a request handler may use; nothing is imported as a global."""

    settings: IngestSettings
    publisher: EventPublisher
    photos: PhotoStore
    ledger: SubmissionLedger
    notify: httpx.AsyncClient


def resources(request: Request) -> IngestResources:
    """The resources of the running app."""
    found: IngestResources = request.app.state.resources
    return found
