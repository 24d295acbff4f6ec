"""The client's address and scheme behind reverse proxies: believed only from trusted ones."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import AddUser, basic
from tests.sse import sign_in
from tracker.app import create_app
from tracker.config import Settings
from tracker.http.forwarded import client_address, parse_address, parse_networks

PROXIES = parse_networks(["127.0.0.1", "10.0.0.0/8", "fd00::/8"])


def client_of(peer: str, *forwarded_for: str) -> str:
    address = parse_address(peer)
    assert address is not None
    return str(client_address(address, forwarded_for, PROXIES))


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        # An untrusted peer is the client, whatever it claims.
        ("203.0.113.5", ["198.51.100.1"], "203.0.113.5"),
        # One trusted proxy: the address it appended.
        ("127.0.0.1", ["198.51.100.1"], "198.51.100.1"),
        # What the client wrote itself (left) proves nothing: the walk stops at the first untrusted hop.
        ("127.0.0.1", ["6.6.6.6, 198.51.100.1"], "198.51.100.1"),
        ("127.0.0.1", ["6.6.6.6, 198.51.100.1, 10.1.2.3"], "198.51.100.1"),
        # Several headers read as one list, in order.
        ("127.0.0.1", ["6.6.6.6, 198.51.100.1", "10.1.2.3"], "198.51.100.1"),
        # Only trusted hops: the leftmost of them.
        ("127.0.0.1", ["10.9.9.9, 10.1.2.3"], "10.9.9.9"),
        # Nothing forwarded: the proxy itself.
        ("127.0.0.1", [], "127.0.0.1"),
        # Garbage cannot be believed: the last trusted hop stands.
        ("127.0.0.1", ["198.51.100.1, unknown"], "127.0.0.1"),
        ("127.0.0.1", ["198.51.100.1, 10.1.2.3, not-an-ip"], "127.0.0.1"),
        ("127.0.0.1", ["unknown, 10.1.2.3"], "10.1.2.3"),
        # Ports, brackets, IPv6, and IPv4 mapped into IPv6.
        ("127.0.0.1", ["198.51.100.1:5555"], "198.51.100.1"),
        ("127.0.0.1", ["[2001:db8::7]:443"], "2001:db8::7"),
        ("fd00::1", ["2001:db8::7"], "2001:db8::7"),
        ("::ffff:127.0.0.1", ["198.51.100.1"], "198.51.100.1"),
        ("127.0.0.1", ["::ffff:10.1.1.1, 198.51.100.1"], "198.51.100.1"),
    ],
)
def test_client_address(peer: str, forwarded_for: list[str], client: str) -> None:
    assert client_of(peer, *forwarded_for) == client


def test_settings_from_env_and_validation() -> None:
    settings = Settings.from_env({"TRACKER_TRUSTED_PROXIES": " 127.0.0.1, 10.0.0.0/8 ,,::1 "})
    assert settings.trusted_proxies == ("127.0.0.1", "10.0.0.0/8", "::1")
    assert Settings.from_env({}).trusted_proxies == ()
    with pytest.raises(ValueError, match="trusted proxy must be an IP address or network, got 'proxy.local'"):
        Settings.from_env({"TRACKER_TRUSTED_PROXIES": "127.0.0.1,proxy.local"})


async def access_log_client(client: TestClient, caplog: pytest.LogCaptureFixture, headers: dict[str, str]) -> str:
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="tracker.access"):
        response = await client.get("/ping", headers=headers)
        assert response.status == 204
    (record,) = [r for r in caplog.records if r.name == "tracker.access"]
    return str(record.args[0])  # type: ignore[index]


async def test_access_log_and_handlers_see_the_client(
    aiohttp_client: Callable[..., Awaitable[TestClient]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    trusting = await aiohttp_client(create_app(Settings(data_dir=tmp_path / "a", trusted_proxies=("127.0.0.1",))))
    assert await access_log_client(trusting, caplog, {"X-Forwarded-For": "6.6.6.6, 198.51.100.1"}) == "198.51.100.1"
    assert await access_log_client(trusting, caplog, {}) == "127.0.0.1"

    default = await aiohttp_client(create_app(Settings(data_dir=tmp_path / "b")))
    assert await access_log_client(default, caplog, {"X-Forwarded-For": "198.51.100.1"}) == "127.0.0.1"

    elsewhere = await aiohttp_client(create_app(Settings(data_dir=tmp_path / "c", trusted_proxies=("10.0.0.0/8",))))
    assert await access_log_client(elsewhere, caplog, {"X-Forwarded-For": "198.51.100.1"}) == "127.0.0.1"


async def test_share_links_use_the_clients_scheme_behind_a_trusted_proxy(
    aiohttp_client: Callable[..., Awaitable[TestClient]], tmp_path: Path, add_user: AddUser
) -> None:
    async def link_url(settings: Settings, proto: str) -> str:
        client = await aiohttp_client(create_app(settings))
        csrf = await sign_in(client, "alice", "pw-alice")
        response = await client.post(
            "/api/links", json={}, headers={"X-CSRF-Token": csrf, "X-Forwarded-Proto": proto}
        )
        assert response.status == 201
        return str((await response.json())["url"])

    await add_user("alice", "pw-alice")
    trusted = Settings(data_dir=tmp_path / "data", trusted_proxies=("127.0.0.0/8",))
    assert (await link_url(trusted, "https")).startswith("https://")
    assert (await link_url(trusted, "http, https")).startswith("https://")  # the nearest proxy's word
    assert (await link_url(trusted, "https, http")).startswith("http://")
    assert (await link_url(trusted, "gopher")).startswith("http://")
    assert (await link_url(Settings(data_dir=tmp_path / "data"), "https")).startswith("http://")


async def test_influx_endpoints_work_unchanged_behind_a_proxy(
    aiohttp_client: Callable[..., Awaitable[TestClient]], tmp_path: Path, add_user: AddUser
) -> None:
    await add_user("alice", "pw-alice")
    client = await aiohttp_client(create_app(Settings(data_dir=tmp_path / "data", trusted_proxies=("127.0.0.1",))))
    headers = {**basic("alice", "pw-alice"), "X-Forwarded-For": "198.51.100.1", "X-Forwarded-Proto": "https"}
    response = await client.post("/write?db=alice&precision=s", data="samples hr_bpm=150 1700000000", headers=headers)
    assert response.status == 204
    response = await client.get("/query", params={"db": "alice", "q": "SELECT hr_bpm FROM samples"}, headers=headers)
    assert response.status == 200
    assert (await response.json())["results"][0]["series"][0]["values"] == [["2023-11-14T22:13:20Z", 150.0]]
