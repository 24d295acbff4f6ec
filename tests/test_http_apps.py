"""The phone apps' exact requests, over HTTP to a real server, read back from the real files.

Request shapes (see tests/test_apps.py for the sources): OsmAnd's live-tracking URL template,
Traccar Client's OsmAnd-protocol query and its version 9 JSON, OwnTracks' HTTP mode (Basic auth,
X-Limit-U/X-Limit-D headers, a JSON message), GPSLogger's custom URL (placeholders, %ALL body).
"""

from __future__ import annotations

import orjson
import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import AddUser, TokenMaker, basic, stored
from tests.test_apps import GPSLOGGER_ALL, OWNTRACKS_LOCATION, traccar_client_9
from tracker.appkeys import LIVE
from tracker.apps import TIME_RULE
from tracker.config import Settings

S = 1_000_000_000
PASSWORD = basic("rider", "rider-pass-1")


@pytest.fixture
async def rider(add_user: AddUser) -> None:
    await add_user("rider", "rider-pass-1")


def only(rows: list) -> tuple[int, dict[str, str], dict[str, float]]:
    assert len(rows) == 1, rows
    return rows[0].time, rows[0].tags, rows[0].fields


# -- OsmAnd / Traccar Client ----------------------------------------------------------------------


@pytest.mark.usefixtures("rider")
async def test_traccar_client_query_with_a_token_as_id(client: TestClient, settings: Settings, make_token: TokenMaker) -> None:
    token = await make_token("rider", "pixel")
    # Traccar Client (before 9): GET with its parameters; speed in knots.
    resp = await client.get(
        f"/osmand?id={token}&timestamp=1700000000&lat=52.5&lon=13.4&speed=10.0&bearing=90.0&altitude=34.0"
        "&accuracy=5.0&batt=80.0&charge=false"
    )
    assert resp.status == 200
    assert await resp.read() == b""
    time_ns, tags, fields = only(await stored(settings, "rider"))
    assert time_ns == 1700000000 * S
    assert tags == {"device": "pixel"}  # the token's label
    assert fields == pytest.approx(
        {"lat": 52.5, "lng": 13.4, "spd_kph": 18.52, "bearing": 90.0, "alt_m": 34.0, "acc_m": 5.0, "battery": 80.0}
    )


@pytest.mark.usefixtures("rider")
async def test_an_app_sample_reaches_the_live_view(client: TestClient, make_token: TokenMaker) -> None:
    token = await make_token("rider", "pixel")
    subscription, _ = client.server.app[LIVE].subscribe("rider")
    with subscription:
        resp = await client.get(f"/osmand?id={token}&lat=52.5&lon=13.4&timestamp=1700000000&hr=140")
        assert resp.status == 200
        events = await subscription.next_events(timeout=5)
    assert [orjson.loads(event.data) for event in events] == [
        {"samples": [{"t": 1700000000 * S, "f": {"lat": 52.5, "lng": 13.4, "hr_bpm": 140.0}}]}
    ]


@pytest.mark.usefixtures("rider")
async def test_osmand_form_post_and_read_back_with_query(client: TestClient, settings: Settings, make_token: TokenMaker) -> None:
    token = await make_token("rider", "phone")
    resp = await client.post(
        "/osmand",
        data=f"deviceid={token}&location=48.85833,2.29513&timestamp=2023-11-14 22:13:20&heading=45&hr=151",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.status == 200
    resp = await client.get(
        "/query", params={"db": "rider", "epoch": "s", "q": "SELECT lat, lng, bearing, hr_bpm, device FROM samples"},
        headers=PASSWORD,
    )
    body = await resp.json()
    assert body["results"][0]["series"][0]["values"] == [[1700000000, 48.85833, 2.29513, 45.0, 151.0, "phone"]]


@pytest.mark.usefixtures("rider")
async def test_osmand_app_template_with_a_metres_per_second_token(
    client: TestClient, settings: Settings, make_token: TokenMaker
) -> None:
    token = await make_token("rider", "osmand", speed_unit="mps")
    # OsmAnd fills lat={0}&lon={1}&timestamp={2}&hdop={3}&altitude={4}&speed={5}&bearing={6}: ms, m/s.
    resp = await client.get(
        f"/osmand?id={token}&lat=52.5&lon=13.4&timestamp=1700000000123&hdop=4.5&altitude=34.0&speed=5.0&bearing=271.0"
    )
    assert resp.status == 200
    time_ns, tags, fields = only(await stored(settings, "rider"))
    assert (time_ns, tags) == (1700000000123 * 10**6, {"device": "osmand"})
    assert fields == pytest.approx({"lat": 52.5, "lng": 13.4, "acc_m": 4.5, "alt_m": 34.0, "spd_kph": 18.0, "bearing": 271.0})


@pytest.mark.usefixtures("rider")
@pytest.mark.parametrize(
    ("timestamp", "time_ns"),
    [
        ("1700000000", 1700000000 * S),
        ("1700000000123", 1700000000123 * 10**6),
        ("2023-11-14T22:13:20.5Z", 1700000000500000000),
        ("2023-11-14T23:13:20%2B01:00", 1700000000 * S),
        ("2023-11-14%2022:13:20", 1700000000 * S),
    ],
)
async def test_osmand_timestamps_over_http(
    client: TestClient, settings: Settings, make_token: TokenMaker, timestamp: str, time_ns: int
) -> None:
    token = await make_token("rider", "t")
    resp = await client.get(f"/osmand?id={token}&lat=1&lon=2&timestamp={timestamp}")
    assert resp.status == 200
    assert only(await stored(settings, "rider"))[0] == time_ns


@pytest.mark.usefixtures("rider")
async def test_osmand_with_basic_auth_id_names_the_device(client: TestClient, settings: Settings, make_token: TokenMaker) -> None:
    resp = await client.get("/osmand?id=bike-computer&lat=1&lon=2&timestamp=1700000000&speed=1", headers=PASSWORD)
    assert resp.status == 200
    token = await make_token("rider", "labelled")
    resp = await client.get(
        "/osmand?id=garmin&lat=3&lon=4&timestamp=1700000001", headers=basic("rider", token)
    )
    assert resp.status == 200
    rows = await stored(settings, "rider")
    assert [(r.time, r.tags, r.fields) for r in rows] == [
        (1700000000 * S, {"device": "bike-computer"}, {"lat": 1.0, "lng": 2.0, "spd_kph": 1.852}),
        (1700000001 * S, {"device": "garmin"}, {"lat": 3.0, "lng": 4.0}),  # the request's name wins
    ]
    # A token as id beside credentials names no device: a secret never becomes a tag watchers see.
    resp = await client.get(f"/osmand?id={token}&lat=5&lon=6&timestamp=1700000002", headers=PASSWORD)
    assert resp.status == 200
    resp = await client.get(f"/gpslogger?id={token}&lat=5&lon=6&timestamp=1700000003", headers=basic("rider", token))
    assert resp.status == 200
    rows = await stored(settings, "rider", 1700000002 * S)
    assert [(r.time, r.tags) for r in rows] == [(1700000002 * S, {}), (1700000003 * S, {"device": "labelled"})]


@pytest.mark.usefixtures("rider")
async def test_traccar_client_9_json(client: TestClient, settings: Settings, make_token: TokenMaker) -> None:
    token = await make_token("rider", "iphone")
    body = {**traccar_client_9(), "device_id": token}
    resp = await client.post("/osmand", json=body)
    assert resp.status == 200
    time_ns, tags, fields = only(await stored(settings, "rider"))
    assert (time_ns, tags) == (1748772000123000000, {"device": "iphone"})
    assert fields == pytest.approx(
        {"lat": 52.5, "lng": 13.4, "spd_kph": 18.0, "bearing": 90.0, "alt_m": 34.0, "acc_m": 4.2, "battery": 85.0, "dist_km": 1.5}
    )


@pytest.mark.usefixtures("rider")
async def test_unknown_and_revoked_ids_get_401(
    client: TestClient, settings: Settings, make_token: TokenMaker, revoke_token
) -> None:
    token = await make_token("rider", "old-phone")
    assert (await client.get(f"/osmand?id={token}&lat=1&lon=2")).status == 200
    await revoke_token("rider", "old-phone")
    for url in (f"/osmand?id={token}&lat=1&lon=2", "/osmand?id=123456&lat=1&lon=2", "/osmand?lat=1&lon=2",
                "/osmand?id=rider-pass-1&lat=1&lon=2", f"/gpslogger?id={token}&lat=1&lon=2"):
        resp = await client.get(url)
        assert resp.status == 401, url
        assert "error" in await resp.json()
    resp = await client.post("/osmand", json={"device_id": "nope", "location": {}})
    assert resp.status == 401
    assert (await client.get("/osmand?id=x&lat=1&lon=2", headers=basic("rider", "wrong"))).status == 401
    assert len(await stored(settings, "rider")) == 1


@pytest.mark.usefixtures("rider")
@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("lon=2", 'parameter "lat": required (or location=lat,lon)'),
        ("lat=91&lon=2", 'parameter "lat": 91 is out of range -90..90 deg'),
        ("lat=1&lon=2&timestamp=soon", f'parameter "timestamp": "soon" is not a time: {TIME_RULE}'),
        ("lat=1&lon=2&speed=fast", 'parameter "speed": "fast" is not a number'),
    ],
)
async def test_osmand_bad_input_is_a_400_naming_the_parameter(
    client: TestClient, settings: Settings, make_token: TokenMaker, query: str, message: str
) -> None:
    token = await make_token("rider", "p")
    resp = await client.get(f"/osmand?id={token}&{query}")
    assert resp.status == 400
    assert await resp.json() == {"error": message}
    assert await stored(settings, "rider") == []


# -- OwnTracks ------------------------------------------------------------------------------------


def owntracks_location(**changes: object) -> dict[str, object]:
    return {**OWNTRACKS_LOCATION, **changes}


@pytest.mark.usefixtures("rider")
async def test_owntracks_http_mode(client: TestClient, settings: Settings, make_token: TokenMaker) -> None:
    token = await make_token("rider", "owntracks")
    headers = {**basic("rider", token), "X-Limit-U": "rider", "X-Limit-D": "phone"}
    resp = await client.post("/owntracks", json=owntracks_location(), headers=headers)
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("application/json")
    assert await resp.json() == []
    # No X-Limit-D: the tid names the device. The account password works as well.
    resp = await client.post("/owntracks", json=owntracks_location(tst=1497476460, tid="RR"), headers=PASSWORD)
    assert (resp.status, await resp.json()) == (200, [])
    # Other message types are accepted and ignored.
    for kind in ("transition", "waypoint", "lwt", "encrypted"):
        resp = await client.post("/owntracks", json={"_type": kind, "tst": 1497476470, "data": "x"}, headers=headers)
        assert (resp.status, await resp.json()) == (200, [])
    rows = await stored(settings, "rider")
    assert [(r.time, r.tags) for r in rows] == [(1497476456 * S, {"device": "phone"}), (1497476460 * S, {"device": "RR"})]
    assert rows[0].fields == {"lat": 48.85833, "lng": 2.29513, "spd_kph": 12.0, "bearing": 271.0, "alt_m": 50.0,
                              "acc_m": 5.0, "battery": 41.0}


@pytest.mark.usefixtures("rider")
async def test_owntracks_refusals(client: TestClient, settings: Settings, make_token: TokenMaker, revoke_token) -> None:
    assert (await client.post("/owntracks", json=owntracks_location())).status == 401
    assert (await client.post("/owntracks", json=owntracks_location(), headers=basic("rider", "nope"))).status == 401
    token = await make_token("rider", "gone")
    await revoke_token("rider", "gone")
    assert (await client.post("/owntracks", json=owntracks_location(), headers=basic("rider", token))).status == 401
    resp = await client.post("/owntracks", json=owntracks_location(lat="48.8"), headers=PASSWORD)
    assert (resp.status, await resp.json()) == (400, {"error": 'parameter "lat": must be a number, got a string'})
    resp = await client.post("/owntracks", data=b"{not json", headers=PASSWORD)
    assert resp.status == 400
    assert (await resp.json())["error"].startswith("the body is not valid JSON")
    assert await stored(settings, "rider") == []


# -- GPSLogger ------------------------------------------------------------------------------------


@pytest.mark.usefixtures("rider")
async def test_gpslogger_get_template(client: TestClient, settings: Settings, make_token: TokenMaker) -> None:
    token = await make_token("rider", "gpslogger")
    # The documented URL, placeholders filled in: %SPD is m/s, %TIME ISO 8601 in UTC.
    resp = await client.get(
        f"/gpslogger?id={token}&lat=52.5&lon=13.4&time=2025-01-16T03:54:51.250Z&spd=5.0&alt=34.0&acc=4.0"
        "&dir=90.0&batt=55.0"
    )
    assert resp.status == 200
    time_ns, tags, fields = only(await stored(settings, "rider"))
    assert (time_ns, tags) == (1736999691250000000, {"device": "gpslogger"})
    assert fields == pytest.approx(
        {"lat": 52.5, "lng": 13.4, "spd_kph": 18.0, "alt_m": 34.0, "acc_m": 4.0, "bearing": 90.0, "battery": 55.0}
    )


@pytest.mark.usefixtures("rider")
async def test_gpslogger_post_all_body_with_basic_auth(client: TestClient, settings: Settings) -> None:
    resp = await client.post("/gpslogger?id=pixel-7", data=GPSLOGGER_ALL, headers=PASSWORD)
    assert resp.status == 200
    # A JSON body template works too.
    resp = await client.post(
        "/gpslogger", data='{"lat": 1.5, "lon": 2.5, "timestamp": 1736999700, "spd": 10}',
        headers={**PASSWORD, "Content-Type": "application/json"},
    )
    assert resp.status == 200
    rows = await stored(settings, "rider")
    assert [(r.time, r.tags) for r in rows] == [(1736999691 * S, {"device": "pixel-7"}), (1736999700 * S, {})]
    assert rows[0].fields == pytest.approx(
        {"lat": 41.74108695983887, "lng": -91.84490871429443, "alt_m": 1387.0, "acc_m": 6.0, "bearing": 170.8125,
         "spd_kph": 9.0, "battery": 27.0, "dist_km": 1.25}
    )
    assert rows[1].fields == pytest.approx({"lat": 1.5, "lng": 2.5, "spd_kph": 36.0})
    resp = await client.get("/gpslogger?id=x&lat=%25LAT&lon=1", headers=PASSWORD)
    assert (resp.status, await resp.json()) == (400, {"error": 'parameter "lat": "%LAT" is not a number'})
