"""The reports read model: one row per report, filled by its submission and triage."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import asyncpg

from qianliyan.shared.db import Connection
from qianliyan.shared.events import ReportSubmitted, ReportTriaged

# A submission writes every column it has: of several for one report, the last wins. A
# re-triage produces a newer ReportTriaged; an older one arriving late never wins. A
# triage that comes before its submission makes the row, with the ids and capture time
# the submission will overwrite. One row per report carries either or both (its
# submitted_event_id is null without a submission, its triaged_event_id without a
# triage), so a report whose submission and triage come in one batch is written once.
_TRIAGE_WINS = (
    "EXCLUDED.triaged_event_id IS NOT NULL AND "
    "(reports.triaged_at IS NULL OR reports.triaged_at <= EXCLUDED.triaged_at)"
)
_SUBMISSION_COLUMNS = (
    "correlation_id", "reporter_id", "reporter_via", "text", "category", "place", "unit",
    "location", "photos", "client_report_id", "captured_at", "received_at",
    "submitted_event_id",
)  # fmt: skip
_TRIAGE_COLUMNS = (
    "incident_id", "severity", "rule_set_version", "reasons", "triaged_at", "triaged_event_id",
)  # fmt: skip
_UPSERT = f"""
    INSERT INTO reports (
        report_id, {", ".join(_SUBMISSION_COLUMNS)}, {", ".join(_TRIAGE_COLUMNS)}, updated_at
    )
    SELECT report_id, correlation_id, reporter_id, reporter_via, text, category, place,
           unit, location::jsonb, COALESCE(photos::jsonb, '[]'::jsonb), client_report_id,
           captured_at, received_at, submitted_event_id, incident_id, severity,
           rule_set_version, reasons::jsonb, triaged_at, triaged_event_id, now()
      FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
                  $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
                  $12::timestamptz[], $13::timestamptz[], $14::uuid[], $15::uuid[],
                  $16::text[], $17::text[], $18::text[], $19::timestamptz[], $20::uuid[])
           AS r(report_id, correlation_id, reporter_id, reporter_via, text, category, place,
                unit, location, photos, client_report_id, captured_at, received_at,
                submitted_event_id, incident_id, severity, rule_set_version, reasons,
                triaged_at, triaged_event_id)
    ON CONFLICT (report_id) DO UPDATE SET
        {
    ", ".join(
        f"{c} = CASE WHEN EXCLUDED.submitted_event_id IS NOT NULL "
        f"THEN EXCLUDED.{c} ELSE reports.{c} END"
        for c in _SUBMISSION_COLUMNS
    )
},
        {
    ", ".join(
        f"{c} = CASE WHEN {_TRIAGE_WINS} THEN EXCLUDED.{c} ELSE reports.{c} END"
        for c in _TRIAGE_COLUMNS
    )
},
        updated_at = now()
    WHERE EXCLUDED.submitted_event_id IS NOT NULL OR ({_TRIAGE_WINS})
    RETURNING report_id, incident_id, triaged_at
"""  # noqa: S608 - fixed column names


async def apply_submitted(connection: Connection, event: ReportSubmitted) -> None:
    await upsert(connection, [event], [])


async def apply_triaged(connection: Connection, event: ReportTriaged) -> None:
    await upsert(connection, [], [(event, event)])


async def upsert(
    connection: Connection,
    submissions: Sequence[ReportSubmitted],
    triages: Sequence[tuple[ReportTriaged, ReportTriaged]],
) -> list[asyncpg.Record]:
    """Write submissions (at most one per report) and triages (at most one per report,
    each as the first of the report's triages, which makes a missing row, and the newest,
    whose decision is written); the report id, incident and triage time of each row
    written."""
    rows: dict[UUID, list[Any]] = {}
    for event in submissions:
        report = event.payload
        rows[report.report_id] = [
            report.report_id,
            event.correlation_id,
            event.actor.id,
            event.actor.via,
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
            *(None,) * 6,
        ]
    for first, newest in triages:
        triage = newest.payload
        row = rows.get(triage.report_id)
        if row is None:
            row = rows[triage.report_id] = [triage.report_id, first.correlation_id]
            row += [None] * 9 + [first.payload.captured_at, None, None]
        row[14:] = [
            triage.incident_id,
            triage.severity.value,
            triage.rule_set_version,
            json.dumps([reason.model_dump(mode="json") for reason in triage.reasons]),
            newest.occurred_at,
            newest.event_id,
        ]
    if not rows:
        return []
    return await connection.fetch(
        _UPSERT, *(list(column) for column in zip(*rows.values(), strict=True))
    )


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
