"""The dispatcher's web page: the live alert feed, an incident's reports, and the actions.

Plain files (no build step) served by notify on its own origin with the headers every
page gets (`qianliyan.shared.web`). Photos load straight from the photo store by their
signed links, so the store's public origin is the one source the policy adds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.responses import FileResponse, RedirectResponse

from qianliyan.notify.api.dependencies import NotifyResources, resources
from qianliyan.shared.settings import StorageSettings
from qianliyan.shared.web import WebFiles, security_headers

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR = WEB_DIR / "static"
PAGE_PATH = "/dispatch"


def photo_origin(storage: StorageSettings) -> str:
    """Where browsers fetch photos from: the origin of the store's signed links."""
    scheme = "https" if storage.secure else "http"
    return f"{scheme}://{storage.public_endpoint or storage.endpoint}"


def mount_web(app: FastAPI) -> None:
    """Serve the dispatcher's page at `/dispatch` (`/` leads there), its assets at `/static/…`.

    `/dispatch?alert=<incident id>` opens that alert; `unit`, `status` and `min_severity`
    set the list's filters, as the page itself writes them into its address.
    """

    @app.get("/", include_in_schema=False)
    async def root(request: Request) -> RedirectResponse:
        # The query goes along: a link in a message may name the alert to open.
        query = request.url.query
        return RedirectResponse(f"{PAGE_PATH}?{query}" if query else PAGE_PATH)

    @app.get(PAGE_PATH, include_in_schema=False)
    @app.get(f"{PAGE_PATH}/", include_in_schema=False)  # as people type it, too
    async def dispatch_page(res: Annotated[NotifyResources, Depends(resources)]) -> FileResponse:
        headers = security_headers({"img-src": [photo_origin(res.settings.storage)]})
        return FileResponse(WEB_DIR / "index.html", media_type="text/html", headers=headers)

    app.mount("/static", WebFiles(directory=STATIC_DIR, headers=security_headers()), name="static")
