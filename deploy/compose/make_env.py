"""Write `.env` beside docker-compose.yml with passwords made on this machine.

    python3 deploy/compose/make_env.py && docker compose up --build

Compose reads `.env` for the `${QLY_…}` values in docker-compose.yml, so no password is in
the repository. An existing `.env` is left as it is: its passwords are the ones the data
volumes were created with. Only the standard library is used, as a Docker user may have
nothing else.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

ENV_FILE = Path(__file__).resolve().parents[2] / ".env"
NAMES = ("QLY_POSTGRES_PASSWORD", "QLY_MINIO_ROOT_PASSWORD")


def main() -> int:
    """Create `.env` if it is missing; say what was done."""
    if ENV_FILE.exists():
        print(f"{ENV_FILE} exists; keeping its passwords")
        return 0
    # URL-safe, so the PostgreSQL password can sit in a DSN without quoting.
    lines = [f"{name}={secrets.token_urlsafe(18)}\n" for name in NAMES]
    descriptor = os.open(ENV_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.writelines(lines)
    print(f"wrote {ENV_FILE} with new passwords for PostgreSQL and MinIO")
    return 0


if __name__ == "__main__":
    sys.exit(main())
