"""Properties of the line-protocol parser, for any input.

- Any bytes, any precision, with or without a line-length limit: points or located errors
  (a LineError naming the physical line it starts on), never another exception.
- Valid points, with names and values full of characters that need escaping and every value type,
  encoded to line protocol and parsed again are the same points.
- Whatever the parser makes of a body, encoding its points and parsing them again is stable.

The encoder is here, in the test: the product only ever reads line protocol.
With CI set in the environment the examples are derandomized (the same every run).
"""

from __future__ import annotations

import math
import os
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.parsers import each_parser  # noqa: F401  (the fixture pytestmark names)
from tracker.lineprotocol import (
    MAX_NANO_TIME,
    MIN_NANO_TIME,
    PRECISION_NS,
    LineError,
    ParseResult,
    Point,
    parse,
)

NOW = 1_700_000_000_123_456_789
# Every test here runs with the pure-Python parser and with the compiled one (tests/parsers.py).
pytestmark = pytest.mark.usefixtures("each_parser")
PROPS = settings(
    deadline=None,
    database=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.too_slow],
)
Typed = tuple[str, tuple[tuple[str, str], ...], list[tuple[str, str, Any]], int]


def typed(point: Point) -> Typed:
    """A point with each field's type spelled out (1 == 1.0 == True in Python)."""
    return point.measurement, point.tags, [(k, type(v).__name__, v) for k, v in point.fields.items()], point.time


# ----- an encoder (1.x's escaping rules) ----------------------------------------------------------


def _escape(text: str, specials: str) -> str:
    return re.sub("([" + re.escape(specials) + "])", r"\\\1", text)


def encode_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value)
    return '"' + _escape(value, '\\"') + '"'


NAME_SPECIALS = ', ="'  # measurement and field keys
TAG_SPECIALS = ", ="


def encode(point: Point, precision: str = "ns") -> str:
    line = _escape(point.measurement, NAME_SPECIALS)
    line += "".join(f",{_escape(k, TAG_SPECIALS)}={_escape(v, TAG_SPECIALS)}" for k, v in point.tags)
    line += " " + ",".join(f"{_escape(k, NAME_SPECIALS)}={encode_value(v)}" for k, v in point.fields.items())
    multiplier = PRECISION_NS[precision]
    assert point.time % multiplier == 0
    return f"{line} {point.time // multiplier}"


# ----- any bytes ----------------------------------------------------------------------------------

# Pieces that matter to the scanners, to build bodies that get far into them.
SOUP = st.lists(
    st.sampled_from(
        [
            b"samples", b"cpu", b",", b"=", b" ", b"  ", b"\\", b'"', b"\n", b"\r\n", b"\r", b"\t", b"\x00", b"#",
            b"1", b"-", b".", b"e", b"E", b"+", b"i", b"u", b"t", b"f", b"true", b"F", b"nan", b"inf", b"9" * 20,
            b"1700000000", b"v", b"hr_bpm", b"device", b"\xff", b"\xc3\xa9", b"\xe2\x82", b"x" * 70,
        ]
    ),
    max_size=60,
).map(b"".join)
# Bodies of whole lines: valid ones short and long, quoted strings that run over lines, and garbage.
SAMPLE_LINES = [
    b"cpu v=1", b"cpu,t=a v=2i 5", b"m\\ x v=t", b"# a comment", b"", b"  \t", b'cpu s="a\nb" 7', b'cpu s="open',
    b"samples,device=watch hr_bpm=120,pwr_w=250 1700000000", b"cpu v=1 " + b"1" * 18, b"samples hr_bpm=" + b"9" * 40,
]  # fmt: skip
LINE_BODIES = st.lists(
    st.tuples(st.one_of(st.sampled_from(SAMPLE_LINES), st.binary(max_size=40)), st.sampled_from([b"\n", b"\r\n"])),
    max_size=12,
).map(lambda pairs: b"".join(line + end for line, end in pairs))
ANY_BODY = st.one_of(st.binary(max_size=300), SOUP, LINE_BODIES)
PRECISIONS = st.sampled_from(sorted(PRECISION_NS))
LINE_LIMITS = st.one_of(st.none(), st.integers(min_value=1, max_value=80))


def physical_lines(body: bytes) -> list[bytes]:
    return body.split(b"\n")


def check_result(result: ParseResult, body: bytes, max_line_length: int | None) -> None:
    lines = physical_lines(body)
    decoded = [line.decode("utf-8", "replace") for line in lines]
    for point in result.points:
        assert 1 <= point.line_no <= len(lines)
        assert decoded[point.line_no - 1].lstrip(" \t\x00")[:1] not in ("", "#")  # a line that holds a point
        assert point.measurement and point.fields
        assert MIN_NANO_TIME <= point.time <= MAX_NANO_TIME
        assert list(point.tags) == sorted(point.tags) and len({k for k, _ in point.tags}) == len(point.tags)
        for value in point.fields.values():
            assert isinstance(value, (float, int, str, bool))
            if isinstance(value, float):
                assert math.isfinite(value)
            elif isinstance(value, int) and not isinstance(value, bool):
                assert -(2**63) <= value < 2**63
    for error in result.errors:
        assert isinstance(error, LineError)
        assert 1 <= error.line_no <= len(lines) and error.reason
        assert str(error) == f"unable to parse '{error.line}': {error.reason}"
        physical = decoded[error.line_no - 1].lstrip(" \t\x00")
        size = len(lines[error.line_no - 1]) - lines[error.line_no - 1].endswith(b"\r")
        if max_line_length is not None and size > max_line_length:
            # a too-long line: named with its number, size and the limit, quoted only in part
            assert error.reason == f"line {error.line_no}: line too long ({size} bytes, limit {max_line_length})"
            assert physical.startswith(error.line.removesuffix("...")[:-1])
        else:
            # the error quotes the line from where it starts (a quoted string may run on over lines)
            first = error.line.split("\n", 1)[0].rstrip("\r")
            assert physical.rstrip("\r") == first or ("\n" in error.line and physical.startswith(first))
    # every point and error comes from a different line, in order
    starts = sorted([p.line_no for p in result.points] + [e.line_no for e in result.errors])
    assert len(starts) == len(set(starts))
    assert [e.line_no for e in result.errors] == sorted(e.line_no for e in result.errors)


@settings(PROPS, max_examples=1500)
@given(ANY_BODY, PRECISIONS, LINE_LIMITS)
def test_any_bytes_give_points_or_located_errors(body: bytes, precision: str, max_line_length: int | None) -> None:
    result = parse(body, precision, NOW, max_line_length=max_line_length)
    check_result(result, body, max_line_length)


@settings(PROPS, max_examples=500)
@given(ANY_BODY, PRECISIONS)
def test_a_line_limit_changes_only_the_lines_past_it(body: bytes, precision: str) -> None:
    """Without a long line the limit changes nothing; past it, only the long lines themselves are
    refused (and the runs of lines between them parse as bodies of their own)."""
    limit = 20
    unlimited = parse(body, precision, NOW)
    limited = parse(body, precision, NOW, max_line_length=limit)
    lines = physical_lines(body)
    long_lines = {i + 1 for i, line in enumerate(lines) if len(line) - line.endswith(b"\r") > limit}
    if not long_lines:
        assert [(p.line_no, typed(p)) for p in limited.points] == [(p.line_no, typed(p)) for p in unlimited.points]
        assert limited.errors == unlimited.errors
        return
    refused = {e.line_no for e in limited.errors if e.reason.endswith(f"limit {limit})")}
    assert refused == long_lines
    assert not any(p.line_no in long_lines for p in limited.points)
    # a body with no quote or backslash has one line per physical line: the others are untouched
    if b'"' not in body and b"\\" not in body:
        kept = [(p.line_no, typed(p)) for p in unlimited.points if p.line_no not in long_lines]
        assert [(p.line_no, typed(p)) for p in limited.points] == kept
        kept_errors = [e for e in unlimited.errors if e.line_no not in long_lines]
        assert [e for e in limited.errors if e.line_no not in long_lines] == kept_errors


def test_unknown_precision_is_the_only_exception() -> None:
    try:
        parse(b"cpu v=1", "fortnight")
    except ValueError as exc:
        assert "fortnight" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("expected ValueError")


# ----- valid points round trip ----------------------------------------------------------------------

# Characters that need escaping, a backslash, quotes, non-ASCII and a few control characters; no
# newline, CR, tab or NUL in names (those cannot be escaped in line protocol).
NAME_CHARS = st.sampled_from(list(' ,="\\abcxyz_-.09#éß漢😀') + ["\x01", "\x7f"])


def _representable(name: str) -> bool:
    # 1.x has no escape for a backslash in a name: one at the end would escape the separator after
    # it, and one before an escaped character reads as an escaped backslash to the field scanner.
    return re.search(r'\\(?=[, ="\\]|$)', name) is None


NAMES = st.text(NAME_CHARS, min_size=1, max_size=8).filter(_representable)
MEASUREMENTS = NAMES.filter(lambda name: name[0] != "#")  # a line starting with '#' is a comment
STRINGS = st.text(st.sampled_from(list(' ,="\\\nabc\té😀') + ["\r"]), max_size=12)
VALUES = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
    STRINGS,
)


@st.composite
def points(draw: st.DrawFn, precision: str = "ns") -> Point:
    multiplier = PRECISION_NS[precision]
    tags = draw(st.dictionaries(NAMES, NAMES, max_size=3))
    fields = draw(st.dictionaries(NAMES, VALUES, min_size=1, max_size=4))
    units = draw(st.integers(min_value=-(MAX_NANO_TIME // multiplier), max_value=MAX_NANO_TIME // multiplier))
    return Point(draw(MEASUREMENTS), tuple(sorted(tags.items())), fields, units * multiplier)


@st.composite
def batches(draw: st.DrawFn) -> tuple[str, list[Point]]:
    precision = draw(PRECISIONS)
    return precision, draw(st.lists(points(precision), min_size=1, max_size=5))


@settings(PROPS, max_examples=1500)
@given(batches(), st.sampled_from(["\n", "\r\n"]))
def test_valid_points_encoded_and_parsed_again_are_equal(batch: tuple[str, list[Point]], newline: str) -> None:
    precision, expected = batch
    body = newline.join(encode(point, precision) for point in expected).encode()
    result = parse(body, precision, NOW)
    assert result.errors == []
    assert [typed(p) for p in result.points] == [typed(p) for p in expected]
    # and the same body as one uniform batch (the column-wise path) where it applies
    again = parse((body + newline.encode()) * 2, precision, NOW)
    assert [typed(p) for p in again.points] == [typed(p) for p in expected] * 2


@settings(PROPS, max_examples=1500)
@given(ANY_BODY, PRECISIONS)
def test_parse_encode_parse_is_stable(body: bytes, precision: str) -> None:
    first = parse(body, precision, NOW)
    if not first.points:
        return
    # the default time (no timestamp in a line) comes back as an explicit one, in ns
    encoded = "\n".join(encode(point) for point in first.points).encode()
    second = parse(encoded, "ns", NOW)
    assert second.errors == []
    assert [typed(p) for p in second.points] == [typed(p) for p in first.points]
