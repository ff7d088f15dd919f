"""The re-triage plan on a hand-built history: what goes up, down, or is new."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest

from qianliyan.shared.events import (
    Actor,
    ActorKind,
    ReportSubmitted,
    ReportSubmittedPayload,
    ReportTriaged,
)
from qianliyan.triage.domain.retriage import latest_triage, plan_retriage
from qianliyan.triage.domain.rules import parse_rules
from qianliyan.triage.domain.triage import triage_report
from qianliyan.triage.retriage import apply_plan, describe
from qianliyan.triage.settings import TriageSettings

OLD = parse_rules("""
version: old
rules:
  - {id: fire, summary: Fire, keywords: [冒烟], severity: critical}
  - {id: flood, summary: Flood, keywords: [积水], severity: major}
""")
NEW_TEXT = """
version: new
rules:
  - {id: fire, summary: Fire, keywords: [冒烟], severity: major}
  - {id: flood, summary: Flood, keywords: [积水], severity: critical}
  - {id: lamp, summary: Lamp, keywords: [灯], severity: minor}
"""
NEW = parse_rules(NEW_TEXT)


def submitted(text: str, place: str | None = None) -> ReportSubmitted:
    now = datetime.now(UTC)
    payload = ReportSubmittedPayload(
        report_id=uuid4(), text=text, place=place, captured_at=now, received_at=now
    )
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
    assert plan.totals() == {
        "up": 1,
        "down": 1,
        "new": 1,
        "unchanged": 1,
        "incidents_split": 0,
        "incidents_merged": 0,
    }
    assert {event.payload.rule_set_version for event in plan.events} == {"new"}
    assert len(plan.events) == 4


def test_a_later_retriage_supersedes_an_earlier_one() -> None:
    smoke = submitted("冒烟")
    first, second = triage_report(smoke, OLD), triage_report(smoke, NEW)
    assert latest_triage([second, first])[smoke.payload.report_id] == second


def test_incidents_merged_and_split_are_counted() -> None:
    # Before: a and b were one incident, c another. After: a alone, b joins c.
    a, b, c = submitted("冒烟"), submitted("冒烟"), submitted("积水")
    triaged = {s.payload.report_id: triage_report(s, OLD) for s in (a, b, c)}
    before = {
        a.payload.report_id: _in_incident(triaged[a.payload.report_id], a.payload.report_id),
        b.payload.report_id: _in_incident(triaged[b.payload.report_id], a.payload.report_id),
        c.payload.report_id: _in_incident(triaged[c.payload.report_id], c.payload.report_id),
    }
    after_rules = parse_rules("""
version: regrouped
rules:
  - {id: any, summary: Any, keywords: [冒, 积], severity: minor}
""")
    plan = plan_retriage([(0, a), (1, b), (1, c)], before, after_rules)
    # b and c share partition 1 but differ in wording and place: the fold keeps them apart,
    # so b leaves a's incident (a split) without joining c's.
    assert plan.totals()["incidents_split"] == 1
    assert [move.report_id for move in plan.moves] == [b.payload.report_id]


def _in_incident(event: ReportTriaged, incident_id: UUID) -> ReportTriaged:
    payload = event.payload.model_copy(update={"incident_id": incident_id})
    return event.model_copy(update={"payload": payload})


def test_reports_the_fold_now_groups_count_as_a_merge() -> None:
    a, b = submitted("3号站台冒烟", place="3号站台"), submitted("3号站台在冒烟", place="3号站台")
    apart = {s.payload.report_id: triage_report(s, OLD) for s in (a, b)}  # each its own
    plan = plan_retriage([(0, a), (0, b)], apart, NEW)
    assert plan.totals()["incidents_merged"] == 1
    [move] = plan.moves
    assert (move.report_id, move.after) == (b.payload.report_id, a.payload.report_id)


def test_a_file_edited_without_a_new_version_cannot_change_what_that_version_decided() -> None:
    """The same version names the same event ids: the new decisions would be dropped by
    every reader as copies of the old ones, while the command said "applied"."""
    edited = parse_rules(NEW_TEXT.replace("version: new", "version: old"))
    smoke, water, quiet = (submitted(t) for t in ("冒烟", "积水", "一切正常"))
    decisions = [triage_report(s, OLD) for s in (smoke, water, quiet)]
    plan = plan_retriage(
        [(0, s) for s in (smoke, water, quiet)],
        latest_triage(decisions),
        edited,
        decided={d.event_id: d for d in decisions},
    )
    assert sorted(plan.unchangeable) == sorted([smoke.payload.report_id, water.payload.report_id])
    assert "Give the rule file a new version" in describe(plan)
    with pytest.raises(RuntimeError, match=r"2 report\(s\) were decided under rules version old"):
        asyncio.run(apply_plan(TriageSettings(), plan))

    renamed = plan_retriage(
        [(0, s) for s in (smoke, water, quiet)],
        latest_triage(decisions),
        NEW,
        decided={d.event_id: d for d in decisions},
    )
    assert renamed.unchangeable == []


def test_decisions_the_log_holds_already_are_not_produced_again() -> None:
    """An --apply cut short committed some of its batches: run again, it finishes the rest."""
    smoke, water, lamp = (submitted(t) for t in ("冒烟", "积水", "灯坏了"))
    history = [(0, s) for s in (smoke, water, lamp)]
    before = [triage_report(s, OLD) for s in (smoke, water, lamp)]
    first = plan_retriage(history, latest_triage(before), NEW)
    assert first.in_log == set() and first.to_produce == first.events
    # A submission the log holds twice (a producer's retry) is decided once.
    twice = plan_retriage([*history, history[0]], latest_triage(before), NEW)
    assert [e.event_id for e in twice.to_produce] == [e.event_id for e in first.events]

    applied = first.events[:2]  # the first batch committed, then the run was cut short
    log = before + applied
    again = plan_retriage(
        history, latest_triage(log), NEW, decided={event.event_id: event for event in log}
    )
    assert [e.event_id for e in again.to_produce] == [e.event_id for e in first.events[2:]]
    assert again.unchangeable == []
    assert "2 of their decisions are in the log already" in describe(again)


def test_rules_applied_again_after_newer_ones_are_refused_not_skipped_as_done() -> None:
    """Back to "old" after "new": the log holds the old decisions, the same, but the new
    ones replaced them. Sent again they would be dropped as copies; skipped, the command
    would say done while nothing changed."""
    smoke, water = submitted("冒烟"), submitted("积水")
    history = [(0, smoke), (0, water)]
    log = [triage_report(s, OLD) for s in (smoke, water)]
    log += plan_retriage(history, latest_triage(log), NEW).events
    back = plan_retriage(
        history, latest_triage(log), OLD, decided={event.event_id: event for event in log}
    )
    assert sorted(back.superseded) == sorted([smoke.payload.report_id, water.payload.report_id])
    assert back.in_log == set()
    assert "later decisions replaced those" in describe(back)
    with pytest.raises(RuntimeError, match=r"2 report\(s\) were decided .* before"):
        asyncio.run(apply_plan(TriageSettings(), back))


def test_a_submission_the_log_holds_twice_is_decided_once_and_resumes_cleanly() -> None:
    """A producer's retry wrote b twice; the copy, folded after c joined, would say "3
    reports" where b's decision said 2. Compared as a second decision under the same id,
    it made a resumed --apply refuse as if the file had been edited."""
    a, b, c = (
        submitted(t, place="3号站台") for t in ("3号站台冒烟", "3号站台在冒烟", "3号站台冒烟了")
    )
    history = [(0, a), (0, b), (0, c), (0, b)]
    before = [triage_report(s, OLD) for s in (a, b, c)]
    first = plan_retriage(history, latest_triage(before), NEW)
    assert len(first.events) == 3
    log = before + first.events[:2]  # cut short after its first batch
    again = plan_retriage(
        history, latest_triage(log), NEW, decided={event.event_id: event for event in log}
    )
    assert again.unchangeable == [] and again.superseded == []
    assert [e.event_id for e in again.to_produce] == [first.events[2].event_id]
