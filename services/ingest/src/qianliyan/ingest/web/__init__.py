"""The reporter's web page: an offline-first form served by ingest on its own origin.

The page, its assets and its service worker are plain files (no build step); this module
only serves them with the headers a phone browser needs. The page and the API share an
origin, so the Content-Security-Policy can allow nothing but 'self'.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR = WEB_DIR / "static"

# blob: and data: images are the previews of photos picked on the phone; blob: workers are
# how browser-image-compression runs off the main thread (it loads its own copy from
# /static/vendor, never a CDN).
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob: data:",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "manifest-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "geolocation=(self), camera=(self), microphone=()",
    # File names carry no content hash, so every load revalidates (a cheap 304 via ETag);
    # the service worker is what makes the page open without a network.
    "Cache-Control": "no-cache",
}


class _WebFiles(StaticFiles):
    """Static files with the page's security and caching headers on every answer."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(SECURITY_HEADERS)
        return response


def mount_web(app: FastAPI) -> None:
    """Serve the reporter's page at `/`, its assets at `/static/…` and its worker at `/sw.js`."""

    @app.get("/", include_in_schema=False)
    async def reporter_page() -> FileResponse:
        return FileResponse(
            WEB_DIR / "index.html", media_type="text/html", headers=SECURITY_HEADERS
        )

    # At the root so that its scope covers the page; the header makes that explicit.
    @app.get("/sw.js", include_in_schema=False)
    async def service_worker() -> FileResponse:
        return FileResponse(
            WEB_DIR / "sw.js",
            media_type="text/javascript",
            headers={**SECURITY_HEADERS, "Service-Worker-Allowed": "/"},
        )

    app.mount("/static", _WebFiles(directory=STATIC_DIR), name="static")
