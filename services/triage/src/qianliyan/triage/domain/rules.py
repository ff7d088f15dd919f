"""The severity rule file: parsed, checked, and refused with the line of the mistake.

Ops edit the rules as YAML. A file that does not parse or does not make sense is
refused whole with a message naming its line, so the service keeps the last good set.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from qianliyan.shared.config_files import (
    ConfigFileError,
    MistakeAt,
    TimeZoneName,
    VersionText,
    did_you_mean,
    validate_yaml,
)
from qianliyan.shared.events import Severity
from qianliyan.shared.events.reports import PAGE_CATEGORIES, SEVERITY_SCALE
from qianliyan.triage.domain.folding import fold

HOURS = re.compile(r"^(\d{1,2})-(\d{1,2})$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PlaceKind(_Strict):
    """A kind of place (main line, yard, station hall) and the patterns that name it."""

    kind: str = Field(min_length=1)
    patterns: list[str] = Field(min_length=1)

    @field_validator("patterns")
    @classmethod
    def _patterns_compile(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pattern {pattern!r} is not a valid regex: {exc}") from None
        return patterns


class Rule(_Strict):
    """Conditions that must all hold, and the severity they give (or how far they raise)."""

    id: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9-]*$")
    summary: str = Field(min_length=1)
    keywords: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    # Phrases in which a keyword does not mean what it says: the opposite ("无人受伤", "no
    # smoke") or another thing ("floodlight"). A keyword found only inside them does not
    # count. Listed, not guessed: a guess at negation that was wrong ("无法避免碰撞" is a
    # collision) would miss a real emergency.
    unless: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    categories: list[str] = Field(default_factory=list)
    place_kinds: list[str] = Field(default_factory=list)
    has_photos: bool | None = None
    hours: str | None = Field(default=None, description='local hours, e.g. "22-6" for nights')
    severity: Severity | None = None
    raise_by: int | None = Field(default=None, ge=0, le=3)

    @field_validator("keywords", "unless")
    @classmethod
    def _phrases_say_something(cls, phrases: list[str]) -> list[str]:
        # Compared as folded (`fold`), a phrase of spaces alone would be found in every
        # report.
        for phrase in phrases:
            if not fold(phrase):
                raise ValueError(f"{phrase!r} is only spaces: it would be found in every report")
        return phrases

    @field_validator("unless")
    @classmethod
    def _phrases_hold_a_keyword(cls, phrases: list[str], info: ValidationInfo) -> list[str]:
        keywords = [fold(keyword) for keyword in info.data.get("keywords", ())]
        for phrase in map(fold, phrases):
            held = [keyword for keyword in keywords if keyword in phrase]
            if not held:
                raise ValueError(
                    f"{phrase!r} holds none of the rule's keywords: it excuses nothing"
                )
            if phrase in held:
                raise ValueError(
                    f"{phrase!r} is a keyword itself: it would turn the keyword off; say what "
                    "around it changes its meaning"
                )
        return phrases

    @field_validator("hours")
    @classmethod
    def _hours_are_a_window(cls, hours: str | None) -> str | None:
        if hours is not None:
            match = HOURS.match(hours)
            if not match or not all(0 <= int(h) <= 24 for h in match.groups()):
                raise ValueError('hours must look like "22-6" (from 22:00 to 06:00), each 0 to 24')
            if int(match.group(1)) % 24 == int(match.group(2)):
                raise ValueError(f'hours "{hours}" is an empty window; all day is "0-24"')
        return hours

    @model_validator(mode="after")
    def _one_effect_and_some_condition(self) -> Rule:
        if (self.severity is None) == (self.raise_by is None):
            raise ValueError("a rule needs exactly one of 'severity' or 'raise_by'")
        conditions = (self.keywords, self.categories, self.place_kinds)
        if not any(conditions) and self.has_photos is None and self.hours is None:
            raise ValueError("a rule needs at least one condition")
        return self


class RuleFile(_Strict):
    """The whole file: a version stamped on every decision, places, and rules in order."""

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)

    version: VersionText
    timezone: TimeZoneName = "Asia/Shanghai"
    places: list[PlaceKind] = Field(default_factory=list)
    rules: list[Rule] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> RuleFile:
        first_of: dict[str, int] = {}
        for i, rule in enumerate(self.rules):
            if rule.id in first_of:
                raise MistakeAt(
                    ("rules", i, "id"),
                    f"rule id {rule.id!r} is used twice (first by rules.{first_of[rule.id]})",
                )
            first_of[rule.id] = i
        known_kinds = {place.kind for place in self.places}
        for i, rule in enumerate(self.rules):
            unknown = set(rule.place_kinds) - known_kinds
            if unknown:
                raise MistakeAt(
                    ("rules", i, "place_kinds"),
                    f"rule {rule.id!r} names place kinds {sorted(unknown)} "
                    "that 'places' does not define",
                )
        return self


def categories_off_the_page(spec: RuleFile) -> dict[str, list[str]]:
    """Per rule, the categories it names that the reporter's page does not offer, each as
    written with the closest one the page does offer: a rule that names only such
    categories never matches a report sent from the page."""
    found: dict[str, list[str]] = {}
    for rule in spec.rules:
        for category in rule.categories:
            if category not in PAGE_CATEGORIES:
                hint = did_you_mean(category.casefold(), PAGE_CATEGORIES)
                found.setdefault(rule.id, []).append(f"'{category}'{hint}")
    return found


# How many distinct place names keep their kinds at hand (the rest are matched anew).
PLACES_REMEMBERED = 4096

# The rule file is refused the way every edited file is: whole, naming its line.
RuleFileError = ConfigFileError


@dataclass(frozen=True, slots=True)
class PreparedRule:
    """A rule with what it is compared against made ready once: its keywords case-folded,
    its hours as numbers."""

    rule: Rule
    keywords: tuple[tuple[str, re.Pattern[str]], ...]  # (as written, how it is found)
    # Finds any of the case-folded keywords in case-folded text in one pass of the regex
    # engine: most rules miss most reports, and this is how they miss cheaply.
    any_keyword: re.Pattern[str] | None
    # Finds the case-folded `unless` phrases, which are blanked out before keywords count.
    unless: re.Pattern[str] | None
    hours: tuple[int, int] | None  # from (0-23), to (1-24); "22-6" is (22, 6)


@dataclass(frozen=True, slots=True)
class LoadedRules:
    """A checked rule file, made ready once for the many reports it will judge: place
    patterns compiled, keywords folded, hours parsed."""

    spec: RuleFile
    # The rules with a severity, each with its place on the scale (info is 0), and the rules
    # that raise, each with its number of steps; both in the file's order.
    floors: tuple[tuple[int, PreparedRule], ...]
    raises: tuple[tuple[int, PreparedRule], ...]
    zone: ZoneInfo
    # The kinds of place (main line, yard, …) a named place is, by the file's patterns.
    kinds_of_place: Callable[[str], tuple[str, ...]]

    @property
    def version(self) -> str:
        """The version stamped on every decision made with these rules."""
        return self.spec.version


def parse_rules(text: str) -> LoadedRules:
    """Parse and check a rule file, or raise `RuleFileError` naming the line at fault."""
    spec = validate_yaml(text, RuleFile, shape="'version' and 'rules'")
    places = tuple(
        (place.kind, tuple(re.compile(pattern, re.IGNORECASE) for pattern in place.patterns))
        for place in spec.places
    )

    # Every report names a place, and a section's few hundred places come again and again.
    @functools.lru_cache(maxsize=PLACES_REMEMBERED)
    def kinds_of_place(place: str) -> tuple[str, ...]:
        return tuple(kind for kind, patterns in places if any(p.search(place) for p in patterns))

    return LoadedRules(
        spec=spec,
        floors=tuple(
            (SEVERITY_SCALE.index(rule.severity), _prepared(rule))
            for rule in spec.rules
            if rule.severity is not None
        ),
        raises=tuple(
            (rule.raise_by, _prepared(rule)) for rule in spec.rules if rule.raise_by is not None
        ),
        zone=ZoneInfo(spec.timezone),
        kinds_of_place=kinds_of_place,
    )


def _prepared(rule: Rule) -> PreparedRule:
    hours = None
    if rule.hours is not None:
        match = HOURS.match(rule.hours)
        assert match is not None  # checked when the file was validated
        # "0-24" is the whole day: only the start wraps ("24-6" is from midnight).
        hours = (int(match.group(1)) % 24, int(match.group(2)))
    # A keyword, like a phrase, begins a word: "killed" is not in "skilled".
    return PreparedRule(
        rule=rule,
        keywords=tuple(
            (keyword, re.compile(_at_word_start(fold(keyword)))) for keyword in rule.keywords
        ),
        any_keyword=_any_of((fold(keyword) for keyword in rule.keywords), whole_words=True),
        unless=_any_of((fold(phrase) for phrase in rule.unless), whole_words=True),
        hours=hours,
    )


def _any_of(folded: Iterable[str], *, whole_words: bool = False) -> re.Pattern[str] | None:
    # Longest first: where one phrase holds another, the longer is the one meant.
    ordered = sorted(set(folded), key=len, reverse=True)
    if not ordered:
        return None
    if whole_words:
        # A phrase that begins with a letter or digit begins a word ("no smoke" is not in
        # "casino smoke"); Chinese has no word breaks to look for.
        return re.compile("|".join(_at_word_start(phrase) for phrase in ordered))
    return re.compile("|".join(map(re.escape, ordered)))


def _at_word_start(phrase: str) -> str:
    escaped = re.escape(phrase)
    return rf"(?<![a-z0-9]){escaped}" if phrase[:1].isascii() and phrase[:1].isalnum() else escaped
