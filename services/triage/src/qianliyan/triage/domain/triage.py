"""The transformation triage applies to each event from `incidents.reports`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from qianliyan.shared.events import (
    Actor,
    ActorKind,
    Event,
    ReportSubmitted,
    ReportTriaged,
    ReportTriagedPayload,
    TriageReason,
)
from qianliyan.shared.events.envelope import derived_event_id
from qianliyan.triage.domain.incidents import GroupingPolicy, IncidentAssignment, IncidentGrouper
from qianliyan.triage.domain.rules import LoadedRules
from qianliyan.triage.domain.severity import SCALE, decide_severity

TRIAGE_ACTOR = Actor(kind=ActorKind.SERVICE, id="triage")


# This many different people reporting one incident make it more severe.
INDEPENDENT_REPORTERS = 3


def triage_report(
    submitted: ReportSubmitted, rules: LoadedRules, incident: IncidentAssignment | None = None
) -> ReportTriaged:
    """Decide a report's severity and incident; alone, a report is its own incident."""
    report = submitted.payload
    decision = decide_severity(report, rules)
    severity, reasons = decision.severity, list(decision.reasons)
    incident_id = incident.incident_id if incident else report.report_id
    if incident and incident.evidence:
        reasons.append(
            TriageReason(
                rule_id="same-incident", summary="Reported before", evidence=[incident.evidence]
            )
        )
    if incident and len(incident.reporters) >= INDEPENDENT_REPORTERS:
        severity = SCALE[min(SCALE.index(severity) + 1, len(SCALE) - 1)]
        reasons.append(
            TriageReason(
                rule_id="independent-reporters",
                summary="Several people reported it / 多人报告",
                evidence=[
                    f"{len(incident.reporters)} reporters: {', '.join(sorted(incident.reporters))}"
                ],
            )
        )
    return ReportTriaged.caused_by(
        submitted,
        # Seeing the same submission twice (a producer retry after a timeout) yields the
        # same event id, so readers drop the copy; a new rule set yields a new event.
        event_id=derived_event_id(submitted.event_id, f"triage:{rules.version}"),
        key=str(incident_id),
        actor=TRIAGE_ACTOR,
        payload=ReportTriagedPayload(
            report_id=report.report_id,
            incident_id=incident_id,
            severity=severity,
            rule_set_version=rules.version,
            reasons=reasons,
            captured_at=report.captured_at,
        ),
    )


class TriagePipeline:
    """Triage of one consumer: severity by the rules, incidents by a fold per partition."""

    def __init__(
        self,
        rules: Callable[[], LoadedRules],
        *,
        output_topic: str,
        policy: GroupingPolicy | None = None,
    ) -> None:
        self._rules = rules
        self._output_topic = output_topic
        self._policy = policy or GroupingPolicy()
        self._groupers: dict[int, IncidentGrouper] = {}

    def transform(self, event: Event, partition: int) -> Sequence[tuple[str, Event]]:
        """What triage produces for one consumed event; other event types produce nothing."""
        return self.for_batch(partition)(event)

    def for_batch(self, partition: int) -> Callable[[Event], Sequence[tuple[str, Event]]]:
        """`transform` for the events of one batch of `partition`, under the rules in force
        as the batch begins (whether the rule file changed is asked once, not per event)."""
        grouper, rules = self._grouper(partition), self._rules()

        def transform(event: Event) -> Sequence[tuple[str, Event]]:
            if not isinstance(event, ReportSubmitted):
                return []
            return [(self._output_topic, triage_report(event, rules, grouper.assign(event)))]

        return transform

    def replay(self, partition: int, history: Iterable[Event]) -> None:
        """Rebuild a partition's grouping from its already-triaged history, producing nothing."""
        grouper = self._groupers[partition] = IncidentGrouper(self._policy)
        for event in history:
            if isinstance(event, ReportSubmitted):
                grouper.assign(event)

    def forget(self, partition: int) -> None:
        """Drop a partition's state once another consumer owns it."""
        self._groupers.pop(partition, None)

    def _grouper(self, partition: int) -> IncidentGrouper:
        return self._groupers.setdefault(partition, IncidentGrouper(self._policy))
