"""What a manager reads on their phone: a short title and body, in their language."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID
from zoneinfo import ZoneInfo

from qianliyan.shared.events import Severity
from qianliyan.shared.text import one_line

SEVERITY_NAMES = {
    "zh": {"info": "提示", "minor": "一般", "major": "严重", "critical": "紧急"},
    "en": {"info": "Info", "minor": "Minor", "major": "Major", "critical": "Critical"},
}

_TEXT = {
    "zh": {
        "escalated": "【升级{step}】",
        "upgraded": "【级别上调】",
        "reports": "{n} 份报告",
        "opened": "首报 {time}",
        "why": "依据",
        "open": "打开",
        "unknown_place": "地点未知",
    },
    "en": {
        "escalated": "[Escalation {step}] ",
        "upgraded": "[Now more severe] ",
        "reports": "{n} report(s)",
        "opened": "first reported {time}",
        "why": "Why",
        "open": "Open",
        "unknown_place": "place unknown",
    },
}

_EXCERPT = 140


@dataclass(frozen=True, slots=True)
class AlertFacts:
    """What the message says about the alert: read from the read models, but for the unit
    and place, which are those it was routed for."""

    incident_id: UUID
    severity: Severity
    place: str | None
    unit: str | None
    report_count: int
    opened_at: datetime | None
    first_text: str | None
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Message:
    """A title, a plain-text body, and the JSON document a webhook receives."""

    title: str
    body: str


def compose(
    facts: AlertFacts,
    *,
    step: int,
    language: str,
    timezone: str,
    link: str | None,
    upgraded: bool = False,
) -> Message:
    """The message for one escalation step, in `language` ('zh' or 'en'); `upgraded` when
    it tells of a level above the one the alert was raised at."""
    text = _TEXT[language]
    severity = SEVERITY_NAMES[language][facts.severity.value]
    # One line whatever an older event carries: it is an e-mail's subject, say.
    parts = (one_line(part) for part in (facts.unit, facts.place) if part)
    where = " · ".join(part for part in parts if part) or text["unknown_place"]
    prefix = text["escalated"].format(step=step) if step > 0 else ""
    if upgraded:
        prefix += text["upgraded"]
    title = f"{prefix}[{severity}] {where}"
    lines = []
    if facts.first_text:
        excerpt = facts.first_text.strip()
        lines.append(excerpt if len(excerpt) <= _EXCERPT else excerpt[: _EXCERPT - 1] + "…")
    summary = [text["reports"].format(n=facts.report_count)]
    if facts.opened_at is not None:
        local = facts.opened_at.astimezone(ZoneInfo(timezone))
        summary.append(text["opened"].format(time=local.strftime("%m-%d %H:%M")))
    lines.append(", ".join(summary))
    if facts.reasons:
        lines.append(f"{text['why']}: " + "; ".join(facts.reasons))
    if link:
        lines.append(f"{text['open']}: {link}")
    return Message(title=title, body="\n".join(lines))
