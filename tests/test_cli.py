from __future__ import annotations

import asyncio
import dataclasses
import re
import socket
import sqlite3
from pathlib import Path

import click
import pytest

from tests.cli_helpers import PASSWORD, add_user, assert_one_line_error, authenticate, invoke, run_tracker
from tests.conftest import CHEAP_HASHING
from tracker.accounts import Accounts
from tracker.cli import cli
from tracker.config import SERVE_FLAGS, Settings, env_name
from tracker.storage import AccountStore, SampleStore


# ----- help -----


def all_command_paths(command: click.Command, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [path]
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            paths += all_command_paths(sub, (*path, name))
    return paths


def test_command_tree_is_complete() -> None:
    paths = {" ".join(p) for p in all_command_paths(cli)}
    assert paths == {
        "", "serve", "user", "user add", "user list", "user passwd", "user delete",
        "share", "share add", "share remove", "share list",
        "user public", "link", "link create", "link list", "link revoke",
        "user retention", "import", "export", "backup", "restore", "check",
        "alert", "alert set", "alert list", "alert remove",
        "token", "token create", "token list", "token revoke",
        "invite", "invite create", "invite list", "invite revoke",
        "course", "course add", "course list", "course remove",
        "shard", "shard which", "shard haproxy-config", "shard move",
    }  # fmt: skip


@pytest.mark.parametrize("path", all_command_paths(cli), ids=lambda p: " ".join(p) or "tracker")
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = invoke([*path, "--help"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage: ")
    assert len(result.output.splitlines()) > 3


# ----- user -----


def test_user_add_and_list(data_dir: Path) -> None:
    add_user(data_dir, "alice", "pass word ")
    add_user(data_dir, "bob")
    result = invoke(["user", "list", "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "CREATED", "DATA", "RETENTION"]
    assert [line.split()[0] for line in lines[1:]] == ["alice", "bob"]
    assert lines[1].split()[2] == "no"
    assert "+00:00" in lines[1].split()[1]
    # The password is the line without its newline: the trailing space belongs to it.
    assert authenticate(data_dir, "alice", "pass word ")
    assert not authenticate(data_dir, "alice", "pass word")


def test_user_list_shows_data_file(data_dir: Path) -> None:
    add_user(data_dir, "alice")
    sample_path = SampleStore(data_dir).path_for("alice")
    sample_path.parent.mkdir(parents=True, exist_ok=True)
    sqlite3.connect(sample_path).close()
    result = invoke(["user", "list", "--data-dir", str(data_dir)])
    assert result.stdout.splitlines()[1].split()[2] == "yes"


def test_data_dir_from_group_option_and_env(data_dir: Path) -> None:
    result = invoke(["user", "--data-dir", str(data_dir), "add", "alice", "--password-stdin"], input="password-1\n")
    assert result.exit_code == 0, result.output
    result = invoke(["user", "list"], env={"TRACKER_DATA_DIR": str(data_dir)})
    assert "alice" in result.stdout


def test_user_add_prompts_twice(data_dir: Path) -> None:
    result = invoke(["user", "add", "alice", "--data-dir", str(data_dir)], input="password-1\npassword-1\n")
    assert result.exit_code == 0, result.output
    assert "password-1" not in result.output  # hidden input
    assert authenticate(data_dir, "alice", "password-1")


def test_user_add_rejects_empty_password(data_dir: Path) -> None:
    result = invoke(["user", "add", "alice", "--password-stdin", "--data-dir", str(data_dir)], input="\n")
    assert_one_line_error(result, "password must not be empty")
    result = invoke(["user", "add", "alice", "--password-stdin", "--data-dir", str(data_dir)], input="")
    assert_one_line_error(result, "password must not be empty")


def test_a_password_has_at_least_8_characters(data_dir: Path) -> None:
    result = invoke(["user", "add", "alice", "--password-stdin", "--data-dir", str(data_dir)], input="1234567\n")
    assert_one_line_error(result, "the password must have at least 8 characters")
    add_user(data_dir, "alice", "12345678")
    result = invoke(["user", "passwd", "alice", "--password-stdin", "--data-dir", str(data_dir)], input="x\n")
    assert_one_line_error(result, "the password must have at least 8 characters")
    assert authenticate(data_dir, "alice", "12345678")


def test_user_add_errors(data_dir: Path) -> None:
    add_user(data_dir, "alice")
    # A taken name is refused before the password is asked for (no input is given at all).
    for name, message in (("alice", "user 'alice' already exists"),
                          ("Alice", "user 'alice' already exists (names may not differ only in case)")):  # fmt: skip
        result = invoke(["user", "add", name, "--data-dir", str(data_dir)], input="")
        assert_one_line_error(result, message)
        assert "Password" not in result.output
    result = invoke(["user", "add", "a/b", "--password-stdin", "--data-dir", str(data_dir)], input="pw\n")
    assert_one_line_error(result, "invalid username 'a/b'", "A-Z a-z 0-9 _ -")


def test_user_passwd(data_dir: Path) -> None:
    add_user(data_dir, "alice", "old-password")
    result = invoke(["user", "passwd", "alice", "--password-stdin", "--data-dir", str(data_dir)], input="new-password\n")
    assert result.exit_code == 0, result.output
    assert authenticate(data_dir, "alice", "new-password")
    assert not authenticate(data_dir, "alice", "old-password")


def test_user_passwd_ends_every_session(data_dir: Path) -> None:
    add_user(data_dir, "alice", "old-password")
    add_user(data_dir, "bob")

    async def sessions(action: str) -> list[str | None]:
        store = await AccountStore.open(data_dir)
        try:
            accounts = Accounts(store, password_context=CHEAP_HASHING)
            if action == "create":
                made = [await accounts.create_session(name, 3600) for name in ("alice", "alice", "bob")]
                return [token for token, _, _ in made]
            return [record.user if record else None for record in [await accounts.session(t) for t in tokens]]
        finally:
            await store.close()

    tokens = asyncio.run(sessions("create"))
    result = invoke(["user", "passwd", "alice", "--password-stdin", "--data-dir", str(data_dir)], input="new-password\n")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["changed the password of 'alice'; ended 2 sessions"]
    assert asyncio.run(sessions("check")) == [None, None, "bob"]


def test_user_passwd_unknown_user(data_dir: Path) -> None:
    add_user(data_dir, "alice")
    result = invoke(["user", "passwd", "ghost", "--password-stdin", "--data-dir", str(data_dir)], input="pw\n")
    assert_one_line_error(result, "unknown user 'ghost'")


def test_user_delete_asks_and_aborts_on_no(data_dir: Path) -> None:
    add_user(data_dir, "alice")
    result = invoke(["user", "delete", "alice", "--data-dir", str(data_dir)], input="n\n")
    assert result.exit_code == 1
    assert "Delete user 'alice'?" in result.output
    assert "Aborted" in result.output
    assert authenticate(data_dir, "alice", PASSWORD)


def test_user_delete_says_what_it_removes(data_dir: Path) -> None:
    for name in ("alice", "bob", "carol"):
        add_user(data_dir, name)
    assert invoke(["share", "add", "alice", "bob", "--data-dir", str(data_dir)]).exit_code == 0
    assert invoke(["share", "add", "carol", "alice", "--data-dir", str(data_dir)]).exit_code == 0
    assert invoke(["share", "add", "carol", "bob", "--data-dir", str(data_dir)]).exit_code == 0
    sample_path = SampleStore(data_dir).path_for("alice")
    sample_path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(sample_path) as db:
        db.execute("CREATE TABLE t (x)")
    db.close()
    for args in (["link", "create", "alice"], ["link", "create", "alice", "--label", "mum"],
                 ["token", "create", "alice", "--label", "phone"]):  # fmt: skip
        assert invoke([*args, "--data-dir", str(data_dir)]).exit_code == 0

    result = invoke(["user", "delete", "alice", "--data-dir", str(data_dir)], input="y\n")
    assert result.exit_code == 0, result.output
    assert "the account 'alice'" in result.output
    assert "2 shares: bob can read alice; alice can read carol" in result.output
    assert "  2 share links\n" in result.output and "  1 device token\n" in result.output
    assert "alert" not in result.output
    assert f"data file {sample_path}" in result.output
    assert not sample_path.exists()
    assert not authenticate(data_dir, "alice", PASSWORD)
    listed = invoke(["share", "list", "--data-dir", str(data_dir)])
    assert listed.stdout.splitlines()[1:] == ["carol  bob"]


def test_user_delete_yes_does_not_ask(data_dir: Path) -> None:
    add_user(data_dir, "alice")
    result = invoke(["user", "delete", "alice", "--yes", "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    assert "?" not in result.output
    assert "0 shares" in result.output and "no data files" in result.output
    assert invoke(["user", "list", "--data-dir", str(data_dir)]).stdout == ""


def test_user_delete_unknown_user(data_dir: Path) -> None:
    add_user(data_dir, "alice")
    result = invoke(["user", "delete", "ghost", "--yes", "--data-dir", str(data_dir)])
    assert_one_line_error(result, "unknown user 'ghost'")


# ----- share -----


def test_share_add_list_remove(data_dir: Path) -> None:
    for name in ("alice", "bob", "carol"):
        add_user(data_dir, name)
    d = ["--data-dir", str(data_dir)]
    assert invoke(["share", "add", "alice", "bob", *d]).exit_code == 0
    assert invoke(["share", "add", "alice", "bob", *d]).exit_code == 0  # idempotent
    assert invoke(["share", "add", "carol", "alice", *d]).exit_code == 0

    result = invoke(["share", "list", *d])
    assert result.exit_code == 0
    assert result.stdout.splitlines() == ["OWNER  VIEWER", "alice  bob", "carol  alice"]
    assert invoke(["share", "list", "carol", *d]).stdout.splitlines() == ["OWNER  VIEWER", "carol  alice"]

    result = invoke(["share", "remove", "alice", "bob", *d])
    assert result.exit_code == 0, result.output
    assert invoke(["share", "list", "alice", *d]).stdout == ""
    result = invoke(["share", "remove", "alice", "bob", *d])
    assert_one_line_error(result, "no such share")


def test_share_errors(data_dir: Path) -> None:
    add_user(data_dir, "alice")
    d = ["--data-dir", str(data_dir)]
    assert_one_line_error(invoke(["share", "add", "alice", "ghost", *d]), "unknown user 'ghost'")
    assert_one_line_error(invoke(["share", "add", "alice", "alice", *d]), "alice")
    assert_one_line_error(invoke(["share", "add", "alice", "..", *d]), "invalid username '..'")
    assert_one_line_error(invoke(["share", "list", "a.b", *d]), "invalid username 'a.b'")


# ----- serve (only argument handling: running the server is the HTTP tests' business) -----


def test_serve_bad_flag_is_a_usage_error() -> None:
    result = invoke(["serve", "--port", "eighty"])
    assert result.exit_code == 2
    assert "Invalid value for '--port'" in result.stderr


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--port", "0"], {}, "port must be 1..65535, got 0"),
        ([], {"TRACKER_PORT": "eighty"}, "TRACKER_PORT"),
        (["--max-body-size", "-1"], {}, "max body size must be positive"),
        (["--api-max-samples", "0"], {}, "api max samples must be at least 1"),
        ([], {"TRACKER_API_MAX_BODY_SIZE": "0"}, "api max body size must be at least 1"),
        (["--max-streams-per-address", "0"], {}, "live max streams per address must be at least 1"),
        ([], {"TRACKER_LIVE_MAX_STREAMS_PER_LINK": "0"}, "live max streams per link must be at least 1"),
        (["--max-streams-per-user", "10"], {}, "live reserved streams must be 0 or more and less than max streams per user"),
        (["--reserved-streams", "-1"], {}, "live reserved streams must be 0 or more"),
        (["--journal-checkpoint", "0"], {}, "journal checkpoint must be positive, got 0"),
        ([], {"TRACKER_JOURNAL_KEEP_SECONDS": "-5"}, "journal keep must be 0 or more, got -5"),
        (["--column-cache-mb", "-1"], {}, "column cache mb must be 0 (keep none) or more, got -1"),
        (["--workers", "0"], {}, "workers must be auto or 1..64, got '0'"),
        ([], {"TRACKER_WORKERS": "many"}, "workers must be auto or 1..64, got 'many'"),
        (["--max-future", "-1"], {}, "max future seconds must be 0..31536000 (a year), got -1"),
        ([], {"TRACKER_LIVE_WITHIN_SECONDS": "0"}, "live within seconds must be positive"),
    ],
)
def test_serve_bad_settings_are_one_line(args: list[str], env: dict[str, str], message: str) -> None:
    assert_one_line_error(invoke(["serve", *args], env=env), message)


# ----- the real program in a subprocess -----


def test_subprocess_user_add_and_list(data_dir: Path) -> None:
    added = run_tracker("user", "add", "alice", "--password-stdin", "--data-dir", str(data_dir), input="s3cret-pass\n")
    assert added.returncode == 0, added.stderr
    listed = run_tracker("user", "list", env_data_dir=data_dir)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[1].split()[0] == "alice"
    assert authenticate(data_dir, "alice", "s3cret-pass")


def test_subprocess_errors_are_one_line(data_dir: Path) -> None:
    result = run_tracker("user", "add", "a/b", "--password-stdin", "--data-dir", str(data_dir), input="pw\n")
    assert result.returncode == 1
    assert result.stderr.splitlines() == ["Error: invalid username 'a/b': use 1-64 characters from A-Z a-z 0-9 _ -, not starting with -"]
    add_user(data_dir, "alice")
    result = run_tracker("user", "delete", "ghost", "--yes", "--data-dir", str(data_dir))
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1 and "unknown user 'ghost'" in result.stderr


def test_subprocess_help_and_version() -> None:
    result = run_tracker("--help")
    assert result.returncode == 0
    assert "Usage: tracker" in result.stdout
    for command in ("serve", "user", "share"):
        assert command in result.stdout
    assert run_tracker("--version").stdout.startswith("tracker, version ")


def test_missing_data_dir_is_reported_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "typo"
    for args in (["user", "list"], ["share", "list"], ["user", "delete", "alice", "--yes"]):
        assert_one_line_error(invoke([*args, "--data-dir", str(missing)]), "no accounts file", "typo")
    assert not missing.exists()


# ----- serve's flags and variables: one table, the README and --help agree -----


def readme_table(heading: str) -> list[str]:
    """The rows of the first table under `heading` in the README."""
    lines = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8").splitlines()
    start = lines.index(heading)
    rows: list[str] = []
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            rows.append(line)
        elif rows or line.startswith("#"):
            break
    assert len(rows) > 2, heading
    return rows[2:]  # without the header and its rule


def serve_flags_and_variables() -> tuple[set[str], set[str]]:
    flags = {flag for _, flag, _, _ in SERVE_FLAGS}
    variables = {env_name(f.name) for f in dataclasses.fields(Settings)}
    return flags, variables


def test_serve_flags_come_from_the_settings_table() -> None:
    serve = cli.commands["serve"]
    # Hidden: what the supervisor tells the workers it starts (README "Workers"), no setting.
    params = [param for param in serve.params if not getattr(param, "hidden", False)]
    given = {opt for param in params for opt in param.opts} - {"-h", "--help"}
    flags, _ = serve_flags_and_variables()
    assert given == flags
    # every flag sets the setting of its name (some flags are named otherwise, e.g. --max-streams)
    assert {param.name for param in params} - {"help"} == {setting for setting, *_ in SERVE_FLAGS}


def test_readme_lists_every_serve_flag_and_variable() -> None:
    rows = readme_table("### Settings") + readme_table("## Limits")
    text = "\n".join(rows)
    listed_flags = set(re.findall(r"`(--[a-z][a-z-]*)`", text))
    listed_variables = set(re.findall(r"\bTRACKER_[A-Z_]*[A-Z]\b", text))
    flags, variables = serve_flags_and_variables()
    assert flags - listed_flags == set()
    assert variables - listed_variables == set()
    assert listed_variables - variables == set()  # no variable the server does not read


def test_serve_help_shows_every_flag_and_variable() -> None:
    result = invoke(["serve", "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    flags, _ = serve_flags_and_variables()
    for setting, flag, _, _ in SERVE_FLAGS:
        assert flag in result.output
        assert env_name(setting) in result.output
    assert "[default: 25000000]" in result.output  # defaults are shown


def test_serve_flags_reach_their_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Settings] = []
    monkeypatch.setattr("tracker.app.run", seen.append)
    args = [
        "--max-streams", "300", "--max-streams-per-user", "100", "--auth-failure-window", "30", "--auth-ban", "40",
        "--trusted-proxy", "10.0.0.0/8", "--trusted-proxy", "127.0.0.1", "--log-level", "DEBUG",
        "--alert-timeout", "3", "--reserved-streams", "5", "--webhook-allow-private", "--query-workers", "3",
        "--data-dir", "somewhere",
    ]  # fmt: skip
    result = invoke(["serve", *args], env={"TRACKER_MAX_HEADER_SIZE": "9000", "TRACKER_TRUSTED_PROXIES": "::1"})
    assert result.exit_code == 0, result.output
    (settings,) = seen
    assert settings.live_max_streams == 300 and settings.live_max_streams_per_user == 100
    assert settings.auth_failure_window_seconds == 30 and settings.auth_ban_seconds == 40
    assert settings.trusted_proxies == ("10.0.0.0/8", "127.0.0.1")  # flags win over the variable
    assert settings.log_level == "debug" and settings.alert_timeout_seconds == 3
    assert settings.live_reserved_streams == 5 and settings.webhook_allow_private is True
    assert settings.query_workers == 3 and settings.data_dir == Path("somewhere")
    assert settings.max_header_size == 9000  # from the environment
    seen.clear()
    assert invoke(["serve"], env={"TRACKER_TRUSTED_PROXIES": "::1"}).exit_code == 0
    assert seen[0].trusted_proxies == ("::1",) and seen[0].webhook_allow_private is False


def test_serve_on_a_taken_port_fails_first_and_leaves_nothing_behind(tmp_path: Path) -> None:
    """With the port in use, serve says so in one line: it never logs "listening" first, and the
    data folder is not made."""
    data_dir = tmp_path / "not-yet"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_tracker("serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir))
    assert result.returncode == 1
    assert "in use" in result.stderr.splitlines()[-1], result.stderr
    assert "listening" not in result.stderr.lower()
    assert not data_dir.exists()


def test_serve_logs_listening_once_it_listens(tmp_path: Path) -> None:
    from tests.tracker_process import TrackerProcess

    server = TrackerProcess(tmp_path / "data", tmp_path / "server.log", log_level="info")
    server.start()
    try:
        log = (tmp_path / "server.log").read_text()
        assert f"Tracker listening on http://127.0.0.1:{server.port}" in log
    finally:
        server.stop()
