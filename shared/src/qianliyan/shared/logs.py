"""One log format for every service: a line per record, with the service's name."""

from __future__ import annotations

import logging
import os


def configure_logging(service: str) -> None:
    """Log to stderr at the level named by `LOG_LEVEL` (default INFO)."""
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        format=f"%(asctime)s %(levelname)s {service} %(name)s: %(message)s",
    )
    # aiokafka narrates every rebalance and reconnect at INFO; keep warnings only.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
