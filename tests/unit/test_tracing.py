"""A report's trace goes on through the services, recorded only where a collector is set."""

from __future__ import annotations

import pytest
from opentelemetry import trace

from qianliyan.shared.tracing import (
    CORRELATION_ID,
    configure_tracing,
    continuing,
    correlated,
    passed_on,
    span,
    trace_headers,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
REPORT_HEADERS = [
    ("type", b"ReportSubmitted"),
    ("traceparent", f"00-{TRACE}-00f067aa0ba902b7-01".encode()),
    ("tracestate", b"vendor=1"),
    ("correlation_id", b"c-1"),
]


@pytest.fixture(autouse=True, scope="module")
def no_collector() -> None:
    # A process sets its provider once; here, as a service without a collector does.
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
        configure_tracing("test")


def trace_id_of(headers: list[tuple[str, bytes]]) -> str:
    return dict(headers)["traceparent"].decode().split("-")[1]


def test_without_a_collector_spans_carry_the_trace_on_unrecorded() -> None:
    with span("publish"):
        started = trace_headers()
        assert not trace.get_current_span().is_recording()
    assert trace_id_of(started) != "0" * 32
    with continuing("project", [started]):
        assert trace_id_of(trace_headers()) == trace_id_of(started)


def test_a_batch_continues_the_first_records_trace() -> None:
    other = [("traceparent", b"00-11111111111111111111111111111111-00f067aa0ba902b7-01")]
    with continuing("transform", [REPORT_HEADERS, other, None], correlation_id="c-1"):
        assert trace_id_of(trace_headers()) == TRACE
        assert CORRELATION_ID.get() == "c-1"
    assert CORRELATION_ID.get() == "-"


def test_what_is_produced_from_a_record_carries_its_trace_headers_only() -> None:
    assert passed_on(REPORT_HEADERS) == [REPORT_HEADERS[1], REPORT_HEADERS[2]]
    assert passed_on(None) == []
    assert passed_on([("type", b"x")]) == []


def test_log_lines_inside_name_the_report() -> None:
    with correlated("c-2"):
        assert CORRELATION_ID.get() == "c-2"
        with correlated(None):  # no report of its own: still the one around it
            assert CORRELATION_ID.get() == "c-2"
    assert CORRELATION_ID.get() == "-"
