"""`qianliyan-ingest`: run the reporters' HTTP API."""

from __future__ import annotations

from functools import partial

from qianliyan.ingest.app import create_app
from qianliyan.ingest.memory import keep_large_buffers_unmapped
from qianliyan.ingest.settings import IngestSettings
from qianliyan.shared.collector import settle_long_lived_objects
from qianliyan.shared.http import serve


def main() -> None:
    """Serve ingest with settings from the environment."""
    settings = IngestSettings()
    keep_large_buffers_unmapped()  # decoded photos are large: peak memory, not the heap's
    settle_long_lived_objects()
    serve(
        partial(create_app, settings),
        service="ingest",
        host=settings.http_host,
        port=settings.http_port,
    )


if __name__ == "__main__":
    main()
