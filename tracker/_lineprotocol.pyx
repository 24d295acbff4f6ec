# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled hot path of tracker.lineprotocol: parse() and parse_samples() over plain lines in C.

The pure-Python module stays the reference.  This one recognises, byte by byte, the lines every
client sends (``measurement[,tag=value...] key=number[,key=number...] [timestamp]``: no quotes,
no backslashes, single spaces, floats and ``i`` integers, an in-range timestamp) and builds their
points directly; it checks the sample vocabulary on the same pass.  Every other line (comments,
leading whitespace, booleans, anything malformed, anything over the key-length horizon) goes to
the Python slow path, line by line, which alone words the errors; a body with a quote or a
backslash, or with a line over the length limit, goes to the Python parser whole.  So the results
are the Python parser's by construction wherever this code steps aside, and its equal elsewhere
(the tests compare both on generated and hostile bodies).

Names from the Python side (Point, the slow path, the vocabulary) are handed over by bind(),
which tracker.lineprotocol calls once it has defined them.
"""

from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF
from cpython.dict cimport PyDict_SetItem
from cpython.list cimport PyList_Append
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memchr, memcmp
from libc.math cimport isinf

import time as _time
import types as _types

cdef extern from "Python.h":
    ctypedef struct PyMemberDef:
        Py_ssize_t offset
    ctypedef struct PyMemberDescrObject:
        PyMemberDef *d_member

    # Python's own correctly rounded, locale-independent conversion: the same double as float().
    double PyOS_string_to_double(const char *s, char **endptr, PyObject *overflow_exception)
    PyObject *PyErr_Occurred()
    void PyErr_Clear()
    object PyUnicode_DecodeUTF8(const char *s, Py_ssize_t size, const char *errors)

cdef enum:
    # Below this many bytes a line cannot reach 1.x's key-length limit (65,535 UTF-8 bytes), even
    # if every byte is invalid UTF-8 and becomes a 3-byte U+FFFD: longer lines take the slow path.
    SAFE_LINE_BYTES = 21000
    MAX_TAGS = 32  # more tags or fields than this: the slow path
    MAX_FIELDS = 64
    MAX_VOCABULARY = 64  # one bit per canonical key

cdef uint64_t TWO_TO_53 = 9007199254740992
cdef double _POW10[23]  # 1e0 .. 1e22: the powers of ten a double holds exactly
for _k in range(23):
    _POW10[_k] = float(10**_k)
cdef int64_t MIN_NANO_TIME = -9223372036854775806  # as tracker.lineprotocol
cdef int64_t MAX_NANO_TIME = 9223372036854775806

# Bound by tracker.lineprotocol (see bind()).
cdef object _Point = None
_POINT_SLOTS = ("measurement", "tags", "fields", "time", "line_no")  # Point's fields, in order
cdef bint _point_slots_known = False  # Point is that plain slots class: _new_point fills its slots
cdef Py_ssize_t _point_slots[5]
cdef object _object_new = object.__new__
cdef object _ParseResult = None
cdef object _CheckedBatch = None
cdef object _PRECISION_NS = None
cdef object _parse_block = None  # the slow path for one line: (text, line_no, multiplier, default_time, points, errors)
cdef object _parse_python = None  # the whole pure parser
cdef object _normalize_fields = None  # vocabulary.normalize_fields
cdef object _refusal_messages = None  # vocabulary.refusal_messages(body, [(line_no, reason), ...])
cdef str _MEASUREMENT = None
# The vocabulary as C sees it: raw key bytes -> (canonical key object, range).
cdef list _vocab_raw = []  # bytes of every accepted key (canonical ones and aliases); keeps _vocab_key alive
cdef list _vocab_canonical = []  # the canonical key str for each entry above
cdef const char *_vocab_key[MAX_VOCABULARY]
cdef Py_ssize_t _vocab_key_size[MAX_VOCABULARY]
cdef double _vocab_low[MAX_VOCABULARY]
cdef double _vocab_high[MAX_VOCABULARY]
cdef int _vocab_slot[MAX_VOCABULARY]  # index of the canonical key (aliases share their key's slot)
cdef int _vocab_count = 0


def bind(*, Point, ParseResult, CheckedBatch, PRECISION_NS, parse_block, parse_python,
         normalize_fields, refusal_messages, measurement, fields, aliases) -> None:
    """Hand over the Python side: types, the slow path, and the vocabulary (`fields` as
    (key, low, high) triples, `aliases` as {alias: key})."""
    global _Point, _ParseResult, _CheckedBatch, _PRECISION_NS, _parse_block, _parse_python
    global _normalize_fields, _refusal_messages, _MEASUREMENT, _vocab_count
    global _point_slots_known
    _Point, _ParseResult, _CheckedBatch, _PRECISION_NS = Point, ParseResult, CheckedBatch, PRECISION_NS
    _point_slots_known = False
    descriptors = [Point.__dict__.get(name) for name in _POINT_SLOTS]
    if (
        tuple(getattr(Point, "__slots__", ())) == _POINT_SLOTS
        and tuple(getattr(Point, "__dataclass_fields__", {})) == _POINT_SLOTS
        and not hasattr(Point, "__post_init__")
        and all(type(descriptor) is _types.MemberDescriptorType for descriptor in descriptors)
    ):
        for index, descriptor in enumerate(descriptors):
            _point_slots[index] = (<PyMemberDescrObject *>descriptor).d_member.offset
        _point_slots_known = True
    _parse_block, _parse_python = parse_block, parse_python
    _normalize_fields, _refusal_messages, _MEASUREMENT = normalize_fields, refusal_messages, measurement
    entries = [(key, key, low, high) for key, low, high in fields]
    slots = {key: index for index, (key, _, _) in enumerate(fields)}
    entries += [(alias, key, *[(low, high) for k, low, high in fields if k == key][0]) for alias, key in aliases.items()]
    if len(entries) > MAX_VOCABULARY:
        raise ValueError("vocabulary too large for the compiled parser")
    _vocab_raw.clear()
    _vocab_canonical.clear()
    for index, (raw, key, low, high) in enumerate(entries):
        raw_bytes = raw.encode("ascii")
        _vocab_raw.append(raw_bytes)
        _vocab_key[index] = raw_bytes
        _vocab_key_size[index] = len(raw_bytes)
        _vocab_canonical.append(key)
        _vocab_low[index] = low
        _vocab_high[index] = high
        _vocab_slot[index] = slots[key]
    _vocab_count = len(entries)


cdef inline bint _is_name_byte(unsigned char c) noexcept nogil:
    """A byte that may stand in a name on the plain path: printable ASCII but the separators,
    quote and backslash, or any non-ASCII byte (decoded as UTF-8 with replacement)."""
    if c >= 0x80:
        return True
    return 0x21 <= c <= 0x7E and c != c',' and c != c'=' and c != c'"' and c != c'\\'


cdef struct Span:
    const char *start
    Py_ssize_t size


cdef struct FieldValue:
    Span key
    bint is_int
    double real
    int64_t integer


cdef struct Line:
    Span measurement
    Span[MAX_TAGS] tag_keys
    Span[MAX_TAGS] tag_values
    int tag_count
    FieldValue[MAX_FIELDS] fields
    int field_count
    bint has_time
    int64_t time


cdef inline Py_ssize_t _digits_end(const char *s, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    """Where the run of ASCII digits starting at i ends."""
    while i < n and c'0' <= s[i] <= c'9':
        i += 1
    return i


cdef inline uint64_t _decimal(const char *s, Py_ssize_t start, Py_ssize_t end) noexcept nogil:
    """The digits s[start:end] as a number (the caller bounds their count, so it cannot wrap)."""
    cdef uint64_t magnitude = 0
    cdef Py_ssize_t j
    for j in range(start, end):
        magnitude = magnitude * 10 + <uint64_t>(s[j] - c'0')
    return magnitude


cdef inline bint _same(Span a, Span b) noexcept nogil:
    return a.size == b.size and memcmp(a.start, b.start, a.size) == 0


cdef bint _scan_line(const char *s, Py_ssize_t n, int64_t multiplier, Line *out) noexcept:
    """Recognise a plain line; False sends it to the slow path (nothing is decided here)."""
    cdef Py_ssize_t i = 0, j, start, digits_start, mark
    cdef unsigned char c
    cdef int count
    cdef bint negative, dot, has_digits
    cdef uint64_t magnitude, mantissa
    cdef bint exact, exponent_negative
    cdef int decimals, exponent
    cdef char *parsed_end
    cdef double real
    cdef int64_t stamp
    if n > SAFE_LINE_BYTES or n == 0 or s[0] == c'#':
        return False
    # measurement
    while i < n and _is_name_byte(s[i]):
        i += 1
    if i == 0 or i >= n:
        return False
    out.measurement.start = s
    out.measurement.size = i
    # tags
    count = 0
    while s[i] == c',':
        if count == MAX_TAGS:
            return False
        i += 1
        start = i
        while i < n and _is_name_byte(s[i]):
            i += 1
        if i == start or i >= n or s[i] != c'=':
            return False
        out.tag_keys[count].start = s + start
        out.tag_keys[count].size = i - start
        i += 1
        start = i
        while i < n and _is_name_byte(s[i]):
            i += 1
        if i == start or i >= n:
            return False
        out.tag_values[count].start = s + start
        out.tag_values[count].size = i - start
        count += 1
    out.tag_count = count
    if s[i] != c' ':
        return False
    i += 1
    # fields
    count = 0
    while True:
        if count == MAX_FIELDS:
            return False
        start = i
        while i < n and _is_name_byte(s[i]):
            i += 1
        if i == start or i >= n or s[i] != c'=':
            return False
        out.fields[count].key.start = s + start
        out.fields[count].key.size = i - start
        i += 1
        # value: -?(digits[.digits*]|.digits)([eE][+-]?digits)? or -?digits i
        start = i
        negative = i < n and s[i] == c'-'
        if negative:
            i += 1
        digits_start = i
        i = _digits_end(s, i, n)
        has_digits = i > digits_start
        if i < n and s[i] == c'i':
            if not has_digits:
                return False
            # an integer: at most 19 digits fit; the slow path words any overflow
            if i - digits_start > 19:
                return False
            magnitude = _decimal(s, digits_start, i)
            if negative:
                if magnitude > <uint64_t>9223372036854775807 + 1:
                    return False
                out.fields[count].integer = <int64_t>(0 - magnitude)
            else:
                if magnitude > <uint64_t>9223372036854775807:
                    return False
                out.fields[count].integer = <int64_t>magnitude
            out.fields[count].is_int = True
            i += 1
        else:
            # A float.  Digits are gathered on the way for the exact fast path below.
            mantissa = 0
            exact = True
            for j in range(digits_start, i):
                if mantissa < TWO_TO_53:
                    mantissa = mantissa * 10 + <uint64_t>(s[j] - c'0')
                else:
                    exact = False
            decimals = 0
            dot = i < n and s[i] == c'.'
            if dot:
                i += 1
                mark = i
                while i < n and c'0' <= s[i] <= c'9':
                    if mantissa < TWO_TO_53:
                        mantissa = mantissa * 10 + <uint64_t>(s[i] - c'0')
                        decimals += 1
                    elif s[i] != c'0':
                        exact = False
                    i += 1
                has_digits = has_digits or i > mark
            if not has_digits:
                return False
            exponent = 0
            if i < n and (s[i] == c'e' or s[i] == c'E'):
                i += 1
                exponent_negative = i < n and s[i] == c'-'
                if i < n and (s[i] == c'+' or s[i] == c'-'):
                    i += 1
                mark = i
                while i < n and c'0' <= s[i] <= c'9':
                    if exponent < 100000:
                        exponent = exponent * 10 + (s[i] - c'0')
                    i += 1
                if i == mark:
                    return False
                if exponent_negative:
                    exponent = -exponent
            exponent -= decimals
            if exact and mantissa <= TWO_TO_53 and -22 <= exponent <= 22:
                # Clinger's fast path: an integer below 2**53 and a power of ten up to 1e22 are
                # both exact doubles, so one IEEE multiplication or division is the correctly
                # rounded result, the same double float() gives.
                real = <double>mantissa
                if exponent < 0:
                    real = real / _POW10[-exponent]
                else:
                    real = real * _POW10[exponent]
                if negative:
                    real = -real
            else:
                # The token ends at a separator, a line end (CR, LF) or the body's closing NUL,
                # none of which continue a number, so the conversion stops exactly at i.
                real = PyOS_string_to_double(s + start, &parsed_end, NULL)
                if real == -1.0 and PyErr_Occurred() != NULL:
                    PyErr_Clear()  # cannot happen after the grammar check; stepping aside is safe
                    return False
                if parsed_end != s + i or isinf(real):
                    return False  # out of float range: the slow path words it
            out.fields[count].real = real
            out.fields[count].is_int = False
        count += 1
        if i >= n:
            break
        c = s[i]
        if c == c',':
            i += 1
            continue
        if c == c' ':
            break
        return False
    out.field_count = count
    out.has_time = False
    if i >= n:
        return True
    # timestamp: a single space, -?digits, the end of the line
    i += 1
    negative = i < n and s[i] == c'-'
    if negative:
        i += 1
    digits_start = i
    i = _digits_end(s, i, n)
    if i != n or i == digits_start or i - digits_start > 18:
        return False  # trailing bytes, no digits, or a value that may overflow: the slow path
    stamp = <int64_t>_decimal(s, digits_start, i)
    if negative:
        stamp = -stamp
    if stamp > MAX_NANO_TIME // multiplier or stamp < MIN_NANO_TIME // multiplier:
        return False  # possibly out of range: the slow path decides and words it
    out.time = stamp * multiplier
    if out.time > MAX_NANO_TIME or out.time < MIN_NANO_TIME:
        return False
    out.has_time = True
    return True


cdef class _Names:
    """Decoded names of the previous line, by position: a batch repeats its names on every line,
    so most lines decode nothing and share the previous line's tags tuple."""
    cdef Span measurement
    cdef object measurement_text
    cdef Span[MAX_TAGS] tag_keys
    cdef Span[MAX_TAGS] tag_values
    cdef list tag_texts  # [key, value, key, value, ...]
    cdef int tag_count
    cdef object tags
    cdef Span[MAX_FIELDS] field_keys
    cdef list field_texts
    cdef Span[MAX_FIELDS] vocabulary_keys  # the key last looked up in the vocabulary at each position
    cdef int[MAX_FIELDS] vocabulary_entries  # and what it was found as (-1: not a vocabulary key)

    def __cinit__(self):
        self.measurement.size = -1
        self.measurement_text = None
        self.tag_texts = [None] * (2 * MAX_TAGS)
        self.tag_count = -1
        self.tags = None
        self.field_texts = [None] * MAX_FIELDS
        for index in range(MAX_FIELDS):
            self.field_keys[index].size = -1
            self.vocabulary_keys[index].size = -1
        for index in range(MAX_TAGS):
            self.tag_keys[index].size = -1
            self.tag_values[index].size = -1

    cdef object measurement_of(self, Span span):
        if not _same(span, self.measurement):
            self.measurement_text = _decode(span)
            self.measurement = span
        return self.measurement_text

    cdef object field_key(self, int index, Span span):
        if not _same(span, self.field_keys[index]):
            self.field_texts[index] = _decode(span)
            self.field_keys[index] = span
        return self.field_texts[index]

    cdef object tags_of(self, Line *line):
        """The sorted tags tuple, or None for duplicate tag keys (the slow path words that)."""
        cdef int index
        cdef bint same = line.tag_count == self.tag_count
        if line.tag_count == 0:
            return ()
        for index in range(line.tag_count):
            if not _same(line.tag_keys[index], self.tag_keys[index]):
                self.tag_texts[2 * index] = _decode(line.tag_keys[index])
                self.tag_keys[index] = line.tag_keys[index]
                same = False
            if not _same(line.tag_values[index], self.tag_values[index]):
                self.tag_texts[2 * index + 1] = _decode(line.tag_values[index])
                self.tag_values[index] = line.tag_values[index]
                same = False
        if same and self.tags is not None:
            return self.tags
        texts = self.tag_texts
        pairs = [(texts[2 * index], texts[2 * index + 1]) for index in range(line.tag_count)]
        if line.tag_count > 1:
            pairs.sort()
            for index in range(1, line.tag_count):
                if pairs[index][0] == pairs[index - 1][0]:
                    self.tag_count = -1
                    self.tags = None
                    return None
        self.tag_count = line.tag_count
        self.tags = tuple(pairs)
        return self.tags


cdef object _new_point(object measurement, object tags, object fields, object time, object line_no):
    """Point(measurement, tags, fields, time, line_no), without running the dataclass's __init__
    when bind() found Point to be the plain slots class it is (a third of the cost per line)."""
    if not _point_slots_known:
        return _Point(measurement, tags, fields, time, line_no)
    point = _object_new(_Point)
    _fill_slot(point, _point_slots[0], measurement)
    _fill_slot(point, _point_slots[1], tags)
    _fill_slot(point, _point_slots[2], fields)
    _fill_slot(point, _point_slots[3], time)
    _fill_slot(point, _point_slots[4], line_no)
    return point


cdef inline void _fill_slot(object obj, Py_ssize_t offset, object value) noexcept:
    # A fresh object's slots are NULL: store a new reference, nothing to release.
    cdef PyObject **slot = <PyObject **>((<char *><PyObject *>obj) + offset)
    Py_INCREF(value)
    slot[0] = <PyObject *>value


cdef inline object _decode(Span span):
    return PyUnicode_DecodeUTF8(span.start, span.size, "replace")


cdef object _raw_fields(Line *line, _Names names):
    cdef dict fields = {}
    cdef int index
    for index in range(line.field_count):
        key = names.field_key(index, line.fields[index].key)
        if line.fields[index].is_int:
            PyDict_SetItem(fields, key, line.fields[index].integer)
        else:
            PyDict_SetItem(fields, key, line.fields[index].real)
    return fields


cdef inline int _vocabulary_entry(Span key) noexcept:
    cdef int entry
    for entry in range(_vocab_count):
        if _vocab_key_size[entry] == key.size and memcmp(_vocab_key[entry], key.start, key.size) == 0:
            return entry
    return -1


cdef object _vocabulary_fields(Line *line, _Names names):
    """The point's fields keyed by canonical name as floats, exactly as
    vocabulary.normalize_fields would return them; None when normalize_fields must decide (an
    unknown key, a value out of range, a key given twice, another measurement)."""
    cdef int index, found
    cdef uint64_t seen = 0
    cdef double number
    cdef Span key
    cdef dict fields
    if line.measurement.size != 7 or memcmp(line.measurement.start, b"samples", 7) != 0:
        return None
    fields = {}
    for index in range(line.field_count):
        key = line.fields[index].key
        if _same(key, names.vocabulary_keys[index]):
            found = names.vocabulary_entries[index]
        else:
            found = _vocabulary_entry(key)
            names.vocabulary_keys[index] = key
            names.vocabulary_entries[index] = found
        if found < 0 or seen & (<uint64_t>1 << _vocab_slot[found]):
            return None  # repeats (also through an alias) keep normalize_fields' order rules
        seen |= <uint64_t>1 << _vocab_slot[found]
        if line.fields[index].is_int:
            number = <double>line.fields[index].integer  # round to nearest, as float(int)
        else:
            number = line.fields[index].real
        if not (_vocab_low[found] <= number <= _vocab_high[found]):
            return None
        PyDict_SetItem(fields, _vocab_canonical[found], number)
    return fields


cdef object _run(object body_object, str precision, object now_ns, object max_line_length, bint check):
    try:
        multiplier_object = _PRECISION_NS[precision]
    except KeyError:
        raise ValueError(f"invalid precision {precision!r}") from None
    if now_ns is None:
        now_ns = _time.time_ns()
    cdef bytes body = body_object if type(body_object) is bytes else bytes(body_object)
    cdef const char *buf = body
    cdef Py_ssize_t n = len(body)
    cdef Py_ssize_t start, end, line_end, limit
    cdef const char *newline
    if memchr(buf, c'"', n) != NULL or memchr(buf, c'\\', n) != NULL:
        return _whole_body_in_python(body, precision, now_ns, max_line_length, check)
    if max_line_length is not None and n > max_line_length:
        limit = max_line_length
        start = 0
        while start <= n:
            newline = <const char*>memchr(buf + start, c'\n', n - start)
            end = n if newline == NULL else newline - buf
            line_end = end - 1 if end > start and buf[end - 1] == c'\r' else end
            if line_end - start > limit:
                return _whole_body_in_python(body, precision, now_ns, max_line_length, check)
            start = end + 1

    cdef int64_t multiplier = multiplier_object
    default_time_object = now_ns - now_ns % multiplier_object
    cdef list points = []
    cdef list errors = []
    cdef list refusals = []
    cdef Line line
    cdef _Names names = _Names()
    cdef Py_ssize_t line_no = 0, before
    start = 0
    while start <= n:
        line_no += 1
        newline = <const char*>memchr(buf + start, c'\n', n - start)
        end = n if newline == NULL else newline - buf
        line_end = end - 1 if end > start and buf[end - 1] == c'\r' else end
        if line_end > start:
            if _scan_line(buf + start, line_end - start, multiplier, &line):
                fields = _vocabulary_fields(&line, names) if check else None
                if fields is not None:
                    measurement = _MEASUREMENT
                else:
                    measurement = names.measurement_of(line.measurement)
                    fields = _raw_fields(&line, names)
                tags = names.tags_of(&line)
                if tags is not None:
                    point = _new_point(measurement, tags, fields, line.time if line.has_time else default_time_object, line_no)
                    if check and measurement is not _MEASUREMENT:
                        _check_in_python(point, points, refusals)
                    else:
                        PyList_Append(points, point)
                    start = end + 1
                    continue
            # anything unusual: the Python slow path, which words every error
            before = len(points)
            _parse_block(PyUnicode_DecodeUTF8(buf + start, line_end - start, "replace"),
                         line_no, multiplier_object, default_time_object, points, errors)
            if check and len(points) > before:
                _check_in_python(points.pop(), points, refusals)
        start = end + 1
    if not check:
        return _ParseResult(points, errors)
    return _CheckedBatch(points, errors, _refusal_messages(body, refusals) if refusals else [])


cdef _check_in_python(object point, list accepted, list refusals):
    fields, reason = _normalize_fields(point.measurement, point.fields)
    if fields is None:
        refusals.append((point.line_no, reason))
    else:
        point.fields = fields
        accepted.append(point)


cdef object _whole_body_in_python(bytes body, str precision, object now_ns, object max_line_length, bint check):
    result = _parse_python(body, precision, now_ns, max_line_length)
    if not check:
        return result
    points = []
    refusals = []
    for point in result.points:
        _check_in_python(point, points, refusals)
    return _CheckedBatch(points, result.errors, _refusal_messages(body, refusals) if refusals else [])


def parse(body, precision="ns", now_ns=None, max_line_length=None):
    """tracker.lineprotocol.parse, compiled (same arguments, same results)."""
    return _run(body, precision, now_ns, max_line_length, False)


def parse_samples(body, precision="ns", now_ns=None, max_line_length=None):
    """tracker.lineprotocol.parse_samples, compiled: parse() and the vocabulary in one pass."""
    return _run(body, precision, now_ns, max_line_length, True)
