"""What docker-compose.yml and the Kubernetes manifests are checked against: the services'
settings classes, and the compose file's environment for each service.

A variable like `INGEST_KAFKA__BOOTSTRAP_SERVERS` sets the field `kafka.bootstrap_servers`
of the class whose prefix it carries; `field_of` finds that field or says there is none.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from qianliyan.ingest.settings import IngestSettings
from qianliyan.notify.settings import NotifySettings
from qianliyan.triage.settings import TriageSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_SERVICES: dict[str, dict[str, Any]] = yaml.safe_load(
    (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
)["services"]

# The settings class each of the project's containers reads, and its variables' prefix: the
# one-shot `init` runs on notify's settings, `ingest-migrate` on ingest's.
SETTINGS: dict[str, type[BaseSettings]] = {
    "ingest": IngestSettings,
    "triage": TriageSettings,
    "notify": NotifySettings,
    "init": NotifySettings,
    "ingest-migrate": IngestSettings,
}
PREFIX: dict[str, str] = {
    "ingest": "INGEST_",
    "triage": "TRIAGE_",
    "notify": "NOTIFY_",
    "init": "NOTIFY_",
    "ingest-migrate": "INGEST_",
}


def environment(service: str) -> dict[str, str]:
    """The compose service's variables as strings, whichever form the file uses."""
    env = COMPOSE_SERVICES[service].get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def field_of(model: type[BaseModel], name: str) -> FieldInfo | None:
    """The field a variable sets (`kafka__bootstrap_servers`), walking nested models."""
    *parents, leaf = name.split("__")
    for part in parents:
        field = model.model_fields.get(part)
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model.model_fields.get(leaf)
