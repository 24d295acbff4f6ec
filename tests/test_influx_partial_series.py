"""A series of more than 10,000 rows in an unchunked answer carries "partial": true, as a real influxd answers.

InfluxDB builds every answer from chunks of 10,000 rows and, unchunked, joins a series' chunks into one
series that keeps the first chunk's "partial": true. The same points go to Tracker and to influxd; each
query must answer the same JSON.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import AddUser, basic
from tests.influxd import InfluxdProcess, basic_header

USER, PASSWORD = "partials", "partials-pw-1"
T0 = 1_700_000_000
QUERIES = [
    "SELECT hr_bpm FROM samples",
    "SELECT hr_bpm FROM samples LIMIT 10000",
    "SELECT hr_bpm FROM samples LIMIT 10001",
    "SELECT hr_bpm FROM samples GROUP BY device",
    "SELECT hr_bpm FROM samples WHERE device = 'a' ORDER BY time DESC",
    "SELECT hr_bpm + 1 FROM samples WHERE device = 'a'; SELECT count(hr_bpm) FROM samples",
    "SELECT distinct(hr_bpm) FROM samples",
]


def _lines() -> bytes:
    # Series a: 10,500 points (one more chunk), series b: 6,000 (together more than a chunk, each less)
    lines = [f"samples,device=a hr_bpm={n * 7 % 10007} {T0 + n}" for n in range(10_500)]
    lines += [f"samples,device=b hr_bpm={n % 97} {T0 + n}" for n in range(6_000)]
    return "\n".join(lines).encode()


@pytest.fixture
async def both(client: TestClient, add_user: AddUser, influxd: InfluxdProcess) -> tuple[TestClient, InfluxdProcess]:
    await add_user(USER, PASSWORD)
    resp = await client.post(f"/write?db={USER}&precision=s", data=_lines(), headers=basic(USER, PASSWORD))
    assert resp.status == 204, await resp.text()
    users = influxd.query("SHOW USERS")["results"][0].get("series", [{}])[0].get("values", [])
    if not any(row[0] == USER for row in users):
        influxd.add_user(USER, PASSWORD)
        influxd.write(USER, _lines(), auth=(USER, PASSWORD), precision="s")
    return client, influxd


@pytest.mark.parametrize("q", QUERIES)
async def test_long_series_are_partial_as_in_influxdb(both: tuple[TestClient, InfluxdProcess], q: str) -> None:
    client, influxd = both
    request = urllib.request.Request(
        f"{influxd.url}/query", data=urllib.parse.urlencode({"q": q, "db": USER, "epoch": "s"}).encode(),
        headers={"Authorization": basic_header(USER, PASSWORD)},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=60) as response:
        expected = json.loads(response.read())
    resp = await client.get("/query", params={"q": q, "db": USER, "epoch": "s"}, headers=basic(USER, PASSWORD))
    assert resp.status == 200, await resp.text()
    ours = json.loads(await resp.read())
    assert ours == expected, f"{q}\n  influxdb: {str(expected)[:600]}\n  tracker:  {str(ours)[:600]}"
