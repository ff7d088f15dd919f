"""Explainable severity: which rules matched a report, and on what evidence.

Keywords match by substring on case-folded text, which works for Chinese (no spaces
between words) as well as for English. Rules with `severity` set a floor; rules with
`raise_by` (photos attached, night time, main line …) raise a severity some other rule
found, never a report nothing else matched.
"""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from qianliyan.shared.events import ReportSubmittedPayload, Severity, TriageReason
from qianliyan.shared.events.reports import SEVERITY_SCALE
from qianliyan.triage.domain.rules import HOURS, LoadedRules, Rule

SCALE = SEVERITY_SCALE


@dataclass(frozen=True, slots=True)
class SeverityDecision:
    """The severity of a report and the reasons for it."""

    severity: Severity
    reasons: tuple[TriageReason, ...]


def place_kinds(place: str | None, rules: LoadedRules) -> list[str]:
    """The kinds of place (main line, yard, …) a named place is, by the file's patterns."""
    if not place:
        return []
    return [
        kind for kind, patterns in rules.place_patterns if any(p.search(place) for p in patterns)
    ]


def decide_severity(report: ReportSubmittedPayload, rules: LoadedRules) -> SeverityDecision:
    """The severity the rules give `report`, with one reason per rule that applied."""
    kinds = place_kinds(report.place, rules)
    local_time = report.captured_at.astimezone(ZoneInfo(rules.spec.timezone))
    floor = Severity.INFO
    floor_reasons: list[TriageReason] = []
    raise_reasons: list[tuple[int, TriageReason]] = []
    for rule in rules.spec.rules:
        evidence = _evidence(rule, report, kinds, local_time.hour, local_time.strftime("%H:%M"))
        if evidence is None:
            continue
        reason = TriageReason(rule_id=rule.id, summary=rule.summary, evidence=evidence)
        if rule.severity is not None:
            floor_reasons.append(reason)
            floor = max(floor, rule.severity, key=SCALE.index)
        else:
            raise_reasons.append((rule.raise_by or 0, reason))
    if not floor_reasons:
        return SeverityDecision(Severity.INFO, ())
    steps = sum(step for step, _ in raise_reasons)
    severity = SCALE[min(SCALE.index(floor) + steps, len(SCALE) - 1)]
    return SeverityDecision(severity, (*floor_reasons, *(reason for _, reason in raise_reasons)))


def _evidence(
    rule: Rule, report: ReportSubmittedPayload, kinds: list[str], hour: int, clock: str
) -> list[str] | None:
    """What in the report satisfies every condition of `rule`, or None if one fails."""
    evidence: list[str] = []
    if rule.keywords:
        text = report.text.casefold()
        hits = [keyword for keyword in rule.keywords if keyword.casefold() in text]
        if not hits:
            return None
        evidence += hits
    if rule.categories:
        if report.category not in rule.categories:
            return None
        evidence.append(f"category {report.category}")
    if rule.place_kinds:
        matched = [kind for kind in kinds if kind in rule.place_kinds]
        if not matched:
            return None
        evidence.append(f"place {report.place} is {', '.join(matched)}")
    if rule.has_photos is not None:
        if bool(report.photos) != rule.has_photos:
            return None
        evidence.append(f"{len(report.photos)} photo(s) attached")
    if rule.hours is not None:
        if not _within(rule.hours, hour):
            return None
        evidence.append(f"captured at {clock} local time")
    return evidence


def _within(hours: str, hour: int) -> bool:
    match = HOURS.match(hours)
    assert match is not None  # checked when the file was loaded
    start, end = (int(h) % 24 for h in match.groups())
    return start <= hour < end if start <= end else hour >= start or hour < end
