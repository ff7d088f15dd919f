"""The reports read model: one row per report, filled by its submission and triage."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import asyncpg

from qianliyan.shared.db import Connection
from qianliyan.shared.events import ReportSubmitted, ReportTriaged


async def apply_submitted(connection: Connection, event: ReportSubmitted) -> None:
    report = event.payload
    await connection.execute(
        """
        INSERT INTO reports (
            report_id, correlation_id, reporter_id, text, category, place, unit, location,
            photos, client_report_id, captured_at, received_at, submitted_event_id, updated_at
        )
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9::jsonb, $10, $11, $12, $13, now())
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
        """,
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


async def apply_triaged(connection: Connection, event: ReportTriaged) -> None:
    triage = event.payload
    # A re-triage produces a newer ReportTriaged; an older one arriving late never wins.
    await connection.execute(
        """
        INSERT INTO reports (
            report_id, correlation_id, captured_at, incident_id, severity, rule_set_version,
            reasons, triaged_at, triaged_event_id, updated_at
        )
        VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, now())
        ON CONFLICT (report_id) DO UPDATE SET
            incident_id = EXCLUDED.incident_id,
            severity = EXCLUDED.severity,
            rule_set_version = EXCLUDED.rule_set_version,
            reasons = EXCLUDED.reasons,
            triaged_at = EXCLUDED.triaged_at,
            triaged_event_id = EXCLUDED.triaged_event_id,
            updated_at = now()
        WHERE reports.triaged_at IS NULL OR reports.triaged_at <= EXCLUDED.triaged_at
        """,
        triage.report_id,
        event.correlation_id,
        triage.captured_at,
        triage.incident_id,
        triage.severity.value,
        triage.rule_set_version,
        json.dumps([reason.model_dump(mode="json") for reason in triage.reasons]),
        event.occurred_at,
        event.event_id,
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
