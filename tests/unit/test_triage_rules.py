"""Severity from the built-in rules: Chinese and English, with reasons."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from qianliyan.shared.events import (
    Actor,
    ActorKind,
    ReportSubmitted,
    ReportSubmittedPayload,
    ReportTriaged,
    Severity,
)
from qianliyan.triage.domain.severity import BUILTIN_RULES, decide_severity
from qianliyan.triage.domain.triage import transform


def report(text: str) -> ReportSubmittedPayload:
    now = datetime.now(UTC)
    return ReportSubmittedPayload(report_id=uuid4(), text=text, captured_at=now, received_at=now)


@pytest.mark.parametrize(
    ("text", "severity", "rule_id"),
    [
        ("站台东侧配电箱冒烟", Severity.CRITICAL, "fire-smoke"),
        ("K123+400处发现线路异物", Severity.MAJOR, "line-obstruction"),
        ("Signal failure at the yard throat", Severity.MAJOR, "signal-failure"),
        ("候车室拥挤", Severity.MINOR, "crowding"),
    ],
)
def test_keywords_decide_severity_with_evidence(
    text: str, severity: Severity, rule_id: str
) -> None:
    decision = decide_severity(report(text), BUILTIN_RULES)
    assert decision.severity is severity
    assert rule_id in {reason.rule_id for reason in decision.reasons}
    assert all(reason.evidence for reason in decision.reasons)


def test_the_most_severe_matching_rule_wins_and_every_match_is_a_reason() -> None:
    decision = decide_severity(report("信号故障，同时有人受伤"), BUILTIN_RULES)
    assert decision.severity is Severity.CRITICAL
    assert {reason.rule_id for reason in decision.reasons} == {"signal-failure", "injury"}


def test_nothing_matching_is_info_without_reasons() -> None:
    decision = decide_severity(report("灯泡坏了一个"), BUILTIN_RULES)
    assert decision.severity is Severity.INFO
    assert decision.reasons == ()


def test_transform_continues_the_correlation() -> None:
    payload = report("脱轨")
    submitted = ReportSubmitted.first(
        key=str(payload.report_id),
        actor=Actor(kind=ActorKind.REPORTER, id="w1"),
        payload=payload,
    )
    [(topic, triaged)] = transform(submitted, rule_set=BUILTIN_RULES, output_topic="out")
    assert topic == "out"
    assert isinstance(triaged, ReportTriaged)
    assert triaged.correlation_id == submitted.correlation_id
    assert triaged.causation_id == submitted.event_id
    assert triaged.payload.rule_set_version == BUILTIN_RULES.version
    assert transform(triaged, rule_set=BUILTIN_RULES, output_topic="out") == []
    # The same submission seen twice yields the same event, which readers drop as a copy.
    [(_, again)] = transform(submitted, rule_set=BUILTIN_RULES, output_topic="out")
    assert again.event_id == triaged.event_id
