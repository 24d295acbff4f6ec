"""The shard map: its rules, `tracker shard which`, and that the HAProxy configuration made from it
is one the real haproxy accepts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.cli_helpers import PASSWORD, add_user, assert_one_line_error, authenticate, invoke
from tests.tools import haproxy_binary
from tracker.shard import InvalidShardMap, haproxy_config, parse_map

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
    from_env = invoke(["shard", "which", "alice"], env={"TRACKER_SHARD_MAP": str(tmp_path / "map")})
    assert from_env.output == "b 10.0.0.2:8086\n"
    missing = invoke(["shard", "which", "alice", "--map", str(tmp_path / "nope")])
    assert missing.exit_code == 1 and "cannot read the shard map" in missing.output


def test_the_generated_configuration_is_valid_for_haproxy(tmp_path: Path) -> None:
    haproxy = haproxy_binary()
    (tmp_path / "map").write_text(MAP)
    result = invoke(["shard", "haproxy-config", "--map", str(tmp_path / "map"), "--out", str(tmp_path / "proxy")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "proxy" / "users.map").read_text() == "alice shard_b\nbob shard_a\n"
    checked = subprocess.run([haproxy, "-c", "-f", str(tmp_path / "proxy" / "haproxy.cfg")], capture_output=True, text=True)
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


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("shard a h:1 data\ndefault a\n", "line 1: data folder 'data' must be an absolute path"),
        ("shard a h:1 /srv/a extra\ndefault a\n", "line 1: a shard line is 'shard NAME HOST:PORT [DATA_DIR]'"),
    ],
)
def test_a_bad_data_folder_on_a_shard_line_is_refused(text: str, message: str) -> None:
    with pytest.raises(InvalidShardMap) as caught:
        parse_map(text, "m")
    assert message in str(caught.value)


def test_a_shard_line_may_name_its_data_folder_which_the_proxy_ignores() -> None:
    with_folders = parse_map("shard a 10.0.0.1:8086 /srv/tracker-a/data\nshard b 10.0.0.2:8086\ndefault a\nalice b\n")
    assert with_folders.data_dirs == {"a": Path("/srv/tracker-a/data")}
    assert with_folders.text().splitlines()[0] == "shard a 10.0.0.1:8086 /srv/tracker-a/data"
    assert parse_map(with_folders.with_user("bob", "b").text()).data_dirs == {"a": Path("/srv/tracker-a/data")}
    without = parse_map("shard a 10.0.0.1:8086\nshard b 10.0.0.2:8086\ndefault a\nalice b\n")
    users_map = Path("/etc/haproxy/users.map")
    assert haproxy_config(with_folders, bind="*:8086", users_map_path=users_map) == haproxy_config(
        without, bind="*:8086", users_map_path=users_map
    )


@pytest.fixture
def sharded(tmp_path: Path) -> Path:
    """Shards a and b with their data folders here; shard c on another machine (no folder in its line)."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    map_file = tmp_path / "shards.map"
    map_file.write_text(
        f"shard a 10.0.0.1:8086 {tmp_path / 'a'}\nshard b 10.0.0.2:8086 {tmp_path / 'b'}\nshard c 10.0.0.3:8086\n"
        "default a\nalice b\nerin b\ncarol c\n"
    )
    return map_file


def _accounts_in(data_dir: Path) -> set[str]:
    listed = invoke(["user", "list", "--data-dir", str(data_dir)])
    assert listed.exit_code == 0, listed.output
    return {line.split()[0] for line in listed.stdout.splitlines()[1:]}


def test_account_commands_work_on_the_shard_the_map_names(sharded: Path) -> None:
    root, m = sharded.parent, str(sharded)
    for args in (["user", "add", "alice", "--map", m], ["user", "--map", m, "add", "erin"], ["user", "add", "zed", "--map", m]):
        result = invoke([*args, "--password-stdin"], input=PASSWORD + "\n")
        assert result.exit_code == 0, result.output
    result = invoke(["user", "add", "bob", "--password-stdin"], input=PASSWORD + "\n", env={"TRACKER_SHARD_MAP": m})
    assert result.exit_code == 0, result.output
    assert _accounts_in(root / "b") == {"alice", "erin"}  # named in the map
    assert _accounts_in(root / "a") == {"zed", "bob"}  # not named: the default shard
    result = invoke(["user", "passwd", "alice", "--map", m, "--password-stdin"], input="another-pw-1\n")
    assert result.exit_code == 0, result.output
    assert authenticate(root / "b", "alice", "another-pw-1")
    token = invoke(["token", "create", "alice", "--label", "phone", "--map", m])
    assert token.exit_code == 0 and token.stdout.startswith("trk_alice."), token.output
    assert "phone" in invoke(["token", "list", "alice", "--data-dir", str(root / "b")]).stdout
    assert invoke(["share", "add", "alice", "erin", "--map", m]).exit_code == 0
    assert invoke(["share", "list", "alice", "--data-dir", str(root / "b")]).stdout.split()[-2:] == ["alice", "erin"]
    link = invoke(["link", "create", "alice", "--map", m, "--public-url", "https://t.example"])
    assert link.exit_code == 0 and link.stdout.startswith("https://t.example/watch/alice?token="), link.output
    assert invoke(["user", "public", "zed", "on", "--map", m]).exit_code == 0
    for group, empty in (("alert", "no alerts"), ("course", "no courses")):  # found on b, where alice is
        listed = invoke([group, "--map", m, "list", "alice"])
        assert listed.exit_code == 0 and listed.stderr == f"{empty}\n", listed.output
    deleted = invoke(["user", "delete", "erin", "--map", m, "--yes"])
    assert deleted.exit_code == 0 and "1 share: erin can read alice" in deleted.output, deleted.output  # b's share
    assert _accounts_in(root / "b") == {"alice"}


def test_account_commands_refuse_what_the_map_cannot_do_here(sharded: Path) -> None:
    root, m = sharded.parent, str(sharded)
    for name, folder in (("alice", "b"), ("zed", "a")):
        add_user(root / folder, name)
    across = invoke(["share", "add", "alice", "zed", "--map", m])
    assert_one_line_error(across, "alice is on shard b and zed is on shard a", "only between users of the same shard")
    elsewhere = invoke(["user", "add", "carol", "--map", m, "--password-stdin"], input=PASSWORD + "\n")
    assert_one_line_error(
        elsewhere, "shard c (10.0.0.3:8086) has no data folder in", "carol is there: run the command on that machine"
    )
    for group in ("token", "link", "alert", "course"):
        assert_one_line_error(invoke([group, "list", "carol", "--map", m]), "shard c (10.0.0.3:8086)")
    (root / "b").rename(root / "b-renamed")  # a folder the map names that is not there is never made
    gone = invoke(["user", "add", "erin", "--map", m, "--password-stdin"], input=PASSWORD + "\n")
    assert_one_line_error(gone, f"{root / 'b'}, shard b's data folder in", "is not a folder here")
    assert not (root / "b").exists()
    (root / "b-renamed").rename(root / "b")
    both = invoke(["user", "passwd", "alice", "--map", m, "--data-dir", str(root / "a"), "--password-stdin"])
    assert both.exit_code == 2 and "--map picks the data folder: leave out --data-dir" in both.output
    both = invoke(["user", "--data-dir", str(root / "a"), "passwd", "alice", "--map", m, "--password-stdin"])
    assert both.exit_code == 2 and "leave out --data-dir" in both.output
    from_env = invoke(["token", "list", "alice", "--map", m], env={"TRACKER_DATA_DIR": str(root / "a")})
    assert from_env.exit_code == 0, from_env.output  # the environment's data folder gives way to the map
    nobody = invoke(["share", "list", "--map", m])
    assert nobody.exit_code == 2 and "with --map, name the user" in nobody.output
    assert _accounts_in(root / "b") == {"alice"} and _accounts_in(root / "a") == {"zed"}


def test_a_move_takes_the_data_folders_from_the_map(sharded: Path) -> None:
    root, m = sharded.parent, str(sharded)
    add_user(root / "b", "alice")
    add_user(root / "a", "zed")
    (root / "proxy").mkdir()

    def move(name: str, to: str) -> str:
        result = invoke(["shard", "move", name, "--map", m, "--to", to, "--proxy-dir", str(root / "proxy")])
        assert result.exit_code != 0, result.output
        return result.output

    # Both folders found in the map: the move goes as far as holding alice at the (absent) proxy.
    assert "cannot reach HAProxy's runtime API" in move("alice", "a")
    to_c = move("alice", "c")
    assert "shard c (10.0.0.3:8086) has no data folder in" in to_c and "give --to-dir" in to_c
    assert "no shard 'd' in" in move("alice", "d")
    assert _accounts_in(root / "b") == {"alice"}
