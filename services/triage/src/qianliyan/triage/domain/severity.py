"""Explainable severity: which rules matched a report, and on what evidence.

Keywords match by substring on case-folded text, which works for Chinese (no spaces
between words), an English one only at the start of a word ("killed" is not in
"skilled", "injur" is in "injured"); a keyword found only inside one of its rule's
`unless` phrases ("无人受伤", "no smoke") does not count. Rules with `severity` set a
floor; rules with `raise_by` (photos attached, night time, main line …) raise a severity
some other rule found, never a report nothing else matched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from qianliyan.shared.events import ReportSubmittedPayload, Severity, TriageReason
from qianliyan.shared.events.reports import SEVERITY_SCALE
from qianliyan.triage.domain.folding import fold, normalised
from qianliyan.triage.domain.rules import LoadedRules, PreparedRule

SCALE = SEVERITY_SCALE
# Stands in for a blanked-out phrase: no keyword holds a NUL, so none is found across one.
_BLANK = "\x00"
# A phrase that says the opposite says it only where the report does not leave the matter
# open. Open is: asked about, in its sentence ("没有人受伤了吗？", "no injuries?", "无人受伤，
# 对吧？") or its clause ("无人受伤吧"); put in doubt before it, in its clause ("有没有人受伤",
# "有无伤员", "是否无人受伤", "未确认无人受伤"); or put before what happened ("未脱轨前曾剧烈
# 晃动": it shook before it derailed; not 前方, 前面, 前往, 前进). There the keyword counts: a
# report left open is read as the worse case. A check is doubt ("请确认", "需要进一步核实")
# unless said done ("经确认", "已核实", "确认：" with what it found), and not done where it is
# denied ("未经确认"). An exception beside the phrase leaves it open too ("除司机外无人受伤",
# "除了司机，其他人无人受伤", "无人受伤（司机除外）", "no one hurt except the driver": the
# driver is); a clearing away is none ("清除了", "排除外部干扰", "除雪车").
_CLAUSE_END = re.compile(r"[，,；;。.！!？?\n]")
_SENTENCE_END = re.compile(r"[。.！!\n]")
_ASKED_AFTER = ("吗", "么", "吧", "呢")
_DOUBTED_BEFORE = ("是否", "是不是", "能否", "有否")
_CHECK_WORDS = "确认|核实|確認|核實"
_CHECK = re.compile(_CHECK_WORDS)
_CHECK_DONE = re.compile(
    rf"(?<![未没沒不])(?:经过?|經過?|已经?|已經|均已?)(?:现场|現場)?(?:{_CHECK_WORDS})"
    rf"|(?:{_CHECK_WORDS})[：:]"
)
# Ends right before the phrase: "除司机外", "除了司机，其他人都", "except the driver,".
_EXCEPTION_BEFORE = re.compile(
    r"(?:(?<![清排解删刪消拆去免切剔移扫掃铲剷摘])除(?![雪冰尘塵锈鏽草湿濕霜])"
    r"(?:[^。.！!？?\n，,]{0,12}[以之]?外|了[^。.！!？?\n，,]{0,12}[，,])"
    r"|\b(?:except|other than|apart from)\b[^.!?\n,]{0,30},)"
    r"[，,]?\s*(?:其他人|其余人员|其余|其他|others?)?\s*(?:都|均)?$"
)
# Begins right after it (past the rest of a stem's word): "（司机除外）", "except the driver".
_EXCEPTION_AFTER = re.compile(
    r"[a-z']*\s*(?:except|other than|apart from)\b|\s*[（(][^）)]{0,12}除外"
)
_BEFORE_IT_HAPPENED = re.compile(r"[之以]?前(?![方面往进])")


def _excused(found: re.Match[str]) -> str:
    """`found` blanked out where it says the opposite, else left as it is."""
    text = found.string
    before = _CLAUSE_END.split(text[: found.start()])[-1].rstrip()
    after = text[found.end() :]
    if _BEFORE_IT_HAPPENED.match(after):
        return found.group()
    sentence = _SENTENCE_END.split(after, maxsplit=1)[0]
    clause = _CLAUSE_END.split(after, maxsplit=1)[0]
    if "?" in sentence or "？" in sentence or any(word in clause for word in _ASKED_AFTER):
        return found.group()
    if before.endswith("有") or any(word in before for word in _DOUBTED_BEFORE):
        return found.group()
    if _CHECK.search(_CHECK_DONE.sub("", before)):
        return found.group()
    sentence_before = _SENTENCE_END.split(text[: found.start()])[-1]
    if _EXCEPTION_BEFORE.search(sentence_before) or _EXCEPTION_AFTER.match(after):
        return found.group()
    return _BLANK


@dataclass(frozen=True, slots=True)
class SeverityDecision:
    """The severity of a report and the reasons for it."""

    severity: Severity
    reasons: tuple[TriageReason, ...]


def decide_severity(report: ReportSubmittedPayload, rules: LoadedRules) -> SeverityDecision:
    """The severity the rules give `report`, with one reason per rule that applied."""
    facts = _Facts(
        text=fold(report.text),
        kinds=rules.kinds_of_place(normalised(report.place)) if report.place else (),
        local_time=report.captured_at.astimezone(rules.zone),
    )
    floor: int | None = None
    reasons: list[TriageReason] = []
    for step, prepared in rules.floors:
        evidence = _evidence(prepared, report, facts)
        if evidence is not None:
            reasons.append(_reason(prepared, evidence))
            floor = step if floor is None else max(floor, step)
    if floor is None:
        return SeverityDecision(Severity.INFO, ())
    # Only now: a rule that raises raises what another found, so most reports never ask it.
    for step, prepared in rules.raises:
        evidence = _evidence(prepared, report, facts)
        if evidence is not None:
            reasons.append(_reason(prepared, evidence))
            floor += step
    return SeverityDecision(SCALE[min(floor, len(SCALE) - 1)], tuple(reasons))


class _Facts(NamedTuple):
    """What every rule looks at in one report, worked out once for all of them."""

    text: str  # folded (`fold`)
    kinds: tuple[str, ...]
    local_time: datetime


def _reason(prepared: PreparedRule, evidence: list[str]) -> TriageReason:
    return TriageReason(rule_id=prepared.rule.id, summary=prepared.rule.summary, evidence=evidence)


def _evidence(
    prepared: PreparedRule, report: ReportSubmittedPayload, facts: _Facts
) -> list[str] | None:
    """What in the report satisfies every condition of the rule, or None if one fails."""
    rule = prepared.rule
    evidence: list[str] = []
    if prepared.any_keyword is not None:
        text = facts.text
        if prepared.any_keyword.search(text) is None:
            return None
        if prepared.unless is not None:
            # What is left once the phrases that say the opposite are blanked out.
            text = prepared.unless.sub(_excused, text)
            if prepared.any_keyword.search(text) is None:
                return None
        evidence += [keyword for keyword, found in prepared.keywords if found.search(text)]
    if rule.categories:
        if report.category not in rule.categories:
            return None
        evidence.append(f"category {report.category}")
    if rule.place_kinds:
        matched = [kind for kind in facts.kinds if kind in rule.place_kinds]
        if not matched:
            return None
        evidence.append(f"place {report.place} is {', '.join(matched)}")
    if rule.has_photos is not None:
        if bool(report.photos) != rule.has_photos:
            return None
        evidence.append(f"{len(report.photos)} photo(s) attached")
    if prepared.hours is not None:
        if not _within(prepared.hours, facts.local_time.hour):
            return None
        # Not strftime, which costs four times as much and is asked a third of all reports.
        local = facts.local_time
        evidence.append(f"captured at {local.hour:02d}:{local.minute:02d} local time")
    return evidence


def _within(hours: tuple[int, int], hour: int) -> bool:
    start, end = hours
    return start <= hour < end if start <= end else hour >= start or hour < end
