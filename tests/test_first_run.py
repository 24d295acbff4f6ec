"""A newcomer's first run: what `make run` installs and how it passes its settings on.

The Makefile runs for real (GNU make) in a copy of the files it reads; `make -n` shows what it would
install, and `make run` itself starts a real server (from a stand-in virtual environment whose
`tracker` is this checkout's, so nothing is installed here).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.tracker_process import clean_env, free_port

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
