"""What livetracking.io's clients expect of the server they talk to: its 401 realm, its retention
policy's name, CORS for pages on other origins, and anonymous reads of public users."""

from __future__ import annotations

import asyncio
import urllib.request

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import AddUser, basic
from tracker.config import Settings

AUTH = basic("rider", "rider1234")


@pytest.fixture
async def rider(add_user: AddUser) -> None:
    await add_user("rider", "rider1234")


def write_with_realm_bound_credentials(url: str, realm: str) -> int:
    """POST a line as a client that sends its password only to the realm it was given for (urllib's
    HTTPPasswordMgr, as Perl's LWP does): it sends nothing first, and answers the challenge only if
    the realm matches."""
    passwords = urllib.request.HTTPPasswordMgr()
    passwords.add_password(realm, url, "rider", "rider1234")
    opener = urllib.request.build_opener(urllib.request.HTTPBasicAuthHandler(passwords))
    request = urllib.request.Request(url, data=b"samples hr_bpm=120i", method="POST")
    try:
        with opener.open(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


async def test_the_challenge_names_influxdbs_realm_by_default(client: TestClient, rider: None) -> None:
    response = await client.post("/write?db=rider", data=b"samples hr_bpm=120i")
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="InfluxDB"'
    url = str(client.make_url("/write?db=rider"))
    assert await asyncio.to_thread(write_with_realm_bound_credentials, url, "Protected") == 401


@pytest.mark.parametrize("settings", [{"realm": "Protected"}], indirect=True)
async def test_a_client_bound_to_livetracking_ios_realm_signs_in(client: TestClient, rider: None) -> None:
    for method, path in (("POST", "/write?db=rider"), ("GET", "/query?db=rider&q=SHOW+MEASUREMENTS")):
        response = await client.request(method, path)
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == 'Basic realm="Protected"'
    url = str(client.make_url("/write?db=rider"))
    assert await asyncio.to_thread(write_with_realm_bound_credentials, url, "Protected") == 204


def test_a_realm_that_would_break_the_header_is_refused() -> None:
    for realm in ('Pro"tected', "a\\b", "", "line\nbreak"):
        with pytest.raises(ValueError, match="realm"):
            Settings(realm=realm).validate()


async def test_livetracking_names_the_one_retention_policy(client: TestClient, rider: None) -> None:
    # The quarqd bridge's write, and the other spellings livetracking.io's clients use.
    for url in (
        "/write?db=rider&rp=livetracking&precision=u",
        "/write?db=rider&rp=autogen&precision=u",
        "/api/v2/write?bucket=rider/livetracking&precision=us",
    ):
        response = await client.post(url, data=b"samples hr_bpm=120i,pwr_w=250i,cad_rpm=90i 1700000000000000", headers=AUTH)
        assert response.status == 204, await response.text()
    response = await client.post("/write?db=rider&rp=livetrack", data=b"samples hr_bpm=1i", headers=AUTH)
    assert response.status == 404

    async def query(q: str, **params: str) -> dict:
        response = await client.get("/query", params={"db": "rider", "q": q, **params}, headers=AUTH)
        assert response.status == 200
        return (await response.json())["results"][0]

    for q, params in (
        ('SELECT hr_bpm, pwr_w FROM "rider"."livetracking"."samples"', {}),
        ('SELECT hr_bpm, pwr_w FROM "livetracking"."samples"', {}),
        ("SELECT hr_bpm, pwr_w FROM samples", {"rp": "livetracking"}),
        ('SELECT hr_bpm, pwr_w FROM "rider"."autogen"."samples"', {}),
    ):
        result = await query(q, epoch="s", **params)
        assert result["series"][0]["values"] == [[1700000000, 120, 250]], (q, params)
    assert "not found" in (await query('SELECT hr_bpm FROM "rider"."other"."samples"'))["error"]
    # One policy, reported once, under the name InfluxDB's tools expect; livetracking is its alias.
    policies = (await query("SHOW RETENTION POLICIES ON rider"))["series"][0]
    assert [row[0] for row in policies["values"]] == ["autogen"]
    assert policies["values"][0][4] is True


PAGE = "https://rides.example.org"


def cors_headers_in(response) -> list[str]:
    return [name for name in response.headers if name.lower().startswith("access-control-")]


async def preflight(client: TestClient, path: str, origin: str, headers: str = "authorization") -> object:
    return await client.options(
        path,
        headers={"Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": headers},
    )


async def test_no_cors_header_unless_configured(client: TestClient, rider: None) -> None:
    for method, path, headers in (
        ("GET", "/ping", {}),
        ("GET", "/query?db=rider&q=SHOW+MEASUREMENTS", AUTH),
        ("GET", "/query?db=rider&q=SHOW+MEASUREMENTS", {}),
        ("POST", "/write?db=rider", AUTH),
    ):
        response = await client.request(method, path, headers={"Origin": PAGE, **headers}, data=b"samples hr_bpm=1i")
        assert response.status < 500
        assert cors_headers_in(response) == [], path
        assert "Vary" not in response.headers
    for path in ("/query", "/write", "/ping"):
        assert cors_headers_in(await preflight(client, path, PAGE)) == []


@pytest.mark.parametrize("settings", [{"cors_origins": (PAGE,)}], indirect=True)
async def test_a_named_origin_may_read_and_write_with_its_password(client: TestClient, rider: None) -> None:
    for path in ("/query", "/write", "/ping"):
        response = await preflight(client, path, PAGE, "authorization, content-type")
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == PAGE
        assert "POST" in response.headers["Access-Control-Allow-Methods"]
        assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
        assert "Access-Control-Allow-Credentials" not in response.headers  # no cookies across origins
        assert "Origin" in response.headers.getall("Vary")
    response = await client.post("/write?db=rider", data=b"samples hr_bpm=130i", headers={"Origin": PAGE, **AUTH})
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == PAGE
    response = await client.get("/query?db=rider&q=SELECT+hr_bpm+FROM+samples", headers={"Origin": PAGE, **AUTH})
    assert response.headers["Access-Control-Allow-Origin"] == PAGE
    assert "X-Influxdb-Version" in response.headers["Access-Control-Expose-Headers"]
    assert (await response.json())["results"][0]["series"][0]["values"][0][1] == 130
    # Errors too, so that the page can tell a wrong password from a network failure.
    response = await client.get("/query?db=rider&q=SHOW+MEASUREMENTS", headers={"Origin": PAGE})
    assert response.status == 401
    assert response.headers["Access-Control-Allow-Origin"] == PAGE
    # Another origin gets nothing; other endpoints neither.
    other = await client.get("/query?db=rider&q=SHOW+MEASUREMENTS", headers={"Origin": "https://evil.example", **AUTH})
    assert cors_headers_in(other) == []
    assert cors_headers_in(await preflight(client, "/write", "https://evil.example")) == []
    assert cors_headers_in(await client.get("/health", headers={"Origin": PAGE})) == []


@pytest.mark.parametrize("settings", [{"cors_origins": ("*",)}], indirect=True)
async def test_any_origin_may_only_read_without_a_password(client: TestClient, rider: None, accounts) -> None:
    await accounts.set_public("rider", True)
    response = await client.get("/query?db=rider&q=SHOW+MEASUREMENTS", headers={"Origin": "https://anywhere.example"})
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response.headers
    response = await preflight(client, "/query", "https://anywhere.example", "content-type")
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Authorization" not in response.headers["Access-Control-Allow-Headers"]
    response = await client.get("/ping", headers={"Origin": "https://anywhere.example"})
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Vary" not in response.headers
    assert cors_headers_in(await preflight(client, "/write", "https://anywhere.example")) == []
    response = await client.post("/write?db=rider", data=b"samples hr_bpm=1i", headers={"Origin": "https://x.example", **AUTH})
    assert cors_headers_in(response) == []


def test_a_cors_origin_must_be_spelled_as_browsers_send_it() -> None:
    for origin in ("rides.example.org", "https://rides.example.org/", "HTTPS://Rides.example.org", "ftp://x.org", ""):
        with pytest.raises(ValueError, match="cors origin"):
            Settings(cors_origins=(origin,)).validate()
    Settings(cors_origins=("*", "http://localhost:3000")).validate()
    assert Settings.from_env({"TRACKER_CORS_ORIGINS": "*, https://a.example"}).cors_origins == ("*", "https://a.example")


async def test_anyone_reads_a_public_user_and_nothing_else(client: TestClient, add_user: AddUser, accounts) -> None:
    for name in ("rider", "hidden"):
        await add_user(name, f"{name}-pass-1234")
        response = await client.post(
            f"/write?db={name}", data=f"samples hr_bpm={len(name)}i 1700000000000000000", headers=basic(name, f"{name}-pass-1234")
        )
        assert response.status == 204
    await accounts.set_public("rider", True)

    async def anonymous(q: str, db: str | None = "rider", method: str = "GET") -> tuple[int, dict]:
        params = {"q": q} | ({"db": db} if db is not None else {})
        if method == "GET":
            response = await client.get("/query", params=params)
        else:  # a page's or Grafana's POST form
            response = await client.post("/query", data=params)
        return response.status, await response.json()

    status, body = await anonymous("SELECT hr_bpm FROM samples")
    assert status == 200 and body["results"][0]["series"][0]["values"][0][1] == 5
    status, body = await anonymous('SELECT hr_bpm FROM "rider"."livetracking"."samples"', method="POST")
    assert status == 200 and body["results"][0]["series"][0]["values"][0][1] == 5
    assert (await anonymous("SHOW DATABASES"))[1]["results"][0]["series"][0]["values"] == [["rider"]]
    # A private user and one that does not exist answer alike: as if anonymous callers were not allowed at all.
    private = await anonymous("SELECT hr_bpm FROM samples", "hidden")
    unknown = await anonymous("SELECT hr_bpm FROM samples", "nobody")
    assert private == unknown == (401, {"error": "unable to parse authentication credentials"})
    assert (await anonymous("SHOW DATABASES", None))[0] == 401
    # Reading another database from the public one: refused alike whether it exists or not.
    for other in ("hidden", "nobody"):
        status, body = await anonymous(f'SELECT hr_bpm FROM "{other}"."autogen"."samples"')
        assert status == 403 and body["error"].endswith(f"requires READ on {other}")
    # Read only: no DELETE, no CREATE DATABASE, no write.
    status, body = await anonymous("DELETE FROM samples", method="POST")
    assert status == 403 and "anonymous not authorized" in body["error"]
    assert (await anonymous('CREATE DATABASE "rider"', method="POST"))[0] == 403
    assert (await client.post("/write?db=rider", data=b"samples hr_bpm=1i")).status == 401
    status, body = await anonymous("SELECT count(hr_bpm) FROM samples")
    assert body["results"][0]["series"][0]["values"][0][1] == 1
    # Any signed-in user reads it too (a Grafana data source set up with their own password).
    response = await client.get(
        "/query", params={"db": "rider", "q": "SELECT hr_bpm FROM samples"}, headers=basic("hidden", "hidden-pass-1234")
    )
    assert response.status == 200
    # Wrong credentials are still wrong, even for a public database.
    response = await client.get("/query", params={"db": "rider", "q": "SHOW MEASUREMENTS"}, headers=basic("rider", "nope"))
    assert response.status == 401
    # Private again: invisible at once.
    await accounts.set_public("rider", False)
    assert (await anonymous("SELECT hr_bpm FROM samples"))[0] == 401
