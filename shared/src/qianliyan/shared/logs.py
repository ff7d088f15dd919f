"""One log format for every service: a line per record, with the service's name and the
correlation id (and trace id) of the report the line concerns.

LOG_FORMAT=json writes one JSON object per line, for a log collector; the default is text.
"""

from __future__ import annotations

import logging
import os

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

from qianliyan.shared.tracing import CORRELATION_ID


class _Context(logging.Filter):
    """Adds the correlation id and trace id in force where the record was written."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.correlation_id = str(CORRELATION_ID.get())
        context = trace.get_current_span().get_span_context()
        record.trace_id = format(context.trace_id, "032x") if context.is_valid else "-"
        return True


def configure_logging(service: str) -> None:
    """Log to stderr at the level named by `LOG_LEVEL` (default INFO)."""
    handler = logging.StreamHandler()
    handler.addFilter(_Context())
    if os.environ.get("LOG_FORMAT", "text").lower() == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(correlation_id)s %(trace_id)s",
                static_fields={"service": service},
                # Chinese as written, not as \u escapes: people read these lines.
                json_ensure_ascii=False,
            )
        )
    else:
        handler.setFormatter(
            logging.Formatter(
                f"%(asctime)s %(levelname)s {service} %(name)s "
                "[corr=%(correlation_id)s]: %(message)s"
            )
        )
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO").upper(), handlers=[handler])
    # aiokafka narrates every rebalance and reconnect at INFO; keep warnings only.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
