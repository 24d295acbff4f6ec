"""Clauses and numerics of /query checked against a real InfluxDB 1.x: the same samples go to both, and
every query here must answer the same JSON (floats to 1e-12 relative). stddev's precision on values
with a small spread, count's nulls, the order of rows of several series at one time, SLIMIT/SOFFSET,
tz(); and one set of queries answered the same for every epoch, chunked or not, GET or POST, alone or
several in one request."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import AddUser, basic
from tests.influxd import InfluxdProcess

AUTH = basic("test", "test1234")
S = 1_000_000_000
T0 = 1_711_839_600 * S  # 2024-03-30T23:00:00Z: two hours across Berlin's change to summer time (01:00Z)
RANGE = "time >= '2024-03-30T23:00:00Z' AND time < '2024-03-31T01:00:00Z'"
WEEKS = "time >= '2024-03-20T00:00:00Z' AND time < '2024-04-12T00:00:00Z'"
AUTUMN = "time >= '2024-10-19T00:00:00Z' AND time < '2024-11-06T00:00:00Z'"


def _samples() -> str:
    """Seeded: device b before a (so series ids and series keys sort differently), both at the same
    times every 4 s; lat/lng near 52.5/13.4 with a spread of 1e-5; cadence only in b's first hour;
    one daily value of c around both of Berlin's clock changes in 2024."""
    rng = random.Random(20240331)
    lines = []
    for i in range(0, 7200, 2):
        t = T0 + i * S
        if i % 4 == 0:
            cad = f",cad_rpm={rng.randint(60, 95)}" if i < 3600 else ""
            lines.append(f"samples,device=b lat={52.5 + rng.random() * 1e-5!r},alt_m={rng.uniform(30, 40)!r}{cad} {t}")
        lines.append(
            f"samples,device=a lat={52.5 + rng.random() * 1e-5!r},lng={13.4 + rng.random() * 1e-5!r},"
            f"hr_bpm={rng.randint(90, 170)} {t}"
        )
    for i in range(-20, 20, 2):  # both at one time across a shard boundary (InfluxDB's are Mondays)
        t = 1_711_929_600 * S + i * S  # 2024-04-01T00:00:00Z
        lines.append(f"samples,device=b lat={52.5 + rng.random() * 1e-5!r} {t}")
        lines.append(f"samples,device=a lat={52.5 + rng.random() * 1e-5!r} {t}")
    for day in list(range(80, 100)) + list(range(292, 310)):  # 2024-03-21.. and 2024-10-19..
        t = (1_704_067_200 + day * 86_400 + 3_600 * (day % 24)) * S
        lines.append(f"samples,device=c alt_m={day} {t}")
    return "\n".join(lines)


DATA = _samples()


@pytest.fixture(scope="module")
def influx(influxd: InfluxdProcess) -> InfluxdProcess:
    """The shared real InfluxDB (skipped where it is not installed), with this module's samples in "test"."""
    influxd.create_database("test")
    influxd.write("test", DATA)
    return influxd


@pytest.fixture
async def loaded(client: TestClient, add_user: AddUser) -> TestClient:
    await add_user("test", "test1234")
    resp = await client.post("/write?db=test", data=DATA, headers=AUTH)
    assert resp.status == 204, await resp.text()
    return client


async def tracker_query(client: TestClient, q: str, **params: str) -> Any:
    resp = await client.get("/query", params={"q": q, "db": "test", **params}, headers=AUTH)
    return json.loads(await resp.read())


def same(ours: Any, theirs: Any, where: str = "") -> None:
    """Equal JSON, floats to 1e-12 relative (an integer-valued float is written as an integer by both)."""
    if isinstance(ours, float) or isinstance(theirs, float):
        assert isinstance(ours, (int, float)) and isinstance(theirs, (int, float)), (where, ours, theirs)
        assert math.isclose(ours, theirs, rel_tol=1e-12, abs_tol=0), (where, ours, theirs)
    elif isinstance(ours, dict) and isinstance(theirs, dict):
        assert sorted(ours) == sorted(theirs), (where, ours, theirs)
        for key in ours:
            same(ours[key], theirs[key], f"{where}.{key}")
    elif isinstance(ours, list) and isinstance(theirs, list):
        assert len(ours) == len(theirs), (where, ours, theirs)
        for n, (a, b) in enumerate(zip(ours, theirs)):
            same(a, b, f"{where}[{n}]")
    else:
        assert ours == theirs, (where, ours, theirs)


async def check(client: TestClient, influx: InfluxdProcess, q: str, **params: str) -> Any:
    _, theirs = influx.request(q, db="test", **params)
    ours = await tracker_query(client, q, **params)
    try:
        same(ours, theirs, q)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nTracker:  {json.dumps(ours)[:3000]}\nInfluxDB: {json.dumps(theirs)[:3000]}") from None
    return theirs


# -- stddev: two passes, as InfluxDB -----------------------------------------------------------------

STDDEV = [
    f"SELECT stddev(lat), stddev(lng) FROM samples WHERE {RANGE}",
    f"SELECT stddev(lat), stddev(lng), mean(lat) FROM samples WHERE {RANGE} GROUP BY device",
    f"SELECT stddev(lat), stddev(lng) FROM samples WHERE {RANGE} GROUP BY time(10m), device",
    f"SELECT stddev(lat) FROM samples WHERE {RANGE} GROUP BY time(1m)",
    f"SELECT stddev(lat) FROM samples WHERE {RANGE} GROUP BY time(4s) LIMIT 20",  # some buckets of one value
    f"SELECT stddev(lat) FROM samples WHERE {RANGE} AND hr_bpm > 120 GROUP BY time(10m) fill(none)",  # SQL path
    f"SELECT stddev(lat) * 1000000, spread(lat) FROM samples WHERE {RANGE} AND device = 'b' GROUP BY time(15m)",
    f"SELECT stddev(alt_m) FROM samples WHERE {WEEKS} AND device = 'c' GROUP BY time(1d)",  # one value a day: null
    f"SELECT stddev(alt_m) FROM samples WHERE time >= '2024-03-25T00:00:00Z' AND time < '2024-03-26T00:00:00Z'",
    # a bucket of one value is a point without a value: fill() leaves it, fill(previous) carries it
    f"SELECT stddev(alt_m), sum(alt_m) FROM samples WHERE {AUTUMN} GROUP BY time(6h), * fill(0)",
    f"SELECT stddev(alt_m) FROM samples WHERE {AUTUMN} GROUP BY time(6h) fill(previous)",
    f"SELECT stddev(alt_m) FROM samples WHERE {AUTUMN} GROUP BY time(6h) fill(linear)",
    f"SELECT stddev(alt_m) * 2 FROM samples WHERE {AUTUMN} GROUP BY time(1d)",
]


@pytest.mark.parametrize("epoch", [None, "ms"])
async def test_stddev_is_influxdbs(loaded: TestClient, influx: InfluxdProcess, epoch: str | None) -> None:
    for q in STDDEV:
        await check(loaded, influx, q, **({"epoch": epoch} if epoch else {}))
    # The precision the one-pass formula lost: InfluxDB's answer is the two-pass one.
    values = [
        float(line.split("lat=")[1].split(",")[0].split(" ")[0])
        for line in DATA.splitlines()
        if "device=a" in line and T0 <= int(line.rsplit(" ", 1)[1]) < T0 + 7200 * S
    ]
    answer = await tracker_query(loaded, f"SELECT stddev(lat) FROM samples WHERE {RANGE} AND device = 'a'")
    assert math.isclose(answer["results"][0]["series"][0]["values"][0][1], _two_pass_stddev(values), rel_tol=1e-12)


def _two_pass_stddev(values: list[float]) -> float:
    mean = math.fsum(values) / len(values)
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))


# -- count: null where the series has no values of the field -----------------------------------------

COUNT = [
    f"SELECT count(cad_rpm), sum(alt_m) FROM samples WHERE {RANGE} GROUP BY device",
    f"SELECT count(cad_rpm) FROM samples WHERE {RANGE} GROUP BY device",
    f"SELECT count(cad_rpm), count(hr_bpm), mean(alt_m) FROM samples WHERE {RANGE}",
    f"SELECT count(cad_rpm) FROM samples WHERE time >= '2024-03-31T00:30:00Z' AND time < '2024-03-31T01:00:00Z'",
] + [
    f"SELECT count(cad_rpm){other} FROM samples WHERE {RANGE} GROUP BY time(10m), device fill({fill})"
    for other in ("", ", mean(hr_bpm)", ", max(alt_m)")
    for fill in ("null", "none", "0", "previous", "linear", "-1", "2.7")
] + [
    # without fill, LIMIT and OFFSET page each column's own buckets before they join into rows
    f"SELECT count(cad_rpm), sum(cad_rpm), count(lat) FROM samples WHERE {RANGE} GROUP BY time(5m) fill(none) "
    "ORDER BY time DESC OFFSET 1",
    f"SELECT count(alt_m), sum(lng), stddev(alt_m) FROM samples WHERE {WEEKS} GROUP BY time(6h) fill(none) LIMIT 3",
    f"SELECT count(alt_m), sum(lng) FROM samples WHERE {WEEKS} GROUP BY time(6h), device fill(none) LIMIT 2 OFFSET 1",
    # counts are whole numbers: fill(linear) and a fractional fill() truncate them
    f"SELECT count(lat), mean(lat) FROM samples WHERE {WEEKS} GROUP BY time(1h), device fill(linear)",
    f"SELECT count(lat), mean(lat) FROM samples WHERE {RANGE} GROUP BY time(1m), device fill(-2.5)",
] + [
    # a field filter takes the SQL path
    f"SELECT count(cad_rpm), mean(alt_m) FROM samples WHERE {RANGE} AND alt_m > 35 GROUP BY time(10m), device",
    f"SELECT count(cad_rpm), mean(alt_m) FROM samples WHERE {RANGE} AND alt_m > 35 GROUP BY time(10m), device fill(none)",
    f"SELECT count(cad_rpm), mean(alt_m) FROM samples WHERE {RANGE} AND alt_m > 35 GROUP BY device",
    f"SELECT count(alt_m) FROM samples WHERE {RANGE} AND device = 'c' GROUP BY time(1h)",  # nothing at all
    # one selector written twice still answers the time of its point
    f"SELECT min(lng), min(lng) FROM samples WHERE {RANGE} AND device =~ /a|c/",
    f"SELECT max(lat) AS x, max(lat) AS y FROM samples WHERE {RANGE} GROUP BY device",
    # fill(<number>) over a field no shard in range holds: only aggregates that are numbers anyway fill
    f"SELECT mean(lat), median(lat), count(lat), sum(lat), max(lat), min(lat), spread(lat), stddev(lat), first(lat), "
    f"last(lat), max(alt_m) FROM samples WHERE {AUTUMN} GROUP BY time(1d) fill(0)",
    f"SELECT sum(lat), max(alt_m), sum(cad_rpm) FROM samples WHERE {RANGE} GROUP BY time(30m), device fill(-1)",
    f"SELECT sum(nope), count(nope), max(alt_m) FROM samples WHERE {AUTUMN} GROUP BY time(1d) fill(7)",
]


async def test_count_nulls_are_influxdbs(loaded: TestClient, influx: InfluxdProcess) -> None:
    for q in COUNT:
        await check(loaded, influx, q)


# -- rows of several series at one time ---------------------------------------------------------------

# InfluxDB merges the series with a heap per shard: its order of rows at one time depends on what came
# before, and on the selected tags that sort before the first selected field.
ORDER = [
    f"SELECT {columns} FROM samples WHERE {RANGE} {order} {page}"
    for columns in ("lat, device", "device, hr_bpm, lat", "lat", "*", "lat AS x, hr_bpm AS y", "alt_m, hr_bpm")
    for order in ("", "ORDER BY time DESC")
    for page in ("LIMIT 7", "LIMIT 5 OFFSET 3", "")
] + [
    f"SELECT {columns} FROM samples WHERE time >= '2024-03-31T23:59:00Z' AND time < '2024-04-01T01:00:00Z' {order}"
    for columns in ("lat", "*")  # two shards
    for order in ("", "ORDER BY time DESC")
] + [
    f"SELECT lat FROM samples WHERE time >= '2024-03-20T00:00:00Z' {order}"  # past what columns hold: SQL
    for order in ("", "ORDER BY time DESC LIMIT 100 OFFSET 3")
] + [
    # the SQL path (a field filter, arithmetic)
    f"SELECT lat, device FROM samples WHERE {RANGE} AND lat > 52.500003 ORDER BY time DESC LIMIT 9",  # SQL path
    f"SELECT lat, device FROM samples WHERE {RANGE} AND lat > 52.500003 LIMIT 9",
    f"SELECT lat + 1, device FROM samples WHERE {RANGE} ORDER BY time DESC LIMIT 9",
    f"SELECT lat + 1 FROM samples WHERE {RANGE} ORDER BY time DESC LIMIT 9",
    f"SELECT lat FROM samples WHERE {RANGE} AND lat > 52.500003 LIMIT 30 OFFSET 5",
    f"SELECT lat * 2, hr_bpm FROM samples WHERE {RANGE} AND (lat > 52.500003 OR device = 'b') LIMIT 20",
    # the first rows: both series' first points wait in the heap in series key order
    f"SELECT lat FROM samples WHERE {RANGE} LIMIT 2",
    f"SELECT lat FROM samples WHERE {RANGE} ORDER BY time DESC LIMIT 3",
]


async def test_rows_at_one_time_come_in_influxdbs_order(loaded: TestClient, influx: InfluxdProcess) -> None:
    for q in ORDER:
        answer = await check(loaded, influx, q)
        times = [row[0] for row in answer["results"][0]["series"][0]["values"]]
        assert len(set(times)) < len(times), q  # the query does see rows of two series at one time


# -- SLIMIT / SOFFSET ----------------------------------------------------------------------------------

SERIES_PAGING = [
    f"SELECT count(lat) FROM samples WHERE {RANGE} GROUP BY device SLIMIT 1",
    f"SELECT count(lat) FROM samples WHERE {RANGE} GROUP BY device SLIMIT 1 SOFFSET 1",
    f"SELECT count(lat) FROM samples WHERE {RANGE} GROUP BY device SLIMIT 2 SOFFSET 1",
    f"SELECT count(lat) FROM samples WHERE {RANGE} GROUP BY device SLIMIT 5 SOFFSET 2",
    f"SELECT count(lat) FROM samples WHERE {RANGE} GROUP BY device SLIMIT 1 SOFFSET 5",
    f"SELECT count(lat) FROM samples WHERE {RANGE} GROUP BY device SOFFSET 1",  # InfluxDB: nothing
    f"SELECT count(lat) FROM samples WHERE {RANGE} GROUP BY device SLIMIT 0",
    f"SELECT count(alt_m) FROM samples WHERE {RANGE} GROUP BY device SLIMIT 1",  # a counts, though it has no alt_m
    f"SELECT count(lat) FROM samples WHERE {RANGE} AND device != 'a' GROUP BY device SLIMIT 1",
    f"SELECT count(lat) FROM samples WHERE {RANGE} AND device =~ /[bc]/ GROUP BY device SLIMIT 1 SOFFSET 1",
    f"SELECT count(lat) FROM samples WHERE {RANGE} SLIMIT 1",
    # over several shard groups (weeks from Monday): each pages its own series; device c is alone in some
    f"SELECT count(alt_m) FROM samples WHERE {WEEKS} GROUP BY time(1d), device SLIMIT 1",
    f"SELECT spread(alt_m) FROM samples WHERE {WEEKS} GROUP BY device SLIMIT 1",
    f"SELECT alt_m FROM samples WHERE {WEEKS} GROUP BY device SLIMIT 1 SOFFSET 1",
    f"SELECT * FROM samples WHERE {AUTUMN} GROUP BY device LIMIT 5 SLIMIT 1",
    f"SELECT count(lat) FROM samples WHERE {RANGE} SLIMIT 1 SOFFSET 1",
    f"SELECT mean(lat) FROM samples WHERE {RANGE} GROUP BY time(30m), device SLIMIT 1 SOFFSET 1",
    f"SELECT lat FROM samples WHERE {RANGE} GROUP BY device LIMIT 2 SLIMIT 1 SOFFSET 1",
    f"SELECT lat FROM samples WHERE {RANGE} AND lat > 52.500005 GROUP BY device LIMIT 2 SLIMIT 1",  # SQL path
    # a raw OFFSET without LIMIT: InfluxDB keeps the first OFFSET + 1 rows of each shard group, then
    # skips OFFSET rows (over one shard group: the one row at the offset, in each series)
    f"SELECT lat FROM samples WHERE {WEEKS} OFFSET 5",
    f"SELECT lat FROM samples WHERE {WEEKS} ORDER BY time DESC OFFSET 2",
    f"SELECT * FROM samples WHERE {WEEKS} GROUP BY device OFFSET 3",
    f"SELECT lat FROM samples WHERE time >= '2024-03-31T23:59:00Z' AND time < '2024-04-01T00:01:00Z' OFFSET 7",
    f"SELECT lat FROM samples WHERE time >= '2024-03-31T23:59:00Z' AND time < '2024-04-01T00:01:00Z' "
    "AND lat > 52.500003 OFFSET 2",  # SQL path
    f"SELECT lat FROM samples WHERE {RANGE} OFFSET 5",
    f"SELECT lat FROM samples WHERE {RANGE} GROUP BY device ORDER BY time DESC OFFSET 5",
    f"SELECT lat FROM samples WHERE {RANGE} AND lat > 52.500003 OFFSET 5",
    f"SELECT lat FROM samples WHERE {RANGE} LIMIT 0 OFFSET 5",
    f"SELECT count(lat) FROM samples WHERE {RANGE} GROUP BY time(10m) OFFSET 5",  # not for aggregates
    # ORDER BY time DESC answers the last series first (SLIMIT picks in ascending order first)
    f"SELECT count(lat) FROM samples WHERE {RANGE} GROUP BY time(30m), device ORDER BY time DESC",
    f"SELECT count(lat) FROM samples WHERE {RANGE} GROUP BY device ORDER BY time DESC",
    f"SELECT lat FROM samples WHERE {RANGE} GROUP BY device ORDER BY time DESC LIMIT 2 SLIMIT 1",
    f"SELECT lat FROM samples WHERE {RANGE} AND lat > 52.500005 GROUP BY device ORDER BY time DESC LIMIT 2",
    "SHOW TAG KEYS SLIMIT 1",
    "SHOW TAG KEYS SLIMIT 1 SOFFSET 1",  # taken, and without effect
]


async def test_series_paging_is_influxdbs(loaded: TestClient, influx: InfluxdProcess) -> None:
    for q in SERIES_PAGING:
        await check(loaded, influx, q)


# -- tz() ----------------------------------------------------------------------------------------------

TZ = [
    f"SELECT count(alt_m), max(alt_m) FROM samples WHERE {WEEKS} GROUP BY time(1d) tz('Europe/Berlin')",
    f"SELECT count(alt_m) FROM samples WHERE {AUTUMN} GROUP BY time(1d) tz('Europe/Berlin')",
    f"SELECT sum(alt_m) FROM samples WHERE {WEEKS} GROUP BY time(1d) fill(none) tz('Europe/Berlin')",
    f"SELECT sum(alt_m) FROM samples WHERE {AUTUMN} GROUP BY time(1d) fill(previous) tz('Europe/Berlin')",
    f"SELECT mean(alt_m) FROM samples WHERE {AUTUMN} GROUP BY time(1d) fill(linear) tz('Europe/Berlin')",
    # an offset with tz(): across a clock change InfluxDB's points and its fill() disagree on where the
    # bucket after it starts (a filled row an hour before the data's, a later day skipped)
    "SELECT count(alt_m) FROM samples WHERE time >= '2024-04-02T00:00:00Z' AND time < '2024-04-09T00:00:00Z' "
    "GROUP BY time(1d, 3h) tz('Europe/Berlin')",
    f"SELECT count(alt_m) FROM samples WHERE {WEEKS} GROUP BY time(1d, 3h) tz('Europe/Berlin')",
    f"SELECT max(alt_m) FROM samples WHERE {WEEKS} GROUP BY time(1d, 3h) fill(previous) tz('Europe/Berlin')",
    f"SELECT count(alt_m) FROM samples WHERE {AUTUMN} GROUP BY time(1d, 2h) tz('Europe/Berlin')",
    f"SELECT count(alt_m) FROM samples WHERE {AUTUMN} GROUP BY time(12h, 1h) fill(none) tz('America/New_York')",
    f"SELECT count(alt_m) FROM samples WHERE {WEEKS} GROUP BY time(1d, 3h) ORDER BY time DESC tz('Europe/Berlin')",
    f"SELECT count(alt_m) FROM samples WHERE {AUTUMN} GROUP BY time(1d, 2h) ORDER BY time DESC tz('Europe/Berlin')",
    f"SELECT count(alt_m) FROM samples WHERE {WEEKS} GROUP BY time(7d) tz('Europe/Berlin')",
    f"SELECT count(alt_m) FROM samples WHERE {WEEKS} GROUP BY time(1d) ORDER BY time DESC LIMIT 5 tz('Europe/Berlin')",
    f"SELECT count(alt_m) FROM samples WHERE {WEEKS} GROUP BY time(1d) tz('America/New_York')",
    f"SELECT count(alt_m) FROM samples WHERE {WEEKS} GROUP BY time(1d) tz('Asia/Kolkata')",
    f"SELECT count(alt_m) FROM samples WHERE {WEEKS} GROUP BY time(1d) tz('UTC')",
    f"SELECT count(lat), mean(hr_bpm) FROM samples WHERE {RANGE} GROUP BY time(1h), device tz('Europe/Berlin')",
    f"SELECT count(lat) FROM samples WHERE {RANGE} GROUP BY time(20m) tz('America/St_Johns')",
    f"SELECT count(lat) FROM samples WHERE {RANGE} AND lat > 52.500005 GROUP BY time(30m) tz('Europe/Berlin')",  # SQL
    f"SELECT count(lat) FROM samples WHERE {RANGE} tz('Europe/Berlin')",
    f"SELECT max(lat) FROM samples WHERE {RANGE} tz('Europe/Berlin')",
    f"SELECT count(lat) FROM samples tz('Europe/Berlin')",
    f"SELECT lat, device FROM samples WHERE {RANGE} LIMIT 3 tz('Europe/Berlin')",
    f"SELECT lat, device FROM samples WHERE time >= '2024-03-31T00:59:55Z' LIMIT 6 tz('Europe/Berlin')",
    f"SELECT lat, device FROM samples WHERE {RANGE} AND lat > 52.500005 LIMIT 3 tz('Asia/Kolkata')",  # SQL path
    f"SELECT alt_m FROM samples WHERE {AUTUMN} tz('America/St_Johns')",
    f"SELECT stddev(lat), count(cad_rpm) FROM samples WHERE {RANGE} GROUP BY time(15m), device fill(0) tz('Europe/Berlin')",
    "SELECT count(alt_m) FROM samples WHERE time < '2024-04-03T00:00:00Z' GROUP BY time(1d) tz('Europe/Berlin')",
    f"SELECT count(alt_m) FROM samples WHERE {WEEKS} GROUP BY time(12h) tz('Europe/Berlin')",
    f"SELECT count(alt_m) FROM samples WHERE {AUTUMN} GROUP BY time(6h) fill(none) tz('Europe/London')",
    # fill(linear) counts in whole intervals (Go's integer division), so buckets of 5 h weigh as 6 h
    f"SELECT mean(lat), spread(lng) FROM samples WHERE {WEEKS} GROUP BY time(6h), * fill(linear) tz('Europe/Berlin')",
    f"SELECT max(alt_m) FROM samples WHERE {AUTUMN} GROUP BY time(1h) fill(linear) tz('America/New_York')",
]


@pytest.mark.parametrize("epoch", [None, "s"])
async def test_time_zones_are_influxdbs(loaded: TestClient, influx: InfluxdProcess, epoch: str | None) -> None:
    for q in TZ:
        await check(loaded, influx, q, **({"epoch": epoch} if epoch else {}))


# Functions, transformations and subqueries under the same clauses: tz()'s buckets, SLIMIT/SOFFSET's
# series, DESC's order of series, count's nulls and stddev's lone values.
WITH_FUNCTIONS = [
    f"SELECT derivative(mean(alt_m)) FROM samples WHERE {WEEKS} GROUP BY time(1d) tz('Europe/Berlin')",
    f"SELECT derivative(mean(alt_m), 1h) FROM samples WHERE {AUTUMN} GROUP BY time(1d) tz('Europe/Berlin')",
    f"SELECT non_negative_difference(max(alt_m)) FROM samples WHERE {AUTUMN} GROUP BY time(1d) fill(none) tz('Europe/Berlin')",
    f"SELECT cumulative_sum(count(alt_m)) FROM samples WHERE {WEEKS} GROUP BY time(1d) tz('Europe/Berlin')",
    f"SELECT percentile(alt_m, 50) FROM samples WHERE {WEEKS} GROUP BY time(1d) tz('Europe/Berlin')",
    f"SELECT mode(alt_m), count(alt_m) + 1 FROM samples WHERE {AUTUMN} GROUP BY time(1d) fill(0) tz('Europe/Berlin')",
    f"SELECT percentile(lat, 95) FROM samples WHERE {RANGE} GROUP BY time(20m) tz('Europe/Berlin')",
    f"SELECT alt_m * 2 FROM samples WHERE {AUTUMN} tz('Europe/Berlin')",
    "SELECT percentile(alt_m, 50) FROM samples WHERE time < '2024-04-05T00:00:00Z' GROUP BY time(1d) tz('Europe/Berlin')",
    f"SELECT top(alt_m, 2) FROM samples WHERE {AUTUMN} GROUP BY time(7d) tz('Europe/Berlin')",
    f"SELECT max(alt_m), device FROM samples WHERE {AUTUMN} GROUP BY time(2d) tz('Europe/Berlin')",
    f"SELECT percentile(lat, 95) FROM samples WHERE {RANGE} GROUP BY device SLIMIT 1",
    f"SELECT percentile(lat, 95) FROM samples WHERE {RANGE} GROUP BY device SLIMIT 1 SOFFSET 1",
    f"SELECT derivative(mean(lat), 1m) FROM samples WHERE {RANGE} GROUP BY time(10m), device SLIMIT 1 SOFFSET 1",
    f"SELECT median(lat) * 2 FROM samples WHERE {RANGE} GROUP BY time(30m), device ORDER BY time DESC",
    f"SELECT abs(count(cad_rpm)) FROM samples WHERE {RANGE} GROUP BY device",
    # rows of two series at one time, as InfluxDB's merge of series orders them, under math and transformations
    f"SELECT round(lat * 1000000) FROM samples WHERE {RANGE} LIMIT 40",
    f"SELECT difference(lat) FROM samples WHERE {RANGE} ORDER BY time DESC LIMIT 40",
    "SELECT lat - 52.5, device FROM samples WHERE time >= '2024-03-31T23:59:40Z' AND time < '2024-04-01T00:00:20Z'",
    f"SELECT max(v) FROM (SELECT mean(lat) AS v FROM samples WHERE {RANGE} GROUP BY time(10m), device) GROUP BY device SLIMIT 1",
    f"SELECT max(v) FROM (SELECT mean(lat) AS v FROM samples WHERE {RANGE} GROUP BY time(10m), device) GROUP BY device "
    "ORDER BY time DESC",
    f"SELECT count(v) FROM (SELECT max(alt_m) AS v FROM samples GROUP BY time(1d) tz('Europe/Berlin')) WHERE {WEEKS} "
    "GROUP BY time(7d)",
]


async def test_functions_and_subqueries_follow_the_clauses(loaded: TestClient, influx: InfluxdProcess) -> None:
    for q in WITH_FUNCTIONS:
        await check(loaded, influx, q)


async def test_a_day_across_the_clock_change_is_23_hours(loaded: TestClient, influx: InfluxdProcess) -> None:
    q = f"SELECT count(alt_m) FROM samples WHERE {WEEKS} GROUP BY time(1d) tz('Europe/Berlin')"
    rows = (await check(loaded, influx, q, epoch="s"))["results"][0]["series"][0]["values"]
    lengths = {rows[n][0]: rows[n + 1][0] - rows[n][0] for n in range(len(rows) - 1)}
    assert lengths[1_711_839_600] == 23 * 3600  # 2024-03-31T00:00:00+01:00 to 2024-04-01T00:00:00+02:00
    names = await tracker_query(loaded, q)
    assert ["2024-03-31T00:00:00+01:00", "2024-04-01T00:00:00+02:00"] in [
        [a[0], b[0]] for a, b in zip(names["results"][0]["series"][0]["values"], names["results"][0]["series"][0]["values"][1:])
    ]


# -- one answer, every way of asking -------------------------------------------------------------------

EVERY_WAY = [
    STDDEV[2], COUNT[0], COUNT[5], ORDER[1], SERIES_PAGING[1], SERIES_PAGING[13], TZ[0], TZ[17], TZ[18],
    f"SELECT mean(hr_bpm), count(cad_rpm) FROM samples WHERE {RANGE} GROUP BY time(1m), device fill(previous)",
    f"SELECT * FROM samples WHERE {RANGE} AND device = 'b' ORDER BY time DESC LIMIT 50",
    "SHOW TAG VALUES WITH KEY = device",
    "SELECT * FROM nowhere",
]
EPOCHS = {"ns": 1, "u": 1_000, "ms": 1_000_000, "s": S, "m": 60 * S, "h": 3600 * S}


def _merged_chunks(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A chunked answer put back together: one result per statement, a partial series continued."""
    results: list[dict[str, Any]] = []
    for line in lines:
        (result,) = line["results"]
        result = {key: value for key, value in result.items() if key != "partial"}
        if results and results[-1]["statement_id"] == result["statement_id"]:
            last = results[-1]
            for series in result.get("series", []):
                previous = last["series"][-1]
                if previous.get("partial"):
                    previous["values"] += series["values"]
                    previous.pop("partial")
                    if series.get("partial"):
                        previous["partial"] = True
                else:
                    last["series"].append(series)
        else:
            results.append(result)
    for result in results:
        for series in result.get("series", []):
            assert not series.pop("partial", False)
    return results


async def test_every_epoch_chunk_method_and_batch_answers_the_same(loaded: TestClient, influx: InfluxdProcess) -> None:
    alone = []
    for n, q in enumerate(EVERY_WAY):
        # the reference: InfluxDB's own answer in ns
        answer = await check(loaded, influx, q, epoch="ns")
        (result,) = answer["results"]
        alone.append(result)
        for epoch, unit in EPOCHS.items():
            ours = await tracker_query(loaded, q, epoch=epoch)
            expected = json.loads(json.dumps(result))
            for series in expected.get("series", []):
                if series["columns"][0] == "time":
                    for row in series["values"]:
                        row[0] //= unit
            same(ours, {"results": [expected]}, f"{q} epoch={epoch}")
        # POST with the query in the form, and in the URL, as clients send it
        resp = await loaded.post("/query", data={"q": q, "db": "test", "epoch": "ns"}, headers=AUTH)
        same(json.loads(await resp.read()), answer, f"{q} POST form")
        resp = await loaded.post("/query", params={"q": q, "db": "test", "epoch": "ns"}, headers=AUTH)
        same(json.loads(await resp.read()), answer, f"{q} POST URL")
        for size in ("1", "7", "10000"):
            resp = await loaded.get(
                "/query", params={"q": q, "db": "test", "epoch": "ns", "chunked": "true", "chunk_size": size}, headers=AUTH
            )
            lines = [json.loads(line) for line in (await resp.text()).splitlines()]
            same({"results": _merged_chunks(lines)}, answer, f"{q} chunk_size={size}")
    # all of them in one request: the same results, numbered
    together = await tracker_query(loaded, ";\n".join(EVERY_WAY), epoch="ns")
    expected = [{**result, "statement_id": n} for n, result in enumerate(alone)]
    same(together, {"results": expected}, "several statements")
    resp = await loaded.get(
        "/query", params={"q": "; ".join(EVERY_WAY), "db": "test", "epoch": "ns", "chunked": "true", "chunk_size": "3"},
        headers=AUTH,
    )
    lines = [json.loads(line) for line in (await resp.text()).splitlines()]
    same({"results": _merged_chunks(lines)}, {"results": expected}, "several statements, chunked")
    # and InfluxDB answers the batch the same way
    same(influx.request(";\n".join(EVERY_WAY), db="test", epoch="ns")[1], {"results": expected}, "InfluxDB, several")


async def test_past_what_it_holds_the_sql_path_streams_the_same_rows(
    loaded: TestClient, influx: InfluxdProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tracker.influx import select

    monkeypatch.setattr(select, "MERGE_MAX_ROWS", 10)
    for q in (
        "SELECT lat FROM samples WHERE time >= '2024-03-20T00:00:00Z' LIMIT 50 OFFSET 7",
        "SELECT lat FROM samples WHERE time >= '2024-03-20T00:00:00Z' ORDER BY time DESC LIMIT 30 OFFSET 13",
        "SELECT lat FROM samples WHERE time >= '2024-03-20T00:00:00Z' AND lat > 52.500005",
    ):
        theirs = influx.request(q, db="test", epoch="ns")[1]["results"][0]["series"][0]["values"]
        ours = (await tracker_query(loaded, q, epoch="ns"))["results"][0]["series"][0]["values"]
        # the same rows at the same times; rows at one time may come in another order here (so at the
        # edges of the page, another of them may be the one inside)
        assert [row[0] for row in ours] == [row[0] for row in theirs], q
        edges = {ours[0][0], ours[-1][0]}
        assert sorted(tuple(r) for r in ours if r[0] not in edges) == sorted(tuple(r) for r in theirs if r[0] not in edges)


# -- generated: the clauses in combination ------------------------------------------------------------


def _generated_queries(count: int, seed: int) -> list[str]:
    """Seeded combinations of what this file is about: aggregates beside count and stddev, fills,
    GROUP BY time and tags, tz(), ORDER BY, LIMIT/OFFSET, SLIMIT/SOFFSET, raw selects across series."""
    rng = random.Random(seed)
    ranges = [RANGE, WEEKS, AUTUMN, "time >= '2024-03-31T00:30:00Z' AND time < '2024-03-31T01:30:00Z'",
              "time >= '2024-03-31T23:59:00Z' AND time < '2024-04-01T00:01:00Z'",
              "time >= '2024-03-31T00:50:00Z' AND time <= '2024-03-31T00:55:00Z'"]  # fmt: skip
    fields = ["lat", "lng", "hr_bpm", "alt_m", "cad_rpm"]
    out = []
    for _ in range(count):
        where = rng.choice(ranges)
        if rng.random() < 0.3:
            where += rng.choice([" AND device = 'a'", " AND device != 'a'", " AND device =~ /a|c/", " AND alt_m > 35",
                                 " AND hr_bpm < 130", " AND (lat > 52.500005 OR device = 'c')"])  # fmt: skip
        zone = rng.choice(["", "", " tz('Europe/Berlin')", " tz('America/New_York')", " tz('UTC')"])
        page = rng.choice(["", "", " LIMIT 3", " LIMIT 4 OFFSET 2", " OFFSET 1"])
        spage = rng.choice(["", "", "", " SLIMIT 1", " SLIMIT 2 SOFFSET 1"])
        order = rng.choice(["", "", " ORDER BY time DESC"])
        if rng.random() < 0.6:
            calls = ", ".join(
                f"{rng.choice(['count', 'stddev', 'mean', 'sum', 'max', 'spread', 'min', 'median'])}({rng.choice(fields)})"
                for _ in range(rng.randint(1, 3))
            )
            group = rng.choice(["", " GROUP BY device"])
            if rng.random() < 0.7:
                # (not past 10,000 rows a series: InfluxDB's max-row-limit would cut the answer)
                every = rng.choice(["1h", "6h", "1d"] if where.startswith((WEEKS, AUTUMN)) else ["1m", "5m", "10m", "1h"])
                shift = rng.choice(["", "", ", 7m", ", 30m"]) if every in ("1h", "6h", "1d") else ""
                group = f" GROUP BY time({every}{shift})" + rng.choice(["", ", device", ", *"])
                group += rng.choice(["", "", " fill(none)", " fill(0)", " fill(previous)", " fill(linear)", " fill(null)"])
            out.append(f"SELECT {calls} FROM samples WHERE {where}{group}{order}{page}{spage}{zone}")
        else:
            columns = rng.choice(["lat", "lat, device", "*", "hr_bpm, alt_m", "lat * 2", "alt_m, device"])
            group = rng.choice(["", "", " GROUP BY device"])
            page = " LIMIT 40" if page == "" else page
            out.append(f"SELECT {columns} FROM samples WHERE {where}{group}{order}{page}{spage}{zone}")
    return out


async def test_generated_clause_queries_answer_as_influxdb(loaded: TestClient, influx: InfluxdProcess) -> None:
    failures = []
    queries = _generated_queries(300, 20241027)
    for q in queries:
        for epoch in ([None] if "tz(" in q else []) + ["ms"]:
            try:
                await check(loaded, influx, q, **({"epoch": epoch} if epoch else {}))
            except AssertionError as exc:
                failures.append(f"{q} [{epoch}]: {str(exc)[:2000]}")
    assert not failures, f"{len(failures)} of {len(queries)} differ:\n" + "\n\n".join(failures[:5])
