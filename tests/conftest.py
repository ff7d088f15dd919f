"""Fixtures for the real stack: Kafka, MinIO and PostgreSQL run natively, then the services.

It uses ports and a data folder of its own, so a developer's running stack (default
ports, `.stack/`) is never touched. Everything is stopped when the session ends.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qianliyan.notify.app import DEFAULT_ROUTING
from qianliyan.stack.config import StackConfig
from qianliyan.stack.infra import Infra, Services
from qianliyan.stack.init import init_stack
from tests.integration.clients import suite_rules_text

# Offsets from the defaults that keep the suite clear of a dev stack on the same machine.
TEST_PORTS = {
    "kafka_port": 29092,
    "kafka_controller_port": 29093,
    "minio_port": 29000,
    "minio_console_port": 29001,
    "postgres_port": 25432,
    "ingest_port": 28081,
    "triage_port": 28082,
    "notify_port": 28083,
}


# The suite sends everything from one address, far faster than people do; the rate-limit
# test starts an instance of its own with the real limits. The alert receivers of the
# alerting tests listen on loopback, an internal address notify refuses unless allowed.
SUITE_SERVICE_SETTINGS = {
    "INGEST_ACCESS__SUBMIT_LIMIT": "100000/minute",
    "INGEST_ACCESS__SUBMIT_ADDRESS_LIMIT": "100000/minute",
    "INGEST_ACCESS__SIGN_IN_LIMIT": "100000/minute",
    "NOTIFY_ACCESS__SIGN_IN_LIMIT": "100000/minute",
    "NOTIFY_OUTBOUND_ALLOW": "127.0.0.1",
}


@pytest.fixture(scope="session")
def stack_config(tmp_path_factory: pytest.TempPathFactory) -> StackConfig:
    """The suite's stack; QLY_TEST_DATA_DIR keeps its data, QLY_TEST_PORT_OFFSET moves its ports."""
    data_dir = os.environ.get("QLY_TEST_DATA_DIR") or tmp_path_factory.mktemp("stack")
    # Two suites on one machine (two checkouts, say) each set their own offset.
    offset = int(os.environ.get("QLY_TEST_PORT_OFFSET", "0"))
    ports = {name: port + offset for name, port in TEST_PORTS.items()}
    # Triage reads an editable copy of the rules, so tests can change them while it runs.
    rules = Path(data_dir) / "triage-rules.yaml"
    rules.write_text(suite_rules_text(), encoding="utf-8")
    # Notify reads an editable copy of the routing, for the same reason.
    routing = Path(data_dir) / "notify-routing.yaml"
    shutil.copyfile(DEFAULT_ROUTING, routing)
    settings: dict[str, Any] = {
        "data_dir": data_dir,
        "service_settings": SUITE_SERVICE_SETTINGS,
        "triage_rules_file": rules,
        "notify_routing_file": routing,
        **ports,
    }
    return StackConfig(**settings)


@pytest.fixture(scope="session")
def infra(stack_config: StackConfig) -> Iterator[StackConfig]:
    """Kafka, MinIO and PostgreSQL running, with topics, bucket and schema created."""
    parts = Infra(stack_config)
    parts.provision()
    try:
        parts.start()
        init_stack(stack_config)
        yield stack_config
    finally:
        parts.stop()


@pytest.fixture(scope="session")
def running_stack(infra: StackConfig) -> Iterator[StackConfig]:
    """The whole system: infrastructure plus ingest, triage and notify as processes."""
    services = Services(infra)
    try:
        services.start()
        yield infra
    finally:
        services.stop()
