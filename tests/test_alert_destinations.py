"""Where gone-quiet alert webhooks may go: public addresses only, unless the operator allows the rest.

Checked when an alert is set (the owner's page, the CLI) and again for every address a delivery
connects to. No test here sends anything to a non-loopback address: non-loopback destinations are
refused before any connection is opened (at set time, or by the connect-time check), and the only
listening receiver is on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
from ipaddress import ip_address
from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tests.conftest import AddUser, basic
from tests.sse import sign_in
from tests.cli_helpers import add_user, assert_one_line_error, invoke
from tracker.accounts import Accounts
from tracker.app import create_app
from tracker.config import Settings
from tracker.webhooks import NOT_ALLOWED, WebhookDestinations

# Non-public destinations, as literal URLs and as names the local resolver answers without DNS.
REFUSED_URLS = [
    "http://localhost:8123/api/webhook/x",  # a name that resolves to loopback
    "http://127.0.0.1:9/h",
    "http://127.1/h",  # a legacy IPv4 form of 127.0.0.1
    "http://2130706433/h",  # and another
    "http://[::1]/h",
    "http://[::ffff:127.0.0.1]/h",  # IPv4-mapped IPv6
    "http://[::ffff:7f00:1]/h",
    "http://0.0.0.0/h",
    "http://[::]/h",
    "http://10.1.2.3/h",
    "http://172.16.0.9/h",
    "http://192.168.1.20:8123/api/webhook/x",
    "http://[fd12:3456::1]/h",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fe80::1]/h",
    "http://100.64.0.1/h",
    "http://224.0.0.1/h",
    "http://[ff02::1]/h",
    "http://240.0.0.1/h",
    "http://255.255.255.255/h",
    "http://[::ffff:10.0.0.1]/h",
    "http://[2002:c0a8:0101::1]/h",  # 6to4 around 192.168.1.1
    "http://[64:ff9b::a00:1]/h",  # NAT64 around 10.0.0.1
]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # The default: non-public destinations refused.
    return Settings(
        data_dir=tmp_path / "data",
        alert_min_quiet_seconds=0.05,
        alert_check_seconds=0.05,
        alert_attempts=3,
        alert_retry_seconds=0.05,
        alert_timeout_seconds=2.0,
    )


@pytest.fixture
async def users(add_user: AddUser) -> None:
    await add_user("alice", "pw-alice")


class Receiver:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.port = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(await request.json())
        return web.Response(status=200)


@pytest.fixture
async def receiver(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> Receiver:
    hook = Receiver()
    app = web.Application()
    app.router.add_post("/hook", hook.handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    hook.port = server.port
    return hook


# ----- the rule -----


def test_which_addresses_are_refused() -> None:
    refusing = WebhookDestinations(allow_private=False)
    refused = {
        "127.0.0.1": "loopback", "127.8.9.1": "loopback", "::1": "loopback",
        "10.0.0.1": "private", "172.31.255.255": "private", "192.168.0.1": "private", "fd00::1": "private",
        "fc00::1": "private", "fec0::1": "private",
        "169.254.169.254": "link-local", "fe80::1": "link-local",
        "0.0.0.0": "unspecified", "::": "unspecified",
        "100.64.0.1": "carrier-grade NAT", "100.127.255.254": "carrier-grade NAT",
        "224.0.0.1": "multicast", "239.255.255.250": "multicast", "ff02::1": "multicast",
        "240.0.0.1": "reserved", "255.255.255.255": "reserved",
        "::ffff:127.0.0.1": "loopback", "::ffff:10.0.0.1": "private", "::ffff:169.254.1.1": "link-local",
        "::ffff:100.64.0.1": "carrier-grade NAT", "2002:c0a8:101::1": "private", "64:ff9b::a00:1": "private",
        "192.0.2.1": "non-public", "198.18.0.1": "non-public", "2001:db8::1": "non-public",
        "0.1.2.3": "non-public", "::127.0.0.1": "reserved",
    }  # fmt: skip
    for address, rule in refused.items():
        assert refusing.refusal(ip_address(address)) == rule, address
    for public in ("93.184.215.14", "1.1.1.1", "2606:4700:4700::1111", "::ffff:93.184.215.14", "100.128.0.1", "172.32.0.1"):
        assert refusing.refusal(ip_address(public)) is None, public
    allowing = WebhookDestinations(allow_private=True)
    for address in (*refused, "93.184.215.14"):
        assert allowing.refusal(ip_address(address)) is None


def test_the_setting_comes_from_the_environment_and_the_serve_flag() -> None:
    assert Settings.from_env({}).webhook_allow_private is False
    assert Settings.from_env({"TRACKER_WEBHOOK_ALLOW_PRIVATE": "1"}).webhook_allow_private is True
    assert Settings.from_env({"TRACKER_WEBHOOK_ALLOW_PRIVATE": "off"}).webhook_allow_private is False
    with pytest.raises(ValueError, match="TRACKER_WEBHOOK_ALLOW_PRIVATE"):
        Settings.from_env({"TRACKER_WEBHOOK_ALLOW_PRIVATE": "maybe"})
    result = invoke(["serve", "--help"])
    assert "--webhook-allow-private" in result.stdout and "TRACKER_WEBHOOK_ALLOW_PRIVATE" in result.stdout
    assert_one_line_error(invoke(["serve"], env={"TRACKER_WEBHOOK_ALLOW_PRIVATE": "maybe"}), "TRACKER_WEBHOOK_ALLOW_PRIVATE")


# ----- when an alert is set -----


@pytest.mark.usefixtures("users")
async def test_the_page_refuses_a_non_public_webhook_naming_the_rule(client: TestClient, accounts: Accounts) -> None:
    csrf = await sign_in(client, "alice", "pw-alice")
    for url in REFUSED_URLS:
        answer = await client.post("/api/alerts", json={"after": "10m", "webhook": url}, headers={"X-CSRF-Token": csrf})
        assert answer.status == 400, url
        (error,) = (await answer.json()).values()
        assert error.startswith("webhook destination not allowed: ") and "TRACKER_WEBHOOK_ALLOW_PRIVATE" in error, error
        assert "public" in error
    answer = await client.post(
        "/api/alerts", json={"after": "10m", "webhook": "http://localhost:8123/x"}, headers={"X-CSRF-Token": csrf}
    )
    assert "'localhost' resolves to a loopback address" in (await answer.json())["error"]
    answer = await client.post(
        "/api/alerts", json={"after": "10m", "webhook": "http://10.1.2.3/x"}, headers={"X-CSRF-Token": csrf}
    )
    assert "'10.1.2.3' is a private address" in (await answer.json())["error"]
    assert await accounts.list_alerts("alice") == []
    # A URL that is wrong in itself still says so first.
    answer = await client.post("/api/alerts", json={"after": "10m", "webhook": "ftp://10.1.2.3/"}, headers={"X-CSRF-Token": csrf})
    assert answer.status == 400 and "http:// or https://" in (await answer.json())["error"]


@pytest.mark.usefixtures("users")
async def test_the_page_accepts_a_lan_webhook_when_the_operator_allows_it(
    aiohttp_client: Callable[..., Awaitable[TestClient]], settings: Settings, accounts: Accounts
) -> None:
    client = await aiohttp_client(create_app(settings.with_(webhook_allow_private=True)))
    csrf = await sign_in(client, "alice", "pw-alice")
    url = "http://192.168.1.20:8123/api/webhook/tracker"  # a Home Assistant on the LAN; nothing is sent
    answer = await client.post("/api/alerts", json={"after": "10m", "webhook": url}, headers={"X-CSRF-Token": csrf})
    assert answer.status == 200, await answer.text()
    assert [a.webhook_url for a in await accounts.list_alerts("alice")] == [url]


def test_the_cli_refuses_a_non_public_webhook_unless_allowed(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    add_user(data_dir, "alice")
    d = ["--data-dir", str(data_dir)]
    off = {"TRACKER_WEBHOOK_ALLOW_PRIVATE": "0"}
    for url in ("http://localhost:8123/h", "http://10.0.0.7/h", "http://169.254.169.254/", "http://[::ffff:127.0.0.1]/"):
        result = invoke(["alert", "set", "alice", "--after", "10m", "--webhook", url, *d], env=off)
        assert_one_line_error(result, "webhook destination not allowed", "TRACKER_WEBHOOK_ALLOW_PRIVATE")
    assert "resolves to a loopback address" in invoke(
        ["alert", "set", "alice", "--after", "10m", "--webhook", "http://localhost/h", *d], env=off
    ).stderr
    assert invoke(["alert", "list", "alice", *d]).stdout == ""
    result = invoke(
        ["alert", "set", "alice", "--after", "10m", "--webhook", "http://192.168.1.20:8123/h", *d],
        env={"TRACKER_WEBHOOK_ALLOW_PRIVATE": "1"},
    )
    assert result.exit_code == 0, result.output


# ----- when a notice is delivered -----


async def _failed(accounts: Accounts, owner: str, timeout: float = 5.0) -> list[Any]:
    async with asyncio.timeout(timeout):
        while True:
            alerts = await accounts.list_alerts(owner)
            if alerts and all(a.delivery_state == "failed" for a in alerts):
                return alerts
            await asyncio.sleep(0.02)


@pytest.mark.usefixtures("users")
async def test_a_delivery_to_a_non_public_address_is_refused_at_connect_time(
    client: TestClient, accounts: Accounts, add_user: AddUser, receiver: Receiver, unused_tcp_port: int
) -> None:
    # Stored directly, as if its name had resolved to a public address when it was set and to a
    # private one now (or set while the operator allowed it): only the connect-time check is left.
    open_port = f"http://localhost:{receiver.port}/hook"
    closed_port = f"http://localhost:{unused_tcp_port}/hook"
    users = {
        "alice": open_port,
        "bob": closed_port,
        "carol": f"http://127.0.0.1:{receiver.port}/hook",
        "dave": f"http://[::ffff:127.0.0.1]:{receiver.port}/hook",
        "erin": "http://10.255.255.1:9/hook",  # refused before any packet is sent
        "frank": "http://169.254.169.254/latest/meta-data/",
    }
    for user, url in users.items():
        if user != "alice":
            await add_user(user, f"pw-{user}")
        await accounts.set_alert(user, None, 0.1, url)
    await asyncio.sleep(0.2)
    for user in users:
        response = await client.post(f"/write?db={user}", data="samples hr_bpm=1", headers=basic(user, f"pw-{user}"))
        assert response.status == 204

    outcomes = {}
    for user in users:
        (alert,) = await _failed(accounts, user)
        outcomes[user] = (alert.delivery_state, alert.delivery_status, alert.delivery_error, alert.delivery_attempts)
    # The same words whether a port is open or closed: no port scanning through the outcome. A
    # refused destination is final (not retried: it would be refused again).
    assert set(outcomes.values()) == {("failed", None, NOT_ALLOWED, 1)}, outcomes
    assert NOT_ALLOWED == "destination not allowed"
    assert receiver.received == []

    csrf_free_view = await sign_in(client, "alice", "pw-alice")
    assert csrf_free_view
    (shown,) = (await (await client.get("/api/alerts")).json())["alerts"]
    assert shown["delivery"]["error"] == "destination not allowed" and shown["delivery"]["state"] == "failed"


@pytest.mark.usefixtures("users")
async def test_with_the_setting_on_the_same_loopback_receiver_gets_the_notice(
    aiohttp_client: Callable[..., Awaitable[TestClient]], settings: Settings, accounts: Accounts, receiver: Receiver
) -> None:
    client = await aiohttp_client(create_app(settings.with_(webhook_allow_private=True)))
    await accounts.set_alert("alice", None, 0.1, f"http://localhost:{receiver.port}/hook")
    await asyncio.sleep(0.2)
    response = await client.post("/write?db=alice", data="samples hr_bpm=1", headers=basic("alice", "pw-alice"))
    assert response.status == 204
    async with asyncio.timeout(5):
        while not receiver.received:
            await asyncio.sleep(0.02)
    assert receiver.received[0]["kind"] == "quiet"


@pytest.mark.usefixtures("users")
async def test_a_redirect_is_not_followed(
    aiohttp_client: Callable[..., Awaitable[TestClient]], aiohttp_server: Callable[..., Awaitable[TestServer]],
    settings: Settings, accounts: Accounts,
) -> None:  # fmt: skip
    # A webhook that answers "go there" cannot send the server on to another destination.
    followed: list[str] = []

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect("/elsewhere")

    async def elsewhere(request: web.Request) -> web.Response:
        followed.append(request.path)
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hook", redirect)
    app.router.add_post("/elsewhere", elsewhere)
    server = await aiohttp_server(app, host="127.0.0.1")
    client = await aiohttp_client(create_app(settings.with_(webhook_allow_private=True)))
    await accounts.set_alert("alice", None, 0.1, str(server.make_url("/hook")))
    await asyncio.sleep(0.2)
    response = await client.post("/write?db=alice", data="samples hr_bpm=1", headers=basic("alice", "pw-alice"))
    assert response.status == 204
    (alert,) = await _failed(accounts, "alice")
    assert (alert.delivery_status, alert.delivery_error, alert.delivery_attempts) == (307, "HTTP 307", 1)
    assert followed == []
