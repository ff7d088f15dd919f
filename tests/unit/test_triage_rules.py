"""Severity from the rule file: Chinese and English, places, photos, night, with reasons."""

from __future__ import annotations

from datetime import datetime
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest

from qianliyan.shared.events import (
    Actor,
    ActorKind,
    PhotoRef,
    ReportSubmitted,
    ReportSubmittedPayload,
    ReportTriaged,
    Severity,
)
from qianliyan.triage.domain.rules import LoadedRules, parse_rules
from qianliyan.triage.domain.severity import decide_severity
from qianliyan.triage.domain.triage import TriagePipeline
from qianliyan.triage.rulebook import DEFAULT_RULES

RULES = parse_rules(DEFAULT_RULES.read_text(encoding="utf-8"))
SHANGHAI = ZoneInfo("Asia/Shanghai")
AFTERNOON = datetime(2026, 11, 25, 15, 0, tzinfo=SHANGHAI)
PHOTO = PhotoRef(
    sha256="a" * 64,
    object_key="photos/aa/" + "a" * 64,
    content_type="image/jpeg",
    size_bytes=10,
    width=1,
    height=1,
)


def report(
    text: str,
    *,
    place: str | None = None,
    at: datetime = AFTERNOON,
    photos: int = 0,
) -> ReportSubmittedPayload:
    return ReportSubmittedPayload(
        report_id=uuid4(),
        text=text,
        place=place,
        captured_at=at,
        received_at=at,
        photos=[PHOTO] * photos,
    )


def rule_ids(payload: ReportSubmittedPayload, rules: LoadedRules = RULES) -> set[str]:
    return {reason.rule_id for reason in decide_severity(payload, rules).reasons}


@pytest.mark.parametrize(
    ("text", "severity", "rule_id"),
    [
        ("站台东侧配电箱冒烟", Severity.CRITICAL, "fire-smoke"),
        ("二道岔区发现线路异物", Severity.MAJOR, "line-obstruction"),
        ("Signal failure at the yard throat", Severity.MAJOR, "signal-failure"),
        ("SMOKE coming from the cab", Severity.CRITICAL, "fire-smoke"),
        ("候车室拥挤", Severity.MINOR, "crowding"),
    ],
)
def test_keywords_decide_severity_with_evidence(
    text: str, severity: Severity, rule_id: str
) -> None:
    decision = decide_severity(report(text), RULES)
    assert decision.severity is severity
    assert rule_id in {reason.rule_id for reason in decision.reasons}
    assert all(reason.evidence for reason in decision.reasons)


def test_the_most_severe_matching_rule_wins_and_every_match_is_a_reason() -> None:
    decision = decide_severity(report("信号故障，同时有人受伤"), RULES)
    assert decision.severity is Severity.CRITICAL
    assert {reason.rule_id for reason in decision.reasons} == {"signal-failure", "injury"}


def test_nothing_matching_is_info_without_reasons_even_at_night_with_a_photo() -> None:
    night = datetime(2026, 11, 25, 2, 10, tzinfo=SHANGHAI)
    decision = decide_severity(report("灯泡坏了一个", at=night, photos=1), RULES)
    assert decision.severity is Severity.INFO
    assert decision.reasons == ()


def test_main_line_and_night_raise_what_a_keyword_found() -> None:
    day_yard = decide_severity(report("发现异物", place="编组场"), RULES)
    assert day_yard.severity is Severity.MAJOR
    night_main = decide_severity(
        report("发现异物", place="K123+400", at=datetime(2026, 11, 25, 23, 30, tzinfo=SHANGHAI)),
        RULES,
    )
    assert night_main.severity is Severity.CRITICAL
    evidence = {reason.rule_id: reason.evidence for reason in night_main.reasons}
    assert evidence["on-main-line"] == ["place K123+400 is main_line"]
    assert evidence["night"] == ["captured at 23:30 local time"]


def test_night_is_judged_in_the_rule_files_time_zone() -> None:
    # 15:30 UTC is 23:30 in Shanghai.
    utc = datetime(2026, 11, 25, 15, 30, tzinfo=ZoneInfo("UTC"))
    assert "night" in rule_ids(report("积水", at=utc))


def test_a_photo_is_noted_as_evidence_without_raising() -> None:
    decision = decide_severity(report("积水", photos=2), RULES)
    assert decision.severity is Severity.MAJOR
    assert "photo-evidence" in {reason.rule_id for reason in decision.reasons}


def test_transform_continues_the_correlation_and_stamps_the_rule_version() -> None:
    payload = report("脱轨")
    submitted = ReportSubmitted.first(
        key=str(payload.report_id),
        actor=Actor(kind=ActorKind.REPORTER, id="w1"),
        payload=payload,
    )
    pipeline = TriagePipeline(lambda: RULES, output_topic="out")
    [(topic, triaged)] = pipeline.transform(submitted, 0)
    assert topic == "out"
    assert isinstance(triaged, ReportTriaged)
    assert triaged.correlation_id == submitted.correlation_id
    assert triaged.causation_id == submitted.event_id
    assert triaged.payload.rule_set_version == RULES.version == "2026-11-25.1"
    assert pipeline.transform(triaged, 0) == []
    # The same submission seen twice yields the same event, which readers drop as a copy.
    [(_, again)] = pipeline.transform(submitted, 0)
    assert again.event_id == triaged.event_id
