"""The rule file on disk: loaded at start, re-read when it changes, never replaced by a bad edit."""

from __future__ import annotations

from pathlib import Path

from qianliyan.shared.config_files import WatchedFile
from qianliyan.triage.domain.rules import LoadedRules, parse_rules

DEFAULT_RULES = Path(__file__).parent / "rules" / "default.yaml"


class RuleBook(WatchedFile[LoadedRules]):
    """Holds the last good rule set; `current()` picks up a changed file, if it is good."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, parse_rules, what="rules")
