"""Gone-quiet alerts against a real server and a real webhook receiver (an aiohttp server on 127.0.0.1).

Durations are fractions of a second (the settings allow it); every wait is bounded, and what is
asserted is what the receiver got, what the owner's page shows, and what the accounts file holds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tests.conftest import AddUser, basic
from tests.sse import sign_in
from tracker.accounts import Accounts, InvalidAlert, parse_quiet_time, validate_webhook_url
from tracker.app import create_app
from tracker.config import Settings
from tracker.storage import SampleStore, device_last_seen

QUIET = 0.8  # seconds; samples in the "flowing" phases come ten times as often


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        public_url="https://tracker.example.org/",
        alert_min_quiet_seconds=0.05,
        alert_check_seconds=0.05,
        alert_attempts=4,
        alert_retry_seconds=0.1,
        alert_retry_max_seconds=5.0,
        alert_timeout_seconds=2.0,
        # The receiver listens on 127.0.0.1, which webhooks may reach only when the operator allows it
        # (tests/test_alert_destinations.py covers the default, refusing).
        webhook_allow_private=True,
    )


class Receiver:
    """A webhook endpoint: records every POST; answers from `script` (a status, or "hang"), then 200."""

    def __init__(self) -> None:
        self.received: list[tuple[float, dict[str, Any]]] = []
        self.script: list[int | str] = []
        self.url = ""
        self._arrived = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        assert request.content_type == "application/json"
        self.received.append((time.monotonic(), await request.json()))
        self._arrived.set()
        action = self.script.pop(0) if self.script else 200
        if action == "hang":
            await asyncio.sleep(3600)
        return web.Response(status=int(action))

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [body for _, body in self.received]

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        async with asyncio.timeout(timeout):
            while len(self.received) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.bodies


@pytest.fixture
async def receiver(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> Receiver:
    hook = Receiver()
    app = web.Application()
    app.router.add_post("/hook", hook.handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    hook.url = str(server.make_url("/hook"))
    return hook


@pytest.fixture
async def users(add_user: AddUser) -> None:
    await add_user("alice", "pw-alice")
    await add_user("bob", "pw-bob")


async def write(client: TestClient, line: str = "samples hr_bpm=150", user: str = "alice") -> None:
    response = await client.post(f"/write?db={user}", data=line, headers=basic(user, f"pw-{user}"))
    assert response.status == 204, await response.text()


async def keep_writing(client: TestClient, seconds: float, line: str = "samples hr_bpm=150", user: str = "alice") -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        await write(client, line, user)
        await asyncio.sleep(QUIET / 10)


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.02)


# ----- firing, not firing, coming back -----


@pytest.mark.usefixtures("users")
async def test_fires_once_after_silence_never_while_data_flows_and_says_back(
    client: TestClient, accounts: Accounts, receiver: Receiver
) -> None:
    await accounts.set_alert("alice", None, QUIET, receiver.url)  # as the CLI would, beside the server
    await asyncio.sleep(0.3)  # picked up within alert_check_seconds
    await keep_writing(client, 3 * QUIET)
    assert receiver.received == []  # data kept flowing: no alert

    last = time.time_ns()
    await write(client, f"samples hr_bpm=151 {last}")
    silent_from = time.monotonic()
    (quiet,) = await receiver.wait_for(1)
    assert receiver.received[0][0] - silent_from >= QUIET - 0.05
    assert quiet["kind"] == "quiet" and quiet["user"] == "alice" and quiet["device"] is None
    assert quiet["after_minutes"] == round(QUIET / 60, 2)
    assert quiet["quiet_minutes"] >= round(QUIET / 60, 2)
    assert quiet["watch_url"] == "https://tracker.example.org/watch/alice"
    expected = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(last / 1e9))
    assert quiet["last_sample_time"].startswith(expected) and quiet["last_sample_time"].endswith("Z")
    stored = (await accounts.list_alerts("alice"))[0]
    assert stored.fired_ns is not None

    await asyncio.sleep(3 * QUIET)
    assert len(receiver.received) == 1  # once, not once per check

    await write(client)
    bodies = await receiver.wait_for(2)
    assert bodies[1]["kind"] == "back" and bodies[1]["user"] == "alice"
    assert bodies[1]["quiet_minutes"] >= round(4 * QUIET / 60, 2) - 0.01
    await until(lambda: _fired_cleared(accounts))

    # Live again: it can fire again after a new silence.
    bodies = await receiver.wait_for(3)
    assert [b["kind"] for b in bodies] == ["quiet", "back", "quiet"]


async def _fired_cleared(accounts: Accounts) -> bool:
    return (await accounts.list_alerts("alice"))[0].fired_ns is None


@pytest.mark.usefixtures("users")
async def test_not_live_until_data_arrives(client: TestClient, accounts: Accounts, receiver: Receiver) -> None:
    await accounts.set_alert("alice", None, 0.2, receiver.url)
    await write(client, "samples hr_bpm=150", user="bob")  # someone else's data changes nothing
    await asyncio.sleep(1.0)
    assert receiver.received == []


@pytest.mark.usefixtures("users")
async def test_devices_are_independent(client: TestClient, accounts: Accounts, receiver: Receiver) -> None:
    await accounts.set_alert("alice", "garmin", QUIET, receiver.url)
    await accounts.set_alert("alice", "phone", QUIET, receiver.url)
    await accounts.set_alert("alice", None, QUIET, receiver.url)
    await asyncio.sleep(0.3)
    await write(client, "samples,device=garmin hr_bpm=140")
    # The phone keeps sending, the garmin is silent: only the garmin's alert fires.
    await keep_writing(client, 3 * QUIET, "samples,device=phone lat=1,lng=2")
    (quiet,) = receiver.bodies
    assert quiet["kind"] == "quiet" and quiet["device"] == "garmin"

    # Samples of another device (and without one) do not bring the garmin back.
    await write(client, "samples hr_bpm=1")
    await write(client, "samples,device=phone lat=1,lng=2")
    await asyncio.sleep(0.2)
    assert len(receiver.received) == 1
    await write(client, "samples,device=garmin hr_bpm=141")
    bodies = await receiver.wait_for(2)
    assert bodies[1]["kind"] == "back" and bodies[1]["device"] == "garmin"

    # Now everything stops: phone, garmin and the any-device alert each fire once.
    bodies = await receiver.wait_for(5)
    await asyncio.sleep(2 * QUIET)
    assert len(receiver.received) == 5
    assert sorted((b["kind"], b["device"] or "") for b in bodies[2:]) == [
        ("quiet", ""), ("quiet", "garmin"), ("quiet", "phone"),
    ]  # fmt: skip


# ----- delivery: retries, failures, timeouts -----


async def _alerts_page(client: TestClient) -> list[dict[str, Any]]:
    response = await client.get("/api/alerts")
    assert response.status == 200
    return (await response.json())["alerts"]


@pytest.mark.usefixtures("users")
async def test_retries_with_backoff_until_the_receiver_accepts(
    client: TestClient, accounts: Accounts, receiver: Receiver
) -> None:
    receiver.script = [500, 502, 500]
    await accounts.set_alert("alice", None, 0.2, receiver.url)
    await asyncio.sleep(0.2)
    await write(client)
    bodies = await receiver.wait_for(4)
    assert all(body == bodies[0] for body in bodies)  # the same notice each time
    times = [at for at, _ in receiver.received]
    gaps = [b - a for a, b in zip(times, times[1:])]
    # retry n waits retry_seconds * 2**(n-1), times a jitter of 0.5..1
    for n, gap in enumerate(gaps, start=1):
        assert gap >= 0.1 * 2 ** (n - 1) * 0.5 - 0.01, gaps
    await asyncio.sleep(0.5)
    assert len(receiver.received) == 4  # accepted: no more attempts

    await sign_in(client, "alice", "pw-alice")

    async def delivered() -> bool:
        (alert,) = await _alerts_page(client)
        return alert["delivery"] is not None and alert["delivery"]["state"] == "ok"

    await until(delivered)
    (alert,) = await _alerts_page(client)
    assert alert["delivery"]["attempts"] == 4 and alert["delivery"]["status"] == 200
    assert alert["delivery"]["kind"] == "quiet" and alert["delivery"]["error"] is None
    assert alert["state"] == "quiet"


@pytest.mark.usefixtures("users")
async def test_failure_is_visible_after_the_last_attempt(
    client: TestClient, accounts: Accounts, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="tracker.alerts")
    receiver.script = [503] * 10
    await accounts.set_alert("alice", None, 0.2, receiver.url)
    await asyncio.sleep(0.2)
    await write(client)
    await receiver.wait_for(4)
    await sign_in(client, "alice", "pw-alice")

    async def failed() -> bool:
        (alert,) = await _alerts_page(client)
        return alert["delivery"] is not None and alert["delivery"]["state"] == "failed"

    await until(failed)
    await asyncio.sleep(0.5)
    assert len(receiver.received) == 4  # alert_attempts, then it gives up
    (alert,) = await _alerts_page(client)
    assert alert["delivery"] == {
        "kind": "quiet", "state": "failed", "at_ns": alert["delivery"]["at_ns"],
        "status": 503, "error": "HTTP 503", "attempts": 4,
    }  # fmt: skip
    assert time.time_ns() - alert["delivery"]["at_ns"] < 60 * 10**9
    messages = [r.getMessage() for r in caplog.records if r.name == "tracker.alerts"]
    assert sum("failed (attempt" in m for m in messages) == 3
    assert any("gave up delivering the quiet alert of alice" in m and "HTTP 503" in m for m in messages)
    assert not any(receiver.url in m for m in messages)  # the URL may hold a secret: only its host


@pytest.mark.usefixtures("users")
async def test_a_client_error_is_not_retried(client: TestClient, accounts: Accounts, receiver: Receiver) -> None:
    receiver.script = [404]
    await accounts.set_alert("alice", None, 0.2, receiver.url)
    await asyncio.sleep(0.2)
    await write(client)
    await receiver.wait_for(1)
    await asyncio.sleep(0.6)
    assert len(receiver.received) == 1
    (alert,) = await accounts.list_alerts("alice")
    assert (alert.delivery_state, alert.delivery_status, alert.delivery_attempts) == ("failed", 404, 1)


@pytest.mark.usefixtures("users")
async def test_a_hanging_receiver_times_out_and_never_holds_up_writes(
    aiohttp_client: Callable[..., Awaitable[TestClient]], settings: Settings, accounts: Accounts, receiver: Receiver
) -> None:
    client = await aiohttp_client(create_app(settings.with_(alert_timeout_seconds=0.3, alert_attempts=2)))
    receiver.script = ["hang", "hang"]
    await accounts.set_alert("alice", None, 0.2, receiver.url)
    await asyncio.sleep(0.2)
    await write(client)
    await receiver.wait_for(1)
    await write(client, "samples hr_bpm=1", user="bob")  # the server goes on while a delivery hangs
    await receiver.wait_for(2)

    async def failed() -> bool:
        (alert,) = await accounts.list_alerts("alice")
        return alert.delivery_state == "failed"

    await until(failed)
    (alert,) = await accounts.list_alerts("alice")
    assert alert.delivery_error == "no answer within 0.3 s"
    assert alert.delivery_status is None and alert.delivery_attempts == 2


@pytest.mark.usefixtures("users")
async def test_an_unreachable_receiver_is_a_failure_too(client: TestClient, accounts: Accounts, unused_tcp_port: int) -> None:
    await accounts.set_alert("alice", None, 0.2, f"http://127.0.0.1:{unused_tcp_port}/hook")
    await asyncio.sleep(0.2)
    await write(client)

    async def failed() -> bool:
        (alert,) = await accounts.list_alerts("alice")
        return alert.delivery_state == "failed"

    await until(failed, timeout=10)
    (alert,) = await accounts.list_alerts("alice")
    assert alert.delivery_attempts == 4 and alert.delivery_status is None
    assert "127.0.0.1" in (alert.delivery_error or "")


# ----- restarts -----


@pytest.mark.usefixtures("users")
async def test_a_restart_neither_repeats_nor_bursts_and_keeps_the_back(
    aiohttp_client: Callable[..., Awaitable[TestClient]], settings: Settings, accounts: Accounts,
    add_user: AddUser, receiver: Receiver,
) -> None:  # fmt: skip
    await add_user("carol", "pw-carol")
    first = await aiohttp_client(create_app(settings))
    await accounts.set_alert("alice", None, 0.3, receiver.url)
    await accounts.set_alert("carol", None, 2.0, receiver.url)
    await asyncio.sleep(0.2)
    await write(first)
    (quiet,) = await receiver.wait_for(1)  # alice went quiet before the restart
    assert quiet["user"] == "alice"
    await write(first, user="bob")  # bob sent a while ago (his alert is set while the server is down)
    await write(first, user="carol")  # carol is live at the restart
    written = time.monotonic()
    await first.close()
    await accounts.set_alert("bob", None, 0.3, receiver.url)
    await asyncio.sleep(0.4)  # bob's newest sample is older than his quiet time

    second = await aiohttp_client(create_app(settings))
    (carol,) = (await receiver.wait_for(2))[1:]
    # carol fires once her 2 s since her newest stored sample are over, not at start
    assert carol["user"] == "carol" and carol["kind"] == "quiet"
    assert receiver.received[1][0] - written >= 2.0 - 0.1
    await asyncio.sleep(0.6)
    assert len(receiver.received) == 2  # alice stays quiet (no repeat), bob was not live (no burst)

    await write(second)
    bodies = await receiver.wait_for(3)
    assert bodies[2]["kind"] == "back" and bodies[2]["user"] == "alice"
    await write(second, user="bob")  # now bob is live, and goes quiet in time (and so does alice again)
    bodies = await receiver.wait_for(5)
    assert sorted((b["kind"], b["user"]) for b in bodies[3:]) == [("quiet", "alice"), ("quiet", "bob")]


# ----- the owner's page: /api/alerts -----


@pytest.mark.usefixtures("users")
async def test_web_api_needs_a_session_and_csrf_and_validates(
    aiohttp_client: Callable[..., Awaitable[TestClient]], settings: Settings, receiver: Receiver, accounts: Accounts
) -> None:
    # Changes from another process would only be noticed after a minute: the page's own are at once.
    client = await aiohttp_client(create_app(settings.with_(alert_check_seconds=60)))
    assert (await client.get("/api/alerts")).status == 401
    csrf = await sign_in(client, "alice", "pw-alice")
    body = {"after": "2s", "webhook": receiver.url}
    refused = await client.post("/api/alerts", json=body)
    assert refused.status == 403 and "CSRF" in (await refused.json())["error"]
    refused = await client.post("/api/alerts", json=body, headers={"X-CSRF-Token": "guess"})
    assert refused.status == 403
    assert await _alerts_page(client) == []

    answer = await client.post("/api/alerts", json=body, headers={"X-CSRF-Token": csrf})
    assert answer.status == 200
    (alert,) = (await answer.json())["alerts"]
    assert alert["device"] is None and alert["after_seconds"] == 2.0 and alert["webhook"] == receiver.url
    assert alert["state"] == "waiting" and alert["delivery"] is None
    garmin = {"after": "10m", "webhook": "https://example.org/h?k=1", "device": "garmin"}
    answer = await client.post("/api/alerts", json=garmin, headers={"X-CSRF-Token": csrf})
    assert [(a["device"], a["after_seconds"]) for a in (await answer.json())["alerts"]] == [(None, 2.0), ("garmin", 600.0)]
    # Setting it again changes it (one alert per device)
    garmin["after"] = "15m"
    answer = await client.post("/api/alerts", json=garmin, headers={"X-CSRF-Token": csrf})
    assert [a["after_seconds"] for a in (await answer.json())["alerts"]] == [2.0, 900.0]

    bad = [
        {"after": "2s", "webhook": "ftp://example.org/x"},
        {"after": "2s", "webhook": "javascript:alert(1)"},
        {"after": "2s", "webhook": "http:///nohost"},
        {"after": "2s", "webhook": "http://exa mple.org/"},
        {"after": "0.01s", "webhook": receiver.url},
        {"after": "8d", "webhook": receiver.url},
        {"after": "soon", "webhook": receiver.url},
        {"after": 10, "webhook": receiver.url},
        {"after": "2s", "webhook": receiver.url, "device": "x" * 257},
    ]
    for payload in bad:
        answer = await client.post("/api/alerts", json=payload, headers={"X-CSRF-Token": csrf})
        assert answer.status == 400, payload
        assert set(await answer.json()) == {"error"}
    answer = await client.post("/api/alerts", data="not json", headers={"X-CSRF-Token": csrf})
    assert answer.status == 400

    # Another user sees none of alice's alerts and cannot remove them.
    bob = await aiohttp_client(client.server)
    bob_csrf = await sign_in(bob, "bob", "pw-bob")
    assert await _alerts_page(bob) == []
    assert (await bob.delete("/api/alerts?device=garmin", headers={"X-CSRF-Token": bob_csrf})).status == 404
    assert (await bob.delete("/api/alerts", headers={"X-CSRF-Token": bob_csrf})).status == 404
    # ... and what bob sets is bob's
    answer = await bob.post("/api/alerts", json={"after": "5m", "webhook": receiver.url}, headers={"X-CSRF-Token": bob_csrf})
    assert answer.status == 200
    assert len(await _alerts_page(client)) == 2 and len(await _alerts_page(bob)) == 1
    # alice's token does not work in bob's session
    assert (await bob.delete("/api/alerts", headers={"X-CSRF-Token": csrf})).status == 403

    assert (await client.delete("/api/alerts?device=garmin")).status == 403
    answer = await client.delete("/api/alerts?device=garmin", headers={"X-CSRF-Token": csrf})
    assert answer.status == 200
    assert [a["device"] for a in (await answer.json())["alerts"]] == [None]
    assert (await client.delete("/api/alerts?device=garmin", headers={"X-CSRF-Token": csrf})).status == 404

    # One set from the CLI a moment ago is listed with its state, not waiting for the next check.
    await accounts.set_alert("alice", "bike", 120, receiver.url)
    assert [(a["device"], a["state"]) for a in await _alerts_page(client)] == [(None, "waiting"), ("bike", "waiting")]


@pytest.mark.usefixtures("users")
async def test_an_alert_set_on_the_page_is_live_at_once(client: TestClient, receiver: Receiver) -> None:
    csrf = await sign_in(client, "alice", "pw-alice")
    await write(client)  # alice is already sending when she sets the alert
    answer = await client.post("/api/alerts", json={"after": "0.3s", "webhook": receiver.url}, headers={"X-CSRF-Token": csrf})
    (alert,) = (await answer.json())["alerts"]
    assert alert["state"] == "live" and 0 < alert["quiet_in_seconds"] <= 0.3
    (quiet,) = await receiver.wait_for(1)
    assert quiet["kind"] == "quiet"
    (alert,) = await _alerts_page(client)
    assert alert["state"] == "quiet"


# ----- last seen per device -----


@pytest.mark.usefixtures("users")
async def test_watch_page_shows_last_seen_per_device(
    client: TestClient, aiohttp_client: Callable[..., Awaitable[TestClient]], settings: Settings
) -> None:
    await write(client, "samples,device=garmin hr_bpm=1 1700000000000000000\nsamples,device=garmin hr_bpm=2 1700000005000000000")
    await write(client, "samples,device=phone lat=1,lng=2 1700000003000000000")
    await write(client, "samples hr_bpm=3 1600000000000000000")
    assert (await client.get("/api/watch/alice/devices")).status == 401
    await sign_in(client, "alice", "pw-alice")
    expected = {
        "devices": [
            {"device": "garmin", "last_sample_ns": 1700000005000000000, "live": False},
            {"device": "phone", "last_sample_ns": 1700000003000000000, "live": False},
            {"device": None, "last_sample_ns": 1600000000000000000, "live": False},
        ]
    }
    assert await (await client.get("/api/watch/alice/devices")).json() == expected
    await client.close()

    # After a restart it comes from the stored samples.
    again = await aiohttp_client(create_app(settings))
    await sign_in(again, "alice", "pw-alice")
    assert await (await again.get("/api/watch/alice/devices")).json() == expected
    await write(again, "samples,device=phone hr_bpm=9 1700000009000000000")
    body = await (await again.get("/api/watch/alice/devices")).json()
    assert body["devices"][0] == {"device": "phone", "last_sample_ns": 1700000009000000000, "live": False}
    bob = await aiohttp_client(again.server)
    await sign_in(bob, "bob", "pw-bob")
    assert (await bob.get("/api/watch/alice/devices")).status == 403


async def test_device_last_seen_walks_back_per_device(tmp_path: Path) -> None:
    from tracker.lineprotocol import parse

    store = SampleStore(tmp_path)
    try:
        lines = [f"samples,device=a hr_bpm=1 {t}" for t in range(1000, 2000)]
        lines += [f"samples,device=b hr_bpm=1 {t}" for t in range(1500, 1600)]
        lines += ["samples,device=c,other=x hr_bpm=1 10", "samples,device=c hr_bpm=1 20", "samples hr_bpm=1 5"]
        await store.write("u", parse("\n".join(lines).encode(), "ns", 0).points)
        assert await device_last_seen(store, "u") == {"a": 1999, "b": 1599, "c": 20, None: 5}
        assert await device_last_seen(store, "nobody") == {}
    finally:
        await store.close()


# ----- validation rules -----


def test_webhook_urls_and_quiet_times() -> None:
    assert validate_webhook_url(" https://hooks.example.org/x?token=1 ") == "https://hooks.example.org/x?token=1"
    assert validate_webhook_url("http://127.0.0.1:9/h") == "http://127.0.0.1:9/h"
    for bad in ("", "example.org/x", "ftp://x/", "file:///etc/passwd", "http://", "https://x:99999/", "http://a\nb/",
                "https://" + "a" * 2000 + ".org/"):  # fmt: skip
        with pytest.raises(InvalidAlert):
            validate_webhook_url(bad)
    assert parse_quiet_time("10m", 60) == 600 and parse_quiet_time("90s", 60) == 90
    for bad in ("30s", "8d", "ten", "", "-5m"):
        with pytest.raises(InvalidAlert):
            parse_quiet_time(bad, 60)


def test_settings_refuse_nonsense() -> None:
    for bad in ({"alert_attempts": 0}, {"alert_timeout_seconds": 0}, {"alert_check_seconds": -1}):
        with pytest.raises(ValueError):
            Settings.from_env({}, **bad)
    assert Settings.from_env({"TRACKER_ALERT_ATTEMPTS": "3"}).alert_attempts == 3


@pytest.mark.usefixtures("users")
async def test_a_device_tokens_writes_feed_its_devices_alert(
    client: TestClient, accounts: Accounts, receiver: Receiver
) -> None:
    secret, _ = await accounts.create_token("alice", "garmin", "knots")
    await accounts.set_alert("alice", "garmin", 0.3, receiver.url)
    await asyncio.sleep(0.2)
    # No device tag in the line: the token's label is the device.
    response = await client.post("/write?db=alice", data="samples hr_bpm=150", headers={"Authorization": f"Bearer {secret}"})
    assert response.status == 204
    (quiet,) = await receiver.wait_for(1)
    assert quiet["kind"] == "quiet" and quiet["device"] == "garmin"
    response = await client.post("/api/v2/write?bucket=alice", data="samples hr_bpm=151", headers={"Authorization": f"Token {secret}"})
    assert response.status == 204
    back = (await receiver.wait_for(2))[1]
    assert back["kind"] == "back" and back["device"] == "garmin"
    await sign_in(client, "alice", "pw-alice")
    devices = (await (await client.get("/api/watch/alice/devices")).json())["devices"]
    assert [d["device"] for d in devices] == ["garmin"]
