"""`tracker token create|list|revoke`, checked against the accounts file."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from tests.cli_helpers import add_user, assert_one_line_error, invoke, run_tracker
from tests.conftest import CHEAP_HASHING
from tests.tracker_process import free_port
from tracker.accounts import BEARER_SECRET_FILE, Accounts, Writer
from tracker.storage import AccountStore


def writer_of(data_dir: Path, token: str) -> Writer | None:
    async def check() -> Writer | None:
        store = await AccountStore.open(data_dir)
        try:
            return await Accounts(store, password_context=CHEAP_HASHING).authenticate_writer(None, token)
        finally:
            await store.close()

    return asyncio.run(check())


def create(data_dir: Path, *args: str) -> str:
    result = invoke(["token", "create", *args, "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 1, result.stdout  # only the token on stdout: scripts can capture it
    assert "shown only now" in result.stderr
    return result.stdout.strip()


def test_create_prints_a_working_token_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    add_user(data_dir, "alice")
    token = create(data_dir, "alice", "--label", "garmin-phone")
    assert re.fullmatch(r"trk_alice\.[A-Za-z0-9_-]{43}", token)
    writer = writer_of(data_dir, token)
    assert writer is not None and (writer.user, writer.device, writer.speed_unit) == ("alice", "garmin-phone", "knots")
    assert token not in invoke(["token", "list", "alice", "--data-dir", str(data_dir)]).output
    other = create(data_dir, "alice", "--label", "osmand", "--speed-unit", "mps")
    assert other != token and writer_of(data_dir, other).speed_unit == "mps"  # type: ignore[union-attr]


def test_create_refusals(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    add_user(data_dir, "alice")
    create(data_dir, "alice", "--label", "phone")
    assert_one_line_error(
        invoke(["token", "create", "alice", "--label", "phone", "--data-dir", str(data_dir)]),
        "'alice' already has a device token labelled 'phone'",
    )
    assert_one_line_error(
        invoke(["token", "create", "nobody", "--label", "phone", "--data-dir", str(data_dir)]), "unknown user 'nobody'"
    )
    assert_one_line_error(
        invoke(["token", "create", "alice", "--label", " ", "--data-dir", str(data_dir)]),
        "a device token label must be 1-100 characters",
    )
    assert invoke(["token", "create", "alice", "--data-dir", str(data_dir)]).exit_code == 2  # --label is required
    bad_unit = invoke(["token", "create", "alice", "--label", "x", "--speed-unit", "mph", "--data-dir", str(data_dir)])
    assert bad_unit.exit_code == 2 and "mph" in bad_unit.output
    assert_one_line_error(invoke(["token", "list", "alice", "--data-dir", str(tmp_path / "nowhere")]), "no accounts file")


def test_list_shows_use_and_revoke_ends_the_token(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    add_user(data_dir, "alice")
    add_user(data_dir, "bob")
    empty = invoke(["token", "list", "alice", "--data-dir", str(data_dir)])
    assert empty.exit_code == 0 and empty.stdout == "" and "no device tokens" in empty.stderr
    token = create(data_dir, "alice", "--label", "garmin phone", "--speed-unit", "kph")
    create(data_dir, "alice", "--label", "watch")

    async def use() -> None:  # what a running server flushes
        store = await AccountStore.open(data_dir)
        try:
            [record] = [t for t in await Accounts(store).list_tokens("alice") if t.label == "watch"]
            await store.record_token_use([(record.id, 1700000100 * 10**9, 1700000000 * 10**9)])
        finally:
            await store.close()

    asyncio.run(use())
    listed = invoke(["token", "list", "alice", "--data-dir", str(data_dir)])
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["LABEL", "CREATED", "LAST", "USED", "LAST", "SAMPLE", "DEVICE", "SEEN", "SPEED", "STATE"]
    assert lines[1].startswith("garmin phone") and lines[1].count("never") == 3 and " kph " in lines[1]
    assert lines[1].endswith("active")
    assert "2023-11-14T22:15:00+00:00" in lines[2] and "2023-11-14T22:13:20+00:00" in lines[2] and " knots " in lines[2]

    assert_one_line_error(
        invoke(["token", "revoke", "bob", "garmin phone", "--data-dir", str(data_dir)]),
        "bob has no active device token 'garmin phone'",
    )
    result = invoke(["token", "revoke", "alice", "garmin phone", "--data-dir", str(data_dir)])
    assert result.exit_code == 0 and "revoked" in result.stdout
    assert writer_of(data_dir, token) is None
    assert_one_line_error(
        invoke(["token", "revoke", "alice", "garmin phone", "--data-dir", str(data_dir)]), "no active device token"
    )
    lines = invoke(["token", "list", "alice", "--data-dir", str(data_dir)]).stdout.splitlines()
    assert re.search(r"revoked \d{4}-\d\d-\d\dT", lines[1])

    # revoking by the token itself works too; the label is then free for a new token
    again = create(data_dir, "alice", "--label", "garmin phone")
    assert invoke(["token", "revoke", "alice", again, "--data-dir", str(data_dir)]).exit_code == 0
    assert writer_of(data_dir, again) is None


def test_serve_refuses_a_damaged_signing_key_in_one_line(data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    (data_dir / BEARER_SECRET_FILE).write_text("not hex\n")
    result = run_tracker("serve", "--port", str(free_port()), "--data-dir", str(data_dir))
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith(f"Error: {data_dir / BEARER_SECRET_FILE} is not a Tracker key")


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--bearer-token-seconds", "0"], "bearer token seconds must be positive")],
)
def test_serve_bad_token_settings_are_one_line(args: list[str], message: str) -> None:
    assert_one_line_error(invoke(["serve", *args]), message)


def test_create_with_setup_says_what_to_enter_in_each_app(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    add_user(data_dir, "alice")
    result = invoke(
        ["token", "create", "alice", "--label", "osmand", "--speed-unit", "mps", "--setup",
         "--public-url", "https://tracker.example.org", "--data-dir", str(data_dir)]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()  # still the token alone on stdout
    assert re.fullmatch(r"trk_alice\.[A-Za-z0-9_-]{43}", token)
    notes = result.stderr
    assert f"  Web address: https://tracker.example.org/osmand?id={token}&lat={{0}}" in notes
    assert "OsmAnd sends m/s; this token reads m/s" in notes
    assert f"  Device identifier: {token}" in notes and "  URL: https://tracker.example.org/owntracks" in notes
    for app in ("OsmAnd", "Traccar Client", "OwnTracks", "GPSLogger", "IpBike", "InfluxDB client or script"):
        assert f"\n{app}: " in notes, app
