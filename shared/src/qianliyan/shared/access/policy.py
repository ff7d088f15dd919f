"""Who may do what: roles, the permissions they grant, and how far each one reaches.

Pure: a `Principal` (whoever a verified token names) and an `Org` (units and the stations
below them) are plain values, so every decision here is tested without a server.

A permission reaches `OWN` things (a reporter's own reports), the things of the principal's
`UNITS` and every station below them (a manager), or `ALL` of them (a dispatcher).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum, StrEnum

from qianliyan.shared.access.org import Org
from qianliyan.shared.events import Actor, ActorKind
from qianliyan.shared.events.reports import UNIT_MAX_LENGTH
from qianliyan.shared.text import one_line


class Role(StrEnum):
    """What a person is for."""

    REPORTER = "reporter"
    DISPATCHER = "dispatcher"
    MANAGER = "manager"
    OPS = "ops"
    ADMIN = "admin"


class Permission(StrEnum):
    """One thing that can be done; a machine token is given these directly, as scopes."""

    SUBMIT_REPORTS = "reports:submit"
    # An integration (a chat bridge, say) submits on behalf of the reporter it names.
    SUBMIT_FOR_OTHERS = "reports:submit-for-others"
    READ_REPORTS = "reports:read"
    READ_ALERTS = "alerts:read"
    ACT_ON_INCIDENTS = "incidents:act"
    OVERRIDE_SEVERITY = "incidents:override"
    READ_CONTRIBUTIONS = "contributions:read"
    READ_ROUTING = "routing:read"
    READ_RULES = "rules:read"
    READ_AUDIT = "audit:read"
    MANAGE_ACCESS = "access:manage"


class Reach(IntEnum):
    """How far a permission extends; a larger reach includes the smaller."""

    OWN = 1
    UNITS = 2
    ALL = 3


ROLE_GRANTS: dict[Role, dict[Permission, Reach]] = {
    Role.REPORTER: {
        Permission.SUBMIT_REPORTS: Reach.OWN,
        Permission.READ_REPORTS: Reach.OWN,
    },
    Role.DISPATCHER: {
        Permission.READ_REPORTS: Reach.ALL,
        Permission.READ_ALERTS: Reach.ALL,
        Permission.ACT_ON_INCIDENTS: Reach.ALL,
        Permission.OVERRIDE_SEVERITY: Reach.ALL,
    },
    # A manager is paged about their units' alerts, so they may answer them (acknowledge,
    # note, assign, resolve); deciding severity stays with the dispatch centre.
    Role.MANAGER: {
        Permission.READ_REPORTS: Reach.UNITS,
        Permission.READ_ALERTS: Reach.UNITS,
        Permission.ACT_ON_INCIDENTS: Reach.UNITS,
        Permission.READ_CONTRIBUTIONS: Reach.UNITS,
    },
    Role.OPS: {
        Permission.READ_ROUTING: Reach.ALL,
        Permission.READ_RULES: Reach.ALL,
        Permission.READ_AUDIT: Reach.ALL,
    },
    Role.ADMIN: {
        Permission.MANAGE_ACCESS: Reach.ALL,
        Permission.READ_AUDIT: Reach.ALL,
        Permission.READ_CONTRIBUTIONS: Reach.ALL,
        Permission.READ_ROUTING: Reach.ALL,
        Permission.READ_RULES: Reach.ALL,
    },
}

# What a machine token may be given: never the power to hand out access.
MACHINE_SCOPES = frozenset(Permission) - {Permission.MANAGE_ACCESS}
# What is read whole, every unit's at once, so cannot be held for some units only: the
# audit trail, and the routing (every unit's recipients). The rules are no unit's.
READ_WHOLE = frozenset({Permission.READ_AUDIT, Permission.READ_ROUTING})


@dataclass(frozen=True, slots=True)
class Principal:
    """Whoever a verified token speaks for: a person with roles, or a machine with scopes."""

    subject: str
    display_name: str
    kind: str  # "user" or "machine"
    roles: frozenset[Role] = frozenset()
    scopes: frozenset[Permission] = frozenset()
    units: frozenset[str] = frozenset()
    token_id: str | None = None
    expires_at: datetime | None = None  # when the token it came from expires
    issued_at: datetime | None = None  # when that token was issued, by its issuer's clock
    grants: dict[Permission, Reach] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        grants: dict[Permission, Reach] = {}
        for role in self.roles:
            for permission, reach in ROLE_GRANTS[role].items():
                grants[permission] = max(reach, grants.get(permission, reach))
        # A machine token's scopes reach its units when it names some, or everything.
        scope_reach = Reach.UNITS if self.units else Reach.ALL
        for permission in self.scopes:
            grants[permission] = max(scope_reach, grants.get(permission, scope_reach))
        object.__setattr__(self, "grants", grants)

    def reach(self, permission: Permission) -> Reach | None:
        """How far `permission` extends for this principal; None when not granted."""
        return self.grants.get(permission)

    def may(self, permission: Permission) -> bool:
        """Whether `permission` is granted at all (to something, not to everything)."""
        return permission in self.grants

    def as_actor(self) -> Actor:
        """How events this principal causes are attributed in the log."""
        return Actor(kind=actor_kind(self), id=self.subject, display_name=self.display_name)


def actor_kind(principal: Principal) -> ActorKind:
    """The audit trail's kind of actor: the most responsible role this principal holds."""
    if principal.kind == "machine":
        return ActorKind.SERVICE
    for role, kind in (
        (Role.DISPATCHER, ActorKind.DISPATCHER),
        (Role.MANAGER, ActorKind.MANAGER),
        (Role.OPS, ActorKind.OPS),
        (Role.ADMIN, ActorKind.OPS),
    ):
        if role in principal.roles:
            return kind
    return ActorKind.REPORTER


def may_reach_unit(
    principal: Principal, permission: Permission, unit: str | None, org: Org
) -> bool:
    """Whether `permission` extends to something that belongs to `unit` (a station or unit)."""
    reach = principal.reach(permission)
    if reach is None:
        return False
    if reach is Reach.ALL:
        return True
    if reach is Reach.UNITS:
        return unit is not None and unit in org.below(principal.units)
    return False


def may_read_report(
    principal: Principal, *, reporter_id: str | None, unit: str | None, org: Org
) -> bool:
    """A report is readable by its reporter, by the managers of its unit, and by dispatch."""
    if principal.reach(Permission.READ_REPORTS) is Reach.OWN:
        return reporter_id is not None and reporter_id == principal.subject
    return may_reach_unit(principal, Permission.READ_REPORTS, unit, org)


def visible_units(principal: Principal, permission: Permission, org: Org) -> frozenset[str] | None:
    """The units whose things `permission` lets the principal list; None means every unit."""
    reach = principal.reach(permission)
    if reach is Reach.ALL:
        return None
    if reach is Reach.UNITS:
        return org.below(principal.units)
    return frozenset()


def parse_roles(names: Iterable[str]) -> frozenset[Role]:
    """Known role names as roles; names this system does not know are ignored."""
    known = {role.value for role in Role}
    return frozenset(Role(name) for name in names if name in known)


class NotAllowed(Exception):
    """The principal may not do this; `str()` says why, fit for a 403."""


def reporter_of_submission(principal: Principal, named: str | None) -> str:
    """Whom a report is from: the signed-in reporter, or whom an integration names."""
    if principal.may(Permission.SUBMIT_FOR_OTHERS):
        return named or principal.subject
    if not principal.may(Permission.SUBMIT_REPORTS):
        raise NotAllowed(f"{principal.subject} may not send reports")
    if named is not None and named != principal.subject:
        raise NotAllowed(f"signed in as {principal.subject}, a report cannot be sent as {named}")
    return principal.subject


def uploader(principal: Principal) -> str:
    """Whose a photo uploaded on its own is, for naming it in a report later: a person's
    across their sign-ins; a machine token's own, as two integrations may share a name."""
    if principal.kind == "machine" and principal.token_id is not None:
        return f"{principal.subject}#{principal.token_id}"
    return principal.subject


def unit_of_submission(principal: Principal, named: str | None, org: Org) -> str | None:
    """The unit a report is of: the one it names, else the signer's when they have only one.

    The reporter's page asks for no unit, since a worker's account says where they work;
    a report of no unit reaches no manager of theirs. A worker at another station's scene
    names that station. An integration limited to units (a station's chat bridge) sends
    reports of them and of what lies below them, and no other unit's: its report would
    page that unit's managers. Raises `NotAllowed` for such a report.
    """
    if not named:
        return _only_unit(principal)
    permission = (
        Permission.SUBMIT_FOR_OTHERS
        if principal.may(Permission.SUBMIT_FOR_OTHERS)
        else Permission.SUBMIT_REPORTS
    )
    if not _reaches_unit(principal, permission, named, org):
        raise NotAllowed(
            f"{principal.subject} sends reports of {', '.join(sorted(principal.units))} "
            f"and the units below them, not of {named}"
        )
    return named


def _reaches_unit(principal: Principal, permission: Permission, unit: str, org: Org) -> bool:
    # Sending one's own reports reaches every unit: a worker may be at any station's scene.
    return principal.reach(permission) is Reach.OWN or may_reach_unit(
        principal, permission, unit, org
    )


def _only_unit(principal: Principal) -> str | None:
    if len(principal.units) != 1:
        return None
    (unit,) = principal.units
    # An identity provider's claim comes as it is: one that cannot be a unit's name
    # (blank, too long) is left out, rather than refusing every report of its holder.
    written = one_line(unit)
    return written if 0 < len(written) <= UNIT_MAX_LENGTH else None
