"""What dashboards and clients send, to Tracker and to a real InfluxDB 1.x with the same data: the answers must match.

Grafana's InfluxQL data source (the query editor's SHOW statements with its exact parameters, `;`-joined as
it sends them, and the panels people build: `$__interval` means with fill(null), p95 via percentile, rates
via non_negative_derivative, days in the rider's time zone), the `influx` CLI in each output format, and
the `influxdb` Python package, each against both servers; the v2 client's Flux query gets a clear answer.
"""

from __future__ import annotations

import gzip
import http.client
import json
import subprocess
import urllib.parse
from typing import Any, Iterator

import influxdb
import influxdb_client
import pytest
from influxdb_client.rest import ApiException

from tests.influx_compat import SECOND, T0, Answer, generate_lines, parse_body, post_lines_to, same
from tests.influxd import InfluxdProcess, basic_header, influx_cli_binary
from tests.tracker_process import TrackerProcess

USER = "flows"
PASSWORD = "flows-pw-1"
SEED = 7
MS = 1_000_000
# A dashboard's time range: 40 minutes of the data, in ms as Grafana sends it.
FROM_MS = (T0 + 600 * SECOND) // MS
TO_MS = (T0 + 3000 * SECOND) // MS - 1
RANGE = f"time >= {FROM_MS}ms and time <= {TO_MS}ms"
GRAFANA_HEADERS = {"User-Agent": "Grafana/10.4.2", "Accept-Encoding": "gzip"}

Servers = tuple[InfluxdProcess, TrackerProcess]


@pytest.fixture(scope="module")
def servers(influxd: InfluxdProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    root = tmp_path_factory.mktemp("client-flows")
    tracker = TrackerProcess(root / "data", root / "server.log")
    tracker.add_user(USER, PASSWORD)
    tracker.start()
    try:
        influxd.add_user(USER, PASSWORD)
        lines = generate_lines(SEED)
        post_lines_to(influxd.url, USER, PASSWORD, lines)
        post_lines_to(tracker.url, USER, PASSWORD, lines)
        yield influxd, tracker
        assert "Traceback" not in tracker.log(), f"Tracker logged an unhandled error:\n{tracker.log_tail()}"
    finally:
        tracker.close()


def grafana_request(host: str, port: int, q: str, method: str = "GET") -> Answer:
    """Grafana's InfluxQL data source: db and epoch=ms in the URL, `q` there (GET) or in a form body (POST)."""
    params = {"db": USER, "epoch": "ms"}
    headers = {**GRAFANA_HEADERS, "Authorization": basic_header(USER, PASSWORD)}
    body = None
    if method == "GET":
        params["q"] = q
    else:
        body = urllib.parse.urlencode({"q": q}).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request(method, "/query?" + urllib.parse.urlencode(params, quote_via=urllib.parse.quote), body, headers)
        response = conn.getresponse()
        raw = response.read()
        if response.getheader("Content-Encoding", "") == "gzip":
            raw = gzip.decompress(raw)
        return Answer(response.status, parse_body(raw, chunked=False))
    finally:
        conn.close()


def assert_same_answer(servers: Servers, q: str, method: str = "GET") -> Any:
    influxd, tracker = servers
    expected = grafana_request(influxd.host, influxd.port, q, method)
    actual = grafana_request(tracker.host, tracker.port, q, method)
    assert expected.status == 200, expected.short()
    assert actual.status == expected.status and same(expected.body, actual.body), (
        f"\nquery:    {q}\ninfluxdb: {expected.short(4000)}\ntracker:  {actual.short(4000)}"
    )
    return expected.body


# ----- Grafana's query editor: the SHOW statements it sends, with its parameters -------------------------
# As its InfluxQL query builder writes them (buildExploreQuery): LIMIT 100 on measurements, names quoted,
# the retention policy before the measurement when one is chosen, the other tags' filters in WHERE.

GRAFANA_EDITOR_QUERIES = [
    "SHOW MEASUREMENTS LIMIT 100",
    "SHOW MEASUREMENTS WITH MEASUREMENT =~ /(?i)sam/ LIMIT 100",
    'SHOW FIELD KEYS FROM "samples"',
    'SHOW FIELD KEYS FROM "autogen"."samples"',
    'SHOW TAG KEYS FROM "samples"',
    "SHOW TAG KEYS FROM \"samples\" WHERE \"device\" = 'bike'",  # a tag filter already chosen in the editor
    "SHOW TAG KEYS FROM \"samples\" WHERE \"device\" =~ /^(bike|watch)$/",
    'SHOW TAG VALUES FROM "samples" WITH KEY = "device"',
    f'SHOW RETENTION POLICIES on "{USER}"',
    "SHOW DATABASES",
]


@pytest.mark.parametrize("q", GRAFANA_EDITOR_QUERIES)
def test_grafana_query_editor_show_statements(servers: Servers, q: str) -> None:
    body = assert_same_answer(servers, q)
    assert "series" in body["results"][0], body  # the data set has what each of them lists


def test_grafana_query_editor_statements_joined_in_one_request(servers: Servers) -> None:
    # Grafana sends the queries of several targets as one `q`, joined with ';'.
    assert_same_answer(servers, ";".join(GRAFANA_EDITOR_QUERIES[:6]))


# ----- Grafana panels -----------------------------------------------------------------------------------

PANELS = {
    # `$__interval` resolves to 10s for this range and width; fill(null) is the editor's default.
    "interval mean": f'SELECT mean("hr_bpm") FROM "samples" WHERE {RANGE} GROUP BY time(10s) fill(null)',
    "interval mean per device": (
        f'SELECT mean("hr_bpm") FROM "samples" WHERE {RANGE} GROUP BY time(1m), "device" fill(null)'
    ),
    "tag filter": (
        f'SELECT mean("pwr_w") FROM "samples" WHERE ("device" =~ /^bike$/) AND {RANGE} GROUP BY time(30s) fill(null)'
    ),
    "p95": f'SELECT percentile("hr_bpm", 95) FROM "samples" WHERE {RANGE} GROUP BY time(1m) fill(null)',
    "p95 per device": (
        f'SELECT percentile("hr_bpm", 95) AS "p95" FROM "samples" WHERE {RANGE} GROUP BY time(5m), "device" fill(null)'
    ),
    "rate": (
        f'SELECT non_negative_derivative(mean("dist_km"), 1s) FROM "samples" WHERE {RANGE} '
        "GROUP BY time(1m) fill(null)"
    ),
    "rate per device": (
        f'SELECT non_negative_derivative(max("dist_km"), 1m) AS "km/min" FROM "samples" WHERE {RANGE} '
        'GROUP BY time(2m), "device" fill(null)'
    ),
    "days in the rider's time zone": (
        f'SELECT max("hr_bpm"), count("hr_bpm") FROM "samples" WHERE time >= {T0 // MS}ms and time <= '
        f"{(T0 + 7200 * SECOND) // MS}ms GROUP BY time(1d) fill(null) tz('Europe/Berlin')"
    ),
    "hours in the rider's time zone": (
        f'SELECT mean("alt_m") FROM "samples" WHERE time >= {T0 // MS}ms and time <= '
        f"{(T0 + 7200 * SECOND) // MS}ms GROUP BY time(1h) fill(null) tz('Europe/Berlin')"
    ),
}


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("panel", list(PANELS))
def test_grafana_panel(servers: Servers, panel: str, method: str) -> None:
    body = assert_same_answer(servers, PANELS[panel], method)
    assert body["results"][0].get("series"), body  # each panel shows data


def test_grafana_dashboard_refresh_sends_every_panel_at_once(servers: Servers) -> None:
    assert_same_answer(servers, ";".join(PANELS.values()))


# ----- the influx CLI -----------------------------------------------------------------------------------

CLI_QUERIES = [
    "SHOW MEASUREMENTS",
    'SHOW TAG VALUES WITH KEY = "device"',
    f"SELECT hr_bpm, pwr_w, device FROM samples WHERE {RANGE} LIMIT 5",
    f"SELECT mean(hr_bpm), max(pwr_w) FROM samples WHERE {RANGE} GROUP BY time(5m), device fill(null)",
    f"SELECT percentile(hr_bpm, 95) FROM samples WHERE {RANGE}",
    f"SELECT non_negative_derivative(mean(dist_km), 1s) FROM samples WHERE {RANGE} GROUP BY time(10m)",
    f"SHOW FIELD KEYS; SELECT count(cad_rpm) FROM samples WHERE {RANGE} GROUP BY device",  # two statements
]


def influx_cli(port: int, q: str, output_format: str, precision: str | None) -> subprocess.CompletedProcess[str]:
    command = [influx_cli_binary(), "-host", "127.0.0.1", "-port", str(port), "-username", USER, "-password",
               PASSWORD, "-database", USER, "-execute", q, "-format", output_format]  # fmt: skip
    if precision:
        command += ["-precision", precision]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env={"HOME": "/nonexistent"})


@pytest.mark.parametrize("precision", [None, "rfc3339"])
@pytest.mark.parametrize("output_format", ["json", "csv", "column"])
@pytest.mark.parametrize("q", CLI_QUERIES, ids=range(len(CLI_QUERIES)))
def test_influx_cli(servers: Servers, q: str, output_format: str, precision: str | None) -> None:
    influxd, tracker = servers
    expected = influx_cli(influxd.port, q, output_format, precision)
    actual = influx_cli(tracker.port, q, output_format, precision)
    assert expected.returncode == 0 and expected.stdout.strip(), expected
    assert (actual.returncode, actual.stdout, actual.stderr) == (expected.returncode, expected.stdout, expected.stderr), q


# ----- the influxdb (1.x) Python package -------------------------------------------------------------------

PYTHON_QUERIES = [
    f"SELECT hr_bpm, cad_rpm FROM samples WHERE {RANGE} LIMIT 20",
    f"SELECT mean(hr_bpm) FROM samples WHERE {RANGE} GROUP BY time(1m), device fill(null)",
    f"SELECT count(cad_rpm), sum(alt_m) FROM samples WHERE {RANGE} GROUP BY device",
    f"SELECT percentile(hr_bpm, 95), percentile(hr_bpm, 5) FROM samples WHERE {RANGE} GROUP BY device",
    f"SELECT non_negative_derivative(mean(dist_km), 1s) FROM samples WHERE {RANGE} GROUP BY time(1m) fill(null)",
    'SHOW TAG VALUES WITH KEY = "device"',
]


@pytest.fixture(scope="module")
def python_clients(servers: Servers) -> Iterator[tuple[influxdb.InfluxDBClient, influxdb.InfluxDBClient]]:
    influxd, tracker = servers
    reference = influxdb.InfluxDBClient(influxd.host, influxd.port, USER, PASSWORD, USER)
    candidate = influxdb.InfluxDBClient(tracker.host, tracker.port, USER, PASSWORD, USER)
    yield reference, candidate
    reference.close()
    candidate.close()


# Not chunked=True: the package then asks for MessagePack and cannot read InfluxDB's own chunked answer.
@pytest.mark.parametrize("epoch", [None, "ms", "s"])
@pytest.mark.parametrize("q", PYTHON_QUERIES, ids=range(len(PYTHON_QUERIES)))
def test_influxdb_python_client(
    python_clients: tuple[influxdb.InfluxDBClient, influxdb.InfluxDBClient], q: str, epoch: str | None
) -> None:
    reference, candidate = python_clients
    expected, actual = reference.query(q, epoch=epoch), candidate.query(q, epoch=epoch)
    assert same(expected.raw, actual.raw), (
        f"\nquery:    {q}\ninfluxdb: {json.dumps(expected.raw)[:3000]}\ntracker:  {json.dumps(actual.raw)[:3000]}"
    )
    assert same(list(expected.get_points()), list(actual.get_points()))
    for device in ("bike", "watch"):
        tagged = {"device": device}
        assert same(list(expected.get_points(tags=tagged)), list(actual.get_points(tags=tagged)))


@pytest.mark.parametrize(
    "call",
    ["get_list_database", "get_list_measurements", "get_list_series", "get_list_retention_policies"],
)
def test_influxdb_python_client_listings(
    python_clients: tuple[influxdb.InfluxDBClient, influxdb.InfluxDBClient], call: str
) -> None:
    reference, candidate = python_clients
    expected, actual = getattr(reference, call)(), getattr(candidate, call)()
    assert expected and same(expected, actual), f"\ninfluxdb: {expected}\ntracker:  {actual}"


# ----- influxdb-client (v2): Flux -----------------------------------------------------------------------


def test_v2_flux_query_is_told_flux_is_not_supported(servers: Servers) -> None:
    _, tracker = servers
    with influxdb_client.InfluxDBClient(url=tracker.url, token=f"{USER}:{PASSWORD}", org="-") as client:
        with pytest.raises(ApiException) as caught:
            client.query_api().query(f'from(bucket: "{USER}/autogen") |> range(start: -1h)')
    # 501 in InfluxDB 2's error form ({"code", "message"}), which influxdb-client shows as it is
    assert caught.value.status == 501, caught.value
    body = json.loads(caught.value.body)
    assert body["code"] == "not implemented", body
    message = body["message"]
    # The words: say that Flux is not supported and point to InfluxQL on /query.
    assert "flux" in message.lower() and "not supported" in message.lower(), message
    assert "InfluxQL" in message and "/query" in message, message


# ----- without influxd ------------------------------------------------------------------------------------


@pytest.mark.parametrize("ci", [None, "true"])
def test_missing_influxd_skips_naming_it_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch, ci: str | None) -> None:
    import tests.influxd

    monkeypatch.setattr(tests.influxd, "INFLUXD", "/nonexistent/influxd")
    monkeypatch.setenv("PATH", "/nonexistent")
    if ci:
        monkeypatch.setenv("CI", ci)
    else:
        monkeypatch.delenv("CI", raising=False)
    outcome = pytest.fail.Exception if ci else pytest.skip.Exception
    with pytest.raises(outcome, match="influxd .*not found: apt-get install influxdb"):
        tests.influxd.influxd_binary()
    with pytest.raises(outcome, match="influx .*not found: apt-get install influxdb-client"):
        tests.influxd.influx_cli_binary()
