"""A newcomer's first run: what `make run` installs and how it passes its settings on.

The Makefile runs for real (GNU make) in a copy of the files it reads; `make -n` shows what it would
install, and `make run` itself starts a real server (from a stand-in virtual environment whose
`tracker` is this checkout's, so nothing is installed here).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import CHEAP_HASHING, AddUser
from tests.sse import sign_in
from tests.tracker_process import TrackerProcess, clean_env, free_port
from tracker.app import create_app
from tracker.config import Settings

ROOT = Path(__file__).resolve().parent.parent
# What the Makefile's install rules depend on.
MAKE_INPUTS = ("Makefile", "pyproject.toml", "setup.py", "tracker/_lineprotocol.pyx")

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")


def make_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "checkout"
    for name in MAKE_INPUTS:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, folder / name)
        os.utime(folder / name, (time.time() - 3600, time.time() - 3600))  # older than any stamp made now
    return folder


def make(folder: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        ["make", "--no-print-directory", *args], cwd=folder, capture_output=True, text=True, timeout=60,
        env={**clean_env(), **(env or {})},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def installs(dry_run: str) -> list[str]:
    return [line for line in dry_run.splitlines() if "pip install" in line]


def test_make_run_installs_only_what_the_server_needs(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    assert installs(make(folder, "-n", "run")) == [".venv/bin/pip install -e ."]
    # The test tools come with `make test` (and the targets built on it), the server too.
    assert installs(make(folder, "-n", "test")) == [".venv/bin/pip install -e '.[test]'"]
    assert installs(make(folder, "-n", "test-fast")) == [".venv/bin/pip install -e '.[test]'"]


def test_after_make_test_make_run_installs_nothing_more(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    (folder / ".venv").mkdir()
    (folder / ".venv" / ".installed-test").touch()  # what `make test`'s install leaves
    (folder / ".venv" / ".installed-run").touch()
    assert installs(make(folder, "-n", "run")) == []
    # And a server-only install is not enough for the tests.
    (folder / ".venv" / ".installed-test").unlink()
    assert installs(make(folder, "-n", "test")) == [".venv/bin/pip install -e '.[test]'"]


def test_make_run_passes_only_the_settings_it_is_given(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    serve = [line for line in make(folder, "-n", "run").splitlines() if " serve" in line]
    assert [line.split() for line in serve] == [[".venv/bin/tracker", "serve"]]  # the environment decides
    serve = [line for line in make(folder, "-n", "run", "PORT=9000", "HOST=0.0.0.0").splitlines() if " serve" in line]
    assert [line.split() for line in serve] == [[".venv/bin/tracker", "serve", "--host", "0.0.0.0", "--port", "9000"]]


def stand_in_venv(folder: Path) -> None:
    """A .venv whose `tracker` runs this checkout, its installs already made."""
    bin_dir = folder / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    tracker = bin_dir / "tracker"
    tracker.write_text(f'#!/bin/sh\nPYTHONPATH={ROOT} exec {sys.executable} -m tracker "$@"\n')
    tracker.chmod(0o755)
    for stamp in (".installed-run", ".installed-test"):
        (folder / ".venv" / stamp).touch()


def serve_with_make(folder: Path, *args: str, env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    """`make run ARGS` with `env`, until /ping on `port` answers 204."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["make", "--no-print-directory", "run", *args], cwd=folder, stdout=out, stderr=subprocess.STDOUT,
            env={**clean_env(), **env}, start_new_session=True,  # its own group: make, its shell and the server stop together
        )  # fmt: skip
    deadline = time.monotonic() + 30
    while not ping(port):
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            raise AssertionError(f"make run did not serve on port {port}:\n{log.read_text()}")
        time.sleep(0.1)
    return process


def ping(port: int) -> bool:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        conn.request("GET", "/ping")
        return conn.getresponse().status == 204
    except OSError:
        return False
    finally:
        conn.close()


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def tracker_cli(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "tracker", *args], input=stdin, capture_output=True, text=True, timeout=60, cwd=ROOT,
        env={**clean_env(), **(env or {})},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.slow
def test_tracker_port_in_the_environment_is_the_port_make_run_serves_on(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    stand_in_venv(folder)
    data_dir, port = tmp_path / "data", free_port()
    process = serve_with_make(
        folder, env={"TRACKER_PORT": str(port), "TRACKER_DATA_DIR": str(data_dir)}, port=port, log=tmp_path / "log"
    )
    try:
        tracker_cli("user", "add", "rider", "--password-stdin", "--data-dir", str(data_dir), stdin="rider-password\n")
        # The share link a newcomer makes in another shell, without the server's environment.
        url = tracker_cli("link", "create", "rider", "--data-dir", str(data_dir)).strip()
        assert url.startswith(f"http://127.0.0.1:{port}/watch/rider?token="), url
    finally:
        stop(process)
    # The file that tells the CLI is no stranger to the data folder's check.
    assert "unexpected" not in tracker_cli("check", "--data-dir", str(data_dir))


@pytest.mark.slow
def test_share_links_follow_make_run_host_and_port(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    stand_in_venv(folder)
    data_dir, port = tmp_path / "data", free_port()
    process = serve_with_make(
        folder, "HOST=0.0.0.0", f"PORT={port}", f"DATA={data_dir}", env={}, port=port, log=tmp_path / "log"
    )
    try:
        tracker_cli("user", "add", "rider", "--password-stdin", "--data-dir", str(data_dir), stdin="rider-password\n")
        url = tracker_cli("link", "create", "rider", "--data-dir", str(data_dir)).strip()
        # Listening everywhere: the link names this machine as others reach it, never localhost.
        host = url.removeprefix("http://").split("/")[0]
        assert host.endswith(f":{port}") and host.split(":")[0] not in ("localhost", "127.0.0.1", "0.0.0.0"), url
        # A public URL given to the CLI still wins.
        assert tracker_cli(
            "link", "create", "rider", "--data-dir", str(data_dir), env={"TRACKER_PUBLIC_URL": "https://t.example.org"}
        ).startswith("https://t.example.org/watch/rider?token=")
    finally:
        stop(process)


def readme_blocks(section: str) -> list[str]:
    """The shell blocks of a README section, as written."""
    readme = (ROOT / "README.md").read_text()
    text = readme[readme.index(f"\n## {section}\n") :]
    text = text[: text.index("\n## ", 1)]
    return re.findall(r"```sh\n(.*?)```", text, re.DOTALL)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_readme_first_steps_write_samples_the_query_then_finds(tmp_path: Path) -> None:
    first, delete = readme_blocks("First steps")[:2]
    server = TrackerProcess(tmp_path / "data", tmp_path / "log")
    server.add_user("test", "test1234")  # what its `tracker user add test` asks for
    steps = "\n".join(line for line in first.splitlines() if "tracker user add" not in line)

    def run(script: str) -> str:
        script = script.replace("127.0.0.1:8086", f"127.0.0.1:{server.port}")
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return result.stdout

    server.start()
    try:
        output = run(steps)
        assert output.startswith("HTTP/1.1 204"), output
        answer = json.loads(output.splitlines()[-1])  # the query's
        (series,) = answer["results"][0]["series"]
        assert len(series["values"]) == 4, series  # every sample written: they are from now, not 2015
        run(delete)
        query = "\n".join(first.splitlines()[-2:])  # the block's last command, over two lines
        after = json.loads(run(query).splitlines()[-1])
        assert "series" not in after["results"][0], after  # the deletion took them all
    finally:
        server.close()


async def test_the_owner_page_hands_out_links_others_can_open(
    aiohttp_client: Callable[..., Awaitable[TestClient]], tmp_path: Path, add_user: AddUser
) -> None:
    """Served on every address but opened as localhost, the page's links name the machine as the CLI does."""

    async def link_url(settings: Settings) -> str:
        client = await aiohttp_client(create_app(settings, password_context=CHEAP_HASHING))
        csrf = await sign_in(client, "alice", "pw-alice")
        response = await client.post("/api/links", json={}, headers={"X-CSRF-Token": csrf})
        assert response.status == 201
        return str((await response.json())["url"])

    await add_user("alice", "pw-alice")
    data_dir = tmp_path / "data"
    everywhere = Settings(data_dir=data_dir, host="0.0.0.0", port=9000)
    url = await link_url(everywhere)
    assert url.startswith(everywhere.external_url() + "/watch/alice?token="), url
    assert not url.startswith(("http://127.0.0.1", "http://localhost")), url
    # Served on loopback only, the browser's own address is the one that works.
    assert (await link_url(Settings(data_dir=data_dir))).startswith("http://127.0.0.1:")
    # A public URL always wins.
    public = Settings(data_dir=data_dir, host="0.0.0.0", public_url="https://t.example.org")
    assert (await link_url(public)).startswith("https://t.example.org/watch/alice?token=")
