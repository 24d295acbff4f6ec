"""Real clients against a real Tracker process.

One `tracker serve` subprocess for the whole module, its users made with the real CLI. It is driven by
the unmodified `influxdb` (1.x) and `influxdb-client` (2.x API) packages, and by the exact HTTP
requests Grafana's InfluxQL data source and Telegraf's influxdb output send. Writes are checked by
reading the committed SQLite file through a SampleStore of our own, as another process would.

Every test works in its own day of time (`slot(n)`), so tests do not see each other's samples;
the only tagged samples in the module are the Grafana data set's and Telegraf's (devices watch/bike),
so the SHOW TAG VALUES answer is known exactly.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import http.client
import json
import urllib.parse
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterator

import influxdb
import influxdb_client
import pytest
from influxdb.exceptions import InfluxDBClientError
from influxdb_client import Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

from tests.tracker_process import TrackerProcess
from tracker.storage import SampleStore

PASSWORD = "test1234"
OTHER_PASSWORD = "other-pass 1"  # a space: the CLI keeps everything but the line ending
STARTUP_SECONDS = 10.0
SHUTDOWN_SECONDS = 10.0

SECOND = 10**9
DAY = 86_400 * SECOND
BASE_NS = 1_699_920_000 * SECOND  # 2023-11-14T00:00:00Z, a midnight
PRECISION_NS = {None: 1, "n": 1, "u": 1_000, "ms": 1_000_000, "s": SECOND, "m": 60 * SECOND, "h": 3600 * SECOND}
UNKNOWN_FIELD_REASON = (
    'field "{key}": unknown field key; allowed: dur_s, dist_km, lat, lng, acc_m, bearing, battery, '
    "gsm_signal, temp_c, spd_kph, alt_m, hr_bpm, cad_rpm, pwr_w, pwr_w_l, pwr_w_r (lon = lng)"
)


def slot(n: int) -> int:
    """The first ns of test `n`'s own day."""
    return BASE_NS + n * DAY


# Which test owns which day (keeps the data of the tests apart).
SLOT_PRECISION = {None: 0, "n": 1, "u": 2, "ms": 3, "s": 4, "m": 5, "h": 6}
SLOT_GZIP, SLOT_BATCH, SLOT_BAD_POINT, SLOT_REFUSED = 7, 8, 9, 10
SLOT_QUERY_POINTS, SLOT_QUERY_MEAN = 11, 12
SLOT_V2 = {WritePrecision.NS: 13, WritePrecision.US: 14, WritePrecision.MS: 15, WritePrecision.S: 16}
SLOT_V2_BAD, SLOT_GRAFANA, SLOT_TELEGRAF, SLOT_SHARED = 17, 18, 19, 20


# ----- the server process -------------------------------------------------------------------------


Server = TrackerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("clients")
    server = TrackerProcess(root / "data", root / "server.log")
    server.add_user("test", PASSWORD)
    server.add_user("other", OTHER_PASSWORD)
    server.start(timeout=STARTUP_SECONDS)
    try:
        yield server
        server.stop(timeout=SHUTDOWN_SECONDS)  # asserts a clean exit
    finally:
        server.close()
    # A real client's request must never hit an unhandled error (a 500 with a traceback in the log).
    assert "Traceback" not in server.log(), f"the server logged an unhandled error:\n{server.log()}"


# ----- helpers --------------------------------------------------------------------------------------


def stored(server: Server, user: str, start: int, end: int) -> list[tuple[int, dict[str, str], dict[str, float]]]:
    """(time, tags, fields) committed in the user's file for start <= time < end."""

    async def read() -> list[tuple[int, dict[str, str], dict[str, float]]]:
        store = SampleStore(server.data_dir)
        try:
            rows = []
            async for batch in store.read_range(user, start, end):
                rows.extend((sample.time, sample.tags, sample.fields) for sample in batch)
            return rows
        finally:
            await store.close()

    return asyncio.run(read())


def stored_day(server: Server, n: int, user: str = "test") -> list[tuple[int, dict[str, str], dict[str, float]]]:
    return stored(server, user, slot(n), slot(n) + DAY)


def basic_auth(user: str = "test", password: str = PASSWORD) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        gzipped = self.headers.get("Content-Encoding", "") == "gzip"
        return json.loads(gzip.decompress(self.body) if gzipped else self.body)


def request(
    server: Server,
    method: str,
    path: str,
    params: dict[str, str] | None = None,
    *,
    body: bytes | Iterator[bytes] | None = None,
    headers: dict[str, str] | None = None,
    chunked: bool = False,
) -> Reply:
    url = path + ("?" + urllib.parse.urlencode(params, quote_via=urllib.parse.quote) if params else "")
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        conn.request(method, url, body=body, headers=headers or {}, encode_chunked=chunked)
        response = conn.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        conn.close()


def rfc3339(ns: int) -> str:
    """Go's RFC3339Nano, as InfluxDB writes times when no epoch is asked for."""
    seconds, fraction = divmod(ns, SECOND)
    text = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    if fraction:
        text += "." + f"{fraction:09d}".rstrip("0")
    return text + "Z"


@pytest.fixture
def v1(server: Server) -> Iterator[influxdb.InfluxDBClient]:
    client = influxdb.InfluxDBClient(server.host, server.port, "test", PASSWORD, "test")
    yield client
    client.close()


def sample_fields(k: int) -> dict[str, float]:
    """The k-th sample's fields, as written and as they must come back."""
    return {"hr_bpm": 120.0 + k, "pwr_w": 200.5 + k, "lat": 47.123456 + k / 1000, "lng": -122.25 - k / 1000}


def sample_point(t: int, k: int) -> dict[str, Any]:
    return {"measurement": "samples", "time": t, "fields": sample_fields(k)}


def error_of(exc: InfluxDBClientError) -> str:
    """The `error` text of an InfluxDB error body the client put in the exception."""
    body = json.loads(exc.content)
    assert set(body) == {"error"}, body
    return body["error"]


# ----- influxdb (the 1.x Python client) ---------------------------------------------------------------


def test_v1_ping_returns_version(v1: influxdb.InfluxDBClient) -> None:
    assert v1.ping() == "1.8.10"


@pytest.mark.parametrize("precision", [None, "n", "u", "ms", "s", "m", "h"])
def test_v1_write_points_each_precision(server: Server, v1: influxdb.InfluxDBClient, precision: str | None) -> None:
    n = SLOT_PRECISION[precision]
    unit = PRECISION_NS[precision]
    first = slot(n) // unit  # the timestamp as the client is told to send it: in `precision` units
    points = [sample_point(first + k, k) for k in range(3)]
    assert v1.write_points(points, time_precision=precision) is True
    assert stored_day(server, n) == [(slot(n) + k * unit, {}, sample_fields(k)) for k in range(3)]


def test_v1_write_points_gzip(server: Server) -> None:
    client = influxdb.InfluxDBClient(server.host, server.port, "test", PASSWORD, "test", gzip=True)
    try:
        points = [sample_point(slot(SLOT_GZIP) // 1000 + k, k) for k in range(5)]
        assert client.write_points(points, time_precision="u") is True
    finally:
        client.close()
    assert stored_day(server, SLOT_GZIP) == [(slot(SLOT_GZIP) + k * 1000, {}, sample_fields(k)) for k in range(5)]


def test_v1_write_points_batch_size(server: Server, v1: influxdb.InfluxDBClient) -> None:
    # 25 points in batches of 10: three requests, every one must answer exactly 204.
    points = [sample_point(slot(SLOT_BATCH) // SECOND + k, k) for k in range(25)]
    assert v1.write_points(points, time_precision="s", batch_size=10) is True
    assert stored_day(server, SLOT_BATCH) == [(slot(SLOT_BATCH) + k * SECOND, {}, sample_fields(k)) for k in range(25)]


def test_v1_unknown_field_is_400_naming_the_field(server: Server, v1: influxdb.InfluxDBClient) -> None:
    t = slot(SLOT_BAD_POINT)
    with pytest.raises(InfluxDBClientError) as caught:
        v1.write_points([{"measurement": "samples", "time": t, "fields": {"bogus": 1.5}}])
    assert caught.value.code == 400
    line = f"samples bogus=1.5 {t}"
    assert error_of(caught.value) == f"unable to parse '{line}': line 1: " + UNKNOWN_FIELD_REASON.format(key="bogus")
    assert stored_day(server, SLOT_BAD_POINT) == []

    # One good point beside a bad one: InfluxDB's partial write, the good one is kept.
    good = sample_point(t + 1, 0)
    bad = {"measurement": "samples", "time": t + 2, "fields": {"hr_bpm": 1.0, "heart": 2.0}}
    with pytest.raises(InfluxDBClientError) as caught:
        v1.write_points([good, bad])
    assert caught.value.code == 400
    bad_line = f"samples heart=2.0,hr_bpm=1.0 {t + 2}"  # the client sorts field keys
    assert error_of(caught.value) == (
        f"partial write: unable to parse '{bad_line}': line 2: "
        + UNKNOWN_FIELD_REASON.format(key="heart")
        + " dropped=1"
    )
    assert stored_day(server, SLOT_BAD_POINT) == [(t + 1, {}, sample_fields(0))]


def test_v1_wrong_password_is_401(server: Server) -> None:
    client = influxdb.InfluxDBClient(server.host, server.port, "test", "not-the-password", "test")
    try:
        with pytest.raises(InfluxDBClientError) as caught:
            client.write_points([sample_point(slot(SLOT_REFUSED), 0)])
        assert caught.value.code == 401
        assert error_of(caught.value) == "authorization failed"
        with pytest.raises(InfluxDBClientError) as caught:
            client.query("SHOW DATABASES")
        assert caught.value.code == 401
    finally:
        client.close()
    assert stored_day(server, SLOT_REFUSED) == []


def test_v1_write_to_another_users_database_is_403(server: Server, v1: influxdb.InfluxDBClient) -> None:
    with pytest.raises(InfluxDBClientError) as caught:
        v1.write_points([sample_point(slot(SLOT_REFUSED), 0)], database="other")
    assert caught.value.code == 403
    assert error_of(caught.value) == '"test" user is not authorized to write to database "other"'
    assert stored_day(server, SLOT_REFUSED, user="other") == []
    assert stored_day(server, SLOT_REFUSED, user="test") == []


def test_v1_query_returns_exactly_the_written_points(server: Server, v1: influxdb.InfluxDBClient) -> None:
    n = SLOT_QUERY_POINTS
    times = [slot(n) + 1 * SECOND, slot(n) + 2 * SECOND + 500_000_000, slot(n) + 3 * SECOND + 123_456_789]
    assert v1.write_points([sample_point(t, k) for k, t in enumerate(times)]) is True
    where = f"WHERE time >= '{rfc3339(slot(n))}' AND time < '{rfc3339(slot(n) + DAY)}'"

    # No epoch: RFC3339 strings with Go's trimmed fraction.
    result = v1.query(f"SELECT hr_bpm, pwr_w, lat, lng FROM samples {where}")
    assert list(result.keys()) == [("samples", None)]
    assert list(result.get_points()) == [{"time": rfc3339(t), **sample_fields(k)} for k, t in enumerate(times)]

    for epoch, unit in (("ns", 1), ("u", 1000), ("ms", 1_000_000), ("s", SECOND)):
        result = v1.query(f"SELECT hr_bpm, pwr_w, lat, lng FROM samples {where}", epoch=epoch)
        assert list(result.get_points()) == [
            {"time": t // unit, **sample_fields(k)} for k, t in enumerate(times)
        ], epoch

    # SELECT *: whatever columns the server lists, the values set are exactly the written ones.
    result = v1.query(f"SELECT * FROM samples {where}", epoch="ns")
    rows = list(result.get_points())
    assert [{k: v for k, v in row.items() if v is not None} for row in rows] == [
        {"time": t, **sample_fields(k)} for k, t in enumerate(times)
    ]
    assert rows and list(rows[0])[0] == "time"


def test_v1_query_group_by_time_mean(server: Server, v1: influxdb.InfluxDBClient) -> None:
    n = SLOT_QUERY_MEAN
    t0 = slot(n) // SECOND
    points = [
        {"measurement": "samples", "time": t0 + s, "fields": {"hr_bpm": hr}}
        for s, hr in ((0, 100.0), (30, 111.0), (59, 120.0), (70, 130.0), (200, 150.0), (239, 152.0))
    ]
    assert v1.write_points(points, time_precision="s") is True
    query = f"SELECT mean(hr_bpm) FROM samples WHERE time >= {t0}s AND time < {t0 + 240}s GROUP BY time(1m)"
    result = v1.query(query, epoch="s")
    assert list(result.keys()) == [("samples", None)]
    assert list(result.get_points()) == [
        {"time": t0, "mean": 110.33333333333333},
        {"time": t0 + 60, "mean": 130.0},
        {"time": t0 + 120, "mean": None},
        {"time": t0 + 180, "mean": 151.0},
    ]
    result = v1.query(query)
    assert [p["time"] for p in result.get_points()] == [rfc3339((t0 + 60 * i) * SECOND) for i in range(4)]


def test_v1_query_list_database_and_reads_follow_shares(server: Server, v1: influxdb.InfluxDBClient) -> None:
    t = slot(SLOT_SHARED)
    query = f"SELECT hr_bpm FROM samples WHERE time >= {t} AND time < {t + DAY}"
    other = influxdb.InfluxDBClient(server.host, server.port, "other", OTHER_PASSWORD, "other")
    try:
        assert other.write_points([{"measurement": "samples", "time": t, "fields": {"hr_bpm": 99.0}}]) is True
        assert v1.get_list_database() == [{"name": "test"}]
        with pytest.raises(InfluxDBClientError) as caught:
            v1.query(query, database="other")
        assert caught.value.code == 403
        assert error_of(caught.value).startswith("error authorizing query: ")

        server.cli("share", "add", "other", "test")
        try:
            # The share was made by another process; the running server sees it on the next request.
            assert v1.get_list_database() == [{"name": "test"}, {"name": "other"}]
            assert list(v1.query(query, database="other", epoch="ns").get_points()) == [{"time": t, "hr_bpm": 99.0}]
            assert other.get_list_database() == [{"name": "other"}]  # a share is one way
        finally:
            server.cli("share", "remove", "other", "test")
        assert v1.get_list_database() == [{"name": "test"}]
        with pytest.raises(InfluxDBClientError) as caught:
            v1.query(query, database="other")
        assert caught.value.code == 403
    finally:
        other.close()


def test_v1_query_with_gzip_client(server: Server) -> None:
    client = influxdb.InfluxDBClient(server.host, server.port, "test", PASSWORD, "test", gzip=True)
    try:
        assert client.get_list_database() == [{"name": "test"}]
    finally:
        client.close()


# ----- influxdb-client (the 2.x API client, against /api/v2/write) ------------------------------------


@pytest.fixture
def v2(server: Server) -> Iterator[influxdb_client.InfluxDBClient]:
    with influxdb_client.InfluxDBClient(url=server.url, token=f"test:{PASSWORD}", org="-") as client:
        yield client


V2_UNIT = {WritePrecision.NS: 1, WritePrecision.US: 1000, WritePrecision.MS: 1_000_000, WritePrecision.S: SECOND}


def test_v2_ping_and_version(v2: influxdb_client.InfluxDBClient) -> None:
    assert v2.ping() is True
    assert v2.version() == "1.8.10"


@pytest.mark.parametrize("precision", list(V2_UNIT))
@pytest.mark.parametrize("bucket", ["test", "test/autogen"])
def test_v2_write_point_and_lines(
    server: Server, v2: influxdb_client.InfluxDBClient, precision: WritePrecision, bucket: str
) -> None:
    n = SLOT_V2[precision]
    unit = V2_UNIT[precision]
    # The two buckets of one precision share a day: each writes its own hour of it.
    start = slot(n) + (3600 * SECOND if bucket == "test" else 0)
    first = start // unit
    write_api = v2.write_api(write_options=SYNCHRONOUS)
    write_api.write(bucket=bucket, record=Point("samples").field("hr_bpm", 150.0).time(first, precision))
    write_api.write(
        bucket=bucket,
        record=[f"samples hr_bpm=151,pwr_w=300i {first + 1}", f"samples,device=watch lat=-33.5,lon=151.25 {first + 2}"],
        write_precision=precision,
    )
    assert stored(server, "test", start, start + 3600 * SECOND) == [
        (start, {}, {"hr_bpm": 150.0}),
        (start + unit, {}, {"hr_bpm": 151.0, "pwr_w": 300.0}),
        (start + 2 * unit, {"device": "watch"}, {"lat": -33.5, "lng": 151.25}),
    ]


def test_v2_bad_token_is_401(server: Server) -> None:
    with influxdb_client.InfluxDBClient(url=server.url, token="test:wrong", org="-") as client:
        with pytest.raises(ApiException) as caught:
            write_api = client.write_api(write_options=SYNCHRONOUS)
            write_api.write(bucket="test", record=f"samples hr_bpm=1 {slot(SLOT_V2_BAD)}")
    assert caught.value.status == 401
    assert json.loads(caught.value.body) == {"error": "authorization failed"}
    assert stored_day(server, SLOT_V2_BAD) == []


def test_v2_unknown_field_is_400_with_message(server: Server, v2: influxdb_client.InfluxDBClient) -> None:
    line = f"samples cadence=90 {slot(SLOT_V2_BAD)}"
    with pytest.raises(ApiException) as caught:
        v2.write_api(write_options=SYNCHRONOUS).write(bucket="test", record=line)
    assert caught.value.status == 400
    message = f"unable to parse '{line}': line 1: " + UNKNOWN_FIELD_REASON.format(key="cadence")
    assert json.loads(caught.value.body) == {"error": message}
    assert stored_day(server, SLOT_V2_BAD) == []


def test_v2_flux_query_says_to_use_influxql(v2: influxdb_client.InfluxDBClient) -> None:
    flux = 'from(bucket: "test") |> range(start: -1h) |> filter(fn: (r) => r._measurement == "samples")'
    for ask in (v2.query_api().query, v2.query_api().query_raw, v2.query_api().query_csv):
        with pytest.raises(ApiException) as caught:
            ask(flux)
        assert caught.value.status == 501
        # what influxdb-client shows as the error's message, and what the body says to 1.x readers
        assert caught.value.message.startswith("Flux queries are not supported: Tracker answers InfluxQL")
        assert "/query" in caught.value.message
        assert json.loads(caught.value.body)["error"] == caught.value.message


# ----- Grafana's InfluxQL data source: its exact requests ---------------------------------------------

GRAFANA_HEADERS = {**basic_auth(), "User-Agent": "Grafana/10.4.2", "Accept-Encoding": "gzip"}
GRAFANA_T0_MS = slot(SLOT_GRAFANA) // 1_000_000
# (offset in s, device, hr_bpm): 10 s buckets -> all: 105, 120, null, 135.5; watch: 100, 120, null, 130
GRAFANA_SAMPLES = [
    (1, "watch", 100.0),
    (3, "bike", 110.0),
    (12, "watch", 120.0),
    (35, "watch", 130.0),
    (38, "bike", 141.0),
]


@pytest.fixture(scope="module")
def grafana_data(server: Server) -> int:
    body = "\n".join(
        f"samples,device={device} hr_bpm={hr},pwr_w={hr * 2} {GRAFANA_T0_MS + s * 1000}"
        for s, device, hr in GRAFANA_SAMPLES
    )
    params = {"db": "test", "precision": "ms"}
    reply = request(server, "POST", "/write", params, body=body.encode(), headers=basic_auth())
    assert reply.status == 204, reply.body
    return GRAFANA_T0_MS


def grafana_get(server: Server, q: str) -> Reply:
    reply = request(server, "GET", "/query", {"db": "test", "q": q, "epoch": "ms"}, headers=GRAFANA_HEADERS)
    assert reply.status == 200, reply.body
    assert reply.headers["Content-Type"].startswith("application/json")
    return reply


def grafana_post(server: Server, q: str) -> Reply:
    reply = request(
        server,
        "POST",
        "/query",
        {"db": "test", "epoch": "ms"},
        body=urllib.parse.urlencode({"q": q}).encode(),
        headers={**GRAFANA_HEADERS, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert reply.status == 200, reply.body
    return reply


def first_result(reply: Reply) -> dict[str, Any]:
    body = reply.json()
    assert set(body) == {"results"}, body
    assert body["results"], body  # Grafana reads results[0]
    return body["results"][0]


def panel_query(t0_ms: int, tag_filter: str = "", group_by: str = "") -> str:
    where = f"({tag_filter}) AND " if tag_filter else ""
    return (
        f'SELECT mean("hr_bpm") FROM "samples" WHERE {where}time >= {t0_ms}ms and time <= {t0_ms + 39_999}ms '
        f"GROUP BY time(10s){group_by} fill(null)"
    )


def test_grafana_test_button_show_measurements(server: Server, grafana_data: int) -> None:
    result = first_result(grafana_get(server, "SHOW measurements"))
    assert result == {
        "statement_id": 0,
        "series": [{"name": "measurements", "columns": ["name"], "values": [["samples"]]}],
    }


def test_grafana_old_test_button_show_retention_policies(server: Server) -> None:
    result = first_result(grafana_get(server, 'SHOW RETENTION POLICIES on "test"'))
    assert "error" not in result, result
    (series,) = result["series"]
    assert series["columns"] == ["name", "duration", "shardGroupDuration", "replicaN", "default"]
    assert [row[0] for row in series["values"]] == ["autogen"]
    assert series["values"][0][4] is True


@pytest.mark.parametrize("send", [grafana_get, grafana_post], ids=["GET", "POST"])
def test_grafana_panel_query(server: Server, grafana_data: int, send: Any) -> None:
    t0 = grafana_data
    result = first_result(send(server, panel_query(t0)))
    assert result == {
        "statement_id": 0,
        "series": [
            {
                "name": "samples",
                "columns": ["time", "mean"],
                "values": [[t0, 105.0], [t0 + 10_000, 120.0], [t0 + 20_000, None], [t0 + 30_000, 135.5]],
            }
        ],
    }


@pytest.mark.parametrize("send", [grafana_get, grafana_post], ids=["GET", "POST"])
def test_grafana_panel_query_with_tag_filter(server: Server, grafana_data: int, send: Any) -> None:
    t0 = grafana_data
    result = first_result(send(server, panel_query(t0, tag_filter="\"device\" = 'watch'")))
    assert result == {
        "statement_id": 0,
        "series": [
            {
                "name": "samples",
                "columns": ["time", "mean"],
                "values": [[t0, 100.0], [t0 + 10_000, 120.0], [t0 + 20_000, None], [t0 + 30_000, 130.0]],
            }
        ],
    }


def test_grafana_panel_query_grouped_by_tag(server: Server, grafana_data: int) -> None:
    t0 = grafana_data
    result = first_result(grafana_get(server, panel_query(t0, group_by=', "device"')))
    assert result == {
        "statement_id": 0,
        "series": [
            {
                "name": "samples",
                "tags": {"device": "bike"},
                "columns": ["time", "mean"],
                "values": [[t0, 110.0], [t0 + 10_000, None], [t0 + 20_000, None], [t0 + 30_000, 141.0]],
            },
            {
                "name": "samples",
                "tags": {"device": "watch"},
                "columns": ["time", "mean"],
                "values": [[t0, 100.0], [t0 + 10_000, 120.0], [t0 + 20_000, None], [t0 + 30_000, 130.0]],
            },
        ],
    }


def test_grafana_p95_panel(server: Server, grafana_data: int) -> None:
    t0 = grafana_data
    q = panel_query(t0).replace('mean("hr_bpm")', 'percentile("hr_bpm", 95)')
    result = first_result(grafana_get(server, q))
    # nearest rank: the value at floor(n * 0.95 + 0.5) - 1 of each bucket's sorted values
    assert result["series"][0]["columns"] == ["time", "percentile"]
    assert result["series"][0]["values"] == [[t0, 110], [t0 + 10_000, 120], [t0 + 20_000, None], [t0 + 30_000, 141]]


def test_grafana_rate_panel(server: Server, grafana_data: int) -> None:
    t0 = grafana_data
    q = panel_query(t0).replace('mean("hr_bpm")', 'non_negative_derivative(mean("hr_bpm"), 1s)')
    result = first_result(grafana_post(server, q))
    # per second between bucket means 105, 120, (none), 135.5; the empty bucket is skipped
    assert result["series"][0]["values"] == [[t0 + 10_000, 1.5], [t0 + 30_000, (135.5 - 120) / 20]]


def test_v1_query_functions(server: Server, v1: influxdb.InfluxDBClient, grafana_data: int) -> None:
    t0 = grafana_data
    where = f"WHERE time >= {t0}ms AND time < {t0 + 40_000}ms"
    result = v1.query(f"SELECT top(hr_bpm, device, 2) FROM samples {where}", epoch="ms")
    assert list(result.get_points()) == [
        {"time": t0 + 35_000, "top": 130, "device": "watch"},
        {"time": t0 + 38_000, "top": 141, "device": "bike"},
    ]
    result = v1.query(
        f"SELECT count(distinct(hr_bpm)), spread(hr_bpm), max(m) FROM samples {where}; "
        f"SELECT max(m) FROM (SELECT mean(hr_bpm) AS m FROM samples {where} GROUP BY time(10s))",
        epoch="ms",
    )
    first, second = result
    assert list(first.get_points()) == [{"time": t0, "count": 5, "spread": 41, "max": None}]
    assert list(second.get_points()) == [{"time": t0 + 30_000, "max": 135.5}]


def test_grafana_show_tag_values(server: Server, grafana_data: int) -> None:
    result = first_result(grafana_get(server, 'SHOW TAG VALUES FROM "samples" WITH KEY = "device"'))
    assert "error" not in result, result
    (series,) = result["series"]
    assert series["name"] == "samples"
    assert series["columns"] == ["key", "value"]
    assert [row[1] for row in series["values"]] == ["bike", "watch"]
    assert [row[0] for row in series["values"]] == ["device", "device"]


def test_grafana_show_field_keys(server: Server, grafana_data: int) -> None:
    result = first_result(grafana_get(server, 'SHOW FIELD KEYS FROM "samples"'))
    assert "error" not in result, result
    (series,) = result["series"]
    assert series["name"] == "samples"
    assert series["columns"] == ["fieldKey", "fieldType"]
    keys = [row[0] for row in series["values"]]
    vocabulary = UNKNOWN_FIELD_REASON.split("allowed: ")[1].split(" (")[0].split(", ")
    assert {"hr_bpm", "pwr_w"} <= set(keys) <= set(vocabulary), keys
    assert len(keys) == len(set(keys))
    assert {row[1] for row in series["values"]} == {"float"}


# ----- Telegraf's outputs.influxdb: its startup query and its writes -----------------------------------


# Go's transport asks for gzip answers on its own.
TELEGRAF_HEADERS = {**basic_auth(), "User-Agent": "Telegraf/1.30 Go/1.22", "Accept-Encoding": "gzip"}


def test_telegraf_query_create_database_at_startup(server: Server) -> None:
    reply = request(
        server,
        "POST",
        "/query",
        body=urllib.parse.urlencode({"q": 'CREATE DATABASE "test"'}).encode(),
        headers={**TELEGRAF_HEADERS, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert reply.status == 200, reply.body
    assert reply.json() == {"results": [{"statement_id": 0}]}


def test_telegraf_gzip_chunked_write(server: Server) -> None:
    t = slot(SLOT_TELEGRAF)
    lines = "".join(f"samples,device=watch hr_bpm={140 + k},cad_rpm=88.5 {t + k * SECOND}\n" for k in range(50))
    compressed = gzip.compress(lines.encode())

    def pieces() -> Iterator[bytes]:  # Telegraf streams the gzip writer's output: a chunked body
        for i in range(0, len(compressed), 100):
            yield compressed[i : i + 100]

    reply = request(
        server,
        "POST",
        "/write",
        {"db": "test"},
        body=pieces(),
        chunked=True,
        headers={
            **TELEGRAF_HEADERS,
            "Content-Type": "text/plain; charset=utf-8",
            "Content-Encoding": "gzip",
            "Transfer-Encoding": "chunked",
        },
    )
    assert reply.status == 204, reply.body
    assert reply.body == b""
    assert stored_day(server, SLOT_TELEGRAF) == [
        (t + k * SECOND, {"device": "watch"}, {"hr_bpm": 140.0 + k, "cad_rpm": 88.5}) for k in range(50)
    ]
