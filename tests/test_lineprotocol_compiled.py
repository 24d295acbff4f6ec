"""The compiled line-protocol parser gives exactly the pure-Python parser's results.

For any body (random bytes, protocol soup, valid batches, mutated valid lines, huge numbers,
escapes, unicode, every precision, with and without a line-length limit): the same points (values,
types, tags, times, line numbers), the same errors (line, text, reason), and for parse_samples the
same vocabulary refusals.  The other parser tests run against both parsers too (tests/parsers.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.parsers import require_compiled
from tests.test_lineprotocol_props import ANY_BODY, LINE_LIMITS, PRECISIONS, SOUP
from tracker import lineprotocol, vocabulary
from tracker.lineprotocol import PRECISION_NS, CheckedBatch, ParseResult, Point

NOW = 1_700_000_000_123_456_789
PROPS = settings(
    deadline=None,
    database=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True, scope="module")
def compiled_parser() -> None:
    require_compiled()


def typed(point: Point) -> tuple[Any, ...]:
    """Everything a point carries, each field's type spelled out (1 == 1.0 == True in Python)."""
    fields = [(key, type(value).__name__, value) for key, value in point.fields.items()]
    return point.line_no, point.measurement, point.tags, fields, point.time


def parse_outcome(result: ParseResult) -> tuple[Any, ...]:
    return [typed(p) for p in result.points], result.errors


def samples_outcome(result: CheckedBatch) -> tuple[Any, ...]:
    return [typed(p) for p in result.points], result.errors, result.refused


def assert_same(body: bytes, precision: str = "ns", max_line_length: int | None = None) -> None:
    python_parse, python_samples = lineprotocol.IMPLEMENTATIONS["python"]
    compiled_parse, compiled_samples = lineprotocol.IMPLEMENTATIONS["compiled"]
    expected = parse_outcome(python_parse(body, precision, NOW, max_line_length))
    assert parse_outcome(compiled_parse(body, precision, NOW, max_line_length)) == expected
    expected = samples_outcome(python_samples(body, precision, NOW, max_line_length))
    assert samples_outcome(compiled_samples(body, precision, NOW, max_line_length)) == expected


# ----- generated bodies ---------------------------------------------------------------------------

KEYS = st.sampled_from([*vocabulary.FIELD_KEYS, "lon", "lon", "lat", "lng", "hr", "HR_BPM", "vélo", "x\xff"])
NUMBERS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.floats(min_value=-200, max_value=200).map(lambda f: f"{f:.6f}"),
    st.integers(min_value=-(2**64), max_value=2**64).map(lambda i: f"{i}i"),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.sampled_from([
        "90", "90.0000001", "-90", "-90.5", "180", "180.0001", "-180", "1e308", "1e309", "-1e309", "1e-400", "-0",
        "0x1p3", "inf", "-inf", "nan", "NaN", "infinity", "+1", "1_0", ".5", "5.", "-.5", ".", "-", "1e", "1e+",
        "1.5e-3", "1E5", "007", "1i", "-0i", "1.5i", "1u", "t", "false", "TRUE", '"str"', '""', "9" * 30, "9" * 400,
        "9223372036854775807i", "-9223372036854775808i", "9223372036854775808i", "٣",
    ]),  # fmt: skip
)
TAG_TEXT = st.lists(st.sampled_from([*"abcwatch_-.#+0é漢😀", "\\ ", "\\,", "\\=", "\x00", "\t"]), max_size=6).map("".join)
MEASUREMENTS = st.sampled_from(["samples", "samples", "samples", "sample", "cpu", "sämples", "#samples", "samples\\ x"])
TIMES = st.one_of(
    st.none(),
    st.integers(min_value=-(10**19), max_value=10**19).map(str),
    st.sampled_from([
        "9223372036854775806", "9223372036854775807", "-9223372036854775806", "-9223372036854775807", "9223372036",
        "9223372037", "-9223372037", "2562047", "2562048", "153722867", "153722868", "0", "-0", "-", "1.5", "1e9",
        "+5", "00000000000000000001", "1 ", "1 2",
    ]),  # fmt: skip
)


# Mostly what apps send, boundaries of the vocabulary's ranges included: the compiled parser only
# decides lines that are valid through and through, so most lines must be.
VALID_NUMBERS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.floats(min_value=-200, max_value=200).map(lambda f: f"{f:.6f}"),
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(lambda i: f"{i}i"),
    st.integers(min_value=-(10**6), max_value=10**6).map(str),
    st.sampled_from([
        "90", "-90", "180", "-180", "90.0", "-90.000000", "180.0", "90.0000001", "-180.00001", "180i", "-90i", "91i",
        "1e-400", "-0", "5.", ".5", "-.5", "1E2", "1.5e-3", "1e+16", "9223372036854775807i", "-9223372036854775808i",
        "1" * 24, "1" * 25 + ".5", "9" * 310,
    ]),  # fmt: skip
)
VOCAB_KEYS = st.sampled_from([*vocabulary.FIELD_KEYS, "lon", "lat", "lng"])
VALID_TAGS = st.sampled_from(["w", "vélo", "bike_2"])
VALID_TIMES = st.one_of(
    st.none(),
    st.integers(min_value=-(2 * 10**9), max_value=2 * 10**9).map(str),
    st.integers(min_value=-(10**18), max_value=10**18).map(str),
    st.sampled_from(["9223372036854775806", "-9223372036854775806", "9223372036", "-9223372036", "2562047", "153722867"]),
)


@st.composite
def sample_lines(draw: st.DrawFn, hostile: bool = False) -> bytes:
    """A line for the vocabulary; with `hostile`, any of its parts may be off."""
    line = draw(MEASUREMENTS) if hostile else "samples"
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        line += f",{draw(st.sampled_from(['device', 'user', 'device', 'd']))}={draw(TAG_TEXT if hostile else VALID_TAGS)}"
    fields = draw(st.lists(st.tuples(VOCAB_KEYS, VALID_NUMBERS), min_size=1, max_size=9))
    if hostile:
        fields += draw(st.lists(st.tuples(KEYS, NUMBERS), max_size=2))
        fields = draw(st.permutations(fields))
    line += " " + ",".join(f"{key}={value}" for key, value in fields)
    timestamp = draw(TIMES if hostile else VALID_TIMES)
    if timestamp is not None:
        line += " " + timestamp
    return line.encode("utf-8", "surrogatepass")


@st.composite
def mutated(draw: st.DrawFn, lines: st.SearchStrategy[bytes]) -> bytes:
    """A valid-looking line with a few bytes inserted, deleted or replaced."""
    line = bytearray(draw(lines))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        at = draw(st.integers(min_value=0, max_value=len(line)))
        byte = draw(st.sampled_from(b' ,="\\\n\r\t\x00#.-+eEi0129\xff\xc3'))
        action = draw(st.sampled_from(["insert", "delete", "replace"]))
        if action == "insert" or at == len(line):
            line.insert(at, byte)
        elif action == "delete":
            del line[at]
        else:
            line[at] = byte
    return bytes(line)


SAMPLE_BODIES = st.lists(
    st.tuples(
        st.one_of(
            sample_lines(), sample_lines(hostile=True), mutated(sample_lines()), st.sampled_from([b"", b"# note", b"  ", b"\t"])
        ),
        st.sampled_from([b"\n", b"\r\n", b"\r\r\n"]),
    ),
    max_size=8,
).map(lambda pairs: b"".join(line + end for line, end in pairs))


@settings(PROPS, max_examples=1500)
@given(ANY_BODY, PRECISIONS, LINE_LIMITS)
def test_any_bytes_parse_the_same(body: bytes, precision: str, max_line_length: int | None) -> None:
    assert_same(body, precision, max_line_length)


@settings(PROPS, max_examples=1500)
@given(SAMPLE_BODIES, PRECISIONS, st.one_of(st.none(), st.integers(min_value=10, max_value=200)))
def test_sample_bodies_parse_and_check_the_same(body: bytes, precision: str, max_line_length: int | None) -> None:
    assert_same(body, precision, max_line_length)


@settings(PROPS, max_examples=300)
@given(st.lists(st.one_of(sample_lines(), sample_lines(hostile=True)), min_size=1, max_size=3), st.integers(min_value=2, max_value=40), PRECISIONS)
def test_repeated_lines_parse_the_same(lines: list[bytes], repeat: int, precision: str) -> None:
    # the batch shape: the same names on every line, which the compiled parser decodes once
    assert_same(b"\n".join(lines * repeat), precision)


NEAR_LIMITS = st.one_of(
    st.floats(min_value=-181, max_value=181).map(repr),
    st.integers(min_value=-181, max_value=181).map(lambda i: f"{i}i"),
    st.sampled_from(["90.0000001", "90.5", "-90.25", "180.5", "-180.0001", "91", "181i", "-91i", "90", "-180"]),
)


@settings(PROPS, max_examples=800)
@given(st.lists(st.tuples(VOCAB_KEYS, NEAR_LIMITS), min_size=1, max_size=3), PRECISIONS)
def test_values_near_the_vocabulary_limits_check_the_same(fields: list[tuple[str, str]], precision: str) -> None:
    line = "samples,device=w " + ",".join(f"{key}={value}" for key, value in fields) + " 1700000"
    assert_same(line.encode(), precision)


FLOAT_TEXT = st.from_regex(r"-?(0{0,3}[0-9]{1,18}(\.[0-9]{0,20}0{0,3})?|\.[0-9]{1,20})([eE][+-]?[0-9]{1,3})?", fullmatch=True)


@settings(PROPS, max_examples=3000)
@given(FLOAT_TEXT)
def test_floats_convert_to_the_same_double(text: str) -> None:
    # the compiled parser converts short decimals itself: the very double Python's float() gives
    assert_same(f"samples hr_bpm={text},pwr_w={text}".encode())
    result = lineprotocol.IMPLEMENTATIONS["compiled"][0](f"m v={text}".encode(), "ns", NOW, None)
    if result.points:
        assert repr(result.points[0].fields["v"]) == repr(float(text))


@settings(PROPS, max_examples=500)
@given(SOUP, SOUP)
def test_soup_around_a_valid_line_parses_the_same(before: bytes, after: bytes) -> None:
    assert_same(before + b"\nsamples,device=w hr_bpm=1,lon=2i 5\n" + after)


# ----- chosen cases -------------------------------------------------------------------------------

CASES = [
    b"samples hr_bpm=0x1p3", b"samples hr_bpm=inf", b"samples hr_bpm=-inf", b"samples hr_bpm=nan",
    b"samples hr_bpm=infinity", b"samples hr_bpm=+1", b"samples hr_bpm=1_000", b"samples hr_bpm= 1",
    b"samples lat=90,lng=-180 1", b"samples lat=90.000001", b"samples lat=91i", b"samples lng=-181",
    b"samples lng=1,lon=2,lng=3", b"samples lon=1,lng=2", b"samples lat=100,lat=1", b"samples lat=1,lat=100",
    b"samples hr_bpm=9223372036854775807i", b"samples hr_bpm=t", b'samples hr_bpm="1"', b"samples hr_bpm=1e309",
    b"samples hr_bpm=1e-400", b"samples hr_bpm=-0", "samples,device=vélo hr_bpm=1".encode(),
    b"samples,device=\xff hr_bpm=1", b"samples,device=\xfe,device=\xff hr_bpm=1", b"samples,b=1,a=2 hr_bpm=1",
    b"samples,a=1,a=2 hr_bpm=1", b"cpu v=1", b"samples v=1", b"samples\\ x hr_bpm=1", b"samples hr_bpm=1 5 ",
    b"samples hr_bpm=1  5", b" samples hr_bpm=1", b"samples hr_bpm=1\r", b"samples hr_bpm=1\r\r",
    b"samples hr_bpm=1 -9223372036854775806", b"samples hr_bpm=1 " + b"1" * 25, b"samples " + b"x" * 70000 + b"=1",
    b"s" * 30000 + b" hr_bpm=1", b"samples " + b",".join(b"hr_bpm=%d" % i for i in range(100)),
    b"samples," + b",".join(b"t%d=v" % i for i in range(40)) + b" hr_bpm=1",
]  # fmt: skip


@pytest.mark.parametrize("body", CASES, ids=[repr(case)[:50] for case in CASES])
@pytest.mark.parametrize("precision", sorted(PRECISION_NS))
def test_chosen_lines_parse_the_same(body: bytes, precision: str) -> None:
    assert_same(body, precision)
    assert_same(body + b"\n" + body + b"\r\n" + body, precision, max_line_length=40)


def test_the_batch_is_checked_against_the_vocabulary() -> None:
    body = b"samples,device=bike hr_bpm=120,lon=13.5,pwr_w=250i 1700000000\nsamples lat=91 1700000001\n"
    result = lineprotocol.IMPLEMENTATIONS["compiled"][1](body, "s", NOW, None)
    assert [typed(p) for p in result.points] == [
        (1, "samples", (("device", "bike"),), [("hr_bpm", "float", 120.0), ("lng", "float", 13.5), ("pwr_w", "float", 250.0)], 1_700_000_000 * 10**9)
    ]
    assert result.errors == []
    assert result.refused == ["unable to parse 'samples lat=91 1700000001': line 2: field \"lat\": 91.0 is out of range -90..90 deg"]


def test_each_point_has_its_own_fields() -> None:
    # points of one batch share nothing mutable: storage and ingest may change one point's fields
    result = lineprotocol.IMPLEMENTATIONS["compiled"][0](b"m v=1\nm v=1\n", "ns", NOW, None)
    first, second = result.points
    assert first.fields is not second.fields


# ----- choosing the parser ------------------------------------------------------------------------


def _implementation_in_a_fresh_process(environment: dict[str, str]) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **environment}
    env.pop("TRACKER_PURE_PYTHON", None) if "TRACKER_PURE_PYTHON" not in environment else None
    code = "from tracker import lineprotocol; print(lineprotocol.IMPLEMENTATION)"
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def test_compiled_parser_is_the_default_and_the_environment_can_refuse_it() -> None:
    assert _implementation_in_a_fresh_process({}) == "compiled"
    assert _implementation_in_a_fresh_process({"TRACKER_PURE_PYTHON": "1"}) == "python"
    assert _implementation_in_a_fresh_process({"TRACKER_PURE_PYTHON": "0"}) == "compiled"


def test_an_unknown_implementation_is_refused() -> None:
    with pytest.raises(ValueError, match="fortran"):
        lineprotocol.use_implementation("fortran")


@pytest.mark.parametrize("precision", ["x", "", "NS", "s ", "µs"])
def test_an_unknown_precision_is_the_same_error(precision: str) -> None:
    messages = set()
    for parse, parse_samples in lineprotocol.IMPLEMENTATIONS.values():
        for function in (parse, parse_samples):
            with pytest.raises(ValueError) as raised:
                function(b"samples hr_bpm=1", precision, NOW, None)
            messages.add(str(raised.value))
    assert messages == {f"invalid precision {precision!r}"}
