"""The values and times selectors pick where InfluxDB 1.x breaks ties, asked of Tracker and of a real influxd.

The same points go to both (three series with equal times and equal values, and one series across a
shard group boundary); every query must answer the same JSON. Expected answers are influxd's own.
- Per GROUP BY time bucket, first()/last(): the earliest/latest time, and there the larger value;
  min()/max(): the value, and there the earliest time (InfluxDB's FloatFirstReduce ... FloatMaxReduce).
- Without GROUP BY time, first()/last() come from the first two points InfluxDB's storage reads at that
  edge (its heap of the series in the shard group holding it), the larger value at equal times.
- Beside other fields (their values come from the picked point's row) and inside a subquery.
- top()/bottom() with LIMIT or OFFSET read only the first LIMIT + OFFSET + 1 points of each shard group
  (the series crosses a boundary), then LIMIT/OFFSET page the rows they answer; with tag arguments
  they read every point.
- count() fills an empty bucket with 0 under fill(null), but inside a subquery that bucket has no point.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import AddUser, basic
from tests.influxd import InfluxdProcess, basic_header
from tests.test_influxql_functions import same

USER, PASSWORD = "selectors", "selectors-pw-1"
BOUNDARY = 1_699_228_800  # Monday 2023-11-06: where InfluxDB's week-long shard groups (retention forever) meet
T = BOUNDARY - 100


def _lines() -> list[str]:
    lines = [
        # Equal times, other values: first() and last() take the larger value at their time.
        f"samples,device=a lat=1.5,hr_bpm=61 {T}",
        f"samples,device=b lat=2.5,hr_bpm=62 {T}",
        f"samples,device=c lat=0.5,hr_bpm=63 {T}",
        f"samples,device=a lat=4,hr_bpm=60 {T + 5}",
        f"samples,device=c lat=3,hr_bpm=70 {T + 3}",
        f"samples,device=a hr_bpm=90,spd_kph=10 {T + 12}",
        f"samples,device=b hr_bpm=60,spd_kph=20 {T + 20}",
        f"samples,device=c hr_bpm=90,spd_kph=30 {T + 30}",
        f"samples,device=a lat=7,hr_bpm=71 {T + 50}",
        f"samples,device=b lat=9,hr_bpm=72 {T + 50}",
        f"samples,device=c lat=8,hr_bpm=73 {T + 50}",
        f"samples,device=a lat=2,hr_bpm=81 {T + 41}",
        f"samples,device=b lat=6,hr_bpm=82 {T + 41}",
        f"samples,device=c lat=5 {T + 41}",
        # A fourth series, at neither edge: it still takes its place in InfluxDB's merge of the series.
        f"samples,device=d lat=11,hr_bpm=50 {T + 1}",
        f"samples,device=d lat=12 {T + 45}",
    ]
    # Equal values at equal times in several series, bucket after bucket: beside fields, which series' point
    # a selector answers is the first its merge of the series' own picks hands it.
    for k in range(6):
        for d, speed in (("a", 10 + k), ("b", 20 + k), ("c", 30 + k)):
            if not (k == 2 and d == "a"):
                lines.append(f"samples,device={d} hr_bpm=66,spd_kph={speed} {T + 100 + 10 * k}")
    # Across the shard group boundary: the first (last) shard's own series decide first() (last()).
    lines += [f"samples,device={d} temp_c={v} {BOUNDARY - 50}" for d, v in (("a", 1), ("b", 5), ("c", 3))]
    lines += [f"samples,device={d} temp_c={v} {BOUNDARY + 40}" for d, v in (("a", 2), ("b", 6), ("c", 4))]
    lines += [f"samples,device=d temp_c=7 {BOUNDARY + 20}", f"samples,device=d temp_c=8 {BOUNDARY - 40}"]
    # One series across the shard group boundary, for top()/bottom() with LIMIT.
    for n, offset in enumerate(range(-60, 70, 10)):
        lines.append(f"samples,device=z pwr_w={(n * 37) % 11 + n / 10} {BOUNDARY + offset}")
    return lines


RANGE = f"time >= {T}s AND time < {T + 60}s"
TIES = f"time >= {T + 100}s AND time < {T + 160}s AND device != 'c'"
ACROSS = f"device = 'z' AND time >= {BOUNDARY - 60}s AND time < {BOUNDARY + 70}s"
SHARDS = f"time >= {BOUNDARY - 60}s AND time < {BOUNDARY + 60}s"
QUERIES = [
    f"SELECT first(temp_c), last(temp_c) FROM samples WHERE {SHARDS}",
    f"SELECT first(temp_c), lat FROM samples WHERE {SHARDS}",
    f"SELECT last(temp_c), lat FROM samples WHERE {SHARDS}",
    f"SELECT first(lat), last(lat) FROM samples WHERE {RANGE}",
    f"SELECT first(lat) FROM samples WHERE {RANGE}",
    f"SELECT last(lat) FROM samples WHERE {RANGE}",
    f"SELECT min(hr_bpm) FROM samples WHERE {RANGE}",
    f"SELECT max(hr_bpm) FROM samples WHERE {RANGE}",
    f"SELECT first(lat), last(lat) FROM samples WHERE {RANGE} ORDER BY time DESC",
    f"SELECT first(lat), last(lat) FROM samples WHERE {RANGE} AND device != 'a'",
    f"SELECT first(lat), last(hr_bpm), mean(lat) FROM samples WHERE {RANGE} GROUP BY device",
    f"SELECT first(lat), device FROM samples WHERE {RANGE}",
    f"SELECT last(lat), device FROM samples WHERE {RANGE}",
    f"SELECT last(lat), hr_bpm FROM samples WHERE {RANGE}",
    f"SELECT first(lat), hr_bpm FROM samples WHERE {RANGE} ORDER BY time DESC",
    f"SELECT min(hr_bpm), max(hr_bpm) FROM samples WHERE {RANGE} GROUP BY time(10s)",
    f"SELECT first(lat), last(lat), first(hr_bpm), last(hr_bpm) FROM samples WHERE {RANGE} GROUP BY time(10s)",
    f"SELECT first(lat), last(lat) FROM samples WHERE {RANGE} GROUP BY time(10s) ORDER BY time DESC",
    f"SELECT first(lat), hr_bpm FROM samples WHERE {RANGE}",
    f"SELECT last(lat), hr_bpm, device FROM samples WHERE {RANGE}",
    f"SELECT max(hr_bpm), spd_kph FROM samples WHERE {RANGE}",
    f"SELECT min(hr_bpm), lat FROM samples WHERE {RANGE}",
    f"SELECT last(lat), hr_bpm FROM samples WHERE {RANGE} GROUP BY time(30s)",
    f"SELECT sum(v) FROM (SELECT last(lat) AS v FROM samples WHERE {RANGE} GROUP BY time(10s))",
    f"SELECT cumulative_sum(first(lat)) FROM samples WHERE {RANGE} GROUP BY time(10s) fill(none)",
    f"SELECT top(lat, 3) FROM samples WHERE {RANGE} AND time >= {T + 45}s",
    f"SELECT bottom(lat, 3) FROM samples WHERE {RANGE} AND time >= {T + 45}s",
    f"SELECT top(lat, 4) FROM samples WHERE {RANGE}",
    f"SELECT bottom(hr_bpm, 3) FROM samples WHERE {RANGE}",
    f"SELECT top(hr_bpm, 2) FROM samples WHERE {RANGE} GROUP BY time(30s)",
    f"SELECT top(lat, device, 2) FROM samples WHERE {RANGE}",
    f"SELECT top(pwr_w, 2) FROM samples WHERE {ACROSS} LIMIT 2",
    f"SELECT top(pwr_w, 3) FROM samples WHERE {ACROSS} LIMIT 1 OFFSET 1",
    f"SELECT bottom(pwr_w, 2) FROM samples WHERE {ACROSS} LIMIT 3",
    f"SELECT top(pwr_w, 1) FROM samples WHERE {ACROSS} GROUP BY time(20s) LIMIT 2",
    f"SELECT bottom(pwr_w, 1) FROM samples WHERE {ACROSS} GROUP BY time(20s) LIMIT 2 OFFSET 2",
    f"SELECT top(pwr_w, 2) FROM samples WHERE {ACROSS} ORDER BY time DESC LIMIT 2",
    f"SELECT top(pwr_w, 2) FROM samples WHERE {ACROSS}",
    f"SELECT top(pwr_w, device, 1) FROM samples WHERE {ACROSS} GROUP BY time(20s) LIMIT 3",
    f"SELECT top(lat, 3), hr_bpm FROM samples WHERE {RANGE} LIMIT 3",
    f"SELECT bottom(pwr_w, 1), device FROM samples WHERE {ACROSS} GROUP BY time(20s) LIMIT 2 OFFSET 1",
    f"SELECT bottom(lat, device, 2) FROM samples WHERE {RANGE} LIMIT 2",
    # fill(previous) beside a selector: every column carries its value into the rows that lack one
    f"SELECT first(lat), spd_kph FROM samples WHERE {RANGE} GROUP BY time(5s) fill(previous)",
    f"SELECT max(hr_bpm), spd_kph * 2, lat FROM samples WHERE {RANGE} GROUP BY time(5s) fill(previous)",
    f"SELECT last(lat), spd_kph FROM samples WHERE {RANGE} GROUP BY time(5s) fill(previous) ORDER BY time DESC",
    f"SELECT top(hr_bpm, 2), spd_kph FROM samples WHERE {RANGE} GROUP BY time(20s) fill(previous)",
    f"SELECT first(lat), spd_kph FROM samples WHERE {RANGE} GROUP BY time(5s) fill(linear)",
    # a selector beside fields over series tied on value and time, bucket after bucket
    f"SELECT min(hr_bpm), spd_kph, device FROM samples WHERE {TIES} GROUP BY time(10s)",
    f"SELECT max(hr_bpm), spd_kph FROM samples WHERE {TIES} GROUP BY time(10s) ORDER BY time DESC",
    f"SELECT first(hr_bpm), spd_kph, device FROM samples WHERE {TIES} GROUP BY time(20s)",
    f"SELECT last(hr_bpm), device FROM samples WHERE {TIES} GROUP BY time(10s) fill(previous)",
    # a percentile bucket whose points give no rank ends that percentile's buckets (InfluxDB's reduce iterator)
    f"SELECT percentile(pwr_w, 40) FROM samples WHERE device = 'z' AND time >= {BOUNDARY - 50}s AND time < {BOUNDARY + 70}s GROUP BY time(20s)",
    f"SELECT percentile(pwr_w, 40) FROM samples WHERE device = 'z' AND time >= {BOUNDARY - 60}s AND time < {BOUNDARY + 70}s GROUP BY time(20s) fill(0)",
    f"SELECT percentile(pwr_w, 40) FROM samples WHERE device = 'z' AND time >= {BOUNDARY - 60}s AND time < {BOUNDARY + 55}s GROUP BY time(20s) ORDER BY time DESC",
    # integral(): the trapezoids split at bucket bounds, each area stamped where InfluxDB stamps it
    f"SELECT integral(lat) FROM samples WHERE {RANGE} AND device = 'a' GROUP BY time(10s)",
    f"SELECT integral(lat, 1m) FROM samples WHERE {RANGE} AND device = 'a' GROUP BY time(20s, 5s) ORDER BY time DESC",
    f"SELECT integral(pwr_w, 1m) FROM samples WHERE {ACROSS} GROUP BY time(30s) fill(-1)",
    f"SELECT integral(pwr_w) FROM samples WHERE {ACROSS}",
    # a subquery's series at one time, latest first: still in tag order
    f"SELECT v FROM (SELECT max(hr_bpm) AS v FROM samples WHERE {RANGE} AND device != 'd' GROUP BY time(30s), device) ORDER BY time DESC",
    f"SELECT v, device FROM (SELECT last(lat) AS v FROM samples WHERE {RANGE} AND device != 'd' GROUP BY time(30s), device) ORDER BY time DESC LIMIT 4",
    # over a subquery's points InfluxDB's reducers decide: at equal times the larger value
    f"SELECT first(v), last(v) FROM (SELECT lat AS v FROM samples WHERE {RANGE})",
    # the stddev of one point over a subquery: a row without a value
    f"SELECT stddev(v) FROM (SELECT max(lat) AS v FROM samples WHERE {RANGE} AND device = 'a' GROUP BY time(1m))",
    f"SELECT stddev(v) FROM (SELECT lat AS v FROM samples WHERE {RANGE} AND device = 'a' AND time < {T + 3}s)",
    # count() of an empty bucket: 0 with fill(null) in the answer, but no point inside a subquery
    f"SELECT count(lat) FROM samples WHERE {RANGE} GROUP BY time(5s)",
    f"SELECT v FROM (SELECT count(lat) AS v FROM samples WHERE {RANGE} GROUP BY time(5s))",
    f"SELECT count(v), sum(v) FROM (SELECT count(lat) AS v FROM samples WHERE {RANGE} GROUP BY time(5s) fill(null))",
    f"SELECT v FROM (SELECT count(lat) AS v FROM samples WHERE {RANGE} GROUP BY time(5s) fill(0))",
    f"SELECT mean(v) FROM (SELECT count(hr_bpm) AS v FROM samples WHERE {RANGE} GROUP BY time(5s), device)",
]


@pytest.fixture
async def both(client: TestClient, add_user: AddUser, influxd: InfluxdProcess) -> tuple[TestClient, InfluxdProcess]:
    await add_user(USER, PASSWORD)
    body = "\n".join(_lines()).encode()
    resp = await client.post(f"/write?db={USER}&precision=s", data=body, headers=basic(USER, PASSWORD))
    assert resp.status == 204, await resp.text()
    if not _has_user(influxd):
        influxd.add_user(USER, PASSWORD)
        influxd.write(USER, body, auth=(USER, PASSWORD), precision="s")
    return client, influxd


def _influxd_answer(influxd: InfluxdProcess, q: str) -> Any:
    """influxd's JSON as it is, errors inside a statement's result included."""
    request = urllib.request.Request(
        f"{influxd.url}/query", data=urllib.parse.urlencode({"q": q, "db": USER}).encode(),
        headers={"Authorization": basic_header(USER, PASSWORD)},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _has_user(influxd: InfluxdProcess) -> bool:
    answer = influxd.query("SHOW USERS")
    return any(row[0] == USER for row in answer["results"][0].get("series", [{}])[0].get("values", []))


@pytest.mark.parametrize("q", QUERIES)
async def test_selector_values_are_influxdbs(both: tuple[TestClient, InfluxdProcess], q: str) -> None:
    client, influxd = both
    expected = _influxd_answer(influxd, q)
    resp = await client.get("/query", params={"q": q, "db": USER}, headers=basic(USER, PASSWORD))
    assert resp.status == 200, await resp.text()
    ours: Any = json.loads(await resp.read())
    assert same(ours, expected), f"{q}\n  influxdb: {expected}\n  tracker:  {ours}"
