"""Talking to the running stack the way a phone or an operator would."""

from __future__ import annotations

import functools
import io
import json
import random
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from aiokafka import ConsumerRecord
from minio import Minio
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from qianliyan.shared.access.policy import MACHINE_SCOPES
from qianliyan.shared.access.tokens import TokenSigner, load_signing_key, new_token_id
from qianliyan.shared.events import Event, EventDecodeError, ReportSubmitted, ReportTriaged, decode
from qianliyan.shared.settings import KafkaSettings
from qianliyan.shared.storage import staged_photo_key
from qianliyan.stack.config import StackConfig
from qianliyan.triage.domain.rules import LoadedRules, parse_rules
from qianliyan.triage.rulebook import DEFAULT_RULES
from qianliyan.triage.settings import TriageSettings
from tests.integration.topic_reader import read_topic

# A report's status once triaged: the routing may already have alerted someone about it.
TRIAGED = ("triaged", "alerted")

# The suite's own integration token may do everything but hand out access.
SUITE_TOKEN_NAME = "test-suite"


@functools.cache
def _signer(key_file: Path) -> TokenSigner:
    return TokenSigner(load_signing_key(key_file))


def user_token(
    config: StackConfig,
    username: str,
    roles: Iterable[str],
    units: Iterable[str] = (),
    *,
    ttl: timedelta = timedelta(hours=1),
) -> str:
    """A person's token signed with the stack's key, as signing in would give."""
    return (
        _signer(config.token_key_file)
        .for_user(username=username, display_name=username, roles=roles, units=units, ttl=ttl)
        .token
    )


def machine_token(config: StackConfig, name: str) -> str:
    """A new integration token that may do everything but hand out access."""
    return (
        _signer(config.token_key_file)
        .for_machine(
            token_id=new_token_id(),
            name=name,
            scopes=MACHINE_SCOPES,
            units=(),
            expires_at=datetime.now(UTC) + timedelta(days=1),
        )
        .token
    )


_suite_tokens: dict[Path, str] = {}


def bearer(token: str) -> dict[str, str]:
    """The header that presents `token`."""
    return {"Authorization": f"Bearer {token}"}


def as_suite(config: StackConfig) -> dict[str, str]:
    """Headers of the suite's integration token: submits for any reporter, reads and acts on all."""
    if config.token_key_file not in _suite_tokens:
        _suite_tokens[config.token_key_file] = machine_token(config, SUITE_TOKEN_NAME)
    return bearer(_suite_tokens[config.token_key_file])


def as_user(
    config: StackConfig, username: str, *roles: str, units: Iterable[str] = ()
) -> dict[str, str]:
    """Headers of a person with `roles` (and, for a manager, `units`)."""
    return bearer(user_token(config, username, roles, units))


def jpeg_photo(size: tuple[int, int] = (320, 240)) -> bytes:
    """A real JPEG with a random colour, so its sha256 is new to the store."""
    colour = tuple(random.randrange(256) for _ in range(3))
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def minio_client(config: StackConfig) -> Minio:
    """A client of the suite's MinIO, as its root user."""
    return Minio(
        config.minio_endpoint,
        access_key=config.minio_root_user,
        secret_key=config.minio_root_password.get_secret_value(),
        secure=False,
    )


def read_object(config: StackConfig, key: str) -> bytes:
    """The bytes of one object in the suite's photo bucket."""
    response = minio_client(config).get_object(config.bucket, key)
    try:
        return response.read()
    finally:
        response.close()
        response.release_conn()


def expire_upload(config: StackConfig, photo_id: str) -> None:
    """Remove what a photo uploaded on its own left in the store (its bytes, preview and
    every uploader's metadata), as the lifecycle rule does a week on."""
    store = minio_client(config)
    for found in store.list_objects(config.bucket, prefix=staged_photo_key(photo_id)):
        store.remove_object(config.bucket, found.object_name)


async def submit(
    config: StackConfig,
    report: Mapping[str, object],
    photos: list[bytes],
    *,
    idempotency_key: str | None = None,
    auth: Mapping[str, str] | None = None,
) -> httpx.Response:
    """POST a report as the phone does: multipart, a JSON `report` part and `photos` parts."""
    files = [("photos", (f"p{i}.jpg", data, "image/jpeg")) for i, data in enumerate(photos)]
    headers = as_suite(config) if auth is None else dict(auth)
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{config.ingest_port}") as client:
        return await client.post(
            "/v1/reports",
            data={"report": json.dumps(report, ensure_ascii=False)},
            files=files,
            headers=headers,
            timeout=60,
        )


async def override_severity(
    config: StackConfig, incident_id: str, version: int, severity: str, who: str
) -> httpx.Response:
    """A dispatcher sets the incident's severity, as of `version`."""
    async with httpx.AsyncClient(headers=as_user(config, who, "dispatcher")) as client:
        return await client.post(
            f"http://127.0.0.1:{config.notify_port}/v1/incidents/{incident_id}/actions",
            json={
                "action": "override_severity",
                "severity": severity,
                "reason": "现场确认",
                "expected_version": version,
            },
        )


async def submitted_events(config: StackConfig, report_id: str) -> list[ReportSubmitted]:
    """Every ReportSubmitted record in the log for `report_id`."""
    records = await read_topic(config.kafka_bootstrap, "incidents.reports")
    return [e for e in events_about(records, report_id) if isinstance(e, ReportSubmitted)]


def events_about(records: list[ConsumerRecord], report_id: str) -> list[Event]:
    """The report events in `records` that concern `report_id` (poison records skipped)."""
    found: list[Event] = []
    for record in records:
        try:
            event = decode(record.value)
        except EventDecodeError:
            continue
        if isinstance(event, ReportSubmitted | ReportTriaged) and (
            str(event.payload.report_id) == report_id
        ):
            found.append(event)
    return found


# The night rule raises a report's severity by the local hour of its capture, and the
# suite's reports are captured as they are sent: run at night in Shanghai (from 14:00 UTC),
# every expected severity was one step too high. The suite's rules move the night twelve
# hours away from the hour the suite started, so it never falls within a run; the rule
# itself is tested by the unit tests, at hours they choose.
PACKAGED_NIGHT = 'hours: "22-6"'
_SUITE_STARTED = datetime.now(UTC)


def suite_rules_text() -> str:
    """The packaged rules as the suite runs them: the night twelve hours from now."""
    text = DEFAULT_RULES.read_text(encoding="utf-8")
    assert PACKAGED_NIGHT in text, f"the default rules no longer contain {PACKAGED_NIGHT!r}"
    hour = _SUITE_STARTED.astimezone(parse_rules(text).zone).hour
    start = (hour + 12) % 24
    return text.replace(PACKAGED_NIGHT, f'hours: "{start}-{(start + 8) % 24}"')


def default_rules_with(version: str, old: str, new: str) -> LoadedRules:
    """The suite's rules under another version, with one passage of the file replaced."""
    text = suite_rules_text()
    assert old in text, f"the default rules no longer contain {old!r}"
    return parse_rules(
        text.replace('version: "2026-12-08.5"', f'version: "{version}"').replace(old, new)
    )


def triage_settings(config: StackConfig) -> TriageSettings:
    """Triage's settings pointed at the suite's Kafka, for running re-triage from a test."""
    return TriageSettings(kafka=KafkaSettings(bootstrap_servers=config.kafka_bootstrap))


async def scrape(port: int) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Samples by name, each keyed by its sorted labels."""
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"http://127.0.0.1:{port}/metrics")
    assert answer.status_code == 200
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(answer.text):
        samples.setdefault(family.name, {})
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[key] = sample.value
    return samples


def total(samples: dict[tuple[tuple[str, str], ...], float], **labels: str) -> float:
    """The sum of the samples that carry `labels` (among others)."""
    wanted = set(labels.items())
    return sum(value for key, value in samples.items() if wanted <= set(key))
