"""Running the tracker command in tests: in process (click's runner, cheap hashing) or as a real subprocess."""

from __future__ import annotations

import asyncio
import os
import pty
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner, Result

from tests.conftest import CHEAP_HASHING
from tests.tracker_process import clean_env
from tracker.accounts import Accounts
from tracker.cli import CliOptions, cli
from tracker.storage import AccountStore


def invoke(args: list[str], input: str | None = None, env: dict[str, str] | None = None) -> Result:
    # A fresh CliOptions per call, with a cheap hash; no TRACKER_* variable from the outer environment.
    base_env = {"TRACKER_DATA_DIR": None, "TRACKER_PORT": None, "TRACKER_SHARD_MAP": None}
    return CliRunner().invoke(
        cli, args, input=input, env={**base_env, **(env or {})}, obj=CliOptions(password_context=CHEAP_HASHING)
    )


PASSWORD = "password-1"  # 8 characters at least, as `user add` asks


def add_user(data_dir: Path, name: str, password: str = PASSWORD) -> None:
    result = invoke(["user", "add", name, "--password-stdin", "--data-dir", str(data_dir)], input=password + "\n")
    assert result.exit_code == 0, result.output


def authenticate(data_dir: Path, name: str, password: str) -> bool:
    async def check() -> bool:
        store = await AccountStore.open(data_dir)
        try:
            return await Accounts(store, password_context=CHEAP_HASHING).authenticate(name, password)
        finally:
            await store.close()

    return asyncio.run(check())


def assert_one_line_error(result: Result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0]


def run_tracker(
    *args: str, input: str | None = None, env_data_dir: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
    if env_data_dir is not None:
        env["TRACKER_DATA_DIR"] = str(env_data_dir)
    return subprocess.run(
        [sys.executable, "-m", "tracker", *args], input=input, capture_output=True, text=True, env=env, timeout=60
    )


def run_on_terminal(*args: str) -> tuple[str, str]:
    """Run `tracker ARGS` with stderr on a pseudo-terminal (where an import draws its progress) and stdout
    piped: (what the terminal showed, stdout). The command must succeed."""
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "tracker", *args], stdout=subprocess.PIPE, stderr=terminal, env=clean_env()
        )
        os.close(terminal)
        shown = b""
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the terminal's other side closed
                break
            if not chunk:
                break
            shown += chunk
        stdout = process.stdout.read().decode() if process.stdout else ""
        assert process.wait(timeout=60) == 0, shown.decode()
    finally:
        os.close(controller)
    return shown.decode(), stdout
