"""Line protocol parser: tables of accepted lines, rejected lines and their 1.x reasons."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.parsers import each_parser  # noqa: F401  (the fixture pytestmark names)
from tracker.lineprotocol import (
    PRECISION_NS,
    LineError,
    Point,
    _LineRejected,
    _parse_line_fast,
    _parse_line_slow,
    _parse_uniform_batch,
    parse,
)

NOW = 1_700_000_000_123_456_789
# Every test here runs with the pure-Python parser and with the compiled one (tests/parsers.py).
pytestmark = pytest.mark.usefixtures("each_parser")
TIME_RANGE = "time outside range -9223372036854775806 - 9223372036854775806"
Typed = tuple[str, tuple[tuple[str, str], ...], list[tuple[str, str, object]], int]


def typed(point: Point) -> Typed:
    """A point with every field's type spelled out (1 == 1.0 == True in Python)."""
    fields = [(key, type(value).__name__, value) for key, value in point.fields.items()]
    return point.measurement, point.tags, fields, point.time


def parse_one(line: bytes, precision: str = "ns") -> Typed:
    result = parse(line, precision, NOW)
    assert result.errors == []
    assert len(result.points) == 1
    return typed(result.points[0])


def reason_for(line: bytes) -> str:
    result = parse(line, "ns", NOW)
    assert result.points == []
    assert len(result.errors) == 1
    return result.errors[0].reason


def F(key: str, value: object) -> tuple[str, str, object]:
    return key, type(value).__name__, value


# --- accepted lines -------------------------------------------------------------------------

VALID: list[tuple[bytes, Typed]] = [
    # shape and spacing
    (b"cpu v=1", ("cpu", (), [F("v", 1.0)], NOW)),
    (b"cpu v=1 5", ("cpu", (), [F("v", 1.0)], 5)),
    (b"cpu v=1 -5", ("cpu", (), [F("v", 1.0)], -5)),
    (b"cpu v=1 0", ("cpu", (), [F("v", 1.0)], 0)),
    (b"cpu  v=1   5   ", ("cpu", (), [F("v", 1.0)], 5)),  # several spaces, trailing spaces
    (b"cpu v=1 \t5", ("cpu", (), [F("v", 1.0)], 5)),  # whitespace before a section is skipped
    (b"   \t\x00cpu v=1", ("cpu", (), [F("v", 1.0)], NOW)),  # leading spaces, tabs, NULs
    (b"cpu v=1 ", ("cpu", (), [F("v", 1.0)], NOW)),
    (b"cpu,host=a,region=eu v=1", ("cpu", (("host", "a"), ("region", "eu")), [F("v", 1.0)], NOW)),
    (b"cpu,region=eu,host=a v=1", ("cpu", (("host", "a"), ("region", "eu")), [F("v", 1.0)], NOW)),
    (b"cpu,b=1,c=2,a=3 v=1", ("cpu", (("a", "3"), ("b", "1"), ("c", "2")), [F("v", 1.0)], NOW)),
    (b"a=b v=1", ("a=b", (), [F("v", 1.0)], NOW)),  # a bare '=' in a measurement is literal
    (b"cpu,a==b v=1", ("cpu", (("a", "=b"),), [F("v", 1.0)], NOW)),  # 1.x: first char unchecked
    (b"cpu,t=a\tb v=1", ("cpu", (("t", "a\tb"),), [F("v", 1.0)], NOW)),
    # repeated field key: last value wins, first position kept
    (b"cpu a=1,b=2,a=3", ("cpu", (), [F("a", 3.0), F("b", 2.0)], NOW)),
    (b'cpu a=1,a="x"', ("cpu", (), [F("a", "x")], NOW)),
    # floats
    (b"cpu v=-1", ("cpu", (), [F("v", -1.0)], NOW)),
    (b"cpu v=.1", ("cpu", (), [F("v", 0.1)], NOW)),
    (b"cpu v=-.5", ("cpu", (), [F("v", -0.5)], NOW)),
    (b"cpu v=1.", ("cpu", (), [F("v", 1.0)], NOW)),
    (b"cpu v=1e4", ("cpu", (), [F("v", 10000.0)], NOW)),
    (b"cpu v=1E4", ("cpu", (), [F("v", 10000.0)], NOW)),
    (b"cpu v=1.0E-4", ("cpu", (), [F("v", 0.0001)], NOW)),
    (b"cpu v=-1.5e+3", ("cpu", (), [F("v", -1500.0)], NOW)),
    (b"cpu v=1e-400", ("cpu", (), [F("v", 0.0)], NOW)),  # underflow is fine in Go too
    (b"cpu v=007", ("cpu", (), [F("v", 7.0)], NOW)),
    (b"cpu v=" + b"1" * 30, ("cpu", (), [F("v", float("1" * 30))], NOW)),
    (b"cpu v=1.7976931348623157e308", ("cpu", (), [F("v", 1.7976931348623157e308)], NOW)),
    # integers
    (b"cpu v=1i", ("cpu", (), [F("v", 1)], NOW)),
    (b"cpu v=-1i", ("cpu", (), [F("v", -1)], NOW)),
    (b"cpu v=0i", ("cpu", (), [F("v", 0)], NOW)),
    (b"cpu v=9223372036854775807i", ("cpu", (), [F("v", 9223372036854775807)], NOW)),
    (b"cpu v=-9223372036854775808i", ("cpu", (), [F("v", -9223372036854775808)], NOW)),
    # strings
    (b'cpu s=""', ("cpu", (), [F("s", "")], NOW)),
    (b'cpu s="a,b c=d"', ("cpu", (), [F("s", "a,b c=d")], NOW)),
    (b'cpu s="a\\"b"', ("cpu", (), [F("s", 'a"b')], NOW)),
    (b'cpu s="a\\\\b"', ("cpu", (), [F("s", "a\\b")], NOW)),
    (b'cpu s="a\\nb\\tc"', ("cpu", (), [F("s", "a\\nb\\tc")], NOW)),  # other escapes literal
    (b'cpu s="a\\\\\\"b"', ("cpu", (), [F("s", 'a\\"b')], NOW)),
    (b'cpu s="a\nb" 5', ("cpu", (), [F("s", "a\nb")], 5)),  # newline inside a string value
    (b'cpu s="x",v=1i,b=t 5', ("cpu", (), [F("s", "x"), F("v", 1), F("b", True)], 5)),
    (b'cpu s="caf\xc3\xa9"', ("cpu", (), [F("s", "café")], NOW)),
    # booleans
    *[(b"cpu b=" + word.encode(), ("cpu", (), [F("b", True)], NOW)) for word in
      ("t", "T", "true", "True", "TRUE")],
    *[(b"cpu b=" + word.encode(), ("cpu", (), [F("b", False)], NOW)) for word in
      ("f", "F", "false", "False", "FALSE")],
    # escapes: measurement
    (b"c\\,pu v=1", ("c,pu", (), [F("v", 1.0)], NOW)),
    (b"c\\ pu v=1", ("c pu", (), [F("v", 1.0)], NOW)),
    (b"c\\=pu v=1", ("c=pu", (), [F("v", 1.0)], NOW)),
    (b'c\\"pu v=1', ('c"pu', (), [F("v", 1.0)], NOW)),
    (b"c\\xpu v=1", ("c\\xpu", (), [F("v", 1.0)], NOW)),  # not an escape: kept
    (b"cpu\\ ,t=a v=1", ("cpu ", (("t", "a"),), [F("v", 1.0)], NOW)),
    # escapes: tag keys and values (\, \= and space; \" is not a tag escape)
    (b"cpu,t\\ k=v v=1", ("cpu", (("t k", "v"),), [F("v", 1.0)], NOW)),
    (b"cpu,t\\,k=v v=1", ("cpu", (("t,k", "v"),), [F("v", 1.0)], NOW)),
    (b"cpu,t\\=k=v v=1", ("cpu", (("t=k", "v"),), [F("v", 1.0)], NOW)),
    (b"cpu,t=a\\ b v=1", ("cpu", (("t", "a b"),), [F("v", 1.0)], NOW)),
    (b"cpu,t=a\\,b v=1", ("cpu", (("t", "a,b"),), [F("v", 1.0)], NOW)),
    (b"cpu,t=a\\=b v=1", ("cpu", (("t", "a=b"),), [F("v", 1.0)], NOW)),
    (b'cpu,t=a\\"b v=1', ("cpu", (("t", 'a\\"b'),), [F("v", 1.0)], NOW)),
    (b"cpu,t=a\\b v=1", ("cpu", (("t", "a\\b"),), [F("v", 1.0)], NOW)),
    (b"cpu,t=a\\\\ b v=1", ("cpu", (("t", "a\\ b"),), [F("v", 1.0)], NOW)),  # \\ is no escape
    # escapes: field keys (\, \= space and \")
    (b"cpu f\\ k=1", ("cpu", (), [F("f k", 1.0)], NOW)),
    (b"cpu f\\,k=1", ("cpu", (), [F("f,k", 1.0)], NOW)),
    (b"cpu f\\=k=1", ("cpu", (), [F("f=k", 1.0)], NOW)),
    (b'cpu f\\"k=1', ("cpu", (), [F('f"k', 1.0)], NOW)),
    (b"cpu f\\xk=1", ("cpu", (), [F("f\\xk", 1.0)], NOW)),
    (b"cpu a=1,f\\ k=2", ("cpu", (), [F("a", 1.0), F("f k", 2.0)], NOW)),
    # non-ASCII text and invalid UTF-8 (replaced by U+FFFD)
    ("cpü,tåg=vål fïeld=1".encode(), ("cpü", (("tåg", "vål"),), [F("fïeld", 1.0)], NOW)),
    (b"c\xffu,t=\xfe v=1", ("c\ufffdu", (("t", "\ufffd"),), [F("v", 1.0)], NOW)),
    # CRLF accepted (a deliberate difference from 1.x)
    (b"cpu v=1\r", ("cpu", (), [F("v", 1.0)], NOW)),
    (b"cpu v=1 5\r\n", ("cpu", (), [F("v", 1.0)], 5)),
    (b'cpu s="a"\r\n', ("cpu", (), [F("s", "a")], NOW)),
    (b'cpu s="a\r\nb"\r\n', ("cpu", (), [F("s", "a\r\nb")], NOW)),  # CR inside the string stays
    (b'cpu s="a\r" 5\r\n', ("cpu", (), [F("s", "a\r")], 5)),
]


@pytest.mark.parametrize(("line", "expected"), VALID, ids=[repr(v[0])[:60] for v in VALID])
def test_valid_line(line: bytes, expected: Typed) -> None:
    assert parse_one(line) == expected


# --- rejected lines -------------------------------------------------------------------------

INT_RANGE = "unable to parse integer {0}: strconv.ParseInt: parsing \"{0}\": value out of range"

INVALID: list[tuple[bytes, str]] = [
    # structure
    (b"cpu", "missing fields"),
    (b"cpu,host=a", "missing fields"),
    (b"cpu,host=a,", "missing tag key"),
    (b",host=a v=1", "missing measurement"),
    (b",v=1", "missing measurement"),
    (b"cpu,host= v=1", "missing tag value"),
    (b"cpu,host v=1", "missing tag value"),
    (b"cpu,host,a=b v=1", "missing tag value"),
    (b"cpu,=a v=1", "missing tag key"),
    (b"cpu, v=1", "missing tag key"),
    (b"cpu,,a=b v=1", "missing tag key"),
    (b"cpu,a=b=c v=1", "invalid tag format"),
    (b"cpu,a=1,a=2 v=1", "duplicate tags"),
    (b"cpu,b=1,a=1,b=2 v=1", "duplicate tags"),
    (b"cpu ", "invalid field format"),
    (b"cpu v", "invalid field format"),
    (b"cpu v=1,", "invalid field format"),
    (b"cpu v=1,w", "invalid field format"),
    (b"cpu\tv=1 1", "invalid field format"),  # a tab is no separator
    (b"cpu\tv=1", "missing fields"),
    (b"cpu v=", "missing field value"),
    (b"cpu v= 1", "missing field value"),
    (b"cpu v=,w=1", "missing field value"),
    (b"cpu =1", "missing field key"),
    (b"cpu v=1,=2", "missing field key"),
    (b'cpu s="abc', "unbalanced quotes"),
    (b'cpu s="abc\\"', "unbalanced quotes"),
    (b"cpu v=1 1 2", "point is invalid"),
    (b"cpu v=1 1\t", "bad timestamp"),
    (b"cpu\\\\ v=1", "missing fields"),  # \\ is no escape: the space after it is escaped
    (b" 0=0", "missing fields"),  # leading space skipped: the measurement is "0=0"
    # floats
    (b"cpu v=+1", "invalid boolean"),
    (b"cpu v=0x10", "invalid number"),
    (b"cpu v=1.1.1", "invalid number"),
    (b"cpu v=1e400", "invalid float"),
    (b"cpu v=-1e400", "invalid float"),
    (b"cpu v=" + b"9" * 400, "invalid float"),
    (b"cpu v=1e", "invalid float"),
    (b"cpu v=1e+", "invalid float"),
    (b"cpu v=1e5e5", "invalid float"),
    (b"cpu v=1_0", "invalid number"),
    (b"cpu v=-", "invalid number"),
    (b"cpu v=-,w=1", "invalid number"),
    (b"cpu v=.", "invalid number"),
    (b"cpu v=--1", "invalid number"),
    (b"cpu v=1-2", "invalid number"),
    (b"cpu v=1=2", "invalid number"),
    (b"cpu v=1\t", "invalid number"),
    (b"cpu v=1\x00", "invalid number"),
    (b"cpu v=1\rx", "invalid number"),  # a CR not ending the line is an ordinary byte
    (b"cpu v=\xd9\xa1", "invalid boolean"),  # a non-ASCII digit
    (b"cpu v=NaN", "invalid number"),
    (b"cpu v=nan", "invalid number"),
    (b"cpu v=-nan", "invalid number"),
    (b"cpu v=-Inf", "invalid number"),
    (b"cpu v=Inf", "invalid boolean"),
    (b"cpu v=inf", "invalid boolean"),
    (b"cpu v=infinity", "invalid boolean"),
    # integers
    (b"cpu v=9223372036854775808i", INT_RANGE.format("9223372036854775808")),
    (b"cpu v=-9223372036854775809i", INT_RANGE.format("-9223372036854775809")),
    (b"cpu v=99999999999999999999i", INT_RANGE.format("99999999999999999999")),
    (b"cpu v=1.0i", "invalid number"),
    (b"cpu v=9e10i", "invalid number"),
    (b"cpu v=1i2", "invalid number"),
    (b"cpu v=1ii", "invalid number"),
    (b"cpu v=-i", "invalid number"),
    (b"cpu v=i", "invalid boolean"),
    (b"cpu v=1u", "invalid number"),  # unsigned is off in 1.x OSS
    (b"cpu v=0u", "invalid number"),
    # booleans
    (b"cpu v=tRUE", "invalid boolean"),
    (b"cpu v=yes", "invalid boolean"),
    (b"cpu v=truee", "invalid boolean"),
    (b"cpu v=fals", "invalid boolean"),
    (b"cpu v=true=1", "invalid boolean"),
    (b"cpu x,1=y=2", "invalid boolean"),
    # timestamps
    (b"cpu v=1 1.5", "bad timestamp"),
    (b"cpu v=1 1e9", "bad timestamp"),
    (b"cpu v=1 +5", "bad timestamp"),
    (b"cpu v=1 --5", "bad timestamp"),
    (b"cpu v=1 5x", "bad timestamp"),
    (b"cpu v=1 -", 'strconv.ParseInt: parsing "-": invalid syntax'),
    (b"cpu v=1 9223372036854775808", 'strconv.ParseInt: parsing "9223372036854775808": value out of range'),
    (b"cpu v=1 9223372036854775807", TIME_RANGE),
    (b"cpu v=1 -9223372036854775807", TIME_RANGE),
    (b"cpu v=1 -9223372036854775808", TIME_RANGE),
    # CR handling: only one CR before the newline is dropped
    (b"cpu v=1\r\r\n", "invalid number"),
    (b"cpu v=1 5\r\r", "bad timestamp"),
]  # fmt: skip


@pytest.mark.parametrize(("line", "reason"), INVALID, ids=[repr(v[0])[:60] for v in INVALID])
def test_invalid_line(line: bytes, reason: str) -> None:
    assert reason_for(line) == reason


def test_error_line_text_and_str() -> None:
    result = parse(b"  \tcpu v=x 1\r\n", "ns", NOW)
    assert result.errors == [LineError(1, "cpu v=x 1", "invalid boolean")]
    assert str(result.errors[0]) == "unable to parse 'cpu v=x 1': invalid boolean"


def test_max_key_length() -> None:
    assert reason_for(b"a" * 65536 + b" v=1") == "max key length exceeded: 65536 > 65535"
    # the series key plus 4 separator bytes plus the field key must fit as well
    assert reason_for(b"a" * 65530 + b" v=1,vv=2") == "max key length exceeded: 65536 > 65535"
    assert parse_one(b"a" * 65530 + b" v=1")[0] == "a" * 65530
    # counted in UTF-8 bytes
    assert reason_for("é".encode() * 32768 + b" v=1") == "max key length exceeded: 65536 > 65535"
    assert reason_for(b"cpu,t=" + b"x" * 65535 + b" v=1") == "max key length exceeded: 65541 > 65535"


# --- bodies: line splitting, comments, line numbers -------------------------------------------


def test_empty_body_and_blank_lines() -> None:
    assert parse(b"", "ns", NOW).points == []
    result = parse(b"\n\n  \n\t\n\x00\n\r\n", "ns", NOW)
    assert result.points == [] and result.errors == []


def test_comments_are_skipped() -> None:
    body = b"# a comment\n  # indented comment with = and ,\n#cpu v=1\ncpu v=2 # not a comment\ncpu v=3"
    result = parse(body, "ns", NOW)
    assert [typed(p) for p in result.points] == [("cpu", (), [F("v", 3.0)], NOW)]
    assert result.errors == [LineError(4, "cpu v=2 # not a comment", "bad timestamp")]


def test_mixed_good_and_bad_lines_keep_line_numbers() -> None:
    body = b"cpu v=1 1\ncpu v= 2\n\n# c\ncpu v=3 3\nbad\n  cpu v=4 4\ncpu v=5 5 x\n"
    result = parse(body, "ns", NOW)
    assert [(p.fields["v"], p.time) for p in result.points] == [(1.0, 1), (3.0, 3), (4.0, 4)]
    assert result.errors == [
        LineError(2, "cpu v= 2", "missing field value"),
        LineError(6, "bad", "missing fields"),
        LineError(8, "cpu v=5 5 x", "point is invalid"),
    ]


def test_newline_inside_string_value_keeps_following_line_numbers() -> None:
    body = b'cpu s="a\nb\nc" 1\nbad\ncpu v=2 2\r\ncpu s="x\\"\ny" 3\nbad2'
    result = parse(body, "ns", NOW)
    assert [typed(p) for p in result.points] == [
        ("cpu", (), [F("s", "a\nb\nc")], 1),
        ("cpu", (), [F("v", 2.0)], 2),
        ("cpu", (), [F("s", 'x"\ny')], 3),
    ]
    assert result.errors == [LineError(4, "bad", "missing fields"), LineError(8, "bad2", "missing fields")]


def test_newline_in_tag_section_ends_the_line() -> None:
    # quotes only matter in field values; a quote in a tag does not swallow the newline
    result = parse(b'cpu,t="a v=1 1\ncpu v=2 2', "ns", NOW)
    assert [typed(p) for p in result.points] == [
        ("cpu", (("t", '"a'),), [F("v", 1.0)], 1),
        ("cpu", (), [F("v", 2.0)], 2),
    ]


def test_escaped_newline_joins_lines_like_1x() -> None:
    result = parse(b"cpu v=1\\\ncpu v=2", "ns", NOW)
    assert result.points == []
    assert result.errors == [LineError(1, "cpu v=1\\\ncpu v=2", "invalid number")]


def test_crlf_body() -> None:
    body = b"cpu v=1 1\r\ncpu,t=a v=2 2\r\n\r\n# c\r\ncpu v=3 3\r"
    result = parse(body, "ns", NOW)
    assert result.errors == []
    assert [typed(p) for p in result.points] == [
        ("cpu", (), [F("v", 1.0)], 1),
        ("cpu", (("t", "a"),), [F("v", 2.0)], 2),
        ("cpu", (), [F("v", 3.0)], 3),
    ]
    # the same with a string somewhere (the careful line splitter)
    result = parse(body[:-1] + b'\r\ncpu s="x" 4\r\n', "ns", NOW)
    assert result.errors == []
    assert [p.time for p in result.points] == [1, 2, 3, 4]


def test_non_uniform_batch_mixes_fast_and_slow_lines() -> None:
    lines = [b"samples,d=w lat=1,lng=2 %d" % i for i in range(5)]
    lines[2] = b"samples,d=w lat=1,lng=2,hr=3i %d" % 2
    lines[3] = b"samples,d=w lat=1,lng=nan 3"
    result = parse(b"\n".join(lines), "ns", NOW)
    assert [p.time for p in result.points] == [0, 1, 2, 4]
    assert result.points[2].fields == {"lat": 1.0, "lng": 2.0, "hr": 3}
    assert result.errors == [LineError(4, "samples,d=w lat=1,lng=nan 3", "invalid number")]


def test_uniform_batch_takes_the_column_path_and_matches_line_by_line() -> None:
    lines = [f"samples,user=bob,device=w{i} lat={i}.5,lng=-{i}.25,hr={i} {i}" for i in range(50)]
    body = "\n".join(lines) + "\n"
    multiplier = PRECISION_NS["ms"]
    assert _parse_uniform_batch(body, multiplier, NOW) is not None
    expected = [typed(_parse_line_slow(line, multiplier, NOW)) for line in lines]
    assert [typed(p) for p in parse(body.encode(), "ms", NOW).points] == expected
    assert expected[1] == ("samples", (("device", "w1"), ("user", "bob")), [F("lat", 1.5), F("lng", -1.25), F("hr", 1.0)], 1_000_000)


# --- precision and time -------------------------------------------------------------------------


@pytest.mark.parametrize(("precision", "multiplier"), list(PRECISION_NS.items()))
def test_precision_scales_timestamps(precision: str, multiplier: int) -> None:
    assert parse_one(b"cpu v=1 2", precision)[3] == 2 * multiplier
    assert parse_one(b"cpu v=1 -2", precision)[3] == -2 * multiplier
    assert parse_one(b'cpu s="x" 2', precision)[3] == 2 * multiplier  # slow path too


@pytest.mark.parametrize(
    ("precision", "expected"),
    [
        ("n", NOW),
        ("ns", NOW),
        ("u", 1_700_000_000_123_456_000),
        ("ms", 1_700_000_000_123_000_000),
        ("s", 1_700_000_000_000_000_000),
        ("m", 1_699_999_980_000_000_000),
        ("h", 1_699_999_200_000_000_000),
    ],
)
def test_missing_timestamp_gets_receive_time_truncated(precision: str, expected: int) -> None:
    result = parse(b"cpu v=1\ncpu s=\"x\"\n", precision, NOW)
    assert [p.time for p in result.points] == [expected, expected]


@pytest.mark.parametrize(
    ("line", "precision", "expected"),
    [
        (b"cpu v=1 9223372036854775806", "ns", 9223372036854775806),
        (b"cpu v=1 -9223372036854775806", "ns", -9223372036854775806),
        (b"cpu v=1 9223372036", "s", 9223372036000000000),
        (b"cpu v=1 -9223372036", "s", -9223372036000000000),
        (b"cpu v=1 2562047", "h", 2562047 * 3_600_000_000_000),
    ],
)
def test_time_range_edges_accepted(line: bytes, precision: str, expected: int) -> None:
    assert parse_one(line, precision)[3] == expected


@pytest.mark.parametrize(
    ("line", "precision"),
    [
        (b"cpu v=1 9223372036854775807", "ns"),
        (b"cpu v=1 9223372037", "s"),
        (b"cpu v=1 -9223372037", "s"),
        (b"cpu v=1 9223372036855", "ms"),
        (b"cpu v=1 2562048", "h"),
        (b"cpu v=1 153722868", "m"),
    ],
)
def test_time_range_edges_rejected(line: bytes, precision: str) -> None:
    result = parse(line, precision, NOW)
    assert [e.reason for e in result.errors] == [TIME_RANGE]


def test_unknown_precision_raises() -> None:
    with pytest.raises(ValueError):
        parse(b"cpu v=1", "x", NOW)


def test_now_defaults_to_the_clock() -> None:
    import time

    before = time.time_ns()
    (point,) = parse(b"cpu v=1").points
    assert before <= point.time <= time.time_ns()


# --- fast path and slow path agree ----------------------------------------------------------

SIMPLE_LINES = [
    "samples lat=52.500123,lng=13.400456,alt_m=34.5,spd_kph=25.12,hr_bpm=135,cad_rpm=88,"
    "pwr_w=250,dist_km=12.345 1700000001",
    "samples,device=watch,user=bob hr_bpm=135i,cad_rpm=88i,ok=t,bad=FALSE -5",
    "cpu,z=1,a=2,m=3 v=.5,w=-1.,x=1e4,y=1.0E-4",
    "cpu v=1,v=2i,v=true",
    "cpu v=-0",
    "m_x+,t=a_b+c f=1",
]


@pytest.mark.parametrize("line", SIMPLE_LINES)
def test_fast_and_slow_paths_agree_on_simple_lines(line: str) -> None:
    multiplier = PRECISION_NS["ms"]
    fast = _parse_line_fast(line, multiplier, NOW)
    assert fast is not None, "expected the fast path to take this line"
    assert typed(fast) == typed(_parse_line_slow(line, multiplier, NOW))


def slow_outcome(line: str) -> Typed | str:
    try:
        return typed(_parse_line_slow(line, 1, NOW))
    except _LineRejected as rejected:
        return rejected.reason


# Lines built from the characters that matter to either path (no quote or backslash: those
# always take the slow path).
line_text = st.text(alphabet=" ,=.-+_0123456789eEiutfTFaxnN\t\r\x00#é", max_size=40)


@settings(max_examples=3000, deadline=None)
@given(line_text)
def test_fast_path_never_disagrees_with_slow_path(line: str) -> None:
    fast = _parse_line_fast(line, 1, NOW)
    if fast is not None and line.lstrip(" \t\x00")[:1] not in ("", "#"):
        assert typed(fast) == slow_outcome(line)


def reference_parse(body: str) -> tuple[list[Typed], list[tuple[int, str, str]]]:
    """parse() spelled out with the slow path only, for bodies without quotes or backslashes."""
    points: list[Typed] = []
    errors: list[tuple[int, str, str]] = []
    for line_no, line in enumerate(body.split("\n"), 1):
        line = line.removesuffix("\r")
        stripped = line.lstrip(" \t\x00")
        if not stripped or stripped[0] == "#":
            continue
        try:
            points.append(typed(_parse_line_slow(stripped, 1, NOW)))
        except _LineRejected as rejected:
            errors.append((line_no, stripped, rejected.reason))
    return points, errors


@settings(max_examples=1500, deadline=None)
@given(st.lists(line_text, max_size=6), st.integers(min_value=1, max_value=3))
def test_parse_matches_the_slow_path_line_by_line(lines: list[str], repeat: int) -> None:
    body = "\n".join(lines * repeat)  # repeats make uniform batches (the batch fast path)
    result = parse(body.encode(), "ns", NOW)
    got = [typed(p) for p in result.points], [(e.line_no, e.line, e.reason) for e in result.errors]
    assert got == reference_parse(body)


@st.composite
def simple_lines(draw: st.DrawFn) -> str:
    name = st.text(alphabet="abcxyz_09", min_size=1, max_size=6)
    value = st.one_of(
        st.floats(allow_nan=False, allow_infinity=False).map(repr),
        st.integers(min_value=-(2**63), max_value=2**63 - 1).map(lambda i: f"{i}i"),
        st.sampled_from(["t", "F", "true", "False"]),
    )
    tags = draw(st.dictionaries(name, name, max_size=3))
    fields = draw(st.lists(st.tuples(name, value), min_size=1, max_size=5))
    ts = draw(st.one_of(st.none(), st.integers(min_value=-(10**18), max_value=10**18)))
    line = draw(name) + "".join(f",{k}={v}" for k, v in tags.items())
    line += " " + ",".join(f"{k}={v}" for k, v in fields)
    return line if ts is None else f"{line} {ts}"


@settings(max_examples=500, deadline=None)
@given(simple_lines())
def test_generated_simple_lines_take_the_fast_path_and_agree(line: str) -> None:
    expected = slow_outcome(line)
    fast = _parse_line_fast(line, 1, NOW)
    if "+" not in line:  # repr() writes 1e+16; a '+' sends a line to the slow path
        assert fast is not None
    if fast is not None:
        assert typed(fast) == expected
    # and parse() as a whole (a uniform batch) gives the same points
    result = parse(((line + "\n") * 3).encode(), "ns", NOW)
    assert result.errors == []
    assert [typed(p) for p in result.points] == [expected] * 3


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=200))
def test_parse_never_raises_on_arbitrary_bytes(body: bytes) -> None:
    result = parse(body, "ms", NOW)
    for point in result.points:
        assert point.fields and point.measurement
    for error in result.errors:
        assert error.line_no >= 1 and error.reason


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.sampled_from([
    b"cpu", b",", b"=", b" ", b"\\", b'"', b"\n", b"\r", b"\t", b"1", b"i", b"t", b"e", b"-", b".",
    b"#", b"v", b"\xff",
]), max_size=30).map(b"".join))
def test_parse_never_raises_on_protocol_soup(body: bytes) -> None:
    result = parse(body, "ns", NOW)
    assert all(error.line_no >= 1 for error in result.errors)


@pytest.mark.parametrize(
    "body",
    [
        # the column-wise batch path
        b"samples hr_bpm=1 1\nsamples hr_bpm=2 2\nsamples hr_bpm=3 3\n",
        # the per-line path (lines of different shapes), with blank lines and a comment
        b"samples hr_bpm=1 1\n\nsamples,device=a hr_bpm=2,pwr_w=3 2\n# note\nsamples hr_bpm=3 3",
        # the block path (a quoted string spanning two physical lines)
        b'samples hr_bpm=1 1\nsamples note="a\nb" 2\nsamples hr_bpm=3 3',
    ],
)
def test_points_know_their_line(body: bytes) -> None:
    result = parse(body)
    lines = body.split(b"\n")
    assert len(result.points) == 3
    for point in result.points:
        assert lines[point.line_no - 1].startswith(b"samples")
        assert f"={point.time}".encode()[1:] in lines[point.line_no - 1] or point.time == 2
    assert [p.time for p in result.points] == [1, 2, 3]
