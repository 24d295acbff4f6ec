"""Device tokens and /auth bearer tokens over HTTP against a real server and real SQLite files:
every credential form, the device tag, write-only, revocation, use bookkeeping, expiry and tampering."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import stat
from pathlib import Path
from typing import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import AddUser, basic, stored
from tests.sse import cookie, sign_in
from tracker.accounts import BEARER_SECRET_FILE, Accounts, Writer
from tracker.app import create_app
from tracker.config import Settings
from tracker.storage import AccountStore

NewClient = Callable[[], Awaitable[TestClient]]
LINE = "samples hr_bpm=150 1700000000"


@pytest.fixture
async def users(add_user: AddUser) -> None:
    await add_user("alice", "pw-alice")
    await add_user("bob", "pw-bob")


@pytest.fixture
async def phone(users: None, accounts: Accounts) -> str:
    token, record = await accounts.create_token("alice", "garmin-phone", "mps")
    assert record.label == "garmin-phone" and record.speed_unit == "mps"
    return token


async def write(client: TestClient, url: str = "/write?db=alice&precision=s", body: str = LINE, headers=None):
    response = await client.post(url, data=body, headers=headers or {})
    payload = await response.json() if response.status != 204 else None
    return response.status, payload


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def tags_of(settings: Settings, user: str) -> list[dict[str, str]]:
    return [dict(row.tags) for row in await stored(settings, user)]


# ----- the token itself -----


async def test_tokens_are_random_prefixed_and_stored_only_hashed(users: None, accounts: Accounts, settings: Settings) -> None:
    made = [await accounts.create_token("alice", f"device {i}") for i in range(20)]
    tokens = [token for token, _ in made]
    assert len(set(tokens)) == 20
    for token in tokens:
        assert token.startswith("trk_alice.") and len(token) == len("trk_alice.") + 43  # the owner, then 256 random bits
        assert not token.startswith("-")
    raw = b"".join(path.read_bytes() for path in settings.data_dir.glob("accounts.sqlite*"))
    assert not any(token.encode() in raw or token[len("trk_alice."):].encode() in raw for token in tokens)


async def test_labels_are_validated_and_unique_among_active_tokens(users: None, accounts: Accounts) -> None:
    await accounts.create_token("alice", "  phone  ")
    with pytest.raises(ValueError, match="already has a device token labelled 'phone'"):
        await accounts.create_token("alice", "phone")
    await accounts.create_token("bob", "phone")  # another user's label is theirs
    for bad in ("", "   ", "x" * 101, "tab\there"):
        with pytest.raises(ValueError, match="device token label"):
            await accounts.create_token("alice", bad)
    with pytest.raises(ValueError, match="invalid speed unit 'mph'"):
        await accounts.create_token("alice", "other", "mph")
    with pytest.raises(Exception, match="unknown user 'carol'"):
        await accounts.create_token("carol", "phone")
    assert await accounts.revoke_token("alice", "phone")
    assert not await accounts.revoke_token("alice", "phone")  # already revoked
    again, record = await accounts.create_token("alice", "phone")  # the label is free again
    assert [t.label for t in await accounts.list_tokens("alice")] == ["phone", "phone"]
    assert await accounts.revoke_token("alice", again)  # by the token itself
    assert not await accounts.revoke_token("bob", record.id)  # bob cannot revoke alice's


async def test_authenticate_writer_interface(users: None, accounts: Accounts, phone: str) -> None:
    writer = await accounts.authenticate_writer(None, phone)
    assert writer == Writer("alice", "garmin-phone", writer.token_id, "mps") and writer.token_id is not None
    assert await accounts.authenticate_writer("alice", phone) == writer
    assert await accounts.authenticate_writer("bob", phone) is None  # a name must be the token's owner
    assert await accounts.authenticate_writer("alice", "pw-alice") == Writer("alice", None, None, "knots")
    assert await accounts.authenticate_writer(None, "pw-alice") is None
    assert await accounts.authenticate_writer("alice", "wrong") is None
    assert await accounts.authenticate_writer(None, phone[:-1] + ("A" if phone[-1] != "A" else "B")) is None
    # the read path stays password-only
    assert not await accounts.authenticate("alice", phone)


# ----- writing with a token: every credential form -----


@pytest.mark.parametrize(
    "form",
    ["basic", "basic-no-user", "u-p", "p-only", "token-user", "token-bare", "bearer", "v2-token-bare", "v2-basic"],
)
async def test_every_credential_form_writes_with_the_device_tag(
    client: TestClient, settings: Settings, phone: str, form: str
) -> None:
    url, headers = "/write?db=alice&precision=s", {}
    if form == "basic":
        headers = basic("alice", phone)
    elif form == "basic-no-user":
        headers = basic("", phone)
    elif form == "u-p":
        url += f"&u=alice&p={phone}"
    elif form == "p-only":
        url += f"&p={phone}"
    elif form == "token-user":
        headers = {"Authorization": f"Token alice:{phone}"}
    elif form == "token-bare":
        headers = {"Authorization": f"Token {phone}"}
    elif form == "bearer":
        headers = bearer(phone)
    elif form == "v2-token-bare":  # influxdb-client with token="trk_..."
        url, headers = "/api/v2/write?bucket=alice&org=-&precision=s", {"Authorization": f"Token {phone}"}
    elif form == "v2-basic":
        url, headers = "/api/v2/write?bucket=alice/autogen&precision=s", basic("alice", phone)
    status, body = await write(client, url, headers=headers)
    assert status == 204, body
    rows = await stored(settings, "alice")
    assert [(r.time, r.fields, dict(r.tags)) for r in rows] == [
        (1700000000 * 10**9, {"hr_bpm": 150.0}, {"device": "garmin-phone"})
    ]


async def test_the_request_device_tag_wins_and_other_tags_stay(client: TestClient, settings: Settings, phone: str) -> None:
    body = "samples,device=watch hr_bpm=1 1\nsamples,zone=a hr_bpm=2 2\nsamples hr_bpm=3 3"
    assert (await write(client, body=body, headers=bearer(phone)))[0] == 204
    assert await tags_of(settings, "alice") == [{"device": "watch"}, {"device": "garmin-phone", "zone": "a"}, {"device": "garmin-phone"}]
    # the password writes no device tag
    assert (await write(client, body="samples hr_bpm=4 4", headers=basic("alice", "pw-alice")))[0] == 204
    assert (await tags_of(settings, "alice"))[-1] == {}


async def test_partial_write_with_a_token_tags_only_what_is_stored(client: TestClient, settings: Settings, phone: str) -> None:
    status, body = await write(client, body="samples hr_bpm=1 1\nsamples nope=2 2", headers=bearer(phone))
    assert status == 400 and body["error"].startswith("partial write:")
    assert await tags_of(settings, "alice") == [{"device": "garmin-phone"}]


@pytest.mark.parametrize(
    "url, headers, status, message",
    [
        ("/write?db=bob", "basic-alice", 403, '"alice" user is not authorized to write to database "bob"'),
        ("/write?db=bob", "bearer", 403, '"alice" user is not authorized to write to database "bob"'),
        ("/write?db=nobody", "bearer", 404, 'database not found: "nobody"'),
        ("/write?db=alice", "basic-bob", 401, "authorization failed"),  # a name must be the token's owner
        ("/write?db=alice", "bearer-bad", 401, "authorization failed"),
        ("/write?db=alice", "jwt", 401, "bearer auth disabled"),  # an InfluxDB JWT: still refused as before
        ("/write?db=alice", "token-not-ours", 401, "unable to parse authentication credentials"),
    ],
)
async def test_a_token_writes_only_its_owners_database(
    client: TestClient, phone: str, url: str, headers: str, status: int, message: str
) -> None:
    forms = {
        "basic-alice": basic("alice", phone),
        "basic-bob": basic("bob", phone),
        "bearer": bearer(phone),
        "bearer-bad": bearer("trk_" + "A" * 43),
        "jwt": bearer("eyJhbGciOiJIUzI1NiJ9.e30.x"),
        "token-not-ours": {"Authorization": "Token abc"},
    }
    response = await client.post(url, data=LINE, headers=forms[headers])
    assert response.status == status
    assert await response.json() == {"error": message}
    if status == 401:
        assert response.headers["WWW-Authenticate"] == 'Basic realm="InfluxDB"'


# ----- never read, never manage -----


async def test_a_token_can_never_read(client: TestClient, phone: str) -> None:
    assert (await write(client, headers=bearer(phone)))[0] == 204
    q = {"db": "alice", "q": "SELECT * FROM samples"}
    attempts = [
        ({}, basic("alice", phone), "authorization failed"),
        ({"u": "alice", "p": phone}, {}, "authorization failed"),
        ({}, {"Authorization": f"Token alice:{phone}"}, "authorization failed"),
        ({}, {"Authorization": f"Token {phone}"}, "unable to parse authentication credentials"),
        ({}, bearer(phone), "bearer auth disabled"),
        ({}, basic("", phone), "username required"),
    ]
    for params, headers, message in attempts:
        response = await client.get("/query", params={**q, **params}, headers=headers)
        assert response.status == 401, (params, headers)
        assert await response.json() == {"error": message}
    # the password still reads what the token wrote
    response = await client.get("/query", params={**q, "epoch": "s"}, headers=basic("alice", "pw-alice"))
    assert (await response.json())["results"][0]["series"][0]["values"][0][0] == 1700000000


async def test_a_token_can_never_manage(client: TestClient, phone: str) -> None:
    await client.get("/api/me")
    csrf = cookie(client, "tracker_csrf") or ""
    signin = await client.post("/login", json={"username": "alice", "password": phone}, headers={"X-CSRF-Token": csrf})
    assert signin.status == 401 and await signin.json() == {"error": "wrong username or password"}
    form = await client.post("/login", data={"username": "alice", "password": phone, "csrf": csrf}, allow_redirects=False)
    assert form.headers["Location"] == "/?login=failed"
    for headers in (basic("alice", phone), bearer(phone)):
        for method, url in (("GET", "/api/me"), ("GET", "/api/tokens"), ("POST", "/api/tokens"), ("GET", "/api/links")):
            response = await client.request(method, url, json={"label": "x"}, headers={**headers, "X-CSRF-Token": csrf})
            assert response.status in (401, 403), (method, url)


# ----- revocation -----


async def test_revocation_by_another_process_takes_effect_on_the_next_request(
    client: TestClient, accounts: Accounts, phone: str
) -> None:
    assert (await write(client, headers=bearer(phone)))[0] == 204  # the server has seen (and cached) it
    assert (await write(client, headers=basic("alice", phone)))[0] == 204
    assert await accounts.revoke_token("alice", "garmin-phone")
    for headers in (bearer(phone), basic("alice", phone), {"Authorization": f"Token {phone}"}):
        status, body = await write(client, headers=headers)
        assert (status, body) == (401, {"error": "authorization failed"})


async def test_deleting_the_user_voids_the_token(client: TestClient, accounts: Accounts, phone: str) -> None:
    assert (await write(client, headers=bearer(phone)))[0] == 204
    await accounts.delete_user("alice")
    assert (await write(client, headers=bearer(phone)))[0] == 401


# ----- last used and last sample -----


async def test_use_is_kept_in_memory_shown_at_once_and_flushed_at_shutdown(
    aiohttp_client: Callable[..., Awaitable[TestClient]], settings: Settings, accounts: Accounts, phone: str
) -> None:
    client = await aiohttp_client(create_app(settings.with_(token_use_flush_seconds=3600)))
    before = (await accounts.list_tokens("alice"))[0]
    assert before.last_used_ns is None and before.last_sample_ns is None
    body = "samples hr_bpm=1 1700000005\nsamples hr_bpm=2 1700000009\nsamples hr_bpm=3 1700000001"
    assert (await write(client, body=body, headers=bearer(phone)))[0] == 204
    assert (await write(client, body="samples hr_bpm=1 1600000000", headers=bearer(phone)))[0] == 204  # older: no change
    # The owner's page sees it at once (from memory) ...
    await sign_in(client, "alice", "pw-alice")
    listed = (await (await client.get("/api/tokens")).json())["tokens"]
    assert listed[0]["last_sample_ns"] == 1700000009 * 10**9 and listed[0]["last_used_ns"] > 0
    # ... the file not yet: nothing is written per request ...
    assert (await accounts.list_tokens("alice"))[0].last_used_ns is None
    await client.close()  # ... and shutting down writes it.
    after = (await accounts.list_tokens("alice"))[0]
    assert after.last_sample_ns == 1700000009 * 10**9
    assert after.last_used_ns == listed[0]["last_used_ns"]


async def test_use_is_flushed_every_few_seconds(
    aiohttp_client: Callable[..., Awaitable[TestClient]], settings: Settings, accounts: Accounts, phone: str
) -> None:
    client = await aiohttp_client(create_app(settings.with_(token_use_flush_seconds=0.1)))
    assert (await write(client, headers=bearer(phone)))[0] == 204
    async with asyncio.timeout(5):
        while (record := (await accounts.list_tokens("alice"))[0]).last_sample_ns is None:
            await asyncio.sleep(0.05)
    assert record.last_sample_ns == 1700000000 * 10**9 and record.last_used_ns is not None


async def test_recording_use_does_not_void_the_accounts_snapshot(users: None, settings: Settings) -> None:
    store = await AccountStore.open(settings.data_dir)
    try:
        accounts = Accounts(store)
        _token, record = await accounts.create_token("alice", "phone")
        version = await store.data_version()
        await store.record_token_use([(record.id, 5, None)])
        await store.record_token_use([(record.id, 3, 7)])  # times only move forward
        assert await store.data_version() == version  # bookkeeping: no reload, no stream re-checks
        [row] = await store.list_device_tokens("alice")
        assert (row.last_used_ns, row.last_sample_ns) == (5, 7)
        assert [t.id for t in await store.active_device_tokens()] == [record.id]
    finally:
        await store.close()


# ----- POST /auth: short-lived signed bearer tokens -----


async def get_bearer(client: TestClient, **kwargs) -> str:
    response = await client.post("/auth", **kwargs)
    body = await response.json()
    assert response.status == 200, body
    assert body["token_type"] == "Bearer" and body["expires_in"] == 7200
    assert response.headers["Cache-Control"] == "no-store"
    assert body["token"].startswith("trkb_")
    return body["token"]


async def test_auth_from_a_device_token_writes_only_and_dies_with_the_token(
    client: TestClient, settings: Settings, accounts: Accounts, phone: str
) -> None:
    for kwargs in (
        {"headers": basic("alice", phone)},
        {"json": {"password": phone}},
        {"json": {"username": "alice", "password": phone}},
        {"headers": bearer(phone)},
    ):
        token = await get_bearer(client, **kwargs)
        assert (await write(client, headers=bearer(token)))[0] == 204
    assert await tags_of(settings, "alice") == [{"device": "garmin-phone"}]
    # never reads
    response = await client.get("/query", params={"db": "alice", "q": "SHOW DATABASES"}, headers=bearer(token))
    assert response.status == 401
    # revoking the device token ends its bearer tokens at once
    assert await accounts.revoke_token("alice", "garmin-phone")
    assert await write(client, headers=bearer(token)) == (401, {"error": "authorization failed"})
    assert (await client.post("/auth", headers=basic("alice", phone))).status == 401


async def test_auth_from_a_password_writes_until_the_password_changes(
    client: TestClient, settings: Settings, accounts: Accounts, users: None
) -> None:
    token = await get_bearer(client, headers=basic("alice", "pw-alice"))
    same = await get_bearer(client, json={"username": "alice", "password": "pw-alice"})
    for t in (token, same):
        assert (await write(client, headers=bearer(t)))[0] == 204
    assert await tags_of(settings, "alice") == [{}]  # no device tag for the account itself
    assert (await write(client, "/write?db=bob", headers=bearer(token)))[0] == 403
    # it is for writing: /query keeps refusing bearer tokens
    response = await client.get("/query", params={"db": "alice", "q": "SHOW DATABASES"}, headers=bearer(token))
    assert response.status == 401 and await response.json() == {"error": "bearer auth disabled"}
    await accounts.set_password("alice", "new-pw")
    assert await write(client, headers=bearer(token)) == (401, {"error": "authorization failed"})


@pytest.mark.parametrize(
    "kwargs, status, message",
    [
        ({}, 401, "unable to parse authentication credentials"),
        ({"headers": basic("alice", "wrong")}, 401, "authorization failed"),
        ({"headers": basic("nobody", "x")}, 401, "authorization failed"),
        ({"json": {"username": "alice", "password": "wrong"}}, 401, "authorization failed"),
        ({"json": {"password": "pw-alice"}}, 401, "username required"),
        ({"json": {"password": "trk_" + "x" * 43}}, 401, "authorization failed"),
        ({"data": "not json"}, 400, 'expected a JSON object like {"username": "alice", "password": "..."}'),
        ({"json": ["alice", "pw"]}, 400, 'expected a JSON object like {"username": "alice", "password": "..."}'),
        ({"json": {"username": 5, "password": "x"}}, 400, 'expected a JSON object like {"username": "alice", "password": "..."}'),
        ({"headers": {"Authorization": "Bearer eyJ.x.y"}}, 401, "bearer auth disabled"),
    ],
)
async def test_auth_refusals(client: TestClient, users: None, kwargs: dict, status: int, message: str) -> None:
    response = await client.post("/auth", **kwargs)
    assert response.status == status
    assert await response.json() == {"error": message}


async def test_a_bearer_token_cannot_renew_itself(client: TestClient, users: None) -> None:
    token = await get_bearer(client, headers=basic("alice", "pw-alice"))
    for kwargs in ({"headers": bearer(token)}, {"json": {"password": token}}, {"headers": basic("alice", token)}):
        response = await client.post("/auth", **kwargs)
        assert response.status == 401
        assert "cannot be renewed" in (await response.json())["error"]


@pytest.mark.parametrize("settings", [{"max_auth_failures": 100}], indirect=True)  # more tries than one ban allows
async def test_tampered_bearer_tokens_are_refused(client: TestClient, users: None, phone: str) -> None:
    token = await get_bearer(client, headers=basic("alice", phone))
    owner, payload, signature = token.removeprefix("trkb_").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert owner == "alice" and claims["u"] == "alice"

    def encode(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    flipped = signature[:5] + ("A" if signature[5] != "A" else "B") + signature[6:]
    tampered = [
        f"trkb_alice.{payload}.{flipped}",
        f"trkb_bob.{payload}.{signature}",  # the owner the proxy routes on is signed too
        f"trkb_{payload}.{signature}",  # the owner dropped
        f"trkb_alice.{encode({**claims, 'u': 'bob'})}.{signature}",
        f"trkb_{encode({**claims, 'u': 'bob'})}.{signature}",  # someone else's name
        f"trkb_alice.{encode({**claims, 'x': claims['x'] + 10**9})}.{signature}",  # a longer life
        f"trkb_alice.{payload}.{signature}x",
        f"trkb_alice.{payload}",
        f"trkb_alice.{payload}.",
        f"trkb_alice..{payload}.{signature}",
        "trkb_.",
        "trkb_!!!.???",
    ]
    for bad in tampered:
        for url in ("/write?db=alice&precision=s", "/write?db=bob&precision=s"):
            assert await write(client, url, headers=bearer(bad)) == (401, {"error": "authorization failed"}), bad
    assert (await write(client, headers=bearer(token)))[0] == 204  # the genuine one still works


async def test_bearer_tokens_made_before_owners_still_work(client: TestClient, users: None, settings: Settings) -> None:
    token = await get_bearer(client, headers=basic("alice", "pw-alice"))
    owner, payload, _ = token.removeprefix("trkb_").split(".")
    assert owner == "alice"
    # The earlier form, trkb_CLAIMS.HMAC, signed here with the data folder's key and the standard library.
    key = bytes.fromhex((settings.data_dir / BEARER_SECRET_FILE).read_text().strip())
    mac = hmac.new(key, f"trkb_{payload}".encode(), hashlib.sha256).digest()
    legacy = f"trkb_{payload}." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
    assert (await write(client, headers=bearer(legacy)))[0] == 204
    assert await write(client, "/write?db=bob&precision=s", headers=bearer(legacy)) == (
        403, {"error": '"alice" user is not authorized to write to database "bob"'}
    )


async def test_bearer_tokens_expire(
    aiohttp_client: Callable[..., Awaitable[TestClient]], settings: Settings, phone: str
) -> None:
    client = await aiohttp_client(create_app(settings.with_(bearer_token_seconds=0.5)))
    response = await client.post("/auth", headers=basic("alice", phone))
    body = await response.json()
    assert body["expires_in"] == 0 or body["expires_in"] == 1  # rounded seconds
    assert (await write(client, headers=bearer(body["token"])))[0] == 204
    await asyncio.sleep(0.6)
    assert await write(client, headers=bearer(body["token"])) == (401, {"error": "token expired"})


async def test_the_signing_key_is_private_and_survives_a_restart(
    aiohttp_client: Callable[..., Awaitable[TestClient]], settings: Settings, users: None
) -> None:
    first = await aiohttp_client(create_app(settings))
    token = await get_bearer(first, headers=basic("alice", "pw-alice"))
    await first.close()
    key = settings.data_dir / BEARER_SECRET_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert len(bytes.fromhex(key.read_text().strip())) == 32
    second = await aiohttp_client(create_app(settings))
    assert (await write(second, headers=bearer(token)))[0] == 204
    await second.close()
    # a new key (the old file deleted) voids every bearer token made with the old one
    key.unlink()
    third = await aiohttp_client(create_app(settings))
    assert await write(third, headers=bearer(token)) == (401, {"error": "authorization failed"})


async def test_a_damaged_signing_key_stops_the_start_with_a_clear_message(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True)
    (settings.data_dir / BEARER_SECRET_FILE).write_text("short\n")
    from tracker.accounts import InvalidSecretFile, load_bearer_secret

    with pytest.raises(InvalidSecretFile, match="delete it and a new one is made"):
        load_bearer_secret(settings.data_dir)


# ----- the owner's page: /api/tokens -----


async def test_tokens_through_the_web(client: TestClient, users: None, new_client: NewClient, settings: Settings) -> None:
    assert (await client.get("/api/tokens")).status == 401
    csrf = await sign_in(client, "alice", "pw-alice")
    headers = {"X-CSRF-Token": csrf}
    assert (await client.post("/api/tokens", json={"label": "phone"})).status == 403  # no CSRF token
    label = "<b>phone</b> & co"
    created = await client.post("/api/tokens", json={"label": label, "speed_unit": "kph"}, headers=headers)
    assert created.status == 201
    made = await created.json()
    assert made["label"] == label and made["speed_unit"] == "kph" and made["token"].startswith("trk_")
    assert (await client.post("/api/tokens", json={"label": label}, headers=headers)).status == 409
    for bad in ({"label": ""}, {"label": "x", "speed_unit": "mph"}, {"speed_unit": "kph"}, {"label": 5}):
        response = await client.post("/api/tokens", json=bad, headers=headers)
        assert response.status == 400 and "error" in await response.json()
    default = await (await client.post("/api/tokens", json={"label": "watch"}, headers=headers)).json()
    assert default["speed_unit"] == "knots"

    listed = (await (await client.get("/api/tokens")).json())["tokens"]
    assert [(t["label"], t["revoked"]) for t in listed] == [(label, False), ("watch", False)]
    assert all("token" not in t and "token_hash" not in t for t in listed)

    # the token works right away, and writes its label as the device tag
    assert (await write(client, headers=bearer(made["token"])))[0] == 204
    assert await tags_of(settings, "alice") == [{"device": label}]

    # bob sees none of it and cannot revoke it
    bob = await new_client()
    bob_csrf = await sign_in(bob, "bob", "pw-bob")
    assert (await (await bob.get("/api/tokens")).json())["tokens"] == []
    assert (await bob.delete(f"/api/tokens/{made['id']}", headers={"X-CSRF-Token": bob_csrf})).status == 404

    assert (await client.delete(f"/api/tokens/{made['id']}")).status == 403  # no CSRF token
    assert (await client.delete(f"/api/tokens/{made['id']}", headers=headers)).status == 200
    assert (await client.delete(f"/api/tokens/{made['id']}", headers=headers)).status == 404
    for weird in ("abc", "%C2%B2", "-1"):
        assert (await client.delete(f"/api/tokens/{weird}", headers=headers)).status == 404
    assert await write(client, headers=bearer(made["token"])) == (401, {"error": "authorization failed"})
    listed = (await (await client.get("/api/tokens")).json())["tokens"]
    assert [(t["label"], t["revoked"]) for t in listed] == [(label, True), ("watch", False)]


@pytest.fixture
def new_client(aiohttp_client: Callable[..., Awaitable[TestClient]], client: TestClient) -> NewClient:
    """Another browser (its own cookie jar) on the same server."""
    return lambda: aiohttp_client(client.server)


def test_readme_documents_every_form(settings: Settings) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Device tokens", 1)[1].split("\n## ", 1)[0]
    for needle in ("tracker token create", "tracker token list", "tracker token revoke", "Authorization: Bearer",
                   "Authorization: Token", "-u ", "p=", "POST /auth", "expires_in", "--bearer-token-seconds"):  # fmt: skip
        assert needle in section, needle


async def test_failed_token_checks_count_toward_the_addresss_ban(client: TestClient, users: None, phone: str) -> None:
    """Guessing tokens is guessing passwords: the 11th failure from one address bans it (default 10)."""
    for attempt in range(10):
        status, _ = await write(client, headers=bearer(f"trk_guess-{attempt}"))
        assert status == 401
    status, body = await write(client, headers=bearer(phone))  # even the right token, while banned
    assert status == 429, body
    response = await client.post("/auth", headers=basic("alice", phone))
    assert response.status == 429 and int(response.headers["Retry-After"]) > 0
