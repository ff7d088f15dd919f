"""Tokens: signed by the project (JWT, Ed25519) or by a site's OpenID Connect provider.

Every service verifies a token itself, from the signature, the expiry and the list of
revoked tokens; no service trusts another because of where a request came from.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from qianliyan.shared.access.policy import Permission, Principal, parse_roles
from qianliyan.shared.errors import is_transient
from qianliyan.shared.settings import OidcSettings

log = logging.getLogger(__name__)

ISSUER = "qianliyan"
AUDIENCE = "qianliyan"
_ALGORITHM = "EdDSA"
# Clocks of phones and servers drift; a few seconds of it must not refuse a fresh token.
_LEEWAY_S = 30


class TokenRefused(Exception):
    """The token is not accepted; `str()` says why, in words fit for a 401."""


def generate_signing_key() -> bytes:
    """A new Ed25519 private key, as PEM, for a site that signs its own tokens."""
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    """The private key in `path`, or ValueError saying what is wrong with the file."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(f"cannot load the token signing key from {path}: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} holds a {type(key).__name__}; an Ed25519 key is needed")
    return key


def new_token_id() -> str:
    """An unguessable id for a token, the handle by which it is revoked."""
    return secrets.token_urlsafe(16)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token as handed out once, with its id and when it stops working."""

    token: str
    token_id: str
    expires_at: datetime


class TokenSigner:
    """Issues the project's own tokens, for people who signed in and for machines."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.public_key = key.public_key()

    def for_user(
        self,
        *,
        username: str,
        display_name: str,
        roles: Iterable[str],
        units: Iterable[str],
        ttl: timedelta,
    ) -> IssuedToken:
        """A person's token, good for `ttl` (a shift, say)."""
        return self._sign(
            {
                "sub": username,
                "name": display_name,
                "kind": "user",
                "roles": sorted(roles),
                "units": sorted(units),
            },
            expires_at=datetime.now(UTC) + ttl,
        )

    def for_machine(
        self,
        *,
        token_id: str,
        name: str,
        scopes: Iterable[str],
        units: Iterable[str],
        expires_at: datetime,
    ) -> IssuedToken:
        """An integration's token: only `scopes`, until it expires or is revoked."""
        return self._sign(
            {
                "sub": f"token:{name}",
                "name": name,
                "kind": "machine",
                "scopes": sorted(scopes),
                "units": sorted(units),
            },
            expires_at=expires_at,
            token_id=token_id,
        )

    def _sign(
        self, claims: dict[str, Any], *, expires_at: datetime, token_id: str | None = None
    ) -> IssuedToken:
        token_id = token_id or new_token_id()
        # A fractional `iat` (RFC 7519 allows it) orders a token against a cut-off made in
        # the same second: disabling someone right after they signed in voids that token,
        # and signing in right after a password change gives one that works.
        now = time.time()
        payload = {
            **claims,
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": now,
            "nbf": int(now),
            "exp": int(expires_at.timestamp()),
            "jti": token_id,
        }
        return IssuedToken(
            jwt.encode(payload, self._key, algorithm=_ALGORITHM), token_id, expires_at
        )


@dataclass(frozen=True, slots=True)
class Revocations:
    """Token ids revoked, and per subject the moment before which its tokens are void."""

    token_ids: frozenset[str]
    cutoffs: dict[str, datetime]

    def refuses(self, *, token_id: str | None, subject: str, issued_at: datetime) -> bool:
        """Whether a token with these claims has been revoked."""
        if token_id is not None and token_id in self.token_ids:
            return True
        cutoff = self.cutoffs.get(subject)
        return cutoff is not None and issued_at < cutoff


class TokensUncheckable(Exception):
    """A token cannot be checked now (no revocations read yet, the identity provider's keys
    out of reach): an outage to wait out, a 503, never the holder's fault."""


class RevocationList:
    """The revocations in force, re-read at most every `refresh_s` seconds when asked.

    Revoking takes effect everywhere within `refresh_s`, without a query per request.
    While the database is unreachable the last list read stays in force: a report from
    the field during a database outage matters more than a revocation made during it,
    which takes effect once the database is back.
    """

    def __init__(self, load: Callable[[], Awaitable[Revocations]], *, refresh_s: float) -> None:
        self._load = load
        self._refresh_s = refresh_s
        self._current: Revocations | None = None
        self._due_at = float("-inf")
        self._lock = asyncio.Lock()

    async def current(self) -> Revocations:
        """The revocations, re-read when the copy held is older than `refresh_s`."""
        if time.monotonic() >= self._due_at:
            async with self._lock:
                if time.monotonic() >= self._due_at:
                    await self._refresh()
        if self._current is None:
            raise TokensUncheckable("the list of revoked tokens cannot be read yet")
        return self._current

    async def _refresh(self) -> None:
        # Tried again after `refresh_s` either way, so an outage costs one query per period.
        self._due_at = time.monotonic() + self._refresh_s
        try:
            self._current = await self._load()
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("revocations not refreshed, the last list read stays: %s", exc)

    def forget(self) -> None:
        """Re-read on the next request (this process just revoked something)."""
        self._due_at = float("-inf")


class OidcKeys:
    """A provider's signing keys, found through its discovery document and cached."""

    def __init__(self, settings: OidcSettings, issuer: str) -> None:
        self.settings = settings
        self.issuer = issuer
        self._client: jwt.PyJWKClient | None = None

    def _jwks_client(self) -> jwt.PyJWKClient:
        if self._client is None:
            url = f"{self.issuer.rstrip('/')}/.well-known/openid-configuration"
            with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 - https in production
                discovery = json.load(answer)
            self._client = jwt.PyJWKClient(discovery["jwks_uri"], cache_keys=True, timeout=5)
        return self._client

    async def key_for(self, token: str) -> Any:
        """The provider's key that signed `token` (fetched at most once per key id)."""

        def find() -> Any:
            return self._jwks_client().get_signing_key_from_jwt(token).key

        try:
            return await asyncio.to_thread(find)
        except (jwt.PyJWKClientConnectionError, OSError) as exc:
            raise TokensUncheckable(f"the identity provider is out of reach: {exc}") from None
        except (jwt.PyJWKClientError, KeyError, ValueError) as exc:
            raise TokenRefused(f"no key of the identity provider fits it: {exc}") from None


class TokenVerifier:
    """Turns a presented token into a `Principal`, or raises `TokenRefused` saying why."""

    def __init__(
        self,
        public_key: Ed25519PublicKey,
        revocations: RevocationList,
        *,
        oidc: OidcSettings | None = None,
    ) -> None:
        self._public_key = public_key
        self._revocations = revocations
        self._oidc = OidcKeys(oidc, oidc.issuer) if oidc is not None and oidc.issuer else None

    async def verify(self, token: str) -> Principal:
        """The principal `token` speaks for, once signature, expiry and revocation pass."""
        try:
            issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
        except jwt.PyJWTError:
            raise TokenRefused("the token is malformed") from None
        if issuer == ISSUER:
            claims = self._decode(token, self._public_key, [_ALGORITHM], ISSUER, AUDIENCE)
            principal = _own_principal(claims)
        elif self._oidc is not None and issuer == self._oidc.issuer:
            settings = self._oidc.settings
            key = await self._oidc.key_for(token)
            claims = self._decode(token, key, settings.algorithms, issuer, settings.audience)
            principal = _oidc_principal(claims, settings)
        else:
            raise TokenRefused("the token was not issued by anyone this service trusts")
        issued_at = datetime.fromtimestamp(float(claims.get("iat", 0)), UTC)
        revocations = await self._revocations.current()
        if revocations.refuses(
            token_id=principal.token_id, subject=principal.subject, issued_at=issued_at
        ):
            raise TokenRefused("the token has been revoked; sign in again")
        return principal

    @staticmethod
    def _decode(
        token: str, key: Any, algorithms: list[str], issuer: str, audience: str
    ) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                issuer=issuer,
                audience=audience,
                leeway=_LEEWAY_S,
                options={"require": ["exp", "iat", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenRefused("the token has expired; sign in again") from None
        except jwt.InvalidSignatureError:
            raise TokenRefused("the token's signature does not verify") from None
        except jwt.PyJWTError as exc:
            raise TokenRefused(f"the token is not valid: {exc}") from None
        return claims


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


def _own_principal(claims: dict[str, Any]) -> Principal:
    known_scopes = {permission.value for permission in Permission}
    return Principal(
        subject=str(claims["sub"]),
        display_name=str(claims.get("name") or claims["sub"]),
        kind="machine" if claims.get("kind") == "machine" else "user",
        roles=parse_roles(_strings(claims.get("roles"))),
        scopes=frozenset(
            Permission(scope) for scope in _strings(claims.get("scopes")) if scope in known_scopes
        ),
        units=frozenset(_strings(claims.get("units"))),
        token_id=_token_id(claims),
        expires_at=_expiry(claims),
        issued_at=datetime.fromtimestamp(float(claims["iat"]), UTC),  # required
    )


def _token_id(claims: dict[str, Any]) -> str | None:
    # An identity provider's jti comes as it is: only a non-empty text names one token (an
    # empty one would name every token that has it, a number none that revocation keeps).
    jti = claims.get("jti")
    return jti if isinstance(jti, str) and jti else None


def _expiry(claims: dict[str, Any]) -> datetime:
    return datetime.fromtimestamp(float(claims["exp"]), UTC)  # required: checked on decoding


def _oidc_principal(claims: dict[str, Any], settings: OidcSettings) -> Principal:
    # Subjects of the provider are kept apart from local user names that look the same.
    subject = f"oidc:{claims['sub']}"
    return Principal(
        subject=subject,
        display_name=str(claims.get(settings.name_claim) or claims["sub"]),
        kind="user",
        roles=parse_roles(_strings(claims.get(settings.roles_claim))),
        units=frozenset(_strings(claims.get(settings.units_claim))),
        token_id=_token_id(claims),
        expires_at=_expiry(claims),
        issued_at=datetime.fromtimestamp(float(claims["iat"]), UTC),  # required
    )
