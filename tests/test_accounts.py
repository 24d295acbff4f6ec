from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Awaitable, TypeVar

import pytest
from passlib.context import CryptContext

from tracker.accounts import (
    Accounts,
    InvalidPassword,
    InvalidShare,
    InvalidUsername,
    UnknownUser,
    UserExists,
    validate_username,
)
from tracker.storage import AccountStore


class CountingContext(CryptContext):
    """Cheap argon2 (tests stay fast) that counts how often a hash is verified."""

    def __init__(self) -> None:
        super().__init__(schemes=["argon2"], argon2__memory_cost=8, argon2__time_cost=1, argon2__parallelism=1)
        self.verify_calls = 0

    def verify(self, secret: Any, hash: Any, scheme: Any = None, category: Any = None, **kwds: Any) -> bool:
        self.verify_calls += 1
        return super().verify(secret, hash, scheme=scheme, category=category, **kwds)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[AccountStore]:
    store = await AccountStore.open(tmp_path)
    yield store
    await store.close()


@pytest.fixture
async def other_store(tmp_path: Path, store: AccountStore) -> AsyncIterator[AccountStore]:
    """A second connection to the same folder: what the CLI is while the server runs."""
    other = await AccountStore.open(tmp_path)
    yield other
    await other.close()


@pytest.fixture
def context() -> CountingContext:
    return CountingContext()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def accounts(store: AccountStore, context: CountingContext, clock: Clock) -> Accounts:
    return Accounts(store, cache_seconds=300, password_context=context, clock=clock)


# ----- validate_username -----


@pytest.mark.parametrize("name", ["a", "alice", "Bob_2", "x-y", "_", "_-", "x-", "A" * 64, "0123456789"])
def test_validate_username_accepts(name: str) -> None:
    assert validate_username(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "..", ".", "a/b", "/etc", "a\x00b", "a b", "a" * 65, "é", "\u0430", "a.b", "alice\n", "a\\b", "ａ", "-", "-x"],
)
def test_validate_username_rejects(name: str) -> None:
    with pytest.raises(InvalidUsername, match="invalid username .*: use 1-64 characters from A-Z a-z 0-9 _ -"):
        validate_username(name)


# ----- users and authentication -----


async def test_add_and_authenticate(accounts: Accounts, context: CountingContext) -> None:
    await accounts.add_user("alice", "s3cret pass")
    assert await accounts.authenticate("alice", "s3cret pass")
    assert not await accounts.authenticate("alice", "s3cret pas")
    assert not await accounts.authenticate("alice", "")
    assert await accounts.user_exists("alice")
    assert [u.name for u in await accounts.list_users()] == ["alice"]


async def test_stored_hash_is_argon2_not_the_password(accounts: Accounts, store: AccountStore) -> None:
    await accounts.add_user("alice", "s3cret")
    record = await store.get_user("alice")
    assert record is not None
    assert record.password_hash.startswith("$argon2id$")
    assert "s3cret" not in record.password_hash


async def test_default_context_is_strong_argon2id(store: AccountStore) -> None:
    accounts = Accounts(store)
    await accounts.add_user("alice", "pw")
    record = await store.get_user("alice")
    assert record is not None
    assert record.password_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert await accounts.authenticate("alice", "pw")


async def test_unknown_user_pays_one_verify(accounts: Accounts, context: CountingContext) -> None:
    assert not await accounts.authenticate("nobody", "pw")
    assert context.verify_calls == 1
    assert not await accounts.authenticate("a/../b", "pw")  # invalid names are simply unknown
    assert context.verify_calls == 2


async def test_add_user_errors(accounts: Accounts) -> None:
    await accounts.add_user("alice", "pw")
    with pytest.raises(UserExists):
        await accounts.add_user("alice", "other")
    with pytest.raises(InvalidUsername):
        await accounts.add_user("../alice", "pw")
    with pytest.raises(InvalidPassword):
        await accounts.add_user("bob", "")
    with pytest.raises(InvalidPassword):
        await accounts.add_user("bob", "x" * 100_000)
    assert not await accounts.user_exists("bob")


async def test_unknown_user_errors(accounts: Accounts) -> None:
    with pytest.raises(UnknownUser, match="'ghost'"):
        await accounts.set_password("ghost", "pw")
    with pytest.raises(UnknownUser, match="'ghost'"):
        await accounts.delete_user("ghost")


async def test_cache_hit_does_not_verify_again(accounts: Accounts, context: CountingContext) -> None:
    await accounts.add_user("alice", "pw")
    assert await accounts.authenticate("alice", "pw")
    assert context.verify_calls == 1
    for _ in range(5):
        assert await accounts.authenticate("alice", "pw")
    assert context.verify_calls == 1


async def test_failures_are_never_cached(accounts: Accounts, context: CountingContext) -> None:
    await accounts.add_user("alice", "pw")
    assert await accounts.authenticate("alice", "pw")
    for expected_calls in (2, 3):
        assert not await accounts.authenticate("alice", "wrong")
        assert context.verify_calls == expected_calls
    assert await accounts.authenticate("alice", "pw")  # the wrong attempts did not evict the good one
    assert context.verify_calls == 3


async def test_cache_expires_once_idle_and_not_while_in_use(
    accounts: Accounts, context: CountingContext, clock: Clock
) -> None:
    """A success is remembered for 300 s after its last use, not its first: a phone posting every
    second never pays a full verification again, one silent for longer does."""
    await accounts.add_user("alice", "pw")
    assert await accounts.authenticate("alice", "pw")
    for _ in range(10):  # in use every 299 s: 2,990 s in all
        clock.now += 299
        assert await accounts.authenticate("alice", "pw")
    assert context.verify_calls == 1
    clock.now += 301
    assert await accounts.authenticate("alice", "pw")
    assert context.verify_calls == 2


async def test_cache_can_be_disabled(store: AccountStore, context: CountingContext) -> None:
    accounts = Accounts(store, cache_seconds=0, password_context=context)
    await accounts.add_user("alice", "pw")
    for _ in range(3):
        assert await accounts.authenticate("alice", "pw")
    assert context.verify_calls == 3


T = TypeVar("T")


async def request(question: Awaitable[T]) -> T:
    """Ask as a request would: each request of the server is a task of its own."""
    return await asyncio.ensure_future(question)


async def test_one_request_checks_the_file_once_for_its_questions(tmp_path: Path, context: CountingContext) -> None:
    """A write asks who it is, whether it may write and its retention: one look at the accounts
    file answers them all. The next request looks again (a change by the CLI counts at once)."""
    store = await CountingStore.open(tmp_path)
    try:
        assert isinstance(store, CountingStore)
        accounts = Accounts(store, password_context=context)
        await accounts.add_user("alice", "pw")

        async def one_write_request() -> None:
            assert await accounts.authenticate("alice", "pw")
            assert await accounts.can_write("alice", "alice")
            await accounts.retention_ns("alice")
            assert await accounts.user_exists("alice")

        await request(one_write_request())
        before = store.data_version_calls
        await request(one_write_request())
        assert store.data_version_calls - before == 1
        await request(one_write_request())
        assert store.data_version_calls - before == 2
    finally:
        await store.close()


async def test_a_stream_that_sees_the_file_change_is_answered_from_the_change(
    accounts: Accounts, other_store: AccountStore, context: CountingContext
) -> None:
    """A live stream is one long request: when it notices a new data_version (another process
    revoked a share), its very next question is answered from the new state, not from the check
    its own previous question made a moment ago."""
    for name in ("alice", "bob"):
        await accounts.add_user(name, "pw")
    cli = Accounts(other_store, password_context=context)
    await cli.add_share("alice", "bob")
    seen = await accounts.data_version()
    assert await accounts.can_read("bob", "alice")
    await cli.remove_share("alice", "bob")
    assert await accounts.data_version() != seen
    assert not await accounts.can_read("bob", "alice")


async def test_own_password_change_takes_effect_at_once(accounts: Accounts) -> None:
    await accounts.add_user("alice", "old")
    assert await accounts.authenticate("alice", "old")
    await accounts.set_password("alice", "new")
    assert not await accounts.authenticate("alice", "old")
    assert await accounts.authenticate("alice", "new")


async def test_password_change_by_another_process_takes_effect_at_once(
    accounts: Accounts, other_store: AccountStore, context: CountingContext
) -> None:
    await accounts.add_user("alice", "old")
    assert await accounts.authenticate("alice", "old")  # now cached
    cli = Accounts(other_store, password_context=context)
    await cli.set_password("alice", "new")
    assert not await request(accounts.authenticate("alice", "old"))
    assert await request(accounts.authenticate("alice", "new"))


async def test_delete_by_another_process_takes_effect_at_once(
    accounts: Accounts, other_store: AccountStore, context: CountingContext
) -> None:
    await accounts.add_user("alice", "pw")
    assert await accounts.authenticate("alice", "pw")  # now cached
    await Accounts(other_store, password_context=context).delete_user("alice")
    assert not await request(accounts.authenticate("alice", "pw"))
    assert not await request(accounts.user_exists("alice"))


async def test_user_added_by_another_process_can_log_in_at_once(
    accounts: Accounts, other_store: AccountStore, context: CountingContext
) -> None:
    assert not await accounts.authenticate("bob", "pw")  # snapshot loaded without bob
    await Accounts(other_store, password_context=context).add_user("bob", "pw")
    assert await accounts.authenticate("bob", "pw")


async def test_unrelated_change_keeps_cache(
    accounts: Accounts, other_store: AccountStore, context: CountingContext
) -> None:
    await accounts.add_user("alice", "pw")
    assert await accounts.authenticate("alice", "pw")
    await Accounts(other_store, password_context=context).add_user("bob", "pw")
    calls = context.verify_calls
    assert await accounts.authenticate("alice", "pw")  # alice's hash is unchanged: still a hit
    assert context.verify_calls == calls


class CountingStore(AccountStore):
    data_version_calls = 0

    async def data_version(self) -> int:
        self.data_version_calls += 1
        return await super().data_version()


async def test_concurrent_checks_are_coalesced(tmp_path: Path, context: CountingContext) -> None:
    store = await CountingStore.open(tmp_path)
    try:
        assert isinstance(store, CountingStore)
        accounts = Accounts(store, password_context=context)
        await accounts.add_user("alice", "pw")
        assert await accounts.authenticate("alice", "pw")
        before = store.data_version_calls
        results = await asyncio.gather(*(accounts.authenticate("alice", "pw") for _ in range(50)))
        assert all(results)
        # The first call's check plus one shared by everyone who arrived while it ran.
        assert store.data_version_calls - before <= 2
    finally:
        await store.close()


# ----- authorization and shares -----


async def test_authorization_rules(accounts: Accounts) -> None:
    for name in ("alice", "bob", "carol", "dave"):
        await accounts.add_user(name, "pw")
    await accounts.add_share("carol", "alice")
    await accounts.add_share("bob", "alice")
    await accounts.add_share("alice", "dave")

    assert await accounts.can_write("alice", "alice")
    assert not await accounts.can_write("alice", "bob")  # a share never grants writing
    assert await accounts.can_read("alice", "alice")
    assert await accounts.can_read("alice", "bob")
    assert await accounts.can_read("alice", "carol")
    assert not await accounts.can_read("bob", "alice")  # shares are one-way
    assert not await accounts.can_read("alice", "dave")
    assert await accounts.readable_databases("alice") == ["alice", "bob", "carol"]
    assert await accounts.readable_databases("dave") == ["dave", "alice"]
    assert await accounts.readable_databases("bob") == ["bob"]

    assert await accounts.remove_share("bob", "alice")
    assert not await accounts.remove_share("bob", "alice")
    assert not await accounts.can_read("alice", "bob")
    assert await accounts.readable_databases("alice") == ["alice", "carol"]


async def test_share_add_is_idempotent_and_listed(accounts: Accounts) -> None:
    for name in ("alice", "bob"):
        await accounts.add_user(name, "pw")
    await accounts.add_share("alice", "bob")
    await accounts.add_share("alice", "bob")
    assert await accounts.list_shares() == [("alice", "bob")]
    assert await accounts.list_shares("alice") == [("alice", "bob")]
    assert await accounts.list_shares("bob") == []


async def test_share_errors(accounts: Accounts) -> None:
    await accounts.add_user("alice", "pw")
    with pytest.raises(UnknownUser, match="'ghost'"):
        await accounts.add_share("alice", "ghost")
    with pytest.raises(UnknownUser, match="'ghost'"):
        await accounts.add_share("ghost", "alice")
    with pytest.raises(InvalidShare):
        await accounts.add_share("alice", "alice")
    with pytest.raises(InvalidUsername):
        await accounts.add_share("alice", "../bob")
    assert await accounts.list_shares() == []


async def test_share_by_another_process_takes_effect_at_once(
    accounts: Accounts, other_store: AccountStore, context: CountingContext
) -> None:
    for name in ("alice", "bob"):
        await accounts.add_user(name, "pw")
    assert not await accounts.can_read("bob", "alice")
    cli = Accounts(other_store, password_context=context)
    await cli.add_share("alice", "bob")
    assert await request(accounts.can_read("bob", "alice"))
    await cli.delete_user("alice")  # deleting a user removes the shares from it
    assert not await request(accounts.can_read("bob", "alice"))
    assert await request(accounts.readable_databases("bob")) == ["bob"]


def test_link_tokens_never_look_like_options() -> None:
    from tracker.accounts import _new_link_token

    tokens = [_new_link_token() for _ in range(2000)]  # about 1 in 64 raw tokens starts with '-'
    assert not any(token.startswith("-") for token in tokens)
    assert len(set(tokens)) == len(tokens) and all(len(token) == 32 for token in tokens)
