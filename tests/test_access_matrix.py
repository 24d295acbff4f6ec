"""Every endpoint x every kind of caller: the expected status, and no refused caller sees the owner's data.

The owner is alice. Her samples carry values and a tag found nowhere else, and she has a share
link with a private label; bob may read her data (a read share); carol is just another user.
Each cell sends one real request to one real server and checks the status from the table, then
looks through the body for alice's values, tag and label: only those allowed may see them.
The routes come from the application's router, so a new endpoint fails this test until it has a row.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient
from yarl import URL

from tests.conftest import CHEAP_HASHING, basic
from tests.sse import cookie
from tracker.accounts import Accounts
from tracker.activities.settings import ActivitySettings
from tracker.app import create_app
from tracker.config import Settings
from tracker.storage import AccountStore

PASSWORDS = {"alice": "pw-alice", "bob": "pw-bob", "carol": "pw-carol", "dave": "pw-dave"}

# Who asks. Columns of the table, in this order.
IDENTITIES = (
    "no credentials",
    "wrong password",  # alice's name with a wrong password, and a forged session cookie
    "other user",  # carol, signed in and with her password
    "viewer",  # bob, whom alice gave a read share
    "expired link",  # ?token= of alice's link that has expired
    "revoked link",  # ?token= of alice's link that was revoked
    "valid link",  # ?token= of alice's active link
    "owner",  # alice, signed in and with her password
)
CREDENTIALS = {"wrong password": ("alice", "wrong"), "other user": ("carol", "pw-carol")}
CREDENTIALS |= {"viewer": ("bob", "pw-bob"), "owner": ("alice", "pw-alice")}
LINKS = ("expired link", "revoked link", "valid link")
# Alice's sample data: values and a tag no other response could contain by chance.
SAMPLE_SECRETS = ("171.987654", "47.3769123", "8.5416789", "alice-secret-device-5521")  # values, then the tag
SAMPLE_READERS = ("viewer", "valid link", "owner")
LINK_LABEL = "alice-private-label-7730"  # only alice may see her links
ALERT_WEBHOOK = "http://127.0.0.1:9/alice-private-hook-4410"  # only alice may see her alerts
OWNER_SECRETS = (LINK_LABEL, ALERT_WEBHOOK)



def everyone(status: int) -> tuple[int, ...]:
    return (status,) * len(IDENTITIES)


INFLUX_WRITE = (401, 401, 403, 403, 401, 401, 401, 204)
INFLUX_READ = (401, 401, 403, 200, 401, 401, 401, 200)
SIGNED_IN = (401, 401, 200, 200, 401, 401, 401, 200)  # answers about the caller's own things
NOW_S = int(time.time())
OWN_WRITE = SIGNED_IN  # the phone apps' endpoints: the credentials name the database, each writes its own
WATCH = (401, 401, 403, 200, 403, 403, 200, 200)
OWNERS_ONLY = (401, 401, 404, 404, 401, 401, 401, 200)  # targets alice's things: others find nothing
ACTIVITY_CHANGE = (401, 401, 403, 403, 401, 401, 401, 200)




@dataclass
class World:
    accounts: Accounts  # the accounts as the CLI sees them, beside the server
    tokens: dict[str, str] = field(default_factory=dict)  # identity -> link token


Prepare = Callable[[World], Awaitable[str]]  # -> the URL to call


@dataclass
class Case:
    method: str
    route: str  # as the router names it
    url: str | Prepare
    statuses: tuple[int, ...]
    json: Any = None
    data: Any = None
    credentials_in_body: bool = False  # /login: the identity's name and password go in the body
    stream: bool = False  # an event stream: a 200 is not read to its end
    reveals: tuple[str, ...] = ()  # what the allowed callers must see (shows the leak check can fail)
    restore: Callable[[World], Awaitable[None]] | None = None


async def fresh_link(world: World) -> str:
    _, link = await world.accounts.create_link("alice")
    return f"/api/links/{link.id}"


async def fresh_device_token(world: World) -> str:
    _, record = await world.accounts.create_token("alice", f"phone-{time.monotonic_ns()}")
    return f"/api/tokens/{record.id}"


async def alice_alert(world: World) -> str:
    await world.accounts.set_alert("alice", "to-remove", 600, ALERT_WEBHOOK)
    return "/api/alerts?device=to-remove"


async def share_back(world: World) -> None:
    await world.accounts.add_share("alice", "bob")


SELECT = "SELECT * FROM samples WHERE time > now() - 1h GROUP BY *"
IMPORT_GPX = (
    '<gpx version="1.1" creator="x" xmlns="http://www.topografix.com/GPX/1/1"><trk><trkseg>'
    f'<trkpt lat="47.1" lon="8.5"><time>{time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))}</time></trkpt>'
    "</trkseg></trk></gpx>"
).encode()
CASES: dict[str, Case] = {
    # ----- the InfluxDB API (Basic auth; cookies and links mean nothing here)
    "write": Case("POST", "/write", "/write?db=alice", INFLUX_WRITE, data="samples hr_bpm=99"),
    "write v2": Case("POST", "/api/v2/write", "/api/v2/write?bucket=alice", INFLUX_WRITE, data="samples hr_bpm=99"),
    "write preflight": Case("OPTIONS", "/write", "/write?db=alice", everyone(204)),
    # Flux is refused alike for everyone: the answer names no user and holds no data
    "flux query v2": Case(
        "POST", "/api/v2/query", "/api/v2/query?org=alice", everyone(501),
        json={"query": 'from(bucket: "alice") |> range(start: -1h)', "type": "flux"},
    ),  # fmt: skip
    "query SELECT": Case(
        "GET", "/query", f"/query?db=alice&q={SELECT}", INFLUX_READ, reveals=SAMPLE_SECRETS
    ),
    "query SHOW (POST form)": Case(
        "POST",
        "/query",
        "/query",
        INFLUX_READ,
        data={"db": "alice", "q": 'SHOW TAG VALUES WITH KEY = "device"'},
        reveals=("alice-secret-device-5521",),
    ),
    "query other db via FROM": Case(
        "GET", "/query", '/query?db=carol&q=SELECT * FROM "alice".."samples"', INFLUX_READ, reveals=SAMPLE_SECRETS
    ),
    # dave is public: his database, named by `db`, is anyone's to read (livetracking.io's public profiles)
    "query public user": Case(
        "GET", "/query", f"/query?db=dave&q={SELECT}", (200, 401, 200, 200, 200, 200, 200, 200), reveals=("dave-sample-6614",)
    ),
    "query other db via public user's": Case(
        "GET", "/query", '/query?db=dave&q=SELECT * FROM "alice".."samples"', (403, 401, 403, 200, 403, 403, 403, 200),
        reveals=SAMPLE_SECRETS,
    ),
    "query public user DELETE": Case(
        "POST", "/query", "/query", (403, 401, 403, 403, 403, 403, 403, 403),
        data={"db": "dave", "q": "DELETE FROM samples"},
    ),
    "query DELETE": Case(
        "POST", "/query", "/query", (401, 401, 403, 403, 401, 401, 401, 200),
        data={"db": "alice", "q": "DELETE FROM samples WHERE device = 'no-such-device'"},
    ),  # a device she has not: her samples stay for the other cells
    "query SHOW DATABASES": Case("GET", "/query", "/query?q=SHOW DATABASES", SIGNED_IN),
    "query CREATE DATABASE": Case(
        "POST", "/query", '/query?q=CREATE DATABASE "alice"', (401, 401, 403, 403, 401, 401, 401, 200)
    ),
    "query preflight": Case("OPTIONS", "/query", "/query", everyone(204)),
    "bearer token from credentials": Case("POST", "/auth", "/auth", SIGNED_IN),  # a bearer for oneself only
    # ----- livetracking.io's account API (Basic auth); registration is closed by default
    "register": Case(
        "POST", "/register", "/register", everyone(403), data={"username": "newbie", "password": "long-enough"}
    ),
    "credentials check": Case("GET", "/auth", "/auth", SIGNED_IN),
    "account": Case("GET", "/user", "/user", SIGNED_IN),
    # the form's password is wrong for everyone: nobody's account goes (deletion itself: test_account_api)
    "account delete": Case(
        "DELETE", "/user", "/user", (401, 401, 403, 403, 401, 401, 401, 403), data={"password": "wrong-password"}
    ),
    # ----- phone apps and the JSON API: the caller writes to their own database
    "osmand": Case("GET", "/osmand", "/osmand?id=phone&lat=47.1&lon=8.5", OWN_WRITE),
    "osmand (form)": Case("POST", "/osmand", "/osmand", OWN_WRITE, data={"id": "phone", "lat": "47.1", "lon": "8.5"}),
    "gpslogger": Case("GET", "/gpslogger", "/gpslogger?id=phone&lat=47.1&lon=8.5", OWN_WRITE),
    "gpslogger (form)": Case("POST", "/gpslogger", "/gpslogger", OWN_WRITE, data={"lat": "47.1", "lon": "8.5"}),
    "owntracks": Case(
        "POST", "/owntracks", "/owntracks", OWN_WRITE, json={"_type": "location", "lat": 47.1, "lon": 8.5, "tst": NOW_S}
    ),
    "json api": Case(
        "POST", "/api/v1/samples", "/api/v1/samples", (401, 401, 201, 201, 401, 401, 401, 201),
        json={"time": NOW_S, "fields": {"hr_bpm": 99}},
    ),
    # ----- activity files: import is the owner's (credentials or session + CSRF), export a reader's, as /query
    "import": Case(
        "POST", "/api/import", "/api/import?user=alice", (401, 401, 403, 403, 401, 401, 401, 200), data=IMPORT_GPX
    ),
    "export": Case(
        "GET", "/api/export", "/api/export?user=alice&format=csv", INFLUX_READ, reveals=SAMPLE_SECRETS[:3]
    ),  # values only: a CSV has no tags
    "openapi": Case("GET", "/api/v1/openapi.json", "/api/v1/openapi.json", everyone(200)),
    "ping": Case("GET", "/ping", "/ping", everyone(204)),
    "ping preflight": Case("OPTIONS", "/ping", "/ping", everyone(204)),
    "health": Case("GET", "/health", "/health", everyone(200)),
    "time": Case("GET", "/time", "/time", everyone(200)),
    # Numbers without any user's name; who may read them goes by address (--metrics, test_metrics.py):
    # these clients are all on this machine.
    "metrics": Case("GET", "/metrics", "/metrics", everyone(200)),
    # ----- pages and files: the same bytes for everyone, nothing of anyone's in them
    "landing page": Case("GET", "/", "/", everyone(200)),
    "watch page": Case("GET", "/watch/{user}", "/watch/alice", everyone(200)),
    "static file": Case("GET", "/static/{path}", "/static/watch.js", everyone(200)),
    "vendor file": Case("GET", "/vendor/{package}/{path}", "/vendor/leaflet/leaflet.js", everyone(200)),
    # ----- the watch page's data (session or share link)
    "watch config": Case("GET", "/api/watch/{user}/config", "/api/watch/alice/config", WATCH),
    "watch samples": Case(
        "GET", "/api/watch/{user}/samples", "/api/watch/alice/samples", WATCH, reveals=SAMPLE_SECRETS[:3]
    ),  # values only: the page shows no tags
    "watch devices": Case(
        "GET", "/api/watch/{user}/devices", "/api/watch/alice/devices", WATCH, reveals=SAMPLE_SECRETS[3:]
    ),
    "watch events": Case("GET", "/api/watch/{user}/events", "/api/watch/alice/events", WATCH, stream=True),
    "watch course": Case("GET", "/api/watch/{user}/course", "/api/watch/alice/course", WATCH),
    # ----- courses: each caller's own (session or Basic); course 999 and "now" hold nothing of anyone's
    "courses list": Case("GET", "/api/courses", "/api/courses", SIGNED_IN),
    "courses create": Case(
        "POST", "/api/courses", "/api/courses", (401, 401, 201, 201, 401, 401, 401, 201),
        json={"name": "loop", "points": [[47.0, 8.0], [47.01, 8.0]]},
    ),
    "courses delete": Case("DELETE", "/api/courses/{id}", "/api/courses/999", (401, 401, 404, 404, 401, 401, 401, 404)),
    "courses attach": Case(
        "PUT", "/api/courses/{id}/attach", "/api/courses/999/attach", (401, 401, 404, 404, 401, 401, 401, 404),
        json={"target": "now"},
    ),
    "courses detach": Case(
        "DELETE", "/api/courses/attach/{target}", "/api/courses/attach/now", (401, 401, 404, 404, 401, 401, 401, 404)
    ),
    # ----- the signed-in user's own settings (session + CSRF)
    "me": Case("GET", "/api/me", "/api/me", SIGNED_IN),
    "links list": Case("GET", "/api/links", "/api/links", SIGNED_IN, reveals=(LINK_LABEL,)),
    "links create": Case("POST", "/api/links", "/api/links", (401, 401, 201, 201, 401, 401, 401, 201), json={}),
    "links revoke (alice's link)": Case("DELETE", "/api/links/{id}", fresh_link, OWNERS_ONLY),
    "tokens list": Case("GET", "/api/tokens", "/api/tokens", SIGNED_IN),
    "tokens create": Case(
        "POST", "/api/tokens", "/api/tokens", (401, 401, 201, 201, 401, 401, 401, 201), json={"label": "new-phone"}
    ),
    "tokens revoke (alice's token)": Case("DELETE", "/api/tokens/{id}", fresh_device_token, OWNERS_ONLY),
    "alerts list": Case("GET", "/api/alerts", "/api/alerts", SIGNED_IN, reveals=(ALERT_WEBHOOK,)),
    "alerts set": Case(
        "POST", "/api/alerts", "/api/alerts", SIGNED_IN, json={"after": "10m", "webhook": "http://127.0.0.1:9/own"}
    ),
    "alerts remove (alice's alert)": Case("DELETE", "/api/alerts", alice_alert, OWNERS_ONLY),
    "profile": Case("GET", "/api/profile", "/api/profile", SIGNED_IN),
    "profile set": Case("POST", "/api/profile", "/api/profile", SIGNED_IN, json={"public": False}),
    "shares list": Case("GET", "/api/shares", "/api/shares", SIGNED_IN),
    "shares add": Case("POST", "/api/shares", "/api/shares", SIGNED_IN, json={"viewer": "dave"}),
    "shares remove (bob)": Case(
        "DELETE", "/api/shares", "/api/shares", OWNERS_ONLY, json={"viewer": "bob"}, restore=share_back
    ),
    "shares remove /bob": Case("DELETE", "/api/shares/{viewer}", "/api/shares/bob", OWNERS_ONLY, restore=share_back),
    "sessions list": Case("GET", "/api/sessions", "/api/sessions", SIGNED_IN),
    # each caller has one session: "everywhere else" ends none the rows below use
    "sessions end": Case("DELETE", "/api/sessions", "/api/sessions", SIGNED_IN),
    # alice's current password, set again: only alice's own session may do it, and nothing else changes
    "password change": Case(
        "POST", "/api/password", "/api/password", (401, 401, 403, 403, 401, 401, 401, 200),
        json={"current": "pw-alice", "new": "pw-alice"},
    ),
    # ----- activities (Basic like /query, or the session): the owner and her viewer read, only she changes;
    # activity 1 is the one of alice's secret device, her first series
    "activities list": Case("GET", "/api/activities", "/api/activities?user=alice", INFLUX_READ, reveals=SAMPLE_SECRETS[3:]),
    "activity": Case("GET", "/api/activities/{id}", "/api/activities/1?user=alice", INFLUX_READ, reveals=SAMPLE_SECRETS[3:]),
    "activity samples": Case(
        "GET", "/api/activities/{id}/samples", "/api/activities/1/samples?user=alice", INFLUX_READ, reveals=SAMPLE_SECRETS[:3]
    ),
    "activity laps": Case(
        "GET", "/api/activities/{id}/laps", "/api/activities/1/laps?user=alice", (401, 401, 403, 200, 401, 401, 401, 200)
    ),
    "activity page": Case("GET", "/activity/{id}", "/activity/1", everyone(200)),
    "activity export": Case(
        "GET", "/api/activities/{id}/export", "/api/activities/1/export?user=alice&format=csv", INFLUX_READ,
        reveals=SAMPLE_SECRETS[:3],
    ),
    "activity page config": Case("GET", "/api/activities/{id}/config", "/api/activities/1/config?user=alice", INFLUX_READ),
    # a live-view link opens no activity (an activity's own link: tests/test_activity_links.py)
    "activity link create": Case(
        "POST", "/api/activities/{id}/links", "/api/activities/1/links?user=alice", ACTIVITY_CHANGE[:-1] + (201,), json={}
    ),
    "activity settings": Case("GET", "/api/activity-settings", "/api/activity-settings?user=alice", INFLUX_READ),
    "activity rename": Case(
        "PATCH", "/api/activities/{id}", "/api/activities/1?user=alice", ACTIVITY_CHANGE, json={"name": "Ride"}
    ),
    # the owner's own refusals below (400, 404) keep her samples for the other cells
    "activity split": Case(
        "POST", "/api/activities/{id}/split", "/api/activities/1/split?user=alice", ACTIVITY_CHANGE[:-1] + (400,),
        json={"at": 0},
    ),
    "activities merge": Case(
        "POST", "/api/activities/merge", "/api/activities/merge?user=alice", ACTIVITY_CHANGE[:-1] + (404,),
        json={"ids": [1, 999]},
    ),
    "activity delete": Case(
        "DELETE", "/api/activities/{id}", "/api/activities/1?user=alice&confirm=2", ACTIVITY_CHANGE[:-1] + (400,)
    ),
    "activity settings set": Case(
        "PUT", "/api/activity-settings", "/api/activity-settings?user=alice", ACTIVITY_CHANGE, json={"gap_s": 1800}
    ),
    # ----- signing in and out (last: they change the sessions the rows above use)
    "login": Case("POST", "/login", "/login", SIGNED_IN, credentials_in_body=True),
    "logout": Case("POST", "/logout", "/logout", everyone(200), json={}),
    # alice's password set again over Basic: it ends her web sessions, so it comes last
    "password change (account API)": Case(
        "POST", "/user/change-password", "/user/change-password", (401, 401, 403, 403, 401, 401, 401, 200),
        data={"password": "pw-alice", "new_password": "pw-alice"},
    ),
}


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    store = await AccountStore.open(tmp_path / "data")
    accounts = Accounts(store, password_context=CHEAP_HASHING)
    for name, password in PASSWORDS.items():
        await accounts.add_user(name, password)
    await accounts.add_share("alice", "bob")
    await accounts.set_public("dave", True)
    world = World(accounts)
    world.tokens["valid link"], _ = await accounts.create_link("alice", LINK_LABEL)
    world.tokens["revoked link"], _ = await accounts.create_link("alice", "to revoke")
    await accounts.revoke_link("alice", world.tokens["revoked link"])
    world.tokens["expired link"], _ = await accounts.create_link("alice", "to expire", expires_in_seconds=0.01)
    await accounts.set_alert("alice", None, 600, ALERT_WEBHOOK)
    await asyncio.sleep(0.02)
    yield world
    await store.close()


@pytest.fixture
async def clients(
    aiohttp_client: Callable[..., Awaitable[TestClient]], tmp_path: Path, world: World
) -> dict[str, TestClient]:
    # Bans stay on, with room for the many wrong passwords this test sends from one address. The
    # alert rows name a webhook on 127.0.0.1: allowed explicitly (by default only public ones are).
    settings = Settings(data_dir=tmp_path / "data", max_auth_failures=10_000, webhook_allow_private=True)
    first = await aiohttp_client(create_app(settings, password_context=CHEAP_HASHING))
    clients = {IDENTITIES[0]: first}
    for identity in IDENTITIES[1:]:
        clients[identity] = await aiohttp_client(first.server)  # each its own browser (cookie jar)
    for identity, client in clients.items():
        await client.get("/api/me")  # the CSRF cookie
        if identity in ("other user", "viewer", "owner"):
            name, password = CREDENTIALS[identity]
            response = await client.post(
                "/login",
                json={"username": name, "password": password},
                headers={"X-CSRF-Token": cookie(client, "tracker_csrf") or ""},
            )
            assert response.status == 200
    clients["wrong password"].session.cookie_jar.update_cookies(
        {"tracker_session": "forged-session-token"}, response_url=first.make_url("/")
    )
    now = time.time_ns()
    response = await first.post(
        "/write?db=alice",
        data=f"samples,device=alice-secret-device-5521 hr_bpm=171.987654,lat=47.3769123,lng=8.5416789 {now - 60 * 10**9}",
        headers=basic("alice", "pw-alice"),
    )
    assert response.status == 204
    response = await first.post(
        "/write?db=dave", data=f"samples,device=dave-sample-6614 hr_bpm=60 {now - 60 * 10**9}", headers=basic("dave", "pw-dave")
    )
    assert response.status == 204
    return clients


async def call(client: TestClient, world: World, identity: str, case: Case) -> tuple[int, str]:
    url = URL(case.url if isinstance(case.url, str) else await case.url(world))
    if identity in LINKS:
        url = url.update_query(token=world.tokens[identity])
    headers = {"X-CSRF-Token": cookie(client, "tracker_csrf") or ""}
    credentials = CREDENTIALS.get(identity)
    if credentials:
        headers |= basic(*credentials)  # ignored by the web endpoints, as it should be
    json = case.json
    if case.credentials_in_body:
        json = {"username": credentials[0], "password": credentials[1]} if credentials else {}
    response = await client.request(case.method, url, headers=headers, json=json, data=case.data)
    try:
        if case.stream and response.status == 200:
            assert response.headers["Content-Type"].startswith("text/event-stream")
            return response.status, ""
        return response.status, (await response.read()).decode("utf-8", "replace")
    finally:
        response.close()


def must_show(case: Case, identity: str, status: int) -> tuple[str, ...]:
    """What an allowed caller's answer must contain: proof that the data is there to leak."""
    if not 200 <= status < 300:
        return ()
    if set(OWNER_SECRETS) & set(case.reveals):
        return case.reveals if identity == "owner" else ()
    return case.reveals if identity in SAMPLE_READERS else ()


def covered(route: tuple[str, str]) -> bool:
    return any((case.method, case.route) == route for case in CASES.values())


def test_every_route_has_a_row() -> None:
    app = create_app(Settings())
    routes = {(route.method, route.resource.canonical) for route in app.router.routes() if route.resource}
    # HEAD runs the GET handler (aiohttp's add_get): covered by the GET row.
    missing = sorted(r for r in routes if not covered(("GET", r[1]) if r[0] == "HEAD" else r))
    assert not missing, f"add these routes to CASES in {__file__}: {missing}"
    stale = sorted({(case.method, case.route) for case in CASES.values()} - routes)
    assert not stale, f"these rows name no route: {stale}"
    for case in CASES.values():
        assert len(case.statuses) == len(IDENTITIES)


async def test_access_matrix(clients: dict[str, TestClient], world: World) -> None:
    failures: list[str] = []
    for name, case in CASES.items():
        for identity, expected in zip(IDENTITIES, case.statuses):
            status, body = await call(clients[identity], world, identity, case)
            where = f"{name} ({case.method} {case.route}) as {identity}"
            if status != expected:
                failures.append(f"{where}: {status}, expected {expected}: {body[:200]}")
            may_read_samples = identity in SAMPLE_READERS and 200 <= status < 300
            for secret in SAMPLE_SECRETS if not may_read_samples else ():
                if secret in body:
                    failures.append(f"{where}: leaks {secret!r}")
            for secret in OWNER_SECRETS if identity != "owner" else ():
                if secret in body:
                    failures.append(f"{where}: leaks {secret!r}")
            for secret in must_show(case, identity, status):
                if secret not in body:
                    failures.append(f"{where}: does not show {secret!r} (then the leak check could see nothing)")
            if case.restore is not None:
                await case.restore(world)
    assert not failures, "\n".join(failures)
    # The refused attempts changed nothing of alice's.
    assert ("alice", "bob") in await world.accounts.list_shares("alice")
    assert not await world.accounts.is_public("alice")
    assert await world.accounts.is_public("dave")
