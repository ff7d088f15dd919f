"""The `report` part of `POST /v1/reports` as the ingest OpenAPI document describes it:
a string of JSON whose fields a client can read, with no reference left dangling."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qianliyan.ingest.app import create_app
from qianliyan.ingest.domain.reports import ReportForm
from qianliyan.ingest.settings import IngestSettings
from qianliyan.shared.access.tokens import generate_signing_key
from qianliyan.shared.events.reports import PAGE_CATEGORIES
from qianliyan.shared.settings import AccessSettings


def ingest_openapi(tmp_path: Path) -> dict[str, Any]:
    key = tmp_path / "signing.pem"
    key.write_bytes(generate_signing_key())
    document: dict[str, Any] = create_app(
        IngestSettings(access=AccessSettings(token_key_file=key))
    ).openapi()
    return document


def test_the_report_part_is_described_field_by_field(tmp_path: Path) -> None:
    document = ingest_openapi(tmp_path)
    body = document["paths"]["/v1/reports"]["post"]["requestBody"]["content"]
    name = body["multipart/form-data"]["schema"]["$ref"].removeprefix("#/components/schemas/")
    part = document["components"]["schemas"][name]["properties"]["report"]
    assert part["type"] == "string"
    assert part["contentMediaType"] == "application/json"
    schema = part["contentSchema"]
    assert set(schema["properties"]) == set(ReportForm.model_fields)
    assert schema["required"] == ["text"]
    assert schema["additionalProperties"] is False
    # The position is written in, not referred to.
    [position] = [s for s in schema["properties"]["location"]["anyOf"] if s.get("type") == "object"]
    assert {"lat", "lon"} <= set(position["properties"])
    for category in PAGE_CATEGORIES:
        assert category in schema["properties"]["category"]["description"]
    # Inside the document, "#/$defs/..." would point at its root, where there is none.
    assert "#/$defs/" not in json.dumps(document)
