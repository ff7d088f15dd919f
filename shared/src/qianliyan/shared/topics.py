"""The project's Kafka topics; every one has a dead-letter twin."""

from __future__ import annotations

REPORTS = "incidents.reports"
TRIAGE = "incidents.triage"
ALERTS = "incidents.alerts"

DEAD_LETTER_SUFFIX = ".dlq"


def dead_letter_topic(topic: str) -> str:
    """The dead-letter topic that pairs with `topic`."""
    return f"{topic}{DEAD_LETTER_SUFFIX}"
