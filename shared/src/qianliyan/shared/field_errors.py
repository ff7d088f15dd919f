"""One offending field of a request, said for a person and for a program.

An entry names the field, says why in English (`message`) and as a code (pydantic's
error type, or ours), and gives the values the message names (`context`), so that a
page can say it in its reader's language.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic_core import ErrorDetails

from qianliyan.shared.text import error_code, error_message

Context = Mapping[str, str | int | float]


def field_problem(
    field: str, code: str, message: str, context: Context | None = None
) -> dict[str, Any]:
    """One entry of a problem's `errors`: where, why (for a program and for a person), and
    the values the message names."""
    entry: dict[str, Any] = {"field": field, "code": code, "message": message}
    if context:
        entry["context"] = dict(context)
    return entry


def invalid_fields(
    errors: Iterable[ErrorDetails], *, within: str | None = None
) -> list[dict[str, Any]]:
    """pydantic's validation errors as entries of a problem's `errors` (the field's path,
    under `within` when given); of each error's context, the plain values (limits)."""
    entries = []
    for error in errors:
        path = [str(part) for part in error["loc"]]
        context = {
            name: value
            for name, value in (error.get("ctx") or {}).items()
            if isinstance(value, str | int | float) and name != "pattern"
        }
        field = ".".join([within, *path] if within else path)
        entries.append(field_problem(field, error_code(error), error_message(error), context))
    return entries
