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
