"""How every service serves its web page: plain files, with strict security headers.

A page and its API share an origin, so the Content-Security-Policy allows little beyond
'self'; each service names only what its page needs on top (a phone's blob: previews, the
photo store's origin for a dispatcher's photos). There is no build step: the files on disk
are what the browser gets.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

# Directives that fetch something: 'self' and whatever the page adds.
_FETCH_DIRECTIVES = (
    "default-src",
    "script-src",
    "style-src",
    "img-src",
    "connect-src",
    "worker-src",
    "manifest-src",
)
# Directives that are the same for every page: no plugins, no <base>, no framing.
_FIXED_DIRECTIVES = (
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
)
# Powerful features a page may be allowed on its own origin; any other is refused.
_FEATURES = ("geolocation", "camera", "microphone")


def content_security_policy(extra_sources: Mapping[str, Sequence[str]] | None = None) -> str:
    """The policy: 'self' for each fetch directive, plus `extra_sources` by directive name."""
    extra = dict(extra_sources or {})
    unknown = set(extra) - set(_FETCH_DIRECTIVES)
    if unknown:
        raise ValueError(f"not a fetch directive: {', '.join(sorted(unknown))}")
    fetch = [" ".join([name, "'self'", *extra.get(name, ())]) for name in _FETCH_DIRECTIVES]
    return "; ".join([*fetch, *_FIXED_DIRECTIVES])


def security_headers(
    extra_sources: Mapping[str, Sequence[str]] | None = None,
    *,
    allow_features: Collection[str] = (),
) -> dict[str, str]:
    """The headers of every answer that makes up a page: its policy, no sniffing, no referrer."""
    refused = set(allow_features) - set(_FEATURES)
    if refused:
        raise ValueError(f"unknown browser feature: {', '.join(sorted(refused))}")
    permissions = ", ".join(
        f"{feature}=(self)" if feature in allow_features else f"{feature}=()"
        for feature in _FEATURES
    )
    return {
        "Content-Security-Policy": content_security_policy(extra_sources),
        "X-Content-Type-Options": "nosniff",
        # Photo links are signed URLs: they must not leak to another site as a Referer.
        "Referrer-Policy": "no-referrer",
        "Permissions-Policy": permissions,
        # File names carry no content hash, so every load revalidates (a cheap 304 via ETag).
        "Cache-Control": "no-cache",
    }


class WebFiles(StaticFiles):
    """Static files with the page's security and caching headers on every answer."""

    def __init__(self, *, directory: Path, headers: Mapping[str, str]) -> None:
        super().__init__(directory=directory)
        self._headers = dict(headers)

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(self._headers)
        return response
