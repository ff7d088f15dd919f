"""The transformation triage applies to each event from `incidents.reports`."""

from __future__ import annotations

from collections.abc import Sequence

from qianliyan.shared.events import (
    Actor,
    ActorKind,
    Event,
    ReportSubmitted,
    ReportTriaged,
    ReportTriagedPayload,
)
from qianliyan.shared.events.envelope import derived_event_id
from qianliyan.triage.domain.rules import LoadedRules
from qianliyan.triage.domain.severity import decide_severity

TRIAGE_ACTOR = Actor(kind=ActorKind.SERVICE, id="triage")


def triage_report(submitted: ReportSubmitted, rules: LoadedRules) -> ReportTriaged:
    """Decide a submitted report's severity; each report is its own incident for now."""
    report = submitted.payload
    decision = decide_severity(report, rules)
    return ReportTriaged.caused_by(
        submitted,
        # Seeing the same submission twice (a producer retry after a timeout) yields the
        # same event id, so readers drop the copy; a new rule set yields a new event.
        event_id=derived_event_id(submitted.event_id, f"triage:{rules.version}"),
        key=str(report.report_id),
        actor=TRIAGE_ACTOR,
        payload=ReportTriagedPayload(
            report_id=report.report_id,
            incident_id=report.report_id,
            severity=decision.severity,
            rule_set_version=rules.version,
            reasons=list(decision.reasons),
            captured_at=report.captured_at,
        ),
    )


def transform(
    event: Event, *, rules: LoadedRules, output_topic: str
) -> Sequence[tuple[str, Event]]:
    """What triage produces for one consumed event; other event types produce nothing."""
    if isinstance(event, ReportSubmitted):
        return [(output_topic, triage_report(event, rules))]
    return []
