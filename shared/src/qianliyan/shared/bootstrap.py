"""Creating what the services expect to exist: topics (with dead-letter twins) and the bucket.

Run by the stack's init step and by the compose `init` service; never left to
auto-creation, so partitions and retention are what the project chose.
"""

from __future__ import annotations

from qianliyan.shared.kafka import ensure_topics
from qianliyan.shared.storage import ensure_bucket

__all__ = ["ensure_bucket", "ensure_topics"]
