"""Which triage member works which partition of `incidents.reports`, from the members' logs.

Every report of a deployment is on one partition (its area's key), so a test that stops a
member mid-stream must stop the one working that partition, or it stops an idle member
and shows nothing about the handover.
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime

from qianliyan.stack.config import StackConfig
from qianliyan.stack.infra import Service
from tests.integration.topic_reader import read_topic

# A log line's time, in the text format's and the JSON format's asctime.
LOG_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3}")


def log_time_now() -> str:
    """Now, as a log line's time reads (local time, like `logging`'s asctime)."""
    now = datetime.now()  # local, as the services log it
    return f"{now:%Y-%m-%d %H:%M:%S},{now.microsecond // 1000:03d}"


def openings(
    members: list[Service], partition: int | None = None, *, since: str = ""
) -> list[tuple[str, int]]:
    """(time, instance) of every opening of a reports partition (of `partition` only, when
    given; logged at `since` or later, when given) the triage members logged: each logs the
    partitions it is given, at every rebalance, in a log kept across restarts."""
    opened = "grouping of TopicPartition(topic='incidents.reports', partition="
    if partition is not None:
        opened += f"{partition})"
    return [
        (stamp.group(), member.instance)
        for member in members
        for line in member.status().log_path.read_text(encoding="utf-8").splitlines()
        if opened in line and (stamp := LOG_TIME.search(line)) and stamp.group() >= since
    ]


async def settled(members: list[Service], *, since: str, timeout_s: float = 60) -> None:
    """Wait until the group has stopped rebalancing: every member has been given
    partitions since `since` (before the last of them started: one just started may not
    have joined yet, and every member is given its partitions anew when one joins), and
    none opened one anew for three seconds."""
    everyone = {member.instance for member in members}
    async with asyncio.timeout(timeout_s):
        while {instance for _, instance in openings(members, since=since)} != everyone:
            await asyncio.sleep(0.5)
        seen = -1
        while len(openings(members)) != seen:
            seen = len(openings(members))
            await asyncio.sleep(3)


def holder(members: list[Service], partition: int) -> Service:
    """The member that opened `partition` last."""
    found = openings(members, partition)
    assert found, f"no member opened partition {partition}"
    instance = max(found)[1]
    return next(member for member in members if member.instance == instance)


async def area_partition(config: StackConfig) -> int:
    """The partition of `incidents.reports` that the suite's reports are on (one sent
    already)."""
    [partition] = {
        record.partition
        for record in await read_topic(config.kafka_bootstrap, "incidents.reports")
        if record.key == b"area:bureau"
    }
    return int(partition)
