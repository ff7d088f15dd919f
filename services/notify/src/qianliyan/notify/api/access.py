"""`/v1/access`: an admin's people and machine tokens.

A change to a person's roles, units or password, or disabling them, voids the tokens
they hold; a machine token is shown once when issued and can be revoked at any time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from qianliyan.shared.access import store
from qianliyan.shared.access.http import access_of, require
from qianliyan.shared.access.policy import (
    MACHINE_SCOPES,
    READ_WHOLE,
    Permission,
    Principal,
    Role,
)
from qianliyan.shared.events.reports import UNIT_MAX_LENGTH
from qianliyan.shared.http import Problem
from qianliyan.shared.text import PRINTABLE

router = APIRouter(prefix="/v1/access", tags=["access"])

Admin = Annotated[Principal, Depends(require(Permission.MANAGE_ACCESS))]
# A sign-in name: ASCII letters and digits, `_ . @ -` (a staff number, pinyin, an e-mail
# address); the display name carries the person's name in any script. Spelt out: `\w`
# is Unicode here but ASCII to a JSON Schema reader, and the two disagreed on "ù".
UserName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9_.@-]+$",
        description="ASCII letters and digits, and _ . @ -",
    ),
]
UnitName = Annotated[str, Field(min_length=1, max_length=UNIT_MAX_LENGTH, pattern=PRINTABLE)]
# Long enough that guessing is hopeless, short enough to type on a phone.
MIN_PASSWORD = 10


class NewUser(BaseModel):
    """A person to add."""

    model_config = ConfigDict(extra="forbid")

    username: UserName
    display_name: str = Field(min_length=1, max_length=200, pattern=PRINTABLE)
    password: str = Field(min_length=MIN_PASSWORD, max_length=200)
    roles: list[Role] = Field(min_length=1)
    units: list[UnitName] = Field(default_factory=list, max_length=100)


class UserChange(BaseModel):
    """What to change about a person; what is left out stays."""

    model_config = ConfigDict(extra="forbid")

    display_name: str | None = Field(default=None, min_length=1, max_length=200, pattern=PRINTABLE)
    password: str | None = Field(default=None, min_length=MIN_PASSWORD, max_length=200)
    roles: list[Role] | None = Field(default=None, min_length=1)
    units: list[UnitName] | None = Field(default=None, max_length=100)
    # Strict, as the schema says: lax pydantic would take JSON's 1 or "yes" for true.
    disabled: bool | None = Field(default=None, strict=True)


class UserView(BaseModel):
    """A person as an admin sees them."""

    username: str
    display_name: str
    roles: list[str]
    units: list[str]
    disabled: bool


class NewMachineToken(BaseModel):
    """A token for an integration: what it may do, for which units, for how long."""

    model_config = ConfigDict(extra="forbid")

    name: UserName
    scopes: list[Permission] = Field(min_length=1)
    units: list[UnitName] = Field(default_factory=list, max_length=100)
    # Strict, as the schema says: lax pydantic would take JSON's true for one day.
    expires_in_days: int = Field(default=90, ge=1, le=730, strict=True)

    @field_validator("scopes")
    @classmethod
    def _grantable(cls, scopes: list[Permission]) -> list[Permission]:
        refused = sorted(set(scopes) - MACHINE_SCOPES)
        if refused:
            raise ValueError(f"a machine token cannot be given {', '.join(refused)}")
        return scopes

    @model_validator(mode="after")
    def _limited_only_where_it_can_be(self) -> NewMachineToken:
        # Read whole: a token limited to some units would read them all.
        whole = sorted(READ_WHOLE & set(self.scopes))
        if self.units and whole:
            raise ValueError(
                f"{', '.join(whole)} reads every unit's at once; it cannot be limited to "
                "units (issue it without units, or leave it out)"
            )
        return self


class MachineTokenView(BaseModel):
    """A machine token as listed; the token itself is only in the answer that issued it."""

    token_id: str
    name: str
    scopes: list[str]
    units: list[str]
    created_at: datetime
    created_by: str
    expires_at: datetime
    revoked_at: datetime | None


class MachineTokenIssued(MachineTokenView):
    """The new token: keep it now, it is not shown again."""

    token: str


class Revocation(BaseModel):
    """Why a token is revoked, for the record."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=500, pattern=PRINTABLE)


def _user_or_404(user: store.User | None, username: str) -> dict[str, Any]:
    if user is None:
        raise Problem(404, "User not found", f"There is no user {username!r}.")
    return user.public()


@router.get("/users", response_model=list[UserView])
async def list_users(request: Request, _: Admin) -> list[dict[str, Any]]:
    """Everyone who can sign in, and who is disabled."""
    return [user.public() for user in await store.list_users(access_of(request).pool)]


@router.post("/users", status_code=201, response_model=UserView)
async def add_user(request: Request, new: NewUser, admin: Admin) -> dict[str, Any]:
    """Add a person; a taken user name is a 409."""
    try:
        user = await store.create_user(
            access_of(request).pool,
            username=new.username,
            display_name=new.display_name,
            password=new.password,
            roles=[role.value for role in new.roles],
            units=new.units,
            created_by=admin.subject,
        )
    except store.AccessConflict as conflict:
        raise Problem(409, "User exists", f"{str(conflict).capitalize()}.") from None
    return user.public()


@router.patch("/users/{username}", response_model=UserView)
async def change_user(
    request: Request,
    change: UserChange,
    admin: Admin,
    username: Annotated[str, Path(max_length=100, pattern=PRINTABLE)],
) -> dict[str, Any]:
    """Change roles, units, password or display name, or disable or enable the person."""
    if username == admin.subject and (change.disabled or change.roles is not None):
        # An admin who locks themselves out leaves nobody to undo it.
        raise Problem(
            409, "Not on yourself", "Ask another admin to change your own roles or access."
        )
    access = access_of(request)
    user = await store.update_user(
        access.pool,
        username,
        changed_by=admin.subject,
        display_name=change.display_name,
        roles=[role.value for role in change.roles] if change.roles is not None else None,
        units=change.units,
        password=change.password,
        disabled=change.disabled,
    )
    access.revocations.forget()
    return _user_or_404(user, username)


@router.get("/tokens", response_model=list[MachineTokenView])
async def list_tokens(request: Request, _: Admin) -> list[dict[str, Any]]:
    """Every machine token issued, newest first, revoked ones included."""
    return [token.public() for token in await store.list_machine_tokens(access_of(request).pool)]


@router.post("/tokens", status_code=201, response_model=MachineTokenIssued)
async def issue_token(request: Request, new: NewMachineToken, admin: Admin) -> dict[str, Any]:
    """Issue a scoped token for an integration; the answer is the only time it is shown."""
    access = access_of(request)
    record, token = await store.issue_machine_token(
        access.pool,
        access.signer,
        name=new.name,
        scopes=[scope.value for scope in new.scopes],
        units=new.units,
        expires_at=datetime.now(UTC) + timedelta(days=new.expires_in_days),
        created_by=admin.subject,
    )
    return {**record.public(), "token": token}


@router.post("/tokens/{token_id}/revoke", response_model=MachineTokenView)
async def revoke_token(
    request: Request,
    revocation: Revocation,
    admin: Admin,
    token_id: Annotated[str, Path(max_length=100, pattern=PRINTABLE)],
) -> dict[str, Any]:
    """Revoke a machine token: every service refuses it within seconds."""
    access = access_of(request)
    revoked = await store.revoke_machine_token(
        access.pool, token_id, revoked_by=admin.subject, reason=revocation.reason
    )
    if revoked is None:
        raise Problem(404, "Token not found", f"There is no machine token {token_id!r}.")
    access.revocations.forget()
    return revoked.public()
