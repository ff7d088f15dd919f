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

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Link

log = logging.getLogger(__name__)

CORRELATION_ID: ContextVar[str] = ContextVar("correlation_id", default="-")

Headers = Sequence[tuple[str, bytes]]

_tracer = trace.get_tracer("qianliyan")


def configure_tracing(service: str) -> None:
    """Make spans real (so their context propagates), exporting them if a collector is set."""
    provider = TracerProvider(resource=Resource.create({"service.name": f"qianliyan-{service}"}))
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found]
                OTLPSpanExporter,
            )
        except ImportError:
            log.warning("OTEL_EXPORTER_OTLP_ENDPOINT is set but the OTLP exporter is missing")
        else:
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)


def trace_headers() -> list[tuple[str, bytes]]:
    """The current trace context as Kafka headers (none outside a span)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return [(key, value.encode()) for key, value in carrier.items()]


def _context_of(headers: Headers | None) -> trace.SpanContext | None:
    carrier = {key: value.decode(errors="replace") for key, value in headers or ()}
    span = trace.get_current_span(propagate.extract(carrier))
    context = span.get_span_context()
    return context if context.is_valid else None


@contextmanager
def span(name: str, *, correlation_id: str | None = None) -> Iterator[None]:
    """A span of this service's own work (a request, say), tagged with the correlation id."""
    token = CORRELATION_ID.set(correlation_id) if correlation_id else None
    try:
        with _tracer.start_as_current_span(name):
            yield
    finally:
        if token is not None:
            CORRELATION_ID.reset(token)


@contextmanager
def continuing(
    name: str, headers: Sequence[Headers | None], *, correlation_id: str | None = None
) -> Iterator[None]:
    """A span that continues the trace of the first record, linked to the others' traces."""
    contexts = [c for c in (_context_of(h) for h in headers) if c is not None]
    parent = trace.set_span_in_context(trace.NonRecordingSpan(contexts[0])) if contexts else None
    token = CORRELATION_ID.set(correlation_id) if correlation_id else None
    try:
        with _tracer.start_as_current_span(
            name, context=parent, links=[Link(c) for c in contexts[1:]]
        ):
            yield
    finally:
        if token is not None:
            CORRELATION_ID.reset(token)
