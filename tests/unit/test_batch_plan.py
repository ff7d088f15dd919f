"""The plan of a set-based batch: which incidents one by one would refresh, how often, and
which orders it cannot reproduce (those go event by event)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from qianliyan.notify.projections.batch import (
    OrderMatters,
    Triage,
    check_alert_order,
    incident_refreshes,
    triage_per_report,
)
from qianliyan.notify.projections.incidents import timeline_detail
from qianliyan.shared.events import (
    Actor,
    ActorKind,
    AlertDelivered,
    AlertEscalated,
    AlertEscalatedPayload,
    AlertRaised,
    AlertRaisedPayload,
    AlertUpgraded,
    AlertUpgradedPayload,
    DeliveryPayload,
    ReportSubmitted,
    ReportSubmittedPayload,
    ReportTriaged,
    ReportTriagedPayload,
    Severity,
)

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
ACTOR = Actor(kind=ActorKind.OPS, id="test")


def submitted(report_id: UUID) -> ReportSubmitted:
    payload = ReportSubmittedPayload(
        report_id=report_id, text="站台冒烟", captured_at=T0, received_at=T0
    )
    return ReportSubmitted.first(key=str(report_id), actor=ACTOR, payload=payload)


def triaged(report_id: UUID, incident_id: UUID, minute: int) -> ReportTriaged:
    payload = ReportTriagedPayload(
        report_id=report_id,
        incident_id=incident_id,
        severity=Severity.MAJOR,
        rule_set_version="v1",
        captured_at=T0,
    )
    event = ReportTriaged.first(key=str(report_id), actor=ACTOR, payload=payload)
    return event.model_copy(update={"occurred_at": T0 + timedelta(minutes=minute)})


def test_a_submission_refreshes_the_incident_its_report_is_in_by_then() -> None:
    report, incident = uuid4(), uuid4()
    # Submitted before its triage: nothing to refresh yet; after: its incident.
    refreshes, after = incident_refreshes(
        [submitted(report), triaged(report, incident, 1), submitted(report)], {}
    )
    assert refreshes == {incident: 2}
    assert after == {report: Triage(incident, T0 + timedelta(minutes=1))}


def test_a_late_triage_refreshes_its_incident_and_writes_nothing() -> None:
    report, current, stale = uuid4(), uuid4(), uuid4()
    before = {report: Triage(current, T0 + timedelta(minutes=5))}
    refreshes, after = incident_refreshes([triaged(report, stale, 1)], before)
    assert refreshes == {stale: 1}
    assert after == {}


def test_a_report_moved_to_another_incident_refreshes_the_one_it_left_too() -> None:
    """Left unrefreshed, the incident it left kept counting it, and kept its severity
    and unit (a manager of that unit still seeing it)."""
    report, other, first, second = uuid4(), uuid4(), uuid4(), uuid4()
    moving = [triaged(report, first, 1), triaged(other, first, 1), triaged(report, second, 2)]
    refreshes, _ = incident_refreshes(moving, {})
    assert refreshes == {first: 3, second: 1}
    # Moved away from an incident the batch never refreshed before: refreshed now.
    refreshes, _ = incident_refreshes([triaged(report, second, 2)], {report: Triage(first, T0)})
    assert refreshes == {first: 1, second: 1}
    # A late triage moves nothing, and refreshes only the incident it names.
    late, _ = incident_refreshes(
        [triaged(report, second, 0)], {report: Triage(first, T0 + timedelta(minutes=5))}
    )
    assert late == {second: 1}


def test_the_newest_triage_stands_and_the_first_makes_the_row() -> None:
    report, incident = uuid4(), uuid4()
    early, newest, tie, older = (
        triaged(report, incident, 1),
        triaged(report, incident, 3),
        triaged(report, incident, 3),
        triaged(report, incident, 2),
    )
    assert triage_per_report([early, newest, tie, older]) == [(early, tie)]


def test_an_escalation_or_upgrade_ahead_of_its_alert_goes_one_by_one() -> None:
    incident = uuid4()
    raised = AlertRaised.first(
        key=str(incident),
        actor=ACTOR,
        payload=AlertRaisedPayload(
            incident_id=incident,
            round=0,
            severity=Severity.MAJOR,
            route="值班",
            routing_version="r1",
        ),
    )
    escalated = AlertEscalated.first(
        key=str(incident),
        actor=ACTOR,
        payload=AlertEscalatedPayload(incident_id=incident, round=0, step=1, routing_version="r1"),
    )
    upgraded = AlertUpgraded.first(
        key=str(incident),
        actor=ACTOR,
        payload=AlertUpgradedPayload(
            incident_id=incident,
            round=0,
            severity=Severity.CRITICAL,
            route="值班",
            routing_version="r1",
        ),
    )
    common = {"incident_id": incident, "round": 0, "step": 0, "recipient": "甲", "channel": "c"}
    # A delivery recorded before upgrades were told is of the severity its alert was raised
    # at, read from the alert, which it is compared with once it names its level too.
    delivered_then = AlertDelivered.first(
        key=str(incident), actor=ACTOR, payload=DeliveryPayload(**common, attempt=1)
    )
    delivered_now = AlertDelivered.first(
        key=str(incident),
        actor=ACTOR,
        payload=DeliveryPayload(**common, attempt=1, severity=Severity.CRITICAL),
    )
    check_alert_order([raised, upgraded, escalated, delivered_then, delivered_now])
    for first in (escalated, upgraded, delivered_then, delivered_now):
        with pytest.raises(OrderMatters):
            check_alert_order([first, raised])


def test_a_delivery_recorded_before_upgrades_reads_on_the_timeline_as_it_did_then() -> None:
    incident = uuid4()
    common = {"incident_id": incident, "round": 0, "step": 0, "recipient": "甲", "channel": "c"}
    then = AlertDelivered.first(
        key=str(incident), actor=ACTOR, payload=DeliveryPayload(**common, attempt=1)
    )
    now = AlertDelivered.first(
        key=str(incident),
        actor=ACTOR,
        payload=DeliveryPayload(**common, attempt=1, severity=Severity.CRITICAL),
    )
    # Live, the entries of the last release were written without a severity: a rebuild
    # must write them the same, or `check` finds every one of them differing.
    assert "severity" not in timeline_detail(then)
    assert timeline_detail(now)["severity"] == "critical"
