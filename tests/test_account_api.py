"""livetracking.io's account API in its own shapes: /register, GET /auth, /user, change-password, DELETE /user, /time.

Forms go as its clients send them: url-encoded (the phone apps, curl -d) and multipart (web forms, curl -F).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from tests.cli_helpers import invoke
from tests.conftest import AddUser, basic, stored
from tracker.accounts import InvalidUsername, registration_name
from tracker.config import Settings

OPEN = pytest.mark.parametrize("settings", [{"registration": "open"}], indirect=True)
ENCODINGS = pytest.mark.parametrize("multipart", [False, True], ids=["urlencoded", "multipart"])


def form(fields: dict[str, str], multipart: bool) -> Any:
    return aiohttp.FormData(fields, default_to_multipart=True) if multipart else fields


# ----- POST /register


async def test_registration_is_closed_by_default(client: TestClient, settings: Settings) -> None:
    assert Settings().registration == "closed"
    resp = await client.post("/register", data={"username": "newbie", "password": "long-enough"})
    assert resp.status == 403 and await resp.json() == {"error": "registration is closed"}
    resp = await client.get("/auth", headers=basic("newbie", "long-enough"))
    assert resp.status == 401  # nothing was made


@OPEN
@ENCODINGS
async def test_register_creates_the_user_and_their_database(
    client: TestClient, settings: Settings, multipart: bool
) -> None:
    resp = await client.post("/register", data=form({"username": "Rider_One", "password": "long-enough"}, multipart))
    assert resp.status == 200
    body = await resp.json()
    assert body == {"status": "OK", "id": body["id"], "username": "rider_one"}  # stored lowercased
    assert isinstance(body["id"], int) and resp.headers["Cache-Control"] == "no-store"
    # the new account writes to its database and reads it back, as livetracking.io's users do
    auth = basic("rider_one", "long-enough")
    resp = await client.post("/write?db=rider_one&precision=s", data=f"samples hr_bpm=120 {int(time.time())}", headers=auth)
    assert resp.status == 204
    assert [s.fields["hr_bpm"] for s in await stored(settings, "rider_one")] == [120.0]
    resp = await client.get("/user", headers=auth)
    assert await resp.json() == {"user": {"id": body["id"], "username": "rider_one"}}


@OPEN
@ENCODINGS
async def test_register_refusals_in_its_shape(client: TestClient, add_user: AddUser, multipart: bool) -> None:
    await add_user("taken", "long-enough")

    async def errors(username: str, password: str) -> list[str]:
        resp = await client.post("/register", data=form({"username": username, "password": password}, multipart))
        assert resp.status == 400
        return (await resp.json())["errors"]

    assert await errors("TAKEN", "long-enough") == ["USERNAME_DOUBLE"]  # case-insensitive
    assert await errors("abc", "long-enough") == ["INVALIDATE_USERNAME"]
    assert await errors("abc", "short") == ["INVALIDATE_USERNAME", "INVALIDATE_PASSWORD"]
    assert await errors("newbie", "x" * 101) == ["INVALIDATE_PASSWORD"]
    assert await errors("admin", "long-enough") == ["INVALIDATE_USERNAME"]
    resp = await client.post("/register", data=form({}, multipart) if multipart else {})
    assert await resp.json() == {"errors": ["INVALIDATE_USERNAME", "INVALIDATE_PASSWORD"]}


@OPEN
@ENCODINGS
async def test_register_form_is_capped(client: TestClient, multipart: bool) -> None:
    big = {"username": "newbie", "password": "long-enough", "padding": "x" * 70_000}
    resp = await client.post("/register", data=form(big, multipart))
    assert resp.status == 413

    async def chunked() -> Any:  # no Content-Length: the cap holds all the same
        yield b"username=newbie&password=long-enough&padding=" + b"x" * 70_000

    resp = await client.post(
        "/register", data=chunked(), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert resp.status == 413
    assert (await client.get("/auth", headers=basic("newbie", "long-enough"))).status == 401


@pytest.mark.parametrize(
    "name", ["abc", "a" * 21, "1abc", "_abc", "-abc", "ab.cd", "ab/cd", "abcé", "root", "Public", "ADMIN",
             "administrator", "livetracking", "abcd\n"],
)  # fmt: skip
def test_registration_name_rule_refuses(name: str) -> None:
    with pytest.raises(InvalidUsername):
        registration_name(name)


@pytest.mark.parametrize("name, stored_as", [("abcd", "abcd"), ("Rider-1", "rider-1"), ("a" * 20, "a" * 20), ("Bob_X", "bob_x")])
def test_registration_name_rule_accepts(name: str, stored_as: str) -> None:
    assert registration_name(name) == stored_as


@pytest.mark.parametrize("settings", [{"registration": "open", "max_auth_failures": 3}], indirect=True)
async def test_refused_registrations_count_towards_a_ban(client: TestClient, add_user: AddUser) -> None:
    await add_user("taken", "long-enough")
    for _ in range(3):
        resp = await client.post("/register", data={"username": "taken", "password": "long-enough"})
        assert resp.status == 400
    resp = await client.post("/register", data={"username": "fresh", "password": "long-enough"})
    assert resp.status == 429 and "Retry-After" in resp.headers


def test_registration_setting() -> None:
    assert Settings.from_env({"TRACKER_REGISTRATION": "open"}).registration == "open"
    assert Settings.from_env({"TRACKER_REGISTRATION": "invite"}).registration == "invite"
    with pytest.raises(ValueError, match="registration must be open, closed or invite"):
        Settings(registration="sometimes").validate()


# ----- invite mode: codes from `tracker invite create`


async def cli(*args: str) -> str:
    """The real CLI, beside the running server (in a thread: it runs an event loop of its own)."""
    result = await asyncio.to_thread(invoke, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("settings", [{"registration": "invite"}], indirect=True)
@ENCODINGS
async def test_invite_mode(client: TestClient, settings: Settings, multipart: bool) -> None:
    data_dir = str(settings.data_dir)
    single = (await cli("invite", "create", "--data-dir", data_dir)).strip()
    double = (await cli("invite", "create", "--uses", "2", "--data-dir", data_dir)).strip()

    async def register(name: str, invite: str | None) -> tuple[int, Any]:
        fields = {"username": name, "password": "long-enough"} | ({"invite": invite} if invite is not None else {})
        resp = await client.post("/register", data=form(fields, multipart))
        return resp.status, await resp.json()

    assert await register("nocode", None) == (400, {"errors": ["INVALIDATE_INVITE"]})
    assert await register("badcode", "trki_not-a-code") == (400, {"errors": ["INVALIDATE_INVITE"]})
    status, body = await register("first", single)
    assert status == 200 and body["username"] == "first"
    assert await register("again", single) == (400, {"errors": ["INVALIDATE_INVITE"]})  # single use
    assert (await register("second", double))[0] == 200
    assert await register("First", double) == (400, {"errors": ["USERNAME_DOUBLE"]})  # no use spent on it
    assert (await register("third", double))[0] == 200
    assert await register("fourth", double) == (400, {"errors": ["INVALIDATE_INVITE"]})
    listed = await cli("invite", "list", "--data-dir", data_dir)
    assert listed.split("\n")[0].split() == ["ID", "CREATED", "USES", "LEFT"]
    assert [line.split()[2:] for line in listed.strip().split("\n")[1:]] == [["1", "0"], ["2", "0"]]
    assert single not in listed and double not in listed


@pytest.mark.parametrize("settings", [{"registration": "invite"}], indirect=True)
async def test_revoked_invite_is_refused(client: TestClient, settings: Settings) -> None:
    data_dir = str(settings.data_dir)
    code = (await cli("invite", "create", "--uses", "5", "--data-dir", data_dir)).strip()
    assert "revoked invite 1" in await cli("invite", "revoke", "1", "--data-dir", data_dir)
    resp = await client.post("/register", data={"username": "late", "password": "long-enough", "invite": code})
    assert resp.status == 400 and await resp.json() == {"errors": ["INVALIDATE_INVITE"]}
    assert (await asyncio.to_thread(invoke, ["invite", "revoke", "1", "--data-dir", data_dir])).exit_code == 1


# ----- GET /auth, GET /user


async def test_get_auth_checks_credentials(client: TestClient, add_user: AddUser) -> None:
    await add_user("alice", "pw-alice1")
    resp = await client.get("/auth", headers=basic("alice", "pw-alice1"))
    assert resp.status == 200 and await resp.json() == {"username": "alice", "status": "OK"}
    resp = await client.get("/auth", headers=basic("alice", "wrong-one"))
    assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Basic")
    assert (await client.get("/auth")).status == 401
    # POST /auth still issues bearer tokens
    resp = await client.post("/auth", headers=basic("alice", "pw-alice1"))
    assert resp.status == 200 and (await resp.json())["token_type"] == "Bearer"


async def test_get_user(client: TestClient, add_user: AddUser) -> None:
    await add_user("alice", "pw-alice1")
    await add_user("bob", "pw-bob-12")
    alice = await (await client.get("/user", headers=basic("alice", "pw-alice1"))).json()
    bob = await (await client.get("/user", headers=basic("bob", "pw-bob-12"))).json()
    assert alice["user"]["username"] == "alice" and bob["user"]["username"] == "bob"
    assert isinstance(alice["user"]["id"], int) and alice["user"]["id"] != bob["user"]["id"]
    assert (await client.get("/user", headers=basic("alice", "nope"))).status == 401


@pytest.mark.parametrize("settings", [{"max_auth_failures": 2}], indirect=True)
async def test_failed_passwords_count_towards_bans(client: TestClient, add_user: AddUser) -> None:
    await add_user("alice", "pw-alice1")
    for _ in range(2):
        assert (await client.get("/auth", headers=basic("alice", "wrong-one"))).status == 401
    assert (await client.get("/auth", headers=basic("alice", "pw-alice1"))).status == 429


@pytest.mark.parametrize("settings", [{"max_auth_failures": 2}], indirect=True)
async def test_wrong_form_passwords_count_towards_bans(client: TestClient, add_user: AddUser) -> None:
    await add_user("alice", "pw-alice1")
    await add_user("bob", "pw-bob-12")
    resp = await client.post(
        "/user/change-password", data={"password": "wrong-one", "new_password": "x" * 9}, headers=basic("alice", "pw-alice1")
    )
    assert resp.status == 403
    assert (await client.get("/auth", headers=basic("bob", "wrong-one"))).status == 401  # the second failure
    assert (await client.get("/auth", headers=basic("bob", "pw-bob-12"))).status == 429


# ----- POST /user/change-password


@ENCODINGS
async def test_change_password(
    client: TestClient, add_user: AddUser, multipart: bool, aiohttp_client: Callable[..., Awaitable[TestClient]]
) -> None:
    await add_user("alice", "pw-alice1")
    # a web session, which the change must end
    browser = await aiohttp_client(client.server)
    await browser.get("/api/me")
    csrf = browser.session.cookie_jar.filter_cookies(browser.make_url("/")).get("tracker_csrf")
    headers = {"X-CSRF-Token": csrf.value if csrf else ""}
    resp = await browser.post("/login", json={"username": "alice", "password": "pw-alice1"}, headers=headers)
    assert resp.status == 200 and (await browser.get("/api/me")).status == 200

    auth = basic("alice", "pw-alice1")
    resp = await client.post(
        "/user/change-password", data=form({"password": "wrong-one", "new_password": "new-secret"}, multipart), headers=auth
    )
    assert resp.status == 403 and await resp.json() == {"error": "FORBIDDEN"}
    resp = await client.post(
        "/user/change-password", data=form({"password": "pw-alice1", "new_password": "short"}, multipart), headers=auth
    )
    assert resp.status == 400 and await resp.json() == {"errors": ["INVALIDATE_PASSWORD"]}
    resp = await client.post(
        "/user/change-password", data=form({"password": "pw-alice1", "new_password": "new-secret"}, multipart), headers=auth
    )
    assert resp.status == 200 and await resp.json() == {"status": "OK"}
    assert (await client.get("/auth", headers=basic("alice", "new-secret"))).status == 200
    assert (await client.get("/auth", headers=auth)).status == 401
    assert (await browser.get("/api/me")).status == 401  # the other session ended


# ----- DELETE /user


@ENCODINGS
async def test_delete_user_removes_the_account_and_its_data(
    client: TestClient, settings: Settings, add_user: AddUser, multipart: bool
) -> None:
    await add_user("alice", "pw-alice1")
    await add_user("bob", "pw-bob-12")
    auth = basic("alice", "pw-alice1")
    for user, credentials in (("alice", auth), ("bob", basic("bob", "pw-bob-12"))):
        resp = await client.post(f"/write?db={user}", data=f"samples hr_bpm=99 {time.time_ns()}", headers=credentials)
        assert resp.status == 204
    resp = await client.delete("/user", data=form({"password": "wrong-one"}, multipart), headers=auth)
    assert resp.status == 403 and await resp.json() == {"error": "FORBIDDEN"}
    assert len(await stored(settings, "alice")) == 1

    resp = await client.delete("/user", data=form({"password": "pw-alice1"}, multipart), headers=auth)
    assert resp.status == 200 and await resp.json() == {"status": "OK"}
    assert (await client.get("/auth", headers=auth)).status == 401
    assert not (settings.data_dir / "users" / "alice.sqlite").exists()
    assert len(await stored(settings, "bob")) == 1  # others keep theirs


# ----- GET /time


async def test_time_has_livetracking_keys_beside_ours(client: TestClient) -> None:
    before = time.time_ns()
    clock = await (await client.get("/time")).json()
    assert before <= clock["nanoseconds"] <= time.time_ns()
    assert clock["nanoseconds"] == clock["ns"]
    assert clock["seconds"] == clock["s"] == clock["ns"] // 10**9
    assert clock["milliseconds"] == clock["ms"] == clock["ns"] // 10**6
    assert {"s", "ms", "u", "ns", "rfc3339"} <= clock.keys()

