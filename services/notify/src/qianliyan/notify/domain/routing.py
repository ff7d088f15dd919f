"""Who is told about an alert, through which channels, when, and when it escalates.

Ops edit the routing as YAML. Routes are tried in order and the first that matches an
alert's severity, unit and place decides its escalation: a list of steps, each due a time
after the alert was raised unless someone acknowledged it first. Low severities wait out
quiet hours. Channels may point only where the outbound policy allows (see `outbound`).
Everything here is pure: the alerter asks it what is due at a given moment.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Collection
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)

from qianliyan.notify.domain.outbound import PUBLIC_ONLY, OutboundPolicy, written_targets
from qianliyan.shared.config_files import MistakeAt, TimeZoneName, VersionText, validate_yaml
from qianliyan.shared.events import Severity
from qianliyan.shared.events.reports import SEVERITY_SCALE

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_HOURS = re.compile(r"^(\d{1,2})-(\d{1,2})$")
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ID = r"^[a-z0-9][a-z0-9._-]*$"

# The outbound policy the file being parsed is held to. Validators take no arguments of
# ours and `validate_yaml` passes no validation context, so `parse_routing` sets it for
# the length of one parse; a refused channel is then reported at its line like any mistake.
_OUTBOUND: ContextVar[OutboundPolicy] = ContextVar("routing_outbound", default=PUBLIC_ONLY)


def parse_duration(value: Any) -> timedelta:
    """'90s', '10m', '2h', '1d' (or a number of seconds) as a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return timedelta(seconds=value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a duration like '90s', '10m', '2h' or '1d'")
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


def expand_environment(text: str) -> str:
    """Replace `${NAME}` with the environment variable, so secrets stay out of the file."""

    def value_of(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise ValueError(f"environment variable {name} is not set")
        return os.environ[name]

    return _ENV_REFERENCE.sub(value_of, text)


def severity_rank(severity: Severity) -> int:
    """0 for info up to 3 for critical."""
    return SEVERITY_SCALE.index(severity)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# An Apprise URL starts with its service's scheme (`wecombot://`, `mailto://`).
_NAMES_ITS_SERVICE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class Channel(_Strict):
    """One way to reach a recipient: an Apprise URL, or a webhook signed with a secret.

    Apprise speaks WeCom, DingTalk, Feishu/Lark, e-mail, Slack and many more by URL
    (https://github.com/caronc/apprise/wiki). Generic webhooks are signed per the
    Standard Webhooks scheme (HMAC-SHA256 over id, timestamp and body).
    """

    id: str | None = Field(default=None, pattern=_ID)
    apprise: SecretStr | None = None
    webhook: SecretStr | None = None
    secret: SecretStr | None = Field(default=None, description="whsec_… secret of a webhook")
    _written: str = PrivateAttr(default="")  # its target as the file says, `${…}` unexpanded

    @model_validator(mode="wrap")
    @classmethod
    def _remember_written(cls, data: Any, handler: ModelWrapValidatorHandler[Channel]) -> Channel:
        channel = handler(data)
        if isinstance(data, dict):
            written = data.get("webhook", data.get("apprise"))
            channel._written = written if isinstance(written, str) else ""
        return channel

    @field_validator("apprise", "webhook", "secret", mode="before")
    @classmethod
    def _expand(cls, value: Any) -> Any:
        return expand_environment(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_kind(self) -> Channel:
        if (self.apprise is None) == (self.webhook is None):
            raise ValueError("a channel needs exactly one of 'apprise' or 'webhook'")
        if self.webhook is not None:
            url = urlsplit(self.webhook.get_secret_value())
            if url.scheme not in ("http", "https") or not url.hostname:
                raise ValueError("a webhook must be an http(s) URL")
            if self.secret is None:
                raise ValueError("a webhook needs a 'secret' to sign its deliveries")
            if not self.secret.get_secret_value().startswith("whsec_"):
                raise ValueError("a webhook secret must look like 'whsec_<base64>'")
        elif self.secret is not None:
            raise ValueError("'secret' belongs to a webhook channel")
        elif self.apprise and not _NAMES_ITS_SERVICE.match(self.apprise.get_secret_value()):
            # Else the mistake shows only when an alert is to be delivered, and fails.
            raise MistakeAt(
                ("apprise",),
                "an Apprise channel is a URL that names its service, such as "
                "'wecombot://…', 'dingtalk://…' or 'mailto://…'",
            )
        self._refuse_internal_targets(_OUTBOUND.get())
        return self

    def _refuse_internal_targets(self, outbound: OutboundPolicy) -> None:
        """Refuse a written host that is internal and not allowed, pointing at its key."""
        key = "webhook" if self.webhook is not None else "apprise"
        url = self.webhook or self.apprise
        assert url is not None
        for target in written_targets(url.get_secret_value()):
            refusal = outbound.refusal(target, what=key)
            if refusal is not None:
                raise MistakeAt((key,), refusal)

    @property
    def kind(self) -> str:
        """'webhook' or the Apprise URL's scheme, such as 'mailto' or 'wecombot'."""
        if self.webhook is not None:
            return "webhook"
        assert self.apprise is not None
        return urlsplit(self.apprise.get_secret_value()).scheme or "apprise"

    @property
    def label(self) -> str:
        """How deliveries name this channel: its id, or its kind and a digest of its target
        as written. Not its place in the list: a channel added in front of it would take
        its name, and every open alert would be told again on both."""
        if self.id is not None:
            return self.id
        return f"{self.kind}-{hashlib.sha256(self._written.encode()).hexdigest()[:8]}"


class Recipient(_Strict):
    """A person or a duty desk, in the language they read."""

    id: str = Field(pattern=_ID)
    name: str = Field(min_length=1)
    language: str = Field(default="zh", pattern=r"^(zh|en)$")
    channels: list[Channel] = Field(default_factory=list)

    def labelled_channels(self) -> list[tuple[str, Channel]]:
        """Each channel with the label its deliveries are keyed by."""
        return [(channel.label, channel) for channel in self.channels]

    def label_now(self, recorded: str) -> str:
        """The label now of a channel whose deliveries were recorded under `recorded`.

        Releases before 2026-12-07 named a channel without an id by its kind and place in
        the list (`wecombot-0`); a delivery claimed so is the same channel's under the file
        as it stands, so an upgrade does not tell anyone again.
        """
        for index, channel in enumerate(self.channels):
            if channel.id is None and recorded == f"{channel.kind}-{index}":
                return channel.label
        return recorded


class Step(_Strict):
    """Whom to tell, once the alert has gone unacknowledged for `after`."""

    after: Duration
    notify: list[str] = Field(min_length=1)


class Route(_Strict):
    """Which alerts (all conditions must hold) and how they escalate."""

    id: str = Field(pattern=_ID)
    min_severity: Severity = Severity.INFO
    units: list[str] = Field(default_factory=list, description="any unit when empty")
    places: list[str] = Field(default_factory=list, description="parts of the place's name")
    escalation: list[Step] = Field(min_length=1)
    repeat_every: Duration | None = Field(
        default=None, description="keep telling the last step's recipients this often"
    )

    @model_validator(mode="after")
    def _steps_in_order(self) -> Route:
        afters = [step.after for step in self.escalation]
        if afters != sorted(afters) or len(set(afters)) != len(afters):
            raise ValueError("escalation steps must come later and later ('after' increasing)")
        if self.repeat_every is not None and self.repeat_every < timedelta(minutes=1):
            raise ValueError("repeat_every must be at least 1m")
        return self

    def matches(self, severity: Severity, unit: str | None, place: str | None) -> bool:
        """Whether an alert of this severity, unit and place takes this route."""
        if severity_rank(severity) < severity_rank(self.min_severity):
            return False
        if self.units and unit not in self.units:
            return False
        return not self.places or any(part in (place or "") for part in self.places)


class QuietHours(_Strict):
    """Local hours when alerts below `applies_below` wait until the morning."""

    hours: str = Field(description='e.g. "22-7": from 22:00 to 07:00')
    applies_below: Severity = Severity.MAJOR

    @field_validator("hours")
    @classmethod
    def _a_window(cls, hours: str) -> str:
        match = _HOURS.match(hours)
        if not match or not all(0 <= int(h) <= 23 for h in match.groups()):
            raise ValueError('hours must look like "22-7" (from 22:00 to 07:00), each 0 to 23')
        if match.group(1) == match.group(2):
            raise ValueError("quiet hours must start and end at different hours")
        return hours

    def window(self) -> tuple[int, int]:
        """(start hour, end hour)."""
        start, end = self.hours.split("-")
        return int(start), int(end)


class Delivery(_Strict):
    """How hard to try each delivery."""

    max_attempts: int = Field(default=6, ge=1, le=20)
    first_retry: Duration = timedelta(seconds=10)
    max_retry: Duration = timedelta(minutes=10)
    timeout: Duration = timedelta(seconds=15)

    @model_validator(mode="after")
    def _retries_grow(self) -> Delivery:
        if self.first_retry > self.max_retry:
            raise MistakeAt(
                ("first_retry",),
                "first_retry is longer than max_retry: retries wait longer and longer, up "
                "to max_retry",
            )
        return self


class RoutingFile(_Strict):
    """The whole file: a version, recipients, routes in order, quiet hours, retries."""

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)

    version: VersionText
    timezone: TimeZoneName = "Asia/Shanghai"
    max_age: Duration = Field(
        default=timedelta(hours=24),
        description=(
            "an incident whose latest report arrived longer ago is not alerted (a re-triage "
            "of history), unless it was reopened; how long ago the phone captured it does "
            "not count"
        ),
    )
    report_wait: Duration = Field(
        default=timedelta(seconds=5),
        description=(
            "an incident whose triage notify read before its report's text, place and unit "
            "waits up to this long after the triage for them, so the alert's route and "
            "messages have them; then it is raised with what is known"
        ),
    )
    quiet_hours: QuietHours | None = None
    delivery: Delivery = Delivery()
    recipients: list[Recipient] = Field(default_factory=list)
    routes: list[Route] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> RoutingFile:
        for kind, ids in (
            ("recipients", [r.id for r in self.recipients]),
            ("routes", [r.id for r in self.routes]),
        ):
            for index, found in enumerate(ids):
                if found in ids[:index]:
                    raise MistakeAt((kind, index, "id"), f"id {found!r} is used twice")
        for index, recipient in enumerate(self.recipients):
            labels = [label for label, _ in recipient.labelled_channels()]
            if len(set(labels)) != len(labels):
                raise MistakeAt(
                    ("recipients", index, "channels"),
                    "two channels with one id, or one target written twice",
                )
        known = {r.id for r in self.recipients}
        for r, route in enumerate(self.routes):
            for s, step in enumerate(route.escalation):
                for unknown in (name for name in step.notify if name not in known):
                    raise MistakeAt(
                        ("routes", r, "escalation", s, "notify"),
                        f"{unknown!r} is not one of the recipients",
                    )
        return self


@dataclass(frozen=True, slots=True)
class Routing:
    """A checked routing file, ready to answer what is due.

    `outbound` is the policy its channels were checked against; deliveries are held to it
    again when they resolve their hosts.
    """

    spec: RoutingFile
    outbound: OutboundPolicy = PUBLIC_ONLY

    @property
    def version(self) -> str:
        """The version named on every alert raised with this routing."""
        return self.spec.version

    def route_for(self, severity: Severity, unit: str | None, place: str | None) -> Route | None:
        """The first route the alert matches, or None: nobody is to be told."""
        return next((r for r in self.spec.routes if r.matches(severity, unit, place)), None)

    def escalation_at(
        self, route: Route, severity: Severity, raised_at: datetime, now: datetime
    ) -> Escalation:
        """The steps of an unacknowledged alert that are due at `now`, quiet hours applied."""
        return _escalation(self.spec, route, severity, raised_at, now)

    def recipient(self, recipient_id: str) -> Recipient:
        """A recipient named by a route (the file was checked, so it exists)."""
        return next(r for r in self.spec.recipients if r.id == recipient_id)

    def label_now(self, recipient_id: str, recorded: str) -> str:
        """The label now of `recipient_id`'s channel whose deliveries were recorded under
        `recorded` (see `Recipient.label_now`); as recorded for a recipient now gone."""
        for recipient in self.spec.recipients:
            if recipient.id == recipient_id:
                return recipient.label_now(recorded)
        return recorded


def units_not_listed(routing: Routing, listed: Collection[str]) -> list[str]:
    """Each unit a route names that is not among the `listed` units of the organisation
    file: most likely a typo, which leaves the route taking no alert of the unit meant.
    Not refused: the two files are edited apart, and either may come first."""
    return [
        f"route '{route.id}' names unit '{unit}', which the organisation file does not list"
        for route in routing.spec.routes
        for unit in route.units
        if unit not in listed
    ]


def parse_routing(text: str, *, outbound: OutboundPolicy = PUBLIC_ONLY) -> Routing:
    """Parse and check a routing file, or raise `ConfigFileError` naming the line at fault.

    A channel whose written host is internal and not allowed by `outbound` is a mistake.
    """
    token = _OUTBOUND.set(outbound)
    try:
        spec = validate_yaml(text, RoutingFile, shape="'version', 'recipients' and 'routes'")
    finally:
        _OUTBOUND.reset(token)
    return Routing(spec, outbound)


@dataclass(frozen=True, slots=True)
class DueStep:
    """An escalation step whose time has come, and whom it tells."""

    step: int
    due_at: datetime
    recipients: tuple[str, ...]


def step_schedule(
    route: Route, raised_at: datetime, *, until: datetime
) -> list[tuple[int, datetime, tuple[str, ...]]]:
    """Every step of `route` (repeats included) due at or before `until`, plus the next one.

    Times count from `raised_at`, before quiet hours are applied.
    """
    schedule: list[tuple[int, datetime, tuple[str, ...]]] = []
    for number, step in enumerate(route.escalation):
        schedule.append((number, raised_at + step.after, tuple(step.notify)))
        if schedule[-1][1] > until:
            return schedule
    if route.repeat_every is not None:
        last = route.escalation[-1]
        number, due = len(route.escalation) - 1, raised_at + last.after
        while due <= until:
            number, due = number + 1, due + route.repeat_every
            schedule.append((number, due, tuple(last.notify)))
    return schedule


def after_quiet_hours(moment: datetime, quiet: QuietHours, zone: ZoneInfo) -> datetime:
    """`moment`, or the end of the quiet hours it falls in."""
    start, end = quiet.window()
    local = moment.astimezone(zone)
    hour = local.hour
    inside = start <= hour < end if start < end else hour >= start or hour < end
    if not inside:
        return moment
    end_local = datetime.combine(local.date(), time(end), tzinfo=zone)
    if end_local <= local:
        end_local = datetime.combine(local.date() + timedelta(days=1), time(end), tzinfo=zone)
    return end_local.astimezone(moment.tzinfo)


@dataclass(frozen=True, slots=True)
class Escalation:
    """Where an alert stands at a moment: the steps now due, and when the next one is."""

    due: tuple[DueStep, ...]
    next_due_at: datetime | None


def _escalation(
    spec: RoutingFile, route: Route, severity: Severity, raised_at: datetime, now: datetime
) -> Escalation:
    zone = ZoneInfo(spec.timezone)
    quiet = spec.quiet_hours
    hushed = quiet is not None and severity_rank(severity) < severity_rank(quiet.applies_below)
    due: list[DueStep] = []
    next_due_at: datetime | None = None
    for number, at, recipients in step_schedule(route, raised_at, until=now):
        if hushed:
            assert quiet is not None
            at = after_quiet_hours(at, quiet, zone)
        if at <= now:
            due.append(DueStep(step=number, due_at=at, recipients=recipients))
        elif next_due_at is None or at < next_due_at:
            next_due_at = at
    return Escalation(due=tuple(due), next_due_at=next_due_at)


def retry_delay(delivery: Delivery, attempt: int, *, jitter: float) -> timedelta | None:
    """How long to wait after failed `attempt` (1-based), or None when it was the last.

    Exponential from `first_retry`, capped at `max_retry`; `jitter` in [0, 1) takes up to
    a fifth off, so deliveries that failed together do not all retry together.
    """
    if attempt >= delivery.max_attempts:
        return None
    base = min(delivery.first_retry * (1 << (attempt - 1)), delivery.max_retry)
    return base * (1 - 0.2 * jitter)
