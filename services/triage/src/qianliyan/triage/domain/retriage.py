"""Running a new rule set over history: what would change, report by report and in total."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from uuid import UUID

from qianliyan.shared.events import ReportSubmitted, ReportTriaged, Severity
from qianliyan.triage.domain.rules import LoadedRules
from qianliyan.triage.domain.severity import SCALE
from qianliyan.triage.domain.triage import TriagePipeline


@dataclass(frozen=True, slots=True)
class SeverityChange:
    """One report whose severity the new rules would change."""

    report_id: UUID
    before: Severity | None
    before_version: str | None
    after: Severity
    reasons: tuple[str, ...]

    @property
    def direction(self) -> str:
        """'up', 'down' or 'new' (never triaged before)."""
        if self.before is None:
            return "new"
        return "up" if SCALE.index(self.after) > SCALE.index(self.before) else "down"


@dataclass(frozen=True, slots=True)
class IncidentMove:
    """One report the new grouping would put in another incident."""

    report_id: UUID
    before: UUID
    after: UUID


@dataclass(slots=True)
class RetriagePlan:
    """Every event the new rules would produce, and how they differ from the current ones."""

    rules_version: str
    events: list[ReportTriaged] = field(default_factory=list)
    changes: list[SeverityChange] = field(default_factory=list)
    moves: list[IncidentMove] = field(default_factory=list)
    unchanged: int = 0
    # Reports decided already under this rules version, otherwise than it decides them now
    # (the file was edited without a new version): a decision's id comes from the version,
    # so readers would keep the earlier decision as the same event.
    unchangeable: list[UUID] = field(default_factory=list)
    # Reports whose decision under this version the log holds, the same, but a later
    # decision replaced (rules re-applied after newer ones): sent again, it would be taken
    # for the one in the log and dropped, and the later decision would stand.
    superseded: list[UUID] = field(default_factory=list)
    # Event ids of decisions the log holds already, the same, and still in force: an
    # --apply cut short is finished by running it again, and produces none of them twice.
    in_log: set[UUID] = field(default_factory=set)
    # (incident before, incident after) of every report that had a decision before.
    _pairs: list[tuple[UUID, UUID]] = field(default_factory=list)

    @property
    def to_produce(self) -> list[ReportTriaged]:
        """The decisions the log does not hold yet, in log order."""
        return [event for event in self.events if event.event_id not in self.in_log]

    def totals(self) -> dict[str, int]:
        """Severity changes by direction, unchanged ones, and incidents merged or split."""
        counts = {"up": 0, "down": 0, "new": 0, "unchanged": self.unchanged}
        for change in self.changes:
            counts[change.direction] += 1
        after_by_before: dict[UUID, set[UUID]] = {}
        before_by_after: dict[UUID, set[UUID]] = {}
        for before, after in self._pairs:
            after_by_before.setdefault(before, set()).add(after)
            before_by_after.setdefault(after, set()).add(before)
        counts["incidents_split"] = sum(len(a) > 1 for a in after_by_before.values())
        counts["incidents_merged"] = sum(len(b) > 1 for b in before_by_after.values())
        return counts


def latest_triage(events: Iterable[ReportTriaged]) -> dict[UUID, ReportTriaged]:
    """The most recent triage decision per report (a later re-triage supersedes)."""
    latest: dict[UUID, ReportTriaged] = {}
    for event in events:
        known = latest.get(event.payload.report_id)
        if known is None or event.occurred_at >= known.occurred_at:
            latest[event.payload.report_id] = event
    return latest


def plan_retriage(
    submissions: Iterable[tuple[int, ReportSubmitted]],
    current: Mapping[UUID, ReportTriaged],
    rules: LoadedRules,
    *,
    decided: Mapping[UUID, ReportTriaged] | None = None,
) -> RetriagePlan:
    """Triage every (partition, submission) in log order with `rules`, incidents included,
    and compare with the current decisions; `decided` holds every decision in the log by
    its event id."""
    plan = RetriagePlan(rules_version=rules.version)
    pipeline = TriagePipeline(lambda: rules, output_topic="")
    decided_here: set[UUID] = set()
    for partition, submitted in submissions:
        [(_, new)] = pipeline.transform(submitted, partition)
        assert isinstance(new, ReportTriaged)
        if new.event_id in decided_here:
            # A submission the log holds twice (a producer's retry): folded again, as live
            # triage folds it, but its decision is the first one's (the same id; a later
            # copy may say more reports joined since), produced and compared once.
            continue
        decided_here.add(new.event_id)
        plan.events.append(new)
        old = current.get(submitted.payload.report_id)
        earlier = (decided or {}).get(new.event_id)
        if earlier is not None and earlier.payload != new.payload:
            plan.unchangeable.append(submitted.payload.report_id)
        elif earlier is not None and old is not None and old.event_id != new.event_id:
            plan.superseded.append(submitted.payload.report_id)
        elif earlier is not None:
            plan.in_log.add(new.event_id)
        if old is not None:
            plan._pairs.append((old.payload.incident_id, new.payload.incident_id))
            if old.payload.incident_id != new.payload.incident_id:
                plan.moves.append(
                    IncidentMove(
                        submitted.payload.report_id,
                        old.payload.incident_id,
                        new.payload.incident_id,
                    )
                )
        if old is not None and old.payload.severity == new.payload.severity:
            plan.unchanged += 1
            continue
        plan.changes.append(
            SeverityChange(
                report_id=submitted.payload.report_id,
                before=old.payload.severity if old else None,
                before_version=old.payload.rule_set_version if old else None,
                after=new.payload.severity,
                reasons=tuple(reason.rule_id for reason in new.payload.reasons),
            )
        )
    return plan
