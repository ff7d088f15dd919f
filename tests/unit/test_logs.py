"""Log lines carry the correlation id of the report they concern, as text or as JSON."""

from __future__ import annotations

import io
import json
import logging

import pytest

from qianliyan.shared.logs import configure_logging
from qianliyan.shared.tracing import CORRELATION_ID


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_log_line_names_the_report_it_concerns(
    log_format: str, monkeypatch: pytest.MonkeyPatch
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
        token = CORRELATION_ID.set("01a2-report")
        try:
            logging.getLogger("qianliyan.test").warning("delivery failed")
        finally:
            CORRELATION_ID.reset(token)
        logging.getLogger("qianliyan.test").warning("no report here")
    finally:
        root.handlers[:] = saved
    first, second = stream.getvalue().splitlines()
    if log_format == "json":
        line = json.loads(first)
        assert line["correlation_id"] == "01a2-report" and line["service"] == "notify"
        assert line["message"] == "delivery failed" and line["levelname"] == "WARNING"
        assert json.loads(second)["correlation_id"] == "-"
    else:
        assert "notify qianliyan.test [corr=01a2-report]: delivery failed" in first
        assert "[corr=-]" in second
