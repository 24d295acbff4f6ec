"""Shared fixtures: a real Tracker server on a loopback port, with its data in a temp folder."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable, Iterator

import pytest
from aiohttp.test_utils import TestClient
from passlib.context import CryptContext

from tests.influxd import InfluxdProcess, run_influxd
from tracker.accounts import Accounts
from tracker.app import create_app
from tracker.config import Settings
from tracker.storage import AccountStore, SampleStore, StoredSample


# Real argon2 at its cheapest, for every test server and account made here (the server's default is
# strong, and costs a third of a second a hash: most of the suite's time before). Tests of the
# default's cost make their own.
@dataclass(slots=True)
class Pt:
    """A point as storage reads it (the attributes of tracker.lineprotocol.Point that it uses), for
    tests that write to a SampleStore directly."""

    time: int
    fields: dict[str, float]
    tags: tuple[tuple[str, str], ...] = ()
    measurement: str = "samples"


CHEAP_HASHING = CryptContext(schemes=["argon2"], argon2__memory_cost=8, argon2__time_cost=1, argon2__parallelism=1)


@pytest.fixture
def settings(tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    # `@pytest.mark.parametrize("settings", [{...}], indirect=True)` changes some of them for one test.
    return Settings(data_dir=tmp_path / "data", **getattr(request, "param", {}))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data folder for tests that start no server of the `settings` kind (the CLI, files read directly)."""
    return tmp_path / "data"


AddUser = Callable[[str, str], Awaitable[None]]


@pytest.fixture
async def add_user(settings: Settings) -> AsyncIterator[AddUser]:
    """Create accounts the way the CLI does: through a store of its own, beside the running server."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = await AccountStore.open(settings.data_dir)
    accounts = Accounts(store, password_context=CHEAP_HASHING)

    async def add(name: str, password: str) -> None:
        await accounts.add_user(name, password)

    yield add
    await store.close()


TokenMaker = Callable[..., Awaitable[str]]


@pytest.fixture
async def accounts(settings: Settings) -> AsyncIterator[Accounts]:
    """The accounts as the CLI sees them: a store of its own beside the running server."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = await AccountStore.open(settings.data_dir)
    yield Accounts(store, password_context=CHEAP_HASHING)
    await store.close()


@pytest.fixture
def make_token(accounts: Accounts) -> TokenMaker:
    """`make_token(user, label, speed_unit="knots")` -> a new device token, as `tracker token create` makes it."""

    async def make(user: str, label: str, speed_unit: str = "knots") -> str:
        token, _ = await accounts.create_token(user, label, speed_unit)
        return token

    return make


@pytest.fixture
def revoke_token(accounts: Accounts) -> Callable[[str, str], Awaitable[None]]:
    async def revoke(user: str, label: str) -> None:
        assert await accounts.revoke_token(user, label)

    return revoke


@pytest.fixture
async def client(aiohttp_client: Callable[..., Awaitable[TestClient]], settings: Settings) -> TestClient:
    return await aiohttp_client(create_app(settings, password_context=CHEAP_HASHING))


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def stored(settings: Settings, user: str, start: int = -(2**62), end: int = 2**62) -> list[StoredSample]:
    """What is committed in a user's file, read through a store of its own (as another process would)."""
    store = SampleStore(settings.data_dir)
    try:
        rows: list[StoredSample] = []
        async for batch in store.read_range(user, start, end):
            rows.extend(batch)
        return rows
    finally:
        await store.close()


@pytest.fixture(scope="session")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxdProcess]:
    """A real InfluxDB 1.x on a free local port with auth on, shared by the tests that compare answers with it
    (skipped, naming the missing tool, where influxd is not installed; failed under CI)."""
    yield from run_influxd(tmp_path_factory.mktemp("influxd"))
