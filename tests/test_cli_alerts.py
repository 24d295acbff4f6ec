"""`tracker alert set|list|remove`, checked against the accounts file a running server reads."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.conftest import basic
from tests.cli_helpers import add_user, assert_one_line_error, invoke
from tests.conftest import CHEAP_HASHING
from tests.tracker_process import TrackerProcess
from tracker.accounts import Accounts
from tracker.lineprotocol import parse
from tracker.storage import AccountStore, AlertRecord, SampleStore


@pytest.fixture(autouse=True)
def allow_private_webhooks(monkeypatch: pytest.MonkeyPatch) -> None:
    # These webhooks are on 127.0.0.1 or example hosts that must not be looked up (DNS would leave
    # the machine): the CLI checks them only as strictly as an operator with a LAN receiver asks.
    # tests/test_alert_destinations.py covers the default, refusing.
    monkeypatch.setenv("TRACKER_WEBHOOK_ALLOW_PRIVATE", "1")


def stored_alerts(data_dir: Path, owner: str) -> list[AlertRecord]:
    async def read() -> list[AlertRecord]:
        store = await AccountStore.open(data_dir)
        try:
            return await Accounts(store, password_context=CHEAP_HASHING).list_alerts(owner)
        finally:
            await store.close()

    return asyncio.run(read())


def test_alert_set_list_remove_round_trip(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    add_user(data_dir, "alice")
    add_user(data_dir, "bob")
    d = ["--data-dir", str(data_dir)]

    result = invoke(["alert", "list", "alice", *d])
    assert result.exit_code == 0 and result.stdout == "" and "no alerts" in result.stderr

    result = invoke(["alert", "set", "alice", "--after", "10m", "--webhook", "https://hooks.example.org/a?k=1", *d])
    assert result.exit_code == 0, result.output
    assert "alice (any device) quiet for 10m -> POST https://hooks.example.org/a?k=1" in result.stdout
    result = invoke(["alert", "set", "alice", "--after", "90s", "--webhook", "http://127.0.0.1:9/h", "--device", "garmin", *d])
    assert result.exit_code == 0, result.output
    assert "device 'garmin' of alice quiet for 90s" in result.stdout

    alerts = stored_alerts(data_dir, "alice")
    assert [(a.device, a.quiet_seconds, a.webhook_url) for a in alerts] == [
        ("", 600.0, "https://hooks.example.org/a?k=1"), ("garmin", 90.0, "http://127.0.0.1:9/h"),
    ]  # fmt: skip
    assert stored_alerts(data_dir, "bob") == []

    # Setting again changes the existing alert.
    result = invoke(["alert", "set", "alice", "--after", "1h", "--webhook", "https://hooks.example.org/b", *d])
    assert result.exit_code == 0, result.output
    result = invoke(["alert", "list", "alice", *d])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["DEVICE", "AFTER", "WEBHOOK", "QUIET", "LAST", "DELIVERY"]
    assert lines[1].split()[:5] == ["(any)", "60m", "https://hooks.example.org/b", "-", "none"]
    assert lines[2].split()[:3] == ["garmin", "90s", "http://127.0.0.1:9/h"]

    result = invoke(["alert", "remove", "alice", "--device", "garmin", *d])
    assert result.exit_code == 0 and "removed the alert for device 'garmin' of alice" in result.stdout
    assert_one_line_error(invoke(["alert", "remove", "alice", "--device", "garmin", *d]), "no alert for device 'garmin'")
    result = invoke(["alert", "remove", "alice", *d])
    assert result.exit_code == 0, result.output
    assert stored_alerts(data_dir, "alice") == []


def test_alert_set_errors(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    add_user(data_dir, "alice")
    d = ["--data-dir", str(data_dir)]
    hook = ["--webhook", "https://hooks.example.org/a"]
    assert_one_line_error(invoke(["alert", "set", "alice", "--after", "10m", "--webhook", "ftp://x/", *d]), "http:// or https://")
    assert_one_line_error(invoke(["alert", "set", "alice", "--after", "10m", "--webhook", "nothing", *d]), "http:// or https://")
    assert_one_line_error(invoke(["alert", "set", "alice", "--after", "soon", *hook, *d]), "invalid quiet time 'soon'")
    assert_one_line_error(invoke(["alert", "set", "alice", "--after", "10s", *hook, *d]), "between 60 s and 7 days")
    # the shortest quiet time is a setting
    result = invoke(["alert", "set", "alice", "--after", "10s", *hook, *d], env={"TRACKER_ALERT_MIN_QUIET_SECONDS": "5"})
    assert result.exit_code == 0, result.output
    assert_one_line_error(invoke(["alert", "set", "nobody", "--after", "10m", *hook, *d]), "unknown user 'nobody'")
    assert_one_line_error(invoke(["alert", "list", "nobody", *d]), "unknown user 'nobody'")
    assert_one_line_error(invoke(["alert", "remove", "nobody", *d]), "unknown user 'nobody'")
    assert invoke(["alert", "set", "alice", *hook, *d]).exit_code == 2  # --after is required
    assert_one_line_error(invoke(["alert", "list", "alice", "--data-dir", str(tmp_path / "nowhere")]), "no accounts file")


def test_serve_refuses_bad_alert_settings() -> None:
    assert_one_line_error(invoke(["serve", "--alert-attempts", "0"]), "alert attempts must be 1..20")
    assert_one_line_error(invoke(["serve", "--alert-timeout", "0"]), "alert timeout seconds must be positive")


async def test_a_real_server_picks_up_an_alert_set_from_the_cli_and_delivers_it(
    tmp_path: Path, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    received: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(status=204)

    receiver_app = web.Application()
    receiver_app.router.add_post("/hook", hook)
    receiver = await aiohttp_server(receiver_app, host="127.0.0.1")

    data_dir = tmp_path / "data"
    await asyncio.to_thread(add_user, data_dir, "alice", "pw-alice")
    server = TrackerProcess(
        data_dir, tmp_path / "server.log", log_level="info", serve_args=["--public-url", "https://t.example.org", "--webhook-allow-private"],
        env={"TRACKER_ALERT_MIN_QUIET_SECONDS": "0.1", "TRACKER_ALERT_CHECK_SECONDS": "0.1"},
    )  # fmt: skip
    server.spawn()
    try:
        await server.ready(timeout=30)
        async with aiohttp.ClientSession() as session:
            # Set while the server runs, from another process.
            result = await asyncio.to_thread(
                invoke, ["alert", "set", "alice", "--after", "0.5s", "--webhook", str(receiver.make_url("/hook")),
                         "--data-dir", str(data_dir)], None, {"TRACKER_ALERT_MIN_QUIET_SECONDS": "0.1"},
            )  # fmt: skip
            assert result.exit_code == 0, result.output
            await asyncio.sleep(0.5)
            url = f"{server.url}/write?db=alice"
            async with session.post(url, data="samples,device=w hr_bpm=1", headers=basic("alice", "pw-alice")) as response:
                assert response.status == 204
            async with asyncio.timeout(10):
                while not received:
                    await asyncio.sleep(0.05)
        await asyncio.to_thread(server.stop, 30)  # asserts a clean exit
    finally:
        server.close()
    (notice,) = received
    assert notice["kind"] == "quiet" and notice["user"] == "alice" and notice["device"] is None
    assert notice["watch_url"] == "https://t.example.org/watch/alice"
    text = server.log()
    assert "delivered the quiet alert of alice to 127.0.0.1" in text and "Traceback" not in text
    listed = await asyncio.to_thread(invoke, ["alert", "list", "alice", "--data-dir", str(data_dir)])
    assert "quiet ok" in listed.stdout and "fired" in listed.stdout


def test_token_list_shows_when_each_device_was_last_seen(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    add_user(data_dir, "alice")
    for label in ("garmin", "osmand"):
        assert invoke(["token", "create", "alice", "--label", label, "--data-dir", str(data_dir)]).exit_code == 0

    async def write() -> None:  # as the server stores them: tagged by whatever way they came in
        samples = SampleStore(data_dir)
        try:
            body = b"samples,device=garmin hr_bpm=1 1700000000000000000\nsamples,device=garmin hr_bpm=2 1700000060000000000\n"
            body += b"samples,device=other hr_bpm=3 1700000120000000000\nsamples hr_bpm=4 1700000180000000000"
            await samples.write("alice", parse(body, "ns", 0).points)
        finally:
            await samples.close()

    asyncio.run(write())
    listed = invoke(["token", "list", "alice", "--data-dir", str(data_dir)])
    assert listed.exit_code == 0, listed.output
    header, garmin, osmand = listed.stdout.splitlines()
    seen_at = header.index("DEVICE SEEN")
    assert garmin.startswith("garmin") and garmin[seen_at:].startswith("2023-11-14T22:14:20+00:00")
    assert osmand.startswith("osmand") and osmand[seen_at:].startswith("never")
    # Listing reads a sample file, never makes one.
    add_user(data_dir, "carol")
    assert invoke(["token", "create", "carol", "--label", "phone", "--data-dir", str(data_dir)]).exit_code == 0
    listed = invoke(["token", "list", "carol", "--data-dir", str(data_dir)])
    assert listed.exit_code == 0 and listed.stdout.splitlines()[1].count("never") == 3
    assert not SampleStore(data_dir).path_for("carol").exists()
