"""The reporter page as one release: every file it is made of names it, and the service
worker is served with its name and its files, so a phone keeps one release whole."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from qianliyan.ingest.web import RELEASE_HEADER, WEB_DIR, mount_web, page_release


@pytest.fixture
def web_dir(tmp_path: Path) -> Path:
    """A copy of the page's files, free to change."""
    copy = tmp_path / "web"
    shutil.copytree(WEB_DIR, copy, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    return copy


def served(web_dir: Path) -> httpx.AsyncClient:
    """ingest's page over `web_dir`, answered in process."""
    app = FastAPI()
    mount_web(app, web_dir)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def filled_in(script: str) -> tuple[str, list[str]]:
    """The release and the files that the served `sw.js` names."""
    release = re.search(r'^const RELEASE = ("[^"\n]*");$', script, re.MULTILINE)
    shell = re.search(r"^const SHELL = (\[.*\]);$", script, re.MULTILINE)
    assert release and shell, script[:600]
    return json.loads(release[1]), json.loads(shell[1])


async def test_the_worker_names_the_release_every_file_of_the_page_is_of(web_dir: Path) -> None:
    async with served(web_dir) as client:
        worker = await client.get("/sw.js")
        answers = {path: await client.get(path) for path in filled_in(worker.text)[1]}
    assert worker.status_code == 200
    assert worker.headers["content-type"].startswith("text/javascript")
    assert worker.headers["service-worker-allowed"] == "/"
    release, shell = filled_in(worker.text)
    assert release == page_release(web_dir).name
    assert re.fullmatch(r"[0-9a-f]{16}", release)
    assert worker.headers[RELEASE_HEADER] == release

    # The page and every script, style and library it loads, and nothing it does not.
    assert {"/", "/static/js/app.js", "/static/js/sender.js", "/static/css/app.css"} <= set(shell)
    assert "/static/vendor/idb/index.js" in shell
    on_disk = {
        f"/static/{p.relative_to(web_dir / 'static').as_posix()}"
        for p in (web_dir / "static").rglob("*")
        if p.is_file() and not p.name.startswith("LICENSE")
    }
    assert set(shell) == {"/", *on_disk}
    for path, answer in answers.items():
        assert answer.status_code == 200, path
        assert answer.headers[RELEASE_HEADER] == release, path


@pytest.mark.parametrize(
    "changed", ["index.html", "static/js/sender.js", "static/vendor/idb/index.js"]
)
async def test_a_change_to_any_file_of_the_page_is_a_new_release(
    web_dir: Path, changed: str
) -> None:
    before = page_release(web_dir)
    with (web_dir / changed).open("a", encoding="utf-8") as file:
        file.write("\n")
    after = page_release(web_dir)
    assert after.name != before.name
    assert after.shell == before.shell
    async with served(web_dir) as client:
        release, _ = filled_in((await client.get("/sw.js")).text)
    assert release == after.name


def test_a_new_file_is_a_new_release_and_kept_with_it(web_dir: Path) -> None:
    before = page_release(web_dir)
    (web_dir / "static" / "js" / "map.js").write_text("export const map = 1;\n")
    after = page_release(web_dir)
    assert after.name != before.name
    assert "/static/js/map.js" in after.shell


def test_a_licence_is_not_part_of_the_release(web_dir: Path) -> None:
    before = page_release(web_dir)
    (web_dir / "static" / "vendor" / "idb" / "LICENSE").write_text("changed\n")
    assert page_release(web_dir) == before


def test_a_worker_without_its_slots_is_refused_when_the_page_is_mounted(web_dir: Path) -> None:
    script = web_dir / "sw.js"
    script.write_text(script.read_text().replace('"__RELEASE__"', '"fixed"'))
    with pytest.raises(RuntimeError, match=r"sw\.js must hold \"__RELEASE__\" exactly once"):
        served(web_dir)
