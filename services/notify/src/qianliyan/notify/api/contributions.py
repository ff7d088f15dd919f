"""`GET /v1/contributions`: who reports what, so units can recognise their best reporters.

Who may read it (managers of the unit, admins) is decided by sign-in, which comes with
the access work; until then it is as open as the rest of notify's API.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime, BaseModel

from qianliyan.notify.api.dependencies import NotifyResources, resources
from qianliyan.notify.projections.contributions import Scope, contributions
from qianliyan.shared.http import PRINTABLE

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
    unit: Annotated[str | None, Query(max_length=100, pattern=PRINTABLE)] = None,
    captured_from: Annotated[AwareDatetime | None, Query(alias="from")] = None,
    captured_until: Annotated[AwareDatetime | None, Query(alias="until")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Contributions:
    """Reports sent, reports of confirmed incidents, incidents opened first, and the median
    time from capture to arrival, per reporter and per unit."""
    found = await contributions(res.pool, Scope(unit, captured_from, captured_until), limit=limit)
    return Contributions.model_validate(found)
