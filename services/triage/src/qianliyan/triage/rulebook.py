"""The rule file on disk: loaded at start, re-read when it changes, never replaced by a bad edit."""

from __future__ import annotations

import logging
from pathlib import Path

from qianliyan.triage.domain.rules import LoadedRules, RuleFileError, parse_rules

log = logging.getLogger(__name__)

DEFAULT_RULES = Path(__file__).parent / "rules" / "default.yaml"


class RuleBook:
    """Holds the last good rule set; `current()` picks up a changed file, if it is good."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.last_error: str | None = None
        # A bad file at start-up is fatal: there is no last good set to fall back on.
        self._rules = self._read()
        self._mtime_ns = path.stat().st_mtime_ns

    def current(self) -> LoadedRules:
        """The rules to apply now."""
        try:
            mtime_ns = self.path.stat().st_mtime_ns
        except OSError as exc:
            self._refuse(f"cannot read {self.path}: {exc}")
            return self._rules
        if mtime_ns != self._mtime_ns:
            self._mtime_ns = mtime_ns
            try:
                rules = self._read()
            except RuleFileError as exc:
                self._refuse(str(exc))
            else:
                log.info("rules %s loaded from %s", rules.version, self.path)
                self._rules, self.last_error = rules, None
        return self._rules

    def _read(self) -> LoadedRules:
        try:
            return parse_rules(self.path.read_text(encoding="utf-8"))
        except RuleFileError as exc:
            raise RuleFileError(exc.line, exc.message, source=str(self.path)) from None

    def _refuse(self, message: str) -> None:
        self.last_error = message
        log.error("rule file refused, still using %s: %s", self._rules.version, message)
