"""The reporter's web page: an offline-first form served by ingest on its own origin.

The page, its assets and its service worker are plain files (no build step); this module
only serves them with the headers a phone browser needs (`qianliyan.shared.web`). Every
load revalidates; the service worker is what makes the page open without a network.

The files make one release, named by a digest of them all. The service worker is served
with that name and the list of files filled in, so a deploy that changes any file is a new
worker to the browser, which keeps that release's files whole in a cache of its own (each
answer says which release it is of, and a file of another release fails the install). A
phone on a weak link therefore never runs a new `app.js` beside an old `sender.js`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, Response

from qianliyan.shared.web import WebFiles, security_headers

WEB_DIR = Path(__file__).resolve().parent

# blob: and data: images are the previews of photos picked on the phone; blob: workers are
# how browser-image-compression runs off the main thread (it loads its own copy from
# /static/vendor, never a CDN).
SECURITY_HEADERS = security_headers(
    {"img-src": ["blob:", "data:"], "worker-src": ["blob:"]},
    allow_features={"geolocation", "camera"},
)
RELEASE_HEADER = "X-Qianliyan-Release"
# What `sw.js` holds where ingest fills in the release; the file stays valid JavaScript.
_RELEASE_SLOT = '"__RELEASE__"'
_SHELL_SLOT = '["__SHELL__"]'


@dataclass(frozen=True, slots=True)
class PageRelease:
    """The page's files as one release: their digest, and the paths the worker keeps."""

    name: str
    shell: tuple[str, ...]


def page_release(web_dir: Path = WEB_DIR) -> PageRelease:
    """The release the files under `web_dir` make: the page (`index.html`, served at `/`)
    and every file under `static/` but the libraries' licences, which no page loads."""
    static = web_dir / "static"
    files = sorted(
        path for path in static.rglob("*") if path.is_file() and not path.name.startswith("LICENSE")
    )
    digest = hashlib.sha256()
    for path in [web_dir / "index.html", *files]:
        content = path.read_bytes()
        digest.update(f"{path.relative_to(web_dir).as_posix()}\0{len(content)}\0".encode())
        digest.update(content)
    shell = ("/", *(f"/static/{path.relative_to(static).as_posix()}" for path in files))
    return PageRelease(digest.hexdigest()[:16], shell)


def service_worker_script(release: PageRelease, web_dir: Path = WEB_DIR) -> str:
    """`sw.js` with the release's name and files filled in."""
    script = (web_dir / "sw.js").read_text(encoding="utf-8")
    for slot in (_RELEASE_SLOT, _SHELL_SLOT):
        if script.count(slot) != 1:
            raise RuntimeError(f"{web_dir / 'sw.js'} must hold {slot} exactly once")
    return script.replace(_RELEASE_SLOT, json.dumps(release.name)).replace(
        _SHELL_SLOT, json.dumps(list(release.shell))
    )


def mount_web(app: FastAPI, web_dir: Path = WEB_DIR) -> None:
    """Serve the reporter's page at `/`, its assets at `/static/…` and its worker at `/sw.js`,
    every answer naming the release it is of."""
    release = page_release(web_dir)
    headers = {**SECURITY_HEADERS, RELEASE_HEADER: release.name}
    worker = service_worker_script(release, web_dir)

    @app.get("/", include_in_schema=False)
    async def reporter_page() -> FileResponse:
        return FileResponse(web_dir / "index.html", media_type="text/html", headers=headers)

    # At the root so that its scope covers the page; the header makes that explicit.
    @app.get("/sw.js", include_in_schema=False)
    async def service_worker() -> Response:
        return Response(
            worker,
            media_type="text/javascript",
            headers={**headers, "Service-Worker-Allowed": "/"},
        )

    app.mount("/static", WebFiles(directory=web_dir / "static", headers=headers), name="static")
