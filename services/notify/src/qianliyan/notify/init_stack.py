"""`python -m qianliyan.notify.init_stack`: create what the services expect on a running stack.

The compose `init` service runs this once, before the services start: the Kafka topics
(with their dead-letter twins), the photo bucket, the read-model and access schemas, the
token signing key and, on a first start, an admin whose password it prints once. Every step is
idempotent, so a second run changes nothing. It reads the same `NOTIFY_*` variables as
notify itself, so it creates exactly the topics, bucket and schema notify will use.
"""

from __future__ import annotations

import asyncio

from qianliyan.notify.migrations import upgrade
from qianliyan.notify.settings import NotifySettings
from qianliyan.shared.access import migrations as access_migrations
from qianliyan.shared.access.bootstrap import FIRST_ADMIN, ensure_first_admin, ensure_signing_key
from qianliyan.shared.bootstrap import ensure_bucket, ensure_topics


def main() -> None:
    """Create the topics, the bucket and the schema, saying what was created."""
    settings = NotifySettings()

    created = asyncio.run(ensure_topics(settings.kafka))
    print(f"Kafka topics created: {', '.join(created)}" if created else "Kafka topics: all exist")

    bucket = settings.storage.bucket
    made = asyncio.run(ensure_bucket(settings.storage))
    print(f"bucket {bucket}: created" if made else f"bucket {bucket}: exists")

    dsn = settings.postgres.dsn.get_secret_value()
    upgrade(dsn)
    access_migrations.upgrade(dsn)
    print("database schema: at the newest revision")

    key_file = settings.access.token_key_file
    if key_file is not None and ensure_signing_key(key_file):
        print(f"token signing key: generated in {key_file}")
    password = asyncio.run(ensure_first_admin(dsn))
    if password is not None:
        # Shown once, here, so the first person can sign in and add everyone else.
        print(f"first admin: sign in as '{FIRST_ADMIN}' with the password {password}")


if __name__ == "__main__":
    main()
