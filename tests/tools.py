"""The outside programs some tests run (influxd, victoria-metrics, haproxy): found, or the test skipped
with the reason, except under CI, which installs every one of them (.ci/run) and so fails instead."""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest


def missing(reason: str) -> NoReturn:
    """Skip the test for a missing optional tool; fail it under CI, where nothing may be left untested."""
    if os.environ.get("CI"):
        pytest.fail(f"CI must run this test: {reason}")
    pytest.skip(reason)


def find_tool(name: str, debian_path: str | None, why: str) -> str:
    """Debian's binary at `debian_path` if it is there, else `name` on PATH; `why` says what the tests
    need it for and which package brings it."""
    if debian_path is not None and os.access(debian_path, os.X_OK):
        return debian_path
    found = shutil.which(name)
    if found is None:
        missing(f"{name} not found: {why}")
    return found


def haproxy_binary() -> str:
    return find_tool("haproxy", "/usr/sbin/haproxy", "apt-get install haproxy to test Tracker behind a real proxy")
