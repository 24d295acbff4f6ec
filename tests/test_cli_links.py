"""`tracker user public` and `tracker link create|list|revoke`, checked against the accounts file."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

from tests.cli_helpers import add_user, assert_one_line_error, invoke
from tests.conftest import CHEAP_HASHING
from tracker.accounts import Accounts
from tracker.config import Settings, record_server_url
from tracker.storage import AccountStore


def can_watch(data_dir: Path, owner: str, token: str | None) -> bool:
    async def check() -> bool:
        store = await AccountStore.open(data_dir)
        try:
            return await Accounts(store, password_context=CHEAP_HASHING).can_watch(owner, None, token)
        finally:
            await store.close()

    return asyncio.run(check())


def create(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = invoke(["link", "create", *args, "--data-dir", str(data_dir)], env=env)
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 1, result.stdout  # only the URL on stdout: scripts can capture it
    return result.stdout.strip()


def token_of(url: str) -> str:
    match = re.search(r"\?token=([A-Za-z0-9_-]+)\Z", url)
    assert match, url
    return match.group(1)


def test_user_public_on_and_off(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    add_user(data_dir, "alice")
    assert not can_watch(data_dir, "alice", None)  # private by default
    result = invoke(["user", "public", "alice", "on", "--data-dir", str(data_dir)])
    assert result.exit_code == 0 and "alice is public" in result.stdout
    assert can_watch(data_dir, "alice", None)
    result = invoke(["user", "public", "alice", "off", "--data-dir", str(data_dir)])
    assert result.exit_code == 0 and "alice is private" in result.stdout
    assert not can_watch(data_dir, "alice", None)
    assert_one_line_error(invoke(["user", "public", "nobody", "on", "--data-dir", str(data_dir)]), "unknown user 'nobody'")
    assert invoke(["user", "public", "alice", "maybe", "--data-dir", str(data_dir)]).exit_code == 2


def test_link_create_prints_the_share_url(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    add_user(data_dir, "alice")
    url = create(data_dir, "alice", "--label", "for mum")
    assert url.startswith("http://127.0.0.1:8086/watch/alice?token=")
    token = token_of(url)
    assert len(token) == 32  # token_urlsafe(24)
    assert can_watch(data_dir, "alice", token)
    assert not can_watch(data_dir, "alice", token + "x")
    # The token is not in the file, only its hash.
    assert token.encode() not in (data_dir / "accounts.sqlite").read_bytes()
    assert (data_dir / "accounts.sqlite-wal").exists() is False or token.encode() not in (
        data_dir / "accounts.sqlite-wal"
    ).read_bytes()

    assert create(data_dir, "alice", "--public-url", "https://t.example.org/").startswith(
        "https://t.example.org/watch/alice?token="
    )
    assert create(data_dir, "alice", env={"TRACKER_PUBLIC_URL": "https://env.example.org"}).startswith(
        "https://env.example.org/watch/alice?token="
    )
    # Listening everywhere: the link names this machine as others reach it, not localhost.
    everywhere = create(data_dir, "alice", env={"TRACKER_HOST": "0.0.0.0", "TRACKER_PORT": "9000"})
    host = everywhere.removeprefix("http://").split("/")[0]
    assert host.endswith(":9000") and host.split(":")[0] not in ("localhost", "0.0.0.0"), everywhere


def test_link_create_uses_the_url_the_server_last_started_with(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    add_user(data_dir, "alice")
    record_server_url(Settings(data_dir=data_dir, port=9123))  # what `tracker serve --port 9123` leaves
    assert create(data_dir, "alice").startswith("http://127.0.0.1:9123/watch/alice?token=")
    # The public URL, as a flag or in the environment, still wins.
    assert create(data_dir, "alice", "--public-url", "https://t.example.org").startswith("https://t.example.org/")
    assert create(data_dir, "alice", env={"TRACKER_PUBLIC_URL": "https://e.example.org"}).startswith(
        "https://e.example.org/"
    )


def test_link_create_errors(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    add_user(data_dir, "alice")
    create(data_dir, "alice", "--label", "mum")
    args = ["link", "create", "alice", "--data-dir", str(data_dir)]
    assert_one_line_error(invoke([*args, "--label", "mum"]), "already has a link labelled 'mum'")
    assert_one_line_error(invoke([*args, "--expires", "soon"]), "invalid duration 'soon'")
    assert_one_line_error(invoke([*args, "--expires", "0h"]), "invalid duration")
    assert_one_line_error(invoke([*args, "--public-url", "ftp://x"]), "public url must start with http")
    assert_one_line_error(invoke(["link", "create", "nobody", "--data-dir", str(data_dir)]), "unknown user 'nobody'")
    assert_one_line_error(invoke(["link", "create", "../x", "--data-dir", str(data_dir)]), "invalid username")


def test_link_expiry(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    add_user(data_dir, "alice")
    token = token_of(create(data_dir, "alice", "--expires", "2h", "--label", "ride"))
    assert can_watch(data_dir, "alice", token)
    listing = invoke(["link", "list", "alice", "--data-dir", str(data_dir)]).stdout
    row = [line for line in listing.splitlines() if line.startswith("ride")][0]
    created, expires = re.findall(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", row)[:2]
    from datetime import datetime

    hours = (datetime.fromisoformat(expires) - datetime.fromisoformat(created)).total_seconds() / 3600
    assert 1.99 < hours < 2.01
    short = token_of(create(data_dir, "alice", "--expires", "1s"))
    deadline = time.monotonic() + 3
    while can_watch(data_dir, "alice", short):
        assert time.monotonic() < deadline, "a 1 s link still works after 3 s"
        time.sleep(0.1)
    listing = invoke(["link", "list", "alice", "--data-dir", str(data_dir)]).stdout
    assert "expired" in listing


def test_link_list_and_revoke_by_label_token_or_url(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    add_user(data_dir, "alice")
    add_user(data_dir, "bob")
    empty = invoke(["link", "list", "alice", "--data-dir", str(data_dir)])
    assert empty.exit_code == 0 and empty.stderr.strip() == "no links"
    mum = create(data_dir, "alice", "--label", "for <mum> & \"dad\"")
    club = create(data_dir, "alice", "--label", "club")
    ride = create(data_dir, "alice", "--label", "ride")
    assert can_watch(data_dir, "alice", token_of(club))  # counts as a use

    listing = invoke(["link", "list", "alice", "--data-dir", str(data_dir)])
    assert listing.exit_code == 0
    lines = listing.stdout.splitlines()
    assert lines[0].split() == ["LABEL", "OPENS", "CREATED", "EXPIRES", "LAST", "USED", "STATE"]
    assert all("live view" in line for line in lines[1:])
    rows = {line.split("  ")[0]: line for line in lines[1:]}
    assert set(rows) == {'for <mum> & "dad"', "club", "ride"}
    assert "never" in rows["ride"] and rows["ride"].rstrip().endswith("active")
    assert rows["club"].count("never") == 1  # never expires, but was used
    for url in (mum, club, ride):
        assert token_of(url) not in listing.stdout  # tokens are never shown again

    revoke = ["link", "revoke", "alice"]
    assert invoke([*revoke, "club", "--data-dir", str(data_dir)]).exit_code == 0
    assert invoke([*revoke, token_of(mum), "--data-dir", str(data_dir)]).exit_code == 0
    assert invoke([*revoke, ride, "--data-dir", str(data_dir)]).exit_code == 0  # the whole URL
    for url in (mum, club, ride):
        assert not can_watch(data_dir, "alice", token_of(url))
    listing = invoke(["link", "list", "alice", "--data-dir", str(data_dir)]).stdout
    assert listing.count("revoked") == 3

    assert_one_line_error(invoke([*revoke, "club", "--data-dir", str(data_dir)]), "alice has no active link 'club'")
    # bob cannot revoke alice's links by naming them under his own name
    other = token_of(create(data_dir, "alice", "--label", "club"))  # a revoked label may be reused
    assert_one_line_error(invoke(["link", "revoke", "bob", other, "--data-dir", str(data_dir)]), "bob has no active link")
    assert can_watch(data_dir, "alice", other)
    assert_one_line_error(invoke(["link", "list", "nobody", "--data-dir", str(data_dir)]), "unknown user 'nobody'")


def test_link_commands_have_help() -> None:
    for args in (["link"], ["link", "create"], ["link", "list"], ["link", "revoke"], ["user", "public"]):
        result = invoke([*args, "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output, args
