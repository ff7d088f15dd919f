"""`qianliyan-stack`: provision, start, inspect and stop the local stack."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

import typer

from qianliyan.stack.component import ComponentStatus
from qianliyan.stack.config import SERVICE_NAMES, StackConfig
from qianliyan.stack.infra import Infra, Services
from qianliyan.stack.init import init_stack, sign_in_hint
from qianliyan.stack.process import StackError, log_tail

app = typer.Typer(
    help="Run Qianliyan's real stack (Kafka, MinIO, PostgreSQL and the services) natively. "
    "Settings come from QLY_STACK_* environment variables (e.g. QLY_STACK_DATA_DIR).",
    no_args_is_help=True,
    add_completion=False,
)

_COMPONENT_NAMES = ("postgres", "minio", "kafka", *SERVICE_NAMES)


@contextmanager
def reported_errors() -> Iterator[None]:
    """Show a stack failure as its message (it carries the log tail), not a traceback."""
    try:
        yield
    except StackError as error:
        typer.secho(str(error), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from error


def _print_table(rows: Sequence[ComponentStatus]) -> None:
    lines = [("PART", "STATE", "PID", "ADDRESS")]
    lines += [
        (row.name, "running" if row.running else "stopped", str(row.pid or "-"), row.address)
        for row in rows
    ]
    widths = [max(len(cell) for cell in column) for column in zip(*lines, strict=True)]
    for line in lines:
        typer.echo("  ".join(map(str.ljust, line, widths)).rstrip())


@app.command()
def provision() -> None:
    """Download Kafka's jars and build MinIO into the cache (once; a few minutes)."""
    with reported_errors():
        Infra(StackConfig()).provision()
    typer.echo("provisioned")


@app.command()
def up(
    services: bool = typer.Option(True, help="Also start ingest, triage and notify."),
) -> None:
    """Provision what is missing, start everything, create topics, bucket and schema."""
    config = StackConfig()
    began = time.monotonic()
    with reported_errors():
        infra = Infra(config)
        infra.provision()
        infra.start()
        init_stack(config)
        rows = infra.status()
        if services:
            stack_services = Services(config)
            stack_services.start()
            rows += stack_services.status()
    typer.echo(f"up in {time.monotonic() - began:.1f}s; data in {config.data_dir}\n")
    _print_table(rows)
    typer.echo(f"\n{sign_in_hint(config)}")
    typer.echo("stop with: make down  (or: uv run qianliyan-stack down)")


@app.command()
def down() -> None:
    """Stop the services, then the infrastructure (data is kept)."""
    config = StackConfig()
    with reported_errors():
        Services(config).stop()
        Infra(config).stop()
    typer.echo("stopped")


@app.command()
def status() -> None:
    """Show what runs, with pids and addresses."""
    config = StackConfig()
    with reported_errors():
        _print_table([*Infra(config).status(), *Services(config).status()])
    typer.echo(f"\nlogs in {config.data_dir / 'logs'}")


@app.command()
def init() -> None:
    """Create the Kafka topics, the photo bucket and the database schema (idempotent)."""
    with reported_errors():
        init_stack(StackConfig())
    typer.echo("initialised")


@app.command()
def logs(
    name: str = typer.Argument(..., help=f"One of: {', '.join(_COMPONENT_NAMES)}."),
    lines: int = typer.Option(50, "--lines", "-n", min=1, help="How many lines to show."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines."),
) -> None:
    """Show the end of a part's log."""
    if name not in _COMPONENT_NAMES:
        raise typer.BadParameter(f"expected one of: {', '.join(_COMPONENT_NAMES)}")
    path = StackConfig().data_dir / "logs" / f"{name}.log"
    typer.echo(log_tail(path, lines))
    if follow and path.exists():
        _follow(path)


def _follow(path: Path) -> None:
    with path.open("rb") as log, suppress(KeyboardInterrupt):
        log.seek(0, os.SEEK_END)
        while True:
            chunk = log.read()
            if chunk:
                typer.echo(chunk.decode(errors="replace"), nl=False)
            else:
                time.sleep(0.5)
