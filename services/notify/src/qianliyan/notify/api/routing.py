"""`GET /v1/routing`: which alert routing and organisation are in force, why an edit of
either was refused, and which units the routes name that the organisation does not."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from qianliyan.notify.api.dependencies import NotifyResources, resources
from qianliyan.notify.domain.routing import units_not_listed
from qianliyan.shared.access.http import require
from qianliyan.shared.access.policy import Permission, Principal

router = APIRouter(prefix="/v1/routing", tags=["routing"])


class RecipientInForce(BaseModel):
    """A recipient and how it is reached (channel labels and kinds, never URLs or secrets)."""

    id: str
    name: str
    channels: dict[str, str]


class OrganisationInForce(BaseModel):
    """The organisation file's version notify applies, and its last refused edit."""

    version: str
    file: str
    units: int
    refused_edit: str | None


class RoutingInForce(BaseModel):
    """The routing version notify applies, from which file, and the last refused edit."""

    version: str
    file: str
    routes: list[str]
    recipients: list[RecipientInForce]
    refused_edit: str | None
    unlisted_units: list[str]
    organisation: OrganisationInForce


@router.get("", response_model=RoutingInForce)
async def routing_in_force(
    res: Annotated[NotifyResources, Depends(resources)],
    _: Annotated[Principal, Depends(require(Permission.READ_ROUTING))],
) -> RoutingInForce:
    """The routing in force; an edit that was refused is named with its line."""
    current, org = res.routing.current(), res.org.current()
    return RoutingInForce(
        version=current.version,
        file=str(res.routing.path),
        routes=[route.id for route in current.spec.routes],
        recipients=[
            RecipientInForce(
                id=recipient.id,
                name=recipient.name,
                channels={label: ch.kind for label, ch in recipient.labelled_channels()},
            )
            for recipient in current.spec.recipients
        ],
        refused_edit=res.routing.last_error,
        unlisted_units=units_not_listed(current, org.names),
        organisation=OrganisationInForce(
            version=org.version,
            file=str(res.org.path),
            units=len(org.names),
            refused_edit=res.org.last_error,
        ),
    )
