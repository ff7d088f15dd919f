"""Every operation's OpenAPI entry says what its errors look like: problem details."""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from pydantic import BaseModel
from pydantic_core.core_schema import ErrorType

from qianliyan.shared.http import PROBLEM_JSON, Problem, install_problem_handlers, problem_code

ROOT = Path(__file__).resolve().parents[2]
PAGES = [
    ROOT / "services/ingest/src/qianliyan/ingest/web/static/js/i18n.js",
    ROOT / "services/notify/src/qianliyan/notify/web/static/js/i18n.js",
]

PROBLEM = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}}


class Thing(BaseModel):
    size: int


class Gone(BaseModel):
    since: str


def app_with_problems() -> FastAPI:
    app = FastAPI()

    @app.post("/v1/things", status_code=202)
    async def add_thing(thing: Thing) -> dict[str, int]:
        if thing.size > 3:
            raise Problem(409, "Too big", "A thing may be at most 3 in size.")
        return {"size": thing.size}

    @app.get("/v1/things/{name}", responses={410: {"model": Gone}})
    async def read_thing(name: str) -> dict[str, str]:
        return {"name": name}

    install_problem_handlers(app)
    return app


def responses(app: FastAPI, path: str, method: str) -> dict[str, Any]:
    found: dict[str, Any] = app.openapi()["paths"][path][method]["responses"]
    return found


def test_invalid_requests_other_refusals_and_outages_are_documented_as_problems() -> None:
    app = app_with_problems()
    added = responses(app, "/v1/things", "post")
    assert set(added) == {"202", "422", "4XX", "503"}
    for status in ("422", "4XX", "503"):
        assert added[status]["content"] == PROBLEM, status
    assert "Retry-After" in added["503"]["headers"]
    schemas = app.openapi()["components"]["schemas"]
    assert {"ProblemDetails", "FieldProblem"} <= set(schemas)
    # FastAPI's own 422 shape is not what these services send, so it is not documented.
    assert "HTTPValidationError" not in schemas


def test_what_an_operation_documents_itself_stays() -> None:
    read = responses(app_with_problems(), "/v1/things/{name}", "get")
    assert read["410"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Gone"
    }
    assert read["4XX"]["content"] == PROBLEM


async def test_the_documented_shape_is_the_one_sent() -> None:
    app = app_with_problems()
    schema = app.openapi()["components"]["schemas"]["ProblemDetails"]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        invalid = await client.post("/v1/things", json={"size": "big"})
        refused = await client.post("/v1/things", json={"size": 4})
    for answer in (invalid, refused):
        assert answer.headers["content-type"] == PROBLEM_JSON
        assert set(answer.json()) <= set(schema["properties"])
        assert set(schema["required"]) <= set(answer.json())
    assert invalid.status_code == 422
    # For a program as well as for a person: a page says it in its reader's language.
    assert invalid.json()["code"] == "invalid_request"
    [error] = invalid.json()["errors"]
    assert (error["field"], error["code"]) == ("body.size", "int_parsing")
    assert refused.status_code == 409
    assert refused.json()["code"] == "too_big"


def test_the_codes_the_pages_say_in_chinese_are_codes_the_services_send() -> None:
    # A code is a problem's title in snake case: a reworded title, or a renamed code of
    # ours, would silently send a worker back to the English words.
    sources = "\n".join(
        path.read_text(encoding="utf-8")
        for folder in ("services", "shared")
        for path in (ROOT / folder).rglob("*.py")
        if "/src/" in str(path)
    )
    titles = re.findall(r'Problem\(\s*\d+,\s*"([^"]+)"', sources)
    sent_problems = {problem_code(title) for title in titles}
    ours = re.findall(
        r'(?:PhotoRejected\(\s*\w+,|field_problem\(\s*[^,]+,|PydanticCustomError\()\s*"(\w+)"',
        sources,
    )
    sent_fields = {*typing.get_args(ErrorType), "not_printable", *ours}
    assert {"photo_too_large", "too_many_photos", "clock_before_1970"} <= sent_fields
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        translated = set(re.findall(r'"problem\.(\w+)"', text))
        assert translated and translated <= sent_problems, (page.name, translated - sent_problems)
        unknown = set(re.findall(r'"err\.(\w+)"', text)) - sent_fields
        assert not unknown, (page.name, unknown)
