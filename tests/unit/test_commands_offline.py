"""The `qianliyan` command with nothing to talk to: a line that says so, never a traceback."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qianliyan.ops.cli import app
from qianliyan.shared.access.tokens import generate_signing_key
from qianliyan.stack.config import StackConfig


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # nobody listens there once the probe is closed


@pytest.fixture
def nothing_running(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    monkeypatch.setenv("QLY_STACK_KAFKA_PORT", str(_closed_port()))
    monkeypatch.setenv("QLY_STACK_POSTGRES_PORT", str(_closed_port()))
    monkeypatch.setenv("QLY_STACK_DATA_DIR", str(tmp_path_factory.mktemp("no-stack")))
    for name in ("NOTIFY_POSTGRES__DSN", "NOTIFY_KAFKA__BOOTSTRAP_SERVERS"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("nothing_running")
@pytest.mark.parametrize(
    "command",
    [
        ["lag", "--watch", "0.1"],
        ["dlq", "list"],
        ["dlq", "redrive", "--all"],
        ["check"],
        ["rebuild"],
        ["users", "list"],
        ["replay", "notify", "--from", "end"],
    ],
)
def test_a_command_with_the_stack_down_says_so_in_a_line(command: list[str]) -> None:
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 1, result.output
    assert "could not reach Kafka, PostgreSQL or a service (" in result.output
    assert "is the stack up?" in result.output
    assert isinstance(result.exception, SystemExit), "ended by an error, not by the command"


def test_as_of_names_an_incident_id_that_is_not_one() -> None:
    result = CliRunner().invoke(app, ["as-of", "2026-11-25T08:00:00+08:00", "--incident", "abc"])
    assert result.exit_code == 2
    assert "'abc' is not an incident id" in result.output


def test_lag_refuses_a_watch_below_a_tenth_of_a_second() -> None:
    result = CliRunner().invoke(app, ["lag", "--watch", "-1"])
    assert result.exit_code == 2
    assert "--watch" in result.output


@pytest.mark.usefixtures("nothing_running")
@pytest.mark.parametrize(
    "command", [["demo"], ["tokens", "issue", "bridge", "--scope", "reports:read"]]
)
def test_a_command_that_signs_tokens_before_the_stack_made_its_key_says_so(
    command: list[str],
) -> None:
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 1, result.output
    assert "cannot load the token signing key from" in result.output
    assert "`qianliyan stack init`" in result.output
    assert isinstance(result.exception, SystemExit), "ended by an error, not by the command"


@pytest.mark.usefixtures("nothing_running")
def test_the_demo_with_ingest_down_says_so_in_a_line(monkeypatch: pytest.MonkeyPatch) -> None:
    config = StackConfig()
    config.secrets_dir.mkdir(parents=True, exist_ok=True)
    config.token_key_file.write_bytes(generate_signing_key())
    monkeypatch.setenv("QLY_STACK_INGEST_PORT", str(_closed_port()))
    result = CliRunner().invoke(app, ["demo", "--reports", "1"])
    assert result.exit_code == 1, result.output
    assert "could not reach Kafka, PostgreSQL or a service (ConnectError" in result.output
    assert isinstance(result.exception, SystemExit), "ended by an error, not by the command"


@pytest.mark.usefixtures("nothing_running")  # a check missed would fail fast, not connect
@pytest.mark.parametrize(
    ("command", "said"),
    [
        (
            ["lag", "--group", "qianliyan-triag"],
            "no consumer group 'qianliyan-triag'; the groups are qianliyan-triage,",
        ),
        (["as-of", "42"], "'42' is not a time with its zone"),
        (["as-of", "2026-11-25T08:00:00"], "is not a time with its zone"),
        (["dlq", "redrive", "--letter", "incidents.reports.dlq[²]@3"], "is not TOPIC[PARTITION]"),
        (["replay", "notify", "--from", "³"], "give 'beginning', 'end', an offset"),
        (["tokens", "revoke", "abc", "--reason", " "], "a revocation needs a reason"),
        (["stack", "logs", "kafka", "-n", "-5"], "greater than or equal to 1"),
    ],
)
def test_a_mistyped_argument_is_refused_before_anything_is_done(
    command: list[str], said: str
) -> None:
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 2, result.output
    # Typer draws usage errors in a box, wrapping its lines.
    assert said in " ".join(result.output.replace("│", " ").split()), result.output


@pytest.mark.usefixtures("nothing_running")
def test_retriage_points_out_a_category_the_page_does_not_offer_before_reading_the_log(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TRIAGE_KAFKA__BOOTSTRAP_SERVERS", f"127.0.0.1:{_closed_port()}")
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        'version: "c1"\nrules:\n  - id: signal-fault\n    summary: Signal fault\n'
        "    categories: [signal, singal]\n    severity: major\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["retriage", str(rules)])
    said = " ".join(result.output.split())
    assert (
        "rule 'signal-fault' names categories the reporter's page does not offer, which its "
        "reports never match: 'singal' (did you mean 'signal'?)"
    ) in said
    assert result.exit_code == 1 and "could not reach Kafka" in said
