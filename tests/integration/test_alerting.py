"""Managers are told where they already are: signed webhooks and e-mail, retried with
backoff, one alert per incident, escalated until someone acknowledges, across restarts."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest

from qianliyan.notify.alerter import Alerter, open_incidents
from qianliyan.notify.domain.outbound import OutboundPolicy
from qianliyan.notify.domain.routing import Routing, parse_routing
from qianliyan.notify.projections.events import project_batch
from qianliyan.notify.rebuild import scratch_schema
from qianliyan.shared import topics
from qianliyan.shared.config_files import WatchedFile
from qianliyan.shared.events import (
    Actor,
    ActorKind,
    AlertRaised,
    AlertRaisedPayload,
    ReportSubmitted,
    ReportSubmittedPayload,
    ReportTriaged,
    ReportTriagedPayload,
    Severity,
)
from qianliyan.shared.kafka import EventPublisher, create_producer
from qianliyan.shared.settings import KafkaSettings
from qianliyan.stack.config import StackConfig
from qianliyan.stack.infra import Service
from tests.integration.alert_receivers import (
    MailBox,
    WebhookReceiver,
    alert_detail,
    alert_known,
    free_port,
    new_secret,
    routing_in_force,
    use_routing,
)
from tests.integration.clients import as_suite, as_user, override_severity, submit
from tests.integration.topic_reader import create_topics, wait_for

pytestmark = pytest.mark.integration


def routing_for(unit: str, *, recipients: str, escalation: str, delivery: str = "") -> str:
    """A routing file whose one route concerns only this test's unit."""
    return f"""\
version: "test-{uuid4().hex[:8]}"
timezone: Asia/Shanghai
{delivery}
recipients:
{recipients}
routes:
  - id: test-route
    min_severity: major
    units: ["{unit}"]
    escalation:
{escalation}
"""


def webhook_recipient(hooks: WebhookReceiver, secret: str, recipient: str) -> str:
    """A routing file's recipient whose one channel is `hooks`' webhook of that name."""
    return f"""\
  - id: {recipient}
    name: {recipient}
    channels:
      - webhook: "{hooks.url(recipient)}"
        secret: "{secret}"
"""


def version_of(text: str) -> str:
    return text.split('"')[1]


async def report(config: StackConfig, unit: str, text: str) -> str:
    answer = await submit(config, {"text": text, "unit": unit, "place": "3站台"}, [])
    assert answer.status_code == 202, answer.text
    report_id: str = answer.json()["report_id"]
    return report_id


async def first_report(config: StackConfig, unit: str, text: str) -> str:
    """Report, and wait for the incident it opens (its id is the first report's)."""
    incident_id = await report(config, unit, text)
    await alert_known(config, incident_id)
    return incident_id


async def test_an_alert_reaches_webhook_and_email_once_retried_and_recorded(
    running_stack: StackConfig,
) -> None:
    config = running_stack
    unit = f"报警站{uuid4().hex[:6]}"
    secret = new_secret()
    dead_port = free_port()  # nothing listens there: this channel keeps failing
    async with WebhookReceiver(secret, fail_first=2) as hooks:
        with MailBox() as mail:
            text = routing_for(
                unit,
                delivery="delivery: {max_attempts: 3, first_retry: 1s, max_retry: 2s, timeout: 5s}",
                recipients=f"""\
  - id: station-duty
    name: 站值班员
    channels:
      - id: wecom
        webhook: "{hooks.url("duty")}"
        secret: "{secret}"
      - id: email
        apprise: "{mail.apprise_url("duty@example.org")}"
      - id: broken
        webhook: "http://127.0.0.1:{dead_port}/hook"
        secret: "{secret}"
""",
                escalation="""\
      - after: 0s
        notify: [station-duty]
""",
            )
            await use_routing(config, text, version_of(text))
            incident_id = await first_report(config, unit, "3站台冒烟，有焦味")

            def outcomes(detail: dict[str, Any]) -> dict[str, tuple[str, int]]:
                return {d["channel"]: (d["outcome"], d["attempts"]) for d in detail["deliveries"]}

            async def settled() -> dict[str, Any] | None:
                detail = await alert_detail(config, incident_id)
                done = {"delivered", "failed"}
                found = outcomes(detail)
                ok = len(found) == 3 and all(o in done for o, _ in found.values())
                return detail if ok else None

            detail = await wait_for(settled, timeout_s=60)
            assert outcomes(detail) == {
                "wecom": ("delivered", 3),  # two 503s, then accepted
                "email": ("delivered", 1),
                "broken": ("failed", 3),  # gave up after max_attempts, and said why
            }
            by_channel = {d["channel"]: d for d in detail["deliveries"]}
            assert "ConnectError" in by_channel["broken"]["last_error"]
            # Named as the routing file in force names them, for the dispatcher to call.
            assert {d["recipient_name"] for d in detail["deliveries"]} == {"站值班员"}
            # The failing channel did not hold the others back.
            assert by_channel["email"]["updated_at"] < by_channel["broken"]["updated_at"]

            # Every attempt carried the same webhook-id and a valid signature.
            assert [h.answered for h in hooks.hits] == [503, 503, 200]
            assert len({h.webhook_id for h in hooks.hits}) == 1
            [delivered] = hooks.accepted("duty")
            assert delivered.document is not None
            assert delivered.document["incident_id"] == incident_id
            assert delivered.document["severity"] == "critical"
            assert delivered.document["title"] == f"[紧急] {unit} · 3站台"
            assert delivered.document["link"].endswith(f"/dispatch?alert={incident_id}")
            # Backoff: the retries waited, first about 1s then about 2s (less a fifth).
            gaps = [b.at - a.at for a, b in zip(hooks.hits, hooks.hits[1:], strict=False)]
            assert gaps[0] >= 0.8 and gaps[1] >= 1.6, gaps

            [email] = mail.messages
            assert email["To"] == "duty@example.org"
            assert email["Subject"] == f"[紧急] {unit} · 3站台"
            body = email.get_body(preferencelist=("plain",))
            assert body is not None and "3站台冒烟" in body.get_content()

            kinds = [t["event_type"] for t in detail["timeline"]]
            assert kinds.count("AlertRaised") == 1
            assert kinds.count("AlertDelivered") == 2
            assert kinds.count("AlertDeliveryFailed") == 5  # two for wecom, three for broken
            [alert] = detail["alerts"]
            assert alert["route"] == "test-route" and alert["step"] == 0

            async with httpx.AsyncClient(headers=as_suite(config)) as client:
                status = await client.get(
                    f"http://127.0.0.1:{config.ingest_port}/v1/reports/{incident_id}"
                )
            assert status.json()["status"] == "alerted"  # the reporter sees it was passed on

            # A second report joins the incident: the alert is updated, nobody is paged again.
            second = await report(config, unit, "3站台冒烟越来越大")

            async def joined() -> bool:
                grown = await alert_detail(config, incident_id)
                return second in {r["report_id"] for r in grown["reports"]}

            await wait_for(joined)
            await asyncio.sleep(3)  # a few alerter moments
            assert len(hooks.hits) == 3 and len(mail.messages) == 1
            again = await alert_detail(config, incident_id)
            assert len(again["alerts"]) == 1 and again["report_count"] == 2


async def test_escalation_fires_on_time_survives_a_restart_and_stops_on_acknowledgement(
    running_stack: StackConfig,
) -> None:
    config = running_stack
    unit = f"升级站{uuid4().hex[:6]}"
    secret = new_secret()

    async with WebhookReceiver(secret) as hooks:
        text = routing_for(
            unit,
            recipients="".join(
                webhook_recipient(hooks, secret, name) for name in ("duty", "chief", "director")
            ),
            escalation="""\
      - after: 0s
        notify: [duty]
      - after: 8s
        notify: [chief]
      - after: 25s
        notify: [director]
""",
        )
        await use_routing(config, text, version_of(text))
        incident_id = await first_report(config, unit, "3站台火灾")
        await wait_for(lambda: _some(hooks.accepted("duty")), timeout_s=30)
        raised_at = datetime.fromisoformat(
            (await alert_detail(config, incident_id))["alerts"][0]["raised_at"]
        ).timestamp()

        # Notify goes down before the next step is due, and comes back after it.
        notify = Service(config, "notify")
        notify.stop()
        await asyncio.sleep(max(0.0, raised_at + 9 - time.time()))
        notify.start()
        [chief] = await wait_for(lambda: _some(hooks.accepted("chief")), timeout_s=30)
        assert chief.at >= raised_at + 8  # not before its time
        assert chief.document is not None and chief.document["step"] == 1
        assert chief.document["title"].startswith("【升级1】")

        # Two dispatchers acknowledge at once: one wins, the other is told it changed.
        async def escalated() -> dict[str, Any] | None:
            detail = await alert_detail(config, incident_id)
            return detail if detail["alert_step"] == 1 else None

        detail = await wait_for(escalated)
        answers = await asyncio.gather(
            *(_act(config, incident_id, detail["version"], who) for who in ("调度员甲", "调度员乙"))
        )
        assert sorted(a.status_code for a in answers) == [202, 409]

        # The director's step would be due at +25s; acknowledged, it never comes.
        await asyncio.sleep(max(0.0, raised_at + 28 - time.time()))
        assert hooks.accepted("director") == []
        assert len(hooks.accepted("duty")) == 1 and len(hooks.accepted("chief")) == 1
        final = await alert_detail(config, incident_id)
        assert final["status"] == "acknowledged"
        assert final["alerts"][0]["step"] == 1
        escalations = [t for t in final["timeline"] if t["event_type"] == "AlertEscalated"]
        assert [t["detail"]["step"] for t in escalations] == [1]


async def test_an_alert_grown_critical_tells_again_those_told_it_was_major(
    running_stack: StackConfig,
) -> None:
    config = running_stack
    unit = f"加重站{uuid4().hex[:6]}"
    secret = new_secret()
    async with WebhookReceiver(secret) as hooks:
        text = f"""\
version: "test-{uuid4().hex[:8]}"
timezone: Asia/Shanghai
recipients:
{webhook_recipient(hooks, secret, "duty")}{webhook_recipient(hooks, secret, "chief")}
routes:
  - id: test-critical
    min_severity: critical
    units: ["{unit}"]
    escalation:
      - after: 0s
        notify: [duty, chief]
  - id: test-major
    min_severity: major
    units: ["{unit}"]
    escalation:
      - after: 0s
        notify: [duty]
"""
        await use_routing(config, text, version_of(text))
        incident_id = await first_report(config, unit, "3站台积水")
        [major] = await wait_for(lambda: _some(hooks.accepted("duty")), timeout_s=30)
        assert major.document is not None and major.document["severity"] == "major"
        assert not major.document["upgraded"]

        # The dispatcher sees it is worse than the rules said: critical now.
        await _set_severity(config, incident_id, "critical")

        async def told_twice() -> list[Any] | None:
            return hooks.accepted("duty")[1:] or None

        [critical] = await wait_for(told_twice, timeout_s=30)
        assert critical.document is not None and critical.document["severity"] == "critical"
        assert critical.document["upgraded"]
        assert critical.document["title"].startswith("【级别上调】[紧急]")
        assert critical.webhook_id == f"{major.webhook_id}:critical"  # new, not a repeat
        [chief] = await wait_for(lambda: _some(hooks.accepted("chief")), timeout_s=30)
        assert chief.document is not None and chief.document["severity"] == "critical"

        async def recorded() -> dict[str, Any] | None:
            detail = await alert_detail(config, incident_id)
            told = {(d["recipient"], d["severity"], d["outcome"]) for d in detail["deliveries"]}
            expected = {("duty", "critical", "delivered"), ("chief", "critical", "delivered")}
            return detail if told == expected else None

        # Each step's row shows its most severe level; the timeline keeps both of the desk's.
        detail = await wait_for(recorded, timeout_s=30)
        desk = [
            t
            for t in detail["timeline"]
            if t["event_type"] == "AlertDelivered" and t["detail"]["recipient"] == "duty"
        ]
        assert [t["detail"]["severity"] for t in desk] == ["major", "critical"]
        [alert] = detail["alerts"]
        assert (alert["severity"], alert["upgraded_to"]) == ("major", "critical")
        [upgrade] = [t for t in detail["timeline"] if t["event_type"] == "AlertUpgraded"]
        assert upgrade["detail"]["severity"] == "critical"
        assert upgrade["detail"]["route"] == "test-critical"

        # Made milder again: nobody is told of that, and nothing is told twice.
        await _set_severity(config, incident_id, "major")

        async def milder() -> bool:
            severity: str = (await alert_detail(config, incident_id))["severity"]
            return severity == "major"

        await wait_for(milder)
        await asyncio.sleep(3)  # a few alerter moments
        assert len(hooks.accepted("duty")) == 2 and len(hooks.accepted("chief")) == 1
        kinds = [t["event_type"] for t in (await alert_detail(config, incident_id))["timeline"]]
        assert kinds.count("AlertUpgraded") == 1


async def _set_severity(config: StackConfig, incident_id: str, severity: str) -> None:
    """A dispatcher sets the severity on the version they see, and reloads to decide again
    when the incident moved on meanwhile (its submission projected after its triage)."""
    for _ in range(10):
        version = (await alert_detail(config, incident_id))["version"]
        answer = await override_severity(config, incident_id, version, severity, "调度员甲")
        if answer.status_code != 409:
            assert answer.status_code == 202, answer.text
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"the incident kept changing: {answer.text}")


async def _some(items: list[Any]) -> list[Any] | None:
    return items or None


async def _act(
    config: StackConfig, incident_id: str, version: int, dispatcher: str
) -> httpx.Response:
    async with httpx.AsyncClient(headers=as_user(config, dispatcher, "dispatcher")) as client:
        return await client.post(
            f"http://127.0.0.1:{config.notify_port}/v1/incidents/{incident_id}/actions",
            json={"action": "acknowledge", "expected_version": version},
        )


def both_told_at_once(
    tmp_path: Path, unit: str, hooks: WebhookReceiver, secret: str, first: str, second: str
) -> Path:
    """A routing file whose one step tells two webhook recipients of `unit` at once."""
    routing_file = tmp_path / "routing.yaml"
    routing_file.write_text(
        routing_for(
            unit,
            recipients=webhook_recipient(hooks, secret, first)
            + webhook_recipient(hooks, secret, second),
            escalation=f"      - after: 0s\n        notify: [{first}, {second}]\n",
        ),
        encoding="utf-8",
    )
    return routing_file


@asynccontextmanager
async def alerter_alone(
    infra: StackConfig, routing_file: Path, *, max_parallel: int = 20
) -> AsyncIterator[tuple[Alerter, asyncpg.Pool]]:
    """An alerter of the test's own over a scratch schema's read models, its routing in
    `routing_file`, its decisions published to a topic no projection reads: the services'
    alerter and projection never see its incidents."""
    kafka = KafkaSettings(bootstrap_servers=infra.kafka_bootstrap)
    topic = f"test.alerts.{uuid4().hex[:8]}"
    await create_topics(kafka.bootstrap_servers, topic)
    routing = WatchedFile[Routing](
        routing_file,
        partial(parse_routing, outbound=OutboundPolicy.from_entries(["127.0.0.1"])),
        what="routing",
    )
    async with scratch_schema(infra.postgres_dsn, "alerter") as dsn:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
        assert pool is not None
        producer = create_producer(kafka, client_id="test-alerter")
        await producer.start()
        try:
            yield (
                Alerter(
                    pool=pool,
                    publisher=EventPublisher(producer, timeout_s=10),
                    topic=topic,
                    routing=routing,
                    public_url=None,
                    max_parallel=max_parallel,
                ),
                pool,
            )
        finally:
            await producer.stop()
            await pool.close()


async def alerted(pool: asyncpg.Pool, incident_id: UUID, unit: str) -> None:
    """A major incident of `unit` whose alert was raised just now, at step 0."""
    now = datetime.now(UTC)
    await pool.execute(
        "INSERT INTO incidents (incident_id, version, rule_severity, unit, place, "
        "last_received_at, report_count, photo_count) "
        "VALUES ($1, 1, 'major', $2, '3站台', $3, 1, 0)",
        incident_id,
        unit,
        now,
    )
    await pool.execute(
        "INSERT INTO alerts (incident_id, round, raised_at, severity, route, routing_version, "
        "unit, place) VALUES ($1, 0, $2, 'major', 'test-route', 'test', $3, '3站台')",
        incident_id,
        now,
        unit,
    )


@asynccontextmanager
async def running(alerter: Alerter) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(alerter.run(stop, interval_s=0.2))
    try:
        yield
    finally:
        stop.set()
        await task


async def test_a_delivery_waiting_for_a_slot_is_claimed_only_with_it_and_not_after_acknowledgement(
    infra: StackConfig, tmp_path: Path
) -> None:
    """With every slot taken (here the one, by a channel slow to answer), a delivery waits
    unclaimed, so no lease can run out while it waits and a later moment send it twice;
    and once it has a slot it is planned again, so an incident acknowledged meanwhile is
    told nothing more."""
    incident_id, unit, secret = uuid4(), f"排队站{uuid4().hex[:6]}", new_secret()
    async with WebhookReceiver(secret, hold_s={"slow": 3.0}) as hooks:
        routing_file = both_told_at_once(tmp_path, unit, hooks, secret, "slow", "duty")
        async with alerter_alone(infra, routing_file, max_parallel=1) as (alerter, pool):
            await alerted(pool, incident_id, unit)
            async with running(alerter):
                await wait_for(lambda: _some(hooks.arrived), timeout_s=30)
                assert hooks.arrived == ["slow"]  # holding the only slot for 3 s
                await asyncio.sleep(1)  # five moments while "duty" waits
                claimed = await pool.fetch(
                    "SELECT recipient FROM delivery_claims WHERE incident_id = $1", incident_id
                )
                assert [r["recipient"] for r in claimed] == ["slow"], "claimed while waiting"
                await pool.execute(
                    "UPDATE incidents SET status = 'acknowledged' WHERE incident_id = $1",
                    incident_id,
                )
                await wait_for(lambda: _some(hooks.accepted("slow")), timeout_s=30)
                await asyncio.sleep(1.5)  # "duty" has the slot now, and would be told at once
    assert hooks.arrived == ["slow"], "told after the incident was acknowledged"


async def test_a_delivery_recorded_under_a_channel_s_place_in_the_list_is_not_sent_again(
    infra: StackConfig, tmp_path: Path
) -> None:
    """Releases before named a channel without an id by its place (`webhook-0`); its
    deliveries count as its deliveries under the name it has now, so upgrading tells
    nobody again. (Another recipient, told for the first time, shows the moments ran.)"""
    incident_id, unit, secret = uuid4(), f"升级站{uuid4().hex[:6]}", new_secret()
    async with WebhookReceiver(secret) as hooks:
        routing_file = both_told_at_once(tmp_path, unit, hooks, secret, "duty", "chief")
        async with alerter_alone(infra, routing_file) as (alerter, pool):
            await alerted(pool, incident_id, unit)
            await pool.execute(
                "INSERT INTO delivery_claims (incident_id, round, step, recipient, channel, "
                "severity, attempts, claimed_until, settled) "
                "VALUES ($1, 0, 0, 'duty', 'webhook-0', 'major', 1, now(), true)",
                incident_id,
            )
            async with running(alerter):
                await wait_for(lambda: _some(hooks.accepted("chief")), timeout_s=30)
                await asyncio.sleep(1)  # five moments more
    assert hooks.arrived == ["chief"]


async def test_a_report_of_another_unit_captured_earlier_leaves_the_alert_on_its_route(
    running_stack: StackConfig,
) -> None:
    """Raised on the route of the first report's unit; then a report of another unit,
    captured earlier at the same spot, joins and becomes the incident's earliest. The
    route's next step still reaches its chief: the alert does not move midway to a route
    of the other unit (here none)."""
    config = running_stack
    unit, other = f"改道站{uuid4().hex[:6]}", f"邻站{uuid4().hex[:6]}"
    spot = {"lat": 30 + random.random(), "lon": 100 + random.random()}  # nobody else's
    secret = new_secret()
    async with WebhookReceiver(secret) as hooks:
        text = routing_for(
            unit,
            recipients=webhook_recipient(hooks, secret, "duty")
            + webhook_recipient(hooks, secret, "chief"),
            escalation="""\
      - after: 0s
        notify: [duty]
      - after: 15s
        notify: [chief]
""",
        )
        await use_routing(config, text, version_of(text))
        first = await submit(config, {"text": "道岔区冒烟", "unit": unit, "location": spot}, [])
        incident_id = first.json()["report_id"]
        await wait_for(lambda: _some(hooks.accepted("duty")), timeout_s=30)

        captured = datetime.now(UTC) - timedelta(minutes=5)
        joining = {"text": "道岔冒烟", "unit": other, "location": spot}
        second = await submit(config, joining | {"occurred_at": captured.isoformat()}, [])
        assert second.status_code == 202, second.text

        async def joined() -> dict[str, Any] | None:
            detail = await alert_detail(config, incident_id)
            return detail if detail["unit"] == other else None

        detail = await wait_for(joined, timeout_s=30)
        assert sorted(detail["units"]) == sorted([unit, other])
        assert detail["alert_step"] == 0, "joined after the chief's step: this shows nothing"
        [chief] = await wait_for(lambda: _some(hooks.accepted("chief")), timeout_s=30)
        assert chief.document is not None and chief.document["step"] == 1
        # It names the unit the chief was chosen for, not the incident's unit now, and
        # quotes that unit's report.
        assert chief.document["unit"] == unit
        assert unit in chief.document["title"] and other not in chief.document["title"]
        assert chief.document["body"].startswith("道岔区冒烟"), chief.document["body"]


async def test_a_report_captured_days_ago_that_arrives_now_pages(
    running_stack: StackConfig,
) -> None:
    # A phone offline in a tunnel for two days, or one whose clock reset: what reaches
    # ingest now is news. Once, only the capture time counted, and this paged nobody.
    config = running_stack
    unit = f"隧道站{uuid4().hex[:6]}"
    secret = new_secret()
    async with WebhookReceiver(secret) as hooks:
        text = routing_for(
            unit,
            recipients=webhook_recipient(hooks, secret, "duty"),
            escalation="""\
      - after: 0s
        notify: [duty]
""",
        )
        await use_routing(config, text, version_of(text))
        captured = datetime.now(UTC) - timedelta(days=2)
        answer = await submit(
            config,
            {"text": "3站台冒烟", "unit": unit, "occurred_at": captured.isoformat()},
            [],
        )
        assert answer.status_code == 202, answer.text
        incident_id = answer.json()["report_id"]
        [paged] = await wait_for(lambda: _some(hooks.accepted("duty")), timeout_s=30)
        assert paged.document is not None
        assert paged.document["incident_id"] == incident_id
        # The screen still says when it was seen in the field.
        detail = await alert_detail(config, incident_id)
        shown = datetime.fromisoformat(detail["last_report_at"])
        assert abs(shown - captured) < timedelta(seconds=1)


async def test_the_alerter_asks_after_reopened_incidents_however_old_their_reports(
    infra: StackConfig,
) -> None:
    """The horizon (`max_age`) keeps re-triaged history quiet; a reopening is news."""
    now = datetime.now(UTC)
    long_ago = now - timedelta(days=3)
    async with scratch_schema(infra.postgres_dsn, "alerter") as dsn:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
        assert pool is not None
        try:
            rows = [  # (round, last report received)
                (uuid4(), 0, long_ago),  # history re-triaged
                (uuid4(), 1, long_ago),  # resolved long ago, reopened today
                (uuid4(), 0, now),  # a report just in
            ]
            await pool.executemany(
                "INSERT INTO incidents (incident_id, version, rule_severity, alert_round, "
                "last_received_at, report_count, photo_count) "
                "VALUES ($1, 1, 'major', $2, $3, 1, 0)",
                rows,
            )
            found = await open_incidents(
                pool, received_since=now - timedelta(hours=24), report_wait=timedelta(seconds=5)
            )
        finally:
            await pool.close()
    assert sorted(incident.incident_id for incident in found) == sorted([rows[1][0], rows[2][0]])


def critical_report(
    now: datetime, *, unit: str, place: str
) -> tuple[ReportSubmitted, ReportTriaged]:
    """A report of smoke at `place`, and triage's decision on it: critical, its own
    incident; both as the services would publish them, for a test to publish in its order."""
    report_id = uuid4()
    submitted = ReportSubmitted.first(
        key=str(report_id),
        actor=Actor(kind=ActorKind.REPORTER, id="w-1"),
        payload=ReportSubmittedPayload(
            report_id=report_id,
            text=f"{place}冒烟",
            unit=unit,
            place=place,
            captured_at=now,
            received_at=now,
        ),
    )
    triaged = ReportTriaged.caused_by(
        submitted,
        key=str(report_id),
        actor=Actor(kind=ActorKind.SERVICE, id="triage"),
        payload=ReportTriagedPayload(
            report_id=report_id,
            incident_id=report_id,
            severity=Severity.CRITICAL,
            rule_set_version="early",
            reasons=[],
            captured_at=now,
        ),
    )
    return submitted, triaged


async def test_the_alerter_sees_which_incidents_still_wait_for_their_reports(
    infra: StackConfig,
) -> None:
    """Triage's decision can be read before the report it is about: until the report is
    read, the alerter learns when that triage was made, and so how long to wait."""
    now = datetime.now(UTC)
    submitted, triaged = critical_report(now, unit="等待站", place="4站台")
    report_id = submitted.payload.report_id
    second_id = uuid4()
    second = ReportTriaged.caused_by(
        submitted,
        key=str(second_id),
        actor=Actor(kind=ActorKind.SERVICE, id="triage"),
        payload=triaged.payload.model_copy(
            update={"report_id": second_id, "captured_at": now + timedelta(seconds=2)}
        ),
    ).model_copy(update={"occurred_at": triaged.occurred_at + timedelta(seconds=3)})
    raised = AlertRaised.first(
        key=str(report_id),
        actor=Actor(kind=ActorKind.SERVICE, id="notify"),
        payload=AlertRaisedPayload(
            incident_id=report_id,
            round=0,
            severity=Severity.CRITICAL,
            unit="等待站",
            place="4站台",
            route="r",
            routing_version="r1",
        ),
    )
    async with scratch_schema(infra.postgres_dsn, "waiting") as dsn:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
        assert pool is not None

        async def seen() -> tuple[datetime | None, str | None]:
            [incident] = await open_incidents(
                pool, received_since=now - timedelta(hours=1), report_wait=timedelta(seconds=5)
            )
            return incident.awaiting_report_since, incident.unit

        try:
            await project_batch(pool, [triaged])
            assert await seen() == (triaged.occurred_at, None)
            await project_batch(pool, [submitted])
            assert await seen() == (None, "等待站")
            # A second report's triage read before it: counted from the first triage, so a
            # burst of such reports holds the alert no longer than the first would.
            await project_batch(pool, [second])
            assert await seen() == (triaged.occurred_at, "等待站")
            # What came in last is the unread report, by its capture time until it is read.
            [incident] = await open_incidents(
                pool, received_since=now - timedelta(hours=1), report_wait=timedelta(seconds=5)
            )
            assert incident.last_received_at == now + timedelta(seconds=2)
            # Not refreshed for longer than two waits: its first triage is too old to hold
            # anything, and the alerter does not ask.
            await pool.execute("UPDATE incidents SET updated_at = now() - interval '16 seconds'")
            assert await seen() == (None, "等待站")
            # Raised, it waits for nothing any more, whatever its later reports do.
            await project_batch(pool, [raised])
            assert await seen() == (None, "等待站")
        finally:
            await pool.close()


async def test_an_alert_whose_triage_is_read_first_waits_for_the_reports_place(
    running_stack: StackConfig,
) -> None:
    """Notify reads the triage topic beside the reports topic. When a decision comes
    first, the alert waits for the report, so its messages say where and what."""
    config = running_stack
    unit = f"先判站{uuid4().hex[:6]}"
    secret = new_secret()
    submitted, triaged = critical_report(datetime.now(UTC), unit=unit, place="7站台")
    async with WebhookReceiver(secret) as hooks:
        # Only a route that asks nothing of unit or place can take an incident whose
        # report is not read yet; it is put back as it was after, as it takes any alert.
        text = f"""\
version: "test-{uuid4().hex[:8]}"
report_wait: 20s
recipients:
{webhook_recipient(hooks, secret, "duty")}
routes:
  - id: any-critical
    min_severity: critical
    escalation:
      - after: 0s
        notify: [duty]
"""
        async with routing_in_force(config, text):
            await _told_once_the_report_is_read(config, hooks, submitted, triaged)


async def _told_once_the_report_is_read(
    config: StackConfig,
    hooks: WebhookReceiver,
    submitted: ReportSubmitted,
    triaged: ReportTriaged,
) -> None:
    """The alert waits for the report while nobody is told; then it says where."""
    report_id, unit = submitted.payload.report_id, submitted.payload.unit

    def told() -> list[Any]:
        return [
            hit
            for hit in hooks.accepted("duty")
            if hit.document is not None and hit.document["incident_id"] == str(report_id)
        ]

    producer = create_producer(
        KafkaSettings(bootstrap_servers=config.kafka_bootstrap), client_id="early-triage"
    )
    await producer.start()
    try:
        publisher = EventPublisher(producer, timeout_s=10)
        await publisher.publish(topics.TRIAGE, triaged)
        await alert_known(config, str(report_id))
        await asyncio.sleep(3)  # a few alerter moments: nobody is told of "somewhere"
        assert told() == []
        assert (await alert_detail(config, str(report_id)))["alerts"] == []
        await publisher.publish(topics.REPORTS, submitted)
    finally:
        await producer.stop()

    [hit] = await wait_for(lambda: _some(told()), timeout_s=30)
    assert hit.document["title"] == f"[紧急] {unit} · 7站台"
    detail = await alert_detail(config, str(report_id))
    [raised] = [t for t in detail["timeline"] if t["event_type"] == "AlertRaised"]
    assert (raised["detail"]["unit"], raised["detail"]["place"]) == (unit, "7站台")
