"""`python -m qianliyan.notify.init_stack`: create what the services expect on a running stack.

The compose `init` service runs this once, before the services start: the Kafka topics
(with their dead-letter twins), the photo bucket and the read-model schema. Every step is
idempotent, so a second run changes nothing. It reads the same `NOTIFY_*` variables as
notify itself, so it creates exactly the topics, bucket and schema notify will use.
"""

from __future__ import annotations

import asyncio

from qianliyan.notify.migrations import upgrade
from qianliyan.notify.settings import NotifySettings
from qianliyan.shared.bootstrap import ensure_bucket, ensure_topics


def main() -> None:
    """Create the topics, the bucket and the schema, saying what was created."""
    settings = NotifySettings()

    created = asyncio.run(ensure_topics(settings.kafka))
    print(f"Kafka topics created: {', '.join(created)}" if created else "Kafka topics: all exist")

    bucket = settings.storage.bucket
    made = asyncio.run(ensure_bucket(settings.storage))
    print(f"bucket {bucket}: created" if made else f"bucket {bucket}: exists")

    upgrade(settings.postgres.dsn.get_secret_value())
    print("database schema: at the newest revision")


if __name__ == "__main__":
    main()
