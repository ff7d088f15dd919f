"""Files that ops edit (rules, routing): checked whole, refused with the line at fault,
re-read when they change, and never replaced by a bad edit."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Generic, Protocol, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import AfterValidator, BaseModel, ValidationError

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)


def _known_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None
    return name


# A time zone field of an edited file: a wrong name is refused with its line.
TimeZoneName = Annotated[str, AfterValidator(_known_timezone)]


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
        root = yaml.compose(text)
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigFileError(line, f"not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(document, dict):
        raise ConfigFileError(1, f"the file must be a mapping with {shape}")
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        cause = first.get("ctx", {}).get("error")
        loc = first["loc"] + cause.loc if isinstance(cause, MistakeAt) else first["loc"]
        location = ".".join(str(part) for part in loc) or "file"
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigFileError(_line_of(root, loc), f"{location}: {message}") from None


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
