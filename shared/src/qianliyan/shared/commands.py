"""The command lines' one way to run their work and to fail: a known failure is said in
one line with what to do, not a traceback, and the exit status is 1."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Coroutine
from typing import Any, NoReturn, TypeVar

import asyncpg
import httpx
import typer
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError

T = TypeVar("T")

# Kafka, PostgreSQL or a service could not be reached, or would not let this caller in.
# Any other error is a fault of the command's, and keeps its traceback.
_UNREACHABLE: tuple[type[BaseException], ...] = (
    httpx.TransportError,  # a service (ingest, for the demo) not listening, or not answering
    KafkaConnectionError,
    KafkaTimeoutError,
    NodeNotReadyError,
    ConnectionError,
    socket.gaierror,  # a host name that does not resolve
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InvalidAuthorizationSpecificationError,  # a wrong password or user
    asyncpg.InterfaceError,
)


def run_command(work: Coroutine[Any, Any, T]) -> T:
    """Run `work`. A refusal (another rebuild running, a schema to migrate first, topics
    missing: a RuntimeError) and a part of the stack out of reach are said in one line."""
    try:
        return asyncio.run(work)
    except _UNREACHABLE as exc:  # first: aiokafka's connection errors are RuntimeErrors too
        fail(
            f"could not reach Kafka, PostgreSQL or a service ({_described(exc)}); "
            "is the stack up? (`qianliyan stack status`)"
        )
    except asyncpg.UndefinedTableError as exc:
        fail(
            f"the database lacks what this command reads ({exc}): its schema was never "
            "made, or is older than this command; `qianliyan stack init` makes it (the "
            "migrations, elsewhere)"
        )
    except RuntimeError as refused:
        fail(f"refused: {refused}")


def fail(message: str) -> NoReturn:
    """End the command with `message`, in red on stderr, and exit status 1."""
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


def _described(exc: BaseException) -> str:
    text = str(exc)
    name = type(exc).__name__
    return text if text.startswith(name) else f"{name}: {text}"  # aiokafka's name themselves
