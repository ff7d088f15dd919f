"""Explainable severity: which rules matched a report, and on what evidence.

Matching is by substring on case-folded text, which works for Chinese (no spaces
between words) as well as for English. This built-in rule set is the walking
skeleton's; the editable, versioned rule file replaces it.
"""

from __future__ import annotations

from dataclasses import dataclass

from qianliyan.shared.events import ReportSubmittedPayload, Severity, TriageReason

SEVERITY_RANK = {Severity.INFO: 0, Severity.MINOR: 1, Severity.MAJOR: 2, Severity.CRITICAL: 3}


@dataclass(frozen=True, slots=True)
class KeywordRule:
    """A rule that raises a report to `severity` when any keyword occurs in its text."""

    rule_id: str
    severity: Severity
    keywords: tuple[str, ...]
    summary: str


@dataclass(frozen=True, slots=True)
class RuleSet:
    """A versioned set of rules; the version is stamped on every decision it makes."""

    version: str
    rules: tuple[KeywordRule, ...]


@dataclass(frozen=True, slots=True)
class SeverityDecision:
    """The severity of a report and the reasons for it."""

    severity: Severity
    reasons: tuple[TriageReason, ...]


BUILTIN_RULES = RuleSet(
    version="builtin-1",
    rules=(
        KeywordRule(
            "fire-smoke",
            Severity.CRITICAL,
            ("火灾", "着火", "起火", "冒烟", "fire", "smoke"),
            "Fire or smoke reported",
        ),
        KeywordRule(
            "derailment-collision",
            Severity.CRITICAL,
            ("脱轨", "碰撞", "derail", "collision"),
            "Derailment or collision reported",
        ),
        KeywordRule(
            "injury", Severity.CRITICAL, ("受伤", "伤员", "injur"), "Someone may be injured"
        ),
        KeywordRule(
            "line-obstruction",
            Severity.MAJOR,
            ("线路异物", "异物", "断轨", "obstruction", "broken rail"),
            "Obstruction on the line or broken rail",
        ),
        KeywordRule(
            "signal-failure",
            Severity.MAJOR,
            ("信号故障", "signal failure"),
            "Signal failure",
        ),
        KeywordRule("flooding", Severity.MAJOR, ("水害", "积水", "flood"), "Flooding"),
        KeywordRule("crowding", Severity.MINOR, ("拥挤", "crowd"), "Crowding"),
    ),
)


def decide_severity(report: ReportSubmittedPayload, rule_set: RuleSet) -> SeverityDecision:
    """The highest severity among matching rules, or info when none match."""
    text = report.text.casefold()
    reasons: list[TriageReason] = []
    severity = Severity.INFO
    for rule in rule_set.rules:
        evidence = [keyword for keyword in rule.keywords if keyword.casefold() in text]
        if not evidence:
            continue
        reasons.append(TriageReason(rule_id=rule.rule_id, summary=rule.summary, evidence=evidence))
        if SEVERITY_RANK[rule.severity] > SEVERITY_RANK[severity]:
            severity = rule.severity
    return SeverityDecision(severity=severity, reasons=tuple(reasons))
