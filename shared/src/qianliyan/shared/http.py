"""The one HTTP error shape and health endpoints used by all three services.

Errors follow RFC 9457 problem details: a title, the status, a human `detail` that
says what to do, and for input errors one entry per offending field. Each problem and
each entry also has a `code`, and an entry the values its message names (`context`), so
a page can say it in its reader's language; the English texts are the fallback.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qianliyan.shared.field_errors import field_problem, invalid_fields
from qianliyan.shared.logs import configure_logging
from qianliyan.shared.tracing import configure_tracing

PROBLEM_JSON = "application/problem+json"

ReadinessCheck = Callable[[], Awaitable[bool]]


class Problem(Exception):
    """An error a client caused or must wait out, rendered as problem details."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.code = problem_code(title)
        self.detail = detail
        self.errors = errors or []
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """The JSON document sent to the client."""
        body: dict[str, Any] = {
            "type": "about:blank",
            "title": self.title,
            "code": self.code,
            "status": self.status,
            "detail": self.detail,
        }
        if self.errors:
            body["errors"] = self.errors
        return body


def problem_code(title: str) -> str:
    """A problem's code: its title in snake case ("Photos refused": photos_refused)."""
    return re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_")


class FieldProblem(BaseModel):
    """One offending field of an invalid request."""

    field: str = Field(description="Where it is: the part and the field, e.g. body.text")
    code: str = Field(
        description="Why, for a program: pydantic's error type for a value of the wrong "
        "form (missing, string_too_long, ...), or ours (photo_too_large, ...)"
    )
    message: str = Field(description="Why, for a person, in English")
    context: dict[str, str | int | float] = Field(
        default_factory=dict,
        description="The values the message names (a limit, a size), to say it in another language",
    )


class ProblemDetails(BaseModel):
    """The body of every error answer (RFC 9457), as `Problem.body` writes it."""

    type: str = "about:blank"
    title: str
    code: str = Field(
        description="What went wrong, for a program: the title in snake case "
        "(photos_refused, invalid_report, ...)"
    )
    status: int
    detail: str = Field(description="What went wrong and what to do, for a person")
    errors: list[FieldProblem] = Field(
        default_factory=list, description="For an invalid request: one entry per field"
    )


def problem_response(problem: Problem) -> JSONResponse:
    """The HTTP response for `problem`."""
    return JSONResponse(
        problem.body(), status_code=problem.status, headers=problem.headers, media_type=PROBLEM_JSON
    )


def storable_time(moment: datetime | None) -> datetime | None:
    """`moment` in UTC; ValueError when that falls outside the calendar (years 1 to 9999)."""
    if moment is None:
        return None
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{moment.isoformat()} is out of range in UTC") from None


def time_filter(moment: datetime | None, name: str) -> datetime | None:
    """A query's time parameter `name` in UTC, or a 422 naming it when it cannot be stored."""
    try:
        return storable_time(moment)
    except ValueError as exc:
        raise Problem(
            422,
            "Invalid request",
            "Some fields are missing or invalid.",
            errors=[field_problem(f"query.{name}", "time_out_of_range", str(exc))],
        ) from None


def unavailable(detail: str, *, retry_after_s: int = 5) -> Problem:
    """A 503 that tells the client when to try again (an outage, never the client's fault)."""
    return Problem(503, "Service Unavailable", detail, headers={"Retry-After": str(retry_after_s)})


class RequestSizeLimit:
    """Refuses a request body over `max_bytes` with a 413 in our error shape.

    A body that declares its length is refused before any of it is read; one sent in
    chunks is counted as it arrives and refused once past the limit. (FastAPI's own
    `max_body_size` answers in plain text, ahead of the app's error handlers.)
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _refusal(self, size: str) -> str:
        return f"This service takes request bodies of at most {self.max_bytes} bytes; {size}."

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            refusal = Problem(
                413, "Request too large", self._refusal(f"this one says it has {int(declared)}")
            )
            await problem_response(refusal)(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                # An HTTPException passes through the framework's body parsing untouched and
                # reaches the app's handler, which answers it as problem details.
                raise HTTPException(413, self._refusal("this one went past that"))
            return message

        await self.app(scope, counted, send)


# The framework's refusals that ours also make, under our titles (and so our codes): a body
# past the limit is `request_too_large` whether it said its length or not, and whatever
# Python calls status 413 (its phrase changed in 3.13).
_TITLES = {413: "Request too large"}


def install_problem_handlers(app: FastAPI) -> None:
    """Render `Problem` and request-validation failures as problem details."""

    async def on_problem(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return problem_response(exc)

    async def on_invalid_request(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = invalid_fields(exc.errors())
        return problem_response(
            Problem(422, "Invalid request", "Some fields are missing or invalid.", errors=errors)
        )

    async def on_http_error(_: Request, exc: Exception) -> JSONResponse:
        # The framework's own refusals (no such route, a body over the size limit, a
        # multipart body that does not parse) in the same shape as ours.
        assert isinstance(exc, HTTPException)
        title = _TITLES.get(exc.status_code) or HTTPStatus(exc.status_code).phrase
        detail = exc.detail if isinstance(exc.detail, str) else title
        return problem_response(Problem(exc.status_code, title, detail, headers=exc.headers))

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_invalid_request)
    app.add_exception_handler(HTTPException, on_http_error)
    _document_problems(app)


# FastAPI documents a 422 of its own shape; ours are problem details, and so is the rest.
_FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


def _document_problems(app: FastAPI) -> None:
    """Say in the OpenAPI document what every operation may answer besides success: an
    invalid request (422), any other refusal (4XX) and a part being away (503), each as
    problem details; what an operation documents itself is left as it is."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = generate()
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        _, definitions = models_json_schema(
            [(ProblemDetails, "serialization")], ref_template="#/components/schemas/{model}"
        )
        schemas.update(definitions["$defs"])
        for name in _FASTAPI_VALIDATION_SCHEMAS:
            schemas.pop(name, None)
        problem = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}}
        for operations in document.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                if "422" in responses:
                    responses["422"] = {
                        "description": "Invalid request: one entry per offending field",
                        "content": problem,
                    }
                responses.setdefault(
                    "4XX", {"description": "Refused: the detail says why", "content": problem}
                )
                responses.setdefault(
                    "503",
                    {
                        "description": "A part it needs is away: try again after Retry-After",
                        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                        "content": problem,
                    },
                )
        return document

    app.openapi = openapi  # type: ignore[method-assign]


class HealthReport(BaseModel):
    """A health answer: overall, then each check by name."""

    status: str
    checks: dict[str, bool]


def health_router(
    readiness: Callable[[], Mapping[str, ReadinessCheck]],
    liveness: Callable[[], Mapping[str, ReadinessCheck]] | None = None,
) -> APIRouter:
    """`/health/live` (the process and its loops run) and `/health/ready` (dependencies answer).

    The callables are invoked per request so they can read what the lifespan built.
    """
    router = APIRouter(tags=["health"])

    async def report(checks: Mapping[str, ReadinessCheck], ok: str, failed: str) -> JSONResponse:
        results = {name: await check() for name, check in checks.items()}
        status = 200 if all(results.values()) else 503
        return JSONResponse(
            {"status": ok if status == 200 else failed, "checks": results}, status_code=status
        )

    failing: dict[int | str, dict[str, Any]] = {
        503: {"model": HealthReport, "description": "A check failed: `checks` says which"}
    }

    @router.get("/health/live", response_model=HealthReport, responses=failing)
    async def live() -> JSONResponse:
        return await report(liveness() if liveness else {}, "live", "not live")

    @router.get("/health/ready", response_model=HealthReport, responses=failing)
    async def ready() -> JSONResponse:
        return await report(readiness(), "ready", "not ready")

    return router


def serve(create: Callable[[], FastAPI], *, service: str, host: str, port: int) -> None:
    """Build the app with `create` and run it until SIGINT/SIGTERM, with uvicorn's graceful
    shutdown. Logging is set up first: what building the app says (the config files it
    loaded, or why one was refused) is in the service's log."""
    configure_logging(service)
    configure_tracing(service)
    uvicorn.run(create(), host=host, port=port, log_level="info", proxy_headers=False)
