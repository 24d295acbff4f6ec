"""Who may watch whom, over HTTP against a real server: every access rule, sign-in, CSRF, cookies."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import AddUser, basic
from tests.sse import cookie, open_stream, sign_in
from tracker.accounts import Accounts
from tracker.app import create_app
from tracker.config import Settings
from tracker.browser.pages import STATIC_DIR

NewClient = Callable[[], Awaitable[TestClient]]
DATA_URLS = ("/api/watch/alice/config", "/api/watch/alice/samples", "/api/watch/alice/events")


@pytest.fixture
def settings(tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    return Settings(data_dir=tmp_path / "data", live_recheck_seconds=0.2, **getattr(request, "param", {}))


@pytest.fixture
async def users(add_user: AddUser) -> None:
    await add_user("alice", "pw-alice")
    await add_user("bob", "pw-bob")


@pytest.fixture
def new_client(aiohttp_client: Callable[..., Awaitable[TestClient]], client: TestClient) -> NewClient:
    """Another browser (its own cookie jar) on the same server."""
    return lambda: aiohttp_client(client.server)


async def status_of(client: TestClient, url: str) -> int:
    response = await client.get(url)
    body = await response.json() if response.status != 200 or "/events" not in url else None
    if response.status != 200:
        assert response.headers["Content-Type"].startswith("application/json")
        assert "WWW-Authenticate" not in response.headers  # no browser password dialog
        assert set(body) <= {"error", "reason"} and "error" in body
    response.close()
    return response.status


async def write_alice(client: TestClient, body: str = "samples hr_bpm=150 1700000000") -> None:
    response = await client.post("/write?db=alice&precision=s", data=body, headers=basic("alice", "pw-alice"))
    assert response.status == 204


# ----- the access rule -----


@pytest.mark.usefixtures("users")
async def test_private_by_default(client: TestClient, new_client: NewClient) -> None:
    await write_alice(client)
    for url in DATA_URLS:
        assert await status_of(client, url) == 401, url
    response = await client.get("/api/watch/alice/samples")
    assert await response.json() == {"error": "sign in or use a share link to watch alice"}
    # Basic auth is for the InfluxDB API only; it does not open the watch data.
    assert (await client.get("/api/watch/alice/samples", headers=basic("alice", "pw-alice"))).status == 401

    bob = await new_client()
    await sign_in(bob, "bob", "pw-bob")
    for url in DATA_URLS:
        assert await status_of(bob, url) == 403, url
    assert await (await bob.get("/api/watch/alice/samples")).json() == {"error": "not allowed to watch alice"}
    # A made-up token does not help, signed in or not.
    assert await status_of(bob, "/api/watch/alice/samples?token=made-up") == 403
    assert await status_of(client, "/api/watch/alice/samples?token=made-up") == 403

    alice = await new_client()
    await sign_in(alice, "alice", "pw-alice")
    for url in DATA_URLS:
        assert await status_of(alice, url) == 200, url
    body = await (await alice.get("/api/watch/alice/samples?from=0")).json()
    assert body["samples"] == [{"t": 1700000000 * 10**9, "f": {"hr_bpm": 150.0}}]


async def _answer(client: TestClient, url: str) -> tuple[int, str, str]:
    response = await client.get(url)
    text = await response.text() if "/events" not in url or response.status != 200 else ""
    response.close()
    return response.status, response.content_type, text


@pytest.mark.usefixtures("users")
async def test_an_unknown_user_looks_exactly_like_a_private_one(
    client: TestClient, new_client: NewClient, accounts: Accounts
) -> None:
    """Nobody without a right to watch can tell which usernames exist: every watch URL answers an
    unknown name as it answers a private one, without sign-in, signed in as someone else, with a link."""
    bob = await new_client()
    await sign_in(bob, "bob", "pw-bob")
    bob_link, _ = await accounts.create_link("bob", "for mum")
    paths = ("/watch/{}", "/api/watch/{}/config", "/api/watch/{}/samples", "/api/watch/{}/events", "/api/watch/{}/devices")
    for viewer, query, status in ((client, "", 401), (bob, "", 403), (client, f"?token={bob_link}", 403)):
        for path in paths:
            private = await _answer(viewer, path.format("alice") + query)
            unknown = await _answer(viewer, path.format("nobody") + query)
            expected = 200 if path == "/watch/{}" else status
            assert private[0] == unknown[0] == expected, (path, query)
            assert private[1:] == (unknown[1], unknown[2].replace("nobody", "alice")), (path, query)


@pytest.mark.usefixtures("users")
async def test_an_invalid_name_is_404(client: TestClient) -> None:
    """A name no account can ever have hides nothing: 404, and the name is never echoed into a page."""
    assert (await client.get("/api/watch/bad.name/config")).status == 404
    response = await client.get("/watch/%3Cscript%3E")
    assert response.status == 404 and "<script>" not in await response.text()


@pytest.mark.usefixtures("users")
async def test_public_profile_and_back_to_private_ends_an_open_stream(client: TestClient, accounts: Accounts) -> None:
    await accounts.set_public("alice", True)
    for url in DATA_URLS:
        assert await status_of(client, url) == 200, url
    stream = await open_stream(client, "/api/watch/alice/events")
    await write_alice(client)
    assert (await stream.event()).event == "samples"

    await accounts.set_public("alice", False)  # as `tracker user public alice off` in another process
    blocks = await stream.end(timeout=2.0)
    assert [b.event for b in blocks] == ["denied"]
    for url in DATA_URLS:
        assert await status_of(client, url) == 401, url


@pytest.mark.usefixtures("users")
async def test_share_link_valid_revoked(client: TestClient, accounts: Accounts) -> None:
    token, link = await accounts.create_link("alice", "for mum")
    for url in DATA_URLS:
        assert await status_of(client, f"{url}?token={token}") == 200, url
    assert (await accounts.list_links("alice"))[0].last_used_ns is not None
    # A link of another user opens nothing of alice's.
    bob_token, _ = await accounts.create_link("bob", "for mum")
    assert await status_of(client, f"/api/watch/alice/samples?token={bob_token}") == 403

    stream = await open_stream(client, f"/api/watch/alice/events?token={token}")
    await write_alice(client)
    assert (await stream.event()).event == "samples"
    assert await accounts.revoke_link("alice", "for mum")
    blocks = await stream.end(timeout=1.0)  # within the re-check interval (0.2 s) and then some
    assert [b.event for b in blocks] == ["denied"]
    # The stream and every data endpoint say the link was revoked, not merely "not allowed".
    revoked = {"error": "this share link was revoked; ask alice for a new one", "reason": "link_revoked"}
    assert blocks[0].json == revoked
    for url in DATA_URLS:
        assert await status_of(client, f"{url}?token={token}") == 403, url
    assert await (await client.get(f"/api/watch/alice/config?token={token}")).json() == revoked
    # A made-up token, or another user's link, is told nothing about links.
    for other in ("made-up", bob_token):
        body = await (await client.get(f"/api/watch/alice/config?token={other}")).json()
        assert body == {"error": "not allowed to watch alice"}


@pytest.mark.usefixtures("users")
async def test_share_link_expiry_refuses_and_ends_an_open_stream(client: TestClient, accounts: Accounts) -> None:
    token, _ = await accounts.create_link("alice", "brief", expires_in_seconds=0.6)
    stream = await open_stream(client, f"/api/watch/alice/events?token={token}")
    async with asyncio.timeout(3):
        blocks = await stream.end(timeout=3.0)  # nothing changed in the accounts file: the timer re-check
    denied = [b for b in blocks if b.event]
    assert [b.event for b in denied] == ["denied"]
    expired = {"error": "this share link has expired; ask alice for a new one", "reason": "link_expired"}
    assert denied[0].json == expired
    assert await status_of(client, f"/api/watch/alice/samples?token={token}") == 403
    assert await (await client.get(f"/api/watch/alice/samples?token={token}")).json() == expired


@pytest.mark.usefixtures("users")
async def test_read_share_from_the_influx_api_lets_the_viewer_watch(
    client: TestClient, new_client: NewClient, accounts: Accounts
) -> None:
    bob = await new_client()
    await sign_in(bob, "bob", "pw-bob")
    assert await status_of(bob, "/api/watch/alice/samples") == 403
    await accounts.add_share("alice", "bob")
    for url in DATA_URLS:
        assert await status_of(bob, url) == 200, url
    me = await (await bob.get("/api/me")).json()
    assert [t["user"] for t in me["trackers"]] == ["bob", "alice"]  # own first, then shared
    stream = await open_stream(bob, "/api/watch/alice/events")
    await accounts.remove_share("alice", "bob")
    assert [b.event for b in await stream.end() if b.event] == ["denied"]


# ----- signing in -----


@pytest.mark.usefixtures("users")
async def test_sign_in_right_and_wrong_password(client: TestClient) -> None:
    me = await client.get("/api/me")
    assert me.status == 401
    assert "WWW-Authenticate" not in me.headers
    csrf = cookie(client, "tracker_csrf")
    assert (await me.json()) == {"error": "not signed in", "csrf": csrf}

    wrong = await client.post(
        "/login", data={"username": "alice", "password": "nope", "csrf": csrf}, allow_redirects=False
    )
    assert wrong.status == 303 and wrong.headers["Location"] == "/?login=failed"
    assert cookie(client, "tracker_session") is None
    assert (await client.get("/api/me")).status == 401
    unknown = await client.post(
        "/login", data={"username": "<b>x</b>", "password": "x", "csrf": csrf}, allow_redirects=False
    )
    assert unknown.status == 303 and unknown.headers["Location"] == "/?login=failed"

    new_csrf = await sign_in(client, "alice", "pw-alice")
    me = await client.get("/api/me")
    assert me.status == 200
    body = await me.json()
    assert body["user"] == "alice" and body["csrf"] == new_csrf and body["public"] is False
    assert body["trackers"] == [{"user": "alice", "last_sample_ns": None, "live": False}]

    await write_alice(client, "samples hr_bpm=1")  # now
    tracker = (await (await client.get("/api/me")).json())["trackers"][0]
    assert tracker["live"] is True and tracker["last_sample_ns"] > 0

    out = await client.post("/logout", data={"csrf": new_csrf}, allow_redirects=False)
    assert out.status == 303
    assert (await client.get("/api/me")).status == 401


@pytest.mark.usefixtures("users")
async def test_json_sign_in(client: TestClient) -> None:
    await client.get("/api/me")
    csrf = cookie(client, "tracker_csrf") or ""
    wrong = await client.post("/login", json={"username": "alice", "password": "x"}, headers={"X-CSRF-Token": csrf})
    assert wrong.status == 401 and await wrong.json() == {"error": "wrong username or password"}
    right = await client.post("/login", json={"username": "alice", "password": "pw-alice"}, headers={"X-CSRF-Token": csrf})
    assert right.status == 200
    body = await right.json()
    assert body["user"] == "alice" and body["csrf"] == cookie(client, "tracker_csrf")


@pytest.mark.usefixtures("users")
async def test_a_stolen_session_cookie_is_useless_after_logout(client: TestClient, new_client: NewClient) -> None:
    csrf = await sign_in(client, "alice", "pw-alice")
    session = cookie(client, "tracker_session")
    thief = await new_client()
    thief.session.cookie_jar.update_cookies({"tracker_session": session})
    assert (await thief.get("/api/me")).status == 200
    await client.post("/logout", data={"csrf": csrf}, allow_redirects=False)
    assert (await thief.get("/api/me")).status == 401


# ----- CSRF -----


@pytest.mark.usefixtures("users")
async def test_every_state_changing_request_needs_the_csrf_token(
    client: TestClient, accounts: Accounts, new_client: NewClient
) -> None:
    csrf = await sign_in(client, "alice", "pw-alice")
    _, link = await accounts.create_link("alice", "keep")
    changes = [
        ("POST", "/api/links", {"label": "x"}),
        ("DELETE", f"/api/links/{link.id}", None),
        ("POST", "/api/profile", {"public": True}),
        ("POST", "/api/shares", {"viewer": "bob"}),
        ("DELETE", "/api/shares", {"viewer": "bob"}),
        ("DELETE", "/api/shares/bob", None),
        ("POST", "/logout", None),
    ]
    await accounts.add_share("alice", "bob")
    for token in (None, "wrong", ""):
        for method, url, body in changes:
            headers = {} if token is None else {"X-CSRF-Token": token}
            response = await client.request(method, url, json=body, headers=headers)
            assert response.status == 403, (method, url, token)
            assert (await response.json())["error"].startswith("missing or wrong CSRF token")
    # The cookie's value alone, sent back as a form field by another site, is not enough either:
    # the login form needs cookie == field; a forged cross-site form knows neither.
    forged = await client.post("/login", data={"username": "alice", "password": "pw-alice", "csrf": "guess"})
    assert forged.status == 403
    # Nothing changed.
    assert await accounts.is_public("alice") is False
    assert [l.label for l in await accounts.list_links("alice") if l.revoked_ns is None] == ["keep"]
    assert await accounts.list_shares("alice") == [("alice", "bob")]
    assert (await client.get("/api/me")).status == 200  # still signed in
    # A CSRF cookie from before sign-in (fixed by an attacker, say) is not the session's token.
    stale = await new_client()
    await stale.get("/api/me")
    old = cookie(stale, "tracker_csrf") or ""
    await sign_in(stale, "alice", "pw-alice")
    cookies = {"tracker_session": cookie(stale, "tracker_session") or "", "tracker_csrf": old}
    stale.session.cookie_jar.clear()
    forged = await stale.post("/api/profile", json={"public": True}, headers={"X-CSRF-Token": old}, cookies=cookies)
    assert forged.status == 403
    assert (await stale.get("/api/profile", cookies=cookies)).status == 200  # the session itself is fine
    # And with the right token each one works.
    response = await client.post("/api/profile", json={"public": True}, headers={"X-CSRF-Token": csrf})
    assert response.status == 200 and await response.json() == {"user": "alice", "public": True}


# ----- cookies -----


def set_cookie_headers(response, name: str) -> str:  # type: ignore[no-untyped-def]
    headers = [h for h in response.headers.getall("Set-Cookie", []) if h.startswith(name + "=")]
    assert len(headers) == 1, response.headers.getall("Set-Cookie", [])
    return headers[0]


async def login_response(client: TestClient, headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    await client.get("/api/me")
    csrf = cookie(client, "tracker_csrf")
    return await client.post(
        "/login", data={"username": "alice", "password": "pw-alice", "csrf": csrf}, headers=headers, allow_redirects=False
    )


@pytest.mark.usefixtures("users")
async def test_session_cookie_flags_over_plain_http(client: TestClient) -> None:
    response = await login_response(client, {"X-Forwarded-Proto": "https"})  # not trusted by default
    session = set_cookie_headers(response, "tracker_session")
    assert "HttpOnly" in session and "SameSite=Lax" in session and "Path=/" in session
    assert "Secure" not in session
    csrf = set_cookie_headers(response, "tracker_csrf")
    assert "HttpOnly" not in csrf and "SameSite=Lax" in csrf  # the page's script reads it


async def test_secure_cookies_behind_a_trusted_tls_proxy(
    aiohttp_client: Callable[..., Awaitable[TestClient]], tmp_path: Path, add_user: AddUser
) -> None:
    client = await aiohttp_client(create_app(Settings(data_dir=tmp_path / "data", trusted_proxies=("127.0.0.1",))))
    await add_user("alice", "pw-alice")
    await client.get("/api/me")
    csrf = cookie(client, "tracker_csrf")
    response = await client.post(
        "/login",
        data={"username": "alice", "password": "pw-alice", "csrf": csrf},
        headers={"X-Forwarded-Proto": "https"},
        allow_redirects=False,
    )
    for name in ("tracker_session", "tracker_csrf"):
        assert "Secure" in set_cookie_headers(response, name)
    fresh = await aiohttp_client(client.server)
    plain = await fresh.get("/api/me", headers={"X-Forwarded-Proto": "http"})
    assert "Secure" not in set_cookie_headers(plain, "tracker_csrf")


# ----- the owner's settings through the web, and text that looks like HTML -----


@pytest.mark.usefixtures("users")
async def test_links_through_the_web_with_html_in_the_label(client: TestClient, new_client: NewClient) -> None:
    csrf = await sign_in(client, "alice", "pw-alice")
    headers = {"X-CSRF-Token": csrf}
    label = "<script>alert(\"x\")</script> & 'mum'"
    created = await client.post("/api/links", json={"label": label, "expires": "2h"}, headers=headers)
    assert created.status == 201 and created.headers["Content-Type"].startswith("application/json")
    link = await created.json()
    assert link["label"] == label  # a JSON string, as typed: the page shows it as text
    assert link["url"] == f"http://{client.server.host}:{client.server.port}/watch/alice?token={link['token']}"
    assert link["expires_ns"] - link["created_ns"] == 2 * 3600 * 10**9

    duplicate = await client.post("/api/links", json={"label": label}, headers=headers)
    assert duplicate.status == 409
    # 409 means the label is taken, told by the error's type: a message that merely quotes such words is a 400.
    wording = await client.post("/api/links", json={"label": "other", "expires": "already has"}, headers=headers)
    assert wording.status == 400 and "invalid duration" in (await wording.json())["error"]
    unit = await client.post("/api/tokens", json={"label": "phone", "speed_unit": "already has"}, headers=headers)
    assert unit.status == 400 and "invalid speed unit" in (await unit.json())["error"]
    bad = await client.post("/api/links", json={"expires": "soon"}, headers=headers)
    assert bad.status == 400 and "invalid duration" in (await bad.json())["error"]

    viewer = await new_client()
    assert await status_of(viewer, f"/api/watch/alice/samples?token={link['token']}") == 200
    listed = (await (await client.get("/api/links")).json())["links"]
    assert [(l["label"], l["revoked"], l["last_used_ns"] is not None) for l in listed] == [(label, False, True)]
    assert "token" not in listed[0]

    assert (await client.delete(f"/api/links/{link['id']}", headers=headers)).status == 200
    assert (await client.delete(f"/api/links/{link['id']}", headers=headers)).status == 404
    assert (await client.delete("/api/links/%C2%B2", headers=headers)).status == 404  # a digit, but not to int()
    assert await status_of(viewer, f"/api/watch/alice/samples?token={link['token']}") == 403
    # bob cannot see or revoke alice's links
    bob = await new_client()
    bob_csrf = await sign_in(bob, "bob", "pw-bob")
    assert (await (await bob.get("/api/links")).json())["links"] == []
    assert (await bob.delete(f"/api/links/{link['id']}", headers={"X-CSRF-Token": bob_csrf})).status == 404


@pytest.mark.usefixtures("users")
async def test_profile_and_shares_through_the_web(client: TestClient, new_client: NewClient) -> None:
    for url in ("/api/links", "/api/profile", "/api/shares"):
        assert (await client.get(url)).status == 401
    csrf = await sign_in(client, "alice", "pw-alice")
    headers = {"X-CSRF-Token": csrf}
    viewer = await new_client()
    assert await status_of(viewer, "/api/watch/alice/samples") == 401
    assert (await client.post("/api/profile", json={"public": True}, headers=headers)).status == 200
    assert await (await client.get("/api/profile")).json() == {"user": "alice", "public": True}
    assert await status_of(viewer, "/api/watch/alice/samples") == 200
    assert (await client.post("/api/profile", json={"public": "yes"}, headers=headers)).status == 400
    assert (await client.post("/api/profile", json={"public": False}, headers=headers)).status == 200
    assert await status_of(viewer, "/api/watch/alice/samples") == 401

    added = await client.post("/api/shares", json={"viewer": "bob"}, headers=headers)
    assert added.status == 200 and await added.json() == {"viewers": ["bob"]}
    assert (await client.post("/api/shares", json={"viewer": "nobody"}, headers=headers)).status == 404
    assert (await client.post("/api/shares", json={"viewer": "<b>"}, headers=headers)).status == 400
    assert (await client.post("/api/shares", json={"viewer": "alice"}, headers=headers)).status == 400
    assert await (await client.get("/api/shares")).json() == {"viewers": ["bob"]}
    removed = await client.delete("/api/shares/bob", headers=headers)
    assert removed.status == 200 and await removed.json() == {"viewers": []}
    assert (await client.delete("/api/shares/bob", headers=headers)).status == 404


# ----- pages -----


@pytest.mark.usefixtures("users")
async def test_watch_page_is_the_same_static_page_for_everyone(client: TestClient) -> None:
    response = await client.get("/watch/alice")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert await response.read() == (STATIC_DIR / "watch.html").read_bytes()
    assert cookie(client, "tracker_csrf")


async def test_static_files_stay_inside_their_folder(client: TestClient) -> None:
    for url in ("/static/../pyproject.toml", "/static/%2e%2e/pyproject.toml", "/vendor/leaflet/../../../pyproject.toml",
                "/vendor/other/x.js", "/static/.hidden"):  # fmt: skip
        response = await client.get(url)
        assert response.status == 404, url


# ----- sessions: the list, signing out elsewhere, and password changes -----


def invoke_cli(*args: str, stdin: str | None = None):  # type: ignore[no-untyped-def]
    """The real `tracker` command, in a thread (it runs an event loop of its own)."""
    from click.testing import CliRunner

    from tests.conftest import CHEAP_HASHING
    from tracker.cli import CliOptions, cli

    return CliRunner().invoke(cli, list(args), input=stdin, obj=CliOptions(password_context=CHEAP_HASHING))


@pytest.mark.usefixtures("users")
async def test_cli_password_change_ends_every_session(
    client: TestClient, new_client: NewClient, settings: Settings
) -> None:
    await sign_in(client, "alice", "pw-alice")
    laptop = await new_client()
    laptop_csrf = await sign_in(laptop, "alice", "pw-alice")
    bob = await new_client()
    await sign_in(bob, "bob", "pw-bob")
    stream = await open_stream(client, "/api/watch/alice/events")  # alice watching herself: her session

    result = await asyncio.to_thread(
        invoke_cli, "user", "passwd", "alice", "--password-stdin", "--data-dir", str(settings.data_dir), stdin="new-pw-1234\n"
    )
    assert result.exit_code == 0, result.output
    assert "ended 2 sessions" in result.output

    assert [b.event for b in await stream.end() if b.event] == ["denied"]
    for browser in (client, laptop):
        assert (await browser.get("/api/me")).status == 401
    # The old cookie mints nothing any more.
    minted = await laptop.post("/api/tokens", json={"label": "thief"}, headers={"X-CSRF-Token": laptop_csrf})
    assert minted.status in (401, 403)
    minted = await laptop.post("/api/links", json={"label": "thief"}, headers={"X-CSRF-Token": laptop_csrf})
    assert minted.status in (401, 403)
    assert (await bob.get("/api/me")).status == 200  # another user's session is not touched
    assert (await client.post("/write?db=alice", data="samples hr_bpm=1", headers=basic("alice", "pw-alice"))).status == 401
    await sign_in(client, "alice", "new-pw-1234")


@pytest.mark.usefixtures("users")
async def test_password_change_on_the_page_ends_the_other_sessions(
    client: TestClient, new_client: NewClient, accounts: Accounts
) -> None:
    csrf = await sign_in(client, "alice", "pw-alice")
    headers = {"X-CSRF-Token": csrf}
    phone = await new_client()
    phone_csrf = await sign_in(phone, "alice", "pw-alice")
    bob = await new_client()
    await sign_in(bob, "bob", "pw-bob")

    # Refusals change nothing: no CSRF token, wrong current password, bad bodies.
    body = {"current": "pw-alice", "new": "new-pw-1234"}
    assert (await client.post("/api/password", json=body)).status == 403
    wrong = await client.post("/api/password", json={"current": "nope", "new": "new-pw-1234"}, headers=headers)
    assert wrong.status == 403 and (await wrong.json())["error"] == "the current password is wrong"
    short = await client.post("/api/password", json={"current": "pw-alice", "new": "1234567"}, headers=headers)
    assert (short.status, await short.json()) == (400, {"error": "the password must have at least 8 characters"})
    for bad in (None, [], {"current": "pw-alice"}, {"current": "pw-alice", "new": 5}, {"current": "pw-alice", "new": ""}):
        response = await client.post("/api/password", json=bad, headers=headers)
        assert response.status == 400, bad
        assert (await response.json())["error"]
    not_json = await client.post("/api/password", data=b"\xff{", headers={**headers, "Content-Type": "application/json"})
    assert not_json.status == 400
    assert (await phone.get("/api/me")).status == 200
    assert await accounts.authenticate("alice", "pw-alice")

    changed = await client.post("/api/password", json=body, headers=headers)
    assert changed.status == 200, await changed.text()
    assert await changed.json() == {"user": "alice", "ended": 1}
    assert (await client.get("/api/me")).status == 200  # the session that made the change stays
    assert (await phone.get("/api/me")).status == 401
    minted = await phone.post("/api/tokens", json={"label": "thief"}, headers={"X-CSRF-Token": phone_csrf})
    assert minted.status in (401, 403)
    assert (await bob.get("/api/me")).status == 200
    assert await accounts.authenticate("alice", "new-pw-1234") and not await accounts.authenticate("alice", "pw-alice")
    # Signed out: no password change at all.
    out = await new_client()
    await out.get("/api/me")
    refused = await out.post("/api/password", json=body, headers={"X-CSRF-Token": cookie(out, "tracker_csrf") or ""})
    assert refused.status == 401


@pytest.mark.usefixtures("users")
async def test_sessions_list_and_signing_out_elsewhere(client: TestClient, new_client: NewClient) -> None:
    assert (await client.get("/api/sessions")).status == 401
    csrf = await sign_in(client, "alice", "pw-alice")
    headers = {"X-CSRF-Token": csrf}
    others = []
    for agent in ("Phone <b>browser</b>", "Tablet"):
        other = await new_client()
        other.session.headers["User-Agent"] = agent
        await sign_in(other, "alice", "pw-alice")
        others.append(other)
    bob = await new_client()
    await sign_in(bob, "bob", "pw-bob")

    listed = await client.get("/api/sessions")
    assert listed.status == 200
    sessions = (await listed.json())["sessions"]
    assert len(sessions) == 3
    assert [s["current"] for s in sessions].count(True) == 1
    assert {s["user_agent"] for s in sessions if not s["current"]} == {"Phone <b>browser</b>", "Tablet"}
    for s in sessions:
        assert set(s) == {"created_ns", "expires_ns", "last_used_ns", "user_agent", "current"}
        assert s["created_ns"] < s["expires_ns"] and s["last_used_ns"] >= s["created_ns"]
    assert "token" not in await listed.text()

    assert (await client.delete("/api/sessions")).status == 403  # CSRF
    assert (await client.delete("/api/sessions?all=maybe", headers=headers)).status == 400
    ended = await client.delete("/api/sessions", headers=headers)
    assert ended.status == 200
    body = await ended.json()
    assert body["ended"] == 2 and [s["current"] for s in body["sessions"]] == [True]
    for other in others:
        assert (await other.get("/api/me")).status == 401
    assert (await bob.get("/api/me")).status == 200

    everywhere = await client.delete("/api/sessions?all=true", headers=headers)
    assert everywhere.status == 200 and (await everywhere.json())["ended"] == 1
    assert (await client.get("/api/me")).status == 401
    assert (await bob.get("/api/me")).status == 200


# ----- the pre-login CSRF token: signed by the server -----


async def try_sign_in(client: TestClient, csrf: str, headers: dict[str, str] | None = None) -> int:
    """Sign in with `csrf` planted as both the cookie and the form field (what a cookie-injecting attacker can do)."""
    client.session.cookie_jar.clear()
    client.session.cookie_jar.update_cookies({"tracker_csrf": csrf}, response_url=client.make_url("/"))
    response = await client.post(
        "/login", data={"username": "alice", "password": "pw-alice", "csrf": csrf}, allow_redirects=False, headers=headers
    )
    return response.status


@pytest.mark.usefixtures("users")
async def test_sign_in_from_another_site_is_refused_even_with_a_genuine_token(client: TestClient) -> None:
    """An attacker can fetch a genuine signed token themselves and plant it; but the browser says where
    the sign-in form was posted from, and only this site's own page (same-origin) may sign it in."""
    await client.get("/api/me")
    genuine = cookie(client, "tracker_csrf") or ""
    for site in ("same-site", "cross-site"):  # a sibling subdomain's page, any other site's
        assert await try_sign_in(client, genuine, {"Sec-Fetch-Site": site}) == 403, site
        assert cookie(client, "tracker_session") is None
    # The page itself, and a typed-in or bookmarked request, sign in.
    assert await try_sign_in(client, genuine, {"Sec-Fetch-Site": "same-origin"}) == 303
    assert await try_sign_in(client, genuine, {"Sec-Fetch-Site": "none"}) == 303


@pytest.mark.usefixtures("users")
async def test_sign_in_refuses_a_planted_csrf_pair_the_server_did_not_sign(
    client: TestClient, settings: Settings
) -> None:
    import base64
    import json
    import secrets

    # Made up by an attacker: any random value, equal in cookie and field.
    for made_up in ("x" * 43, secrets.token_urlsafe(32), "trkc_e30.AAAA"):
        assert await try_sign_in(client, made_up) == 403, made_up
        assert cookie(client, "tracker_session") is None
    # A genuine token with its claims changed (a later expiry) no longer matches its signature.
    await client.get("/api/me")
    genuine = cookie(client, "tracker_csrf") or ""
    prefix, _, rest = genuine.partition("_")
    payload, _, signature = rest.partition(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["x"] += 10**9
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert await try_sign_in(client, f"{prefix}_{forged_payload}.{signature}") == 403
    # An expired one, signed with the server's own key.
    from tracker.accounts import load_bearer_secret
    from tracker.storage import AccountStore

    store = await AccountStore.open(settings.data_dir)
    try:
        expired = Accounts(store, bearer_secret=load_bearer_secret(settings.data_dir)).issue_sign_in_csrf(-1)
    finally:
        await store.close()
    assert await try_sign_in(client, expired) == 403
    # The genuine one signs in, and only as long as cookie and field agree.
    assert await try_sign_in(client, genuine) == 303
    assert cookie(client, "tracker_session")


@pytest.mark.usefixtures("users")
async def test_a_token_signed_for_one_purpose_is_not_another(client: TestClient) -> None:
    answer = await client.post("/auth", json={"username": "alice", "password": "pw-alice"})
    assert answer.status == 200, await answer.text()
    bearer = (await answer.json())["token"]
    assert await try_sign_in(client, bearer) == 403  # a bearer token is no sign-in form token

    await client.get("/api/me")
    form_token = cookie(client, "tracker_csrf") or ""
    write = await client.post("/write?db=alice", data="samples hr_bpm=1", headers={"Authorization": f"Bearer {form_token}"})
    assert write.status == 401  # and a sign-in form token is no bearer token
    assert await try_sign_in(client, form_token) == 303


@pytest.mark.usefixtures("users")
async def test_the_page_keeps_a_valid_pre_login_token_and_replaces_a_stale_one(client: TestClient) -> None:
    await client.get("/")
    first = cookie(client, "tracker_csrf")
    await client.get("/api/me")
    assert cookie(client, "tracker_csrf") == first  # one token per page load, not one per request
    client.session.cookie_jar.update_cookies({"tracker_csrf": "planted-by-someone-" + "x" * 20}, response_url=client.make_url("/"))
    me = await client.get("/api/me")
    replaced = cookie(client, "tracker_csrf")
    assert replaced not in (first, "planted-by-someone-" + "x" * 20) and (await me.json())["csrf"] == replaced


@pytest.mark.parametrize("settings", [{"live_within_seconds": 600.0}], indirect=True)
@pytest.mark.usefixtures("users")
async def test_live_has_one_definition_the_setting(client: TestClient, accounts: Accounts) -> None:
    """The landing page's trackers, the watch page's config and its devices all read "live" from
    one setting."""
    five_minutes_ago = (time.time_ns() // 10**9 - 300) * 10**9
    await write_alice(client, f"samples,device=watch hr_bpm=150 {five_minutes_ago // 10**9}")
    await sign_in(client, "alice", "pw-alice")
    me = await (await client.get("/api/me")).json()
    assert me["live_within_seconds"] == 600
    assert me["trackers"] == [{"user": "alice", "last_sample_ns": five_minutes_ago, "live": True}]
    config = await (await client.get("/api/watch/alice/config")).json()
    assert config["live_within_seconds"] == 600
    devices = await (await client.get("/api/watch/alice/devices")).json()
    assert devices == {"devices": [{"device": "watch", "last_sample_ns": five_minutes_ago, "live": True}]}
