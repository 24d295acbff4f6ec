"""InfluxQL parser tables: what Grafana, the InfluxDB clients and livetracking.io users send."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracker.influx.influxql import (
    MAX_TIME,
    MIN_TIME,
    BinaryExpr,
    BooleanLiteral,
    Call,
    CreateDatabase,
    DeleteStatement,
    DurationLiteral,
    FieldExpr,
    IntegerLiteral,
    NumberLiteral,
    QueryParseError,
    RegexLiteral,
    SelectStatement,
    ShowDatabases,
    ShowFieldKeys,
    ShowMeasurements,
    ShowRetentionPolicies,
    ShowSeries,
    ShowTagKeys,
    ShowTagValues,
    Source,
    StringLiteral,
    TimeLiteral,
    UnsupportedStatement,
    VarRef,
    Wildcard,
    parse_duration,
    parse_query,
    parse_time_string,
    time_range,
)

NOW = 1_700_000_000_000_000_000  # 2023-11-14T22:13:20Z
S = 1_000_000_000
MS = 1_000_000
TIME = VarRef("time")
B, V, I = BinaryExpr, VarRef, IntegerLiteral  # short names for the bigger expression tables
SAMPLES = Source("samples")


def one(text: str, **params: object) -> object:
    statements = parse_query(text, now_ns=NOW, params=params or None)
    assert len(statements) == 1, statements
    return statements[0]


def select(text: str, **params: object) -> SelectStatement:
    statement = one(text, **params)
    assert isinstance(statement, SelectStatement)
    return statement


# --- the exact queries clients send ------------------------------------------------------------

GRAFANA_PANEL = (
    'SELECT mean("value") FROM "cpu" WHERE time >= 1700000000000ms and time <= 1700003600000ms '
    "GROUP BY time(10s) fill(null)"
)


def test_grafana_default_panel_query() -> None:
    statement = select(GRAFANA_PANEL)
    assert statement == SelectStatement(
        fields=[FieldExpr(Call("mean", (VarRef("value"),)))],
        sources=[Source("cpu")],
        condition=BinaryExpr(
            "AND",
            BinaryExpr(">=", TIME, TimeLiteral(1_700_000_000_000 * MS)),
            BinaryExpr("<=", TIME, TimeLiteral(1_700_003_600_000 * MS)),
        ),
        group_by_time=(10 * S, 0),
        fill="null",
    )
    assert statement.is_aggregate
    assert statement.fields[0].name == "mean"
    assert time_range(statement.condition, NOW) == (1_700_000_000_000_000_000, 1_700_003_600_000_000_001, None)


def test_grafana_tag_filters_and_named_policy() -> None:
    statement = select(
        'SELECT mean("value") FROM "autogen"."cpu" WHERE ("host" = \'a\' AND "x" =~ /b\\/c/) '
        "AND time >= 1700000000000ms and time <= 1700003600000ms GROUP BY time(10s), \"host\" fill(none)"
    )
    assert statement.sources == [Source("cpu", retention_policy="autogen")]
    assert statement.group_by_tags == ["host"]
    assert statement.fill == "none"
    start, end, rest = time_range(statement.condition, NOW)
    assert (start, end) == (1_700_000_000_000_000_000, 1_700_003_600_000_000_001)
    assert rest == BinaryExpr(
        "AND", BinaryExpr("=", VarRef("host"), StringLiteral("a")), BinaryExpr("=~", VarRef("x"), RegexLiteral("b/c"))
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SHOW measurements", ShowMeasurements()),
        ('SHOW RETENTION POLICIES on "db"', ShowRetentionPolicies("db")),
        ("SHOW RETENTION POLICIES", ShowRetentionPolicies(None)),
        ("show retention policies ON telegraf", ShowRetentionPolicies("telegraf")),
        ("SHOW DATABASES", ShowDatabases()),
        ('SHOW TAG VALUES FROM "samples" WITH KEY = "device"', ShowTagValues([SAMPLES], "=", ["device"])),
        ('SHOW FIELD KEYS FROM "samples"', ShowFieldKeys([SAMPLES])),
        ("SHOW FIELD KEYS", ShowFieldKeys()),
        (
            "SHOW MEASUREMENTS WITH MEASUREMENT =~ /(?i)sam/ LIMIT 100",
            ShowMeasurements(name_op="=~", name_value="(?i)sam", limit=100),
        ),
        ("SHOW MEASUREMENTS WITH MEASUREMENT = 'samples'", ShowMeasurements(name_op="=", name_value="samples")),
        ('SHOW MEASUREMENTS ON "ann" WITH MEASUREMENT != samples', ShowMeasurements("ann", "!=", "samples")),
        (
            "SHOW MEASUREMENTS WHERE \"device\" = 'watch' LIMIT 5 OFFSET 2",
            ShowMeasurements(
                condition=BinaryExpr("=", VarRef("device"), StringLiteral("watch")), limit=5, offset=2
            ),
        ),
        ('SHOW TAG KEYS FROM "samples"', ShowTagKeys([SAMPLES])),
        ("SHOW TAG KEYS", ShowTagKeys()),
        ('SHOW TAG VALUES WITH KEY = "host"', ShowTagValues([], "=", ["host"])),
        ('SHOW TAG VALUES FROM samples WITH KEY IN ("a", "b")', ShowTagValues([SAMPLES], "IN", ["a", "b"])),
        ("SHOW TAG VALUES WITH KEY =~ /^dev/", ShowTagValues([], "=~", ["^dev"])),
        ("SHOW TAG VALUES WITH KEY != device", ShowTagValues([], "!=", ["device"])),
        (
            "SHOW TAG VALUES FROM \"samples\" WITH KEY = \"device\" WHERE \"sport\" =~ /run/ LIMIT 10",
            ShowTagValues(
                [SAMPLES], "=", ["device"], condition=BinaryExpr("=~", VarRef("sport"), RegexLiteral("run")), limit=10
            ),
        ),
        ("SHOW SERIES", ShowSeries()),
        (
            "SHOW SERIES ON ann FROM samples WHERE device = 'watch'",
            ShowSeries([SAMPLES], BinaryExpr("=", VarRef("device"), StringLiteral("watch")), database="ann"),
        ),
        ('CREATE DATABASE "telegraf"', CreateDatabase("telegraf")),
        ("create database ann", CreateDatabase("ann")),
        ("CREATE DATABASE x WITH DURATION 8h REPLICATION 1 SHARD DURATION 1h NAME \"rp\"", CreateDatabase("x")),
    ],
)
def test_show_and_create(text: str, expected: object) -> None:
    assert one(text) == expected


def test_show_name_matching_helpers() -> None:
    assert ShowMeasurements(name_op="=~", name_value="(?i)sam").matches_name("Samples")
    assert not ShowMeasurements(name_op="!~", name_value="sam").matches_name("samples")
    assert ShowMeasurements().matches_name("anything")
    tag_values = one('SHOW TAG VALUES WITH KEY IN ("a", "b")')
    assert isinstance(tag_values, ShowTagValues)
    assert tag_values.matches_key("a") and not tag_values.matches_key("c")
    assert ShowTagValues([], "=~", ["^dev"]).matches_key("device")
    assert not ShowTagValues([], "!=", ["device"]).matches_key("device")


# --- livetracking.io examples and SELECT forms ----------------------------------------------------


def test_livetracking_last_ten_minutes() -> None:
    statement = select("SELECT * FROM samples WHERE time > now() - 10m")
    assert statement.fields == [FieldExpr(Wildcard())]
    assert statement.sources == [SAMPLES]
    assert statement.condition == BinaryExpr(">", TIME, TimeLiteral(NOW - 600 * S))
    assert not statement.is_aggregate
    assert time_range(statement.condition, NOW) == (NOW - 600 * S + 1, MAX_TIME, None)


def test_livetracking_latest_rows_descending() -> None:
    statement = select("SELECT hr_bpm, pwr_w FROM samples WHERE time > now() - 1h ORDER BY time DESC LIMIT 10")
    assert [f.name for f in statement.fields] == ["hr_bpm", "pwr_w"]
    assert statement.order_desc is True
    assert statement.limit == 10
    assert statement.offset == 0
    assert time_range(statement.condition, NOW)[:2] == (NOW - 3600 * S + 1, MAX_TIME)


@pytest.mark.parametrize(
    ("text", "sources"),
    [
        ("SELECT * FROM samples", [SAMPLES]),
        ('SELECT * FROM "samples"', [SAMPLES]),
        ('SELECT * FROM "ann"."autogen"."samples"', [Source("samples", database="ann", retention_policy="autogen")]),
        ("SELECT * FROM ann..samples", [Source("samples", database="ann")]),
        ('SELECT * FROM "autogen"."samples"', [Source("samples", retention_policy="autogen")]),
        ("SELECT * FROM /^sam/", [Source(regex=RegexLiteral("^sam"))]),
        (
            'SELECT * FROM "ann"."autogen"./s\\/x/',
            [Source(regex=RegexLiteral("s/x"), database="ann", retention_policy="autogen")],
        ),
        ("SELECT * FROM samples, other", [SAMPLES, Source("other")]),
        ('SELECT * FROM "we ird""', None),
    ],
)
def test_sources(text: str, sources: list[Source] | None) -> None:
    if sources is None:
        with pytest.raises(QueryParseError):
            parse_query(text, now_ns=NOW)
        return
    assert select(text).sources == sources


@pytest.mark.parametrize(
    ("fields", "expected", "names"),
    [
        ("*", [FieldExpr(Wildcard())], ["*"]),
        ("*::field", [FieldExpr(Wildcard("field"))], ["*"]),
        ('"hr_bpm"::field AS hr', [FieldExpr(VarRef("hr_bpm", "field"), "hr")], ["hr"]),
        ("lat, lng", [FieldExpr(VarRef("lat")), FieldExpr(VarRef("lng"))], ["lat", "lng"]),
        (
            "(pwr_w_l + pwr_w_r) / 2 AS avg_pwr",
            [
                FieldExpr(
                    BinaryExpr("/", BinaryExpr("+", VarRef("pwr_w_l"), VarRef("pwr_w_r")), IntegerLiteral(2)),
                    "avg_pwr",
                )
            ],
            ["avg_pwr"],
        ),
        ("spd_kph * 1000 / 3600", [FieldExpr(B("/", B("*", V("spd_kph"), I(1000)), I(3600)))], ["spd_kph"]),
        ("-alt_m", [FieldExpr(BinaryExpr("*", IntegerLiteral(-1), VarRef("alt_m")))], ["alt_m"]),
        ("hr_bpm - 0.5", [FieldExpr(BinaryExpr("-", VarRef("hr_bpm"), NumberLiteral(0.5)))], ["hr_bpm"]),
        ("a + b * c", [FieldExpr(BinaryExpr("+", VarRef("a"), BinaryExpr("*", VarRef("b"), VarRef("c"))))], ["a_b_c"]),
        # `time` names the time column and leaves the fields (InfluxDB's RewriteTimeFields)
        ("time, hr_bpm", [FieldExpr(VarRef("hr_bpm"))], ["hr_bpm"]),
        ("hr_bpm, time AS t", [FieldExpr(VarRef("hr_bpm"))], ["hr_bpm"]),
    ],
)
def test_raw_fields(fields: str, expected: list[FieldExpr], names: list[str]) -> None:
    statement = select(f"SELECT {fields} FROM samples")
    assert statement.fields == expected
    assert [f.name for f in statement.fields] == names
    assert statement.time_column == ("t" if "time AS t" in fields else "time")


@pytest.mark.parametrize(
    "function", ["mean", "median", "min", "max", "sum", "count", "first", "last", "spread", "stddev"]
)
def test_every_aggregate(function: str) -> None:
    statement = select(f'SELECT {function.upper()}("hr_bpm") FROM samples WHERE time > now() - 1h GROUP BY time(1m)')
    assert statement.fields == [FieldExpr(Call(function, (VarRef("hr_bpm"),)))]
    assert statement.fields[0].name == function
    assert statement.is_aggregate


def test_aggregate_math_and_aliases() -> None:
    statement = select("SELECT mean(pwr_w_l) + mean(pwr_w_r) AS total, max(hr_bpm) * 2 FROM samples")
    assert [f.name for f in statement.fields] == ["total", "max"]
    assert select("SELECT mean(a) / mean(b) FROM s").fields[0].name == "mean_mean"


@pytest.mark.parametrize(
    ("clause", "interval", "offset"),
    [
        ("time(10s)", 10 * S, 0),
        ("time(1m)", 60 * S, 0),
        ("time(1h30m)", 5400 * S, 0),
        ("time(100ms)", 100 * MS, 0),
        ("time(1h, 15m)", 3600 * S, 900 * S),
        ("time(1h, -15m)", 3600 * S, 2700 * S),  # normalised into [0, interval) like InfluxDB
        ("time(1d)", 86_400 * S, 0),
        ("time(1w)", 604_800 * S, 0),
    ],
)
def test_group_by_time(clause: str, interval: int, offset: int) -> None:
    assert select(f"SELECT mean(hr_bpm) FROM samples GROUP BY {clause}").group_by_time == (interval, offset)


@pytest.mark.parametrize(
    ("clause", "time", "tags"),
    [
        ('GROUP BY "device"', None, ["device"]),
        ("GROUP BY *", None, ["*"]),
        ("GROUP BY time(10s), device, *", (10 * S, 0), ["device", "*"]),
        ('GROUP BY "device", time(5s)', (5 * S, 0), ["device"]),
        ('GROUP BY time(5s), "device"::tag', (5 * S, 0), ["device"]),
    ],
)
def test_group_by_tags(clause: str, time: tuple[int, int] | None, tags: list[str]) -> None:
    statement = select(f"SELECT mean(hr_bpm) FROM samples {clause}")
    assert (statement.group_by_time, statement.group_by_tags) == (time, tags)


@pytest.mark.parametrize(
    ("fill", "expected"),
    [
        ("fill(null)", "null"),
        ("fill(none)", "none"),
        ("FILL(previous)", "previous"),
        ('fill("linear")', "linear"),
        ("fill(linear)", "linear"),
        ("fill(0)", 0.0),
        ("fill(-1.5)", -1.5),
        ("fill(42)", 42.0),
        ("", None),
    ],
)
def test_fill(fill: str, expected: object) -> None:
    assert select(f"SELECT mean(hr_bpm) FROM samples GROUP BY time(1m) {fill}").fill == expected


@pytest.mark.parametrize(
    ("fill", "message"),
    [  # influxd 1.6.7's answers: fill() is an expression, its option's name in lower case; no position
        ("fill(sideways)", "expected number argument in fill()"),
        ("fill(Previous)", "expected number argument in fill()"),
        ("fill(NULL)", "expected number argument in fill()"),
        ("fill(1s)", "expected number argument in fill()"),
        ("fill('x')", "expected number argument in fill()"),
        ("fill(-x)", "expected number argument in fill()"),
        ("fill(true)", "expected number argument in fill()"),
        ("fill()", "fill requires an argument, e.g.: 0, null, none, previous, linear"),
        ("fill(1, 2)", "fill requires an argument, e.g.: 0, null, none, previous, linear"),
        ("fill", "fill must be a function call"),
        ("fill(2) + 1", "fill must be a function call"),
    ],
)
def test_fill_misuse_is_refused_in_influxdbs_words(fill: str, message: str) -> None:
    with pytest.raises(QueryParseError) as caught:
        one(f"SELECT mean(hr_bpm) FROM samples GROUP BY time(1m) {fill}")
    assert caught.value.message == "error parsing query: " + message


@pytest.mark.parametrize(
    ("tail", "order_desc", "limit", "offset"),
    [
        ("", False, None, 0),
        ("ORDER BY time DESC", True, None, 0),
        ("ORDER BY time ASC", False, None, 0),
        ("ORDER BY time", False, None, 0),
        ("order by desc", True, None, 0),
        ("LIMIT 10", False, 10, 0),
        ("LIMIT 0", False, None, 0),
        ("LIMIT 10 OFFSET 20", False, 10, 20),
        ("ORDER BY time DESC LIMIT 1", True, 1, 0),
    ],
)
def test_order_limit_offset(tail: str, order_desc: bool, limit: int | None, offset: int) -> None:
    statement = select(f"SELECT * FROM samples {tail}")
    assert (statement.order_desc, statement.limit, statement.offset) == (order_desc, limit, offset)


@pytest.mark.parametrize(
    ("tail", "slimit", "soffset", "zone"),
    [
        ("SLIMIT 2", 2, 0, None),
        ("SLIMIT 2 SOFFSET 3", 2, 3, None),
        ("SOFFSET 3", 0, 3, None),
        ("LIMIT 1 OFFSET 2 SLIMIT 3 SOFFSET 4 tz('Europe/Berlin')", 3, 4, "Europe/Berlin"),
        ("GROUP BY time(1d) tz('America/St_Johns')", 0, 0, "America/St_Johns"),
        ("TZ('UTC')", 0, 0, "UTC"),
        ("tz('')", 0, 0, ""),  # Go's LoadLocation takes "" as UTC
    ],
)
def test_series_paging_and_time_zone(tail: str, slimit: int, soffset: int, zone: str | None) -> None:
    statement = select(f"SELECT count(hr_bpm) FROM samples WHERE time > now() - 1d {tail}")
    assert (statement.slimit, statement.soffset, statement.time_zone) == (slimit, soffset, zone)


# --- WHERE expressions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("device = 'watch'", BinaryExpr("=", VarRef("device"), StringLiteral("watch"))),
        ("\"device\" != 'it\\'s'", BinaryExpr("!=", VarRef("device"), StringLiteral("it's"))),
        ("device <> 'x'", BinaryExpr("!=", VarRef("device"), StringLiteral("x"))),
        ("hr_bpm > 150", BinaryExpr(">", VarRef("hr_bpm"), IntegerLiteral(150))),
        ("hr_bpm >= 150.5", BinaryExpr(">=", VarRef("hr_bpm"), NumberLiteral(150.5))),
        ("hr_bpm < -3", BinaryExpr("<", VarRef("hr_bpm"), IntegerLiteral(-3))),
        ("hr_bpm <= 1", BinaryExpr("<=", VarRef("hr_bpm"), IntegerLiteral(1))),
        ("device =~ /^w(at|oo)ch$/", BinaryExpr("=~", VarRef("device"), RegexLiteral("^w(at|oo)ch$"))),
        ("device !~ /(?i)WATCH/", BinaryExpr("!~", VarRef("device"), RegexLiteral("(?i)WATCH"))),
        ("path =~ /a\\/b\\d/", BinaryExpr("=~", VarRef("path"), RegexLiteral("a/b\\d"))),
        ('"device"::tag = \'x\'', BinaryExpr("=", VarRef("device", "tag"), StringLiteral("x"))),
        ("flag = true", BinaryExpr("=", VarRef("flag"), BooleanLiteral(True))),
        ("hr_bpm * 2 > 300", B(">", B("*", V("hr_bpm"), I(2)), I(300))),
        (
            "a = 1 OR b = 2 AND c = 3",
            BinaryExpr(
                "OR",
                BinaryExpr("=", VarRef("a"), IntegerLiteral(1)),
                B("AND", B("=", V("b"), I(2)), B("=", V("c"), I(3))),
            ),
        ),
        (
            "(a = 1 OR b = 2) AND c = 3",
            BinaryExpr(
                "AND",
                B("OR", B("=", V("a"), I(1)), B("=", V("b"), I(2))),
                BinaryExpr("=", VarRef("c"), IntegerLiteral(3)),
            ),
        ),
        ("(((a = 1)))", BinaryExpr("=", VarRef("a"), IntegerLiteral(1))),
        ("d = 'x' -- a comment\n", BinaryExpr("=", VarRef("d"), StringLiteral("x"))),
        ("d = /* inline */ 'x'", BinaryExpr("=", VarRef("d"), StringLiteral("x"))),
    ],
)
def test_where_expressions(where: str, expected: object) -> None:
    assert select(f"SELECT * FROM samples WHERE {where}").condition == expected


def test_regex_literal_compiles_and_searches_unanchored() -> None:
    condition = select("SELECT * FROM samples WHERE device =~ /(?i)wat/").condition
    assert isinstance(condition, BinaryExpr) and isinstance(condition.rhs, RegexLiteral)
    assert condition.rhs.compiled.search("my Watch")


# --- time conditions --------------------------------------------------------------------------

T0 = 1_439_856_000 * S  # 2015-08-18T00:00:00Z


@pytest.mark.parametrize(
    ("where", "start", "end"),
    [
        ("time >= 1700000000000ms and time <= 1700003600000ms", 1_700_000_000_000 * MS, 1_700_003_600_000 * MS + 1),
        ("time > 1700000000000ms AND time < 1700003600000ms", 1_700_000_000_000 * MS + 1, 1_700_003_600_000 * MS),
        ("time >= now() - 6h", NOW - 6 * 3600 * S, MAX_TIME),
        ("time >= now() - 6h and time <= now()", NOW - 6 * 3600 * S, NOW + 1),
        ("time > now() - 10m", NOW - 600 * S + 1, MAX_TIME),
        ("time < now() + 1h", MIN_TIME, NOW + 3600 * S),
        ("time >= '2015-08-18T00:00:00Z'", T0, MAX_TIME),
        ("time >= '2015-08-18 00:00:00'", T0, MAX_TIME),
        ("time >= '2015-08-18'", T0, MAX_TIME),
        ("time >= '2015-08-18T02:00:00.5+02:00'", T0 + 500 * MS, MAX_TIME),
        ("time >= '2015-08-18T00:00:00.000000001Z'", T0 + 1, MAX_TIME),
        ("time > '2015-08-18T00:00:00Z' - 1d", T0 - 86_400 * S + 1, MAX_TIME),
        ("time >= 1439856000000000000", T0, MAX_TIME),  # bare integer: ns
        ("time >= 1439856000s", T0, MAX_TIME),
        ("time >= 1439856000000000u", T0, MAX_TIME),
        ("time >= 1439856000000000µs", T0, MAX_TIME),
        ("time >= 1439856000000000000ns", T0, MAX_TIME),
        ("time >= 23997600m", T0, MAX_TIME),
        ("time >= 399960h", T0, MAX_TIME),
        ("time >= 16665d", T0, MAX_TIME),
        ("time < 2w", MIN_TIME, 2 * 604_800 * S),
        ("time = 1439856000s", T0, T0 + 1),
        ("1439856000s <= time", T0, MAX_TIME),  # time on the right flips the operator
        ("now() - 1h > time", MIN_TIME, NOW - 3600 * S),
        ("\"time\" > 5", 6, MAX_TIME),
        ("time > 5 and time > 10 and time < 100 and time < 50", 11, 50),  # the tightest bounds win
        ("time > 100 and time < 50", 101, 50),  # empty range: start >= end
    ],
)
def test_time_range(where: str, start: int, end: int) -> None:
    condition = select(f"SELECT * FROM samples WHERE {where}").condition
    assert time_range(condition, NOW) == (start, end, None)


def test_time_range_keeps_the_rest_of_the_condition() -> None:
    condition = select(
        "SELECT * FROM samples WHERE (\"host\" = 'a' AND \"x\" =~ /b/) AND time >= now() - 1h AND hr_bpm > 100"
    ).condition
    start, end, rest = time_range(condition, NOW)
    assert (start, end) == (NOW - 3600 * S, MAX_TIME)
    assert rest == BinaryExpr(
        "AND",
        B("AND", B("=", V("host"), StringLiteral("a")), B("=~", V("x"), RegexLiteral("b"))),
        BinaryExpr(">", VarRef("hr_bpm"), IntegerLiteral(100)),
    )
    or_condition = select("SELECT * FROM samples WHERE (a = 1 OR b = 2) AND time > 0").condition
    assert time_range(or_condition, NOW)[2] == BinaryExpr(
        "OR", BinaryExpr("=", VarRef("a"), IntegerLiteral(1)), BinaryExpr("=", VarRef("b"), IntegerLiteral(2))
    )


def test_time_range_without_condition_and_on_unfolded_trees() -> None:
    assert time_range(None, NOW) == (MIN_TIME, MAX_TIME, None)
    assert MIN_TIME == -(2**63) + 2 and MAX_TIME == 2**63 - 1
    built = BinaryExpr(">=", TIME, BinaryExpr("-", Call("now"), DurationLiteral(60 * S)))
    assert time_range(built, NOW) == (NOW - 60 * S, MAX_TIME, None)


@pytest.mark.parametrize(
    "where",
    [
        "time > now() - 1h OR device = 'x'",
        "device = 'x' OR (time > 1 AND time < 5)",
        "time != 5",
        "time =~ /x/",
    ],
)
def test_unusable_time_conditions_are_refused_at_parse_time(where: str) -> None:
    with pytest.raises(QueryParseError, match=r"^error parsing query: .*time"):
        parse_query(f"SELECT * FROM samples WHERE {where}", now_ns=NOW)


def test_time_range_refuses_or_on_hand_built_trees() -> None:
    tree = BinaryExpr("OR", BinaryExpr(">", TIME, TimeLiteral(1)), BinaryExpr("=", VarRef("a"), IntegerLiteral(1)))
    with pytest.raises(QueryParseError, match="^error parsing query: "):
        time_range(tree, NOW)


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("1970-01-01T00:00:00Z", 0),
        ("2015-08-18T00:00:00Z", T0),
        ("2015-08-18 00:00:00", T0),
        ("2015-08-18T00:00:00.123456789Z", T0 + 123_456_789),
        ("2015-08-17T23:00:00-01:00", T0),
        ("1969-12-31T23:59:59Z", -S),
    ],
)
def test_parse_time_string(text: str, ns: int) -> None:
    assert parse_time_string(text) == ns


@pytest.mark.parametrize("text", ["2015-13-01T00:00:00Z", "2015-02-30", "yesterday", "2015-08-18T00:00Z", ""])
def test_parse_time_string_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time_string(text)


@pytest.mark.parametrize(
    ("text", "ns"),
    [("1ns", 1), ("10u", 10_000), ("10µ", 10_000), ("10us", 10_000), ("100ms", 100 * MS), ("5s", 5 * S),
     ("10m", 600 * S), ("1h", 3600 * S), ("7d", 7 * 86_400 * S), ("1w", 604_800 * S), ("1h30m", 5400 * S)],
)  # fmt: skip
def test_parse_duration(text: str, ns: int) -> None:
    assert parse_duration(text) == ns


# --- multiple statements, unsupported statements -----------------------------------------------


def test_statements_split_on_semicolons_outside_quotes_and_regexes() -> None:
    statements = parse_query(
        "SELECT * FROM samples WHERE a = 'x;y' AND b =~ /;/; SHOW DATABASES;;SHOW MEASUREMENTS;", now_ns=NOW
    )
    assert [type(s) for s in statements] == [SelectStatement, ShowDatabases, ShowMeasurements]
    first = statements[0]
    assert isinstance(first, SelectStatement)
    assert first.condition == BinaryExpr(
        "AND", BinaryExpr("=", VarRef("a"), StringLiteral("x;y")), BinaryExpr("=~", VarRef("b"), RegexLiteral(";"))
    )


@pytest.mark.parametrize("text", ["", "   ", ";", " ; ;", "-- only a comment"])
def test_empty_query_has_no_statements(text: str) -> None:
    assert parse_query(text, now_ns=NOW) == []


@pytest.mark.parametrize(
    ("text", "keyword"),
    [
        ('DROP DATABASE "x"', "DROP DATABASE"),
        ("DROP SHARD 1", "DROP SHARD"),
        ("GRANT ALL TO ann", "GRANT ALL"),
        ("REVOKE READ ON db FROM ann", "REVOKE READ"),
        ("SELECT * INTO other FROM samples", "SELECT INTO"),
        ("SELECT mean(hr_bpm) INTO \"db\".\"rp\".\"m\" FROM samples GROUP BY time(1m)", "SELECT INTO"),
        ("SHOW USERS", "SHOW USERS"),
        ("SHOW STATS", "SHOW STATS"),
        ("SHOW TAG VALUES CARDINALITY WITH KEY = \"x\"", "SHOW TAG VALUES CARDINALITY"),
        ("SHOW SERIES EXACT CARDINALITY", "SHOW SERIES EXACT CARDINALITY"),
        ("SHOW FIELD KEY CARDINALITY", "SHOW FIELD KEY CARDINALITY"),
        ("SHOW MEASUREMENT CARDINALITY", "SHOW MEASUREMENT CARDINALITY"),
        ("CREATE USER ann WITH PASSWORD 'p;w'", "CREATE USER"),
        ("CREATE RETENTION POLICY rp ON db DURATION 1d REPLICATION 1", "CREATE RETENTION POLICY"),
        ("ALTER RETENTION POLICY rp ON db DURATION 1d", "ALTER RETENTION POLICY"),
        ("EXPLAIN SELECT * FROM samples", "EXPLAIN"),
        ("KILL QUERY 12", "KILL QUERY"),
        ("SET PASSWORD FOR ann = 'x'", "SET PASSWORD"),
        ("DROP CONTINUOUS QUERY cq ON db", "DROP CONTINUOUS QUERY"),
    ],
)
def test_unsupported_statements_parse_into_objects(text: str, keyword: str) -> None:
    statement, show = parse_query(f"{text}; SHOW DATABASES", now_ns=NOW)
    assert isinstance(statement, UnsupportedStatement) and show == ShowDatabases()
    assert (statement.text, statement.keyword) == (text, keyword)


def test_a_semicolon_inside_a_regex_does_not_end_a_deletion() -> None:
    statement, show = parse_query("DROP SERIES FROM /a;b/; SHOW DATABASES", now_ns=NOW)
    assert isinstance(statement, DeleteStatement) and show == ShowDatabases()
    assert statement.sources[0].regex is not None and statement.sources[0].regex.pattern == "a;b"


@pytest.mark.parametrize(
    ("text", "database"),
    [
        ("CREATE CONTINUOUS QUERY cq ON alice BEGIN SELECT mean(x) INTO m FROM samples GROUP BY time(1h) END", "alice"),
        ('DROP CONTINUOUS QUERY cq ON "bob"', "bob"),
        ("SHOW CONTINUOUS QUERIES", None),
    ],
)
def test_unsupported_statements_name_the_database_of_their_on_clause(text: str, database: str | None) -> None:
    [statement] = parse_query(text, now_ns=NOW)
    assert isinstance(statement, UnsupportedStatement) and statement.database == database


# --- bind parameters -----------------------------------------------------------------------------


def test_bind_parameters() -> None:
    statement = select(
        "SELECT * FROM $m WHERE device = $device AND hr_bpm > $min AND x = $f AND ok = $ok AND "
        "d =~ $re AND time > now() - $window LIMIT $n",
        m="samples",
        device="watch",
        min=100,
        f=1.5,
        ok=True,
        re={"regex": "^w"},
        window={"duration": "1h"},
        n={"integer": 5},
    )
    assert statement.sources == [SAMPLES]
    assert statement.limit == 5
    start, _, rest = time_range(statement.condition, NOW)
    assert start == NOW - 3600 * S + 1
    terms = [
        BinaryExpr("=", VarRef("device"), StringLiteral("watch")),
        BinaryExpr(">", VarRef("hr_bpm"), IntegerLiteral(100)),
        BinaryExpr("=", VarRef("x"), NumberLiteral(1.5)),
        BinaryExpr("=", VarRef("ok"), BooleanLiteral(True)),
        BinaryExpr("=~", VarRef("d"), RegexLiteral("^w")),
    ]
    expected = terms[0]
    for term in terms[1:]:
        expected = BinaryExpr("AND", expected, term)
    assert rest == expected
    assert select("SELECT * FROM samples WHERE $f = 1", f={"identifier": "hr_bpm"}).condition == BinaryExpr(
        "=", VarRef("hr_bpm"), IntegerLiteral(1)
    )


def test_missing_bind_parameter() -> None:
    with pytest.raises(QueryParseError, match=r"^error parsing query: missing parameter: device at line 1, char 38$"):
        parse_query("SELECT * FROM samples WHERE device = $device", now_ns=NOW)


# --- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("SELECT", "found EOF, expected identifier, string, number, bool at line 1, char 8"),
        ("SELECT * FROM", "found EOF, expected identifier at line 1, char 15"),
        ("SELECT * FROM samples WHERE", "found EOF, expected identifier, string, number, bool at line 1, char 29"),
        ("SELECT * FROM samples WHERE (a = 1", "found EOF, expected ) at line 1, char 35"),
        ("SELECT * FROM samples WHERE a = 1)", "found ), expected ; at line 1, char 34"),
        ("SELECT * samples", "found samples, expected FROM at line 1, char 10"),
        (
            "SELEC * FROM samples",
            "found SELEC, expected SELECT, DELETE, SHOW, CREATE, DROP, EXPLAIN, GRANT, REVOKE, ALTER, SET, KILL"
            " at line 1, char 1",
        ),
        # the end of the text, placed where influxd 1.6.7 places it
        ("DELETE", "found EOF, expected FROM, WHERE at line 1, char 8"),
        ("DELETE   ", "found EOF, expected FROM, WHERE at line 1, char 8"),
        ("SELECT * FROM samples WHERE a =", "found EOF, expected identifier, string, number, bool at line 1, char 32"),
        ("SELECT * FROM samples WHERE a = ", "found EOF, expected identifier, string, number, bool at line 1, char 32"),
        ("SELECT * FROM samples WHERE a =~", "found EOF, expected regex at line 1, char 34"),
        ("SELECT * FROM samples WHERE (", "found EOF, expected identifier, string, number, bool at line 1, char 30"),
        ("SELECT mean(", "found EOF, expected identifier, string, number, bool at line 1, char 14"),
        ("SELECT hr_bpm,", "found EOF, expected identifier, string, number, bool at line 1, char 16"),
        ("SELECT *", "found EOF, expected FROM at line 1, char 9"),
        ('SELECT * FROM "rider".', "found EOF, expected identifier at line 1, char 24"),
        ("SELECT mean(x) FROM samples GROUP BY time(1m", "found EOF, expected ) at line 1, char 45"),
        # influxd 1.6.7's words for these, without a position
        ("SELECT * FROM samples WHERE time > now() - 10x", "error parsing query: invalid duration"),
        ("SELECT * FROM samples WHERE time > now() - 99999999999h",
         "overflowed duration 99999999999h: choose a smaller duration or INF"),
        ("SELECT hr_bpm FROM samples ORDER BY time DESC, hr_bpm", "error parsing query: only ORDER BY time supported at this time"),
        ("SELECT lat, hr_bpm = 1 OR lat < 2 FROM samples",
         "invalid operator OR in SELECT clause at line 1, char 13; operator is intended for WHERE clause"),
        ("SELECT mean(hr_bpm > 1) FROM samples",
         "invalid operator > in SELECT clause at line 1, char 8; operator is intended for WHERE clause"),
        ("SELECT mean(x) FROM samples GROUP BY time(10)", "found 10, expected duration at line 1, char 43"),
        ("SELECT mean(x) FROM samples GROUP BY time(0s, 5s)", "interval must be greater than 0 at line 1, char 43"),
        ("SELECT * FROM samples\nWHERE a = 'x", "unterminated string starting with 'x at line 2, char 11"),
        # influxd 1.6.7's words and places (one character before the regex), Go's regexp reasons
        ("SELECT * FROM samples WHERE a =~ /x", "bad regex:  at line 1, char 33"),
        ("SELECT * FROM samples WHERE a =~ /(/", "error parsing regexp: missing closing ): `(` at line 1, char 33"),
        ("SELECT mean(/[/) FROM samples", "error parsing regexp: missing closing ]: `[` at line 1, char 12"),
        ("SELECT /x", "bad regex:  at line 1, char 7"),
        ("SELECT /a**/ FROM samples", "error parsing regexp: invalid nested repetition operator: `**` at line 1, char 7"),
        ("SELECT /x{2,1}/ FROM samples", "error parsing regexp: invalid repeat count: `{2,1}` at line 1, char 7"),
        ("SELECT /*/ FROM samples", "error parsing regexp: missing argument to repetition operator: `*` at line 1, char 7"),
        ("SELECT /^l/ + 1 FROM samples", "found +, expected FROM at line 1, char 13"),
        ("SELECT /^l/::field FROM samples", "found ::, expected FROM at line 1, char 12"),
        ("SELECT * FROM samples WHERE a =~ 'x'", "found 'x', expected regex at line 1, char 34"),
        ("SELECT * FROM samples WHERE a = 'x\\q'", "bad escape"),
        ("DELETE FROM samples WHERE time > 'yesterday'", "invalid time string 'yesterday'"),
        ("SHOW SERIES WHERE time > hr_bpm", "invalid time expression"),
        # SLIMIT/SOFFSET and tz() as the real InfluxDB 1.6 words them
        ("SELECT * FROM samples SOFFSET 1 SLIMIT 1", "found SLIMIT, expected ; at line 1, char 33"),
        ("SELECT count(lat) FROM samples SLIMIT x", "found x, expected integer at line 1, char 39"),
        ("SHOW SERIES SLIMIT 1", "found SLIMIT, expected ; at line 1, char 13"),
        ("SHOW TAG VALUES WITH KEY = device SLIMIT 1", "found SLIMIT, expected ; at line 1, char 35"),
        ("SHOW MEASUREMENTS SLIMIT 1", "found SLIMIT, expected ; at line 1, char 19"),
        ("SHOW FIELD KEYS SLIMIT 1", "found SLIMIT, expected ; at line 1, char 17"),
        ("SELECT count(lat) FROM samples WHERE time > now() - 1h tz('Foo/Bar')", "unable to find time zone Foo/Bar"),
        ("SELECT count(lat) FROM samples tz('utc')", "error parsing query: unable to find time zone utc"),
        ("SELECT count(lat) FROM samples tz", "error parsing query: tz must be a function call"),
        ("SELECT count(lat) FROM samples tz ('UTC')", "error parsing query: tz must be a function call"),
        ("SELECT count(lat) FROM samples tz(123)", "error parsing query: expected string argument in tz()"),
        ("SELECT count(lat) FROM samples tz(UTC)", "error parsing query: expected string argument in tz()"),
        ("SELECT count(lat) FROM samples tz('UTC'", "found EOF, expected ) at line 1, char 40"),
        ("SELECT count(lat) FROM samples tz('UTC') LIMIT 1", "found LIMIT, expected ; at line 1, char 42"),
        ("SELECT * FROM samples LIMIT -1", "found -, expected integer"),
        ("SELECT * FROM samples LIMIT x", "found x, expected integer"),
        ("SELECT * FROM samples ORDER BY hr_bpm", "only ORDER BY time supported at this time"),
        ("SELECT * FROM samples, (SELECT * FROM samples)", "a subquery must be the only source of its SELECT"),
        ("SELECT max(v) FROM (SELECT mean(hr_bpm) AS v FROM samples", "found EOF, expected )"),
        ("SELECT v FROM (SHOW DATABASES)", "found SHOW, expected SELECT"),
        ("SELECT * FROM samples WHERE hr_bpm", "invalid condition"),
        ("SELECT * FROM samples WHERE hr_bpm > mean(x)", "function mean() is not allowed in WHERE"),
        ("SELECT * FROM samples WHERE 'a' =~ /x/", "=~ needs a tag or field name on its left"),
        ("SELECT * FROM samples WHERE a > 99999999999999999999", "unable to parse integer"),
        ("SELECT * FROM samples WHERE a = #", "found #"),
        ("SELECT * FROM samples GROUP BY time(1m), time(2m)", "multiple time dimensions in GROUP BY"),
        ("SELECT * FROM samples fill(sideways)", "expected number argument in fill()"),
        ("SHOW", "found EOF, expected CONTINUOUS, DATABASES"),
        ("SHOW foo", "found foo, expected CONTINUOUS"),
        ("SHOW TAG VALUES FROM samples", "found EOF, expected WITH at line 1, char 30"),
        ("SHOW TAG VALUES WITH KEY", "found EOF, expected IN, =, =~ at line 1, char 26"),
        ("SHOW RETENTION POLICIES ON", "found EOF, expected identifier"),
        ("CREATE DATABASE", "found EOF, expected identifier at line 1, char 17"),
        ("CREATE DATABASE a b", "found b, expected ; at line 1, char 19"),
        ("DROP DATABASE 'x", "unterminated string"),
        ("SELECT * FROM a.b.c.d", "too many segments"),
        ("SELECT * FROM samples; SELECT", "found EOF, expected identifier, string, number, bool at line 1, char 31"),
        ("SELECT * FROM samples WHERE x = $", "error parsing query: empty bound parameter"),
        ("SELECT * FROM samples WHERE x = ¹", "found ¹"),  # str.isdigit() is true for it; InfluxQL digits are ASCII
        ("SELECT * FROM samples WHERE x = ٣", "found ٣"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(QueryParseError) as caught:
        parse_query(text, now_ns=NOW)
    assert str(caught.value).startswith("error parsing query: ")
    if message.startswith("error parsing query: "):  # the whole message
        assert str(caught.value) == message
    assert message in str(caught.value)


def test_keywords_must_be_quoted_to_be_names() -> None:
    with pytest.raises(QueryParseError, match="found key, expected"):
        parse_query("SELECT key FROM samples", now_ns=NOW)
    assert select('SELECT "key" FROM samples').fields == [FieldExpr(VarRef("key"))]


# --- pathological input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "SELECT * FROM samples WHERE " + "(" * 10_000 + "a = 1" + ")" * 10_000,
        "SELECT " + "(" * 10_000,
        "SELECT " + "mean(" * 10_000 + "x" + ")" * 10_000 + " FROM s",
        "SELECT * FROM s WHERE " + "a OR b AND c = d + e * (" * 10_000,
        "SELECT * FROM s WHERE " + "-(" * 10_000 + "a",
    ],
)
def test_deep_nesting_is_a_parse_error_not_a_recursion_error(text: str) -> None:
    with pytest.raises(QueryParseError, match="^error parsing query: .*(nested too deeply|too complex)"):
        parse_query(text, now_ns=NOW)


def test_nesting_up_to_the_limit_parses() -> None:
    statement = select("SELECT * FROM samples WHERE " + "(" * 100 + "a = 1" + ")" * 100)
    assert statement.condition == BinaryExpr("=", VarRef("a"), IntegerLiteral(1))


def test_long_flat_and_chain_is_refused_clearly() -> None:
    chain = " AND ".join(f"t{i} = 'v'" for i in range(1000))
    with pytest.raises(QueryParseError, match="too complex"):
        parse_query(f"SELECT * FROM samples WHERE {chain}", now_ns=NOW)


def test_huge_input_is_fine() -> None:
    long_string = "x" * 1_000_000
    statement = select(f"SELECT * FROM samples WHERE device = '{long_string}'")
    assert statement.condition == BinaryExpr("=", VarRef("device"), StringLiteral(long_string))
    many = parse_query("SHOW DATABASES;" * 20_000, now_ns=NOW)
    assert len(many) == 20_000
    terms = " AND ".join(f"t{i} = 'v'" for i in range(200))
    assert select(f"SELECT * FROM samples WHERE {terms}").condition is not None


_FRAGMENTS = list("()'\";/=~!<>*+-.,$:\\ \n¹é") + [
    "SELECT ", "FROM ", "WHERE ", "time", "now()", "10m", "123", "1.5", "AND ", "OR ", "GROUP BY ", "fill(",
    "SHOW ", "TAG ", "VALUES ", "WITH ", "KEY ", "IN ", "x", "samples", "LIMIT ", "µ", "/*", "--", "mean(",
    "ORDER BY ", "DESC", "CREATE DATABASE ", "DROP ",
]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_FRAGMENTS), max_size=30).map("".join) | st.text(max_size=40))
def test_any_input_parses_or_raises_query_parse_error(text: str) -> None:
    try:
        statements = parse_query(text, now_ns=NOW, params={"x": 1})
    except QueryParseError as exc:
        assert str(exc).startswith("error parsing query: ")
        return
    for statement in statements:
        if isinstance(statement, SelectStatement):
            time_range(statement.condition, NOW)  # never fails on a statement the parser accepted


# --- functions: the grammar InfluxDB 1.x accepts, and its compile errors ---------------------------


@pytest.mark.parametrize(
    ("text", "expr"),
    [
        ("percentile(hr_bpm, 95)", Call("percentile", (VarRef("hr_bpm"), IntegerLiteral(95)))),
        ("percentile(hr_bpm, 99.9)", Call("percentile", (VarRef("hr_bpm"), NumberLiteral(99.9)))),
        ("derivative(mean(hr_bpm), 1s)", Call("derivative", (Call("mean", (VarRef("hr_bpm"),)), DurationLiteral(S)))),
        ("count(distinct(hr_bpm))", Call("count", (Call("distinct", (VarRef("hr_bpm"),)),))),
        ("count(DISTINCT hr_bpm)", Call("count", (Call("distinct", (VarRef("hr_bpm"),)),))),
        ("DISTINCT hr_bpm", Call("distinct", (VarRef("hr_bpm"),))),
        ("DISTINCT(hr_bpm)", Call("distinct", (VarRef("hr_bpm"),))),
        ("count(*)", Call("count", (Wildcard(),))),
        ("max(/pwr/)", Call("max", (RegexLiteral("pwr"),))),
        ("top(hr_bpm, device, 3)", Call("top", (VarRef("hr_bpm"), VarRef("device"), IntegerLiteral(3)))),
        ("atan2(lat, lng)", Call("atan2", (VarRef("lat"), VarRef("lng")))),
        ("round(mean(hr_bpm)) * 2", BinaryExpr("*", Call("round", (Call("mean", (VarRef("hr_bpm"),)),)), IntegerLiteral(2))),
        ("MOVING_AVERAGE(hr_bpm, 3)", Call("moving_average", (VarRef("hr_bpm"), IntegerLiteral(3)))),
        ("sqrt(-1 * hr_bpm)", Call("sqrt", (BinaryExpr("*", IntegerLiteral(-1), VarRef("hr_bpm")),))),
    ],
)
def test_function_calls_parse(text: str, expr: object) -> None:
    statement = select(f"SELECT {text} FROM samples GROUP BY time(1m)")
    assert statement.fields[0].expr == expr


@pytest.mark.parametrize(
    ("fields", "names"),
    [
        ("percentile(hr_bpm, 5), percentile(hr_bpm, 95)", ["percentile", "percentile"]),
        ("derivative(mean(hr_bpm)) AS rate", ["rate"]),
        ("round(mean(hr_bpm)) / 2", ["round"]),
        ("count(distinct(hr_bpm))", ["count"]),
        ("max(hr_bpm) - min(hr_bpm)", ["max_min"]),
    ],
)
def test_function_field_names(fields: str, names: list[str]) -> None:
    # Field.Name() in InfluxDB: the alias, else the outer call's name (select.py suffixes repeats).
    assert [f.name for f in select(f"SELECT {fields} FROM samples GROUP BY time(1m)").fields] == names


# Each error as the real InfluxDB 1.6 answers it (inside the statement's result, status 200).
@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("SELECT mean(hr_bpm * 2) FROM samples", "expected field argument in mean()"),
        ("SELECT mean(hr_bpm), pwr_w FROM samples", "mixing aggregate and non-aggregate queries is not supported"),
        ("SELECT mean(hr_bpm) + pwr_w FROM samples", "mixing aggregate and non-aggregate queries is not supported"),
        ("SELECT hr_bpm FROM samples GROUP BY time(1m)", "GROUP BY requires at least one aggregate function"),
        ("SELECT time FROM samples", "at least 1 non-time field must be queried"),
        ("SELECT 1 FROM samples", "field must contain at least one variable"),
        ("SELECT foo(hr_bpm) FROM samples", "undefined function foo()"),
        ("SELECT derivative(hr_bpm) FROM samples GROUP BY time(1m)", "aggregate function required inside the call to derivative"),
        ("SELECT derivative(mean(hr_bpm)) FROM samples", "derivative aggregate requires a GROUP BY interval"),
        ("SELECT derivative(hr_bpm, 10) FROM samples", "second argument to derivative must be a duration, got *influxql.IntegerLiteral"),
        ("SELECT derivative(hr_bpm, -1s) FROM samples", "duration argument must be positive, got -1s"),
        ("SELECT difference(hr_bpm, 1s) FROM samples", "invalid number of arguments for difference, expected 1, got 2"),
        ("SELECT moving_average(hr_bpm) FROM samples", "invalid number of arguments for moving_average, expected 2, got 1"),
        ("SELECT moving_average(hr_bpm, 1) FROM samples", "moving_average window must be greater than 1, got 1"),
        ("SELECT moving_average(hr_bpm, 2.5) FROM samples", "second argument for moving_average must be an integer, got *influxql.NumberLiteral"),
        ("SELECT percentile(hr_bpm) FROM samples", "invalid number of arguments for percentile, expected 2, got 1"),
        ("SELECT percentile(hr_bpm, 'a') FROM samples", "expected float argument in percentile()"),
        ("SELECT percentile(mean(hr_bpm), 5) FROM samples", "expected field argument in percentile()"),
        ("SELECT top(hr_bpm) FROM samples", "invalid number of arguments for top, expected at least 2, got 1"),
        ("SELECT top(hr_bpm, 0) FROM samples", "limit (0) in top function must be at least 1"),
        ("SELECT top(hr_bpm, 5) FROM samples LIMIT 2", "limit (5) in top function can not be larger than the LIMIT (2) in the select statement"),
        ("SELECT top(hr_bpm, 1.5) FROM samples", "expected integer as last argument in top(), found 1.500"),
        ("SELECT top(mean(hr_bpm), 2) FROM samples", "expected first argument to be a field in top(), found mean(hr_bpm)"),
        ("SELECT top(hr_bpm, 2), mean(hr_bpm) FROM samples", "selector function top() cannot be combined with other functions"),
        ("SELECT sample(hr_bpm, 0) FROM samples", "sample window must be greater than 1, got 0"),
        ("SELECT sample(hr_bpm, 'a') FROM samples", "expected integer argument in sample()"),
        ("SELECT distinct(hr_bpm), mean(hr_bpm) FROM samples", "aggregate function distinct() cannot be combined with other functions or fields"),
        ("SELECT distinct() FROM samples", "distinct function requires at least one argument"),
        ("SELECT distinct(hr_bpm, pwr_w) FROM samples", "distinct function can only have one argument"),
        ("SELECT integral(hr_bpm, 5) FROM samples", "second argument must be a duration"),
        ("SELECT integral(mean(hr_bpm)) FROM samples", "expected field argument in integral()"),
        ("SELECT elapsed(hr_bpm, 5) FROM samples", "second argument to elapsed must be a duration, got *influxql.IntegerLiteral"),
        ("SELECT abs() FROM samples", "invalid number of arguments for abs, expected 1, got 0"),
        ("SELECT log(hr_bpm) FROM samples", "invalid number of arguments for log, expected 2, got 1"),
        ("SELECT abs(1) FROM samples", "field must contain at least one variable"),
        ("SELECT 1 + 2 FROM samples", "field must contain at least one variable"),
        ("SELECT mean(*) + 1 FROM samples", "unsupported expression with wildcard: mean()"),
        ("SELECT max(hr_bpm), min(hr_bpm), pwr_w FROM samples", "mixing multiple selector functions with tags or fields is not supported"),
        ("SELECT hr_bpm FROM samples fill(none)", "fill(none) must be used with a function"),
        ("SELECT hr_bpm FROM samples fill(linear)", "fill(linear) must be used with a function"),
        ("SELECT count(distinct(*)) FROM samples", "expected field argument in distinct()"),
        ("SELECT mean(max(hr_bpm)) FROM samples", "expected field argument in mean()"),
        ("SELECT cumulative_sum(hr_bpm, 2) FROM samples", "invalid number of arguments for cumulative_sum, expected 1, got 2"),
        ("SELECT non_negative_derivative(hr_bpm, 1s, 1) FROM samples",
         "invalid number of arguments for non_negative_derivative, expected at least 1 but no more than 2, got 3"),
        ("SELECT top(*, 2) FROM samples", "expected first argument to be a field in top(), found *"),
        ("SELECT distinct(*) FROM samples", "expected field argument in distinct()"),
        # time compared with what is no time: an error when the statement runs (influxd 1.6.7's words),
        # found before the fields' errors
        ("SELECT * FROM samples WHERE time > 'yesterday'", "invalid operation: time and *influxql.StringLiteral are not compatible"),
        ("SELECT * FROM samples WHERE time > hr_bpm", "invalid operation: time and *influxql.VarRef are not compatible"),
        ("SELECT * FROM samples WHERE time > now() + 'x'", "invalid operation: time and *influxql.BinaryExpr are not compatible"),
        ("SELECT * FROM samples WHERE true < time", "invalid operation: time and *influxql.BooleanLiteral are not compatible"),
        ("SELECT nosuch(x) FROM samples WHERE time = 'x'", "invalid operation: time and *influxql.StringLiteral are not compatible"),
        ("SELECT max(v) FROM (SELECT x AS v FROM samples WHERE time = 'x')",
         "invalid operation: time and *influxql.StringLiteral are not compatible"),
    ],
)
def test_compile_errors_are_influxdbs(text: str, error: str) -> None:
    # Well-formed InfluxQL that InfluxDB refuses when compiling: the statement carries the error, so
    # the statements before it still run (InfluxDB answers it inside that result).
    assert select(text).compile_error == error


@pytest.mark.parametrize(
    "text",
    [
        "SELECT derivative(hr_bpm) FROM samples",
        "SELECT non_negative_derivative(mean(hr_bpm), 1s) FROM samples WHERE time > now() - 1h GROUP BY time(1m)",
        "SELECT percentile(*, 95) FROM samples GROUP BY time(1m) fill(null)",
        "SELECT max(hr_bpm) * 2, pwr_w FROM samples",
        "SELECT integral(pwr_w, 1h) / 1000 FROM samples",
        "SELECT sample(hr_bpm, 3), device FROM samples",
    ],
)
def test_valid_function_statements_compile(text: str) -> None:
    assert select(text).compile_error is None


def test_subqueries_parse_into_a_source_holding_the_inner_statement() -> None:
    outer = select(
        "SELECT max(v) FROM (SELECT mean(hr_bpm) AS v FROM (SELECT hr_bpm FROM samples) GROUP BY time(1m)) "
        "WHERE time > now() - 1h GROUP BY device"
    )
    inner = outer.sources[0].query
    assert inner is not None and inner.fields == [FieldExpr(Call("mean", (VarRef("hr_bpm"),)), "v")]
    assert inner.group_by_time == (60 * S, 0)
    innermost = inner.sources[0].query
    assert innermost is not None and innermost.sources == [Source(name="samples")]
    assert outer.group_by_tags == ["device"] and outer.compile_error is None
    # InfluxDB compiles the inner statement with the outer: its error is the statement's
    assert select("SELECT max(v) FROM (SELECT foo(hr_bpm) AS v FROM samples)").compile_error == "undefined function foo()"
