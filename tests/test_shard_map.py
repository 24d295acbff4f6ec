"""The shard map: its rules, `tracker shard which`, and that the HAProxy configuration made from it
is one the real haproxy accepts."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.cli_helpers import invoke
from tracker.shard import InvalidShardMap, parse_map

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
MAP = "shard a 10.0.0.1:8086\nshard b 10.0.0.2:8086  # the second machine\ndefault a\nalice b\nbob a\n"


def test_a_user_is_on_the_listed_shard_or_the_default() -> None:
    shard_map = parse_map(MAP)
    assert shard_map.shards == {"a": "10.0.0.1:8086", "b": "10.0.0.2:8086"}
    assert [shard_map.shard_of(user) for user in ("alice", "bob", "zed")] == ["b", "a", "a"]
    moved = shard_map.with_user("bob", "b")
    assert moved.shard_of("bob") == "b" and shard_map.shard_of("bob") == "a"
    assert parse_map(moved.text()) == moved


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("default a\n", "no 'shard NAME HOST:PORT' line"),
        ("shard a 10.0.0.1:8086\n", "no 'default SHARD' line"),
        ("shard a 10.0.0.1\ndefault a\n", "line 1: shard address '10.0.0.1' must be HOST:PORT"),
        ("shard A! 10.0.0.1:1\ndefault a\n", "line 1: shard name 'A!'"),
        ("shard a h:1\nshard a h:2\ndefault a\n", "line 2: shard 'a' is defined twice"),
        ("shard a h:1\ndefault a\nalice a\nalice a\n", "line 4: user 'alice' is listed twice"),
        ("shard a h:1\ndefault a\nalice c\n", "shard 'c' is used but has no 'shard' line"),
        ("shard a h:1\ndefault a\nal/ice a\n", "line 3:"),
        ("shard a h:1\ndefault a\nalice a b\n", "line 3: a user line is 'USER SHARD'"),
    ],
)
def test_a_bad_map_is_refused_naming_the_line_and_rule(text: str, message: str) -> None:
    with pytest.raises(InvalidShardMap, match=None) as caught:
        parse_map(text, "m")
    assert message in str(caught.value)


def test_which_prints_the_shard_and_its_address(tmp_path: Path) -> None:
    (tmp_path / "map").write_text(MAP)
    assert invoke(["shard", "which", "alice", "--map", str(tmp_path / "map")]).output == "b 10.0.0.2:8086\n"
    assert invoke(["shard", "which", "zed", "--map", str(tmp_path / "map")]).output == "a 10.0.0.1:8086\n"
    bad = invoke(["shard", "which", "a/b", "--map", str(tmp_path / "map")])
    assert bad.exit_code == 1 and "a/b" in bad.output
    missing = invoke(["shard", "which", "alice", "--map", str(tmp_path / "nope")])
    assert missing.exit_code == 1 and "cannot read the shard map" in missing.output


def test_the_generated_configuration_is_valid_for_haproxy(tmp_path: Path) -> None:
    if not os.path.exists(HAPROXY):
        if os.environ.get("CI"):
            pytest.fail("haproxy is missing: .ci/run installs Debian's haproxy")
        pytest.skip("haproxy is not installed (apt-get install haproxy)")
    (tmp_path / "map").write_text(MAP)
    result = invoke(["shard", "haproxy-config", "--map", str(tmp_path / "map"), "--out", str(tmp_path / "proxy")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "proxy" / "users.map").read_text() == "alice shard_b\nbob shard_a\n"
    checked = subprocess.run([HAPROXY, "-c", "-f", str(tmp_path / "proxy" / "haproxy.cfg")], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_move_that_cannot_go_ahead_changes_nothing(tmp_path: Path) -> None:
    from tests.cli_helpers import add_user

    add_user(tmp_path / "a", "bob")
    add_user(tmp_path / "b", "alice")
    (tmp_path / "map").write_text(MAP)
    (tmp_path / "proxy").mkdir()

    def move(name: str, to: str, source: str, target: str) -> str:
        result = invoke(["shard", "move", name, "--map", str(tmp_path / "map"), "--to", to,
                         "--from-dir", str(tmp_path / source), "--to-dir", str(tmp_path / target),
                         "--proxy-dir", str(tmp_path / "proxy")])  # fmt: skip
        assert result.exit_code == 1, result.output
        return result.output

    assert "no shard 'c'" in move("alice", "c", "b", "a")
    assert "alice is already on shard b" in move("alice", "b", "a", "b")
    assert "no user 'alice' in" in move("alice", "a", "a", "b")  # the wrong data folder given as the source
    assert "cannot reach HAProxy's runtime API" in move("alice", "a", "b", "a")  # no proxy: nothing is held
    assert (tmp_path / "map").read_text() == MAP
    assert (tmp_path / "b" / "accounts.sqlite").exists() and not list((tmp_path / "a").glob("users/alice*"))
