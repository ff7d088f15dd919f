"""Log lines carry the correlation id of the report they concern, as text or as JSON."""

from __future__ import annotations

import io
import json
import logging
from uuid import UUID

import pytest

from qianliyan.shared.logs import configure_logging
from qianliyan.shared.tracing import CORRELATION_ID

# Triage sets the id as the UUID it is: a line shows it as the same text.
REPORT = UUID("01a2b3c4-d5e6-7f80-9a0b-1c2d3e4f5a6b")


@pytest.mark.parametrize("log_format", ["text", "json"])
@pytest.mark.parametrize("correlation_id", ["01a2-report", REPORT])
def test_a_log_line_names_the_report_it_concerns(
    log_format: str, correlation_id: str | UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOG_FORMAT", log_format)
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers.clear()
    try:
        configure_logging("notify")
        stream = io.StringIO()
        handler = root.handlers[0]
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(stream)
        token = CORRELATION_ID.set(correlation_id)
        try:
            logging.getLogger("qianliyan.test").warning("delivery failed: 丰台站")
        finally:
            CORRELATION_ID.reset(token)
        logging.getLogger("qianliyan.test").warning("no report here")
    finally:
        root.handlers[:] = saved
    first, second = stream.getvalue().splitlines()
    if log_format == "json":
        line = json.loads(first)
        assert line["correlation_id"] == str(correlation_id) and line["service"] == "notify"
        assert line["message"] == "delivery failed: 丰台站" and line["levelname"] == "WARNING"
        assert "丰台站" in first, "Chinese is written as it is, not as \\u escapes"
        assert json.loads(second)["correlation_id"] == "-"
    else:
        assert f"notify qianliyan.test [corr={correlation_id}]: delivery failed: 丰台站" in first
        assert "[corr=-]" in second
