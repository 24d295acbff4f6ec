"""POST /write and /api/v2/write against a real server and real SQLite files, status by status."""

from __future__ import annotations

import gzip
import logging
import time

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import AddUser, basic, stored
from tracker.config import Settings

AUTH = basic("test", "test1234")


@pytest.fixture
async def test_user(add_user: AddUser) -> None:
    await add_user("test", "test1234")


def assert_influx_error(resp_headers, body: dict, status: int, actual_status: int, message: str) -> None:
    assert actual_status == status
    assert body == {"error": message}
    assert resp_headers["Content-Type"].startswith("application/json")
    if status == 401:
        assert resp_headers["WWW-Authenticate"] == 'Basic realm="InfluxDB"'
    else:
        assert resp_headers["X-Influxdb-Error"] == message.replace("\n", " ")[:1024]


async def post(client: TestClient, url: str, body: bytes | str, headers: dict[str, str] | None = None):
    resp = await client.post(url, data=body, headers=AUTH if headers is None else headers)
    payload = await resp.json() if resp.status != 204 else None
    return resp, payload


# -- the documented curl examples ------------------------------------------------------------------


@pytest.mark.usefixtures("test_user")
async def test_livetracking_examples_verbatim(client: TestClient, settings: Settings) -> None:
    resp, _ = await post(client, "/write?db=test", "samples hr_bpm=145 1434055562000000000")
    assert resp.status == 204
    resp, _ = await post(client, "/write?db=test&precision=s", "samples hr_bpm=145 1463683075")
    assert resp.status == 204
    resp, _ = await post(
        client,
        "/write?db=test&precision=s",
        "samples hr_bpm=123,pwr_w=1234 1463683075\nsamples hr_bpm=111,pwr_w=999 1463683076\n"
        "samples hr_bpm=99,pwr_w=456 1463683080",
    )
    assert resp.status == 204
    rows = await stored(settings, "test")
    assert [(r.time, r.fields) for r in rows] == [
        (1434055562000000000, {"hr_bpm": 145.0}),
        (1463683075000000000, {"hr_bpm": 123.0, "pwr_w": 1234.0}),  # same time: merged, newest wins
        (1463683076000000000, {"hr_bpm": 111.0, "pwr_w": 999.0}),
        (1463683080000000000, {"hr_bpm": 99.0, "pwr_w": 456.0}),
    ]


@pytest.mark.usefixtures("test_user")
async def test_success_headers(client: TestClient) -> None:
    resp, _ = await post(client, "/write?db=test", "samples hr_bpm=1 1", headers={**AUTH, "X-Request-Id": "abc-1"})
    assert resp.status == 204
    assert resp.headers["X-Influxdb-Version"] == "1.8.10"
    assert resp.headers["X-Influxdb-Build"] == "OSS"
    assert resp.headers["Request-Id"] == resp.headers["X-Request-Id"] == "abc-1"
    assert resp.headers["Content-Type"] == "application/json"
    assert await resp.read() == b""
    other = await client.post("/write?db=test", data="samples hr_bpm=1 1", headers={**AUTH, "Request-Id": "r-2"})
    assert other.headers["X-Request-Id"] == "r-2"
    fresh = await client.post("/write?db=test", data="samples hr_bpm=1 1", headers=AUTH)
    assert len(fresh.headers["Request-Id"]) == 36 and fresh.headers["Request-Id"] != "r-2"


# -- authentication -------------------------------------------------------------------------------


@pytest.mark.usefixtures("test_user")
@pytest.mark.parametrize(
    "headers, url, message",
    [
        ({}, "/write?db=test", "unable to parse authentication credentials"),
        ({"Authorization": "Basic !!!"}, "/write?db=test", "unable to parse authentication credentials"),
        ({"Authorization": "Token nocolon"}, "/write?db=test", "unable to parse authentication credentials"),
        ({"Authorization": "Bearer x.y.z"}, "/write?db=test", "bearer auth disabled"),
        (basic("", "x"), "/write?db=test", "username required"),
        (basic("test", "wrong"), "/write?db=test", "authorization failed"),
        (basic("nobody", "test1234"), "/write?db=test", "authorization failed"),
        ({}, "/write?db=test&u=test&p=wrong", "authorization failed"),
        ({"Authorization": "Token test:wrong"}, "/write?db=test", "authorization failed"),
    ],
)
async def test_401(client: TestClient, headers: dict[str, str], url: str, message: str) -> None:
    resp, body = await post(client, url, "samples hr_bpm=1", headers=headers)
    assert_influx_error(resp.headers, body, 401, resp.status, message)
    assert "X-Influxdb-Version" in resp.headers


@pytest.mark.usefixtures("test_user")
@pytest.mark.parametrize(
    "url, headers",
    [
        ("/write?db=test&u=test&p=test1234", {}),
        ("/write?db=test", {"Authorization": "Token test:test1234"}),
        ("/write?db=test", basic("test", "test1234")),
        # u/p win over a header when both are given
        ("/write?db=test&u=test&p=test1234", basic("test", "wrong")),
    ],
)
async def test_credential_forms(client: TestClient, settings: Settings, url: str, headers: dict[str, str]) -> None:
    resp, _ = await post(client, url, "samples hr_bpm=150 1000", headers=headers)
    assert resp.status == 204
    assert [r.fields for r in await stored(settings, "test")] == [{"hr_bpm": 150.0}]


async def test_password_never_logged(client: TestClient, add_user: AddUser, caplog: pytest.LogCaptureFixture) -> None:
    await add_user("test", "s3cret-pass")
    caplog.set_level(logging.DEBUG)
    resp = await client.post("/write?db=test&u=test&p=s3cret-pass", data="samples hr_bpm=1 1")
    assert resp.status == 204
    resp = await client.post("/write?db=test", data="samples hr_bpm=1 1", headers=basic("test", "s3cret-pass"))
    assert resp.status == 204
    assert "s3cret-pass" not in caplog.text
    assert basic("test", "s3cret-pass")["Authorization"].split()[1] not in caplog.text


# -- request checks, in InfluxDB's order ----------------------------------------------------------


@pytest.mark.usefixtures("test_user")
@pytest.mark.parametrize(
    "url, status, message",
    [
        ("/write", 400, "database is required"),
        ("/write?db=", 400, "database is required"),
        ("/write?db=nosuchdb", 404, 'database not found: "nosuchdb"'),
        ("/write?db=..%2Fetc", 404, 'database not found: "../etc"'),
        ("/write?db=test&rp=weekly", 404, "retention policy not found: weekly"),
        ("/write?db=test&precision=x", 400, 'invalid precision "x" (use n, u, ms, s, m or h)'),
        ("/write?db=test&consistency=most", 400, "invalid consistency level"),
    ],
)
async def test_request_errors(client: TestClient, settings: Settings, url: str, status: int, message: str) -> None:
    resp, body = await post(client, url, "samples hr_bpm=1 1")
    assert_influx_error(resp.headers, body, status, resp.status, message)
    assert await stored(settings, "test") == []


@pytest.mark.usefixtures("test_user")
@pytest.mark.parametrize("rp", ["", "autogen"])
@pytest.mark.parametrize("consistency", ["", "any", "one", "quorum", "all"])
async def test_default_rp_and_consistency(client: TestClient, rp: str, consistency: str) -> None:
    resp, _ = await post(client, f"/write?db=test&rp={rp}&consistency={consistency}", "samples hr_bpm=1 1")
    assert resp.status == 204


async def test_other_users_database_is_forbidden(client: TestClient, settings: Settings, add_user: AddUser) -> None:
    await add_user("alice", "alice-pw")
    await add_user("bob", "bob-pw")
    resp, body = await post(client, "/write?db=alice", "samples hr_bpm=1 1", headers=basic("bob", "bob-pw"))
    assert_influx_error(resp.headers, body, 403, resp.status, '"bob" user is not authorized to write to database "alice"')
    assert await stored(settings, "alice") == []
    assert await stored(settings, "bob") == []


# -- body: size, gzip -----------------------------------------------------------------------------


@pytest.mark.usefixtures("test_user")
async def test_body_too_large(aiohttp_client, settings: Settings) -> None:
    from tracker.app import create_app

    client = await aiohttp_client(create_app(settings.with_(max_body_size=100, max_decompressed_size=1000)))
    resp, body = await post(client, "/write?db=test", "samples hr_bpm=1 1\n" * 10)
    assert_influx_error(resp.headers, body, 413, resp.status, "Request Entity Too Large")

    async def chunked():  # no Content-Length: the limit still holds while reading
        for _ in range(10):
            yield b"samples hr_bpm=1 1\n"

    resp = await client.post("/write?db=test", data=chunked(), headers=AUTH)
    assert resp.status == 413
    # gzip: the compressed size is what counts against max-body-size ...
    small = gzip.compress(b"samples hr_bpm=1 1\n" * 40)
    assert len(small) < 100
    resp, _ = await post(client, "/write?db=test", small, headers={**AUTH, "Content-Encoding": "gzip"})
    assert resp.status == 204
    # ... and the inflated size has a cap of its own
    bomb = gzip.compress(b"\n" * 5000)
    assert len(bomb) < 100
    resp, body = await post(client, "/write?db=test", bomb, headers={**AUTH, "Content-Encoding": "gzip"})
    assert resp.status == 413 and "decompressed" in body["error"]
    assert len(await stored(settings, "test")) == 1


@pytest.mark.usefixtures("test_user")
async def test_gzip(client: TestClient, settings: Settings) -> None:
    lines = "".join(f"samples hr_bpm={100 + i} {i}\n" for i in range(500)).encode()
    resp, _ = await post(client, "/write?db=test", gzip.compress(lines), headers={**AUTH, "Content-Encoding": "gzip"})
    assert resp.status == 204
    # two concatenated members, as some clients stream them
    two = gzip.compress(b"samples hr_bpm=1 1000\n") + gzip.compress(b"samples hr_bpm=2 1001\n")
    resp, _ = await post(client, "/write?db=test", two, headers={**AUTH, "Content-Encoding": "gzip"})
    assert resp.status == 204
    assert len(await stored(settings, "test")) == 502
    resp, body = await post(client, "/write?db=test", b"not gzip", headers={**AUTH, "Content-Encoding": "gzip"})
    assert_influx_error(resp.headers, body, 400, resp.status, "gzip: invalid header")
    truncated = gzip.compress(lines)[:-20]
    resp, body = await post(client, "/write?db=test", truncated, headers={**AUTH, "Content-Encoding": "gzip"})
    assert resp.status == 400 and body["error"] in ("unexpected EOF", "gzip: invalid data")
    assert len(await stored(settings, "test")) == 502


@pytest.mark.usefixtures("test_user")
async def test_empty_body(client: TestClient, settings: Settings) -> None:
    for body in (b"", b"\n\n", b"# only a comment\n"):
        resp, _ = await post(client, "/write?db=test", body)
        assert resp.status == 204
    assert await stored(settings, "test") == []


# -- line protocol and vocabulary ------------------------------------------------------------------


@pytest.mark.usefixtures("test_user")
async def test_all_lines_bad_writes_nothing(client: TestClient, settings: Settings) -> None:
    resp, body = await post(client, "/write?db=test", "samples hr_bpm=\nsamples")
    assert_influx_error(
        resp.headers, body, 400, resp.status,
        "unable to parse 'samples hr_bpm=': missing field value\nunable to parse 'samples': missing fields",
    )
    assert await stored(settings, "test") == []


@pytest.mark.usefixtures("test_user")
async def test_partial_write_keeps_valid_lines(client: TestClient, settings: Settings) -> None:
    resp, body = await post(client, "/write?db=test", "samples hr_bpm=1 1\nsamples hr_bpm=x 2\nsamples hr_bpm=3 3")
    assert_influx_error(
        resp.headers, body, 400, resp.status, "partial write: unable to parse 'samples hr_bpm=x 2': invalid boolean dropped=0"
    )
    assert [(r.time, r.fields["hr_bpm"]) for r in await stored(settings, "test")] == [(1, 1.0), (3, 3.0)]


@pytest.mark.usefixtures("test_user")
@pytest.mark.parametrize(
    "line, reason",
    [
        ("cpu hr_bpm=1 5", 'line 2: measurement "cpu" is not allowed: the only measurement is "samples"'),
        ("samples foo=1 5", 'line 2: field "foo": unknown field key; allowed: dur_s, dist_km, lat, lng'),
        ('samples hr_bpm="fast" 5', 'line 2: field "hr_bpm": value must be a number'),
        ("samples hr_bpm=true 5", 'line 2: field "hr_bpm": value must be a number'),
        ("samples lat=91.5,lng=1 5", 'line 2: field "lat": 91.5 is out of range -90..90 deg'),
        ("samples lat=1,lng=-180.01 5", 'line 2: field "lng": -180.01 is out of range -180..180 deg'),
        ("samples lat=1,lon=181i 5", 'line 2: field "lon": 181 is out of range -180..180 deg'),
    ],
)
async def test_vocabulary(client: TestClient, settings: Settings, line: str, reason: str) -> None:
    resp, body = await post(client, "/write?db=test", f"samples hr_bpm=1 1\n{line}\nsamples hr_bpm=3 3")
    assert resp.status == 400
    assert body["error"].startswith(f"partial write: unable to parse '{line}': {reason}")
    assert body["error"].endswith(" dropped=1")
    assert [r.time for r in await stored(settings, "test")] == [1, 3]


@pytest.mark.usefixtures("test_user")
async def test_vocabulary_every_key_and_alias(client: TestClient, settings: Settings) -> None:
    from tracker.vocabulary import FIELD_KEYS

    fields = ",".join(f"{key}={i}.5" for i, key in enumerate(FIELD_KEYS) if key not in ("lat", "lng"))
    resp, _ = await post(client, "/write?db=test", f"samples,device=watch {fields},lat=-90,lon=180i 7\n")
    assert resp.status == 204
    (row,) = await stored(settings, "test")
    assert row.tags == {"device": "watch"}
    assert row.fields["lat"] == -90.0 and row.fields["lng"] == 180.0
    assert set(row.fields) == set(FIELD_KEYS)


@pytest.mark.usefixtures("test_user")
async def test_crlf_accepted(client: TestClient, settings: Settings) -> None:
    resp, _ = await post(client, "/write?db=test&precision=s", "samples hr_bpm=1 1\r\nsamples hr_bpm=2,pwr_w=3 2\r\n")
    assert resp.status == 204
    assert [(r.time, r.fields) for r in await stored(settings, "test")] == [
        (1_000_000_000, {"hr_bpm": 1.0}),
        (2_000_000_000, {"hr_bpm": 2.0, "pwr_w": 3.0}),
    ]


@pytest.mark.usefixtures("test_user")
@pytest.mark.parametrize(
    "precision, scale", [("n", 1), ("ns", 1), ("u", 10**3), ("ms", 10**6), ("s", 10**9), ("m", 60 * 10**9), ("h", 3600 * 10**9)]
)
async def test_precision(client: TestClient, settings: Settings, precision: str, scale: int) -> None:
    before = time.time_ns()
    resp, _ = await post(client, f"/write?db=test&precision={precision}", "samples hr_bpm=1 3\nsamples hr_bpm=2")
    after = time.time_ns()
    assert resp.status == 204
    first, second = await stored(settings, "test", -(2**62), 2**63 - 1)
    assert first.time == 3 * scale
    # no timestamp: the receive time, truncated to the precision
    assert second.time % scale == 0 and before - scale < second.time <= after


@pytest.mark.usefixtures("test_user")
async def test_same_time_same_tags_merge_newest_wins(client: TestClient, settings: Settings) -> None:
    await post(client, "/write?db=test", "samples hr_bpm=100,pwr_w=200 10\nsamples,device=a hr_bpm=1 10")
    await post(client, "/write?db=test", "samples hr_bpm=120,cad_rpm=90 10")
    rows = sorted(await stored(settings, "test"), key=lambda r: len(r.tags))
    assert [(r.tags, r.fields) for r in rows] == [
        ({}, {"hr_bpm": 120.0, "pwr_w": 200.0, "cad_rpm": 90.0}),
        ({"device": "a"}, {"hr_bpm": 1.0}),
    ]


@pytest.mark.usefixtures("test_user")
async def test_acknowledged_writes_survive_restart(aiohttp_client, settings: Settings) -> None:
    from tracker.app import create_app

    client = await aiohttp_client(create_app(settings))
    for i in range(20):
        resp, _ = await post(client, "/write?db=test", f"samples hr_bpm={i} {i}")
        assert resp.status == 204
    await client.close()  # runs the cleanup contexts, as SIGTERM does
    client = await aiohttp_client(create_app(settings))
    resp, _ = await post(client, "/write?db=test", "samples hr_bpm=99 99")
    assert resp.status == 204
    assert [r.fields["hr_bpm"] for r in await stored(settings, "test")] == [float(i) for i in range(20)] + [99.0]


# -- /api/v2/write --------------------------------------------------------------------------------


@pytest.mark.usefixtures("test_user")
@pytest.mark.parametrize("bucket", ["test", "test/", "test/autogen"])
@pytest.mark.parametrize("precision, scale", [("", 1), ("ns", 1), ("us", 10**3), ("ms", 10**6), ("s", 10**9)])
async def test_v2_write(client: TestClient, settings: Settings, bucket: str, precision: str, scale: int) -> None:
    resp, _ = await post(
        client,
        f"/api/v2/write?org=-&bucket={bucket}&precision={precision}",
        "samples hr_bpm=5 2",
        headers={"Authorization": "Token test:test1234"},
    )
    assert resp.status == 204
    assert [r.time for r in await stored(settings, "test")] == [2 * scale]


@pytest.mark.usefixtures("test_user")
@pytest.mark.parametrize(
    "url, status, message",
    [
        ("/api/v2/write?bucket=", 404, 'bucket name "" is missing a slash; not in "database/retention-policy" format'),
        ("/api/v2/write?bucket=/autogen", 404, 'bucket name "/autogen" is in db/rp form but has an empty database'),
        ("/api/v2/write?bucket=test&precision=n", 400, 'invalid precision "n" (use ns, us, ms or s)'),
        ("/api/v2/write?bucket=test&precision=h", 400, 'invalid precision "h" (use ns, us, ms or s)'),
        ("/api/v2/write?bucket=test/weekly", 404, "retention policy not found: weekly"),
    ],
)
async def test_v2_errors(client: TestClient, url: str, status: int, message: str) -> None:
    resp, body = await post(client, url, "samples hr_bpm=5 2", headers={"Authorization": "Token test:test1234"})
    assert_influx_error(resp.headers, body, status, resp.status, message)


# -- everything else on the wire ------------------------------------------------------------------


async def test_ping_health_time(client: TestClient) -> None:
    for method in ("GET", "HEAD"):
        resp = await client.request(method, "/ping")
        assert resp.status == 204 and resp.headers["X-Influxdb-Version"] == "1.8.10"
    for verbose in ("", "0", "false"):
        assert (await client.get(f"/ping?verbose={verbose}")).status == 204
    resp = await client.get("/ping?verbose=true")
    assert resp.status == 200 and await resp.json() == {"version": "1.8.10"}
    resp = await client.get("/health")
    assert resp.status == 200
    assert await resp.json() == {
        "checks": [], "message": "ready for queries and writes", "name": "influxdb", "status": "pass", "version": "1.8.10",
    }
    before = time.time_ns()
    resp = await client.get("/time")
    after = time.time_ns()
    clock = await resp.json()
    assert before <= clock["ns"] <= after
    assert clock["s"] == clock["ns"] // 10**9 and clock["ms"] == clock["ns"] // 10**6 and clock["u"] == clock["ns"] // 10**3
    assert clock["rfc3339"].endswith("Z") and str(clock["ns"] % 10**9).zfill(9) in clock["rfc3339"]


async def test_options_and_unknown_routes(client: TestClient) -> None:
    resp = await client.options("/write")
    assert resp.status == 204
    resp = await client.get("/nope")
    assert resp.status == 404 and (await resp.json())["error"]
    resp = await client.get("/write")
    assert resp.status == 405 and (await resp.json())["error"]
    assert {m.strip() for m in resp.headers.get("Allow", "").split(",")} >= {"POST", "OPTIONS"}  # aiohttp's Allow, kept in InfluxDB's form


@pytest.mark.usefixtures("test_user")
async def test_a_write_error_quotes_the_first_refused_lines_within_4_kib(client: TestClient, settings: Settings) -> None:
    """A sender whose every flush has thousands of refused lines gets a short answer: the first few
    quoted, then how many more, within 4 KiB (InfluxDB would quote every one)."""
    bad = "\n".join(f"samples foo=1 {i}" for i in range(1, 2001))
    for url in ("/write?db=test", "/api/v2/write?bucket=test"):
        resp, body = await post(client, url, f"samples hr_bpm=1 5000\n{bad}")
        assert resp.status == 400
        assert len(await resp.read()) <= 4096
        quoted = body["error"].removeprefix("partial write: ").split("\n")
        assert len(quoted) == 11
        assert quoted[0].startswith("unable to parse 'samples foo=1 1': line 2: field \"foo\": unknown field key")
        assert quoted[9].startswith("unable to parse 'samples foo=1 10': line 11: ")
        assert quoted[10] == "... and 1990 more dropped=2000"
    # Nothing written at all: the same bound, without "partial write".
    resp, body = await post(client, "/write?db=test", bad)
    assert resp.status == 400 and len(await resp.read()) <= 4096
    assert body["error"].endswith("\n... and 1990 more")
    # A long line is cut in its middle: its start and the rule stay.
    long_line = f"samples,device={'x' * 3000} foo=1 7"
    resp, body = await post(client, "/write?db=test", f"samples hr_bpm=1 6000\n{long_line}")
    (quote,) = body["error"].removeprefix("partial write: ").removesuffix(" dropped=1").split("\n")
    assert len(quote.encode()) <= 512
    assert quote.startswith("unable to parse 'samples,device=xxx") and " ... " in quote
    assert quote.endswith("allowed: dur_s, dist_km, lat, lng, acc_m, bearing, battery, gsm_signal, temp_c, spd_kph, "
                          "alt_m, hr_bpm, cad_rpm, pwr_w, pwr_w_l, pwr_w_r (lon = lng)")
    assert [r.time for r in await stored(settings, "test")] == [5000, 6000]
