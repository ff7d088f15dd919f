"""Resources built once by the lifespan, handed to routes by dependency."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import httpx
from fastapi import Depends, Request

from qianliyan.ingest.ledger import SubmissionLedger
from qianliyan.ingest.settings import IngestSettings
from qianliyan.shared.access.http import SignedIn, access_of, client_address, forbidden
from qianliyan.shared.access.org import Org
from qianliyan.shared.access.policy import Permission, Principal
from qianliyan.shared.config_files import WatchedFile
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
    org: WatchedFile[Org]


def resources(request: Request) -> IngestResources:
    """The resources of the running app."""
    found: IngestResources = request.app.state.resources
    return found


async def submitter(request: Request, principal: SignedIn) -> Principal:
    """Whoever sends reports or photos: allowed to, and not too often (per person and address)."""
    if not (
        principal.may(Permission.SUBMIT_REPORTS) or principal.may(Permission.SUBMIT_FOR_OTHERS)
    ):
        raise forbidden(f"{principal.subject} may not send reports.")
    access = access_of(request)
    await access.limits.check(access.settings.submit_limit, f"submit:user:{principal.subject}")
    await access.limits.check(
        access.settings.submit_address_limit, f"submit:address:{client_address(request)}"
    )
    return principal


Submitter = Annotated[Principal, Depends(submitter)]
