"""GET/POST /query against a real server and real SQLite files: shapes, statements, auth, streaming."""

from __future__ import annotations

import gzip
import json
import statistics
import time
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import AddUser, basic
from tracker.accounts import Accounts

AUTH = basic("test", "test1234")
S = 1_000_000_000  # ns per second

# A small known day: 10 s apart from t=1000 s, one tagged series beside the untagged one.
DATA = "\n".join(
    [
        "samples hr_bpm=100,pwr_w=200 1000",
        "samples hr_bpm=110 1010",
        "samples hr_bpm=121.5,pwr_w=250.5 1020",
        "samples pwr_w=300 1030",
        "samples,device=watch hr_bpm=90,cad_rpm=80 1005",
        "samples,device=bike pwr_w=400 1025",
    ]
)


@pytest.fixture
async def test_user(add_user: AddUser) -> None:
    await add_user("test", "test1234")


@pytest.fixture
async def loaded(client: TestClient, test_user: None) -> TestClient:
    resp = await client.post("/write?db=test&precision=s", data=DATA, headers=AUTH)
    assert resp.status == 204, await resp.text()
    return client


async def get(client: TestClient, q: str, *, headers: dict[str, str] | None = None, **params: str) -> tuple[int, Any]:
    resp = await client.get("/query", params={"q": q, "db": "test", **params}, headers=AUTH if headers is None else headers)
    return resp.status, json.loads(await resp.read())


async def one(client: TestClient, q: str, **params: str) -> dict[str, Any]:
    """The single result of a one-statement query (status must be 200)."""
    status, body = await get(client, q, **params)
    assert status == 200, body
    assert len(body["results"]) == 1
    return body["results"][0]


# -- raw SELECT ------------------------------------------------------------------------------------


async def test_whole_numbers_are_written_as_integers(loaded: TestClient) -> None:
    for q in ("SELECT * FROM samples", "SELECT hr_bpm, pwr_w FROM samples", "SELECT hr_bpm, pwr_w, device FROM samples"):
        for chunked in ("false", "true"):
            resp = await loaded.get("/query", params={"db": "test", "q": q, "epoch": "s", "chunked": chunked}, headers=AUTH)
            text = await resp.text()
            assert "100,200" in text and "121.5,250.5" in text and ".0," not in text and ".0]" not in text, text


async def test_select_star_epoch_s(loaded: TestClient) -> None:
    result = await one(loaded, "SELECT * FROM samples", epoch="s")
    assert result == {
        "statement_id": 0,
        "series": [
            {
                "name": "samples",
                "columns": ["time", "cad_rpm", "device", "hr_bpm", "pwr_w"],
                "values": [
                    [1000, None, None, 100, 200],
                    [1005, 80, "watch", 90, None],
                    [1010, None, None, 110, None],
                    [1020, None, None, 121.5, 250.5],
                    [1025, None, "bike", None, 400],
                    [1030, None, None, None, 300],
                ],
            }
        ],
    }


@pytest.mark.parametrize(
    "epoch, scale",
    [("ns", 1), ("u", 1_000), ("ms", 1_000_000), ("s", S), ("m", 60 * S), ("h", 3600 * S), ("bogus", 1)],
)
async def test_epochs(loaded: TestClient, epoch: str, scale: int) -> None:
    result = await one(loaded, "SELECT hr_bpm FROM samples", epoch=epoch)
    times = [row[0] for row in result["series"][0]["values"]]
    assert times == [t * S // scale for t in (1000, 1005, 1010, 1020)]


async def test_rfc3339_times(client: TestClient, test_user: None) -> None:
    lines = "samples hr_bpm=1 1420070401000000000\nsamples hr_bpm=2 1420070401500000000\nsamples hr_bpm=3 1420070401000000007\nsamples hr_bpm=4 -1500000000"
    assert (await client.post("/write?db=test", data=lines, headers=AUTH)).status == 204
    result = await one(client, "SELECT hr_bpm FROM samples")
    assert result["series"][0]["values"] == [
        ["1969-12-31T23:59:58.5Z", 4],
        ["2015-01-01T00:00:01Z", 1],
        ["2015-01-01T00:00:01.000000007Z", 3],
        ["2015-01-01T00:00:01.5Z", 2],
    ]
    # negative times floor, as InfluxDB's integer division of epochs does
    result = await one(client, "SELECT hr_bpm FROM samples LIMIT 1", epoch="s")
    assert result["series"][0]["values"] == [[-2, 4]]


async def test_livetracking_examples(client: TestClient, test_user: None) -> None:
    now = time.time_ns()
    body = f"samples hr_bpm=145 {now - 60 * S}\nsamples hr_bpm=150,pwr_w=99.5 {now - 5 * S}\nsamples hr_bpm=1 {now - 3600 * S}"
    assert (await client.post("/write?db=test", data=body, headers=AUTH)).status == 204
    resp = await client.get(
        "/query?db=test&q=SELECT%20*%20FROM%20samples%20WHERE%20time%20%3E%20now()%20-%2010m", headers=AUTH
    )
    assert resp.status == 200
    series = (await resp.json())["results"][0]["series"][0]
    assert series["columns"] == ["time", "hr_bpm", "pwr_w"]
    assert [row[1:] for row in series["values"]] == [[145, None], [150, 99.5]]
    assert all(isinstance(row[0], str) and row[0].endswith("Z") for row in series["values"])
    result = await one(client, "SELECT * FROM samples WHERE time > now() - 10m", epoch="ms")
    assert [row[0] for row in result["series"][0]["values"]] == [(now - 60 * S) // 10**6, (now - 5 * S) // 10**6]
    # the u/p form of the curl examples
    resp = await client.get("/query", params={"db": "test", "u": "test", "p": "test1234", "q": "SELECT hr_bpm FROM samples", "epoch": "s"})
    assert resp.status == 200
    assert len((await resp.json())["results"][0]["series"][0]["values"]) == 3


@pytest.mark.parametrize(
    "where, expected_times",
    [
        ("time >= 1005s AND time < 1020s", [1005, 1010]),
        ("time > 1005s AND time <= 1020s", [1010, 1020]),
        ("time >= '1970-01-01T00:16:50Z'", [1010, 1020]),  # 1010 s
        ("time = 1010000000000", [1010]),
        ("time >= 1010000ms - 5s", [1005, 1010, 1020]),
        ("hr_bpm > 100", [1010, 1020]),
        ("hr_bpm >= 100 AND hr_bpm <= 110", [1000, 1010]),
        ("hr_bpm = 90 OR hr_bpm = 121.5", [1005, 1020]),
        ("(hr_bpm < 95 OR hr_bpm > 120) AND time < 1010s", [1005]),
        ("hr_bpm + 10 > 125", [1020]),
        ("device = 'watch'", [1005]),
        ('"device" != \'watch\'', [1000, 1010, 1020]),
        ("device = ''", [1000, 1010, 1020]),
        ("device =~ /^wa/", [1005]),
        ("device !~ /watch|bike/", [1000, 1010, 1020]),
        ("device = 'watch' OR hr_bpm = 110", [1005, 1010]),
        ("hr_bpm = 'x'", []),
        ("nosuchtag = 'x'", []),
        ("true", [1000, 1005, 1010, 1020]),
    ],
)
async def test_where(loaded: TestClient, where: str, expected_times: list[int]) -> None:
    result = await one(loaded, f"SELECT hr_bpm FROM samples WHERE {where}", epoch="s")
    assert [row[0] for row in result.get("series", [{"values": []}])[0]["values"]] == expected_times


async def test_fields_quoting_order_limit_offset(loaded: TestClient) -> None:
    result = await one(loaded, 'SELECT "hr_bpm", pwr_w AS p FROM "test"."autogen"."samples" ORDER BY time DESC LIMIT 2 OFFSET 1', epoch="s", db="")
    assert result["series"] == [
        {"name": "samples", "columns": ["time", "hr_bpm", "p"], "values": [[1025, None, 400], [1020, 121.5, 250.5]]}
    ]
    result = await one(loaded, 'SELECT hr_bpm FROM "test".."samples" LIMIT 1', epoch="s", db="")
    assert result["series"][0]["values"] == [[1000, 100]]


async def test_math_and_duplicate_columns(loaded: TestClient) -> None:
    result = await one(loaded, "SELECT hr_bpm * 2, hr_bpm / 4, hr_bpm, -hr_bpm FROM samples WHERE time <= 1005s", epoch="s")
    assert result["series"][0]["columns"] == ["time", "hr_bpm", "hr_bpm_1", "hr_bpm_2", "hr_bpm_3"]
    assert result["series"][0]["values"] == [[1000, 200, 25, 100, -100], [1005, 180, 22.5, 90, -90]]


async def test_tag_column_and_group_by_tag_raw(loaded: TestClient) -> None:
    result = await one(loaded, "SELECT pwr_w, device FROM samples WHERE pwr_w > 250", epoch="s")
    assert result["series"][0]["values"] == [[1020, 250.5, None], [1025, 400, "bike"], [1030, 300, None]]
    result = await one(loaded, "SELECT * FROM samples GROUP BY device", epoch="s")
    assert result["series"] == [
        {"name": "samples", "tags": {"device": ""}, "columns": ["time", "cad_rpm", "hr_bpm", "pwr_w"],
         "values": [[1000, None, 100, 200], [1010, None, 110, None], [1020, None, 121.5, 250.5], [1030, None, None, 300]]},
        {"name": "samples", "tags": {"device": "bike"}, "columns": ["time", "cad_rpm", "hr_bpm", "pwr_w"],
         "values": [[1025, None, None, 400]]},
        {"name": "samples", "tags": {"device": "watch"}, "columns": ["time", "cad_rpm", "hr_bpm", "pwr_w"],
         "values": [[1005, 80, 90, None]]},
    ]  # fmt: skip
    # LIMIT applies per series
    result = await one(loaded, "SELECT pwr_w FROM samples GROUP BY * LIMIT 1", epoch="s")
    assert [s["values"] for s in result["series"]] == [[[1000, 200]], [[1025, 400]]]


@pytest.mark.parametrize(
    "q",
    [
        "SELECT * FROM other",
        "SELECT * FROM samples WHERE time > 5000s",
        "SELECT nosuchfield FROM samples",
        "SELECT device FROM samples",  # tags alone are no data
        "SELECT * FROM /^other/",
    ],
)
async def test_empty_results(loaded: TestClient, q: str) -> None:
    assert await one(loaded, q) == {"statement_id": 0}


async def test_regex_measurement(loaded: TestClient) -> None:
    result = await one(loaded, "SELECT hr_bpm FROM /^sam/ LIMIT 1", epoch="s")
    assert result["series"][0]["values"] == [[1000, 100]]


async def test_full_precision_floats(client: TestClient, test_user: None) -> None:
    body = "samples lat=52.520006599999996,lng=13.404954,alt_m=0.30000000000000004,dist_km=1e-7,hr_bpm=-0 1"
    assert (await client.post("/write?db=test", data=body, headers=AUTH)).status == 204
    resp = await client.get("/query", params={"db": "test", "q": "SELECT lat, lng, alt_m, dist_km, hr_bpm FROM samples", "epoch": "ns"}, headers=AUTH)
    text = await resp.text()
    assert '[1,52.520006599999995,13.404954,0.30000000000000004,1e-7,0]' in text


async def test_numbers_exact_in_every_answer_form(client: TestClient, test_user: None) -> None:
    """Whole numbers become integers in SQL: big ones too (as Go writes them), never losing digits."""
    body = "samples dur_s=1e16,dist_km=123456789.123,temp_c=-40,acc_m=0.1,bearing=359.99999999999994 1"
    assert (await client.post("/write?db=test", data=body, headers=AUTH)).status == 204
    row = "[1,10000000000000000,123456789.123,-40,0.1,359.99999999999994]"
    for q in ("SELECT dur_s, dist_km, temp_c, acc_m, bearing FROM samples", "SELECT dur_s, dist_km, temp_c, acc_m, bearing, device FROM samples"):
        for chunked in ("false", "true"):
            params = {"db": "test", "q": q, "epoch": "ns", "chunked": chunked}
            text = await (await client.get("/query", params=params, headers=AUTH)).text()
            assert row[:-1] in text, text


# -- aggregates ------------------------------------------------------------------------------------

HR = [100, 90, 110, 121.5]  # hr_bpm values of DATA in time order
PWR = [200, 250.5, 400, 300]


async def test_aggregates_without_group_by(loaded: TestClient) -> None:
    q = (
        "SELECT mean(hr_bpm), median(hr_bpm), min(hr_bpm), max(hr_bpm), sum(hr_bpm), count(hr_bpm), "
        "first(hr_bpm), last(hr_bpm), spread(hr_bpm), stddev(hr_bpm) AS sd FROM samples"
    )
    result = await one(loaded, q, epoch="s")
    series = result["series"][0]
    assert series["columns"] == ["time", "mean", "median", "min", "max", "sum", "count", "first", "last", "spread", "sd"]
    [row] = series["values"]
    assert row[0] == 0  # no lower bound: the epoch
    assert row[1] == pytest.approx(105.375)
    assert row[2:9] == [105, 90, 121.5, 421.5, 4, 100, 121.5]
    assert row[9] == 31.5
    assert row[10] == pytest.approx(statistics.stdev(HR))
    assert isinstance(row[6], int)


async def test_aggregate_time_is_lower_bound_and_math(loaded: TestClient) -> None:
    result = await one(loaded, "SELECT count(pwr_w) * 10, mean(pwr_w) + 1 AS m FROM samples WHERE time >= 1001s", epoch="s")
    assert result["series"][0]["columns"] == ["time", "count", "m"]
    assert result["series"][0]["values"] == [[1001, 30, pytest.approx((250.5 + 400 + 300) / 3 + 1)]]


@pytest.mark.parametrize(
    "selector, expected",
    [("first", [1005, 90]), ("last", [1020, 121.5]), ("min", [1005, 90]), ("max", [1020, 121.5])],
)
async def test_lone_selector_answers_its_points_time(loaded: TestClient, selector: str, expected: list[Any]) -> None:
    result = await one(loaded, f"SELECT {selector}(hr_bpm) FROM samples WHERE time >= 1001s", epoch="s")
    assert result["series"][0]["values"] == [expected]


async def test_aggregate_over_nothing(loaded: TestClient) -> None:
    assert await one(loaded, "SELECT mean(hr_bpm) FROM samples WHERE time > 9999s") == {"statement_id": 0}
    assert await one(loaded, "SELECT mean(temp_c) FROM samples") == {"statement_id": 0}


@pytest.mark.parametrize(
    "fill, expected",
    [
        # buckets of 10 s from 990 s to 1040 s: 990 empty, 1000 [100, 90], 1010 [110], 1020 [121.5], 1030 empty
        ("", [[990, None, 0], [1000, 95, 2], [1010, 110, 1], [1020, 121.5, 1], [1030, None, 0]]),
        ("fill(null)", [[990, None, 0], [1000, 95, 2], [1010, 110, 1], [1020, 121.5, 1], [1030, None, 0]]),
        ("fill(none)", [[1000, 95, 2], [1010, 110, 1], [1020, 121.5, 1]]),
        ("fill(-1)", [[990, -1, -1], [1000, 95, 2], [1010, 110, 1], [1020, 121.5, 1], [1030, -1, -1]]),
        ("fill(previous)", [[990, None, None], [1000, 95, 2], [1010, 110, 1], [1020, 121.5, 1], [1030, 121.5, 1]]),
        ("fill(linear)", [[990, None, None], [1000, 95, 2], [1010, 110, 1], [1020, 121.5, 1], [1030, None, None]]),
    ],
)
async def test_group_by_time_fill(loaded: TestClient, fill: str, expected: list[list[Any]]) -> None:
    q = f"SELECT mean(hr_bpm), count(hr_bpm) FROM samples WHERE time >= 995s AND time < 1040s GROUP BY time(10s) {fill}"
    result = await one(loaded, q, epoch="s")
    assert result["series"][0]["values"] == expected


async def test_fill_linear_interpolates(loaded: TestClient) -> None:
    q = "SELECT max(pwr_w) FROM samples WHERE time >= 1000s AND time < 1040s GROUP BY time(5s) fill(linear)"
    result = await one(loaded, q, epoch="s")
    # points: 1000 -> 200, 1020 -> 250.5, 1025 -> 400, 1030 -> 300
    assert result["series"][0]["values"] == [
        [1000, 200], [1005, 212.625], [1010, 225.25], [1015, 237.875], [1020, 250.5], [1025, 400], [1030, 300], [1035, None]
    ]  # fmt: skip


async def test_group_by_time_offset_order_limit_and_tags(loaded: TestClient) -> None:
    q = "SELECT sum(pwr_w) FROM samples WHERE time >= 1000s AND time < 1040s GROUP BY time(20s, 5s) fill(0)"
    result = await one(loaded, q, epoch="s")
    # buckets start at 985, 1005, 1025: [200], [250.5], [400, 300]
    assert result["series"][0]["values"] == [[985, 200], [1005, 250.5], [1025, 700]]
    q = "SELECT count(hr_bpm) FROM samples WHERE time >= 1000s AND time < 1040s GROUP BY time(10s), device fill(none) ORDER BY time DESC LIMIT 2"
    result = await one(loaded, q, epoch="s")
    assert result["series"] == [  # with DESC the last series comes first, as in InfluxDB
        {"name": "samples", "tags": {"device": "watch"}, "columns": ["time", "count"], "values": [[1000, 1]]},
        {"name": "samples", "tags": {"device": ""}, "columns": ["time", "count"], "values": [[1020, 1], [1010, 1]]},
    ]


async def test_group_by_time_without_lower_bound_starts_at_the_data(loaded: TestClient) -> None:
    result = await one(loaded, "SELECT max(hr_bpm) FROM samples WHERE time < 1030s GROUP BY time(10s)", epoch="s")
    assert result["series"][0]["values"] == [[1000, 100], [1010, 110], [1020, 121.5]]


async def test_group_by_time_negative_times(client: TestClient, test_user: None) -> None:
    body = "samples hr_bpm=1 -15\nsamples hr_bpm=3 -5\nsamples hr_bpm=5 5"
    assert (await client.post("/write?db=test&precision=s", data=body, headers=AUTH)).status == 204
    q = "SELECT mean(hr_bpm) FROM samples WHERE time >= -20s AND time < 10s GROUP BY time(10s)"
    result = await one(client, q, epoch="s")
    assert result["series"][0]["values"] == [[-20, 1], [-10, 3], [0, 5]]


async def test_too_many_buckets_is_a_result_error(loaded: TestClient) -> None:
    result = await one(loaded, "SELECT mean(hr_bpm) FROM samples WHERE time >= 0s AND time < 100000000s GROUP BY time(1s)")
    assert "buckets" in result["error"] and "series" not in result


async def test_grafana_panel_query_get_and_post(loaded: TestClient) -> None:
    q = 'SELECT mean("hr_bpm") FROM "samples" WHERE time >= 1000000ms and time <= 1029999ms GROUP BY time(10s) fill(null)'
    expected = {
        "results": [
            {"statement_id": 0, "series": [{"name": "samples", "columns": ["time", "mean"],
                                            "values": [[1000000, 95], [1010000, 110], [1020000, 121.5]]}]}
        ]
    }  # fmt: skip
    resp = await loaded.get("/query", params={"db": "test", "epoch": "ms", "q": q}, headers=AUTH)
    assert resp.status == 200 and await resp.json() == expected
    resp = await loaded.post("/query?db=test&epoch=ms", data={"q": q}, headers=AUTH)
    assert resp.status == 200 and await resp.json() == expected


# -- several statements, errors --------------------------------------------------------------------


async def test_several_statements(loaded: TestClient) -> None:
    status, body = await get(loaded, "SELECT count(hr_bpm) FROM samples; SELECT * FROM nothing;SHOW DATABASES", epoch="s")
    assert status == 200
    assert [r["statement_id"] for r in body["results"]] == [0, 1, 2]
    assert body["results"][0]["series"][0]["values"] == [[0, 4]]
    assert body["results"][1] == {"statement_id": 1}
    assert body["results"][2]["series"] == [{"name": "databases", "columns": ["name"], "values": [["test"]]}]


@pytest.mark.parametrize(
    "params, message",
    [
        ({}, 'missing required parameter "q"'),
        ({"q": "  "}, 'missing required parameter "q"'),
        ({"q": "SELEC * FROM samples"}, "error parsing query: found SELEC, expected SELECT, DELETE, SHOW, CREATE, DROP, EXPLAIN, GRANT, REVOKE, ALTER, SET, KILL at line 1, char 1"),
        ({"q": "SELECT * FROM"}, "error parsing query: found EOF, expected identifier at line 1, char 15"),
        ({"q": "SELECT $x FROM samples", "params": "{bad"}, None),
    ],
)
async def test_400(loaded: TestClient, params: dict[str, str], message: str | None) -> None:
    resp = await loaded.get("/query", params={"db": "test", **params}, headers=AUTH)
    body = await resp.json()
    assert resp.status == 400
    if message is None:
        assert body["error"].startswith("error parsing query parameters: ")
    else:
        assert body == {"error": message}
        assert resp.headers["X-Influxdb-Error"] == message


async def test_no_statement_but_separators_and_comments_answers_nothing(loaded: TestClient) -> None:
    """influxd 1.6.7: a `q` of `;` or comments alone runs nothing: 200 `{}`, and an empty body when chunked."""
    for q in (";", "; ;", "-- a comment", "/* a comment */ ;"):
        resp = await loaded.get("/query", params={"db": "test", "q": q}, headers=AUTH)
        assert (resp.status, await resp.text()) == (200, "{}\n")
        resp = await loaded.get("/query", params={"db": "test", "q": q, "chunked": "true"}, headers=AUTH)
        assert (resp.status, await resp.text()) == (200, "")


async def test_bind_parameters(loaded: TestClient) -> None:
    result = await one(loaded, "SELECT hr_bpm FROM samples WHERE hr_bpm > $min", epoch="s", params='{"min": 105}')
    assert [row[0] for row in result["series"][0]["values"]] == [1010, 1020]


@pytest.mark.parametrize(
    "q, db, error",
    [
        ("SELECT * FROM samples", "", "database name required"),
        ("SHOW MEASUREMENTS", "", "database name required"),
        ("SHOW RETENTION POLICIES", "", "database name required"),
        ('SELECT * FROM "autogen2"."samples"', "test", "retention policy not found: autogen2"),
        ("EXPLAIN SELECT * FROM samples", "test", "statement not supported by Tracker: EXPLAIN"),
        ("DELETE FROM samples WHERE hr_bpm > 1", "test", "fields not supported in WHERE clause during deletion"),
        ("SELECT * INTO x FROM samples", "test", "statement not supported by Tracker: SELECT INTO"),
    ],
)
async def test_execution_errors_inside_the_result(loaded: TestClient, q: str, db: str, error: str) -> None:
    status, body = await get(loaded, q, db=db)
    assert status == 200
    assert body == {"results": [{"statement_id": 0, "error": error}]}


async def test_a_failing_statement_stops_the_request_as_influxdb_does(loaded: TestClient) -> None:
    """influxd 1.6.7's answers: a statement that fails ends the request; the statements after it are
    "not executed", answered under the failed one's statement_id, which (without chunking) replaces
    its own error. The last statement's error is shown as it is."""
    failing, counting = 'SELECT * FROM "test"."x"."samples"', "SELECT count(hr_bpm) FROM samples"
    status, body = await get(loaded, f"{failing}; {counting}", epoch="s")
    assert (status, body["results"]) == (200, [{"statement_id": 0, "error": "not executed"}])
    status, body = await get(loaded, f"{counting}; {failing}", epoch="s")
    assert body["results"][0]["series"][0]["values"] == [[0, 4]]
    assert body["results"][1] == {"statement_id": 1, "error": "retention policy not found: x"}
    status, body = await get(loaded, f"{counting}; SELECT nosuch(hr_bpm) FROM samples; {counting}; SHOW DATABASES")
    assert [result.get("error") for result in body["results"]] == [None, "not executed"]
    assert body["results"][1]["statement_id"] == 1
    # chunked: each answer as it comes, the error first, then one "not executed" per statement left
    resp = await loaded.get(
        "/query", params={"q": f"{failing}; {counting}; SHOW DATABASES", "db": "test", "chunked": "true"}, headers=AUTH
    )
    lines = [json.loads(line) for line in (await resp.text()).splitlines()]
    assert lines == [
        {"results": [{"statement_id": 0, "error": "retention policy not found: x"}]},
        {"results": [{"statement_id": 0, "error": "not executed"}]},
        {"results": [{"statement_id": 0, "error": "not executed"}]},
    ]


# -- authentication and authorization ----------------------------------------------------------------


@pytest.mark.parametrize(
    "headers, message",
    [
        ({}, "unable to parse authentication credentials"),
        (basic("test", "wrong"), "authorization failed"),
        (basic("nobody", "x"), "authorization failed"),
        (basic("", "x"), "username required"),
    ],
)
async def test_401(loaded: TestClient, headers: dict[str, str], message: str) -> None:
    # credentials come first, even before a missing q
    for params in ({"q": "SHOW DATABASES"}, {}):
        resp = await loaded.get("/query", params=params, headers=headers)
        assert resp.status == 401
        assert await resp.json() == {"error": message}
        assert resp.headers["WWW-Authenticate"] == 'Basic realm="InfluxDB"'


async def test_shares(loaded: TestClient, add_user: AddUser, accounts: Accounts) -> None:
    await add_user("friend", "friendpw1")
    await add_user("stranger", "strangerpw")
    await accounts.add_share("test", "friend")
    friend, stranger = basic("friend", "friendpw1"), basic("stranger", "strangerpw")

    status, body = await get(loaded, "SELECT count(hr_bpm) FROM samples", headers=friend, epoch="s")
    assert status == 200 and body["results"][0]["series"][0]["values"] == [[0, 4]]
    status, body = await get(loaded, "SHOW DATABASES", headers=friend)
    assert body["results"][0]["series"][0]["values"] == [["friend"], ["test"]]
    status, body = await get(loaded, "SELECT count(hr_bpm) FROM samples", headers=friend, db="friend")
    assert status == 200 and body == {"results": [{"statement_id": 0}]}  # own, empty

    # a viewer never writes
    resp = await loaded.post("/write?db=test", data="samples hr_bpm=1 1", headers=friend)
    assert resp.status == 403

    status, body = await get(loaded, "SELECT * FROM samples", headers=stranger)
    assert status == 403
    assert body == {"error": "error authorizing query: stranger not authorized to execute statement 'SELECT', requires READ on test"}
    # unknown databases look the same as other people's
    status, body = await get(loaded, "SHOW MEASUREMENTS", headers=stranger, db="nosuchdb")
    assert status == 403 and body["error"].endswith("requires READ on nosuchdb")
    # one refused statement refuses the whole query, before anything runs
    status, body = await get(loaded, 'SHOW DATABASES; SELECT * FROM "test"."autogen"."samples"', headers=stranger, db="stranger")
    assert status == 403
    status, body = await get(loaded, "SHOW DATABASES", headers=stranger)
    assert body["results"][0]["series"][0]["values"] == [["stranger"]]


@pytest.mark.parametrize(
    "q, needs",
    [
        ("SELECT * INTO copy FROM samples", "WRITE"),
        ("EXPLAIN SELECT * FROM samples", None),
    ],
)
async def test_unsupported_statements_check_rights_first(
    loaded: TestClient, add_user: AddUser, accounts: Accounts, q: str, needs: str | None
) -> None:
    """Another user's database is refused (403) before "not supported" (200) is said, as InfluxDB
    checks rights before it runs anything; a read share gives no right to change data."""
    await add_user("friend", "friendpw1")
    await add_user("stranger", "strangerpw")
    await accounts.add_share("test", "friend")
    prefix = "not authorized to execute statement '" + q + "', requires "
    status, body = await get(loaded, q, headers=basic("stranger", "strangerpw"), db="test")
    assert status == 403 and body["error"] == f"error authorizing query: stranger {prefix}READ on test"
    status, body = await get(loaded, q, headers=basic("friend", "friendpw1"), db="test")
    if needs == "WRITE":
        assert status == 403 and body["error"] == f"error authorizing query: friend {prefix}WRITE on test"
    else:
        assert status == 200 and body["results"][0]["error"].startswith("statement not supported by Tracker")
    # An ON clause names the database as well as `db` does.
    cq = "DROP CONTINUOUS QUERY cq ON test"
    status, body = await get(loaded, cq, headers=basic("stranger", "strangerpw"), db="stranger")
    assert status == 403 and body["error"].endswith("requires READ on test")
    status, body = await get(loaded, q, headers=basic("friend", "friendpw1"), db="friend")
    assert status == 200 and body["results"][0]["error"].startswith("statement not supported by Tracker")


async def test_user_regexes_run_in_re2(loaded: TestClient) -> None:
    """InfluxDB's regexes are Go's RE2: linear time, so no lookaround or backreferences. A catastrophic
    pattern on a long tag value answers at once (Python's `re` would backtrack for hours)."""
    status, body = await get(loaded, "SELECT hr_bpm FROM samples WHERE device =~ /a(?=b)/")
    # influxd 1.6.7's answers, word for word
    assert (status, body["error"]) == (
        400, "error parsing query: error parsing regexp: invalid or unsupported Perl syntax: `(?=` at line 1, char 43"
    )
    status, body = await get(loaded, r"SHOW TAG VALUES WITH KEY =~ /(d)\1/")
    assert (status, body["error"]) == (400, "error parsing query: error parsing regexp: invalid escape sequence: `\\1` at line 1, char 28")
    tag = "a" * 40 + "!"
    assert (await loaded.post("/write?db=test", data=f"samples,device={tag} hr_bpm=7 5000000000000", headers=AUTH)).status == 204
    result = await one(loaded, "SELECT hr_bpm FROM samples WHERE device =~ /(a+)+!$/", epoch="s")
    assert result["series"][0]["values"] == [[5000, 7]]
    assert await one(loaded, "SELECT hr_bpm FROM samples WHERE device =~ /(a+)+$/") == {"statement_id": 0}


@pytest.mark.parametrize("settings", [{"max_select_buckets": 100}], indirect=True)
async def test_max_select_buckets_refuses_before_the_work(loaded: TestClient) -> None:
    window = "time >= 1000s AND time < 1040s"  # 40 buckets of 1 s
    result = await one(loaded, f"SELECT count(hr_bpm) FROM samples WHERE {window} GROUP BY time(1s)")
    assert len(result["series"][0]["values"]) == 40
    result = await one(loaded, "SELECT count(hr_bpm) FROM samples WHERE time >= 1000s AND time < 1101s GROUP BY time(1s)")
    assert result == {"statement_id": 0, "error": "max-select-buckets limit exceeded: (101/100)"}
    # Every series' buckets count: three devices (none, watch, bike) of 40 buckets are 120.
    result = await one(loaded, f"SELECT count(hr_bpm) FROM samples WHERE {window} GROUP BY time(1s), *")
    assert result == {"statement_id": 0, "error": "max-select-buckets limit exceeded: (120/100)"}
    # With no lower time bound the count starts at the first bucket holding data (1000 s here).
    result = await one(loaded, "SELECT count(hr_bpm) FROM samples WHERE time < 1101s GROUP BY time(1s)")
    assert result == {"statement_id": 0, "error": "max-select-buckets limit exceeded: (101/100)"}


async def test_create_database(loaded: TestClient) -> None:
    resp = await loaded.post("/query", data={"q": 'CREATE DATABASE "test"'}, headers=AUTH)
    assert resp.status == 200
    assert await resp.json() == {"results": [{"statement_id": 0}]}
    resp = await loaded.post("/query?q=CREATE+DATABASE+test+WITH+DURATION+1d", headers=AUTH)
    assert resp.status == 200 and await resp.json() == {"results": [{"statement_id": 0}]}
    resp = await loaded.post("/query", data={"q": 'CREATE DATABASE "telegraf"'}, headers=AUTH)
    assert resp.status == 403
    assert (await resp.json())["error"] == (
        "error authorizing query: test not authorized to execute statement 'CREATE DATABASE \"telegraf\"', requires admin privilege"
    )


@pytest.mark.parametrize("q", ["DROP DATABASE test", "CREATE USER x WITH PASSWORD 'y'", "GRANT ALL TO test", "SHOW USERS"])
async def test_admin_statements_are_refused(loaded: TestClient, q: str) -> None:
    status, body = await get(loaded, q)
    assert status == 403
    assert body["error"].startswith("error authorizing query: test not authorized to execute statement '")
    assert body["error"].endswith("requires admin privilege")


# -- SHOW ------------------------------------------------------------------------------------------


async def test_grafana_test_buttons(loaded: TestClient) -> None:
    assert await one(loaded, "SHOW measurements") == {
        "statement_id": 0,
        "series": [{"name": "measurements", "columns": ["name"], "values": [["samples"]]}],
    }
    resp = await loaded.get("/query", params={"q": 'SHOW RETENTION POLICIES on "test"'}, headers=AUTH)
    assert resp.status == 200
    assert await resp.json() == {
        "results": [
            {
                "statement_id": 0,
                "series": [
                    {
                        "columns": ["name", "duration", "shardGroupDuration", "replicaN", "default"],
                        "values": [["autogen", "0s", "168h0m0s", 1, True]],
                    }
                ],
            }
        ]
    }


async def test_show_measurements_variants(loaded: TestClient, add_user: AddUser) -> None:
    assert (await one(loaded, "SHOW MEASUREMENTS WITH MEASUREMENT =~ /(?i)SAM/ LIMIT 100"))["series"][0]["values"] == [["samples"]]
    assert await one(loaded, "SHOW MEASUREMENTS WITH MEASUREMENT = other") == {"statement_id": 0}
    assert await one(loaded, "SHOW MEASUREMENTS WHERE device = 'watch'") != {"statement_id": 0}
    assert await one(loaded, "SHOW MEASUREMENTS WHERE device = 'car'") == {"statement_id": 0}
    await add_user("empty", "emptypw12")
    resp = await loaded.get("/query", params={"q": "SHOW MEASUREMENTS", "db": "empty"}, headers=basic("empty", "emptypw12"))
    assert await resp.json() == {"results": [{"statement_id": 0}]}


async def test_show_field_and_tag_keys(loaded: TestClient) -> None:
    assert (await one(loaded, 'SHOW FIELD KEYS FROM "samples"'))["series"] == [
        {"name": "samples", "columns": ["fieldKey", "fieldType"],
         "values": [["cad_rpm", "float"], ["hr_bpm", "float"], ["pwr_w", "float"]]}
    ]  # fmt: skip
    assert await one(loaded, 'SHOW FIELD KEYS FROM "other"') == {"statement_id": 0}
    assert (await one(loaded, "SHOW TAG KEYS"))["series"] == [{"name": "samples", "columns": ["tagKey"], "values": [["device"]]}]
    assert (await one(loaded, 'SHOW TAG KEYS ON "test" FROM samples', db=""))["series"][0]["values"] == [["device"]]


async def test_show_tag_values(loaded: TestClient) -> None:
    result = await one(loaded, 'SHOW TAG VALUES FROM "samples" WITH KEY = "device"')
    assert result["series"] == [{"name": "samples", "columns": ["key", "value"], "values": [["device", "bike"], ["device", "watch"]]}]
    assert [row[1] for row in result["series"][0]["values"]] == ["bike", "watch"]  # what Grafana reads
    result = await one(loaded, "SHOW TAG VALUES WITH KEY =~ /dev/ WHERE device =~ /^w/")
    assert result["series"][0]["values"] == [["device", "watch"]]
    assert await one(loaded, 'SHOW TAG VALUES WITH KEY = "host"') == {"statement_id": 0}


async def test_show_series(loaded: TestClient) -> None:
    result = await one(loaded, "SHOW SERIES")
    assert result["series"] == [{"columns": ["key"], "values": [["samples"], ["samples,device=bike"], ["samples,device=watch"]]}]
    result = await one(loaded, "SHOW SERIES WHERE device = 'bike'")
    assert result["series"][0]["values"] == [["samples,device=bike"]]


async def test_show_field_keys_sees_fields_written_later(loaded: TestClient) -> None:
    await one(loaded, "SELECT * FROM samples")  # remembers the fields found so far
    assert (await loaded.post("/write?db=test&precision=s", data="samples temp_c=21 2000", headers=AUTH)).status == 204
    keys = [row[0] for row in (await one(loaded, "SHOW FIELD KEYS"))["series"][0]["values"]]
    assert keys == ["cad_rpm", "hr_bpm", "pwr_w", "temp_c"]
    result = await one(loaded, "SELECT * FROM samples WHERE time >= 2000s", epoch="s")
    assert result["series"][0]["columns"] == ["time", "cad_rpm", "device", "hr_bpm", "pwr_w", "temp_c"]
    assert result["series"][0]["values"] == [[2000, None, None, None, None, 21]]


# -- transport: pretty, gzip, POST forms, OPTIONS, streaming ------------------------------------------


async def test_pretty(loaded: TestClient) -> None:
    resp = await loaded.get("/query", params={"q": "SHOW DATABASES", "pretty": "true"}, headers=AUTH)
    text = await resp.text()
    assert text.startswith('{\n  "results": [\n') and text.endswith("}\n")
    assert json.loads(text)["results"][0]["series"][0]["values"] == [["test"]]


async def test_gzip_only_when_asked_and_only_200(loaded: TestClient) -> None:
    resp = await loaded.get(
        "/query", params={"q": "SHOW DATABASES"}, headers={**AUTH, "Accept-Encoding": "gzip"}, auto_decompress=False
    )
    assert resp.status == 200 and resp.headers["Content-Encoding"] == "gzip"
    assert json.loads(gzip.decompress(await resp.read()))["results"][0]["series"][0]["values"] == [["test"]]
    resp = await loaded.get("/query", params={"q": "SHOW DATABASES"}, headers={**AUTH, "Accept-Encoding": "identity"}, auto_decompress=False)
    assert "Content-Encoding" not in resp.headers
    resp = await loaded.get("/query", params={"q": "BAD"}, headers={**AUTH, "Accept-Encoding": "gzip"}, auto_decompress=False)
    assert resp.status == 400 and "Content-Encoding" not in resp.headers


async def test_headers_and_options(loaded: TestClient) -> None:
    resp = await loaded.get("/query", params={"q": "SHOW DATABASES"}, headers={**AUTH, "X-Request-Id": "q-1"})
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.headers["X-Influxdb-Version"] == "1.8.10" and resp.headers["X-Request-Id"] == "q-1"
    resp = await loaded.options("/query")
    assert resp.status == 204


async def test_post_form_and_url(loaded: TestClient) -> None:
    resp = await loaded.post("/query", data={"q": "SELECT count(hr_bpm) FROM samples", "db": "test", "epoch": "s"}, headers=AUTH)
    assert (await resp.json())["results"][0]["series"][0]["values"] == [[0, 4]]
    # influxdb-python posts with q in the URL and no form
    resp = await loaded.post("/query?db=test&epoch=s&q=SELECT+count(hr_bpm)+FROM+samples", headers=AUTH)
    assert (await resp.json())["results"][0]["series"][0]["values"] == [[0, 4]]


async def write_many(client: TestClient, count: int, start_s: int = 100_000) -> None:
    for first in range(0, count, 20_000):
        lines = "\n".join(
            f"samples hr_bpm={100 + i % 50},lat={52 + i * 1e-6:.6f} {start_s + i}" for i in range(first, min(count, first + 20_000))
        )
        resp = await client.post("/write?db=test&precision=s", data=lines, headers=AUTH)
        assert resp.status == 204


async def test_chunked(loaded: TestClient) -> None:
    await write_many(loaded, 25)
    resp = await loaded.get(
        "/query",
        params={"db": "test", "q": "SELECT hr_bpm FROM samples WHERE time >= 100000s; SHOW DATABASES; SELECT hr_bpm FROM samples GROUP BY device",
                "chunked": "true", "chunk_size": "10", "epoch": "s"},
        headers=AUTH,
    )  # fmt: skip
    assert resp.status == 200
    lines = [json.loads(line) for line in (await resp.text()).splitlines()]
    first = [line["results"][0] for line in lines if line["results"][0]["statement_id"] == 0]
    assert [len(r["series"][0]["values"]) for r in first] == [10, 10, 5]
    assert [r.get("partial") for r in first] == [True, True, None]
    assert [r["series"][0].get("partial") for r in first] == [True, True, None]
    assert [v[0] for r in first for v in r["series"][0]["values"]] == list(range(100_000, 100_025))
    second = [line["results"][0] for line in lines if line["results"][0]["statement_id"] == 1]
    assert second == [{"statement_id": 1, "series": [{"name": "databases", "columns": ["name"], "values": [["test"]]}]}]
    third = [line["results"][0] for line in lines if line["results"][0]["statement_id"] == 2]
    # the untagged series has 3 + 25 rows; "bike" has no hr_bpm, so no series at all
    assert [r["series"][0]["tags"] for r in third] == [{"device": ""}, {"device": ""}, {"device": ""}, {"device": "watch"}]
    assert [r.get("partial") for r in third] == [True, True, True, None]
    assert [r["series"][0].get("partial") for r in third] == [True, True, None, None]
    assert [len(r["series"][0]["values"]) for r in third] == [10, 10, 8, 1]
    # an empty statement still answers one line
    resp = await loaded.get("/query", params={"db": "test", "q": "SELECT * FROM other", "chunked": "true"}, headers=AUTH)
    assert await resp.text() == '{"results":[{"statement_id":0}]}\n'


async def test_chunked_splits_selects_and_show_series_and_field_keys_only(loaded: TestClient) -> None:
    """As influxd 1.6.7 answers with chunk_size=1: SHOW SERIES and SHOW FIELD KEYS run as SELECTs there
    and come in chunks; SHOW TAG VALUES, TAG KEYS, MEASUREMENTS, DATABASES come whole, one line per series."""
    async def lines(q: str) -> list[Any]:
        params = {"db": "test", "q": q, "chunked": "true", "chunk_size": "1"}
        resp = await loaded.get("/query", params=params, headers=AUTH)
        return [json.loads(line)["results"][0] for line in (await resp.text()).splitlines()]

    tag_values = await lines('SHOW TAG VALUES WITH KEY = "device"')
    assert tag_values == [{"statement_id": 0, "series": [
        {"name": "samples", "columns": ["key", "value"], "values": [["device", "bike"], ["device", "watch"]]}]}]  # fmt: skip
    assert len(await lines("SHOW TAG KEYS")) == 1
    assert len(await lines("SHOW FIELD KEYS")) == 3  # cad_rpm, hr_bpm, pwr_w
    series = await lines("SHOW SERIES")
    assert [result["series"][0]["values"] for result in series] == [[["samples"]], [["samples,device=bike"]], [["samples,device=watch"]]]
    assert [result.get("partial") for result in series] == [True, True, None]


async def test_a_large_answer_streams_and_matches(loaded: TestClient) -> None:
    await write_many(loaded, 30_000)
    resp = await loaded.get(
        "/query", params={"db": "test", "q": "SELECT hr_bpm, lat FROM samples WHERE time >= 100000s", "epoch": "s"}, headers=AUTH
    )
    assert resp.status == 200
    assert resp.headers.get("Transfer-Encoding") == "chunked"  # streamed, not built whole
    assert resp.headers["X-Influxdb-Version"] == "1.8.10"
    values = (await resp.json())["results"][0]["series"][0]["values"]
    assert len(values) == 30_000
    assert values[0] == [100_000, 100, 52] and values[12_345] == [112_345, 100 + 12_345 % 50, 52.012345]
    assert [v[0] for v in values] == list(range(100_000, 130_000))
    resp = await loaded.get(
        "/query",
        params={"db": "test", "q": "SELECT hr_bpm FROM samples WHERE time >= 100000s ORDER BY time DESC", "epoch": "s"},
        headers={**AUTH, "Accept-Encoding": "gzip"},
    )
    assert resp.headers["Content-Encoding"] == "gzip"
    values = (await resp.json())["results"][0]["series"][0]["values"]
    assert [v[0] for v in values] == list(range(129_999, 99_999, -1))
