"""Text people send, made fit to keep: the read models are PostgreSQL, which stores no NUL
character, and a dispatch screen has no use for the other control characters either.

Three kinds of text, one rule each, the same in every service:

- free text a person wrote (a report, a note, a reason) keeps its line breaks and tabs and
  loses any other control character: they come with pasted text, and nobody meant them;
- a short label typed in a form (a place, a unit, a category) is one line: control
  characters and runs of spaces become one space, since it heads a list row or a
  message's title, where a line break does not belong;
- a name or an identifier (a reporter, an assignee, a client's report id) is refused with
  a 422 when it holds one: changing an identifier would make it name something else.

And a time is written as a date and time (ISO 8601), as the schemas say: pydantic would
also read a number as seconds since 1970, so that `until=0` meant 1970 rather than a
mistake. A count is written in digits, not as `1.0`.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AwareDatetime, BeforeValidator
from pydantic_core import ErrorDetails

# Unicode's control characters (category Cc) but line feed and tab; a carriage return
# goes too, so a Windows line break is kept as a plain one.
_STRAY_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

# Every control character, line breaks and tabs too.
_ANY_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

# A name, an identifier or a query value: no control character at all.
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
NOT_PRINTABLE = "must not contain control characters (such as NUL or a line break)"


def without_stray_controls(value: object) -> object:
    """`value` without control characters other than line breaks and tabs, and without
    the spaces around it; anything that is not a string is left to the field's type."""
    if isinstance(value, str):
        return _STRAY_CONTROL.sub("", value).strip()
    return value


def one_line(text: str) -> str:
    """`text` on one line: control characters and runs of spaces become one space."""
    return " ".join(_ANY_CONTROL.sub(" ", text).split())


def _on_one_line(value: object) -> object:
    return one_line(value) if isinstance(value, str) else value


# Marks free text a person wrote: `Annotated[str, Field(max_length=...), FREE_TEXT]`. After
# the field's limits, so that they apply to the cleaned text and say so in their own words;
# a text of nothing but control characters and spaces is empty.
FREE_TEXT = BeforeValidator(without_stray_controls)
# Marks a short label, as FREE_TEXT is placed: `Annotated[str, Field(...), ONE_LINE]`.
ONE_LINE = BeforeValidator(_on_one_line)


def _not_a_number(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return value
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return value
    raise ValueError("must be a date and time such as 2026-12-06T08:30:00+08:00, not a number")


# A moment with its offset, written as ISO 8601 and never as a number of seconds.
IsoTime = Annotated[AwareDatetime, BeforeValidator(_not_a_number)]


_WHOLE_NUMBER = re.compile(r"-?[0-9]+")


def _written_as_a_whole_number(value: object) -> object:
    if isinstance(value, str) and not _WHOLE_NUMBER.fullmatch(value):
        raise ValueError("must be a whole number such as 50")
    return value


# A count asked for in a query (`limit`), written in digits: pydantic would also read
# "1.0" as 1, which the schema, saying integer, does not allow.
WholeNumber = Annotated[int, BeforeValidator(_written_as_a_whole_number)]


def error_message(error: ErrorDetails) -> str:
    """What a validation error says to a person: pydantic's words, but a control
    character is named as such rather than by the pattern that found it."""
    return NOT_PRINTABLE if error_code(error) == "not_printable" else error["msg"]


def error_code(error: ErrorDetails) -> str:
    """What a validation error is, for a program: pydantic's type (`string_too_long`,
    `missing`, ...), or `not_printable` for a control character in a name."""
    context = error.get("ctx") or {}
    if error["type"] == "string_pattern_mismatch" and context.get("pattern") == PRINTABLE:
        return "not_printable"
    return error["type"]
