"""`qianliyan-notify`: run the read models, feed and alerts (no command), or check them."""

from __future__ import annotations

from functools import partial
from typing import Annotated, TypeVar

import typer

from qianliyan.notify.app import create_app
from qianliyan.notify.rebuild import check as check_read_models
from qianliyan.notify.rebuild import rebuild as rebuild_read_models
from qianliyan.notify.settings import NotifySettings
from qianliyan.shared.collector import settle_long_lived_objects
from qianliyan.shared.commands import run_command
from qianliyan.shared.http import serve
from qianliyan.shared.progress import events_progress

T = TypeVar("T")

cli = typer.Typer(add_completion=False, no_args_is_help=False)


@cli.callback(invoke_without_command=True)
def run(context: typer.Context) -> None:
    """Serve notify with settings from the environment."""
    if context.invoked_subcommand is None:
        settings = NotifySettings()
        serve(
            partial(create_app, settings),
            service="notify",
            host=settings.http_host,
            port=settings.http_port,
        )


@cli.command()
def check(
    keep: Annotated[
        bool, typer.Option(help="Keep the scratch schema to look into afterwards")
    ] = False,
) -> None:
    """Rebuild the read models from Kafka into a scratch schema and compare with live."""
    settings = NotifySettings()
    with events_progress("rebuilding to compare") as progress:
        result = run_command(
            check_read_models(
                settings.kafka, settings.postgres.dsn.get_secret_value(), progress, keep=keep
            )
        )
    counts = ", ".join(f"{table} {n}" for table, n in result.rows.items())
    typer.echo(f"projected {result.events} events; live rows: {counts}")
    if result.identical:
        typer.echo("the rebuild equals the live read models")
        return
    for table, difference in result.differences.items():
        typer.echo(
            f"{table}: {len(difference.only_live)} rows only live, "
            f"{len(difference.only_rebuilt)} only in the rebuild"
        )
        for row in difference.only_live[:5]:
            typer.echo(f"  live only:    {row}")
        for row in difference.only_rebuilt[:5]:
            typer.echo(f"  rebuild only: {row}")
    raise typer.Exit(1)


@cli.command()
def rebuild(
    drop_retired: Annotated[
        bool, typer.Option(help="Drop the old read models after the switch (default: keep)")
    ] = False,
) -> None:
    """Rebuild the read models from Kafka into a fresh schema, then switch over atomically.

    The live read models serve until the switch; a failed rebuild leaves them untouched.
    """
    settings = NotifySettings()
    with events_progress("rebuilding") as progress:
        result = run_command(
            rebuild_read_models(
                settings.kafka,
                settings.postgres.dsn.get_secret_value(),
                progress,
                keep_retired=not drop_retired,
            )
        )
    typer.echo(
        f"rebuilt from {result.events} events and switched over, with the {result.caught_up} "
        "events that arrived meanwhile"
    )
    if result.retired_schema:
        typer.echo(
            f"the old read models are in schema {result.retired_schema} "
            f"(DROP SCHEMA {result.retired_schema} CASCADE when no longer wanted)"
        )


def main() -> None:
    """Console entry point."""
    settle_long_lived_objects()
    cli()


if __name__ == "__main__":
    main()
