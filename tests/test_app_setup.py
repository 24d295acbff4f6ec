"""A new device token's setup for each app, over HTTP against a real server and real SQLite files: the
201 answer carries what to enter in OsmAnd, Traccar Client, OwnTracks, GPSLogger, IpBike and an InfluxDB
client, and doing exactly that stores the samples, with the right speed. The QR codes are segno's own for
the text each app scans (the browser test decodes them from the screen)."""

from __future__ import annotations

import base64
import json
import urllib.parse

import pytest
import segno
from aiohttp.test_utils import TestClient

from tests.conftest import AddUser, basic, stored
from tests.sse import sign_in
from tests.test_apps import OWNTRACKS_LOCATION, traccar_client_9
from tracker.appsetup import device_setup, owntracks_device_id, owntracks_tid, qr_svg
from tracker.config import Settings

APPS = ["osmand", "traccar", "owntracks", "gpslogger", "ipbike", "influxdb"]


@pytest.fixture
async def rider(add_user: AddUser) -> None:
    await add_user("rider", "rider-pass-1")


async def create(client: TestClient, label: str, speed_unit: str, headers: dict[str, str] | None = None) -> dict:
    csrf = await sign_in(client, "rider", "rider-pass-1")
    answer = await client.post(
        "/api/tokens", json={"label": label, "speed_unit": speed_unit}, headers={"X-CSRF-Token": csrf, **(headers or {})}
    )
    assert answer.status == 201, await answer.text()
    return await answer.json()


def by_app(made: dict) -> dict[str, dict]:
    return {app["app"]: app for app in made["setup"]}


def setting(app: dict, name: str) -> str:
    (value,) = [s["value"] for s in app["settings"] if s["name"] == name]
    return value


def local(url: str) -> str:
    """The path and query of an absolute URL, for the test client."""
    parts = urllib.parse.urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def owntracks_config(link: str) -> dict:
    parts = urllib.parse.urlsplit(link)
    assert (parts.scheme, parts.path) == ("owntracks", "/config")
    (inline,) = urllib.parse.parse_qs(parts.query)["inline"]
    return json.loads(base64.b64decode(inline, validate=True))


@pytest.mark.usefixtures("rider")
async def test_the_creation_answer_says_what_to_enter_in_every_app(client: TestClient) -> None:
    made = await create(client, "Pixel 7", "mps")
    token, base = made["token"], f"http://{client.host}:{client.port}"
    apps = by_app(made)
    assert list(apps) == APPS
    for app in apps.values():
        assert any(token in s["value"] for s in app["settings"]), app["app"]  # the token is in every app's settings
        assert app["where"] and app["sends"] and app["speed"]
        # each QR code is segno's own for exactly the text the app scans
        assert app["qr_svg"] == (qr_svg(app["qr_text"]) if app["qr_text"] else None), app["app"]
    assert setting(apps["osmand"], "Web address").startswith(f"{base}/osmand?id={token}&lat={{0}}&lon={{1}}")
    assert apps["osmand"]["qr_kind"] == "plain" and apps["gpslogger"]["qr_kind"] == "plain"
    assert (setting(apps["traccar"], "Server URL"), setting(apps["traccar"], "Device identifier")) == (f"{base}/osmand", token)
    assert apps["traccar"]["qr_text"] == f"{base}/osmand?id={token}" and apps["traccar"]["qr_kind"] == "config"
    assert owntracks_config(apps["owntracks"]["qr_text"]) == {
        "_type": "configuration", "mode": 3, "url": f"{base}/owntracks", "auth": True,
        "username": "rider", "password": token, "deviceId": "Pixel 7", "tid": "PI",
    }  # fmt: skip
    assert apps["ipbike"]["qr_svg"] is None and apps["influxdb"]["qr_svg"] is None
    assert setting(apps["influxdb"], "Database") == "rider" and setting(apps["influxdb"], "Password") == token
    assert all(app["speed_ok"] for app in apps.values())

    # The token and its setup are in that answer only.
    listed = await (await client.get("/api/tokens")).json()
    assert token not in json.dumps(listed) and "setup" not in json.dumps(listed)


@pytest.mark.usefixtures("rider")
async def test_a_token_in_another_unit_warns_for_osmand(client: TestClient) -> None:
    apps = by_app(await create(client, "traccar-old", "knots"))
    assert not apps["osmand"]["speed_ok"] and "make a token with m/s for OsmAnd" in apps["osmand"]["speed"]
    assert apps["traccar"]["speed_ok"] and "this token reads knots: right" in apps["traccar"]["speed"]


@pytest.mark.usefixtures("rider")
async def test_doing_what_the_setup_says_stores_the_samples(client: TestClient, settings: Settings) -> None:
    made = await create(client, "phone", "mps")
    token, apps = made["token"], by_app(made)

    # OsmAnd fills its placeholders: {0} lat, {1} lon, {2} time, {3} hdop, {4} altitude, {5} speed m/s, {6} bearing.
    osmand = setting(apps["osmand"], "Web address").format(52.5, 13.4, 1700000000, 5, 34, 10, 90)
    assert (await client.get(local(osmand))).status == 200
    # Traccar Client 9 posts its JSON to the Server URL with the Device identifier.
    traccar = {**traccar_client_9(), "device_id": setting(apps["traccar"], "Device identifier")}
    assert (await client.post(local(setting(apps["traccar"], "Server URL")), json=traccar)).status == 200
    # OwnTracks, configured from its QR code: Basic auth with the username and password, its Device ID.
    config = owntracks_config(apps["owntracks"]["qr_text"])
    headers = {**basic(config["username"], config["password"]), "X-Limit-D": config["deviceId"]}
    owntracks = {**OWNTRACKS_LOCATION, "tst": 1700000100}
    assert (await client.post(local(config["url"]), json=owntracks, headers=headers)).status == 200
    # GPSLogger fills %LAT ... into its URL.
    gpslogger = setting(apps["gpslogger"], "URL")
    for placeholder, value in (("%LAT", "52.6"), ("%LON", "13.5"), ("%TIME", "2023-11-14T22:16:00Z"), ("%SPD", "5"),
                               ("%ALT", "30"), ("%ACC", "4"), ("%DIR", "180"), ("%BATT", "77")):  # fmt: skip
        gpslogger = gpslogger.replace(placeholder, value)
    assert (await client.get(local(gpslogger))).status == 200
    # IpBike and any InfluxDB client: /write on the server with the database, user and password.
    for app, t in (("ipbike", 1700000200), ("influxdb", 1700000300)):
        server = setting(apps[app], "Server" if app == "ipbike" else "URL")
        url = local(f"{server}/write?db={setting(apps[app], 'Database')}&precision=s")
        user = setting(apps[app], "User" if app == "ipbike" else "Username")
        written = await client.post(url, data=f"samples hr_bpm=140,spd_kph=30 {t}", headers=basic(user, setting(apps[app], "Password")))
        assert written.status == 204, await written.text()
    example = setting(apps["influxdb"], "Example")
    assert f'-u "rider:{token}"' in example and "/write?db=rider" in example

    rows = await stored(settings, "rider")
    assert len(rows) == 6
    speeds = sorted(round(row.fields["spd_kph"], 6) for row in rows)
    # OsmAnd's 10 m/s with this m/s token, Traccar 9's 5 m/s, OwnTracks' 12 km/h, GPSLogger's 5 m/s, 30 km/h twice
    assert speeds == [12.0, 18.0, 18.0, 30.0, 30.0, 36.0]
    assert {row.tags.get("device") for row in rows} == {"phone"}


def test_owntracks_device_ids_travel_in_a_header() -> None:
    assert owntracks_device_id("Läufer's Handy") == "Lufer's Handy"
    assert owntracks_device_id("手机") == "phone"
    assert (owntracks_tid("garmin-phone"), owntracks_tid("手机")) == ("GA", "TR")


@pytest.mark.usefixtures("rider")
async def test_an_address_too_long_for_a_qr_code_still_gives_the_settings(client: TestClient) -> None:
    host = "a" * 3000 + ".example"
    made = await create(client, "phone", "mps", headers={"Host": host})
    apps = by_app(made)
    assert setting(apps["traccar"], "Server URL") == f"http://{host}/osmand"
    assert all(app["qr_svg"] is None for app in apps.values())


def test_every_qr_text_fits_a_qr_code_for_an_ordinary_address() -> None:
    for app in device_setup("https://tracker.example.org", "a" * 64, "trk_" + "x" * 43, "l" * 100, "mps"):
        if app.qr_text:
            assert segno.make(app.qr_text, error="m").version <= 20, app.app  # 97 modules: still readable from a 16rem square
