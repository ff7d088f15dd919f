"""`qianliyan`: the one command for the people who run the system.

    qianliyan stack up|down|status|init|logs|provision   the native stack
    qianliyan lag [--watch 5]                             consumer lag and catch-up rate
    qianliyan dlq list|redrive|discard                    dead letters
    qianliyan check                                       rebuild into a scratch schema, compare
    qianliyan rebuild [--drop-retired]                    rebuild, then switch over atomically
    qianliyan replay triage|notify|all --from POINT       beginning, end, offset or time
                                                          (past unread records: --skip-unread)
    qianliyan as-of TIME [--incident ID]                  the feed or an incident back then
    qianliyan retriage RULES.yaml [--apply]               new rules over all history
    qianliyan demo [--reports 12]                         realistic reports through ingest
    qianliyan users add|list|disable                      people who sign in
    qianliyan tokens issue|list|revoke                    machine tokens for integrations

Kafka, ingest and the rest are found where the stack's settings (QLY_STACK_*) put them;
`check` and `retriage` read the services' own settings (NOTIFY_*, TRIAGE_*).
"""

from __future__ import annotations

import getpass
import json
import os
import re
import time
from datetime import datetime
from typing import Annotated
from uuid import UUID

import typer
from aiokafka.errors import ProducerFenced

from qianliyan.notify.__main__ import check as notify_check
from qianliyan.notify.__main__ import rebuild as notify_rebuild
from qianliyan.notify.rebuild import state_as_of
from qianliyan.notify.settings import NotifySettings
from qianliyan.ops.access_cli import demo_token, tokens_app, users_app
from qianliyan.ops.demo import send_demo_reports
from qianliyan.shared.commands import fail, run_command
from qianliyan.shared.dead_letters import (
    ACTION_DEADLINE_S,
    DeadLetterEntry,
    LetterState,
    dead_letter_producer,
    discard,
    read_letters,
    redrive,
)
from qianliyan.shared.kafka import (
    PartitionLag,
    ResetPoint,
    group_lag,
    reset_group,
    running_within,
)
from qianliyan.shared.progress import events_progress
from qianliyan.shared.topics import ALERTS, REPORTS, TRIAGE
from qianliyan.stack.cli import app as stack_app
from qianliyan.stack.cli import reported_errors
from qianliyan.stack.config import StackConfig
from qianliyan.stack.infra import Service
from qianliyan.triage.__main__ import retriage as triage_retriage

app = typer.Typer(
    help="Run and inspect Qianliyan: the stack, lag, dead letters, checks, re-triage, a demo.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(stack_app, name="stack", help="Provision, start, inspect and stop the stack.")


@app.callback()
def _services_settings_from_the_stack() -> None:
    """Commands that read the services' settings (NOTIFY_*, TRIAGE_*) get the local stack's
    where the environment does not say otherwise: its passwords are generated, not known."""
    config = StackConfig()
    for service in ("notify", "triage"):
        for name, value in config.service_env(service).items():
            os.environ.setdefault(name, value)


app.command("check")(notify_check)
app.command("rebuild")(notify_rebuild)
app.command("retriage")(triage_retriage)
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")

dlq_app = typer.Typer(help="Dead letters: list, re-drive, discard.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")

# Each consumer group of the system and the topics it reads.
GROUPS = {
    "qianliyan-triage": (REPORTS,),
    "qianliyan-notify": (REPORTS, TRIAGE, ALERTS),
}
TOPICS = (REPORTS, TRIAGE, ALERTS)
# An offset or partition as typed: str.isdigit() also takes "²", which int() does not.
_DIGITS = re.compile(r"[0-9]+")


def _bootstrap() -> str:
    return StackConfig().kafka_bootstrap


@app.command()
def lag(
    watch: Annotated[
        float, typer.Option(min=0.1, help="Seconds between the two looks that give the rate")
    ] = 5.0,
    group: Annotated[list[str] | None, typer.Option(help="Only these groups")] = None,
) -> None:
    """Per consumer group and partition: how far behind, and how fast it is catching up."""
    unknown = sorted(set(group or ()) - GROUPS.keys())
    if unknown:
        raise typer.BadParameter(
            f"no consumer group {', '.join(map(repr, unknown))}; the groups are "
            f"{', '.join(GROUPS)}",
            param_hint="--group",
        )
    groups = {name: topics for name, topics in GROUPS.items() if not group or name in group}
    bootstrap = _bootstrap()

    async def look() -> dict[str, list[PartitionLag]]:
        return {name: await group_lag(bootstrap, name, *topics) for name, topics in groups.items()}

    first = run_command(look())
    started = time.monotonic()
    time.sleep(watch)
    second = run_command(look())
    elapsed = time.monotonic() - started
    typer.echo(f"{'GROUP':<18} {'PARTITION':<22} {'BEHIND':>8} {'RATE/S':>8}  CATCH-UP")
    for name, partitions in second.items():
        before = {p.partition: p for p in first[name]}
        for now in partitions:
            done = now.committed - before[now.partition].committed
            rate = done / elapsed
            if now.behind == 0:
                eta = "caught up"
            elif rate <= 0:
                eta = "not moving"
            else:
                eta = f"{now.behind / rate:.0f}s"
            where = f"{now.partition.topic}[{now.partition.partition}]"
            typer.echo(f"{name:<18} {where:<22} {now.behind:>8} {rate:>8.1f}  {eta}")


@dlq_app.command("list")
def dlq_list(
    all_states: Annotated[
        bool, typer.Option("--all", help="Also re-driven and discarded letters")
    ] = False,
) -> None:
    """Dead letters with their origin, event type, error and state."""
    letters = run_command(read_letters(_bootstrap(), TOPICS))
    shown = [x for x in letters if all_states or x.state is LetterState.PARKED]
    if not shown:
        typer.echo("no dead letters" if not letters else "no parked dead letters (see --all)")
        return
    for letter in shown:
        typer.echo(
            f"{letter.name}  {letter.state.value:<9} "
            f"from {letter.origin}  type={letter.event_type or '?'}  "
            f"parked {letter.parked_at:%Y-%m-%d %H:%M:%S}Z\n    error: {letter.error}"
        )
        for line in letter.history:
            typer.echo(f"    {line}")


def _select(offsets: list[str] | None, error_contains: str | None, every: bool) -> list[str] | str:
    """Which letters a re-drive or discard names: by name (TOPIC[P]@OFFSET, written as
    `DeadLetterEntry.name` writes it), by a phrase, or all."""
    if sum((bool(offsets), bool(error_contains), every)) != 1:
        return "name letters by --letter, by --error-contains, or --all (one of them)"
    if offsets:
        chosen = []
        for name in offsets:
            topic, _, rest = name.partition("[")
            partition, _, offset = rest.partition("]@")
            if not (topic and _DIGITS.fullmatch(partition) and _DIGITS.fullmatch(offset)):
                return f"{name!r} is not TOPIC[PARTITION]@OFFSET, as `dlq list` shows it"
            chosen.append(f"{topic}[{int(partition)}]@{int(offset)}")
        return chosen
    return []


def _act(
    action: str,
    letters_named: list[str] | None,
    error_contains: str | None,
    every: bool,
    reason: str | None,
    deadline_s: float,
    *,
    ask_first: bool = False,
) -> None:
    """Re-drive or discard the letters named; with `ask_first`, letters chosen by a phrase
    or --all are listed and the operator asked before anything is done."""
    selection = _select(letters_named, error_contains, every)
    if isinstance(selection, str):
        typer.secho(selection, fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    bootstrap = _bootstrap()
    by = getpass.getuser()

    async def choose() -> list[DeadLetterEntry]:
        letters = await read_letters(bootstrap, TOPICS)
        if not selection:
            return [
                x
                for x in letters
                if x.state is LetterState.PARKED
                and (not error_contains or error_contains in x.error)
            ]
        # A letter named but no longer parked (done by a run cut short, say) is passed over
        # below, and said so, so that the same command can be run again.
        wanted = set(selection)
        chosen = [x for x in letters if x.name in wanted]
        missing = wanted - {x.name for x in chosen}
        if missing:
            raise typer.BadParameter(
                f"no dead letter {', '.join(sorted(missing))}: name each as the first "
                "column of `dlq list --all` shows it (not its origin)",
                param_hint="--letter",
            )
        return chosen

    async def run(chosen: list[DeadLetterEntry]) -> tuple[int, int]:
        producer = dead_letter_producer(bootstrap)
        # Starting it fences every other run, so what is read after it is what this run
        # acts on: a letter another run acted on since it was chosen (or while the
        # operator was asked) is no longer parked, and is passed over.
        done = passed = 0
        async with running_within(producer, deadline_s):
            now = {letter.name: letter for letter in await read_letters(bootstrap, TOPICS)}
            for letter in chosen:
                current = now.get(letter.name)  # gone only past the topic's retention
                if current is None or current.state is not LetterState.PARKED:
                    passed += 1
                    why = (
                        (current.history or [current.state.value])[-1]
                        if current
                        else "no longer in its topic"
                    )
                    typer.echo(f"passed over: {letter.name} is no longer parked ({why})")
                    continue
                so_far = (
                    f"after {done} letter(s) done and {passed} passed over of {len(chosen)}; "
                    "`qianliyan dlq list` shows where each stands"
                )
                try:
                    if action == "redrive":
                        await redrive(producer, letter, by=by, deadline_s=deadline_s)
                    else:
                        await discard(
                            producer, letter, by=by, reason=reason or "", deadline_s=deadline_s
                        )
                except ProducerFenced:
                    raise RuntimeError(
                        "another run of `qianliyan dlq` started, and goes on in its place, "
                        + so_far
                    ) from None
                except TimeoutError as gave_up:
                    raise TimeoutError(
                        f"{gave_up}, which may or may not be done, {so_far}. Once Kafka "
                        "answers, the same command again passes over what was done, after "
                        "Kafka finishes or aborts what this run left open"
                    ) from None
                done += 1
                typer.echo(f"{action}: {letter.name}")
        return done, passed

    chosen = run_command(choose())
    if ask_first and not selection and chosen:
        for letter in chosen:
            typer.echo(f"{letter.name}  {letter.error}")
        if not typer.confirm(f"{action} these {len(chosen)} letter(s)?", default=False):
            typer.echo("nothing done")
            raise typer.Exit(1)
    count, passed = run_command(run(chosen))
    summary = f"{count} letter(s) {'re-driven' if action == 'redrive' else 'discarded'}"
    typer.echo(summary + (f", {passed} passed over" if passed else ""))
    if passed and selection:
        raise typer.Exit(1)  # letters named one by one, not all acted on


@dlq_app.command("redrive")
def dlq_redrive(
    letter: Annotated[
        list[str] | None, typer.Option(help="TOPIC[PARTITION]@OFFSET, as listed")
    ] = None,
    error_contains: Annotated[
        str | None, typer.Option(help="Letters whose error says this")
    ] = None,
    every: Annotated[bool, typer.Option("--all", help="Every parked letter")] = False,
    timeout: Annotated[
        float, typer.Option(min=1, help="Seconds to wait for Kafka on each letter")
    ] = ACTION_DEADLINE_S,
) -> None:
    """Send parked letters back to their topic, once their cause is fixed."""
    _act("redrive", letter, error_contains, every, None, timeout)


@dlq_app.command("discard")
def dlq_discard(
    reason: Annotated[str, typer.Option(help="Why; it is recorded with the letter")],
    letter: Annotated[
        list[str] | None, typer.Option(help="TOPIC[PARTITION]@OFFSET, as listed")
    ] = None,
    error_contains: Annotated[
        str | None, typer.Option(help="Letters whose error says this")
    ] = None,
    every: Annotated[bool, typer.Option("--all", help="Every parked letter")] = False,
    timeout: Annotated[
        float, typer.Option(min=1, help="Seconds to wait for Kafka on each letter")
    ] = ACTION_DEADLINE_S,
    yes: Annotated[
        bool, typer.Option("--yes", help="Discard letters chosen by a phrase or --all unasked")
    ] = False,
) -> None:
    """Mark parked letters discarded, with a reason; they stay in the topic, and are never
    re-driven. Letters chosen by a phrase or --all are listed, and asked about, first."""
    if not reason.strip():
        typer.secho("a discard needs a reason", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    _act("discard", letter, error_contains, every, reason, timeout, ask_first=not yes)


def _zoned_time(value: str) -> datetime | None:
    """`value` as an ISO time with its zone; None when it is not one."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _reset_point(value: str) -> ResetPoint:
    if value in ("beginning", "end"):
        return value  # type: ignore[return-value]
    if _DIGITS.fullmatch(value):
        return int(value)
    moment = _zoned_time(value)
    if moment is None:
        raise typer.BadParameter(
            "give 'beginning', 'end', an offset, or a time with its zone such as "
            "2026-11-25T08:00:00+08:00"
        )
    return moment


@app.command()
def replay(
    consumer: Annotated[str, typer.Argument(help="triage, notify, or all")],
    start: Annotated[
        str, typer.Option("--from", help="beginning, end, an offset, or an ISO time with zone")
    ],
    skip_unread: Annotated[
        bool,
        typer.Option(help="Allow a move past records not read yet (they are then never read)"),
    ] = False,
) -> None:
    """Replay a consumer from a point in its topics: it is stopped, moved, and started again.

    Replays are safe: triage derives its decisions' ids from their inputs and notify
    projects each event id once, so a replayed event changes nothing twice. A move past
    what the consumer has not read yet skips it for good: refused, unless --skip-unread.
    """
    point = _reset_point(start)
    names = ["triage", "notify"] if consumer == "all" else [consumer]
    if any(name not in ("triage", "notify") for name in names):
        raise typer.BadParameter("the consumers are triage and notify (or all)")
    config = StackConfig()
    for name in names:
        service = Service(config, name)
        group = f"qianliyan-{name}"
        with reported_errors():
            running = service.status().running
            if running:
                service.stop()
            try:
                moved = run_command(
                    reset_group(
                        config.kafka_bootstrap,
                        group,
                        GROUPS[group],
                        point,
                        skip_unread=skip_unread,
                    )
                )
            finally:
                if running:
                    service.start()
        for partition, offset in sorted(moved.items()):
            typer.echo(f"{group} {partition.topic}[{partition.partition}] -> {offset}")


@app.command("as-of")
def as_of(
    moment: Annotated[str, typer.Argument(help="An ISO time with zone")],
    incident: Annotated[str | None, typer.Option(help="One incident's id")] = None,
) -> None:
    """The feed (or one incident) as it stood at MOMENT, answered from the log."""
    when = _zoned_time(moment)
    if when is None:
        raise typer.BadParameter(
            f"{moment!r} is not a time with its zone, such as 2026-11-25T08:00:00+08:00",
            param_hint="MOMENT",
        )
    try:
        incident_id = UUID(incident) if incident else None
    except ValueError:
        raise typer.BadParameter(
            f"{incident!r} is not an incident id (a UUID, as the feed shows it)",
            param_hint="--incident",
        ) from None
    settings = NotifySettings()
    with events_progress("reading the log up to then") as progress:
        state = run_command(
            state_as_of(
                settings.kafka,
                settings.postgres.dsn.get_secret_value(),
                when,
                progress,
                incident_id=incident_id,
            )
        )
    typer.echo(json.dumps(state, ensure_ascii=False, indent=2, default=str))


@app.command()
def demo(
    reports: Annotated[int, typer.Option(min=1, max=200, help="How many reports")] = 12,
) -> None:
    """Send realistic sample reports, with photos, through the running ingest."""
    config = StackConfig()
    token = demo_token(config.token_key_file)
    ingest_url = f"http://{config.host}:{config.ingest_port}"
    failed = run_command(send_demo_reports(ingest_url, reports, token=token, say=typer.echo))
    if failed:
        fail(f"ingest refused {failed} of {reports} report(s): see above why")
    typer.echo(f"open http://{config.host}:{config.notify_port}/dispatch to see them on the feed")


def main() -> None:
    """Console entry point."""
    app()
