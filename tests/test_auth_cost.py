"""No user enumeration by timing: every failed password check costs the same real work.

Instead of timing requests, the real password hashing is wrapped in a spy that counts (and
performs) every hash and verification: an unknown user, a name that can never exist, a wrong
password and a wrong password next to a cached success must each cost exactly one verification,
against a hash of the same algorithm and parameters.
"""

from __future__ import annotations

from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient
from passlib.context import CryptContext

from tests.conftest import CHEAP_HASHING, basic
from tests.sse import cookie
from tracker.accounts import Accounts, default_password_context
from tracker.app import create_app
from tracker.config import Settings
from tracker.storage import AccountStore


class HashSpy:
    """The real CryptContext, every call passed through and recorded."""

    def __init__(self, real: CryptContext) -> None:
        self.real = real
        self.hashed = 0
        self.verified: list[str] = []  # the stored hash each verification ran against

    def hash(self, secret: str) -> str:
        self.hashed += 1
        return str(self.real.hash(secret))

    def verify(self, secret: str, hash: str) -> bool:
        self.verified.append(hash)
        return bool(self.real.verify(secret, hash))


def cost_parameters(argon2_hash: str) -> str:
    """'$argon2id$v=19$m=8,t=1,p=1$<salt>$<digest>' -> '$argon2id$v=19$m=8,t=1,p=1': what a verify costs."""
    return "$".join(argon2_hash.split("$")[:4])


@pytest.fixture
def spy() -> HashSpy:
    return HashSpy(CHEAP_HASHING)


@pytest.fixture
async def alice_hash(tmp_path: Path) -> str:
    store = await AccountStore.open(tmp_path / "data")
    try:
        await Accounts(store, password_context=CHEAP_HASHING).add_user("alice", "pw-alice")
        record = await store.get_user("alice")
        assert record is not None
        return record.password_hash
    finally:
        await store.close()


@pytest.fixture
async def client(
    aiohttp_client: Callable[..., Awaitable[TestClient]], tmp_path: Path, spy: HashSpy, alice_hash: str
) -> AsyncIterator[TestClient]:
    # Bans off here: this test makes many failed attempts from one address on purpose.
    settings = Settings(data_dir=tmp_path / "data", max_auth_failures=0)
    yield await aiohttp_client(create_app(settings, password_context=spy))  # type: ignore[arg-type]


async def write_as(client: TestClient, user: str, password: str) -> int:
    response = await client.post("/write?db=alice", data="samples hr_bpm=1 1", headers=basic(user, password))
    return response.status


async def sign_in_as(client: TestClient, user: str, password: str) -> int:
    await client.get("/api/me")
    response = await client.post(
        "/login",
        json={"username": user, "password": password},
        headers={"X-CSRF-Token": cookie(client, "tracker_csrf") or ""},
    )
    client.session.cookie_jar.clear()  # signed out again: the next attempt starts from nothing
    return response.status


Attempt = Callable[[TestClient, str, str], Awaitable[int]]
FAILURES = [
    ("nobody", "pw-alice"),  # an unknown user
    ("alice", "wrong"),  # a wrong password
    ("Alice", "pw-alice"),  # names are case-sensitive: unknown
    ("../etc/passwd", "x"),  # a name no account can ever have
    ("a" * 300, "x"),
    ("\u0430lice", "pw-alice"),  # Cyrillic a
    ("alice", "x" * 5000),  # longer than passlib accepts: refused before any hashing, for anyone
    ("nobody", "x" * 5000),
]


@pytest.mark.parametrize("attempt", [write_as, sign_in_as], ids=["write", "login"])
async def test_each_failure_costs_one_verification_like_the_others(
    client: TestClient, spy: HashSpy, alice_hash: str, attempt: Attempt
) -> None:
    for user, password in FAILURES:
        before = len(spy.verified)
        assert await attempt(client, user, password) == 401, user
        assert len(spy.verified) == before + 1, user
        # The same algorithm and parameters as a real user's hash: the same work.
        assert cost_parameters(spy.verified[-1]) == cost_parameters(alice_hash), user
    assert spy.hashed == 1  # the dummy hash for unknown users, made once


@pytest.mark.parametrize("attempt", [write_as, sign_in_as], ids=["write", "login"])
async def test_a_cached_success_spares_the_hash_but_not_a_wrong_guess(
    client: TestClient, spy: HashSpy, alice_hash: str, attempt: Attempt
) -> None:
    assert await attempt(client, "alice", "pw-alice") in (200, 204)
    assert spy.verified == [alice_hash]
    assert await attempt(client, "alice", "pw-alice") in (200, 204)
    assert spy.verified == [alice_hash]  # remembered: no second verification
    # With alice's success remembered, a wrong password still costs a full verification, as an
    # unknown user does: the cache answers only the exact right password.
    assert await attempt(client, "alice", "pw-alice ") == 401
    assert await attempt(client, "nobody", "pw-alice") == 401
    assert len(spy.verified) == 3
    assert spy.verified[1] == alice_hash and spy.verified[2] != alice_hash


@pytest.mark.parametrize("first", [("alice", "wrong"), ("nobody", "x")], ids=["known user", "unknown user"])
async def test_the_first_check_costs_the_same_whoever_it_names(
    client: TestClient, spy: HashSpy, first: tuple[str, str]
) -> None:
    """The dummy hash is made on the first check of any name, not only of an unknown one."""
    assert await write_as(client, *first) == 401
    assert (spy.hashed, len(spy.verified)) == (1, 1)


async def test_the_dummy_hash_costs_what_a_real_one_costs_with_the_default_context(tmp_path: Path) -> None:
    spy = HashSpy(default_password_context())
    store = await AccountStore.open(tmp_path)
    try:
        accounts = Accounts(store, password_context=spy)  # type: ignore[arg-type]
        await accounts.add_user("alice", "pw-alice")
        assert not await accounts.authenticate("nobody", "pw-alice")
        record = await store.get_user("alice")
        assert record is not None
        assert spy.verified[-1] != record.password_hash
        assert cost_parameters(spy.verified[-1]) == cost_parameters(record.password_hash)
        assert cost_parameters(record.password_hash).startswith("$argon2id$v=19$m=65536,t=3,p=4")
    finally:
        await store.close()
