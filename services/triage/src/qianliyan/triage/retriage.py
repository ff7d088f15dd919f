"""`qianliyan-triage retriage RULES`: run a rule file over all of history.

A dry run (the default) prints what would change and produces nothing. `--apply`
produces a new ReportTriaged per report, tagged with the new rule version, in Kafka
transactions of a few thousand, and the read models follow; one cut short is finished by
running it again. Update the running service's rule file too,
or new reports keep being triaged with the old rules.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import AIOKafkaProducer

from qianliyan.shared.events import ReportSubmitted, ReportTriaged, encode
from qianliyan.shared.events.codec import headers_for
from qianliyan.shared.kafka import (
    Record,
    create_producer,
    decode_records,
    given_up_after,
    history,
    running_within,
)
from qianliyan.shared.progress import ProgressCallback
from qianliyan.triage.domain.retriage import RetriagePlan, latest_triage, plan_retriage
from qianliyan.triage.domain.rules import LoadedRules
from qianliyan.triage.settings import TriageSettings

# A few MB of decisions: each transaction commits in well under Kafka's minute.
APPLY_BATCH_EVENTS = 2_000
# Long enough for a batch on a busy broker; a quiet one is said so, not waited for.
APPLY_DEADLINE_S = 60.0


async def build_plan(
    settings: TriageSettings, rules: LoadedRules, progress: ProgressCallback | None = None
) -> RetriagePlan:
    """Read both topics and compare the rules' decisions with the current ones."""
    kafka = settings.kafka
    reports: list[Record] = []
    triaged: list[Record] = []
    async for batch in history(kafka.bootstrap_servers, kafka.reports_topic, kafka.triage_topic):
        for record in batch.records:
            (reports if record.topic == kafka.reports_topic else triaged).append(record)
        if progress is not None:
            progress(batch.done, batch.total)
    # Grouping is a fold per partition in log order, exactly as live triage saw it.
    submissions = [
        (record.partition, event)
        for record, event in decode_records(sorted(reports, key=lambda r: (r.partition, r.offset)))[
            0
        ]
        if isinstance(event, ReportSubmitted)
    ]
    decisions = [
        event for _, event in decode_records(triaged)[0] if isinstance(event, ReportTriaged)
    ]
    decided = {event.event_id: event for event in decisions}
    return plan_retriage(submissions, latest_triage(decisions), rules, decided=decided)


async def apply_plan(
    settings: TriageSettings,
    plan: RetriagePlan,
    *,
    batch_events: int = APPLY_BATCH_EVENTS,
    progress: ProgressCallback | None = None,
    deadline_s: float = APPLY_DEADLINE_S,
) -> int:
    """Produce the plan's decisions the log does not hold yet, in log order, in transactions
    of `batch_events`; each batch becomes visible whole, or not at all. Answers how many
    were produced. Refused (RuntimeError) where some would be the same events as decisions
    in the log (`refused`).

    Not one transaction for all: Kafka aborts a transaction open longer than its timeout (a
    minute), which a year of history outlasts. Where a run is cut short, the batches
    committed stay, and the read models show those reports under the new rules and the
    rest under the old until the command is run again, which produces the rest
    (`plan.in_log`). A batch that Kafka does not finish within `deadline_s` ends the run
    with a TimeoutError, rather than a wait with no end: it may have been committed, or
    be left open (`settle_earlier_apply`)."""
    refusal = refused(plan)
    if refusal is not None:
        raise RuntimeError(refusal)
    kafka = settings.kafka
    pending = plan.to_produce
    producer = _apply_producer(settings)

    async def produce(batch: Sequence[ReportTriaged]) -> None:
        async with producer.transaction():
            for event in batch:
                await producer.send(
                    kafka.triage_topic,
                    encode(event),
                    key=event.key.encode(),
                    headers=headers_for(event),
                )

    async with running_within(producer, deadline_s):
        for start in range(0, len(pending), batch_events):
            end = min(start + batch_events, len(pending))
            doing = f"producing decisions {start + 1} to {end} of {len(pending)}"
            try:
                await given_up_after(deadline_s, produce(pending[start:end]), doing)
            except TimeoutError as gave_up:
                raise TimeoutError(f"{gave_up}, which may or may not be done") from None
            if progress is not None:
                progress(end, len(pending))
    return len(pending)


async def settle_earlier_apply(
    settings: TriageSettings, deadline_s: float = APPLY_DEADLINE_S
) -> None:
    """Have Kafka finish or abort the batch an earlier `apply_plan` left open (a run killed,
    or given up on): starting a producer of the same transactional id does. Until then,
    a committed reader of the log stops at that batch, so a plan read first would miss
    every decision after it, and plan again a batch whose commit was under way."""
    async with running_within(_apply_producer(settings), deadline_s):
        pass


def _apply_producer(settings: TriageSettings) -> AIOKafkaProducer:
    return create_producer(
        settings.kafka,
        client_id="triage-retriage",
        transactional_id=f"{settings.transactional_ids}-retriage",
    )


def describe(plan: RetriagePlan) -> str:
    """The plan as a person reads it: one line per change, then the totals."""
    lines = [f"rules {plan.rules_version} over {len(plan.events)} reports"]
    if plan.in_log:
        lines.append(f"  {len(plan.in_log)} of their decisions are in the log already")
    for change in plan.changes:
        before = f"{change.before} ({change.before_version})" if change.before else "untriaged"
        lines.append(
            f"  {change.direction:>4}  {change.report_id}  {before} -> {change.after}"
            f"  [{', '.join(change.reasons) or 'no rule matched'}]"
        )
    for move in plan.moves:
        lines.append(f"  moved {move.report_id}  incident {move.before} -> {move.after}")
    totals = plan.totals()
    lines.append("totals: " + ", ".join(f"{name} {count}" for name, count in totals.items()))
    refusal = refused(plan)
    if refusal is not None:
        lines.append(refusal)
    return "\n".join(lines)


def refused(plan: RetriagePlan) -> str | None:
    """Why `--apply` would not take effect, or None: decisions whose ids the log holds."""
    if plan.unchangeable:
        return (
            f"{len(plan.unchangeable)} report(s) were decided under rules version "
            f"{plan.rules_version} already, otherwise than these rules decide them: a "
            "decision's id comes from the version, so the new decisions would be taken for "
            "the old ones and dropped. Give the rule file a new version; --apply refuses "
            "until then."
        )
    if plan.superseded:
        return (
            f"{len(plan.superseded)} report(s) were decided under rules version "
            f"{plan.rules_version} before, and later decisions replaced those (rules "
            "applied since, or the running triage deciding them after this plan was made): "
            "sent again, they would be taken for the ones in the log and dropped, and the "
            "later ones would stand. Give the rule file a new version; --apply refuses "
            "until then."
        )
    return None
