"""`GET /v1/contributions`: who reports what, so units can recognise their best reporters.

Managers see their own units (and the stations below them); admins see every unit.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from qianliyan.notify.api.dependencies import NotifyResources, resources
from qianliyan.notify.projections.contributions import Scope, contributions
from qianliyan.shared.access.http import forbidden, require
from qianliyan.shared.access.policy import Permission, Principal, visible_units
from qianliyan.shared.events.reports import UNIT_MAX_LENGTH
from qianliyan.shared.http import time_filter
from qianliyan.shared.text import PRINTABLE, IsoTime, WholeNumber

router = APIRouter(prefix="/v1/contributions", tags=["contributions"])


class Contribution(BaseModel):
    """One reporter's (or one unit's) reports, and what became of them."""

    name: str
    reports: int
    confirmed_reports: int
    first_reports: int
    first_of_confirmed: int
    median_seconds_to_report: float | None


class Contributions(BaseModel):
    """Per reporter and per unit, most confirmed reports first."""

    reporters: list[Contribution]
    units: list[Contribution]


@router.get("", response_model=Contributions)
async def who_reports_what(
    res: Annotated[NotifyResources, Depends(resources)],
    principal: Annotated[Principal, Depends(require(Permission.READ_CONTRIBUTIONS))],
    unit: Annotated[str | None, Query(max_length=UNIT_MAX_LENGTH, pattern=PRINTABLE)] = None,
    captured_from: Annotated[IsoTime | None, Query(alias="from")] = None,
    captured_until: Annotated[IsoTime | None, Query(alias="until")] = None,
    limit: Annotated[WholeNumber, Query(ge=1, le=500)] = 100,
) -> Contributions:
    """Reports sent, reports of confirmed incidents, incidents opened first, and the median
    time from capture to arrival, per reporter and per unit."""
    within = visible_units(principal, Permission.READ_CONTRIBUTIONS, res.org.current())
    if unit is not None and within is not None and unit not in within:
        raise forbidden(f"{principal.subject} may not see the contributions of {unit}.")
    scope = Scope(
        unit,
        time_filter(captured_from, "from"),
        time_filter(captured_until, "until"),
        within_units=within,
    )
    found = await contributions(res.pool, scope, limit=limit)
    return Contributions.model_validate(found)
