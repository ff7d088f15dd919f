"""`GET /v1/audit`: who did what, when, to which incident; `GET /v1/audit/access`: who
changed which person or machine token."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from qianliyan.notify.api.dependencies import NotifyResources, resources
from qianliyan.notify.projections.audit import AuditQuery, audit_entries
from qianliyan.shared.access import store
from qianliyan.shared.access.http import access_of, require
from qianliyan.shared.access.policy import Permission, Principal
from qianliyan.shared.http import time_filter
from qianliyan.shared.text import PRINTABLE, IsoTime, WholeNumber

router = APIRouter(prefix="/v1/audit", tags=["access"])


class AuditEntry(BaseModel):
    """One thing done to an incident, by whom and when."""

    occurred_at: datetime
    actor: str
    event_type: str
    incident_id: UUID
    detail: dict[str, Any]


class AuditTrail(BaseModel):
    """Matching entries, newest first; page back with `until` = the last one's time."""

    entries: list[AuditEntry]


@router.get("", response_model=AuditTrail)
async def audit(
    res: Annotated[NotifyResources, Depends(resources)],
    _: Annotated[Principal, Depends(require(Permission.READ_AUDIT))],
    actor: Annotated[str | None, Query(max_length=200, pattern=PRINTABLE)] = None,
    incident_id: UUID | None = None,
    event_type: Annotated[str | None, Query(max_length=100, pattern=PRINTABLE)] = None,
    occurred_from: Annotated[IsoTime | None, Query(alias="from")] = None,
    occurred_until: Annotated[IsoTime | None, Query(alias="until")] = None,
    limit: Annotated[WholeNumber, Query(ge=1, le=1000)] = 100,
) -> AuditTrail:
    """Who did what, when, to which incident: by actor, incident, event type and time."""
    query = AuditQuery(
        actor,
        incident_id,
        event_type,
        time_filter(occurred_from, "from"),
        time_filter(occurred_until, "until"),
    )
    entries = await audit_entries(res.pool, query, limit=limit)
    return AuditTrail(entries=[AuditEntry.model_validate(entry) for entry in entries])


AccessAction = Literal[
    "user_added",
    "user_changed",
    "token_issued",
    "token_revoked",
    "signed_in",
    "sign_in_refused",
    "signed_out",
]


class AccessChange(BaseModel):
    """One change to a person (`subject` is the user name) or a machine token (its id), or
    a person signing in or out (`actor` is `anonymous` for a refused sign-in)."""

    occurred_at: datetime
    actor: str
    action: AccessAction
    subject: str
    detail: dict[str, Any]


class AccessTrail(BaseModel):
    """Matching changes, newest first; page back with `until` = the last one's time."""

    entries: list[AccessChange]


@router.get("/access", response_model=AccessTrail)
async def access_audit(
    request: Request,
    _: Annotated[Principal, Depends(require(Permission.READ_AUDIT))],
    actor: Annotated[str | None, Query(max_length=200, pattern=PRINTABLE)] = None,
    subject: Annotated[str | None, Query(max_length=200, pattern=PRINTABLE)] = None,
    action: AccessAction | None = None,
    occurred_from: Annotated[IsoTime | None, Query(alias="from")] = None,
    occurred_until: Annotated[IsoTime | None, Query(alias="until")] = None,
    limit: Annotated[WholeNumber, Query(ge=1, le=1000)] = 100,
) -> AccessTrail:
    """Who added or changed which person, issued or revoked which machine token, who signed
    in (or was refused, from which address) and out, and when: by actor, subject, action
    and time. Passwords are named as changed, never shown."""
    query = store.AccessChangeQuery(
        actor,
        subject,
        action,
        time_filter(occurred_from, "from"),
        time_filter(occurred_until, "until"),
    )
    entries = await store.access_changes(access_of(request).pool, query, limit=limit)
    return AccessTrail(entries=[AccessChange.model_validate(entry) for entry in entries])
