"""The access tables in PostgreSQL: people, machine tokens, revocations, and the trail.

Passwords are kept as Argon2id hashes (pwdlib); hashing runs in a thread, as it is meant
to be slow. Every change to a person or a machine token is recorded in `access_changes`
in the same transaction, with who made it (a password change says only that it changed),
and so are sign-ins, refused sign-ins and sign-outs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from pwdlib import PasswordHash

from qianliyan.shared.access.tokens import Revocations, TokenSigner, new_token_id

_HASHER = PasswordHash.recommended()
# Checked against when the user name is unknown, so a wrong name takes as long as a wrong
# password and sign-in does not tell which names exist.
_DECOY_HASH = _HASHER.hash("no such user")


class AccessConflict(ValueError):
    """The change clashes with what exists (a user name taken, say)."""


@dataclass(frozen=True, slots=True)
class User:
    """A person who signs in with a password."""

    username: str
    display_name: str
    roles: tuple[str, ...]
    units: tuple[str, ...]
    disabled: bool

    def public(self) -> dict[str, Any]:
        """What an admin sees of the account (never the hash)."""
        return {
            "username": self.username,
            "display_name": self.display_name,
            "roles": list(self.roles),
            "units": list(self.units),
            "disabled": self.disabled,
        }


def _user(row: asyncpg.Record) -> User:
    return User(
        username=row["username"],
        display_name=row["display_name"],
        roles=tuple(row["roles"]),
        units=tuple(row["units"]),
        disabled=row["disabled_at"] is not None,
    )


def user_change(before: User, after: User, *, password_changed: bool) -> dict[str, Any]:
    """What a change did to a person, field by field ({"from": …, "to": …}); a password
    change is named, never shown."""
    changed: dict[str, Any] = {
        field: {"from": old, "to": new}
        for field in ("display_name", "roles", "units", "disabled")
        if (old := _listed(getattr(before, field))) != (new := _listed(getattr(after, field)))
    }
    if password_changed:
        changed["password"] = "changed"  # noqa: S105 - that it changed, not what to
    return changed


def _listed(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


# The actor of a refused sign-in: whoever tried is not known.
ANONYMOUS = "anonymous"


async def _record_change(
    connection: Any, *, actor: str, action: str, subject: str, detail: dict[str, Any]
) -> None:
    await connection.execute(
        "INSERT INTO access_changes (actor, action, subject, detail) VALUES ($1, $2, $3, $4)",
        actor,
        action,
        subject,
        json.dumps(detail, ensure_ascii=False, default=str),
    )


async def hash_password(password: str) -> str:
    """The Argon2id hash of `password`."""
    return await asyncio.to_thread(_HASHER.hash, password)


async def create_user(
    pool: asyncpg.Pool,
    *,
    username: str,
    display_name: str,
    password: str,
    roles: Iterable[str],
    units: Iterable[str],
    created_by: str,
) -> User:
    """Add a person; `AccessConflict` when the user name is taken."""
    password_hash = await hash_password(password)
    try:
        async with pool.acquire() as connection, connection.transaction():
            row = await connection.fetchrow(
                """
                INSERT INTO access_users
                       (username, display_name, password_hash, roles, units, created_by)
                VALUES ($1, $2, $3, $4, $5, $6)
                RETURNING *
                """,
                username,
                display_name,
                password_hash,
                sorted(set(roles)),
                sorted(set(units)),
                created_by,
            )
            assert row is not None
            user = _user(row)
            await _record_change(
                connection,
                actor=created_by,
                action="user_added",
                subject=username,
                detail={
                    k: v for k, v in user.public().items() if k not in ("username", "disabled")
                },
            )
    except asyncpg.UniqueViolationError:
        raise AccessConflict(f"the user name {username!r} is taken") from None
    return user


async def get_user(pool: asyncpg.Pool, username: str) -> User | None:
    """The person with `username`, or None."""
    row = await pool.fetchrow("SELECT * FROM access_users WHERE username = $1", username)
    return _user(row) if row else None


async def list_users(pool: asyncpg.Pool) -> list[User]:
    """Everyone, by user name."""
    return [_user(row) for row in await pool.fetch("SELECT * FROM access_users ORDER BY username")]


async def check_password(pool: asyncpg.Pool, username: str, password: str) -> User | None:
    """The enabled user whose password this is, or None (same cost either way)."""
    row = await pool.fetchrow("SELECT * FROM access_users WHERE username = $1", username)
    stored = row["password_hash"] if row else _DECOY_HASH
    matches = await asyncio.to_thread(_HASHER.verify, password, stored)
    if row is None or not matches or row["disabled_at"] is not None:
        return None
    return _user(row)


async def update_user(
    pool: asyncpg.Pool,
    username: str,
    *,
    changed_by: str,
    display_name: str | None = None,
    roles: Iterable[str] | None = None,
    units: Iterable[str] | None = None,
    password: str | None = None,
    disabled: bool | None = None,
) -> User | None:
    """Change what is given; tokens issued before a change of access stop working."""
    password_hash = await hash_password(password) if password is not None else None
    async with pool.acquire() as connection, connection.transaction():
        before = await connection.fetchrow(
            "SELECT * FROM access_users WHERE username = $1 FOR UPDATE", username
        )
        if before is None:
            return None
        row = await connection.fetchrow(
            """
            UPDATE access_users SET
                display_name  = coalesce($2, display_name),
                roles         = coalesce($3, roles),
                units         = coalesce($4, units),
                password_hash = coalesce($5, password_hash),
                disabled_at   = CASE WHEN $6::boolean IS NULL THEN disabled_at
                                     WHEN $6 THEN coalesce(disabled_at, now())
                                     ELSE NULL END,
                updated_at    = now()
            WHERE username = $1
            RETURNING *
            """,
            username,
            display_name,
            sorted(set(roles)) if roles is not None else None,
            sorted(set(units)) if units is not None else None,
            password_hash,
            disabled,
        )
        assert row is not None  # locked above
        # A token carries the roles and units it was issued with: any change to them, to
        # the password or to being enabled voids the tokens issued so far.
        if roles is not None or units is not None or password is not None or disabled:
            await _cut_off(connection, username)
        user = _user(row)
        changed = user_change(_user(before), user, password_changed=password is not None)
        if changed:
            await _record_change(
                connection,
                actor=changed_by,
                action="user_changed",
                subject=username,
                detail=changed,
            )
    return user


async def _cut_off(connection: Any, subject: str, not_before: datetime | None = None) -> None:
    """Void `subject`'s tokens issued before now, or before `not_before` where that is
    later; a cut-off never moves back."""
    await connection.execute(
        """
        INSERT INTO access_subject_cutoffs (subject, not_before)
        VALUES ($1, GREATEST(now(), $2::timestamptz))
        ON CONFLICT (subject) DO UPDATE
        SET not_before = GREATEST(access_subject_cutoffs.not_before, EXCLUDED.not_before)
        """,
        subject,
        not_before,
    )


@dataclass(frozen=True, slots=True)
class MachineToken:
    """An integration's token, as listed (the token itself is shown once, when issued)."""

    token_id: str
    name: str
    scopes: tuple[str, ...]
    units: tuple[str, ...]
    created_at: datetime
    created_by: str
    expires_at: datetime
    revoked_at: datetime | None

    def public(self) -> dict[str, Any]:
        """What an admin sees of it."""
        return {
            "token_id": self.token_id,
            "name": self.name,
            "scopes": list(self.scopes),
            "units": list(self.units),
            "created_at": self.created_at,
            "created_by": self.created_by,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
        }


def _machine_token(row: asyncpg.Record) -> MachineToken:
    return MachineToken(
        token_id=row["token_id"],
        name=row["name"],
        scopes=tuple(row["scopes"]),
        units=tuple(row["units"]),
        created_at=row["created_at"],
        created_by=row["created_by"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
    )


async def record_machine_token(
    pool: asyncpg.Pool,
    *,
    token_id: str,
    name: str,
    scopes: Iterable[str],
    units: Iterable[str],
    expires_at: datetime,
    created_by: str,
) -> MachineToken:
    """Keep the record of an issued machine token (not the token itself)."""
    async with pool.acquire() as connection, connection.transaction():
        row = await connection.fetchrow(
            """
            INSERT INTO access_tokens (token_id, name, scopes, units, expires_at, created_by)
            VALUES ($1, $2, $3, $4, $5, $6)
            RETURNING *
            """,
            token_id,
            name,
            sorted(set(scopes)),
            sorted(set(units)),
            expires_at,
            created_by,
        )
        assert row is not None
        token = _machine_token(row)
        await _record_change(
            connection,
            actor=created_by,
            action="token_issued",
            subject=token_id,
            detail={
                "name": token.name,
                "scopes": list(token.scopes),
                "units": list(token.units),
                "expires_at": token.expires_at.isoformat(),
            },
        )
    return token


async def issue_machine_token(
    pool: asyncpg.Pool,
    signer: TokenSigner,
    *,
    name: str,
    scopes: Iterable[str],
    units: Iterable[str],
    expires_at: datetime,
    created_by: str,
) -> tuple[MachineToken, str]:
    """Record a new machine token, then sign it: its record and the token, shown once."""
    token_id, scopes, units = new_token_id(), sorted(set(scopes)), sorted(set(units))
    # The record first: a token that exists without its record could not be listed or revoked.
    record = await record_machine_token(
        pool,
        token_id=token_id,
        name=name,
        scopes=scopes,
        units=units,
        expires_at=expires_at,
        created_by=created_by,
    )
    issued = signer.for_machine(
        token_id=token_id, name=name, scopes=scopes, units=units, expires_at=expires_at
    )
    return record, issued.token


async def list_machine_tokens(pool: asyncpg.Pool) -> list[MachineToken]:
    """Every machine token issued, newest first."""
    rows = await pool.fetch("SELECT * FROM access_tokens ORDER BY created_at DESC")
    return [_machine_token(row) for row in rows]


async def revoke_machine_token(
    pool: asyncpg.Pool, token_id: str, *, revoked_by: str, reason: str
) -> MachineToken | None:
    """Void a machine token everywhere; None when there is no such token."""
    async with pool.acquire() as connection, connection.transaction():
        row = await connection.fetchrow(
            """
            UPDATE access_tokens SET revoked_at = coalesce(revoked_at, now()),
                                     revoked_by = coalesce(revoked_by, $2)
            WHERE token_id = $1
            RETURNING *, revoked_at = now() AS revoked_now
            """,
            token_id,
            revoked_by,
        )
        if row is None:
            return None
        await _revoke(connection, token_id, row["expires_at"], revoked_by, reason)
        if row["revoked_now"]:  # not when revoking again what was revoked before
            await _record_change(
                connection,
                actor=revoked_by,
                action="token_revoked",
                subject=token_id,
                detail={"name": row["name"], "reason": reason},
            )
    return _machine_token(row)


async def sign_out(
    pool: asyncpg.Pool,
    token_id: str,
    *,
    username: str,
    expires_at: datetime,
    via: str,
    replaced_by: str | None = None,
) -> None:
    """Void a person's own token everywhere, and say so in the access trail (once: a
    sign-out sent twice, to two instances at once, say, is one sign-out). `replaced_by`
    names who signed in on the page in their place: they ended the session, not its
    holder."""
    actor = replaced_by or username
    reason = f"replaced by a sign-in of {replaced_by}" if replaced_by else "signed out"
    async with pool.acquire() as connection, connection.transaction():
        if not await _revoke(connection, token_id, expires_at, actor, reason):
            return
        await _record_change(
            connection,
            actor=actor,
            action="signed_out",
            subject=username,
            detail={"via": via, "replaced_by": replaced_by} if replaced_by else {"via": via},
        )


async def sign_out_everywhere(
    pool: asyncpg.Pool, subject: str, *, issued_at: datetime | None, via: str
) -> None:
    """Void every token of `subject` issued until now, and the one signed out with
    (`issued_at`, by its issuer's clock, which may run ahead of ours), and say so in the
    access trail: for an identity provider's token without an id, which cannot be revoked
    alone. A token issued within the same second after it is void too (its time is in
    whole seconds)."""
    after_it = issued_at + timedelta(seconds=1) if issued_at is not None else None
    async with pool.acquire() as connection, connection.transaction():
        await _cut_off(connection, subject, after_it)
        await _record_change(
            connection,
            actor=subject,
            action="signed_out",
            subject=subject,
            detail={"via": via, "every_token": True},
        )


async def record_sign_in(
    pool: asyncpg.Pool, *, username: str, signed_in: bool, via: str, address: str
) -> None:
    """A sign-in, or an attempt refused for a wrong password or a disabled account, in the
    access trail. Nobody is known to have made a refused attempt: its actor is `anonymous`
    and its subject the user name that was tried."""
    async with pool.acquire() as connection:
        await _record_change(
            connection,
            actor=username if signed_in else ANONYMOUS,
            action="signed_in" if signed_in else "sign_in_refused",
            subject=username,
            detail={"via": via, "address": address},
        )


async def _revoke(
    connection: Any, token_id: str, expires_at: datetime, revoked_by: str, reason: str
) -> bool:
    """Void `token_id` until `expires_at` at least; whether it was not void already. A
    revocation already there is kept, for as long as the longer of the two says: a token
    signed out, then revoked by an admin, stays void for its whole life."""
    inserted = await connection.fetchval(
        """
        INSERT INTO access_revoked_tokens (token_id, expires_at, revoked_by, reason)
        VALUES ($1, $2, $3, $4)
        ON CONFLICT (token_id) DO UPDATE
            SET expires_at = GREATEST(access_revoked_tokens.expires_at, EXCLUDED.expires_at)
        RETURNING xmax = 0
        """,
        token_id,
        expires_at,
        revoked_by,
        reason,
    )
    return bool(inserted)


async def load_revocations(pool: asyncpg.Pool) -> Revocations:
    """The revocations that still matter (those of tokens not yet expired anyway)."""
    async with pool.acquire() as connection:
        ids = await connection.fetch(
            "SELECT token_id FROM access_revoked_tokens "
            "WHERE expires_at > now() - interval '1 minute'"
        )
        cutoffs = await connection.fetch("SELECT subject, not_before FROM access_subject_cutoffs")
    return Revocations(
        token_ids=frozenset(row["token_id"] for row in ids),
        cutoffs={row["subject"]: row["not_before"].astimezone(UTC) for row in cutoffs},
    )


@dataclass(frozen=True, slots=True)
class AccessChangeQuery:
    """Which changes: by who made them, whom or what they were about, kind and time."""

    actor: str | None = None
    subject: str | None = None
    action: str | None = None
    occurred_from: datetime | None = None
    occurred_until: datetime | None = None


async def access_changes(
    pool: asyncpg.Pool, query: AccessChangeQuery, *, limit: int
) -> list[dict[str, Any]]:
    """Matching changes to people and machine tokens, newest first."""
    rows = await pool.fetch(
        """
        SELECT occurred_at, actor, action, subject, detail
          FROM access_changes
         WHERE ($1::text IS NULL OR actor = $1)
           AND ($2::text IS NULL OR subject = $2)
           AND ($3::text IS NULL OR action = $3)
           AND ($4::timestamptz IS NULL OR occurred_at >= $4)
           AND ($5::timestamptz IS NULL OR occurred_at < $5)
         ORDER BY occurred_at DESC, change_id DESC
         LIMIT $6
        """,
        query.actor,
        query.subject,
        query.action,
        query.occurred_from,
        query.occurred_until,
        limit,
    )
    return [{**dict(row), "detail": json.loads(row["detail"])} for row in rows]
