"""Event counters add a batch up by topic and type."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from qianliyan.shared.metrics import count_events


def test_a_batch_is_counted_by_topic_and_type() -> None:
    registry = CollectorRegistry()
    counter = Counter("events", "test", ["topic", "type"], registry=registry)
    batch = [("reports", "ReportSubmitted")] * 3 + [("triage", "ReportTriaged")]
    count_events(counter, batch)
    count_events(counter, [("reports", "ReportSubmitted")])

    def value(topic: str, event_type: str) -> float | None:
        return registry.get_sample_value("events_total", {"topic": topic, "type": event_type})

    assert value("reports", "ReportSubmitted") == 4
    assert value("triage", "ReportTriaged") == 1
    assert value("triage", "ReportSubmitted") is None
