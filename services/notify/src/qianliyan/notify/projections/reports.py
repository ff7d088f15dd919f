"""The reports read model: one row per report, filled by its submission and triage."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import asyncpg

from qianliyan.shared.db import Connection
from qianliyan.shared.events import ReportSubmitted, ReportTriaged

# Each submission writes every column it has: of several for one report, the last wins.
_SUBMITTED = """
    INSERT INTO reports (
        report_id, correlation_id, reporter_id, text, category, place, unit, location,
        photos, client_report_id, captured_at, received_at, submitted_event_id, updated_at
    )
    SELECT report_id, correlation_id, reporter_id, text, category, place, unit,
           location::jsonb, photos::jsonb, client_report_id, captured_at, received_at,
           submitted_event_id, now()
      FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
                  $7::text[], $8::text[], $9::text[], $10::text[], $11::timestamptz[],
                  $12::timestamptz[], $13::uuid[])
           AS s(report_id, correlation_id, reporter_id, text, category, place, unit,
                location, photos, client_report_id, captured_at, received_at,
                submitted_event_id)
    ON CONFLICT (report_id) DO UPDATE SET
        correlation_id = EXCLUDED.correlation_id,
        reporter_id = EXCLUDED.reporter_id,
        text = EXCLUDED.text,
        category = EXCLUDED.category,
        place = EXCLUDED.place,
        unit = EXCLUDED.unit,
        location = EXCLUDED.location,
        photos = EXCLUDED.photos,
        client_report_id = EXCLUDED.client_report_id,
        captured_at = EXCLUDED.captured_at,
        received_at = EXCLUDED.received_at,
        submitted_event_id = EXCLUDED.submitted_event_id,
        updated_at = now()
"""

# A re-triage produces a newer ReportTriaged; an older one arriving late never wins. A
# triage that comes before its submission makes the row, with the ids and capture time
# the submission will overwrite.
_TRIAGED = """
    INSERT INTO reports (
        report_id, correlation_id, captured_at, incident_id, severity, rule_set_version,
        reasons, triaged_at, triaged_event_id, updated_at
    )
    SELECT report_id, correlation_id, captured_at, incident_id, severity, rule_set_version,
           reasons::jsonb, triaged_at, triaged_event_id, now()
      FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::uuid[], $5::text[],
                  $6::text[], $7::text[], $8::timestamptz[], $9::uuid[])
           AS t(report_id, correlation_id, captured_at, incident_id, severity,
                rule_set_version, reasons, triaged_at, triaged_event_id)
    ON CONFLICT (report_id) DO UPDATE SET
        incident_id = EXCLUDED.incident_id,
        severity = EXCLUDED.severity,
        rule_set_version = EXCLUDED.rule_set_version,
        reasons = EXCLUDED.reasons,
        triaged_at = EXCLUDED.triaged_at,
        triaged_event_id = EXCLUDED.triaged_event_id,
        updated_at = now()
    WHERE reports.triaged_at IS NULL OR reports.triaged_at <= EXCLUDED.triaged_at
"""


async def apply_submitted(connection: Connection, event: ReportSubmitted) -> None:
    await upsert_submitted(connection, [event])


async def apply_triaged(connection: Connection, event: ReportTriaged) -> None:
    await upsert_triaged(connection, [(event, event)])


async def upsert_submitted(connection: Connection, events: Sequence[ReportSubmitted]) -> None:
    """Write the submissions, at most one per report (an upsert touches a row once)."""
    if not events:
        return
    columns: list[list[Any]] = [[] for _ in range(13)]
    for event in events:
        report = event.payload
        row = (
            report.report_id,
            event.correlation_id,
            event.actor.id,
            report.text,
            report.category,
            report.place,
            report.unit,
            report.location.model_dump_json() if report.location else None,
            json.dumps([photo.model_dump(mode="json") for photo in report.photos]),
            report.client_report_id,
            report.captured_at,
            report.received_at,
            event.event_id,
        )
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    await connection.execute(_SUBMITTED, *columns)


async def upsert_triaged(
    connection: Connection, triages: Sequence[tuple[ReportTriaged, ReportTriaged]]
) -> None:
    """Write the triages, at most one per report: each as (the first of the report's
    triages, which makes a missing row, and the newest, whose decision is written)."""
    if not triages:
        return
    columns: list[list[Any]] = [[] for _ in range(9)]
    for first, newest in triages:
        triage = newest.payload
        row = (
            triage.report_id,
            first.correlation_id,
            first.payload.captured_at,
            triage.incident_id,
            triage.severity.value,
            triage.rule_set_version,
            json.dumps([reason.model_dump(mode="json") for reason in triage.reasons]),
            newest.occurred_at,
            newest.event_id,
        )
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    await connection.execute(_TRIAGED, *columns)


async def fetch_report(pool: asyncpg.Pool, report_id: UUID) -> dict[str, Any] | None:
    """One report as its reporter or a dispatcher sees it, or None when unknown."""
    row = await pool.fetchrow(
        "SELECT r.*, i.status AS incident_status, i.alert_step IS NOT NULL AS alerted "
        "FROM reports r LEFT JOIN incidents i ON i.incident_id = r.incident_id "
        "WHERE r.report_id = $1",
        report_id,
    )
    if row is None:
        return None
    report = dict(row)
    for column in ("location", "photos", "reasons"):
        if report[column] is not None:
            report[column] = json.loads(report[column])
    incident_status, alerted = report.pop("incident_status"), report.pop("alerted")
    if incident_status in ("acknowledged", "resolved"):
        report["status"] = incident_status
    elif alerted:
        report["status"] = "alerted"  # the people its routing names are being told
    else:
        report["status"] = "triaged" if report["severity"] is not None else "received"
    return report
