"""IpBike's "Live tracking to an InfluxDB server", set up for Tracker as the README says: the requests
those settings produce, with the account password (as livetracking.io users had it) or a device token."""

from __future__ import annotations

import time
import urllib.parse

from aiohttp.test_utils import TestClient

from tests.conftest import AddUser, Settings, TokenMaker, basic, stored

# What a rider enters in IpBike (README, "Coming from livetracking.io" → IpBike).
SERVER, DATABASE, USER, PASSWORD = "http://HOST", "rider", "rider", "rider-pass-1"


def ipbike_line(t_s: int) -> str:
    # One sample of the vocabulary IpBike writes, second precision.
    return f"samples lat=52.52,lng=13.405,alt_m=34,spd_kph=28.5,hr_bpm=142i,cad_rpm=88i,pwr_w=231i,dist_km=12.3,dur_s=1800 {t_s}"


async def test_ipbike_settings_write_with_credentials_in_the_url_or_basic_auth(
    client: TestClient, settings: Settings, add_user: AddUser, make_token: TokenMaker
) -> None:
    await add_user(USER, PASSWORD)
    token = await make_token(USER, "ipbike")
    now_s = int(time.time())
    path = urllib.parse.urlsplit(SERVER).path + "/write"
    # InfluxDB 1.x clients put the credentials in u= and p=, or in a Basic header; IpBike's posts are one of these.
    in_url = await client.post(
        f"{path}?" + urllib.parse.urlencode({"db": DATABASE, "u": USER, "p": PASSWORD, "precision": "s"}),
        data=ipbike_line(now_s - 2),
    )
    assert in_url.status == 204, await in_url.text()
    in_header = await client.post(
        f"{path}?" + urllib.parse.urlencode({"db": DATABASE, "precision": "s"}),
        data=ipbike_line(now_s - 1), headers=basic(USER, PASSWORD),
    )
    assert in_header.status == 204, await in_header.text()
    with_token = await client.post(
        f"{path}?" + urllib.parse.urlencode({"db": DATABASE, "u": USER, "p": token, "precision": "s"}),
        data=ipbike_line(now_s),
    )
    assert with_token.status == 204, await with_token.text()

    rows = await stored(settings, USER)
    assert [row.time // 10**9 for row in rows] == [now_s - 2, now_s - 1, now_s]
    assert all(row.fields["hr_bpm"] == 142.0 and row.fields["spd_kph"] == 28.5 for row in rows)
    assert [row.tags.get("device") for row in rows] == [None, None, "ipbike"]
