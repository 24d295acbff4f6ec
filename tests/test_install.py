"""A plain install serves the whole product: a wheel built from this source, installed into a fresh
virtual environment and run from an empty folder, serves the pages and the libraries they load.

Offline: the wheel is built without build isolation or an index, and the fresh environment borrows
the running environment's installed dependencies (a path entry, never this source tree).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from tests.tracker_process import clean_env, free_port

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "tracker" / "browser" / "vendor"
NODE_MODULES = ROOT / "web" / "node_modules"
# What is not part of a source tree someone would `pip install`.
NOT_SOURCE = (
    ".git", ".venv", "node_modules", "data", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
    ".hypothesis", "*.so", "_lineprotocol.c",
)  # fmt: skip
CONTENT_TYPES = {".js": "javascript", ".mjs": "javascript", ".css": "text/css", ".svg": "image/svg+xml", ".png": "image/png"}


def node_module_file(vendored: Path) -> Path:
    """Where a vendored file comes from: the package's LICENSE, everything else from its dist/."""
    package, *rest = vendored.relative_to(VENDOR).parts
    return NODE_MODULES / package / ("LICENSE" if rest == ["LICENSE"] else Path("dist", *rest))


def test_the_vendored_libraries_are_the_locked_ones() -> None:
    lock = json.loads((ROOT / "web" / "package-lock.json").read_text())["packages"]
    if not NODE_MODULES.is_dir():
        pytest.skip("web/node_modules is not installed (make test installs it)")
    for package in ("leaflet", "uplot"):
        installed = json.loads((NODE_MODULES / package / "package.json").read_text())["version"]
        assert installed == lock[f"node_modules/{package}"]["version"], f"npm ci --prefix web: {package} is not the locked one"
    vendored = sorted(path for path in VENDOR.rglob("*") if path.is_file())
    assert {path.relative_to(VENDOR).parts[0] for path in vendored} == {"leaflet", "uplot"}
    for path in vendored:
        assert path.read_bytes() == node_module_file(path).read_bytes(), f"{path} is stale: run make vendor"
    for package in ("leaflet", "uplot"):
        assert (VENDOR / package / "LICENSE").is_file()  # their licences travel with them


def get(port: int, path: str) -> tuple[int, str, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        conn.close()


# How a page, script or style sheet names the site's own files it loads.
ATTRIBUTE = re.compile(r'(?:src|href)="(/[^"?#]*\.(?:js|mjs|css|svg|png))"')
IMPORT = re.compile(r'\b(?:from|import)\s*"(\.{1,2}/[^"]+\.js)"')
CSS_URL = re.compile(r"url\([\"']?([^)\"':]+\.(?:png|svg))")


def referenced(body: bytes) -> list[str]:
    text = body.decode()
    return ATTRIBUTE.findall(text) + IMPORT.findall(text) + CSS_URL.findall(text)


def load_everything(port: int, page_path: str) -> set[str]:
    """GET a page and, transitively, every file of the site it loads; each must be 200 with its type."""
    status, content_type, body = get(port, page_path)
    assert status == 200 and content_type.startswith("text/html"), (page_path, status, body[:200])
    loaded: set[str] = set()
    pending = [(path, "/") for path in referenced(body)]
    while pending:
        path, base = pending.pop()
        if not path.startswith("/"):
            path = os.path.normpath(base + path)  # relative to the file that names it
        if path in loaded:
            continue
        status, content_type, body = get(port, path)
        assert status == 200, (path, status, body[:200])
        assert CONTENT_TYPES[Path(path).suffix] in content_type, (path, content_type)
        loaded.add(path)
        if Path(path).suffix in (".js", ".mjs", ".css"):
            pending += [(child, path.rsplit("/", 1)[0] + "/") for child in referenced(body)]
    return loaded


@pytest.mark.slow
def test_a_wheel_in_a_fresh_environment_serves_the_pages_and_libraries(tmp_path: Path) -> None:
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*NOT_SOURCE), symlinks=True)
    env = {**clean_env(), "TRACKER_NO_EXTENSIONS": "1", "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    wheels = tmp_path / "wheels"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(wheels), str(source)],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert "invalid command 'bdist_wheel'" not in build.stderr, "needs setuptools>=70.1 here: make test installs it"
    assert build.returncode == 0, build.stderr
    (wheel,) = wheels.glob("tracker-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for shipped in ("tracker/browser/static/watch.html", "tracker/browser/static/activity.html", "tracker/browser/vendor/leaflet/leaflet.js",
                    "tracker/browser/vendor/uplot/uPlot.iife.min.js", "tracker/browser/vendor/leaflet/LICENSE"):  # fmt: skip
        assert shipped in names

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr
    # The dependencies, offline: this environment's installed packages as a plain path entry (its
    # .pth files, this checkout's editable install among them, are not run from there).
    (fresh_site,) = (venv / "lib").glob("python3*/site-packages")
    borrowed = [entry for entry in sys.path if entry.endswith("site-packages")]
    (fresh_site / "borrowed-dependencies.pth").write_text("\n".join(borrowed) + "\n")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run_env = {**clean_env(), "PYTHONNOUSERSITE": "1"}
    where = subprocess.run(
        [str(python), "-c", "import tracker.browser.pages as p; print(p.__file__)"],
        cwd=elsewhere, capture_output=True, text=True, env=run_env, check=True,
    )  # fmt: skip
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout  # the wheel's, not this source tree's

    tracker = venv / "bin" / "tracker"
    data_dir, port = elsewhere / "data", free_port()
    subprocess.run(
        [str(tracker), "user", "add", "rider", "--password-stdin", "--data-dir", str(data_dir)],
        input="rider-password\n", cwd=elsewhere, env=run_env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    subprocess.run(
        [str(tracker), "user", "public", "rider", "on", "--data-dir", str(data_dir)],
        cwd=elsewhere, env=run_env, check=True, capture_output=True,
    )  # fmt: skip
    with (tmp_path / "serve.log").open("wb") as log:
        server = subprocess.Popen(
            [str(tracker), "serve", "--port", str(port), "--data-dir", str(data_dir), "--log-level", "warning"],
            cwd=elsewhere, env=run_env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if get(port, "/ping")[0] == 204:
                    break
            except OSError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.1)
        home = load_everything(port, "/")
        watch = load_everything(port, "/watch/rider")
        # The whole product: the pages' own scripts and the map and chart libraries with their images.
        for path in ("/static/common.js", "/static/watch.js", "/vendor/leaflet/leaflet.js", "/vendor/leaflet/leaflet.css",
                     "/vendor/uplot/uPlot.iife.min.js", "/vendor/uplot/uPlot.min.css", "/vendor/leaflet/images/layers.png"):  # fmt: skip
            assert path in home | watch, sorted(home | watch)
        assert any(path.startswith("/static/watch/") for path in watch)  # the watch page's modules
        activity = load_everything(port, "/activity/1")  # the page is served for any id; its data needs a reader
        assert {"/static/activity.js", "/static/activity/data.js", "/static/activity.css", "/static/watch/charts.js"} <= activity
    finally:
        server.terminate()
        server.wait(timeout=30)
