"""The ops CLI against the suite's stack: lag, dead letters listed, discarded with a reason,
and re-driven once their cause is fixed, ending in the read models."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import time
import uuid
from datetime import UTC, datetime

import httpx
import psycopg
import pytest
from aiokafka import AIOKafkaProducer
from pydantic import SecretStr
from typer.testing import CliRunner

from qianliyan.ops.cli import app
from qianliyan.shared import dead_letters
from qianliyan.shared.dead_letters import (
    DeadLetterEntry,
    LetterState,
    dead_letter_producer,
    read_letters,
    redrive,
)
from qianliyan.shared.events import (
    Actor,
    ActorKind,
    ReportSubmitted,
    ReportSubmittedPayload,
    encode,
)
from qianliyan.shared.events.codec import headers_for
from qianliyan.stack.config import StackConfig
from qianliyan.stack.infra import Infra, Service
from tests.integration.clients import as_suite, as_user, submit
from tests.integration.topic_reader import broker_serving, create_topics, read_topic

pytestmark = pytest.mark.integration


@pytest.fixture
def cli(running_stack: StackConfig, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """The `qianliyan` command, pointed at the suite's stack as QLY_STACK_* would."""
    for name, value in running_stack:
        if value is not None:
            plain = value.get_secret_value() if isinstance(value, SecretStr) else value
            text = json.dumps(plain) if isinstance(plain, dict) else str(plain)
            monkeypatch.setenv(f"QLY_STACK_{name.upper()}", text)
    for name, value in running_stack.service_env("notify").items():
        monkeypatch.setenv(name, value)
    return CliRunner()


def produce(
    config: StackConfig,
    topic: str,
    value: bytes | None,
    headers: list[tuple[str, bytes]],
    key: bytes = b"ops-test",
) -> None:
    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=config.kafka_bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(topic, value, key=key, headers=headers)
        finally:
            await producer.stop()

    asyncio.run(send())


def notify_has(config: StackConfig, report_id: str) -> bool:
    """Whether notify's read model shows the report."""
    answer = httpx.get(
        f"http://127.0.0.1:{config.notify_port}/v1/reports/{report_id}",
        headers=as_suite(config),
        timeout=5,
    )
    return answer.status_code == 200


def wait_until(check, timeout_s: float = 60.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.5)


def test_lag_shows_each_group_and_partition(cli: CliRunner) -> None:
    result = cli.invoke(app, ["lag", "--watch", "1"])
    assert result.exit_code == 0, result.output
    assert "qianliyan-triage" in result.output and "qianliyan-notify" in result.output
    assert "incidents.reports[0]" in result.output


def test_a_dead_letter_is_listed_then_discarded_with_its_reason(
    running_stack: StackConfig, cli: CliRunner
) -> None:
    marker = uuid.uuid4().hex
    produce(running_stack, "incidents.reports", f"not json {marker}".encode(), [])

    def listed() -> str | None:
        output = cli.invoke(app, ["dlq", "list"]).output
        line = next((ln for ln in output.splitlines() if "incidents.reports.dlq[" in ln), None)
        return output if line and "not JSON" in output else None

    output = wait_until(listed)
    letter = [
        ln.split()[0] for ln in output.splitlines() if ln.startswith("incidents.reports.dlq[")
    ][-1]
    refused = cli.invoke(app, ["dlq", "discard", "--letter", letter, "--reason", " "])
    assert refused.exit_code == 2 and "needs a reason" in refused.output
    # Letters chosen by a phrase are listed and asked about first: a discard is for good.
    declined = cli.invoke(
        app, ["dlq", "discard", "--error-contains", "not JSON", "--reason", "x"], input="n\n"
    )
    assert declined.exit_code == 1, declined.output
    assert f"{letter}  " in declined.output and "nothing done" in declined.output
    assert letter in cli.invoke(app, ["dlq", "list"]).output
    discarded = cli.invoke(
        app, ["dlq", "discard", "--letter", letter, "--reason", "test garbage from a fuzzer"]
    )
    assert discarded.exit_code == 0, discarded.output
    assert letter not in cli.invoke(app, ["dlq", "list"]).output
    everything = cli.invoke(app, ["dlq", "list", "--all"]).output
    assert "discarded" in everything and "test garbage from a fuzzer" in everything
    again = cli.invoke(app, ["dlq", "redrive", "--letter", letter])
    assert again.exit_code == 1, again.output  # never re-driven once discarded, and says why
    assert f"passed over: {letter} is no longer parked (discarded at " in again.output
    assert "0 letter(s) re-driven, 1 passed over" in again.output
    unknown = letter.rpartition("@")[0] + "@999999999"
    nowhere = cli.invoke(app, ["dlq", "redrive", "--letter", unknown])
    assert nowhere.exit_code == 2, nowhere.output
    said = " ".join(nowhere.output.replace("│", " ").split())  # Typer's box, wrapped
    assert f"no dead letter {unknown}" in said


def test_a_redriven_letter_ends_in_the_read_models(
    running_stack: StackConfig, cli: CliRunner
) -> None:
    # A good report parked during an outage (say its database was down): the cause is
    # gone now, and ops send it back.
    report_id = uuid.uuid4()
    now = datetime.now(UTC)
    event = ReportSubmitted.first(
        key=str(report_id),
        actor=Actor(kind=ActorKind.REPORTER, id="w-ops"),
        payload=ReportSubmittedPayload(
            report_id=report_id, text="道口栏杆损坏（重投）", captured_at=now, received_at=now
        ),
    )
    parked = [
        *headers_for(event),
        ("dlq.error", b"OperationalError: the database was down"),
        ("dlq.origin.topic", b"incidents.reports"),
        ("dlq.origin.partition", b"0"),
        ("dlq.origin.offset", b"0"),
        ("dlq.consumer_group", b"qianliyan-notify"),
    ]
    produce(running_stack, "incidents.reports.dlq", encode(event), parked, event.key.encode())
    listed = wait_until(
        lambda: "database was down" in (out := cli.invoke(app, ["dlq", "list"]).output) and out
    )
    assert "type=ReportSubmitted" in listed
    result = cli.invoke(app, ["dlq", "redrive", "--error-contains", "the database was down"])
    assert result.exit_code == 0, result.output
    assert "1 letter(s) re-driven" in result.output

    def projected() -> bool:
        answer = httpx.get(
            f"http://127.0.0.1:{running_stack.notify_port}/v1/reports/{report_id}",
            headers=as_suite(running_stack),
            timeout=5,
        )
        return answer.status_code == 200 and answer.json()["severity"] is not None

    wait_until(projected)
    assert "database was down" not in cli.invoke(app, ["dlq", "list"]).output
    assert "redriven" in cli.invoke(app, ["dlq", "list", "--all"]).output


def test_a_redrive_that_dies_between_its_two_writes_sends_the_letter_once(
    running_stack: StackConfig, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A letter parked on a topic nobody consumes, so every copy sent back stays countable.
    origin = f"ops-test-{uuid.uuid4().hex[:8]}"
    value = f"letter {uuid.uuid4().hex}".encode()
    parked = [
        ("dlq.error", b"ValueError: a bug since fixed"),
        ("dlq.origin.topic", origin.encode()),
    ]
    bootstrap = running_stack.kafka_bootstrap
    asyncio.run(create_topics(bootstrap, origin))
    produce(running_stack, "incidents.reports.dlq", value, parked)

    async def the_letter() -> DeadLetterEntry:
        letters = await read_letters(bootstrap, ["incidents.reports"])
        [letter] = [x for x in letters if x.value == value]
        return letter

    async def copies_sent_back() -> int:
        return sum(r.value == value for r in await read_topic(bootstrap, origin))

    async def fails_before_marking(*_: object, **__: object) -> None:
        raise ConnectionError("the ops machine lost its network")

    async def redrive_failing_midway() -> None:
        letter = await the_letter()
        producer = dead_letter_producer(bootstrap)
        await producer.start()
        try:
            with monkeypatch.context() as patch:
                patch.setattr(dead_letters, "_mark", fails_before_marking)
                with pytest.raises(ConnectionError):
                    await redrive(producer, letter, by="tests")
        finally:
            await producer.stop()
        assert await copies_sent_back() == 0
        assert (await the_letter()).state is LetterState.PARKED

    asyncio.run(redrive_failing_midway())

    # A run killed after its first write: its transaction is left open, not aborted.
    async def killed_after_sending() -> AIOKafkaProducer:
        letter = await the_letter()
        producer = dead_letter_producer(bootstrap)
        await producer.start()
        await producer.begin_transaction()
        await producer.send_and_wait(
            letter.origin_topic, letter.value, key=letter.key, headers=letter.original_headers()
        )
        return producer

    killed = asyncio.run(killed_after_sending())
    result = cli.invoke(app, ["dlq", "redrive", "--error-contains", "a bug since fixed"])
    assert result.exit_code == 0, result.output
    assert "1 letter(s) re-driven" in result.output
    assert asyncio.run(copies_sent_back()) == 1
    assert asyncio.run(the_letter()).state is LetterState.REDRIVEN
    del killed  # fenced by the run after it; its connections went with its event loop


def test_a_letter_another_run_acted_on_while_the_operator_was_asked_is_passed_over(
    running_stack: StackConfig, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    phrase = f"a schema bug {uuid.uuid4().hex[:8]}"
    parked = [("dlq.error", f"ValueError: {phrase}".encode())]
    produce(running_stack, "incidents.reports.dlq", f"letter {phrase}".encode(), parked)
    bootstrap = running_stack.kafka_bootstrap

    async def redriven_by_a_colleague() -> None:
        [letter] = [
            x for x in await read_letters(bootstrap, ["incidents.reports"]) if phrase in x.error
        ]
        producer = dead_letter_producer(bootstrap)
        await producer.start()
        try:
            await redrive(producer, letter, by="a colleague")
        finally:
            await producer.stop()

    def asked(*_: object, **__: object) -> bool:
        asyncio.run(redriven_by_a_colleague())  # while this operator reads the list
        return True

    monkeypatch.setattr("typer.confirm", asked)
    result = cli.invoke(app, ["dlq", "discard", "--error-contains", phrase, "--reason", "junk"])
    assert result.exit_code == 0, result.output
    [name] = [ln.split()[0] for ln in result.output.splitlines() if phrase in ln]
    assert f"passed over: {name} is no longer parked (redriven at " in result.output
    assert "by a colleague)" in result.output
    assert "0 letter(s) discarded, 1 passed over" in result.output
    listed = cli.invoke(app, ["dlq", "list", "--all"]).output.splitlines()
    at = next(i for i, line in enumerate(listed) if line.startswith(f"{name} "))
    shown = [listed[at], *itertools.takewhile(lambda ln: ln.startswith("    "), listed[at + 1 :])]
    assert shown[0].split()[1] == "redriven", shown
    assert any(ln.strip().startswith("redriven at") and "by a colleague" in ln for ln in shown)


def test_the_demo_sends_reports_with_photos(running_stack: StackConfig, cli: CliRunner) -> None:
    result = cli.invoke(app, ["demo", "--reports", "3"])
    assert result.exit_code == 0, result.output
    assert result.output.count("sent   ") == 3, result.output
    assert f"127.0.0.1:{running_stack.notify_port}/dispatch" in result.output


def test_replay_from_a_time_starts_at_the_first_record_after_it(
    running_stack: StackConfig, cli: CliRunner
) -> None:
    config = running_stack
    asyncio.run(submit(config, {"text": "回放之前的报告", "place": "回放点"}, []))
    time.sleep(1.5)
    moment = datetime.now(UTC)
    time.sleep(1.5)
    after = asyncio.run(submit(config, {"text": "回放之后的报告", "place": "回放点"}, []))
    report_id = after.json()["report_id"]
    [record] = [
        r
        for r in asyncio.run(read_topic(config.kafka_bootstrap, "incidents.reports"))
        if report_id.encode() in (r.value or b"")
    ]
    result = cli.invoke(app, ["replay", "notify", "--from", moment.isoformat()])
    assert result.exit_code == 0, result.output
    expected = f"qianliyan-notify incidents.reports[{record.partition}] -> {record.offset}"
    assert expected in result.output
    # Notify is back, replays idempotently, and serves what it had.
    assert wait_until(lambda: notify_has(config, report_id))
    bad = cli.invoke(app, ["replay", "notify", "--from", "yesterday"])
    assert (bad.exit_code == 2 and "ISO" not in bad.output) or "time" in bad.output


def test_replay_past_records_not_read_yet_is_refused_unless_asked_for(
    running_stack: StackConfig, cli: CliRunner
) -> None:
    # Moving notify to the end while a report waits unread would leave it off the feed
    # for good: a replay is for reading again, not for skipping.
    config = running_stack
    notify = Service(config, "notify")
    notify.stop()
    try:
        waiting = asyncio.run(submit(config, {"text": "重放时未读的报告", "place": "回放点"}, []))
        assert waiting.status_code == 202, waiting.text
        refused = cli.invoke(app, ["replay", "notify", "--from", "end"])
        assert refused.exit_code == 1, refused.output
        said = " ".join(refused.output.split())
        assert "refused: moving qianliyan-notify there would skip" in said
        assert "give --skip-unread to do that all the same" in said
        assert not notify.status().running, "a replay starts only what it stopped"
    finally:
        notify.start()
    # Nothing was moved: the waiting report reaches notify's read model.
    assert wait_until(lambda: notify_has(config, waiting.json()["report_id"]))


def test_as_of_answers_how_an_incident_stood_back_then(
    running_stack: StackConfig, cli: CliRunner
) -> None:
    config = running_stack
    answer = asyncio.run(
        submit(config, {"text": "站台冒烟", "place": f"回看{uuid.uuid4().hex[:6]}"}, [])
    )
    incident_id = answer.json()["report_id"]
    base = f"http://127.0.0.1:{config.notify_port}/v1/incidents/{incident_id}"
    wait_until(
        lambda: httpx.get(base, headers=as_suite(running_stack), timeout=5).status_code == 200
    )
    time.sleep(1.5)
    moment = datetime.now(UTC)
    time.sleep(1.5)
    version = httpx.get(base, headers=as_suite(running_stack), timeout=5).json()["version"]
    acted = httpx.post(
        f"{base}/actions",
        json={"action": "acknowledge", "expected_version": version},
        headers=as_user(config, "调度员丁", "dispatcher"),
        timeout=10,
    )
    assert acted.status_code == 202, acted.text
    wait_until(
        lambda: (
            httpx.get(base, headers=as_suite(running_stack), timeout=5).json()["status"]
            == "acknowledged"
        )
    )

    then = cli.invoke(app, ["as-of", moment.isoformat(), "--incident", incident_id])
    assert then.exit_code == 0, then.output
    state = json.loads(then.stdout)  # the progress bar goes to stderr
    assert state["incident"]["status"] == "open"
    now = cli.invoke(app, ["as-of", datetime.now(UTC).isoformat(), "--incident", incident_id])
    assert json.loads(now.stdout)["incident"]["status"] == "acknowledged"


def test_a_second_rebuild_at_once_is_refused_in_one_line(
    running_stack: StackConfig, cli: CliRunner
) -> None:
    from qianliyan.notify.rebuild import _REBUILD_LOCK

    with psycopg.connect(running_stack.postgres_dsn) as other:
        # Another rebuild holds the lock.
        other.execute("SELECT pg_advisory_lock(%s)", (_REBUILD_LOCK,))
        result = cli.invoke(app, ["rebuild"])
    assert result.exit_code == 1
    assert "refused: another rebuild is running" in result.output
    assert "Traceback" not in result.output


def test_people_and_machine_tokens_from_the_ops_machine(
    running_stack: StackConfig, cli: CliRunner
) -> None:
    name = f"cli-{uuid.uuid4().hex[:6]}"
    added = cli.invoke(app, ["users", "add", name, "--role", "manager", "--unit", "丰台站"])
    assert added.exit_code == 0, added.output
    password = added.output.rsplit("password: ", 1)[1].strip()
    signed_in = httpx.post(
        f"http://127.0.0.1:{running_stack.notify_port}/v1/auth/token",
        json={"username": name, "password": password},
    )
    assert signed_in.json()["units"] == ["丰台站"]
    bad_name = cli.invoke(app, ["users", "add", "bad name", "--role", "reporter"])
    assert bad_name.exit_code == 2 and "username" in bad_name.output

    issued = cli.invoke(app, ["tokens", "issue", f"{name}-bot", "--scope", "alerts:read"])
    assert issued.exit_code == 0, issued.output
    token_id, token = issued.output.split()[1], issued.output.strip().splitlines()[-1]
    read = httpx.get(
        f"http://127.0.0.1:{running_stack.notify_port}/v1/alerts",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert read.status_code == 200
    assert token_id in cli.invoke(app, ["tokens", "list"]).output
    refused = cli.invoke(app, ["tokens", "issue", "x", "--scope", "access:manage"])
    assert refused.exit_code == 2 and "cannot be given access:manage" in refused.output
    revoked = cli.invoke(app, ["tokens", "revoke", token_id, "--reason", "test over"])
    assert revoked.exit_code == 0, revoked.output
    disabled = cli.invoke(app, ["users", "disable", name])
    assert disabled.exit_code == 0, disabled.output

    trail = httpx.get(
        f"http://127.0.0.1:{running_stack.notify_port}/v1/audit/access",
        headers=as_user(running_stack, "adm", "admin"),
    ).json()["entries"]
    ours = [(e["actor"], e["action"]) for e in trail if e["subject"] in (name, token_id)]
    assert ours == [
        ("ops-cli", "user_changed"),
        ("ops-cli", "token_revoked"),
        ("ops-cli", "token_issued"),
        (name, "signed_in"),  # the person the command added signed in, above
        ("ops-cli", "user_added"),
    ]


# A wait with no end would hold the suite's broker paused until the timeout.
@pytest.mark.timeout(120)
def test_a_redrive_while_kafka_stops_answering_ends_within_its_deadline(
    running_stack: StackConfig, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Kafka stops answering between the letter's two writes (a paused broker keeps its
    # connections open, so nothing is refused): the command gives up at its deadline and
    # says so, rather than waiting for ever, and the next run sends the letter back once.
    origin = f"ops-test-{uuid.uuid4().hex[:8]}"
    value = f"letter {uuid.uuid4().hex}".encode()
    phrase = f"a bug fixed {uuid.uuid4().hex[:8]}"
    parked = [
        ("dlq.error", f"ValueError: {phrase}".encode()),
        ("dlq.origin.topic", origin.encode()),
    ]
    bootstrap = running_stack.kafka_bootstrap
    asyncio.run(create_topics(bootstrap, origin))
    produce(running_stack, "incidents.reports.dlq", value, parked)
    kafka = Infra(running_stack).kafka
    pid = kafka.status().pid
    assert pid is not None
    mark = dead_letters._mark

    async def broker_stops_then_marks(*args: object, **kwargs: object) -> None:
        os.kill(pid, signal.SIGSTOP)
        await mark(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(dead_letters, "_mark", broker_stops_then_marks)
    started = time.monotonic()
    try:
        result = cli.invoke(app, ["dlq", "redrive", "--error-contains", phrase, "--timeout", "8"])
        took = time.monotonic() - started
    finally:
        os.kill(pid, signal.SIGCONT)
    asyncio.run(broker_serving(bootstrap))
    assert result.exit_code == 1, result.output
    assert "Kafka did not answer within 8 s while re-driving" in result.output, result.output
    assert took < 30, took  # the deadline, stopping's, and reading the letters twice
    assert "may or may not be done" in result.output
    assert "after 0 letter(s) done and 0 passed over of 1" in result.output

    async def copies_sent_back() -> int:
        return sum(r.value == value for r in await read_topic(bootstrap, origin))

    async def state() -> LetterState:
        [letter] = [
            x for x in await read_letters(bootstrap, ["incidents.reports"]) if x.value == value
        ]
        return letter.state

    assert asyncio.run(copies_sent_back()) == 0  # its transaction is open, not committed
    assert asyncio.run(state()) is LetterState.PARKED
    monkeypatch.setattr(dead_letters, "_mark", mark)
    again = cli.invoke(app, ["dlq", "redrive", "--error-contains", phrase])
    assert again.exit_code == 0, again.output
    assert "1 letter(s) re-driven" in again.output
    assert asyncio.run(copies_sent_back()) == 1
    assert asyncio.run(state()) is LetterState.REDRIVEN
