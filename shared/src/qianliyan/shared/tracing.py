"""Trace context from ingest to notify, carried in Kafka headers (OpenTelemetry, W3C).

Ingest starts a trace per report; triage and notify continue it from the record's
`traceparent` header, so one report can be followed through every service. The report's
correlation id travels beside it and goes into every log line written on its behalf.
Spans are exported where OTEL_EXPORTER_OTLP_ENDPOINT names a collector and the OTLP
exporter package is installed; otherwise they only stitch the services together.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from uuid import UUID

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON
from opentelemetry.trace import Link

log = logging.getLogger(__name__)

# A string, or a UUID turned into one only by a log line that shows it: triage sets it
# for every report and writes a line for almost none.
CORRELATION_ID: ContextVar[str | UUID] = ContextVar("correlation_id", default="-")

Headers = Sequence[tuple[str, bytes]]

_tracer = trace.get_tracer("qianliyan")
# The headers the propagator reads and writes (W3C traceparent and tracestate, by default).
_TRACE_FIELDS = frozenset(propagate.get_global_textmap().fields)
# Set where spans are recorded and exported; otherwise they only carry the trace on.
_recording = False


def configure_tracing(service: str) -> None:
    """Make spans real (so their context propagates), recording and exporting them only
    if a collector is set."""
    exporter = _otlp_exporter() if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") else None
    # Without a collector a span would be recorded for nobody: unsampled, it still carries
    # the trace on, with ids of its own, at about half the cost.
    provider = TracerProvider(
        resource=Resource.create({"service.name": f"qianliyan-{service}"}),
        sampler=ALWAYS_ON if exporter is not None else ALWAYS_OFF,
    )
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    global _recording  # one provider per process, set at its start
    _recording = exporter is not None
    trace.set_tracer_provider(provider)


def _otlp_exporter() -> SpanExporter | None:
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found]
            OTLPSpanExporter,
        )
    except ImportError:
        log.warning("OTEL_EXPORTER_OTLP_ENDPOINT is set but the OTLP exporter is missing")
        return None
    return OTLPSpanExporter()  # type: ignore[no-any-return]


def trace_headers() -> list[tuple[str, bytes]]:
    """The current trace context as Kafka headers (none outside a span)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return [(key, value.encode()) for key, value in carrier.items()]


def passed_on(headers: Headers | None) -> list[tuple[str, bytes]]:
    """The trace context a consumed record carries, for what is produced from it: the
    report's trace goes on unchanged through a batch done in one span (see `continuing`)."""
    return [(key, value) for key, value in headers or () if key in _TRACE_FIELDS]


def _context_of(headers: Headers | None) -> trace.SpanContext | None:
    carrier = {
        key: value.decode(errors="replace") for key, value in headers or () if key in _TRACE_FIELDS
    }
    span = trace.get_current_span(propagate.extract(carrier))
    context = span.get_span_context()
    return context if context.is_valid else None


@contextmanager
def correlated(correlation_id: str | UUID | None) -> Iterator[None]:
    """Log lines written inside are about the report of `correlation_id` (None: whichever
    report they were about already)."""
    if correlation_id is None:
        yield
        return
    token = CORRELATION_ID.set(correlation_id)
    try:
        yield
    finally:
        CORRELATION_ID.reset(token)


@contextmanager
def span(name: str, *, correlation_id: str | None = None) -> Iterator[None]:
    """A span of this service's own work (a request, say), tagged with the correlation id."""
    with correlated(correlation_id), _tracer.start_as_current_span(name):
        yield


@contextmanager
def continuing(
    name: str, headers: Sequence[Headers | None], *, correlation_id: str | None = None
) -> Iterator[None]:
    """A span of a batch of records: it continues the trace of the first record and, where
    spans are recorded, is linked to the others' (reading every record's costs as much as
    the rest of a short transform)."""
    first = _context_of(headers[0]) if headers else None
    parent = trace.set_span_in_context(trace.NonRecordingSpan(first)) if first else None
    others = (_context_of(h) for h in headers[1:]) if _recording else ()
    links = [Link(c) for c in others if c is not None]
    with (
        correlated(correlation_id),
        _tracer.start_as_current_span(name, context=parent, links=links),
    ):
        yield
