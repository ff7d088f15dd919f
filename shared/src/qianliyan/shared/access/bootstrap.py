"""A site's first start: a signing key and a first admin, generated, never shipped.

Both the native stack and compose's `init` step call these; each does nothing when what
it makes is already there.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import asyncpg

from qianliyan.shared.access import store
from qianliyan.shared.access.tokens import generate_signing_key
from qianliyan.shared.secret_files import write_secret

FIRST_ADMIN = "admin"


def ensure_signing_key(path: Path) -> bool:
    """Generate the token signing key at `path` unless one is there; True when generated."""
    if path.exists():
        return False
    write_secret(path, generate_signing_key())
    return True


async def ensure_first_admin(dsn: str) -> str | None:
    """On a site nobody can sign in to yet, add `admin`; its generated password, or None."""
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    assert pool is not None
    try:
        if await pool.fetchval("SELECT count(*) FROM access_users"):
            return None
        password = secrets.token_urlsafe(12)
        await store.create_user(
            pool,
            username=FIRST_ADMIN,
            display_name="Administrator",
            password=password,
            roles=["admin", "ops"],
            units=[],
            created_by="first start",
        )
        return password
    finally:
        await pool.close()
