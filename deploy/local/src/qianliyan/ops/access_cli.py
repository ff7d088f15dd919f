"""`qianliyan users …` and `qianliyan tokens …`: people and machine tokens, from the ops machine.

They act on the database and signing key that notify's settings (NOTIFY_*) name, the same
as the admin API (`/v1/access`) does; use whichever is at hand.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, TypeVar

import asyncpg
import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, ValidationError

from qianliyan.notify.api.access import NewMachineToken, NewUser
from qianliyan.notify.settings import NotifySettings
from qianliyan.shared.access import store
from qianliyan.shared.access.policy import Permission, Role
from qianliyan.shared.access.tokens import TokenSigner, load_signing_key, new_token_id
from qianliyan.shared.commands import fail, run_command

users_app = typer.Typer(help="People who sign in: add, list, disable.", no_args_is_help=True)
tokens_app = typer.Typer(help="Machine tokens: issue, list, revoke.", no_args_is_help=True)

T = TypeVar("T")
# Who the records say did it: the person at the ops machine's terminal.
OPERATOR = "ops-cli"


def _with_pool(work: Callable[[asyncpg.Pool], Awaitable[T]]) -> T:
    async def run() -> T:
        dsn = NotifySettings().postgres.dsn.get_secret_value()
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        assert pool is not None
        try:
            return await work(pool)
        finally:
            await pool.close()

    return run_command(run())


def _refuse(message: str) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(2)


M = TypeVar("M", bound=BaseModel)


def _checked(model: type[M], **fields: object) -> M:
    """The command's arguments checked as the admin API checks the same request."""
    try:
        return model.model_validate(fields)
    except ValidationError as invalid:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"
            for error in invalid.errors()
        )
        raise _refuse(f"refused: {problems}") from None


@users_app.command("add")
def add_user(
    username: str,
    role: Annotated[list[Role], typer.Option(help="A role; repeat for several")],
    unit: Annotated[
        list[str] | None,
        typer.Option(
            help="The person's unit: a manager sees its alerts, a reporter's reports are "
            "of it; repeat"
        ),
    ] = None,
    display_name: Annotated[str | None, typer.Option(help="The name people see")] = None,
) -> None:
    """Add a person with a generated password, printed once."""
    password = secrets.token_urlsafe(12)
    new = _checked(
        NewUser,
        username=username,
        display_name=display_name or username,
        password=password,
        roles=role,
        units=unit or [],
    )

    async def create(pool: asyncpg.Pool) -> store.User:
        return await store.create_user(
            pool,
            username=new.username,
            display_name=new.display_name,
            password=password,
            roles=[r.value for r in new.roles],
            units=new.units,
            created_by=OPERATOR,
        )

    try:
        user = _with_pool(create)
    except store.AccessConflict as conflict:
        raise _refuse(f"refused: {conflict}") from None
    typer.echo(f"added {user.username} ({', '.join(user.roles)}); password: {password}")


@users_app.command("list")
def list_users() -> None:
    """Everyone who can sign in."""
    for user in _with_pool(store.list_users):
        state = "disabled" if user.disabled else "enabled"
        units = f" units={','.join(user.units)}" if user.units else ""
        typer.echo(f"{user.username:20} {state:9} roles={','.join(user.roles)}{units}")


@users_app.command("disable")
def disable_user(username: str) -> None:
    """Stop a person signing in; the tokens they hold stop working too."""
    user = _with_pool(
        lambda pool: store.update_user(pool, username, changed_by=OPERATOR, disabled=True)
    )
    if user is None:
        raise _refuse(f"refused: there is no user {username!r}")
    typer.echo(f"disabled {username}")


@tokens_app.command("issue")
def issue_token(
    name: str,
    scope: Annotated[list[Permission], typer.Option(help="What it may do; repeat")],
    unit: Annotated[list[str] | None, typer.Option(help="Only these units; repeat")] = None,
    days: Annotated[int, typer.Option(min=1, max=730, help="Days until it expires")] = 90,
) -> None:
    """Issue a scoped token for an integration and print it (it is not shown again)."""
    new = _checked(NewMachineToken, name=name, scopes=scope, units=unit or [], expires_in_days=days)
    key_file = NotifySettings().access.token_key_file
    if key_file is None:
        raise _refuse("refused: NOTIFY_ACCESS__TOKEN_KEY_FILE is not set")
    signer = TokenSigner(signing_key(key_file))
    record, token = _with_pool(
        lambda pool: store.issue_machine_token(
            pool,
            signer,
            name=new.name,
            scopes=[s.value for s in new.scopes],
            units=new.units,
            expires_at=datetime.now(UTC) + timedelta(days=new.expires_in_days),
            created_by=OPERATOR,
        )
    )
    typer.echo(f"token {record.token_id} for {name}, until {record.expires_at:%Y-%m-%d}:")
    typer.echo(token)


@tokens_app.command("list")
def list_tokens() -> None:
    """Every machine token issued, newest first."""
    for token in _with_pool(store.list_machine_tokens):
        state = f"revoked {token.revoked_at:%Y-%m-%d}" if token.revoked_at else "active"
        typer.echo(
            f"{token.token_id}  {token.name:20} {state:18} until {token.expires_at:%Y-%m-%d} "
            f"scopes={','.join(token.scopes)}"
        )


@tokens_app.command("revoke")
def revoke_token(
    token_id: str, reason: Annotated[str, typer.Option(help="Why, for the record")]
) -> None:
    """Revoke a machine token; every service refuses it within seconds."""
    if not reason.strip():
        raise _refuse("refused: a revocation needs a reason, for the record")
    revoked = _with_pool(
        lambda pool: store.revoke_machine_token(pool, token_id, revoked_by=OPERATOR, reason=reason)
    )
    if revoked is None:
        raise _refuse(f"refused: there is no machine token {token_id!r}")
    typer.echo(f"revoked {token_id} ({revoked.name})")


def signing_key(key_file: Path) -> Ed25519PrivateKey:
    """The site's token signing key, or the command ends saying where it was looked for."""
    try:
        return load_signing_key(key_file)
    except ValueError as exc:
        fail(
            f"{exc}\n(the stack makes it: `qianliyan stack init`; elsewhere, point "
            "NOTIFY_ACCESS__TOKEN_KEY_FILE at the site's key)"
        )


def demo_token(key_file: Path) -> str:
    """A short-lived token for the demo, which sends reports on behalf of sample reporters."""
    return (
        TokenSigner(signing_key(key_file))
        .for_machine(
            token_id=new_token_id(),
            name="demo",
            scopes=[Permission.SUBMIT_FOR_OTHERS],
            units=[],
            expires_at=datetime.now(UTC) + timedelta(hours=1),
        )
        .token
    )
