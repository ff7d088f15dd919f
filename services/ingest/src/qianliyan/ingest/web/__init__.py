"""The reporter's web page: an offline-first form served by ingest on its own origin.

The page, its assets and its service worker are plain files (no build step); this module
only serves them with the headers a phone browser needs (`qianliyan.shared.web`). Every
load revalidates; the service worker is what makes the page open without a network.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse

from qianliyan.shared.web import WebFiles, security_headers

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR = WEB_DIR / "static"

# blob: and data: images are the previews of photos picked on the phone; blob: workers are
# how browser-image-compression runs off the main thread (it loads its own copy from
# /static/vendor, never a CDN).
SECURITY_HEADERS = security_headers(
    {"img-src": ["blob:", "data:"], "worker-src": ["blob:"]},
    allow_features={"geolocation", "camera"},
)


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

    app.mount("/static", WebFiles(directory=STATIC_DIR, headers=SECURITY_HEADERS), name="static")
