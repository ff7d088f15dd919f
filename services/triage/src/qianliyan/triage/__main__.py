"""`qianliyan-triage`: run the triage pipeline (no command), or re-triage history."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Annotated

import typer

from qianliyan.shared.collector import settle_long_lived_objects
from qianliyan.shared.commands import run_command
from qianliyan.shared.config_files import read_config_text
from qianliyan.shared.http import serve
from qianliyan.shared.progress import events_progress
from qianliyan.triage.app import create_app
from qianliyan.triage.domain.rules import RuleFileError, categories_off_the_page, parse_rules
from qianliyan.triage.retriage import apply_plan, build_plan, describe, settle_earlier_apply
from qianliyan.triage.settings import TriageSettings

cli = typer.Typer(add_completion=False, no_args_is_help=False)


@cli.callback(invoke_without_command=True)
def run(context: typer.Context) -> None:
    """Serve triage with settings from the environment."""
    if context.invoked_subcommand is None:
        settings = TriageSettings()
        serve(
            partial(create_app, settings),
            service="triage",
            host=settings.http_host,
            port=settings.http_port,
        )


@cli.command()
def retriage(
    rules_file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    apply: Annotated[
        bool, typer.Option(help="Produce the new decisions (default: dry run)")
    ] = False,
) -> None:
    """Run RULES_FILE over every report in the log; show what changes, then optionally apply."""
    try:
        rules = parse_rules(read_config_text(rules_file))
    except RuleFileError as exc:
        typer.echo(f"{rules_file}: {exc}", err=True)
        raise typer.Exit(2) from None
    for rule_id, categories in categories_off_the_page(rules.spec).items():
        typer.echo(
            f"{rules_file}: rule {rule_id!r} names categories the reporter's page does not "
            f"offer, which its reports never match: {', '.join(categories)}",
            err=True,
        )
    settings = TriageSettings()
    if apply:
        run_command(settle_earlier_apply(settings))
    with events_progress("reading the log") as progress:
        plan = run_command(build_plan(settings, rules, progress))
    typer.echo(describe(plan))
    if apply:
        committed = [0]

        with events_progress("producing decisions") as bar:

            def progress(done: int, total: int) -> None:
                committed[0] = done
                bar(done, total)

            try:
                produced = run_command(apply_plan(settings, plan, progress=progress))
            except BaseException:  # an error said by run_command, Ctrl-C, anything
                if committed[0]:
                    typer.echo(
                        f"{committed[0]} of {len(plan.to_produce)} decisions were produced "
                        "and stay; --apply again produces the rest, none of them twice",
                        err=True,
                    )
                raise
        typer.echo(
            f"applied: {produced} ReportTriaged events with rules {rules.version}"
            f" ({len(plan.in_log)} were in the log already)"
        )
    else:
        typer.echo("dry run: nothing was produced (add --apply to produce)")


def main() -> None:
    """Console entry point."""
    settle_long_lived_objects()
    cli()


if __name__ == "__main__":
    main()
