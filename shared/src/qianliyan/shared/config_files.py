"""Files that ops edit (rules, routing): checked whole, refused with the line at fault,
re-read when they change, and never replaced by a bad edit."""

from __future__ import annotations

import difflib
import logging
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, Generic, Protocol, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, ValidationError
from yaml.constructor import SafeConstructor

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

# Far past any real rule, routing or org file (a few hundred lines): one this large is a
# mistake (a log pasted in, the wrong file), and parsing it would hold up the service.
MAX_CONFIG_BYTES = 2 * 1024 * 1024
# libyaml's parser where it was built (it is, in the wheels on PyPI): ten times faster.
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _known_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None
    return name


# A time zone field of an edited file: a wrong name is refused with its line.
TimeZoneName = Annotated[str, AfterValidator(_known_timezone)]


def _written_as_text(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError(
            'write the version in quotes, as text (version: "1.10"): unquoted, YAML '
            "reads a number or a date, and 1.10 as 1.1"
        )
    return value


# A file's version, as written: unquoted, YAML reads 1.10 as the number 1.1 and 2026-12-07
# as a date. The version names what was decided or sent under the file (a re-triage's
# decision ids, an alert's routing), so one read otherwise than written misleads.
VersionText = Annotated[str, BeforeValidator(_written_as_text), Field(min_length=1, max_length=100)]


class ConfigFileError(ValueError):
    """A file that was refused, with the line (1-based) of its first mistake."""

    def __init__(self, line: int | None, message: str, *, source: str | None = None) -> None:
        where = ", ".join(
            part for part in (source, f"line {line}" if line is not None else None) if part
        )
        super().__init__(f"{where}: {message}" if where else message)
        self.line = line
        self.message = message


def read_config_text(path: Path) -> str:
    """The text of an edited file, or `ConfigFileError`: one that cannot be read, or that
    is not UTF-8 (an editor saving GBK, say), named with the line of its first bad byte."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigFileError(None, f"cannot read it: {exc.strerror or exc}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigFileError(
            None,
            f"the file is {len(data):,} bytes, more than the {MAX_CONFIG_BYTES:,} such a "
            "file can be: is it the right file?",
        )
    try:
        return data.decode("utf-8-sig")  # a byte order mark, as Windows editors write, is fine
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigFileError(line, "not UTF-8 text: save the file as UTF-8") from None


class MistakeAt(ValueError):
    """Raised by a model's own check to point at the part of the file at fault.

    A check across the whole file (an id used twice, a name nobody defined) would
    otherwise be reported at the top of the file.
    """

    def __init__(self, loc: tuple[int | str, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


def validate_yaml(text: str, model: type[M], *, shape: str) -> M:
    """Parse YAML and validate it as `model`, or raise `ConfigFileError` naming the line.

    `shape` says in words what the top level must be, for a file that is not a mapping.
    """
    try:
        root = yaml.compose(text, Loader=_Loader)
        _no_key_twice(root)
        document = SafeConstructor().construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        raise ConfigFileError(*_yaml_mistake(exc)) from None
    except yaml.reader.ReaderError as exc:
        # A character YAML does not allow (a control character, pasted from a chat).
        at = text.find(chr(exc.character)) if isinstance(exc.character, int) else -1
        line = text.count("\n", 0, at) + 1 if at >= 0 else None
        column = at - text.rfind("\n", 0, at) if at >= 0 else None
        raise ConfigFileError(
            line, f"a control character (U+{exc.character:04X}) at column {column}: remove it"
        ) from None
    if not isinstance(document, dict):
        raise ConfigFileError(1, f"the file must be a mapping with {shape}")
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        # A key the format does not have is most often a typo, and the cause of what else
        # is wrong (the key meant is missing): it is named first.
        errors = exc.errors()
        first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        cause = first.get("ctx", {}).get("error")
        loc = first["loc"] + cause.loc if isinstance(cause, MistakeAt) else first["loc"]
        location = ".".join(str(part) for part in loc) or "file"
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = _unknown_key(model, loc)
        raise ConfigFileError(_line_of(root, loc), f"{location}: {message}") from None


def _yaml_mistake(exc: yaml.MarkedYAMLError) -> tuple[int | None, str]:
    mark = exc.problem_mark
    line = mark.line + 1 if mark is not None else None
    problem = exc.problem or str(exc)
    if ("tab" in problem or "\t" in problem) and mark is not None:
        return line, f"a tab at column {mark.column + 1}: YAML indents with spaces only"
    return line, f"not valid YAML: {problem}"


def _no_key_twice(root: yaml.Node | None) -> None:
    """Refuse a mapping that names one key twice: YAML would keep the last silently, and
    a second `rules:` pasted at the end of a file would drop every rule above it. (And a
    node that holds itself, through an alias, which no file of ours needs.)"""
    checked: set[int] = set()  # a node aliased many times is looked at once

    def visit(node: yaml.Node, inside: frozenset[int]) -> None:
        if id(node) in inside:
            raise ConfigFileError(node.start_mark.line + 1, "an alias (*name) refers to itself")
        if id(node) in checked:
            return
        inside = inside | {id(node)}
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    line = key.start_mark.line + 1
                    if key.value in seen:
                        raise ConfigFileError(
                            line,
                            f"'{key.value}' appears twice in one place (first at line "
                            f"{seen[key.value]}): keep one",
                        )
                    seen[key.value] = line
                visit(value, inside)
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                visit(item, inside)
        checked.add(id(node))

    if root is not None:
        visit(root, frozenset())


def did_you_mean(word: str, known: Sequence[str]) -> str:
    """ " (did you mean 'x'?)" with the known word closest to `word`, or "" for none close:
    what a file's typo is told with."""
    close = difflib.get_close_matches(word, known, n=1) if known else []
    return f" (did you mean '{close[0]}'?)" if close else ""


def _unknown_key(model: type[BaseModel], loc: tuple[int | str, ...]) -> str:
    """What to say of a key the file's format does not have: most often a typo."""
    key = str(loc[-1])
    return f"unknown key '{key}'{did_you_mean(key, _fields_at(model, loc[:-1]))}"


def _fields_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The keys the model nested at `loc` takes; none when it cannot be told."""
    annotation: Any = model
    for part in loc:
        here = _model_in(annotation)
        fields = _keys_of(here) if here is not None else {}
        if isinstance(part, str) and part in fields:
            annotation = fields[part]
        else:
            annotation = _item_of(annotation)  # an item of a list, a value of a mapping
        if annotation is None:
            return []
    found = _model_in(annotation)
    return list(_keys_of(found)) if found is not None else []


def _keys_of(model: type[BaseModel]) -> dict[str, Any]:
    """The keys of a model as a file writes them, with what each holds."""
    return {field.alias or name: field.annotation for name, field in model.model_fields.items()}


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model an annotation holds (itself, or inside `X | None`, `Annotated[X, …]`)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, typing.Annotated):
        for arg in typing.get_args(annotation):
            if (found := _model_in(arg)) is not None:
                return found
    return None


def _item_of(annotation: Any) -> Any:
    """What a list or mapping annotation holds (through `X | None` and `Annotated`)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType, typing.Annotated):
        for arg in args:
            if (inner := _item_of(arg)) is not None:
                return inner
        return None
    if origin in (list, tuple, set, frozenset) and args:
        return args[0]
    if origin is dict and len(args) == 2:
        return args[1]
    return None


def _line_of(node: Any, loc: tuple[int | str, ...]) -> int | None:
    """The 1-based line of the YAML node at `loc`, or of the nearest parent that exists."""
    if node is None:
        return None
    line: int = node.start_mark.line + 1
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            child = next((value for key, value in node.value if key.value == part), None)
            if child is None:
                # A missing key: the mapping that lacks it is the place to look.
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            child = node.value[part] if part < len(node.value) else None
        if child is None:
            return line
        node = child
        line = node.start_mark.line + 1
    return line


class Versioned(Protocol):
    """A loaded file that names its version."""

    @property
    def version(self) -> str: ...


T = TypeVar("T", bound=Versioned)


class WatchedFile(Generic[T]):
    """Holds the last good parse of a file; `current()` picks up a changed file, if good."""

    def __init__(self, path: Path, parse: Callable[[str], T], *, what: str) -> None:
        self.path = path
        self.what = what
        self.last_error: str | None = None
        self._parse = parse
        # A bad file at start-up is fatal: there is no last good version to fall back on.
        self._loaded = self._read()
        self._mtime_ns = path.stat().st_mtime_ns
        # Named at start, so two services meant to read one file can be seen to.
        log.info("%s %s loaded from %s", what, self._loaded.version, path)

    def current(self) -> T:
        """The version to apply now."""
        try:
            mtime_ns = self.path.stat().st_mtime_ns
        except OSError as exc:
            self._refuse(f"cannot read {self.path}: {exc}")
            return self._loaded
        if mtime_ns != self._mtime_ns:
            self._mtime_ns = mtime_ns
            try:
                loaded = self._read()
            except ConfigFileError as exc:
                self._refuse(str(exc))
            except Exception as exc:  # whatever an edit does, the running service goes on
                log.exception("reading %s failed", self.path)
                self._refuse(f"{self.path}: {type(exc).__name__}: {exc}")
            else:
                log.info("%s %s loaded from %s", self.what, loaded.version, self.path)
                self._loaded, self.last_error = loaded, None
        return self._loaded

    def _read(self) -> T:
        try:
            return self._parse(read_config_text(self.path))
        except ConfigFileError as exc:
            raise ConfigFileError(exc.line, exc.message, source=str(self.path)) from None

    def _refuse(self, message: str) -> None:
        self.last_error = message
        log.error("%s file refused, still using %s: %s", self.what, self._loaded.version, message)
