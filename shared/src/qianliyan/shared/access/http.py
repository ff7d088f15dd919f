"""Access at the door of every service: who is asking, may they, and not too often.

A request carries a token as `Authorization: Bearer …` (API clients, integrations) or
in the `qly_session` cookie a page got by signing in. Pages' cookie-borne requests that
change something must also carry the CSRF token (double-submit, starlette-csrf); bearer
requests need not, as a browser never adds a bearer header on its own.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from pydantic import BaseModel, Field
from starlette_csrf.middleware import CSRFMiddleware

from qianliyan.shared.access import store
from qianliyan.shared.access.policy import READ_WHOLE, Permission, Principal, Reach
from qianliyan.shared.access.tokens import (
    RevocationList,
    TokenRefused,
    TokenSigner,
    TokensUncheckable,
    TokenVerifier,
    load_signing_key,
)
from qianliyan.shared.errors import is_transient
from qianliyan.shared.http import Problem, problem_response, unavailable
from qianliyan.shared.settings import AccessSettings
from qianliyan.shared.text import PRINTABLE

SESSION_COOKIE = "qly_session"
CSRF_COOKIE = "qly_csrf"
CSRF_HEADER = "x-csrf-token"


# The same few rate strings come with every request: parse each once.
_rate_items = functools.cache(parse_many)


class RateLimits:
    """Moving-window limits kept in this process (each instance counts its own requests)."""

    def __init__(self) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    async def check(self, rate: str, *keys: str) -> None:
        """Count one request against `rate` for each key; a 429 once any key is over."""
        for item in _rate_items(rate):
            for key in keys:
                if not await self._limiter.hit(item, key):
                    raise await self._too_many(item, key)

    async def _too_many(self, item: RateLimitItem, key: str) -> Problem:
        stats = await self._limiter.get_window_stats(item, key)
        wait_s = max(1, int(stats.reset_time - datetime.now(UTC).timestamp()) + 1)
        return Problem(
            429,
            "Too many requests",
            f"At most {item.amount} per {item.get_expiry()} seconds are accepted here; "
            f"try again in {wait_s} seconds.",
            headers={"Retry-After": str(wait_s)},
        )


@dataclass(frozen=True, slots=True)
class Access:
    """What the door needs, built once per service by its lifespan."""

    settings: AccessSettings
    pool: asyncpg.Pool
    signer: TokenSigner
    verifier: TokenVerifier
    revocations: RevocationList
    limits: RateLimits


async def start_access(settings: AccessSettings, pool: asyncpg.Pool) -> Access:
    """The door, with the revocations read once, so it can check tokens through a
    database outage that begins later (one that is on now is waited out per request)."""
    access = build_access(settings, pool)
    # Logged by the list when it fails; the first request after the outage reads it.
    with contextlib.suppress(TokensUncheckable):
        await access.revocations.current()
    return access


def build_access(settings: AccessSettings, pool: asyncpg.Pool) -> Access:
    """The door of a service that signs people in and checks tokens with `settings`."""
    signer = TokenSigner(load_signing_key(_key_file(settings)))
    revocations = RevocationList(
        lambda: store.load_revocations(pool), refresh_s=settings.revocation_refresh_s
    )
    verifier = TokenVerifier(signer.public_key, revocations, oidc=settings.oidc)
    return Access(settings, pool, signer, verifier, revocations, RateLimits())


def _key_file(settings: AccessSettings) -> Path:
    if settings.token_key_file is None:
        raise ValueError(
            "ACCESS__TOKEN_KEY_FILE is not set: a service cannot check tokens without the "
            "site's signing key (`qianliyan stack up` generates one; see docs/access.md)"
        )
    return settings.token_key_file


def csrf_secret(settings: AccessSettings) -> str:
    """The CSRF signing secret, derived from the token key so there is no second secret."""
    digest = hashlib.sha256(b"qianliyan-csrf\0" + _key_file(settings).read_bytes())
    return digest.hexdigest()


def access_of(request: Request) -> Access:
    """The door of the running app."""
    found: Access = request.app.state.access
    return found


def client_address(request: Request) -> str:
    """The address a request came from, for per-address limits."""
    return request.client.host if request.client else "unknown"


def presented(request: Request) -> str | None:
    """The token a request carries (header or page cookie); None when it carries none."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Problem(
                401,
                "Not signed in",
                "The Authorization header must be 'Bearer <token>'.",
                headers={"WWW-Authenticate": 'Bearer error="invalid_request"'},
            )
        return token.strip()
    return request.cookies.get(SESSION_COOKIE)


async def signed_in(request: Request) -> Principal:
    """Whoever the request's token speaks for; a 401 saying why when there is none."""
    token = presented(request)
    if token is None:
        raise Problem(
            401,
            "Not signed in",
            "Sign in first: send 'Authorization: Bearer <token>' or sign in on the page.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    try:
        principal = await access_of(request).verifier.verify(token)
    except TokensUncheckable:
        raise unavailable("Tokens cannot be checked right now; retry shortly.") from None
    except TokenRefused as refused:
        raise Problem(
            401,
            "Not signed in",
            f"{str(refused).capitalize()}.",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        ) from None
    request.state.principal = principal
    return principal


SignedIn = Annotated[Principal, Depends(signed_in)]


async def still_valid(verifier: TokenVerifier, token: str) -> bool:
    """Whether a token accepted earlier (by a long-lived stream, say) is still good."""
    try:
        await verifier.verify(token)
    except TokenRefused:
        return False
    except TokensUncheckable:
        return True  # an outage is not a revocation
    return True


def forbidden(detail: str) -> Problem:
    """A 403 that says what the principal lacks."""
    return Problem(403, "Not allowed", detail)


def require(permission: Permission) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency: the signed-in principal, who must hold `permission` (to some reach;
    to every unit's for what is read whole, `READ_WHOLE`, not narrowed to units)."""

    async def holding(principal: SignedIn) -> Principal:
        if not principal.may(permission):
            raise forbidden(f"{principal.subject} may not do this (it needs {permission}).")
        if permission in READ_WHOLE and principal.reach(permission) is not Reach.ALL:
            raise forbidden(
                f"{principal.subject} holds {permission} for some units only, and this is "
                "read for every unit."
            )
        return principal

    return holding


class SignIn(BaseModel):
    """A user name and password."""

    username: str = Field(min_length=1, max_length=100, pattern=PRINTABLE)
    password: str = Field(min_length=1, max_length=200)


class SignedInAs(BaseModel):
    """Who the token speaks for, and until when."""

    username: str
    display_name: str
    roles: list[str]
    units: list[str]
    expires_at: datetime | None = None


class TokenIssued(SignedInAs):
    """A token for an API client: send it as `Authorization: Bearer <access_token>`."""

    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth 2 token type, not a secret


def _as_signed_in(principal: Principal) -> SignedInAs:
    return SignedInAs(
        username=principal.subject,
        display_name=principal.display_name,
        roles=sorted(role.value for role in principal.roles),
        units=sorted(principal.units),
    )


def auth_router() -> APIRouter:
    """Sign-in for API clients (a token) and for pages (a session cookie), and sign-out."""
    router = APIRouter(prefix="/v1/auth", tags=["access"])

    async def sign_in(
        request: Request, credentials: SignIn, *, via: str, replacing: str | None = None
    ) -> TokenIssued:
        """Check the password and issue a token; `replacing`, the token of the page's
        session cookie the new one replaces, is signed out first."""
        access = access_of(request)
        address = client_address(request)
        await access.limits.check(
            access.settings.sign_in_limit,
            f"sign-in:address:{address}",
            f"sign-in:user:{credentials.username}",
        )
        try:
            user = await store.check_password(
                access.pool, credentials.username, credentials.password
            )
            if user is not None and replacing:
                await _end_replaced_session(access, replacing, by=user.username)
            await store.record_sign_in(
                access.pool,
                username=credentials.username,
                signed_in=user is not None,
                via=via,
                address=address,
            )
        except Exception as exc:
            if is_transient(exc):
                raise unavailable("Signing in is unavailable right now; retry shortly.") from None
            raise
        if user is None:
            raise Problem(
                401,
                "Sign-in failed",
                "The user name or password is wrong, or the account is disabled.",
            )
        issued = access.signer.for_user(
            username=user.username,
            display_name=user.display_name,
            roles=user.roles,
            units=user.units,
            ttl=timedelta(seconds=access.settings.session_ttl_s),
        )
        return TokenIssued(
            username=user.username,
            display_name=user.display_name,
            roles=list(user.roles),
            units=list(user.units),
            expires_at=issued.expires_at,
            access_token=issued.token,
        )

    @router.post("/token", response_model=TokenIssued)
    async def token(request: Request, credentials: SignIn) -> TokenIssued:
        """Sign in with a user name and password; the answer holds a bearer token."""
        return await sign_in(request, credentials, via="token")

    @router.post("/session", response_model=SignedInAs)
    async def session(request: Request, credentials: SignIn, response: Response) -> SignedInAs:
        """Sign a page in: the token goes into an HttpOnly cookie that scripts cannot read.
        The session whose cookie it replaces ends: on a shared desk or phone, a sign-out
        the server never took would otherwise leave the last person's token working."""
        # Exempt from the CSRF check (there is no session to forge before it), it is still
        # refused to another site's page, which could otherwise end a session or sign a
        # desk in as someone else: a sibling host is "same-site", and sends the cookie.
        if request.headers.get("sec-fetch-site") in ("same-site", "cross-site"):
            raise Problem(
                403,
                "Sign-in from another site",
                "A page signs in from its own origin only: open the page and sign in there.",
            )
        issued = await sign_in(
            request, credentials, via="page", replacing=request.cookies.get(SESSION_COOKIE)
        )
        response.set_cookie(
            SESSION_COOKIE,
            issued.access_token,
            max_age=access_of(request).settings.session_ttl_s,
            httponly=True,
            secure=access_of(request).settings.secure_cookies,
            samesite="strict",
            path="/",
        )
        return SignedInAs.model_validate(issued.model_dump(exclude={"access_token"}))

    @router.delete("/session", status_code=204)
    async def sign_out(request: Request, principal: SignedIn) -> Response:
        """Sign out: the token stops working on every service, and the cookie is dropped. An
        identity provider's token without an id (jti) cannot be revoked alone: every token
        of that person issued until now stops working."""
        via = "token" if request.headers.get("authorization") else "page"
        await _sign_out(access_of(request), principal, via=via)
        response = Response(status_code=204)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @router.get("/me", response_model=SignedInAs)
    async def me(principal: SignedIn) -> SignedInAs:
        """Who the presented token speaks for."""
        return _as_signed_in(principal)

    return router


async def _sign_out(
    access: Access, principal: Principal, *, via: str, replaced_by: str | None = None
) -> None:
    if principal.token_id is None:
        # Only an identity provider's token can lack an id, and revocation names tokens
        # by it: every token of the person issued until now is voided instead. (A page's
        # cookie holds a token of ours, so a replaced session is never one of these.)
        await store.sign_out_everywhere(
            access.pool, principal.subject, issued_at=principal.issued_at, via=via
        )
    else:
        await store.sign_out(
            access.pool,
            principal.token_id,
            username=principal.subject,
            # Void for as long as the token would work: a machine token's is days to years.
            expires_at=principal.expires_at
            or datetime.now(UTC) + timedelta(seconds=access.settings.session_ttl_s),
            via=via,
            replaced_by=replaced_by,
        )
    access.revocations.forget()


async def _end_replaced_session(access: Access, replaced: str, *, by: str) -> None:
    """Sign out the token of the session cookie a page's sign-in (of `by`) replaces, if it
    still works; a cookie that no longer does (expired, signed out) has nothing to end."""
    # The new session is not handed out while the old one may go on working: an outage
    # here is the sign-in's 503 (a database one is made so by the sign-in's own handler).
    try:
        principal = await access.verifier.verify(replaced)
    except TokenRefused:
        return
    except TokensUncheckable:
        raise unavailable("Signing in is unavailable right now; retry shortly.") from None
    await _sign_out(access, principal, via="page", replaced_by=by)


class _CsrfProblems(CSRFMiddleware):
    """starlette-csrf, answering a refusal in the project's problem-details shape."""

    def _get_error_response(self, request: Any) -> Response:
        return problem_response(
            Problem(
                403,
                "CSRF check failed",
                f"A signed-in page must send the {CSRF_HEADER} header with the value of the "
                f"{CSRF_COOKIE} cookie; reload the page and try again.",
            )
        )


def install_access(app: FastAPI, settings: AccessSettings, *, sign_in: bool = True) -> None:
    """The door of a service: CSRF checks for cookie-borne requests, and sign-in."""
    app.add_middleware(
        _CsrfProblems,
        secret=csrf_secret(settings),
        sensitive_cookies={SESSION_COOKIE},
        # Signing in sets the session cookie; there is nothing to forge before it.
        exempt_urls=[re.compile(r"^/v1/auth/(session|token)$")],
        cookie_name=CSRF_COOKIE,
        cookie_secure=settings.secure_cookies,
        cookie_samesite="strict",
        header_name=CSRF_HEADER,
    )
    if sign_in:
        app.include_router(auth_router())
