"""InfluxDB 1.x line protocol parser (pure: no I/O).

Faithful to the 1.8 parser (``models/points.go``): the same lines are accepted, the same values
come out, and a rejected line carries the same reason text.  Shape of a line::

    measurement[,tag_key=tag_value...] field_key=field_value[,...] [timestamp]

Two implementations give identical results: this module (the reference) and, when it was built
at install, the compiled ``tracker._lineprotocol`` (see there), which takes the plain lines in C
and hands every other line to the slow path below.  parse() and parse_samples() run the compiled
one unless TRACKER_PURE_PYTHON=1; IMPLEMENTATION names the one in use.

In this module, three paths produce identical results:

* a column-wise batch path for the usual /write body: every line has the same "shape" (the
  sequence of separators, see _FAST_SHAPE) and the same tag and field keys, and all values are
  floats; conversions run over whole columns in C;
* a per-line fast path for other plain lines (ASCII, no backslash, no double quote, single
  spaces), built on ``str.split`` and C-level conversions.  Python's ``float``/``int`` accept
  more than Influx (``inf``, ``nan``, ``1_0``, ``+1``, surrounding whitespace, non-ASCII
  digits); the shape check and a finite-sum check keep all of that out;
* a slow path, a character-level port of the Go scanners, used for everything else and whenever
  a fast path sees anything unusual; it alone produces error reasons.

Deliberate differences from 1.x:

* CRLF is accepted: a ``\\r`` right before the newline that ends a line, or at the end of the
  body, is dropped before the line is parsed (1.x reports ``invalid number``/``bad timestamp`` or
  silently corrupts a trailing string value).  A ``\\r`` inside a quoted string that continues
  on the next line stays part of the value.
* The body is decoded once as UTF-8 with ``errors="replace"``: invalid bytes become U+FFFD in
  points and in error lines alike (1.x keeps raw bytes).  Key lengths for ``max key length
  exceeded`` are counted in UTF-8 bytes of that decoded text.
* Tags are sorted by their unescaped key (1.x sorts the escaped bytes; same order unless keys
  contain escapes).
* 1.x's two field scanners disagree on a few pathological inputs (e.g. ``\\\\`` right before
  ``=`` in a field key, or a tab between the key section and a field key with no name); 1.x then
  drops the field at write time or panics.  Such lines are rejected here with
  ``invalid field format``, ``missing field key`` or ``missing field value``.

Reported lines: ``LineError.line`` is the line as 1.x prints it (leading whitespace removed, no
newline); ``line_no`` is the 1-based physical line where it starts (a quoted string value may
span several physical lines).
"""

from __future__ import annotations

import importlib
import math
import os
import re
import time
from dataclasses import dataclass, field
from itertools import count, repeat
from operator import mul
from types import ModuleType
from typing import Callable

from tracker import vocabulary

FieldValue = float | int | str | bool

PRECISION_NS: dict[str, int] = {
    "n": 1,
    "ns": 1,
    "u": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}

MAX_KEY_LENGTH = 65535
# Influx reserves MaxInt64 and the two lowest int64 values as sentinels.
MIN_NANO_TIME = -(2**63) + 2
MAX_NANO_TIME = 2**63 - 2
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
TIME_RANGE_ERROR = f"time outside range {MIN_NANO_TIME} - {MAX_NANO_TIME}"


@dataclass(slots=True)
class Point:
    measurement: str  # unescaped
    tags: tuple[tuple[str, str], ...]  # unescaped, sorted by key
    fields: dict[str, FieldValue]  # unescaped keys, input order; a repeated key: last value wins
    time: int  # ns since epoch
    # Where the point's line starts in the body (1-based), so later checks can name the line.
    line_no: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class LineError:
    line_no: int  # 1-based line number within the body
    line: str  # the offending line, as InfluxDB prints it
    reason: str  # InfluxDB 1.x reason text

    def __str__(self) -> str:
        return f"unable to parse '{self.line}': {self.reason}"


@dataclass(slots=True)
class ParseResult:
    points: list[Point]
    errors: list[LineError]


@dataclass(slots=True)
class CheckedBatch:
    """A /write body parsed and held to the sample vocabulary (parse_samples)."""

    points: list[Point]  # the accepted points: canonical field keys, float values
    errors: list[LineError]  # lines that are not line protocol
    refused: list[str]  # lines the vocabulary refused, each as /write reports it (names the line, key and rule)


class _LineRejected(Exception):
    """Internal: the slow path rejects a line with an InfluxDB reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ---------------------------------------------------------------------------------------------
# Public entry points: the compiled parser when it was built, else the pure-Python one
# ---------------------------------------------------------------------------------------------


def parse(
    body: bytes, precision: str = "ns", now_ns: int | None = None, max_line_length: int | None = None
) -> ParseResult:
    """Parse a /write body.  Good lines become points, bad lines LineErrors (never raises for
    any body; ValueError only for an unknown precision).  See parse_python for the details."""
    return _active_parse(body, precision, now_ns, max_line_length)


def parse_samples(
    body: bytes, precision: str = "ns", now_ns: int | None = None, max_line_length: int | None = None
) -> CheckedBatch:
    """parse(), then every point held to the sample vocabulary (vocabulary.check_points): what
    /write stores and what it reports.  The compiled parser does both in one pass."""
    return _active_parse_samples(body, precision, now_ns, max_line_length)


def parse_samples_python(
    body: bytes, precision: str = "ns", now_ns: int | None = None, max_line_length: int | None = None
) -> CheckedBatch:
    """parse_samples(), in pure Python."""
    result = parse_python(body, precision, now_ns, max_line_length)
    points, refused = vocabulary.check_points(result.points, body)
    return CheckedBatch(points, result.errors, refused)


def parse_python(
    body: bytes, precision: str = "ns", now_ns: int | None = None, max_line_length: int | None = None
) -> ParseResult:
    """parse(), in pure Python: the reference the compiled parser is held to.

    Parse a /write body.  Good lines become points, bad lines LineErrors (never raises for
    any body; ValueError only for an unknown precision).

    With `max_line_length`, a physical line longer than that many bytes (line ending excluded) is
    refused without being looked at, and always ends at its newline: a quoted string value cannot
    continue across it.  The lines around it are parsed as usual."""
    try:
        multiplier = PRECISION_NS[precision]
    except KeyError:
        raise ValueError(f"invalid precision {precision!r}") from None
    if now_ns is None:
        now_ns = time.time_ns()
    if max_line_length is not None and len(body) > max_line_length:
        raw_lines = body.split(b"\n")
        if max(map(len, raw_lines)) > max_line_length:  # a CR before the newline may still pass
            return _parse_around_long_lines(raw_lines, precision, now_ns, max_line_length)
    default_time = now_ns - now_ns % multiplier
    text = body.decode("utf-8", "replace")
    points: list[Point] = []
    errors: list[LineError] = []
    append = points.append

    if '"' not in text and "\\" not in text:
        # Without quotes or escapes every newline ends a line, so a plain split is exact and
        # every CR before a newline is a line ending.
        shapes = body.translate(None, _NOT_SHAPE_BYTES)
        if "\r" in text:
            text = text.replace("\r\n", "\n")
            shapes = shapes.replace(b"\r\n", b"\n")
            if text.endswith("\r"):
                text = text[:-1]
                shapes = shapes[:-1]
        lines = text.split("\n")
        fast = _parse_shaped_line
        if _uniform_shape(shapes) and "#" not in text:
            # The usual batch: every line has the same valid shape, so no per-line checks.
            # (A single line, the usual live write, is cheaper on the per-line path below.)
            if len(lines) > 2 or (len(lines) == 2 and lines[1]):
                batch = _parse_uniform_batch(text, multiplier, default_time)
                if batch is not None:
                    return ParseResult(batch, errors)
            for index, line in enumerate(lines):
                if line:
                    point = fast(line, multiplier, default_time)
                    if point is None:
                        _parse_block(line, index + 1, multiplier, default_time, points, errors)
                    else:
                        point.line_no = index + 1
                        append(point)
            return ParseResult(points, errors)
        shape_ok: dict[bytes, bool] = {}
        for index, (line, shape) in enumerate(zip(lines, shapes.split(b"\n"))):
            if not line:
                continue
            ok = shape_ok.get(shape)
            if ok is None:
                ok = shape_ok[shape] = _FAST_SHAPE.fullmatch(shape) is not None
            if ok and line[0] != "#":
                point = fast(line, multiplier, default_time)
                if point is not None:
                    point.line_no = index + 1
                    append(point)
                    continue
            _parse_block(line, index + 1, multiplier, default_time, points, errors)
        return ParseResult(points, errors)

    for line_no, block in _split_blocks(text):
        if '"' not in block and "\\" not in block:
            point = _parse_line_fast(block, multiplier, default_time)
            if point is not None:
                point.line_no = line_no
                append(point)
                continue
        _parse_block(block, line_no, multiplier, default_time, points, errors)
    return ParseResult(points, errors)


LONG_LINE_PREVIEW = 64  # characters of a too-long line quoted in its error


def _parse_around_long_lines(lines: list[bytes], precision: str, now_ns: int, limit: int) -> ParseResult:
    """parse() of the body `b"\\n".join(lines)`, refusing each line longer than `limit` bytes; the
    runs of lines between them are parsed on their own, with their line numbers kept."""
    points: list[Point] = []
    errors: list[LineError] = []
    run_start = 0  # index of the first line of the current run of short lines

    def parse_run(end: int) -> None:
        if end <= run_start:
            return
        result = parse_python(b"\n".join(lines[run_start:end]), precision, now_ns)
        for point in result.points:
            point.line_no += run_start
        points.extend(result.points)
        errors.extend(LineError(e.line_no + run_start, e.line, e.reason) for e in result.errors)

    for index, line in enumerate(lines):
        size = len(line) - line.endswith(b"\r")
        if size <= limit:
            continue
        parse_run(index)
        text = line[: min(size, LONG_LINE_PREVIEW * 4)].decode("utf-8", "replace").lstrip(" \t\x00")
        preview = text[:LONG_LINE_PREVIEW] + ("..." if len(text) > LONG_LINE_PREVIEW or size > LONG_LINE_PREVIEW * 4 else "")
        errors.append(LineError(index + 1, preview, f"line {index + 1}: line too long ({size} bytes, limit {limit})"))
        run_start = index + 1
    parse_run(len(lines))
    return ParseResult(points, errors)


def _parse_block(
    block: str,
    line_no: int,
    multiplier: int,
    default_time: int,
    points: list[Point],
    errors: list[LineError],
) -> None:
    """One line as ParsePointsWithPrecision treats it: skip blank lines and comments."""
    start = _skip_whitespace(block, 0)
    if start >= len(block) or block[start] == "#":
        return
    if block[-1] == "\n":  # only possible after an escaped newline at the end of the body
        block = block[:-1]
    line = block[start:]
    try:
        point = _parse_line_slow(line, multiplier, default_time)
    except _LineRejected as rejected:
        errors.append(LineError(line_no, line, rejected.reason))
        return
    point.line_no = line_no
    points.append(point)


def _split_blocks(text: str) -> list[tuple[int, str]]:
    """Split a body into lines the way 1.x's scanLine does (a newline inside a quoted field
    value or after a backslash does not end the line); drops the CR of a CRLF ending."""
    blocks: list[tuple[int, str]] = []
    n = len(text)
    pos = 0
    line_no = 1
    while pos < n:
        newline = text.find("\n", pos)
        segment_end = n if newline < 0 else newline
        if text.find('"', pos, segment_end) < 0 and text.find("\\", pos, segment_end) < 0:
            end = segment_end
        else:
            end = _scan_line(text, pos)
        block = text[pos:end]
        next_line_no = line_no + block.count("\n") + 1
        if block.endswith("\r"):
            block = block[:-1]
        if block:
            blocks.append((line_no, block))
        line_no = next_line_no
        pos = end + 1
    return blocks


def _scan_line(buf: str, i: int) -> int:
    """Port of scanLine: index of the newline ending the line starting at i (or len(buf))."""
    n = len(buf)
    quoted = False
    in_fields = False
    equals = 0
    commas = 0
    while i < n:
        c = buf[i]
        if c == "\\":
            i += 2
            continue
        if c == " ":
            in_fields = True
        if in_fields:
            if not quoted and c == "=":
                i += 1
                equals += 1
                continue
            if not quoted and c == ",":
                i += 1
                commas += 1
                continue
            if c == '"' and equals > commas:
                i += 1
                quoted = not quoted
                continue
        if c == "\n" and not quoted:
            break
        i += 1
    return min(i, n)


# ---------------------------------------------------------------------------------------------
# Fast path
# ---------------------------------------------------------------------------------------------

_BOOLEANS: dict[str, bool] = {
    "t": True, "T": True, "true": True, "True": True, "TRUE": True,
    "f": False, "F": False, "false": False, "False": False, "FALSE": False,
}  # fmt: skip
_NUMBER_START = frozenset("0123456789.-")
# What 1.x accepts as a float (scanNumber + strconv.ParseFloat), ASCII digits only.
_FLOAT_RE = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_FAST_MAX_LINE = 65000  # below this an ASCII line cannot exceed the key length limit

# A line's "shape" is the line with every byte deleted except separators (space , =) and the
# bytes Python's float()/int() treat differently from Go: control chars (whitespace), '_', '+'
# and non-ASCII.  A shape matching _FAST_SHAPE guarantees the plain structure
# `m[,k=v...] k=v[,k=v...][ ts]` with single spaces, exactly one '=' per tag and field, and no
# '_', '+', whitespace or non-ASCII inside field values or the timestamp.
_SHAPE_BYTES = b" ,=\n_+" + bytes(range(0x20)) + bytes(range(0x7F, 0x100))
_NOT_SHAPE_BYTES = bytes(c for c in range(256) if c not in _SHAPE_BYTES)
_FAST_SHAPE = re.compile(rb"[_+]*(?:,[_+]*=[_+]*)* [_+]*=(?:,[_+]*=)* ?")


def _uniform_shape(shapes: bytes) -> bool:
    """True when every line has the same valid shape (a trailing newline allowed)."""
    first_end = shapes.find(b"\n") + 1
    if first_end == 0:
        return _FAST_SHAPE.fullmatch(shapes) is not None
    line_shape = shapes[:first_end]
    if _FAST_SHAPE.fullmatch(line_shape, 0, first_end - 1) is None:
        return False
    whole = line_shape * shapes.count(b"\n")
    return shapes.startswith(whole) and shapes[len(whole) :] in (b"", line_shape[:-1])


def _parse_uniform_batch(text: str, multiplier: int, default_time: int) -> list[Point] | None:
    """Column-wise fast path for a batch whose lines all have one valid shape and the same
    tag and field keys (one device posting a batch).  Every conversion runs over a whole
    column in C, so there is no Python code per line except Point's __init__.  None when
    anything is off: the per-line paths then handle the batch."""
    if text.endswith("\n"):
        text = text[:-1]
    if not text or (len(text) > _FAST_MAX_LINE and max(map(len, text.split("\n"))) > _FAST_MAX_LINE):
        return None
    first_line = text.split("\n", 1)[0]
    key, space, rest = first_line.partition(" ")
    tag_count = key.count(",")
    field_count = rest.count("=")
    has_time = " " in rest
    stride = 1 + 2 * tag_count + 2 * field_count + has_time
    line_count = text.count("\n") + 1
    # Same separators in the same order on every line: a flat split has a fixed stride.
    tokens = text.replace(" ", ",").replace("=", ",").replace("\n", ",").split(",")
    if len(tokens) != line_count * stride:
        return None
    measurements = tokens[0::stride]
    if "" in measurements:
        return None

    def same_key_column(column: list[str]) -> str | None:
        first = column[0]
        return first if first and column.count(first) == line_count else None

    tag_columns: list[tuple[str, list[str]]] = []
    for position in range(1, 1 + 2 * tag_count, 2):
        tag_key = same_key_column(tokens[position::stride])
        tag_values = tokens[position + 1 :: stride]
        if tag_key is None or "" in tag_values:
            return None
        tag_columns.append((tag_key, tag_values))
    if len({tag_key for tag_key, _ in tag_columns}) != tag_count:
        return None  # duplicate tags
    tag_columns.sort(key=lambda column: column[0])
    tags: list[tuple[tuple[str, str], ...]] | repeat[tuple[()]] = (
        list(zip(*(zip(repeat(tag_key), values) for tag_key, values in tag_columns)))
        if tag_count
        else repeat(())
    )

    field_keys: list[str] = []
    float_columns: list[list[float]] = []
    for position in range(1 + 2 * tag_count, stride - has_time, 2):
        field_key = same_key_column(tokens[position::stride])
        if field_key is None:
            return None
        field_keys.append(field_key)
        try:
            float_columns.append(list(map(float, tokens[position + 1 :: stride])))
        except ValueError:
            return None
    if len(set(field_keys)) != field_count:
        return None  # a repeated field key: the per-line path keeps the last value
    # As in _parse_shaped_line: the shape rules out what float() accepts beyond 1.x except
    # inf/nan/overflow, which make the sum non-finite.
    total = sum(map(sum, float_columns))
    if total - total != 0.0:
        return None
    fields = list(map(dict, map(zip, repeat(field_keys), zip(*float_columns))))

    if has_time:
        stamps = tokens[stride - 1 :: stride]
        if not all(map(str.isdigit, stamps)):
            return None  # negative or malformed timestamps: per line
        times: list[int] | repeat[int] = list(map(int, stamps))
        if multiplier != 1:
            times = list(map(mul, times, repeat(multiplier)))
        if max(times) > MAX_NANO_TIME:
            return None
    else:
        times = repeat(default_time)
    return list(map(Point, measurements, tags, fields, times, count(1)))


def _parse_line_fast(line: str, multiplier: int, default_time: int) -> Point | None:
    """The fast path for one line, or None when anything is unusual (the slow path decides).

    Caller guarantees: no backslash and no double quote in the line.
    """
    if not line.isascii() or line[:1] == "#":
        return None
    if not _FAST_SHAPE.fullmatch(line.encode().translate(None, _NOT_SHAPE_BYTES)):
        return None
    return _parse_shaped_line(line, multiplier, default_time)


def _parse_shaped_line(line: str, multiplier: int, default_time: int) -> Point | None:
    """Fast path for a line whose shape matched _FAST_SHAPE (see there); not '#'."""
    if len(line) > _FAST_MAX_LINE:
        return None
    parts = line.split(" ")
    if len(parts) == 3:
        key, field_text, ts = parts
        if ts.isdigit():
            timestamp = int(ts) * multiplier
        elif ts[:1] == "-" and ts[1:].isdigit():
            timestamp = int(ts) * multiplier
        else:
            return None
        if not MIN_NANO_TIME <= timestamp <= MAX_NANO_TIME:
            return None
    elif len(parts) == 2:
        key, field_text = parts
        timestamp = default_time
    else:  # an empty shape: a line without separators
        return None

    if "," in key:
        key_parts = key.split(",")
        measurement = key_parts[0]
        if not measurement:
            return None
        tag_list: list[tuple[str, str]] = []
        for part in key_parts[1:]:
            tag_key, _, tag_value = part.partition("=")
            if not tag_key or not tag_value:
                return None
            tag_list.append((tag_key, tag_value))
        if len(tag_list) > 1:
            tag_list.sort()
            previous = None
            for tag_key, _ in tag_list:
                if tag_key == previous:
                    return None
                previous = tag_key
        tags = tuple(tag_list)
    elif key:
        measurement = key
        tags = ()
    else:  # a leading space: 1.x skips it, the slow path does that
        return None

    # The shape guarantees alternating keys and values here.
    kv = field_text.replace("=", ",").split(",")
    keys = kv[::2]
    values = kv[1::2]
    try:
        fields: dict[str, FieldValue] = dict(zip(keys, map(float, values)))
    except ValueError:  # integers, booleans, or something for the slow path
        return _parse_typed_fields(measurement, tags, keys, values, timestamp)
    if len(fields) != len(keys):  # a repeated key: check every value, not just the last
        return _parse_typed_fields(measurement, tags, keys, values, timestamp)
    # With '_', '+', whitespace and non-ASCII ruled out by the shape, float() accepts exactly
    # 1.x's floats plus inf/nan spellings, which (like 1e400 overflow) make the sum
    # non-finite.  A finite-value overflow of the sum just sends the line to the slow path.
    total = sum(fields.values())
    if total - total != 0.0 or "" in fields:
        return None
    return Point(measurement, tags, fields, timestamp)


def _parse_typed_fields(
    measurement: str,
    tags: tuple[tuple[str, str], ...],
    keys: list[str],
    values: list[str],
    timestamp: int,
) -> Point | None:
    """Fast path for field sets with integers or booleans."""
    fields: dict[str, FieldValue] = {}
    for field_key, value in zip(keys, values):
        if not field_key or not value:
            return None
        if value[0] in _NUMBER_START:
            if value[-1] == "i":
                digits = value[:-1]
                if not digits.isdigit() and not (digits[:1] == "-" and digits[1:].isdigit()):
                    return None
                number = int(digits)
                if not _INT64_MIN <= number <= _INT64_MAX:
                    return None
                fields[field_key] = number
            elif _FLOAT_RE.fullmatch(value):
                real = float(value)
                if real == math.inf or real == -math.inf:
                    return None
                fields[field_key] = real
            else:
                return None
        else:
            boolean = _BOOLEANS.get(value)
            if boolean is None:
                return None
            fields[field_key] = boolean
    return Point(measurement, tags, fields, timestamp)


# ---------------------------------------------------------------------------------------------
# Slow path: a port of the Go scanners (models/points.go), on text instead of bytes.
# Every structural character is ASCII, so indexing decoded text behaves like indexing bytes.
# ---------------------------------------------------------------------------------------------

_TAG_KEY_STATE = 0
_TAG_VALUE_STATE = 1
_FIELDS_STATE = 2
_DIGITS = frozenset("0123456789")
_NUMERIC = frozenset("0123456789.")
_FIELD_NUMBER_START = frozenset("0123456789.-Nn")
_ITERATOR_NUMERIC = frozenset("0123456789-.nNiIu")
_NAME_ESCAPE_RE = re.compile(r'\\([, "=])')  # measurement and field keys
_TAG_ESCAPE_RE = re.compile(r"\\([, =])")
_STRING_ESCAPE_RE = re.compile(r'\\([\\"])')
_GO_INT_RE = re.compile(r"[+-]?[0-9]+")


def _parse_line_slow(line: str, multiplier: int, default_time: int) -> Point:
    """parsePoint: one line (leading whitespace already skipped) to a Point, or _LineRejected."""
    n = len(line)
    pos, key, measurement_end, tag_starts = _scan_key(line)
    if not key:
        raise _LineRejected("missing measurement")
    key_bytes = _utf8_len(key)
    if key_bytes > MAX_KEY_LENGTH:
        raise _LineRejected(f"max key length exceeded: {key_bytes} > {MAX_KEY_LENGTH}")

    pos, field_text = _scan_fields(line, pos)
    if not field_text:
        raise _LineRejected("missing fields")
    if key_bytes + 4 + _utf8_len(field_text) > MAX_KEY_LENGTH:
        _check_series_key_sizes(field_text, key_bytes)

    pos, ts = _scan_time(line, pos)
    if not ts:
        timestamp = default_time
    else:
        timestamp = _go_parse_int64(ts) * multiplier
        if timestamp > MAX_NANO_TIME or timestamp < MIN_NANO_TIME:
            raise _LineRejected(TIME_RANGE_ERROR)
        while pos < n:  # only spaces may follow a timestamp
            if line[pos] != " ":
                raise _LineRejected("point is invalid")
            pos += 1

    # 1.x converts field values lazily, after the timestamp checks; same order of errors here.
    fields = _extract_fields(field_text)
    measurement = _unescape(_NAME_ESCAPE_RE, line[:measurement_end])
    tag_list: list[tuple[str, str]] = []
    for j in range(len(tag_starts) - 1):
        raw_tag = line[tag_starts[j] : tag_starts[j + 1] - 1]
        equals_at = _scan_to(raw_tag, 0, "=")
        tag_list.append(
            (
                _unescape(_TAG_ESCAPE_RE, raw_tag[:equals_at]),
                _unescape(_TAG_ESCAPE_RE, raw_tag[equals_at + 1 :]),
            )
        )
    tag_list.sort()
    return Point(measurement, tuple(tag_list), fields, timestamp)


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _unescape(pattern: re.Pattern[str], text: str) -> str:
    return pattern.sub(r"\1", text) if "\\" in text else text


def _skip_whitespace(buf: str, i: int) -> int:
    n = len(buf)
    while i < n and buf[i] in " \t\x00":
        i += 1
    return i


def _scan_to(buf: str, i: int, stop: str) -> int:
    """Index of the first `stop` not preceded by a backslash (1.x's idea of escaped)."""
    n = len(buf)
    while i < n:
        if buf[i] == stop and (i == 0 or buf[i - 1] != "\\"):
            break
        i += 1
    return i


def _scan_key(buf: str) -> tuple[int, str, int, list[int]]:
    """scanKey: (end of key, raw key, end of measurement, tag start indices + sentinel)."""
    state, i = _scan_measurement(buf, 0)
    if state != _TAG_KEY_STATE:
        return i, buf[:i], i, []
    measurement_end = i - 1
    tag_starts: list[int] = []
    while True:
        if state == _TAG_KEY_STATE:
            tag_starts.append(i)
            i = _scan_tags_key(buf, i)
            state = _TAG_VALUE_STATE
        elif state == _TAG_VALUE_STATE:
            state, i = _scan_tags_value(buf, i)
        else:
            tag_starts.append(i + 1)
            break
    raw_keys = set()
    for j in range(len(tag_starts) - 1):
        start = tag_starts[j]
        raw_keys.add(buf[start : _scan_to(buf, start, "=")])
    if len(raw_keys) != len(tag_starts) - 1:
        raise _LineRejected("duplicate tags")
    return i, buf[:i], measurement_end, tag_starts


def _scan_measurement(buf: str, i: int) -> tuple[int, int]:
    n = len(buf)
    if i >= n or buf[i] == ",":
        raise _LineRejected("missing measurement")
    while True:
        i += 1
        if i >= n:
            raise _LineRejected("missing fields")
        if buf[i - 1] == "\\":
            continue
        c = buf[i]
        if c == ",":
            return _TAG_KEY_STATE, i + 1
        if c == " ":
            return _FIELDS_STATE, i


def _scan_tags_key(buf: str, i: int) -> int:
    n = len(buf)
    if i >= n or buf[i] in " ,=":
        raise _LineRejected("missing tag key")
    while True:
        i += 1
        if i >= n:
            raise _LineRejected("missing tag value")
        c = buf[i]
        escaped = buf[i - 1] == "\\"
        if (c == " " or c == ",") and not escaped:
            raise _LineRejected("missing tag value")
        if c == "=" and not escaped:
            return i + 1


def _scan_tags_value(buf: str, i: int) -> tuple[int, int]:
    n = len(buf)
    if i >= n or buf[i] == "," or buf[i] == " ":
        raise _LineRejected("missing tag value")
    while True:
        i += 1
        if i >= n:
            raise _LineRejected("missing fields")
        c = buf[i]
        if buf[i - 1] == "\\":
            continue
        if c == "=":
            raise _LineRejected("invalid tag format")
        if c == ",":
            return _TAG_KEY_STATE, i + 1
        if c == " ":
            return _FIELDS_STATE, i


def _scan_fields(buf: str, i: int) -> tuple[int, str]:
    """scanFields: validates the field section (numbers, booleans, quotes) and finds its end."""
    start = i = _skip_whitespace(buf, i)
    n = len(buf)
    quoted = False
    equals = 0
    commas = 0
    while i < n:
        c = buf[i]
        if c == "\\" and i + 1 < n:
            i += 2
            continue
        if c == '"' and equals > commas:
            quoted = not quoted
            i += 1
            continue
        if c == "=" and not quoted:
            equals += 1
            before = buf[i - 1]
            if (before == " " or before == ",") and (i < 2 or buf[i - 2] != "\\"):
                raise _LineRejected("missing field key")
            if i + 1 >= n:
                raise _LineRejected("missing field value")
            after = buf[i + 1]
            if after == "," or after == " ":
                raise _LineRejected("missing field value")
            if after in _FIELD_NUMBER_START:
                i = _scan_number(buf, i + 1)
                continue
            if after != '"':
                i = _scan_boolean(buf, i + 1)
                continue
        if c == "," and not quoted:
            commas += 1
        if c == " " and not quoted:
            break
        i += 1
    if quoted:
        raise _LineRejected("unbalanced quotes")
    if equals == 0 or commas != equals - 1:
        raise _LineRejected("invalid field format")
    return i, buf[start:i]


def _scan_number(buf: str, i: int) -> int:
    start = i
    n = len(buf)
    is_int = False
    is_unsigned = False
    if i < n and buf[i] == "-":
        i += 1
        if i == n:
            raise _LineRejected("invalid number")
    decimal = False
    scientific = False
    while i < n:
        c = buf[i]
        if c == "," or c == " ":
            break
        if c == "i" and i > start and not (is_int or is_unsigned):
            is_int = True
            i += 1
            continue
        if c == "u" and i > start and not (is_int or is_unsigned):
            is_unsigned = True
            i += 1
            continue
        if c == ".":
            if decimal:
                raise _LineRejected("invalid number")
            decimal = True
        if i > start and (c == "e" or c == "E"):
            scientific = True
            i += 1
            continue
        if (c == "+" or c == "-") and buf[i - 1] in "eE":
            i += 1
            continue
        if c not in _NUMERIC:  # includes NaN/nan, letters, '+' at the start
            raise _LineRejected("invalid number")
        i += 1
    if (is_int or is_unsigned) and (decimal or scientific):
        raise _LineRejected("invalid number")
    numeric_digits = i - start - is_int - decimal - (buf[start] == "-")
    if numeric_digits == 0:
        raise _LineRejected("invalid number")
    if is_int:
        if buf[i - 1] != "i":
            raise _LineRejected("invalid number")
        digits = buf[start : i - 1]
        if len(digits) >= 19:
            value = int(digits)
            if value > _INT64_MAX or value < _INT64_MIN:
                raise _LineRejected(
                    f"unable to parse integer {digits}: "
                    f'strconv.ParseInt: parsing "{digits}": value out of range'
                )
    elif is_unsigned:
        raise _LineRejected("invalid number")  # uint support is off in 1.x OSS builds
    elif scientific or i - start >= 25:
        if _go_parse_float(buf[start:i]) is None:
            raise _LineRejected("invalid float")
    return i


def _scan_boolean(buf: str, i: int) -> int:
    start = i
    n = len(buf)
    if i < n and buf[i] not in "tfTF":
        raise _LineRejected("invalid boolean")
    i += 1
    while i < n and buf[i] != "," and buf[i] != " ":
        i += 1
    if i - start == 1:
        return i
    if buf[start : i] not in _BOOLEANS:
        raise _LineRejected("invalid boolean")
    return i


def _scan_time(buf: str, i: int) -> tuple[int, str]:
    start = i = _skip_whitespace(buf, i)
    n = len(buf)
    while i < n:
        c = buf[i]
        if c == "\n" or c == " ":
            break
        if i == start and c == "-":
            i += 1
            continue
        if c not in _DIGITS:
            raise _LineRejected("bad timestamp")
        i += 1
    return i, buf[start:i]


def _scan_field_value(buf: str, i: int) -> int:
    """scanFieldValue: end of a value (an unquoted comma); only \\" and \\\\ are escapes."""
    n = len(buf)
    quoted = False
    while i < n:
        c = buf[i]
        if c == "\\" and i + 1 < n and (buf[i + 1] == '"' or buf[i + 1] == "\\"):
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif c == "," and not quoted:
            break
        i += 1
    return i


def _check_series_key_sizes(field_text: str, key_bytes: int) -> None:
    """1.x stores each field under key + 4 separator bytes + field key; that must fit too."""
    n = len(field_text)
    pos = 0
    while pos < n:
        equals_at = _scan_to(field_text, pos, "=")
        size = key_bytes + 4 + _utf8_len(field_text[pos:equals_at])
        if size > MAX_KEY_LENGTH:
            raise _LineRejected(f"max key length exceeded: {size} > {MAX_KEY_LENGTH}")
        pos = _scan_field_value(field_text, equals_at + 1) + 1


def _extract_fields(field_text: str) -> dict[str, FieldValue]:
    """The field iterator of 1.x (walkFields + FieldIterator) over a validated section."""
    fields: dict[str, FieldValue] = {}
    n = len(field_text)
    pos = 0
    while pos < n:
        equals_at = _scan_to(field_text, pos, "=")
        if equals_at >= n:
            raise _LineRejected("invalid field format")
        raw_key = field_text[pos:equals_at]
        end = _scan_field_value(field_text, equals_at + 1)
        value = field_text[equals_at + 1 : end]
        pos = end + 1
        if not raw_key:
            raise _LineRejected("missing field key")
        if not value:
            raise _LineRejected("missing field value")
        fields[_unescape(_NAME_ESCAPE_RE, raw_key)] = _field_value(value)
    return fields


def _field_value(value: str) -> FieldValue:
    first = value[0]
    if first == '"':
        return _unescape(_STRING_ESCAPE_RE, value[1:-1])
    if first in _ITERATOR_NUMERIC:
        last = value[-1]
        if last == "i":
            if _GO_INT_RE.fullmatch(value[:-1]):
                number = int(value[:-1])
                if _INT64_MIN <= number <= _INT64_MAX:
                    return number
            raise _LineRejected(f'unable to parse integer value "{value[:-1]}"')
        if last == "u":
            raise _LineRejected("invalid number")
        real = _go_parse_float(value)
        if real is None:
            raise _LineRejected(f'unable to parse floating point value "{value}"')
        return real
    if value in _BOOLEANS:
        return _BOOLEANS[value]
    if value in ("1", "0"):  # strconv.ParseBool also takes these (unreachable via the scanner)
        return value == "1"
    raise _LineRejected(f'unable to parse bool value "{value}"')


def _go_parse_float(text: str) -> float | None:
    """strconv.ParseFloat for the characters the number scanner lets through."""
    if not _FLOAT_RE.fullmatch(text):
        return None
    real = float(text)
    return None if math.isinf(real) else real


def _go_parse_int64(text: str) -> int:
    """strconv.ParseInt(text, 10, 64) for a scanned timestamp, with Go's error text."""
    if not _GO_INT_RE.fullmatch(text):
        raise _LineRejected(f'strconv.ParseInt: parsing "{text}": invalid syntax')
    number = int(text)
    if number > _INT64_MAX or number < _INT64_MIN:
        raise _LineRejected(f'strconv.ParseInt: parsing "{text}": value out of range')
    return number


# ---------------------------------------------------------------------------------------------
# Choosing the implementation
# ---------------------------------------------------------------------------------------------

ParseFunction = Callable[[bytes, str, int | None, int | None], ParseResult]
ParseSamplesFunction = Callable[[bytes, str, int | None, int | None], CheckedBatch]


def _load_compiled() -> tuple[ModuleType | None, str]:
    """The compiled module (tracker._lineprotocol) bound to this one, or None and why not."""
    try:
        _lineprotocol = importlib.import_module("tracker._lineprotocol")
    except ImportError as exc:
        return None, f"the compiled parser was not built ({exc})"
    try:
        _bind_compiled(_lineprotocol)
    except Exception as exc:  # a vocabulary or Point it cannot take: the pure parser handles everything
        return None, f"the compiled parser does not fit this version ({exc!r})"
    return _lineprotocol, ""


def _bind_compiled(compiled: ModuleType) -> None:
    """Hand the compiled module the Python side it builds on and falls back to."""
    compiled.bind(
        Point=Point,
        ParseResult=ParseResult,
        CheckedBatch=CheckedBatch,
        PRECISION_NS=PRECISION_NS,
        parse_block=_parse_block,
        parse_python=parse_python,
        normalize_fields=vocabulary.normalize_fields,
        refusal_messages=vocabulary.refusal_messages,
        measurement=vocabulary.MEASUREMENT,
        fields=[(spec.key, spec.low, spec.high) for spec in vocabulary.FIELDS],
        aliases=vocabulary.ALIASES,
    )


COMPILED, COMPILED_MISSING = _load_compiled()  # COMPILED_MISSING: why COMPILED is None
IMPLEMENTATIONS: dict[str, tuple[ParseFunction, ParseSamplesFunction]] = {"python": (parse_python, parse_samples_python)}
if COMPILED is not None:
    IMPLEMENTATIONS["compiled"] = (COMPILED.parse, COMPILED.parse_samples)


def use_implementation(name: str) -> None:
    """Make parse() and parse_samples() use `name` ("compiled" or "python"); tests and benchmarks."""
    global IMPLEMENTATION, _active_parse, _active_parse_samples
    if name not in IMPLEMENTATIONS:
        raise ValueError(f"no {name!r} line-protocol parser here ({COMPILED_MISSING or 'unknown name'})")
    IMPLEMENTATION = name
    _active_parse, _active_parse_samples = IMPLEMENTATIONS[name]


IMPLEMENTATION: str  # "compiled" or "python": which parser parse() runs
_active_parse: ParseFunction
_active_parse_samples: ParseSamplesFunction
# TRACKER_PURE_PYTHON=1 forces the pure-Python parser (to compare, or to rule the compiled one out).
use_implementation("python" if COMPILED is None or os.environ.get("TRACKER_PURE_PYTHON", "") not in ("", "0") else "compiled")
