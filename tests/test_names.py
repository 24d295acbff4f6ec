"""A user or database name can never name a file outside the data folder (or another user's file).

Every hostile name goes through every door that takes a name, over HTTP (db=, bucket=, InfluxQL,
/watch/NAME, sign-in, shares) and through the CLI; afterwards the data folder holds exactly the
files it should, and nothing appeared beside it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient
from click.testing import CliRunner
from yarl import URL

from tests.conftest import CHEAP_HASHING, basic
from tests.sse import cookie
from tracker.accounts import Accounts, InvalidUsername, UserExists, validate_username
from tracker.app import create_app
from tracker.cli import CliOptions, cli
from tracker.config import Settings
from tracker.storage import AccountStore, SampleStore

def hostile_names(outside: Path) -> list[str]:
    return [
        "..",
        ".",
        "../evil",
        "../../evil",
        "../../../../../../../../tmp/evil",
        "../users/evil",
        "users/../../evil",
        "a/b",
        "/evil",
        str(outside / "evil"),  # an absolute path into a folder the test watches
        "a\\b",
        "..\\evil",
        "..\\..\\evil",
        "C:\\evil",
        "a\x00b",
        "evil\x00.txt",
        "\x00",
        "a" * 65,
        "a" * 5000,
        "\uff41lice",  # fullwidth a
        "\u0430lice",  # Cyrillic a
        "a\u0301lice",  # a combining acute accent
        "alice\u0301",
        "\u202ealice",  # right-to-left override
        "\u202eecila",
        "alice\u200b",  # zero-width space
        "-alice",
        "-",
        "--help",
        ".alice",
        "alice.",
        "alice.sqlite",
        " alice",
        "alice ",
        "alice\n",
        "alice\r\n",
        "al ice",
        "",
        "%2e%2e",
        "..%2fevil",
        "$(touch evil)",
        "*",
        "alice/",
    ]


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    return folder


@pytest.fixture
async def client(
    aiohttp_client: Callable[..., Awaitable[TestClient]], data_dir: Path, outside: Path
) -> AsyncIterator[TestClient]:
    store = await AccountStore.open(data_dir)
    await Accounts(store, password_context=CHEAP_HASHING).add_user("alice", "pw-alice")
    await store.close()
    client = await aiohttp_client(
        create_app(Settings(data_dir=data_dir, max_auth_failures=0), password_context=CHEAP_HASHING)
    )
    response = await client.post("/write?db=alice", data="samples hr_bpm=150", headers=basic("alice", "pw-alice"))
    assert response.status == 204
    yield client


EXPECTED_FILE = re.compile(r"\A(accounts\.sqlite|journal\.sqlite|users/alice\.sqlite)(-wal|-shm|-journal)?\Z|\A(users|bearer-secret|journal\.lock|server-url)\Z")


def assert_nothing_unexpected(tmp_path: Path, data_dir: Path, outside: Path) -> None:
    found = sorted(str(p.relative_to(data_dir)) for p in data_dir.rglob("*"))
    assert [name for name in found if not EXPECTED_FILE.match(name)] == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "outside"]
    assert list(outside.iterdir()) == []


def path_quoted(name: str) -> str:
    """Every character percent-encoded but letters and digits, dots included (so nothing normalises '..')."""
    return "".join(ch if ch.isascii() and ch.isalnum() else quote(ch, safe="").replace(".", "%2E") for ch in name)


def ok_refusal(status: int, name: str, where: str) -> None:
    assert 400 <= status < 500, f"{where} with {name!r}: {status}"


async def test_hostile_names_over_http(client: TestClient, tmp_path: Path, data_dir: Path, outside: Path) -> None:
    alice = basic("alice", "pw-alice")
    await client.get("/api/me")
    csrf = cookie(client, "tracker_csrf") or ""
    response = await client.post(
        "/login", json={"username": "alice", "password": "pw-alice"}, headers={"X-CSRF-Token": csrf}
    )
    assert response.status == 200
    csrf = cookie(client, "tracker_csrf") or ""
    for name in hostile_names(outside):
        body = "samples hr_bpm=1"
        for params in ({"db": name}, {"db": name, "rp": "autogen"}):
            ok_refusal((await client.post("/write", params=params, data=body, headers=alice)).status, name, "db=")
        for bucket in (name, f"{name}/autogen"):
            response = await client.post("/api/v2/write", params={"bucket": bucket}, data=body, headers=alice)
            if bucket in ("alice/", "alice/autogen"):  # "alice/" is alice's database, default policy
                assert response.status == 204
            else:
                ok_refusal(response.status, name, "bucket=")
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        for params in (
            {"db": name, "q": "SELECT * FROM samples"},
            {"q": f'SELECT * FROM "{quoted}".."samples"'},
            {"q": f'SHOW TAG KEYS ON "{quoted}"'},
            {"q": f'SHOW SERIES ON "{quoted}"'},
            {"q": f'CREATE DATABASE "{quoted}"'},
        ):
            response = await client.get("/query", params=params, headers=alice)
            if response.status == 200:  # InfluxDB's way for some: the error inside the results
                results = (await response.json())["results"]
                assert all("error" in r and "series" not in r for r in results), (name, params, results)
            else:
                ok_refusal(response.status, name, params["q"])
        # Somebody signing in with the name: a wrong user, nothing more.
        response = await client.post("/write?db=alice", data=body, headers=basic(name, "pw-alice"))
        assert response.status == 401, name
        encoded = path_quoted(name)
        for path in (f"/watch/{encoded}", *(f"/api/watch/{encoded}/{what}" for what in ("config", "samples", "events"))):
            response = await client.get(URL(path, encoded=True))
            assert response.status == 404, (path, response.status)
            response.close()
        for method, path, json in (
            ("POST", "/api/shares", {"viewer": name}),
            ("DELETE", "/api/shares", {"viewer": name}),
            ("DELETE", f"/api/shares/{encoded}", None),
        ):
            response = await client.request(method, URL(path, encoded=True), json=json, headers={"X-CSRF-Token": csrf})
            ok_refusal(response.status, name, path)
        response = await client.post(
            "/login", json={"username": name, "password": "pw-alice"}, headers={"X-CSRF-Token": csrf}
        )
        assert response.status == 401, name
        csrf = cookie(client, "tracker_csrf") or csrf
    # Unencoded dots are resolved by the URL rules before routing: never past the router's own paths.
    for raw in ("/watch/../../../etc/passwd", "/api/watch/../../data/accounts.sqlite", "/static/../../data/accounts.sqlite"):
        response = await client.get(URL(raw, encoded=True))
        assert b"SQLite format" not in await response.read()
    assert_nothing_unexpected(tmp_path, data_dir, outside)


def run(args: list[str], input: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(
        cli, args, input=input, env={"TRACKER_DATA_DIR": None}, obj=CliOptions(password_context=CHEAP_HASHING)
    )
    return result.exit_code, result.output


def test_hostile_names_through_the_cli(tmp_path: Path, data_dir: Path, outside: Path) -> None:
    code, output = run(["user", "add", "--data-dir", str(data_dir), "--password-stdin", "alice"], input="password-1\n")
    assert code == 0, output
    store = SampleStore(data_dir)
    store.path_for("alice").parent.mkdir(parents=True, exist_ok=True)
    store.path_for("alice").touch()  # as if alice had written
    d = ["--data-dir", str(data_dir)]
    for name in hostile_names(outside):
        commands = [
            (["user", "add", *d, "--password-stdin", "--", name], "pw\n"),
            (["user", "passwd", *d, "--password-stdin", "--", name], "pw\n"),
            (["user", "delete", *d, "--yes", "--", name], None),
            (["user", "public", *d, "--", name, "on"], None),
            (["share", "add", *d, "--", "alice", name], None),
            (["share", "add", *d, "--", name, "alice"], None),
            (["share", "remove", *d, "--", "alice", name], None),
            (["share", "list", *d, "--", name], None),
            (["link", "create", *d, "--", name], None),
            (["link", "list", *d, "--", name], None),
            (["link", "revoke", *d, "--", name, "token"], None),
        ]
        for args, stdin in commands:
            code, output = run(args, stdin)
            assert code == 1 and "invalid username" in output, (args, output)
    assert_nothing_unexpected(tmp_path, data_dir, outside)


@pytest.mark.parametrize("name", ["Alice", "ALICE", "aLiCe"])
async def test_names_differing_only_in_case_are_one_name(data_dir: Path, name: str) -> None:
    """On macOS and Windows users/Alice.sqlite *is* users/alice.sqlite: a second account must not get it."""
    store = await AccountStore.open(data_dir)
    try:
        accounts = Accounts(store, password_context=CHEAP_HASHING)
        await accounts.add_user("alice", "pw")
        with pytest.raises(UserExists, match="user 'alice' already exists"):
            await accounts.add_user(name, "pw")
        assert [user.name for user in await accounts.list_users()] == ["alice"]
    finally:
        await store.close()


def test_the_sample_store_itself_refuses_every_hostile_name(tmp_path: Path, outside: Path) -> None:
    store = SampleStore(tmp_path / "data")
    # A legal name is always a file inside users/, even one that looks like the accounts file's.
    assert store.path_for("accounts") == (tmp_path / "data" / "users" / "accounts.sqlite").resolve()
    for name in hostile_names(outside):
        with pytest.raises(ValueError, match="invalid username"):
            store.path_for(name)
        with pytest.raises(InvalidUsername):
            validate_username(name)


async def test_a_symlinked_user_file_is_not_followed_outside(
    aiohttp_client: Callable[..., Awaitable[TestClient]], tmp_path: Path, data_dir: Path, outside: Path
) -> None:
    """A file planted in users/ that points elsewhere is refused, not written through."""
    store = await AccountStore.open(data_dir)
    await Accounts(store, password_context=CHEAP_HASHING).add_user("mallory", "pw")
    await store.close()
    target = outside / "target.sqlite"
    (data_dir / "users").mkdir(exist_ok=True)
    (data_dir / "users" / "mallory.sqlite").symlink_to(target)
    client = await aiohttp_client(create_app(Settings(data_dir=data_dir), password_context=CHEAP_HASHING))
    response = await client.post("/write?db=mallory", data="samples hr_bpm=1", headers=basic("mallory", "pw"))
    assert response.status >= 400, response.status  # the server's folder is wrong, not the request
    assert not target.exists()
