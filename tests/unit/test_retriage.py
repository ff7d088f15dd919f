"""The re-triage plan on a hand-built history: what goes up, down, or is new."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

from qianliyan.shared.events import Actor, ActorKind, ReportSubmitted, ReportSubmittedPayload
from qianliyan.triage.domain.retriage import latest_triage, plan_retriage
from qianliyan.triage.domain.rules import parse_rules
from qianliyan.triage.domain.triage import triage_report

OLD = parse_rules("""
version: old
rules:
  - {id: fire, summary: Fire, keywords: [冒烟], severity: critical}
  - {id: flood, summary: Flood, keywords: [积水], severity: major}
""")
NEW = parse_rules("""
version: new
rules:
  - {id: fire, summary: Fire, keywords: [冒烟], severity: major}
  - {id: flood, summary: Flood, keywords: [积水], severity: critical}
  - {id: lamp, summary: Lamp, keywords: [灯], severity: minor}
""")


def submitted(text: str) -> ReportSubmitted:
    now = datetime.now(UTC)
    payload = ReportSubmittedPayload(report_id=uuid4(), text=text, captured_at=now, received_at=now)
    return ReportSubmitted.first(
        key=str(payload.report_id), actor=Actor(kind=ActorKind.REPORTER, id="w"), payload=payload
    )


def test_the_plan_lists_each_change_and_counts_them() -> None:
    smoke, water, lamp, quiet = (submitted(t) for t in ("冒烟", "积水", "灯坏了", "一切正常"))
    current = latest_triage(triage_report(s, OLD) for s in (smoke, water, quiet))
    plan = plan_retriage([(0, s) for s in (smoke, water, lamp, quiet)], current, NEW)

    changes = {change.report_id: change for change in plan.changes}
    assert changes[smoke.payload.report_id].direction == "down"
    assert changes[water.payload.report_id].direction == "up"
    assert changes[water.payload.report_id].before_version == "old"
    assert changes[lamp.payload.report_id].direction == "new"
    assert plan.totals() == {"up": 1, "down": 1, "new": 1, "unchanged": 1}
    assert {event.payload.rule_set_version for event in plan.events} == {"new"}
    assert len(plan.events) == 4


def test_a_later_retriage_supersedes_an_earlier_one() -> None:
    smoke = submitted("冒烟")
    first, second = triage_report(smoke, OLD), triage_report(smoke, NEW)
    assert latest_triage([second, first])[smoke.payload.report_id] == second
