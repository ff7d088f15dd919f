"""The section's organisation: units and the stations below them, from a file ops edit.

A manager of a unit sees the alerts of the unit and of everything below it. A report
names its unit (a station, or a unit such as a track maintenance section) by the name
written here. An integration limited to a unit sends reports of it and of what lies
below it only. So notify (what managers see) and ingest (what integrations send) read
the same file: `default_org.yaml` beside this module, or the copy their `ORG_FILE`
settings name.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from qianliyan.shared.config_files import MistakeAt, VersionText, validate_yaml
from qianliyan.shared.events.reports import UNIT_MAX_LENGTH
from qianliyan.shared.text import one_line

DEFAULT_ORG = Path(__file__).parent / "default_org.yaml"


def _as_reports_name_it(unit: str) -> str:
    # A report's unit is one line without spaces at its ends: a unit written otherwise
    # here would match no report, and its manager would see nothing.
    if unit != one_line(unit):
        raise ValueError(
            f"{unit!r} has spaces at an end or twice in a row, or a control character: "
            f"reports write it {one_line(unit)!r}, and would not match it"
        )
    return unit


UnitId = Annotated[
    str, Field(min_length=1, max_length=UNIT_MAX_LENGTH), AfterValidator(_as_reports_name_it)
]


class UnitEntry(BaseModel):
    """One unit or station, and the unit it belongs to."""

    model_config = ConfigDict(extra="forbid")

    id: UnitId
    name: str | None = Field(default=None, max_length=200)
    parent: UnitId | None = None


class OrgFile(BaseModel):
    """The whole file: a version and the units, each naming its parent."""

    model_config = ConfigDict(extra="forbid")

    version: VersionText
    units: list[UnitEntry]

    @model_validator(mode="after")
    def _a_tree(self) -> OrgFile:
        seen: dict[str, int] = {}
        for index, unit in enumerate(self.units):
            if unit.id in seen:
                raise MistakeAt(("units", index, "id"), f"unit {unit.id!r} is listed twice")
            seen[unit.id] = index
        for index, unit in enumerate(self.units):
            if unit.parent is not None and unit.parent not in seen:
                raise MistakeAt(
                    ("units", index, "parent"), f"parent {unit.parent!r} is not a listed unit"
                )
        parents = {unit.id: unit.parent for unit in self.units}
        for index, unit in enumerate(self.units):
            path, current = [unit.id], unit.parent
            while current is not None:
                if current in path:
                    cycle = " → ".join([*path, current])
                    raise MistakeAt(("units", index, "parent"), f"units form a cycle: {cycle}")
                path.append(current)
                current = parents[current]
        return self


@dataclass(frozen=True, slots=True)
class Org:
    """Units by id, with their children, answering "what lies below these units?"."""

    version: str
    children: dict[str, tuple[str, ...]]
    names: dict[str, str]

    def below(self, units: Iterable[str]) -> frozenset[str]:
        """`units` and every unit and station under them (a unit not listed is just itself)."""
        found: set[str] = set()
        pending = list(units)
        while pending:
            unit = pending.pop()
            if unit not in found:
                found.add(unit)
                pending.extend(self.children.get(unit, ()))
        return frozenset(found)


def parse_org(text: str) -> Org:
    """Parse and check an organisation file, or raise `ConfigFileError` naming the line."""
    spec = validate_yaml(text, OrgFile, shape="'version' and 'units'")
    children: dict[str, list[str]] = {unit.id: [] for unit in spec.units}
    for unit in spec.units:
        if unit.parent is not None:
            children[unit.parent].append(unit.id)
    return Org(
        version=spec.version,
        children={unit: tuple(kids) for unit, kids in children.items()},
        names={unit.id: unit.name or unit.id for unit in spec.units},
    )
