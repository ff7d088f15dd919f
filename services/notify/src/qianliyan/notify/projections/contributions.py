"""Who reports what: per reporter and per unit, read from the reports and incidents models.

An incident counts as confirmed once a dispatcher acknowledged or resolved it; the first
reporter of an incident is the one whose report was captured first. The time to report is
from capture on the phone to arrival at ingest (a phone offline for hours shows here).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

_BY_REPORTER = """
    WITH scoped AS (
        SELECT r.*, i.acknowledged_at IS NOT NULL OR i.status = 'resolved' AS confirmed,
               r.report_id = first_value(r.report_id) OVER (
                   PARTITION BY r.incident_id ORDER BY r.captured_at, r.report_id
               ) AS opened_incident
          FROM reports r LEFT JOIN incidents i USING (incident_id)
         WHERE r.reporter_id IS NOT NULL
    )
    SELECT {key} AS name,
           count(*) AS reports,
           count(*) FILTER (WHERE confirmed) AS confirmed_reports,
           count(*) FILTER (WHERE opened_incident AND incident_id IS NOT NULL) AS first_reports,
           count(*) FILTER (WHERE opened_incident AND confirmed) AS first_of_confirmed,
           percentile_cont(0.5) WITHIN GROUP (
               ORDER BY extract(epoch FROM received_at - captured_at)
           ) AS median_seconds_to_report
      FROM scoped
     WHERE ($1::text IS NULL OR unit = $1)
       AND ($2::timestamptz IS NULL OR captured_at >= $2)
       AND ($3::timestamptz IS NULL OR captured_at < $3)
       AND ($5::text[] IS NULL OR unit = ANY($5::text[]))
     GROUP BY {key}
     ORDER BY confirmed_reports DESC, first_reports DESC, reports DESC, name
     LIMIT $4
"""


@dataclass(frozen=True, slots=True)
class Scope:
    """Which reports count: of one unit (all when None), captured in a time range, and of
    the units a manager may see (all when None)."""

    unit: str | None = None
    captured_from: datetime | None = None
    captured_until: datetime | None = None
    within_units: frozenset[str] | None = None


async def contributions(pool: asyncpg.Pool, scope: Scope, *, limit: int) -> dict[str, Any]:
    """Per reporter and per unit: reports, confirmed ones, incidents opened, time to report."""
    within = sorted(scope.within_units) if scope.within_units is not None else None
    values = (scope.unit, scope.captured_from, scope.captured_until, limit, within)
    by_reporter = await pool.fetch(_BY_REPORTER.format(key="reporter_id"), *values)
    by_unit = await pool.fetch(_BY_REPORTER.format(key="COALESCE(unit, '')"), *values)
    return {
        "reporters": [dict(row) for row in by_reporter],
        "units": [dict(row) for row in by_unit],
    }
