"""Small decisions of the native stack that must not be left to chance."""

from __future__ import annotations

import base64

from qianliyan.stack.config import StackConfig
from qianliyan.stack.kafka import new_cluster_id


def test_cluster_ids_never_look_like_an_option_to_the_storage_tool() -> None:
    # 1 in 64 random ids would start with '-'; a few thousand draws would surely meet one.
    ids = [new_cluster_id() for _ in range(3000)]
    assert not [cluster_id for cluster_id in ids if cluster_id.startswith("-")]
    assert all(len(base64.urlsafe_b64decode(i + "==")) == 16 for i in ids[:10])


def test_services_get_exactly_the_settings_they_read() -> None:
    config = StackConfig(kafka_port=1, postgres_port=2, notify_port=3)
    assert config.service_env("triage") == {
        "TRIAGE_HTTP_HOST": "127.0.0.1",
        "TRIAGE_HTTP_PORT": "8082",
        "TRIAGE_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1",
        # Triage checks tokens itself: the key, and the revocations in PostgreSQL.
        "TRIAGE_POSTGRES__DSN": config.postgres_dsn,
        "TRIAGE_ACCESS__TOKEN_KEY_FILE": str(config.token_key_file),
    }
    ingest = config.service_env("ingest")
    assert ingest["INGEST_NOTIFY_URL"] == "http://127.0.0.1:3"
    assert ingest["INGEST_POSTGRES__DSN"].endswith("@127.0.0.1:2/qianliyan")
