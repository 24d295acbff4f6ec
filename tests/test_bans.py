"""Failed sign-ins counted per client address: the counting itself, then over HTTP on every
endpoint that checks a password (InfluxDB's /write, /api/v2/write, /query, and the web's /login)."""

from __future__ import annotations

import asyncio
import logging
import tracemalloc
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient
from click.testing import CliRunner

from tests.conftest import basic
from tests.sse import cookie
from tests.test_accounts import Clock, CountingContext  # cheap argon2 that counts its verifications
from tracker.accounts import Accounts
from tracker.app import create_app
from tracker.bans import AuthBans, Banned, address_key
from tracker.cli import cli
from tracker.config import Settings
from tracker.storage import AccountStore


def bans(clock: Clock, **overrides: Any) -> AuthBans:
    options: dict[str, Any] = dict(max_failures=3, window_seconds=60, ban_seconds=120, clock=clock)
    return AuthBans(**(options | overrides))


def checker(result: bool, calls: list[str]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        calls.append("checked")
        return result

    return check


# ----- the counting -----


async def test_ban_after_max_failures_then_expiry() -> None:
    clock, calls = Clock(), []
    limiter = bans(clock)
    for _ in range(3):
        assert await limiter.verify("192.0.2.1", "alice", checker(False, calls)) is False
    assert len(calls) == 3
    with pytest.raises(Banned) as banned:
        await limiter.verify("192.0.2.1", "alice", checker(True, calls))  # even the right password
    assert banned.value.retry_after == 120 and len(calls) == 3  # refused without checking
    clock.now += 119.5
    assert limiter.retry_after("192.0.2.1") == 1  # rounded up, never 0
    assert await limiter.verify("192.0.2.2", "alice", checker(True, calls))  # other addresses unaffected
    clock.now += 0.5
    assert limiter.retry_after("192.0.2.1") is None
    assert await limiter.verify("192.0.2.1", "alice", checker(True, calls))
    assert len(limiter) == 0  # the ban is over and nothing is counting


async def test_failures_outside_the_window_do_not_count() -> None:
    clock, calls = Clock(), []
    limiter = bans(clock)
    for _ in range(5):
        await limiter.verify("192.0.2.1", "alice", checker(False, calls))
        clock.now += 31  # two failures per 60 s window at most
    assert limiter.retry_after("192.0.2.1") is None
    await limiter.verify("192.0.2.1", "alice", checker(False, calls))
    await limiter.verify("192.0.2.1", "alice", checker(False, calls))
    assert limiter.retry_after("192.0.2.1") == 120


async def test_success_clears_that_users_failures_only() -> None:
    clock, calls = Clock(), []
    limiter = bans(clock)
    await limiter.verify("192.0.2.1", "alice", checker(False, calls))
    await limiter.verify("192.0.2.1", "alice", checker(False, calls))
    await limiter.verify("192.0.2.1", "alice", checker(True, calls))  # the phone got the new password
    await limiter.verify("192.0.2.1", "alice", checker(False, calls))
    await limiter.verify("192.0.2.1", "alice", checker(False, calls))
    assert limiter.retry_after("192.0.2.1") is None

    # Guessing bob's password while signing in to one's own account now and then resets nothing.
    await limiter.verify("192.0.2.2", "bob", checker(False, calls))
    await limiter.verify("192.0.2.2", "bob", checker(False, calls))
    await limiter.verify("192.0.2.2", "mallory", checker(True, calls))
    await limiter.verify("192.0.2.2", "bob", checker(False, calls))
    assert limiter.retry_after("192.0.2.2") == 120


async def test_zero_max_failures_never_bans() -> None:
    calls: list[str] = []
    limiter = bans(Clock(), max_failures=0)
    for _ in range(50):
        assert await limiter.verify("192.0.2.1", "alice", checker(False, calls)) is False
    assert len(calls) == 50 and len(limiter) == 0


class SlowCheck:
    """A password check that takes a while, and records how many ran at once."""

    def __init__(self, result: bool) -> None:
        self.result = result
        self.running = self.most_at_once = self.calls = 0

    async def __call__(self) -> bool:
        self.running += 1
        self.calls += 1
        self.most_at_once = max(self.most_at_once, self.running)
        await asyncio.sleep(0.01)
        self.running -= 1
        return self.result


async def test_a_burst_of_guesses_gets_no_more_than_max_failures_checked() -> None:
    """100 wrong passwords at once from one address: 3 are checked, 97 refused without a check."""
    limiter = bans(Clock())
    wrong = SlowCheck(False)
    results = await asyncio.gather(
        *(limiter.verify("192.0.2.1", "alice", wrong) for _ in range(100)), return_exceptions=True
    )
    assert wrong.calls == 3 and wrong.most_at_once == 3
    assert sum(isinstance(result, Banned) for result in results) == 97
    assert limiter._gates == {}  # nothing left behind per address


async def test_many_right_passwords_at_once_from_one_address_are_checked_side_by_side() -> None:
    """A club behind one address all signing in at once: never refused, up to max_failures at a time."""
    limiter = bans(Clock(), max_failures=10)
    right = SlowCheck(True)
    results = await asyncio.gather(*(limiter.verify("192.0.2.1", f"rider{i}", right) for i in range(100)))
    assert results == [True] * 100
    assert right.calls == 100 and right.most_at_once == 10


async def test_checks_in_progress_leave_room_only_for_the_failures_left() -> None:
    limiter = bans(Clock(), max_failures=5)
    for _ in range(3):
        await limiter.verify("192.0.2.1", "alice", SlowCheck(False))
    right = SlowCheck(True)
    assert await asyncio.gather(*(limiter.verify("192.0.2.1", "bob", right) for _ in range(20))) == [True] * 20
    assert right.most_at_once == 2  # 3 failures + 2 running = 5


async def test_a_check_that_fails_with_an_error_counts_as_nothing() -> None:
    limiter = bans(Clock(), max_failures=1)

    async def broken() -> bool:
        raise RuntimeError("the accounts file is gone")

    for _ in range(3):
        with pytest.raises(RuntimeError):
            await limiter.verify("192.0.2.1", "alice", broken)
    assert limiter.retry_after("192.0.2.1") is None and len(limiter) == 0 and limiter._gates == {}


def test_ipv6_is_counted_per_64_and_mapped_ipv4_as_ipv4() -> None:
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::2") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:192.0.2.7") == address_key("192.0.2.7") == "192.0.2.7"


async def test_memory_stays_bounded_when_addresses_are_sprayed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="tracker.bans")  # one warning per ban: not what is measured
    limiter = bans(Clock(), max_failures=3, max_addresses=500)

    async def wrong() -> bool:
        return False

    async def spray(start: int, count: int, failures: int) -> None:
        for i in range(start, start + count):
            address = f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
            for _ in range(failures):
                await limiter.verify(address, "alice", wrong)

    tracemalloc.start()
    try:
        await spray(0, 1000, 2)  # both tables full
        await spray(1000, 1000, 3)
        full = tracemalloc.get_traced_memory()[0]
        await spray(2000, 5000, 2)  # counting, never banned
        await spray(7000, 5000, 3)  # banned
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(limiter._failures) <= 500 and len(limiter._banned) == 500
    # The newest are the ones kept; the oldest were forgotten first.
    assert limiter.retry_after("10.0.46.223") is not None and limiter.retry_after("10.0.27.88") is None
    assert full < 1_000_000, full  # bytes, for 500 addresses counting and 500 banned
    assert after - full < full / 10, (full, after)  # 10,000 more addresses took no more memory


# ----- over HTTP -----

PROXY = ("127.0.0.1",)  # the test client connects from here; X-Forwarded-For then names the client


@pytest.fixture
def context() -> CountingContext:
    return CountingContext()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data", trusted_proxies=PROXY, max_auth_failures=3, auth_ban_seconds=120
    )


@pytest.fixture
async def client(
    aiohttp_client: Callable[..., Awaitable[TestClient]], settings: Settings, context: CountingContext
) -> AsyncIterator[TestClient]:
    settings.data_dir.mkdir(parents=True)
    store = await AccountStore.open(settings.data_dir)
    await Accounts(store, password_context=context).add_user("alice", "pw-alice")
    await store.close()
    yield await aiohttp_client(create_app(settings, password_context=context))


def client_at(address: str, headers: dict[str, str] | None = None) -> dict[str, str]:
    return {"X-Forwarded-For": address, **(headers or {})}


async def write(client: TestClient, address: str, password: str) -> Any:
    return await client.post(
        "/write?db=alice", data="samples hr_bpm=1 1", headers=client_at(address, basic("alice", password))
    )


@pytest.mark.parametrize("endpoint", ["/write?db=alice", "/api/v2/write?bucket=alice", "/query?db=alice"])
async def test_influx_endpoints_ban_in_influx_form(
    client: TestClient, context: CountingContext, endpoint: str
) -> None:
    body = "samples hr_bpm=1 1"
    params = {"q": "SHOW DATABASES"} if endpoint.startswith("/query") else None
    for _ in range(3):
        response = await client.post(
            endpoint, data=body, params=params, headers=client_at("198.51.100.7", basic("alice", "wrong"))
        )
        assert response.status == 401
    assert context.verify_calls == 3

    for password in ("wrong", "pw-alice"):
        response = await client.post(
            endpoint, data=body, params=params, headers=client_at("198.51.100.7", basic("alice", password))
        )
        assert response.status == 429
        assert response.headers["Retry-After"] == "120"
        assert response.headers["X-Influxdb-Version"]
        message = (await response.json())["error"]
        assert message == "too many failed sign-ins from this address: try again in 120 seconds"
        assert response.headers["X-Influxdb-Error"] == message
    assert context.verify_calls == 3  # the banned requests cost no hashing

    # Another client is served as usual meanwhile.
    response = await client.post(
        endpoint, data=body, params=params, headers=client_at("203.0.113.9", basic("alice", "pw-alice"))
    )
    assert response.status in (200, 204)


async def test_success_resets_the_count(client: TestClient) -> None:
    for _ in range(2):
        assert (await write(client, "198.51.100.7", "wrong")).status == 401
    assert (await write(client, "198.51.100.7", "pw-alice")).status == 204
    for _ in range(2):
        assert (await write(client, "198.51.100.7", "wrong")).status == 401
    assert (await write(client, "198.51.100.7", "pw-alice")).status == 204  # 4 failures, never 3 in a row
    assert (await write(client, "198.51.100.7", "wrong")).status == 401


async def test_unknown_users_and_bad_names_count_too(client: TestClient) -> None:
    for name in ("nobody", "../etc", "a" * 500):
        response = await client.post(
            "/write?db=alice", data="samples hr_bpm=1 1", headers=client_at("198.51.100.7", basic(name, "x"))
        )
        assert response.status == 401
    assert (await write(client, "198.51.100.7", "pw-alice")).status == 429


async def test_requests_without_credentials_are_not_counted(client: TestClient, context: CountingContext) -> None:
    for _ in range(10):
        response = await client.post("/write?db=alice", data="samples hr_bpm=1 1", headers=client_at("198.51.100.7"))
        assert response.status == 401
    assert context.verify_calls == 0
    assert (await write(client, "198.51.100.7", "pw-alice")).status == 204


async def sign_in(client: TestClient, address: str, password: str, *, as_json: bool) -> Any:
    await client.get("/api/me", headers=client_at(address))
    csrf = cookie(client, "tracker_csrf")
    if as_json:
        return await client.post(
            "/login",
            json={"username": "alice", "password": password},
            headers=client_at(address, {"X-CSRF-Token": csrf or ""}),
        )
    return await client.post(
        "/login",
        data={"username": "alice", "password": password, "csrf": csrf},
        headers=client_at(address),
        allow_redirects=False,
    )


async def test_web_sign_in_bans_in_its_own_form(client: TestClient, context: CountingContext) -> None:
    for _ in range(3):
        assert (await sign_in(client, "198.51.100.7", "wrong", as_json=False)).status == 303
    refused = await sign_in(client, "198.51.100.7", "pw-alice", as_json=True)
    assert refused.status == 429 and refused.headers["Retry-After"] == "120"
    assert "X-Influxdb-Error" not in refused.headers  # the web's JSON errors, not InfluxDB's
    assert await refused.json() == {"error": "too many failed sign-ins from this address: try again in 120 seconds"}
    # The browser's form goes back to the sign-in page, which says how long to wait.
    form = await sign_in(client, "198.51.100.7", "pw-alice", as_json=False)
    assert form.status == 303 and form.headers["Location"] == "/?login=banned&retry_after=120"
    assert "tracker_session" not in {morsel.key for morsel in form.cookies.values()}
    assert context.verify_calls == 3
    # Counting is per address, not per endpoint: the same address is banned on /write too.
    assert (await write(client, "198.51.100.7", "pw-alice")).status == 429
    assert (await sign_in(client, "203.0.113.9", "pw-alice", as_json=True)).status == 200


async def test_failures_on_write_ban_the_web_sign_in(client: TestClient) -> None:
    for _ in range(3):
        assert (await write(client, "198.51.100.7", "wrong")).status == 401
    assert (await sign_in(client, "198.51.100.7", "pw-alice", as_json=True)).status == 429


async def test_without_trusted_proxies_the_peer_is_banned_and_forwarded_for_ignored(
    aiohttp_client: Callable[..., Awaitable[TestClient]], tmp_path: Path, context: CountingContext
) -> None:
    settings = Settings(data_dir=tmp_path / "data", max_auth_failures=3)
    settings.data_dir.mkdir(parents=True)
    store = await AccountStore.open(settings.data_dir)
    await Accounts(store, password_context=context).add_user("alice", "pw-alice")
    await store.close()
    client = await aiohttp_client(create_app(settings, password_context=context))
    # A client cannot escape the count by claiming to be someone else.
    for i in range(3):
        assert (await write(client, f"203.0.113.{i}", "wrong")).status == 401
    assert (await write(client, "203.0.113.99", "pw-alice")).status == 429


# ----- settings and flags -----


def test_settings_defaults_and_validation() -> None:
    defaults = Settings()
    assert (defaults.max_auth_failures, defaults.auth_failure_window_seconds, defaults.auth_ban_seconds) == (
        10,
        600.0,
        600.0,
    )
    env = {
        "TRACKER_MAX_AUTH_FAILURES": "5",
        "TRACKER_AUTH_FAILURE_WINDOW_SECONDS": "60",
        "TRACKER_AUTH_BAN_SECONDS": "3600",
    }
    settings = Settings.from_env(env)
    assert (settings.max_auth_failures, settings.auth_failure_window_seconds, settings.auth_ban_seconds) == (
        5,
        60.0,
        3600.0,
    )
    for bad in ({"max_auth_failures": -1}, {"auth_failure_window_seconds": 0}, {"auth_ban_seconds": -5}):
        with pytest.raises(ValueError):
            Settings.from_env({}, **bad)


def test_serve_flags_reach_the_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: list[Settings] = []
    monkeypatch.setattr("tracker.app.run", seen.append)  # the server itself is not started here
    args = ["serve", "--data-dir", str(tmp_path), "--max-auth-failures", "4", "--auth-failure-window", "30"]
    args += ["--auth-ban", "90", "--trusted-proxy", "10.0.0.0/8", "--trusted-proxy", "::1"]
    result = CliRunner().invoke(cli, args, env={"TRACKER_TRUSTED_PROXIES": "192.0.2.1"})
    assert result.exit_code == 0, result.output
    (settings,) = seen
    assert settings.max_auth_failures == 4
    assert settings.auth_failure_window_seconds == 30 and settings.auth_ban_seconds == 90
    assert settings.trusted_proxies == ("10.0.0.0/8", "::1")  # flags win over the environment

    result = CliRunner().invoke(cli, ["serve", "--max-auth-failures", "-1"])
    assert result.exit_code == 1 and "max auth failures" in result.output
    assert len(seen) == 1
