"""InfluxQL's functions beyond the SQL and column paths, with InfluxDB 1.x's query-engine semantics.

select.py answers raw SELECTs and the plain aggregates (mean, median, min, max, sum, count, first,
last, spread, stddev of one field) from SQL or from samples as columns. Everything else a SELECT can
call runs here: transformations (derivative, difference, cumulative_sum, moving_average, elapsed and
the non_negative_ ones), math (abs ... tan), the reducers that need a bucket's values (percentile,
mode, distinct, count(distinct), integral, top, bottom, sample), any nesting of these, a selector
beside fields, and subqueries.

The model is InfluxDB's: per answer series, a sequence of points (times in ns, values as float64
with NaN for "no value") from a source: the stored samples (streamed from storage in the answer's
time order), or points held in memory (a subquery's answer, `Points`).
- Raw mode (no reducer): points come in batches; a transformation keeps only its window between
  batches (the previous point, the last N values, a running sum); math works row by row.
- Aggregate mode: per bucket of GROUP BY time (or one bucket for the whole range) each reducer call
  has one value: the plain aggregates of stored samples from select.py's paths unchanged (so GROUP BY
  time over a day stays in SQLite or the column cache), the others from the points, one bucket held
  at a time (`_Reducers`, at most MAX_BUCKET_POINTS). fill() applies to these per-bucket values, as
  InfluxDB fills its aggregate iterators. Each call outside math is then an "iterator" of points
  (a reducer's buckets, a transformation of them, which skips nulls and reads one interval beyond
  the range as InfluxDB does); LIMIT/OFFSET apply per iterator; rows are the times any iterator has
  a point, where fill(number) (or, for fill(previous), the row before) stands in for the others;
  math then runs per row (`_joined_rows`).
- top(), bottom(), sample() and distinct() answer several rows per bucket: they stand alone.
- Where InfluxDB's answer depends on Go's unstable sort (a percentile's point among equal values,
  mode's ties), `go_sort_order` reproduces it.

Everything CPU-bound runs on query threads (ctx.offload) and looks at the query's deadline.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, replace
from typing import Any, AsyncIterator, Callable, Sequence

import numpy as np

from tracker import storage
from tracker.storage import EPOCH_NS
from tracker.influx.influxql import (
    AGGREGATES,
    MATH_FUNCTIONS,
    MAX_TIME,
    MIN_TIME,
    REDUCERS,
    TRANSFORMATIONS,
    BinaryExpr,
    BooleanLiteral,
    Call,
    DurationLiteral,
    Expr,
    FieldExpr,
    IntegerLiteral,
    NumberLiteral,
    QueryParseError,
    RegexLiteral,
    SelectStatement,
    StringLiteral,
    TimeLiteral,
    VarRef,
    Wildcard,
    time_range,
    walk,
)
from tracker.influx.select import (
    MEASUREMENT,
    Context,
    Output,
    SeriesHeader,
    StatementError,
    NO_VALUE,
    _answer_series,
    _bucket_data,
    _call_key,
    _check_buckets,
    _evaluate_bucket,
    _json_number,
    _merged,
    _Plan,
    _series_order,
    _series_page,
    column_names,
    series_key,
)
from tracker.influx import columnar, timebuckets
from tracker.influx import select as select_module
from tracker.influx.timebuckets import format_time
from tracker.influx.columnar import _json_values as json_values
from tracker.influx.workers import check_deadline
from tracker.retention import shard_group_duration, shard_window
from tracker.vocabulary import FIELD_KEYS

_FIELDS = frozenset(FIELD_KEYS)
_SECOND = 1_000_000_000
_MULTI_ROW = frozenset({"top", "bottom", "sample", "distinct"})
# The points of one bucket a reducer that needs them all (percentile, mode, ...) may hold: without
# GROUP BY time the whole range is one bucket, and its memory is what the request controls.
MAX_BUCKET_POINTS = 5_000_000
_SELECTORS_WITH_A_POINT = frozenset({"first", "last", "min", "max", "percentile"})
# Transformations of aggregates that read one interval beyond the range (InfluxDB's iterator options).
_LOOKS_BACK = frozenset(
    {"derivative", "non_negative_derivative", "difference", "non_negative_difference", "elapsed", "moving_average"}
)


# ---------------------------------------------------------------------------------------------
# Wildcards: count(*), mean(/regex/) -> one field per matching field key (InfluxDB's RewriteFields)


def has_wildcard_calls(statement: SelectStatement) -> bool:
    return any(_wildcard_of(item.expr) is not None for item in statement.fields)


def _wildcard_of(expr: Expr) -> Wildcard | RegexLiteral | None:
    """The `*` or /regex/ a call's first argument ends in, through nested calls: derivative(mean(*))."""
    while isinstance(expr, Call) and expr.args:
        expr = expr.args[0]
        if isinstance(expr, (Wildcard, RegexLiteral)):
            return expr
    return None


def _with_first_field(expr: Expr, name: str) -> Expr:
    assert isinstance(expr, Call)
    inner = expr.args[0]
    first = VarRef(name) if isinstance(inner, (Wildcard, RegexLiteral)) else _with_first_field(inner, name)
    return Call(expr.name, (first, *expr.args[1:]))


def expand_wildcards(statement: SelectStatement, field_keys: Sequence[str]) -> SelectStatement:
    """Each call on `*` or /regex/ becomes one call per matching field key (in name order), named
    `<name>_<field>` like InfluxDB: mean(*) -> mean_hr_bpm, mean(*) AS m -> m_hr_bpm."""
    fields: list[FieldExpr] = []
    for item in statement.fields:
        pattern = _wildcard_of(item.expr)
        if pattern is None:
            fields.append(item)
            continue
        for key in sorted(field_keys):
            if isinstance(pattern, RegexLiteral) and pattern.compiled.search(key) is None:
                continue
            fields.append(FieldExpr(_with_first_field(item.expr, key), f"{item.name}_{key}"))
    return replace(statement, fields=fields)


def fills_like_influxdb(statement: SelectStatement) -> bool:
    """fill() the per-bucket paths do not do as InfluxDB: on each aggregate inside math (mean(x) + 1
    with fill(0) is 1). Such statements run here, their aggregates still from the per-bucket paths;
    fill() of plain aggregates (numbers, previous and linear, DESC too) stays there."""
    if not statement.is_aggregate or statement.fill in (None, "null", "none"):
        return False
    return any(not isinstance(item.expr, Call) for item in statement.fields)


# ---------------------------------------------------------------------------------------------
# Columns: one field's values over the rows of a batch (raw mode) or over the buckets (aggregate mode)


@dataclass(slots=True)
class Column:
    values: np.ndarray  # float64; NaN: null
    exists: np.ndarray  # bool: this field has a point on the row (a null one included)


def _math(name: str, args: list[np.ndarray | float]) -> np.ndarray | float:
    """InfluxDB's math functions; NaN (null) in, null out; a result outside the reals is null too."""
    with np.errstate(all="ignore"):
        x = args[0]
        if name == "abs":
            return np.abs(x)
        if name == "round":  # Go's math.Round: halves away from zero
            return np.copysign(np.floor(np.abs(x) + 0.5), x)
        if name == "log":
            return np.log(x) / np.log(args[1])
        if name == "pow":
            return np.power(x, args[1])
        if name == "atan2":
            return np.arctan2(x, args[1])
        return {
            "acos": np.arccos, "asin": np.arcsin, "atan": np.arctan, "ceil": np.ceil, "cos": np.cos,
            "exp": np.exp, "floor": np.floor, "ln": np.log, "log2": np.log2, "log10": np.log10,
            "sin": np.sin, "sqrt": np.sqrt, "tan": np.tan,
        }[name](x)  # fmt: skip


def _arithmetic(op: str, lhs: np.ndarray | float, rhs: np.ndarray | float) -> np.ndarray | float:
    with np.errstate(all="ignore"):
        if op == "+":
            return np.add(lhs, rhs)
        if op == "-":
            return np.subtract(lhs, rhs)
        if op == "*":
            return np.multiply(lhs, rhs)
        if op == "/":
            # InfluxDB: x / 0 is 0 for floats
            return np.where(np.asarray(rhs) == 0, 0.0, np.divide(lhs, np.where(np.asarray(rhs) == 0, 1.0, rhs)))
        return np.fmod(lhs, rhs)


# ---------------------------------------------------------------------------------------------
# Transformations: fed the points that have a value, in the answer's order, a batch at a time


class _Transform:
    """One transformation call over one sequence of points; keeps its window between batches."""

    def __init__(self, call: Call, interval_ns: int | None, ascending: bool) -> None:
        self.name = call.name
        self.ascending = ascending
        unit = call.args[1] if len(call.args) > 1 else None
        if self.name == "moving_average":
            assert isinstance(unit, IntegerLiteral)
            self.window: list[float] = []
            self.size = unit.value
            self.sum = 0.0
            self.position = 0
        elif isinstance(unit, DurationLiteral):
            self.unit = unit.ns
        else:  # InfluxDB's default: the GROUP BY interval, else 1s (elapsed: 1ns)
            self.unit = 1 if self.name == "elapsed" else (interval_ns or _SECOND)
        self.prev_time: int | None = None
        self.prev_value = 0.0
        self.total = 0.0

    def feed(self, times: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(indexes into the input that get an output point, the output values)."""
        name = self.name
        if not len(times):
            return np.empty(0, dtype=np.int64), np.empty(0)
        if name == "cumulative_sum":
            sums = np.add.accumulate(np.r_[self.total, values])[1:]  # one after the other, as InfluxDB adds
            self.total = float(sums[-1])
            return np.arange(len(times)), sums
        if name == "moving_average":
            return self._moving_average(values)
        if name == "elapsed":
            prev_times = np.r_[self.prev_time if self.prev_time is not None else times[0], times[:-1]]
            keep = np.arange(len(times)) if self.prev_time is not None else np.arange(1, len(times))
            self.prev_time = int(times[-1])
            delta = (times - prev_times)[keep]
            return keep, (np.sign(delta) * (np.abs(delta) // self.unit)).astype(np.float64)
        # derivative and difference: a point at the same time as the one before is skipped (InfluxDB
        # keeps the first point of a timestamp when several series are merged).
        distinct = np.r_[True, times[1:] != times[:-1]]
        if self.prev_time is not None:
            distinct[0] = times[0] != self.prev_time
        index = np.flatnonzero(distinct)
        if not len(index):
            return index, np.empty(0)
        t, v = times[index], values[index]
        if self.prev_time is None:  # the very first point only starts the sequence
            prev_t, prev_v = t[:-1], v[:-1]
            index, t, v = index[1:], t[1:], v[1:]
        else:
            prev_t, prev_v = np.r_[self.prev_time, t[:-1]], np.r_[self.prev_value, v[:-1]]
        last = int(np.flatnonzero(distinct)[-1])
        self.prev_time, self.prev_value = int(times[last]), float(values[last])
        difference = v - prev_v
        if name in ("derivative", "non_negative_derivative"):
            elapsed = np.abs(t - prev_t).astype(np.float64)  # descending order counts time backwards
            out = difference / (elapsed / self.unit)
        else:
            out = difference
        if name.startswith("non_negative_"):
            keep = out >= 0
            return index[keep], out[keep]
        return index, out

    def _moving_average(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # InfluxDB keeps a running sum (minus the value leaving, plus the one coming): same arithmetic here.
        out_index: list[int] = []
        out: list[float] = []
        window, size = self.window, self.size
        for n, value in enumerate(values.tolist()):
            if len(window) < size:
                window.append(value)
            else:
                self.sum -= window[self.position]
                window[self.position] = value
            self.sum += value
            self.position = (self.position + 1) % size
            if len(window) == size:
                out_index.append(n)
                out.append(self.sum / size)
        return np.array(out_index, dtype=np.int64), np.array(out, dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# Expression evaluation over rows


class _Evaluator:
    """Evaluates the field expressions over rows (points or buckets) with their times; transformations
    keep their state between calls, so a raw series can be fed batch by batch."""

    def __init__(self, fields: list[FieldExpr], interval_ns: int | None, ascending: bool) -> None:
        self.fields = fields
        self.transforms: dict[tuple[int, ...], _Transform] = {}
        self.interval_ns = interval_ns
        self.ascending = ascending

    def columns(self, times: np.ndarray, leaf: Callable[[Expr, int], Column]) -> list[Column]:
        """One column per field; `leaf(expr, field number)` gives a reducer's or a field's column."""
        return [self._eval(item.expr, times, leaf, (n,)) for n, item in enumerate(self.fields)]

    def _eval(self, expr: Expr, times: np.ndarray, leaf: Callable[[Expr, int], Column], path: tuple[int, ...]) -> Column:
        rows = len(times)
        if isinstance(expr, (IntegerLiteral, NumberLiteral)):
            return Column(np.full(rows, float(expr.value)), np.zeros(rows, dtype=bool))
        if isinstance(expr, BinaryExpr):
            lhs = self._eval(expr.lhs, times, leaf, (*path, 0))
            rhs = self._eval(expr.rhs, times, leaf, (*path, 1))
            values = np.asarray(_arithmetic(expr.op, lhs.values, rhs.values), dtype=np.float64)
            return Column(values, lhs.exists | rhs.exists)
        if isinstance(expr, Call) and expr.name in MATH_FUNCTIONS:
            args = [self._eval(arg, times, leaf, (*path, n)) for n, arg in enumerate(expr.args)]
            exists = np.zeros(rows, dtype=bool)
            for arg_expr, arg in zip(expr.args, args):
                if not isinstance(arg_expr, (IntegerLiteral, NumberLiteral)):
                    exists |= arg.exists
            return Column(np.asarray(_math(expr.name, [a.values for a in args]), dtype=np.float64), exists)
        if isinstance(expr, Call) and expr.name in TRANSFORMATIONS:
            arg = self._eval(expr.args[0], times, leaf, (*path, 0))
            transform = self.transforms.get(path)
            if transform is None:
                transform = self.transforms[path] = _Transform(expr, self.interval_ns, self.ascending)
            # Points without a value (a null bucket, a row without this field) are skipped, as InfluxDB does.
            has = np.flatnonzero(arg.exists & ~np.isnan(arg.values))
            index, values = transform.feed(times[has], arg.values[has])
            out = Column(np.full(rows, np.nan), np.zeros(rows, dtype=bool))
            out.values[has[index]] = values
            out.exists[has[index]] = True
            return out
        return leaf(expr, path[0])


# ---------------------------------------------------------------------------------------------
# Reducers that need a bucket's values


_XORSHIFT = (13, 17, 5)  # Go 1.19's breakPatterns
_MASK64 = (1 << 64) - 1


def go_sort_order(keys: list[float], deadline: float | None = None) -> list[int]:
    """The order Go's sort.Sort leaves points in when sorted by `keys` (pattern-defeating quicksort,
    Go 1.19, which the InfluxDB 1.x packages are built with). It is not stable, so among equal keys
    this is the only way to know which point InfluxDB reports (a percentile's time, mode's ties)."""
    data = list(range(len(keys)))

    def less(i: int, j: int) -> bool:
        return keys[data[i]] < keys[data[j]]

    def swap(i: int, j: int) -> None:
        data[i], data[j] = data[j], data[i]

    def insertion_sort(a: int, b: int) -> None:
        for i in range(a + 1, b):
            j = i
            while j > a and less(j, j - 1):
                swap(j, j - 1)
                j -= 1

    def sift_down(lo: int, hi: int, first: int) -> None:
        root = lo
        while True:
            child = 2 * root + 1
            if child >= hi:
                return
            if child + 1 < hi and less(first + child, first + child + 1):
                child += 1
            if not less(first + root, first + child):
                return
            swap(first + root, first + child)
            root = child

    def heap_sort(a: int, b: int) -> None:
        hi = b - a
        for i in range((hi - 1) // 2, -1, -1):
            sift_down(i, hi, a)
        for i in range(hi - 1, -1, -1):
            swap(a, a + i)
            sift_down(0, i, a)

    def median(a: int, b: int, c: int, swaps: list[int]) -> int:
        def order2(x: int, y: int) -> tuple[int, int]:
            if less(y, x):
                swaps[0] += 1
                return y, x
            return x, y

        a, b = order2(a, b)
        b, c = order2(b, c)
        a, b = order2(a, b)
        return b

    def choose_pivot(a: int, b: int) -> tuple[int, int]:
        length = b - a
        swaps = [0]
        i, j, k = a + length // 4, a + length // 4 * 2, a + length // 4 * 3
        if length >= 8:
            if length >= 50:
                i = median(i - 1, i, i + 1, swaps)
                j = median(j - 1, j, j + 1, swaps)
                k = median(k - 1, k, k + 1, swaps)
            j = median(i, j, k, swaps)
        return j, (1 if swaps[0] == 0 else 2 if swaps[0] == 12 else 0)  # increasing, decreasing, unknown

    def reverse_range(a: int, b: int) -> None:
        i, j = a, b - 1
        while i < j:
            swap(i, j)
            i, j = i + 1, j - 1

    def partial_insertion_sort(a: int, b: int) -> bool:
        i = a + 1
        for _ in range(5):
            while i < b and not less(i, i - 1):
                i += 1
            if i == b:
                return True
            if b - a < 50:
                return False
            swap(i, i - 1)
            if i - a >= 2:
                for j in range(i - 1, 0, -1):
                    if not less(j, j - 1):
                        break
                    swap(j, j - 1)
            if b - i >= 2:
                for j in range(i + 1, b):
                    if not less(j, j - 1):
                        break
                    swap(j, j - 1)
        return False

    def break_patterns(a: int, b: int) -> None:
        length = b - a
        if length >= 8:
            state = length
            modulus = 1 << length.bit_length()
            for index in range(a + (length // 4) * 2 - 1, a + (length // 4) * 2 + 2):
                state ^= (state << _XORSHIFT[0]) & _MASK64
                state ^= state >> _XORSHIFT[1]
                state ^= (state << _XORSHIFT[2]) & _MASK64
                other = state & (modulus - 1)
                if other >= length:
                    other -= length
                swap(index, a + other)

    def partition_equal(a: int, b: int, pivot: int) -> int:
        check_deadline(deadline)
        swap(a, pivot)
        i, j = a + 1, b - 1
        while True:
            while i <= j and not less(a, i):
                i += 1
            while i <= j and less(a, j):
                j -= 1
            if i > j:
                return i
            swap(i, j)
            i, j = i + 1, j - 1

    def partition(a: int, b: int, pivot: int) -> tuple[int, bool]:
        check_deadline(deadline)  # each partition is a pass over its part: the query's deadline holds
        swap(a, pivot)
        i, j = a + 1, b - 1
        while i <= j and less(i, a):
            i += 1
        while i <= j and not less(j, a):
            j -= 1
        if i > j:
            swap(j, a)
            return j, True
        swap(i, j)
        i, j = i + 1, j - 1
        while True:
            while i <= j and less(i, a):
                i += 1
            while i <= j and not less(j, a):
                j -= 1
            if i > j:
                break
            swap(i, j)
            i, j = i + 1, j - 1
        swap(j, a)
        return j, False

    def pdqsort(a: int, b: int, limit: int) -> None:
        was_balanced = was_partitioned = True
        while True:
            length = b - a
            if length <= 12:
                insertion_sort(a, b)
                return
            if limit == 0:
                heap_sort(a, b)
                return
            if not was_balanced:
                break_patterns(a, b)
                limit -= 1
            pivot, hint = choose_pivot(a, b)
            if hint == 2:
                reverse_range(a, b)
                pivot = (b - 1) - (pivot - a)
                hint = 1
            if was_balanced and was_partitioned and hint == 1 and partial_insertion_sort(a, b):
                return
            if a > 0 and not less(a - 1, pivot):
                a = partition_equal(a, b, pivot)
                continue
            mid, was_partitioned = partition(a, b, pivot)
            left, right = mid - a, b - mid
            if left < right:
                was_balanced = left >= length // 8
                pdqsort(a, mid, limit)
                a = mid + 1
            else:
                was_balanced = right >= length // 8
                pdqsort(mid + 1, b, limit)
                b = mid

    if len(data) > 1:
        pdqsort(0, len(data), len(data).bit_length())
    return data


def percentile(values: np.ndarray, times: np.ndarray, p: float, deadline: float | None = None) -> tuple[float, int] | None:
    """InfluxDB's nearest rank: the point at floor(n * p / 100 + 0.5) - 1 in value order (None: no
    such rank); among equal values, the one Go's sort puts there."""
    i = int(math.floor(len(values) * p / 100.0 + 0.5)) - 1
    if i < 0 or i >= len(values):
        return None
    value = float(np.partition(values, i)[i])
    if np.count_nonzero(values == value) == 1:
        return value, int(times[values == value][0])
    return value, int(times[go_sort_order(values.tolist(), deadline)[i]])


def mode(values: np.ndarray, times: np.ndarray, deadline: float | None = None) -> float | None:
    """InfluxDB 1.x's mode, step for step: points sorted by value (Go's sort), runs counted; a value's
    first point only starts its run, and a tie goes to the run that reached the count first in time."""
    if not len(values):
        return None
    if len(values) == 1:
        return float(values[0])
    unique, counts = np.unique(values, return_counts=True)
    top = counts.max()
    if top == 1 or np.count_nonzero(counts == top) == 1:
        # No tie: the most frequent value; all seen once: the smallest (it alone starts at count 1).
        return float(unique[int(np.argmax(counts))])
    order = go_sort_order(values.tolist(), deadline)
    sorted_values, sorted_times = values[order].tolist(), times[order].tolist()
    most_count = count = 0
    current = most = sorted_values[0]
    most_time = current_time = sorted_times[0]
    for value, time in zip(sorted_values, sorted_times):
        if value != current:
            count, current, current_time = 1, value, time
            continue
        count += 1
        if most_count > count or (most_count == count and current_time > most_time):
            continue
        most_count, most, most_time = count, value, time
    return float(most)


def distinct(values: np.ndarray, times: np.ndarray) -> np.ndarray:
    """The distinct values in the order InfluxDB answers them: by the time each first occurs, then by value."""
    unique, first = np.unique(values, return_index=True)
    return unique[np.lexsort((unique, times[first]))]


def top_bottom(
    name: str, values: np.ndarray, times: np.ndarray, tags: np.ndarray | None, n: int
) -> np.ndarray:
    """Indexes of the points top()/bottom() pick, in time order: the n largest (smallest) values, the
    earlier point first among equal ones; with tags, only the best point of each tag combination competes."""
    key = -values if name == "top" else values
    order = np.lexsort((times, key))
    if tags is not None:
        seen: set[Any] = set()
        best: list[int] = []
        for i in order.tolist():
            if tags[i] not in seen:
                seen.add(tags[i])
                best.append(i)
        order = np.array(best, dtype=np.int64)
    chosen = order[:n]
    return chosen[np.lexsort((key[chosen], times[chosen]))]


class _Integral:
    """InfluxDB's integral reducer over one series' points in the answer's order: the trapezoid rule,
    areas split at bucket boundaries by linear interpolation; a bucket's area is known when a point
    beyond it comes. Each area is stamped where InfluxDB stamps it: the bucket's first bound in the
    answer's order (its end for ORDER BY time DESC), or 0 without GROUP BY time."""

    def __init__(self, unit_ns: int, buckets: timebuckets.Buckets | None, descending: bool) -> None:
        self.unit = float(unit_ns)
        self.buckets = buckets
        self.descending = descending
        self.prev: tuple[int, float] | None = None
        self.window = (0, 0)  # (where its area is stamped, where it ends in the answer's order)
        self.sum = 0.0
        self.done: list[tuple[int, float]] = []  # (time, area) of finished buckets

    def _window(self, time: int) -> tuple[int, int]:
        assert self.buckets is not None
        start, after = timebuckets.window(time, self.buckets.every, self.buckets.offset, self.buckets.zone)
        return (after, start) if self.descending else (start, after)

    def feed(self, times: list[int], values: list[float]) -> None:
        for time, value in zip(times, values):
            if self.prev is None:
                self.prev = (time, value)
                if self.buckets is not None:
                    self.window = self._window(time)
                continue
            prev_time, prev_value = self.prev
            if prev_time == time:
                self.prev = (time, value)
                continue
            end = self.window[1]
            if self.buckets is not None and (time <= end if self.descending else time >= end):
                if prev_time != end:
                    slope = (value - prev_value) / float(time - prev_time)  # InfluxDB's linearFloat
                    at_end = slope * float(end - prev_time) + prev_value
                    self.sum += 0.5 * (at_end + prev_value) * (float(end - prev_time) / self.unit)
                    prev_time, prev_value = end, at_end
                self.done.append((self.window[0], self.sum))
                self.window = self._window(time)
                self.sum = 0.0
            self.sum += 0.5 * (value + prev_value) * (float(time - prev_time) / self.unit)
            self.prev = (time, value)

    def close(self) -> None:
        """The last bucket counts unless its only point is where it is stamped (no area)."""
        if self.prev is not None and self.prev[0] != self.window[0]:
            self.done.append((self.window[0], self.sum))


class _Reducers:
    """The reducers that need a bucket's values, fed one series' stored points in the answer's time
    order a batch at a time: only the current bucket's points are held; each finished bucket leaves one value per
    call (or its rows, for top/bottom/sample/distinct)."""

    def __init__(
        self, calls: list[Call], fields: list[str], tags: list[str], buckets: timebuckets.Buckets | None,
        descending: bool = False, percentile_ends: bool = False,
    ) -> None:
        self.calls = calls
        self.percentile_ends = percentile_ends
        self.descending = descending  # points come in the answer's order, as InfluxDB hands them to reducers
        self.fields = fields
        self.tags = tags
        self.buckets = buckets
        self.current: int | None = None
        self.parts: list[tuple[np.ndarray, dict[str, np.ndarray], np.ndarray | None]] = []
        self.held = 0  # points of the current bucket held
        self.holds = any(call.name != "integral" for call in calls)  # integral() needs no bucket's points
        self.deadline: float | None = None
        self.results: dict[Call, dict[int, Any]] = {call: {} for call in calls}
        # InfluxDB 1.6's reduce iterator ends at a bucket that yields no point (a percentile without a rank
        # among its points): with `percentile_ends`, that call answers nothing in the series' later buckets.
        self.ended: set[Call] = set()
        self.integrals: dict[Call, _Integral] = {}
        for call in calls:
            if call.name == "integral":
                unit = call.args[1].ns if len(call.args) > 1 and isinstance(call.args[1], DurationLiteral) else _SECOND
                self.integrals[call] = _Integral(unit, buckets, descending)

    def feed(self, rows: list[Sequence[Any]], deadline: float | None) -> None:
        check_deadline(deadline)
        self.deadline = deadline
        times = np.array([row[0] for row in rows], dtype=np.int64)
        values = {name: np.array([row[n + 1] for row in rows], dtype=np.float64) for n, name in enumerate(self.fields)}
        tags = None
        if self.tags:
            width = len(self.fields) + 1
            tags = np.empty(len(rows), dtype=object)
            tags[:] = [tuple(row[width:]) for row in rows]
        for call, integral in self.integrals.items():
            column = values[_field_of(call)]
            has = ~np.isnan(column)
            integral.feed(times[has].tolist(), column[has].tolist())
        if self.buckets is None:
            buckets = np.zeros(len(times), dtype=np.int64)
        else:
            buckets = self.buckets.starts_of(times)
        cuts = np.r_[0, np.flatnonzero(buckets[1:] != buckets[:-1]) + 1, len(times)]
        for lo, hi in zip(cuts[:-1].tolist(), cuts[1:].tolist()):
            bucket = int(buckets[lo])
            if bucket != self.current:
                self._finish_bucket()
                self.current = bucket
            if not self.holds:
                continue
            self.held += hi - lo
            if self.held > MAX_BUCKET_POINTS:
                raise StatementError(
                    f"more than {MAX_BUCKET_POINTS} points in one bucket for {self.calls[0].name}(): "
                    "use GROUP BY time() or a shorter time range"
                )
            part_tags = tags[lo:hi] if tags is not None else None
            self.parts.append((times[lo:hi], {name: v[lo:hi] for name, v in values.items()}, part_tags))

    def finish(self) -> dict[Call, dict[int, Any]]:
        """Per call, {bucket start time: answer}; for integral(), {0: [(time it is stamped at, area), ...]}
        in the answer's order (in DESC a point on a bucket's bound stamps it twice, as in InfluxDB)."""
        self._finish_bucket()
        for call, integral in self.integrals.items():
            integral.close()
            self.results[call] = {0: integral.done} if integral.done else {}
        return self.results

    def _finish_bucket(self) -> None:
        if self.current is None or not self.parts:
            return
        times = np.concatenate([part[0] for part in self.parts])
        tags = np.concatenate([part[2] for part in self.parts]) if self.parts[0][2] is not None else None
        for call in self.calls:
            if call.name == "integral" or call in self.ended:
                continue
            column = np.concatenate([part[1][_field_of(call)] for part in self.parts])
            has = np.flatnonzero(~np.isnan(column))
            if not len(has):
                continue
            found = _reduce(call, column[has], times[has], None if tags is None else tags[has], self.deadline)
            if found is not None:
                self.results[call][self.current] = found
            elif call.name == "percentile" and self.buckets is not None and self.percentile_ends:
                self.ended.add(call)
        self.parts = []
        self.held = 0


def _field_of(call: Call) -> str:
    arg = call.args[0]
    while isinstance(arg, Call):  # count(distinct(x))
        arg = arg.args[0]
    assert isinstance(arg, VarRef)
    return arg.name


def _reduce(
    call: Call, values: np.ndarray, times: np.ndarray, tags: np.ndarray | None, deadline: float | None = None
) -> Any:
    """One bucket's answer of a call: a value, (value, time) for a selector, or rows (time, value, *tags)."""
    name = call.name
    if name == "percentile":
        p = call.args[1]
        assert isinstance(p, (IntegerLiteral, NumberLiteral))
        return percentile(values, times, float(p.value), deadline)
    if name == "mode":
        return mode(values, times, deadline)
    if name == "count":
        return float(len(np.unique(values)) if isinstance(call.args[0], Call) else len(values))  # count(distinct(x))
    if name in _PLAIN:
        return _plain(name, values, times)
    if name == "distinct":
        return [(None, float(value)) for value in distinct(values, times).tolist()]
    if name == "sample":
        size = call.args[1]
        assert isinstance(size, IntegerLiteral)
        chosen = np.sort(np.random.default_rng().permutation(len(values))[: size.value])
        chosen = chosen[np.argsort(times[chosen], kind="stable")]
        return [(int(times[i]), float(values[i])) for i in chosen.tolist()]
    if name in ("top", "bottom"):
        size = call.args[-1]
        assert isinstance(size, IntegerLiteral)
        chosen = top_bottom(name, values, times, tags if len(call.args) > 2 else None, size.value)
        if len(call.args) > 2 and tags is not None:
            return [(int(times[i]), float(values[i]), *tags[i]) for i in chosen.tolist()]
        return [(int(times[i]), float(values[i])) for i in chosen.tolist()]
    raise StatementError(f"unsupported function {name}()")  # pragma: no cover - routed elsewhere


_PLAIN = frozenset({"sum", "mean", "median", "spread", "stddev", "min", "max", "first", "last"})


def _plain(name: str, values: np.ndarray, times: np.ndarray) -> Any:
    """The plain aggregates over points held in memory (a subquery's answer), as InfluxDB's reducers
    compute them: sums one value after the other in the answer's order, stddev from a running mean,
    and the selectors' ties (min/max: the earliest point; first/last: the larger value)."""
    if name in ("sum", "mean"):
        total = float(np.add.accumulate(values)[-1])
        return total if name == "sum" else total / len(values)
    if name == "median":
        ordered = np.sort(values)
        middle = len(ordered) // 2
        return float(ordered[middle]) if len(ordered) % 2 else float((ordered[middle - 1] + ordered[middle]) / 2)
    if name == "spread":
        return float(values.max() - values.min())
    if name == "stddev":
        if len(values) < 2:
            return math.nan  # a point without a value, as InfluxDB
        mean = 0.0
        for n, value in enumerate(values.tolist(), 1):
            mean += (value - mean) / n
        variance = 0.0
        for value in values.tolist():
            variance += (value - mean) ** 2
        return math.sqrt(variance / (len(values) - 1))
    if name in ("min", "max"):
        best = values.min() if name == "min" else values.max()
        at = np.flatnonzero(values == best)
        return float(best), int(times[at].min())
    when = times.min() if name == "first" else times.max()
    at = np.flatnonzero(times == when)
    return float(values[at].max()), int(when)


# ---------------------------------------------------------------------------------------------
# Running a SELECT



def _calls_in(expr: Expr) -> list[Call]:
    """Every call of an expression, nested ones too, left to right."""
    return [node for node in walk(expr) if isinstance(node, Call)]


def _reducer_calls(expr: Expr) -> list[Call]:
    """The reducer calls of an expression, outermost only (count(distinct(x)) is one), left to right."""
    return [node for node in _outside_reducers(expr) if isinstance(node, Call) and node.name in REDUCERS]


def _is_standard(call: Call) -> bool:
    """Answered per bucket by select.py's SQL / column paths."""
    return call.name in AGGREGATES and len(call.args) == 1 and isinstance(call.args[0], VarRef)


def _is_field(ref: VarRef, fields: frozenset[str] = _FIELDS) -> bool:
    return ref.name in fields and ref.type_hint != "tag"


def _cell(value: float) -> Any:
    return None if math.isnan(value) else _json_number(value)


class _Pages:
    """OFFSET and LIMIT per field, across batches: InfluxDB applies them to each field's points
    before it joins the fields into rows."""

    def __init__(self, fields: int, offset: int, limit: int | None) -> None:
        self.skip = [offset] * fields
        self.left: list[int | None] = [limit] * fields

    def apply(self, columns: list[Column]) -> None:
        for n, column in enumerate(columns):
            points = np.flatnonzero(column.exists)
            dropped = points[: self.skip[n]]
            self.skip[n] -= len(dropped)
            points = points[len(dropped) :]
            left = self.left[n]
            if left is not None:
                dropped = np.r_[dropped, points[left:]].astype(np.int64)
                self.left[n] = max(0, left - len(points))
            column.exists[dropped] = False

    @property
    def done(self) -> bool:
        return all(left == 0 for left in self.left)


@dataclass(slots=True)
class Points:
    """One answer series' points held in memory (a subquery's answer): times in ns in time order, a
    float64 column per name (NaN: no value), and the tags of the series each point came from."""

    times: np.ndarray
    columns: dict[str, np.ndarray]
    series: np.ndarray  # per point, its index in `tags`
    tags: list[dict[str, str]]


@dataclass(slots=True)
class _Group:
    """One series of the answer: its tags, and its points: stored samples passing `where`, or held `points`."""

    tags: dict[str, str] | None
    where: storage.QueryFilter | None = None
    points: Points | None = None


@dataclass(slots=True)
class _Source:
    """Where a statement's points come from: the answer's series, the stored series' tags (for tag
    columns), and the names that are fields (the vocabulary, or a subquery's columns)."""

    groups: list[_Group]
    series: storage.SeriesTags
    fields: frozenset[str] = _FIELDS

    @property
    def stored(self) -> bool:
        return all(group.points is None for group in self.groups)


async def select_functions(
    statement: SelectStatement, database: str, ctx: Context, start: int, end: int, plan: _Plan
) -> Output:
    """The answer of a SELECT over stored samples that needs the functions of this module (see
    needs_functions and fills_like_influxdb)."""
    groups = await _answer_series(statement, database, ctx, start, end, plan)  # SLIMIT/SOFFSET, DESC order
    source = _Source([_Group(tags, where) for tags, where in groups], plan.series)
    async for item in _run(statement, database, ctx, start, end, source):
        yield item


async def _run(statement: SelectStatement, database: str, ctx: Context, start: int, end: int, source: _Source) -> Output:
    for item in statement.fields:
        for call in _calls_in(item.expr):
            if call.name in ("top", "bottom") and any(
                not isinstance(arg, VarRef) or _is_field(arg, source.fields) for arg in call.args[1:-1]
            ):
                raise StatementError(f"{call.name}() in Tracker takes tags only between the field and the count")
    if statement.is_aggregate and any(
        isinstance(node, VarRef) for item in statement.fields for node in _outside_reducers(item.expr)
    ):  # one selector beside fields and tags (InfluxDB's compile allows nothing else)
        async for item in _selector_with_fields(statement, database, ctx, start, end, source):
            yield item
        return
    multi = [call for item in statement.fields for call in _reducer_calls(item.expr) if call.name in _MULTI_ROW]
    if multi:
        if len(statement.fields) != 1 or statement.fields[0].expr is not multi[0]:
            raise StatementError(f"{multi[0].name}() must stand alone in the SELECT (not inside math) in Tracker")
        runner = _multi_row(statement, multi[0], database, ctx, start, end, source)
    elif statement.is_aggregate:
        runner = _aggregate(statement, database, ctx, start, end, source)
    else:
        runner = _raw(statement, database, ctx, start, end, source)
    async for item in runner:
        yield item


async def _rows_of(
    ctx: Context, database: str, source: _Source, group: _Group, fields: list[str], tag_keys: list[str],
    start: int, end: int, descending: bool, with_series: bool = False, first_field_only: bool = False,
) -> AsyncIterator[list[Sequence[Any]]]:
    """A series' points in the answer's order, in batches: (time ns, value per field, value per tag),
    only points with a value in one of `fields` (`first_field_only`: in the first, the field a selector
    reads, whose points alone InfluxDB merges); `with_series` adds the stored series id last."""
    if group.points is None:
        columns = [storage.field_sql(name) for name in fields] + [storage.tag_sql(key, source.series) for key in tag_keys]
        only = None if group.where is None else group.where.only_series
        several = len(source.series) > 1 and (only is None or only == "all" or len(only) > 1)
        if with_series:
            columns.append(storage.series_sql())
        stream = storage.query_raw(
            ctx.store, database, start_ns=start, end_ns=end, columns=columns, where=group.where or storage.KEEP_ALL,
            epoch="ns", descending=descending, batch=ctx.batch, deadline=ctx.deadline, with_series=several,
        )  # fmt: skip
        try:
            if several:  # rows at one time in the order of InfluxDB's merge of series, as raw SELECTs
                if first_field_only:
                    stream = _rows_with_first_field(stream)
                async for rows in _merged_rows(ctx, database, source, fields + tag_keys, stream, descending):
                    yield rows
                return
            async for rows in stream:
                yield rows
        finally:
            await stream.aclose()
        return
    # The outer time range bounded the inner statement already; its rows all count, as in InfluxDB
    # (an inner bucket that starts before the range is still a point of the outer statement).
    rows = await ctx.offload(_held_rows, group.points, fields, tag_keys, descending)
    for first in range(0, len(rows), ctx.batch):
        yield rows[first : first + ctx.batch]


async def _rows_with_first_field(stream: AsyncIterator[list[Any]]) -> AsyncIterator[list[Any]]:
    async for rows in stream:
        kept = [row for row in rows if row[1] is not None]
        if kept:
            yield kept


async def _merged_rows(
    ctx: Context, database: str, source: _Source, names: list[str], stream: AsyncIterator[list[Any]], descending: bool
) -> AsyncIterator[list[Sequence[Any]]]:
    """Rows of several series (each with its time and series id last) with the rows at one time in
    InfluxDB's order: held up to select.MERGE_MAX_ROWS, as the raw SELECT holds them; past that the
    rest streams as stored (rows at one time in series order)."""
    held: list[Any] = []
    async for rows in stream:
        held.extend(rows)
        if len(held) > select_module.MERGE_MAX_ROWS:
            break
    else:
        shard_ns = shard_group_duration(await ctx.retention_ns(database))
        order = await ctx.offload(_series_order, source.series, names, shard_ns)
        ordered = await ctx.offload(_merged, held, order, descending, ctx.deadline, None, 0)
        for first in range(0, len(ordered), ctx.batch):
            yield ordered[first : first + ctx.batch]
        return
    yield [row[:-2] for row in held]
    async for rows in stream:
        yield [row[:-2] for row in rows]


def _held_rows(points: Points, fields: list[str], tag_keys: list[str], descending: bool) -> list[tuple[Any, ...]]:
    has_value = np.zeros(len(points.times), dtype=bool)
    for name in fields:
        if name in points.columns:
            has_value |= ~np.isnan(points.columns[name])
    chosen = np.flatnonzero(has_value)
    if descending:  # latest first; at one time the series stay in tag order, as InfluxDB merges them
        chosen = chosen[np.argsort(-points.times[chosen], kind="stable")]
    missing = np.full(len(chosen), np.nan)
    columns: list[list[Any]] = [points.times[chosen].tolist()]
    columns += [points.columns[name][chosen].tolist() if name in points.columns else missing.tolist() for name in fields]
    series = points.series[chosen].tolist()
    columns += [[points.tags[n].get(key) for n in series] for key in tag_keys]
    return list(zip(*columns))


def _outside_reducers(expr: Expr) -> list[Expr]:
    """Nodes not inside a reducer call: where a bare field beside an aggregate would be."""
    return walk(expr, into_call=lambda call: call.name not in REDUCERS)


def _fields_read(exprs: Sequence[Expr], fields: frozenset[str]) -> list[str]:
    names = {
        node.name for expr in exprs for node in walk(expr) if isinstance(node, VarRef) and _is_field(node, fields)
    }
    return sorted(names)



# -- raw mode: math and transformations of stored points --------------------------------------


async def _raw(statement: SelectStatement, database: str, ctx: Context, start: int, end: int, source: _Source) -> Output:
    fields = _fields_read([item.expr for item in statement.fields], source.fields)
    if not fields:
        return  # only tags or unknown names: no points
    header_columns = [statement.time_column, *column_names(statement.fields)]
    transformed = any(call.name in TRANSFORMATIONS for item in statement.fields for call in _calls_in(item.expr))
    tag_fields = [
        n for n, item in enumerate(statement.fields)
        if isinstance(item.expr, VarRef) and not _is_field(item.expr, source.fields) and item.expr.type_hint != "field"
    ]  # fmt: skip
    tag_keys = [statement.fields[n].expr.name for n in tag_fields]  # type: ignore[union-attr]
    zone = _zone(statement)
    for group in source.groups:
        header = SeriesHeader(MEASUREMENT, header_columns, group.tags)
        evaluator = _Evaluator(statement.fields, None, not statement.order_desc)
        pages = _Pages(len(statement.fields), statement.offset, statement.limit)
        page: list[int | None] = [statement.offset, statement.limit]
        pending: list[Sequence[Any]] = []  # the rows of the batch's last time: the next batch may add to them
        stream = _rows_of(ctx, database, source, group, fields, tag_keys, start, end, statement.order_desc)
        try:
            while True:
                rows = await anext(stream, None)
                if rows is None:
                    rows, pending = pending, []
                    if not rows:
                        break
                else:
                    rows = pending + list(rows)
                    cut = len(rows)
                    while cut > 0 and rows[cut - 1][0] == rows[-1][0]:
                        cut -= 1
                    rows, pending = rows[:cut], rows[cut:]
                    if not rows:
                        continue
                if transformed:
                    answer = await ctx.offload(
                        _transformed_rows, evaluator, rows, fields, pages, statement.order_desc, ctx.epoch, zone,
                        ctx.deadline,
                    )  # fmt: skip
                else:
                    answer = await ctx.offload(
                        _raw_rows, evaluator, rows, fields, tag_fields, ctx.epoch, zone, ctx.deadline
                    )
                    answer = _paged(answer, page)
                if answer:
                    yield header, answer
                if (pages.done if transformed else page[1] == 0):
                    break
        finally:
            await stream.aclose()


def _paged(rows: list[list[Any]], page: list[int | None]) -> list[list[Any]]:
    """OFFSET then LIMIT on rows, across batches: page = [rows still to skip, rows still to give (None: all)]."""
    skip, left = page
    if skip:
        dropped = min(skip, len(rows))
        rows, page[0] = rows[dropped:], skip - dropped
    if left is not None:
        rows = rows[:left]
        page[1] = left - len(rows)
    return rows


def _point_columns(
    evaluator: _Evaluator, rows: list[Sequence[Any]], fields: list[str]
) -> tuple[np.ndarray, list[Column]]:
    times = np.array([row[0] for row in rows], dtype=np.int64)
    values = {name: np.array([row[n + 1] for row in rows], dtype=np.float64) for n, name in enumerate(fields)}
    nothing = Column(np.full(len(times), np.nan), np.zeros(len(times), dtype=bool))

    def leaf(expr: Expr, _: int) -> Column:
        if isinstance(expr, VarRef) and expr.type_hint != "tag" and expr.name in values:
            column = values[expr.name]
            return Column(column, ~np.isnan(column))
        return nothing  # a tag or an unknown name: no value to compute with

    return times, evaluator.columns(times, leaf)


def _raw_rows(
    evaluator: _Evaluator, rows: list[Sequence[Any]], fields: list[str], tag_fields: list[int], epoch: str | None,
    zone: Any, deadline: float | None,
) -> list[list[Any]]:
    """Fields, tags and math on points: one row per point that has any of the fields read; the
    fields numbered in `tag_fields` are tags, their values after the fields' in each row."""
    check_deadline(deadline)
    times, columns = _point_columns(evaluator, rows, fields)
    out = _rows(times, columns, epoch, zone, deadline)
    if tag_fields:
        exists = np.zeros(len(times), dtype=bool)
        for column in columns:
            exists |= column.exists
        for row, i in zip(out, np.flatnonzero(exists).tolist()):
            for k, n in enumerate(tag_fields):
                row[n + 1] = rows[i][len(fields) + 1 + k]
    return out


def _transformed_rows(
    evaluator: _Evaluator, rows: list[Sequence[Any]], fields: list[str], pages: _Pages, descending: bool,
    epoch: str | None, zone: Any, deadline: float | None,
) -> list[list[Any]]:
    """Transformations of stored points: each field's points, paged, joined as InfluxDB joins fields:
    the n-th point of a time of each field on the n-th row of that time."""
    check_deadline(deadline)
    times, columns = _point_columns(evaluator, rows, fields)
    pages.apply(columns)
    if len(columns) == 1:  # one field: each of its points is a row
        return _rows(times, columns, epoch, zone, deadline)
    keys: list[tuple[np.ndarray, np.ndarray]] = []
    for column in columns:
        at = np.flatnonzero(column.exists)
        point_times = times[at]
        starts = np.r_[True, point_times[1:] != point_times[:-1]] if len(at) else np.zeros(0, dtype=bool)
        first_of_time = np.maximum.accumulate(np.where(starts, np.arange(len(at)), 0)) if len(at) else starts
        keys.append((point_times, np.arange(len(at)) - first_of_time))
    all_times = np.concatenate([k[0] for k in keys])
    all_ranks = np.concatenate([k[1] for k in keys])
    if not len(all_times):
        return []
    order_times = -all_times if descending else all_times
    joined = np.unique(np.stack([order_times, all_ranks], axis=1), axis=0)  # sorted by (time order, n)
    row_of = {(int(t), int(n)): i for i, (t, n) in enumerate(joined.tolist())}
    out = [[format_time(int(-t if descending else t), epoch, zone)] + [None] * len(columns) for t, _ in joined.tolist()]
    for c, (column, (point_times, ranks)) in enumerate(zip(columns, keys)):
        values = column.values[column.exists]
        sign = -1 if descending else 1
        for t, n, value in zip(point_times.tolist(), ranks.tolist(), values.tolist()):
            out[row_of[(sign * t, n)]][c + 1] = _cell(value)
    return out


def _rows(
    times: np.ndarray, columns: list[Column], epoch: str | None, zone: Any, deadline: float | None
) -> list[list[Any]]:
    """Rows where any column has a point: [time, value per column]."""
    exists = np.zeros(len(times), dtype=bool)
    for column in columns:
        exists |= column.exists
    chosen = np.flatnonzero(exists)
    check_deadline(deadline)
    if epoch is None:
        stamps: list[Any] = [format_time(time, None, zone) for time in times[chosen].tolist()]
    else:  # format_time's arithmetic, for the whole column at once
        stamps = (times[chosen] // EPOCH_NS[epoch]).tolist()
    values = [json_values(column.values[chosen]) for column in columns]
    return [list(row) for row in zip(stamps, *values)]


# -- aggregate mode: per bucket reducers, then fill, math and transformations ------------------


def _looks_back(expr: Expr) -> bool:
    """Transformations of aggregates read one interval more (before the range; after it for DESC),
    as InfluxDB does, so the range's first bucket has its value."""
    return any(call.name in _LOOKS_BACK for call in _calls_in(expr))


async def _engine_results(
    ctx: Context, database: str, start: int, end: int, calls: list[Call], source: _Source, group: _Group,
    buckets: timebuckets.Buckets | None, tag_keys: list[str], descending: bool, cap: _PointCap | None = None,
    percentile_ends: bool = False,
) -> dict[Call, dict[int, Any]]:
    """Per call of this module, {bucket start time: its answer}, from the series' points in the answer's order;
    with `cap` only the points it lets through. Each field is read on its own, as InfluxDB builds an
    iterator per call: where series share a time, their points come in that field's merge order."""
    if not calls:
        return {}
    by_field: dict[str, list[Call]] = {}
    for call in calls:
        by_field.setdefault(_field_of(call), []).append(call)
    out: dict[Call, dict[int, Any]] = {}
    for field, field_calls in sorted(by_field.items()):
        reducers = _Reducers(field_calls, [field], tag_keys, buckets, descending, percentile_ends)
        stream = _rows_of(ctx, database, source, group, [field], tag_keys, start, end, descending)
        try:
            async for rows in stream:
                if cap is not None:
                    rows = cap.admit(rows)
                if rows:
                    await ctx.offload(reducers.feed, rows, ctx.deadline)
        finally:
            await stream.aclose()
        out.update(await ctx.offload(reducers.finish))
    return out


class _PointCap:
    """InfluxDB reads top()'s and bottom()'s points (without tag arguments) through its storage's limit:
    with LIMIT or OFFSET, only a series group's first LIMIT + OFFSET + 1 points (in the answer's order)
    of each shard group reach the selector; LIMIT and OFFSET then page the rows it answers too."""

    def __init__(self, points: int, shard_ns: int) -> None:
        self.points, self.shard_ns = points, shard_ns
        self.shard: int | None = None
        self.taken = 0

    def admit(self, rows: list[Sequence[Any]]) -> list[Sequence[Any]]:
        kept: list[Sequence[Any]] = []
        for row in rows:
            shard = shard_window(row[0], row[0] + 1, self.shard_ns)[0]
            if shard != self.shard:
                self.shard, self.taken = shard, 0
            if self.taken < self.points:
                self.taken += 1
                kept.append(row)
        return kept


Leaf = tuple[Call, int]  # a reducer call and how many intervals its field reads beyond the range


async def _group_buckets(
    statement: SelectStatement, database: str, ctx: Context, lo: int, hi: int, source: _Source
) -> timebuckets.Buckets | None:
    """GROUP BY time's buckets (tz() too) over the range read, [lo, hi); without a lower time bound,
    from the earliest point. None without GROUP BY time or without points."""
    interval = statement.group_by_time
    if interval is None:
        return None
    groups = len(source.groups)
    if lo == MIN_TIME:
        if source.stored:
            span = await storage.query_time_span(ctx.store, database, lo, hi)
            earliest = None if span is None else span[0]
        else:
            held = [int(group.points.times[0]) for group in source.groups if group.points and len(group.points.times)]
            earliest = min(held) if held else None
        if earliest is None:
            return None
        lo, groups = earliest, 1  # each series' own buckets are counted as it is answered

    def refuse_beyond(count: int) -> None:
        # Refused before any work, as InfluxDB's max-select-buckets (Tracker counts every series' buckets).
        _check_buckets(count * groups, ctx.max_buckets)

    zone = timebuckets.load_zone(statement.time_zone) if statement.time_zone is not None else None
    if zone is None:  # a range of bucket starts: no work to send to a query thread
        return timebuckets.Buckets(lo, hi, *interval, None, refuse_beyond)
    return await ctx.offload(timebuckets.Buckets, lo, hi, *interval, zone, refuse_beyond, ctx.deadline)


def _zone(statement: SelectStatement) -> Any:
    """The zone tz() names (None: UTC), for the times the answer writes."""
    return timebuckets.load_zone(statement.time_zone) if statement.time_zone is not None else None


async def _aggregate(statement: SelectStatement, database: str, ctx: Context, start: int, end: int, source: _Source) -> Output:
    interval = statement.group_by_time
    if interval is not None and end == MAX_TIME:
        end = ctx.now_ns + 1  # InfluxDB ends GROUP BY time at now() when no upper bound is given
    extends = interval is not None and start != MIN_TIME
    backs = [int(extends and _looks_back(item.expr)) for item in statement.fields]
    reach = max(backs) if backs else 0
    # The buckets of the range read: one interval more where a transformation reads beyond the range.
    read_lo, read_hi = start, end
    if reach and interval is not None:
        if statement.order_desc:
            read_hi = end + interval[0]
        else:
            read_lo = start - interval[0]
    buckets = await _group_buckets(statement, database, ctx, read_lo, read_hi, source)
    if interval is not None and buckets is None:
        return  # no points at all
    leaves: list[Leaf] = list(
        dict.fromkeys((call, back) for item, back in zip(statement.fields, backs) for call in _reducer_calls(item.expr))
    )
    all_calls = [call for item in statement.fields for call in _reducer_calls(item.expr)]
    has_transform = any(_calls_in(item.expr) != _reducer_calls(item.expr) and any(
        call.name in TRANSFORMATIONS for call in _calls_in(item.expr)) for item in statement.fields)  # fmt: skip
    # A lone selector without GROUP BY time answers with the time of the point it selected.
    point_time = (
        interval is None and len(all_calls) == 1 and all_calls[0].name in _SELECTORS_WITH_A_POINT and not has_transform
    )
    header_columns = [statement.time_column, *column_names(statement.fields)]
    fill = statement.fill if statement.fill is not None else "null"
    # Where InfluxDB's percentile stops at a bucket without a rank (see _Reducers): checked against
    # influxd for a percentile alone, oldest first; beside other calls or latest first it goes on.
    percentile_ends = len(all_calls) == 1 and not has_transform and not statement.order_desc
    reads: dict[int, list[storage.Columns | None]] = {}  # per reach: samples as columns, read once for all groups
    made = 0
    starts = np.zeros(1, dtype=np.int64)  # the bucket starts of the range read
    if buckets is not None:
        grid = buckets.starts
        starts = (
            np.arange(grid.start, grid.stop, grid.step, dtype=np.int64) if isinstance(grid, range)
            else np.asarray(grid, dtype=np.int64)
        )  # fmt: skip
    for group in source.groups:
        found: dict[Leaf, dict[int, Any]] = {}
        for back in sorted(set(backs)):
            lo, hi = (read_lo, read_hi) if back else (start, end)
            calls = [call for call, leaf_back in leaves if leaf_back == back]
            # The plain aggregates of stored samples come from SQLite or the column cache.
            standard = list(dict.fromkeys(call for call in calls if source.stored and _is_standard(call)))
            keys = list(dict.fromkeys(_call_key(call) for call in standard))
            if keys and group.where is not None:
                runs = None if buckets is None else buckets.runs_within(lo, hi)
                data = await _bucket_data(
                    ctx, database, lo, hi, keys, group.where, runs, point_time, reads.setdefault(back, []),
                    source.series,
                )  # fmt: skip
                by_call = await ctx.offload(_standard_values, standard, keys, data, ctx.deadline)
                for call in standard:
                    found[(call, back)] = by_call[call]
            engine = [call for call in calls if call not in standard]
            for call, values in (
                await _engine_results(
                    ctx, database, lo, hi, engine, source, group, buckets, [], statement.order_desc,
                    percentile_ends=percentile_ends,
                )  # fmt: skip
            ).items():
                found[(call, back)] = values
        keys_found = {at for (call, _), values in found.items() if call.name != "integral" for at in values}
        areas = [area for (call, _), values in found.items() if call.name == "integral" for area in values.get(0, [])]
        if buckets is not None and areas:  # integral() answers the times it stamps its areas at
            stamped = np.array([time for time, _ in areas], dtype=np.int64)
            inside = stamped[(stamped >= buckets.runs[0].lo) & (stamped < buckets.runs[-1].hi)]
            keys_found.update(buckets.starts_of(inside).tolist())
        elif areas:
            keys_found.add(0)
        if not keys_found:
            continue
        first = last = 0  # positions in `starts` of the statement's first and last buckets
        if buckets is not None:
            every, offset, zone = buckets.every, buckets.offset, buckets.zone
            first_start = timebuckets.window(start, every, offset, zone)[0] if start != MIN_TIME else min(keys_found)
            last_start = timebuckets.window(end - 1, every, offset, zone)[0]
            first = int(np.searchsorted(starts, first_start))
            last = int(np.searchsorted(starts, last_start, side="right")) - 1
            made += last - first + 1
            _check_buckets(made, ctx.max_buckets)
        rows = await ctx.offload(
            _aggregate_rows, statement, found, backs, keys_found, starts, first, last, fill, point_time, start,
            ctx.epoch, ctx.deadline, ctx.count_fill_zero,
        )  # fmt: skip
        header = SeriesHeader(MEASUREMENT, header_columns, group.tags)
        for i in range(0, len(rows), ctx.batch):
            yield header, rows[i : i + ctx.batch]


def _standard_values(
    calls: list[Call], keys: list[tuple[str, str]], data: dict[int, list[Any]], deadline: float | None
) -> dict[Call, dict[int, Any]]:
    """select.py's per-bucket values, as each call's {bucket start time: value or (value, time)}; a
    stddev of one value is a point without a value (NaN), as InfluxDB."""
    fields = [FieldExpr(call) for call in calls]
    out: dict[Call, dict[int, Any]] = {call: {} for call in calls}
    for n, (at, raw) in enumerate(data.items()):
        if n % 1024 == 0:
            check_deadline(deadline)
        values, times = _evaluate_bucket(fields, keys, raw)
        for call, value, time in zip(calls, values, times):
            # A count over no values is None: InfluxDB has no point there to fill.
            if value is not None:
                value = math.nan if value is NO_VALUE else value
                out[call][at] = value if time is None else (value, time)
    return out


def _aggregate_rows(
    statement: SelectStatement, found: dict[Leaf, dict[int, Any]], backs: list[int], keys: set[int],
    starts: np.ndarray, first: int, last: int, fill: str | float, point_time: bool, start: int, epoch: str | None,
    deadline: float | None, count_fill_zero: bool = True,
) -> list[list[Any]]:
    """The rows of one series: `starts` are the bucket start times of the range read, `first` and
    `last` the positions there of the statement's own first and last buckets; `keys` the starts of the
    buckets holding values."""
    interval = statement.group_by_time
    descending = statement.order_desc
    reach = max(backs) if backs else 0
    if interval is None:
        axis = np.zeros(1, dtype=np.int64)  # positions in `starts`
        times = np.array([start if start != MIN_TIME else 0])
    else:
        lo = max(0, first - (0 if descending else reach))
        hi = min(len(starts) - 1, last + (reach if descending else 0))
        if fill == "none":
            wanted = np.array(sorted(keys), dtype=np.int64)
            at = np.searchsorted(starts, wanted)
            on_start = at < len(starts)
            on_start[on_start] = starts[at[on_start]] == wanted[on_start]
            at = at[on_start]
            axis = at[(at >= lo) & (at <= hi)]
        else:
            axis = np.arange(lo, hi + 1, dtype=np.int64)
        times = starts[axis]
    position = {int(at): n for n, at in enumerate(times.tolist())} if interval is not None else {0: 0}
    leaf_values: dict[Leaf, np.ndarray] = {}
    leaf_exists: dict[Leaf, np.ndarray] = {}
    picked_time = -1
    for (call, back), values_found in found.items():
        check_deadline(deadline)
        if call.name == "integral":
            continue  # stamped at times of its own, see below
        values = np.full(len(axis), np.nan)
        present = np.zeros(len(axis), dtype=bool)  # buckets where the reducer gave a point (maybe without a value)
        for bucket, value in values_found.items():
            at = position.get(bucket)
            if at is None:
                continue
            if isinstance(value, tuple):
                value, picked_time = value
            values[at] = value
            present[at] = True
        # This leaf's own range: the buckets of the statement, plus the one its transformation reads.
        if interval is None:
            own = np.ones(len(axis), dtype=bool)
        elif descending:
            own = (axis >= first) & (axis <= last + back)
        else:
            own = (axis >= first - back) & (axis <= last)
        # integral() streams across buckets in InfluxDB: its buckets are never filled; nor are those of
        # a reducer with no value at all in this series (InfluxDB has no such series to fill).
        unfilled = fill == "none" or call.name == "integral" or not present[own].any()
        missing = ~present & own
        if unfilled:
            leaf_values[(call, back)] = values
        elif descending:  # previous and linear look back in the answer's order
            leaf_values[(call, back)] = _filled(values[::-1], times[::-1], call, fill, missing[::-1], count_fill_zero)[::-1]
        else:
            leaf_values[(call, back)] = _filled(values, times, call, fill, missing, count_fill_zero)
        leaf_exists[(call, back)] = (present if unfilled else own) & own
    if descending:
        axis, times = axis[::-1], times[::-1]
        for leaf in leaf_values:
            leaf_values[leaf], leaf_exists[leaf] = leaf_values[leaf][::-1], leaf_exists[leaf][::-1]
    nothing = Column(np.full(len(axis), np.nan), np.zeros(len(axis), dtype=bool))

    def leaf_column(expr: Expr, field: int) -> Column:
        leaf = (expr, backs[field])
        if isinstance(expr, Call) and leaf in leaf_values:
            return Column(leaf_values[leaf].copy(), leaf_exists[leaf].copy())  # type: ignore[index]
        return nothing

    # As InfluxDB: each call outside math is an iterator of points (a reducer's buckets, or a
    # transformation's output); LIMIT and OFFSET apply to each; rows are the times any iterator has
    # a point; then each field's math runs on the row's values, an iterator without a point there
    # giving fill()'s number, or for fill(previous) the value it had on the row before.
    evaluator = _Evaluator(statement.fields, None if interval is None else interval[0], not descending)
    iterators: list[tuple[Call, Column, np.ndarray]] = []  # (call, its points, their times)
    for n, item in enumerate(statement.fields):
        for k, call in enumerate(_iterator_calls(item.expr)):
            if call.name == "integral":
                areas = found.get((call, backs[n]), {}).get(0, [])
                stamped = np.array([time for time, _ in areas], dtype=np.int64)
                values = np.array([area for _, area in areas], dtype=np.float64)
                iterators.append((call, Column(values, np.ones(len(values), dtype=bool)), stamped))
                continue
            column = evaluator._eval(call, times, leaf_column, (n, k))
            point_times = times
            if interval is not None:
                column.exists &= (axis >= first) & (axis <= last)
            elif point_time and picked_time >= 0:
                point_times = np.array([picked_time])
            else:
                # One row for the range, if anything has a value; a stddev of one point is a point without
                # a value (InfluxDB answers its row, with null).
                if call.name != "stddev":
                    column.exists &= ~np.isnan(column.values)
            iterators.append((call, column, point_times))
    pages = _Pages(len(iterators), statement.offset, statement.limit)
    pages.apply([column for _, column, _ in iterators])
    return _joined_rows(statement, iterators, descending, epoch, deadline)


def _iterator_calls(expr: Expr) -> list[Call]:
    """The calls of an expression outside math (reducers, transformations), left to right."""
    nodes = walk(expr, into_call=lambda call: call.name in MATH_FUNCTIONS)
    return [node for node in nodes if isinstance(node, Call) and node.name not in MATH_FUNCTIONS]


def _row_math(expr: Expr, values: dict[int, np.ndarray], rows: int) -> np.ndarray:
    """A field's value per row from its iterators' values (keyed by id of the call)."""
    if isinstance(expr, (IntegerLiteral, NumberLiteral)):
        return np.full(rows, float(expr.value))
    if isinstance(expr, BinaryExpr):
        lhs, rhs = _row_math(expr.lhs, values, rows), _row_math(expr.rhs, values, rows)
        return np.asarray(_arithmetic(expr.op, lhs, rhs), dtype=np.float64)
    if isinstance(expr, Call) and expr.name in MATH_FUNCTIONS:
        return np.asarray(_math(expr.name, [_row_math(arg, values, rows) for arg in expr.args]), dtype=np.float64)
    if isinstance(expr, Call):
        return values[id(expr)]
    return np.full(rows, np.nan)


def _joined_rows(
    statement: SelectStatement, iterators: list[tuple[Call, Column, np.ndarray]], descending: bool,
    epoch: str | None, deadline: float | None,
) -> list[list[Any]]:
    # A row per (time, n): the n-th point of that time of each iterator (integral() may stamp a time twice).
    keys = []
    for _, column, times in iterators:
        stamped = times[column.exists]
        starts = np.r_[True, stamped[1:] != stamped[:-1]] if len(stamped) else np.zeros(0, dtype=bool)
        first = np.maximum.accumulate(np.where(starts, np.arange(len(stamped)), 0)) if len(stamped) else starts
        keys.append((-stamped if descending else stamped, np.arange(len(stamped)) - first))
    if not any(len(key[0]) for key in keys):
        return []
    joined = np.unique(np.stack([np.concatenate([k[0] for k in keys]), np.concatenate([k[1] for k in keys])], axis=1), axis=0)
    row_of = {(int(t), int(n)): i for i, (t, n) in enumerate(joined.tolist())}
    row_times = -joined[:, 0] if descending else joined[:, 0]
    rows = len(row_times)
    fill = statement.fill
    values: dict[int, np.ndarray] = {}
    for (call, column, _), (ordered, ranks) in zip(iterators, keys):
        check_deadline(deadline)
        out = np.full(rows, np.nan)
        have = np.zeros(rows, dtype=bool)
        at = np.array([row_of[(t, n)] for t, n in zip(ordered.tolist(), ranks.tolist())], dtype=np.int64)
        out[at] = column.values[column.exists]
        have[at] = True
        if isinstance(fill, float):
            out[~have] = float(int(fill)) if _is_integer(call) else fill
        elif fill == "previous" and have.any():
            # the value this iterator had on the row before (InfluxDB keeps it for the row)
            last = np.maximum.accumulate(np.where(have, np.arange(rows), -1))
            carried = ~have & (last >= 0)
            out[carried] = out[last[carried]]
        values[id(call)] = out
    columns = [_row_math(item.expr, values, rows) for item in statement.fields]
    zone = _zone(statement)
    out_rows: list[list[Any]] = []
    for i in range(rows):
        out_rows.append([format_time(int(row_times[i]), epoch, zone), *(_cell(float(column[i])) for column in columns)])
    return out_rows


def _is_integer(expr: Expr) -> bool:
    """Whether InfluxDB answers the expression as an integer (every stored field is a float)."""
    if isinstance(expr, IntegerLiteral):
        return True
    if isinstance(expr, Call):
        if expr.name in ("count", "elapsed"):
            return True
        return expr.name in ("difference", "non_negative_difference", "cumulative_sum") and _is_integer(expr.args[0])
    if isinstance(expr, BinaryExpr) and expr.op in ("+", "-", "*", "%"):
        return _is_integer(expr.lhs) and _is_integer(expr.rhs)
    return False


def _filled(
    values: np.ndarray, times: np.ndarray, call: Call, fill: str | float, missing: np.ndarray, count_zero: bool = True
) -> np.ndarray:
    """fill() on one reducer's per-bucket values where it has no point (`missing`, within its range),
    as InfluxDB fills an aggregate's missing buckets; previous and linear start from values only.
    `count_zero`: fill(null) gives count() 0 (not inside a subquery)."""
    if not missing.any():
        return values
    out = values.copy()
    if fill == "null":
        if call.name == "count" and count_zero:
            out[missing] = 0.0  # InfluxDB 1.x: count() is 0 for an interval with no points
        return out
    known = np.flatnonzero(~np.isnan(values))
    if fill == "previous":
        if len(known):
            before = np.searchsorted(known, np.arange(len(values)), side="right") - 1
            has_previous = missing & (before >= 0)
            out[has_previous] = values[known[before[has_previous]]]
        return out
    if fill == "linear":
        if len(known) >= 2:
            positions = np.arange(len(values))
            inside = missing & (positions > known[0]) & (positions < known[-1])
            for i in np.flatnonzero(inside).tolist():
                k = int(np.searchsorted(known, i))
                a, b = known[k - 1], known[k]
                # InfluxDB's arithmetic: slope per ns times the ns since the previous value
                out[i] = (values[b] - values[a]) / float(times[b] - times[a]) * float(times[i] - times[a]) + values[a]
            if call.name == "count":  # an integer iterator: the line's value truncated
                out[inside] = np.trunc(out[inside])
        return out
    out[missing] = float(int(fill)) if call.name == "count" else float(fill)  # an integer iterator truncates
    return out


# -- top, bottom, sample, distinct: several rows per bucket -------------------------------------


async def _multi_row(
    statement: SelectStatement, call: Call, database: str, ctx: Context, start: int, end: int, source: _Source
) -> Output:
    interval = statement.group_by_time
    tag_keys = [arg.name for arg in call.args[1:-1] if isinstance(arg, VarRef)] if call.name in ("top", "bottom") else []
    header_columns = [statement.time_column, *column_names([statement.fields[0], *(FieldExpr(VarRef(key)) for key in tag_keys)])]
    if interval is not None and end == MAX_TIME:
        end = ctx.now_ns + 1
    buckets = await _group_buckets(statement, database, ctx, start, end, source)
    if interval is not None and buckets is None:
        return  # no points at all
    limited = (
        call.name in ("top", "bottom") and len(call.args) == 2 and source.stored
        and ((statement.limit or 0) > 0 or statement.offset > 0)
    )  # fmt: skip
    shard_ns = shard_group_duration(await ctx.retention_ns(database)) if limited else 0
    for group in source.groups:
        cap = _PointCap((statement.limit or 0) + statement.offset + 1, shard_ns) if limited else None
        found = (await _engine_results(
            ctx, database, start, end, [call], source, group, buckets, tag_keys, statement.order_desc, cap
        ))[call]  # fmt: skip
        if not found:
            continue
        rows = await ctx.offload(_multi_rows, found, start, buckets is not None, statement.order_desc, ctx.epoch, _zone(statement))
        rows = _paged(rows, [statement.offset, statement.limit])
        header = SeriesHeader(MEASUREMENT, header_columns, group.tags)
        for i in range(0, len(rows), ctx.batch):
            yield header, rows[i : i + ctx.batch]


def _multi_rows(
    found: dict[int, list[tuple[Any, ...]]], start: int, grouped: bool, descending: bool, epoch: str | None, zone: Any
) -> list[list[Any]]:
    """Buckets (keyed by their start; 0 without GROUP BY time) in the answer's order; within a bucket,
    InfluxDB keeps the points' own order."""
    rows: list[list[Any]] = []
    for bucket in sorted(found, reverse=descending):
        bucket_time = bucket if grouped else (start if start != MIN_TIME else 0)
        for time, value, *tags in found[bucket]:
            at = bucket_time if time is None else time
            rows.append([format_time(at, epoch, zone), _json_number(value), *(tag or None for tag in tags)])
    return rows


# -- subqueries: the inner answer's rows are the outer statement's points ----------------------


async def select_subquery(statement: SelectStatement, database: str, ctx: Context) -> Output:
    """SELECT ... FROM (SELECT ...): the inner statement runs first, bounded by the outer time range,
    and its answer, one series at a time held in memory (within max-select-point), becomes the outer
    statement's points: its columns the fields, its series' tags the tags; the outer WHERE and
    GROUP BY apply to those rows, as InfluxDB does."""
    try:
        start, end, rest = time_range(statement.condition, ctx.now_ns)
    except QueryParseError as exc:
        raise StatementError(exc.message) from None
    if start >= end:
        return
    inner = statement.sources[0].query
    assert inner is not None
    answer = await _inner_answer(_bounded(inner, start, end), ctx)
    if not answer:
        return
    names = sorted({name for _, columns, _ in answer for name in columns[1:]})
    if any(isinstance(item.expr, (Wildcard, RegexLiteral)) for item in statement.fields):
        # SELECT * or /regex/ FROM (...): the inner columns (that match), in name order, in its place
        fields: list[FieldExpr] = []
        for item in statement.fields:
            if isinstance(item.expr, Wildcard):
                fields.extend(FieldExpr(VarRef(name)) for name in names)
            elif isinstance(item.expr, RegexLiteral):
                pattern = item.expr.compiled
                fields.extend(FieldExpr(VarRef(name)) for name in names if pattern.search(name) is not None)
            else:
                fields.append(item)
        statement = replace(statement, fields=fields)
    if has_wildcard_calls(statement):
        statement = expand_wildcards(statement, names)
    if not statement.fields:
        return
    groups = await ctx.offload(_held_groups, statement, answer, rest, ctx.deadline)
    groups = _series_page(groups, statement.slimit, statement.soffset)
    if statement.order_desc:  # the last series first, as InfluxDB
        groups = groups[::-1]
    async for item in _run(statement, database, ctx, start, end, _Source(groups, {}, frozenset(names))):
        yield item


def _bounded(inner: SelectStatement, start: int, end: int) -> SelectStatement:
    """The inner statement with the outer time range AND-ed to its WHERE."""
    condition = inner.condition
    for op, ns in ((">=", start), ("<", end)):
        if ns not in (MIN_TIME, MAX_TIME):
            bound = BinaryExpr(op, VarRef("time"), TimeLiteral(ns))
            condition = bound if condition is None else BinaryExpr("AND", condition, bound)
    return replace(inner, condition=condition)


InnerSeries = tuple[dict[str, str], list[str], list[Sequence[Any]]]  # tags, columns, rows (time in ns)


async def _inner_answer(inner: SelectStatement, ctx: Context) -> list[InnerSeries]:
    from tracker.influx.select import execute

    inner_ctx = replace(ctx, epoch="ns", count_fill_zero=False)
    series: dict[tuple[tuple[str, str], ...], InnerSeries] = {}
    async for header, rows in execute(inner, inner_ctx):
        tags = dict(header.tags or {})
        found = series.setdefault(tuple(sorted(tags.items())), (tags, header.columns, []))
        found[2].extend(rows)
    return list(series.values())


def _held_groups(
    statement: SelectStatement, answer: list[InnerSeries], condition: Expr | None, deadline: float | None
) -> list[_Group]:
    """The outer statement's series: the inner series' rows that pass the outer WHERE, merged per
    value of the outer GROUP BY tags (all into one without), in time order."""
    tag_keys = sorted({key for tags, _, _ in answer for key in tags}) if "*" in statement.group_by_tags else sorted(
        set(statement.group_by_tags)
    )  # fmt: skip
    by_key: dict[tuple[str, ...], list[tuple[dict[str, str], np.ndarray, dict[str, np.ndarray]]]] = {}
    for tags, columns, rows in sorted(answer, key=lambda one: sorted(one[0].items())):
        check_deadline(deadline)
        times = np.array([row[0] for row in rows], dtype=np.int64)
        values: dict[str, np.ndarray] = {}
        for n, name in enumerate(columns[1:], start=1):  # a repeated name (AS v, AS v) is its first column, as InfluxDB
            if name not in values:
                values[name] = _numbers([row[n] for row in rows])
        keep = _held_condition(condition, values, tags, len(times))
        by_key.setdefault(tuple(tags.get(key, "") for key in tag_keys), []).append(
            (tags, times[keep], {name: column[keep] for name, column in values.items()})
        )
    groups = []
    for key in sorted(by_key):
        parts = by_key[key]
        times = np.concatenate([part[1] for part in parts])
        order = np.argsort(times, kind="stable")  # series in tag order where times are equal
        names = {name for part in parts for name in part[2]}
        columns = {
            name: np.concatenate([part[2].get(name, np.full(len(part[1]), np.nan)) for part in parts])[order]
            for name in names
        }
        series = np.concatenate([np.full(len(part[1]), n) for n, part in enumerate(parts)])[order]
        points = Points(times[order], columns, series, [part[0] for part in parts])
        groups.append(_Group(dict(zip(tag_keys, key)) if tag_keys else None, points=points))
    return groups


def _numbers(values: list[Any]) -> np.ndarray:
    """A column of the inner answer as float64: numbers as they are, anything else (text) as no value."""
    return np.array([v if isinstance(v, (int, float)) and not isinstance(v, bool) else np.nan for v in values], dtype=np.float64)


def _held_condition(expr: Expr | None, columns: dict[str, np.ndarray], tags: dict[str, str], rows: int) -> np.ndarray:
    """Which rows of one inner series pass the outer WHERE (time already applied): columns compare
    as numbers (no value never matches), tags as text."""
    if expr is None:
        return np.ones(rows, dtype=bool)
    if isinstance(expr, BooleanLiteral):
        return np.full(rows, expr.value)
    if not isinstance(expr, BinaryExpr):
        return np.zeros(rows, dtype=bool)
    if expr.op in ("AND", "OR"):
        lhs, rhs = _held_condition(expr.lhs, columns, tags, rows), _held_condition(expr.rhs, columns, tags, rows)
        return lhs & rhs if expr.op == "AND" else lhs | rhs
    lhs, rhs = _operand(expr.lhs, columns, tags, rows), _operand(expr.rhs, columns, tags, rows)
    op = expr.op
    if isinstance(expr.rhs, RegexLiteral):
        if not isinstance(lhs, str):
            return np.zeros(rows, dtype=bool)
        found = expr.rhs.compiled.search(lhs) is not None
        return np.full(rows, found if op == "=~" else not found)
    if isinstance(lhs, str) or isinstance(rhs, str):
        if not (isinstance(lhs, str) and isinstance(rhs, str)):
            return np.full(rows, op == "!=")
        result = {"=": lhs == rhs, "!=": lhs != rhs, "<": lhs < rhs, "<=": lhs <= rhs, ">": lhs > rhs, ">=": lhs >= rhs}
        return np.full(rows, result.get(op, False))
    with np.errstate(invalid="ignore"):
        compare = {"=": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal}
        if op not in compare:
            return np.zeros(rows, dtype=bool)
        result = compare[op](lhs, rhs)
        if op == "!=":  # no value compares false, as InfluxDB's nil
            result &= ~np.isnan(np.asarray(lhs, dtype=np.float64) + np.asarray(rhs, dtype=np.float64))
        return np.broadcast_to(result, (rows,)).copy()


def _operand(expr: Expr, columns: dict[str, np.ndarray], tags: dict[str, str], rows: int) -> Any:
    if isinstance(expr, VarRef):
        if expr.type_hint != "tag" and expr.name in columns:
            return columns[expr.name]
        if expr.type_hint != "field" and expr.name in tags:
            return tags[expr.name]
        return np.full(rows, np.nan) if expr.type_hint == "field" else tags.get(expr.name, "")
    if isinstance(expr, (IntegerLiteral, NumberLiteral)):
        return float(expr.value)
    if isinstance(expr, StringLiteral):
        return expr.value
    if isinstance(expr, BinaryExpr) and expr.op in ("+", "-", "*", "/", "%"):
        lhs, rhs = _operand(expr.lhs, columns, tags, rows), _operand(expr.rhs, columns, tags, rows)
        if isinstance(lhs, str) or isinstance(rhs, str):
            return np.full(rows, np.nan)
        return np.asarray(_arithmetic(expr.op, lhs, rhs), dtype=np.float64)
    return np.full(rows, np.nan)


# -- a selector beside fields and tags: those of the point it selects ------------------------------


async def _selector_with_fields(
    statement: SelectStatement, database: str, ctx: Context, start: int, end: int, source: _Source
) -> Output:
    """SELECT max(x), y, device ...: per bucket the selected point, and the other fields' values (math
    too) on that point's row, as InfluxDB does; top(), bottom() and sample() give a row per point."""
    (call,) = [c for item in statement.fields for c in _reducer_calls(item.expr)]
    if call.name in ("top", "bottom") and len(call.args) > 2:
        raise StatementError(f"{call.name}() with tags beside other fields is not supported by Tracker")
    refs = {
        node.name: node for item in statement.fields if not _reducer_calls(item.expr)
        for node in walk(item.expr) if isinstance(node, VarRef)
    }  # fmt: skip
    selected = _field_of(call)
    fields = [selected, *sorted(name for name, ref in refs.items() if _is_field(ref, source.fields) and name != selected)]
    tag_keys = sorted(name for name, ref in refs.items() if not _is_field(ref, source.fields) and ref.type_hint != "field")
    interval = statement.group_by_time
    if interval is not None and end == MAX_TIME:
        end = ctx.now_ns + 1
    header_columns = [statement.time_column, *column_names(statement.fields)]
    buckets = await _group_buckets(statement, database, ctx, start, end, source)
    if interval is not None and buckets is None:
        return  # no points at all
    whole: _WholeRange | None = None
    if interval is None and call.name in ("first", "last") and source.stored:
        ranked = sorted(source.series, key=lambda sid: series_key(source.series[sid]))
        shard_ns = shard_group_duration(await ctx.retention_ns(database))
        whole = _WholeRange({sid: n for n, sid in enumerate(ranked)}, shard_ns, bool(tag_keys))
    limited = call.name in ("top", "bottom") and source.stored and ((statement.limit or 0) > 0 or statement.offset > 0)
    cap_shard_ns = shard_group_duration(await ctx.retention_ns(database)) if limited else 0
    per_series: _PerSeries | None = None
    if interval is not None and call.name in _SELECTOR_NAMES and source.stored and len(source.series) > 1:
        shard_ns = shard_group_duration(await ctx.retention_ns(database))
        per_series = _PerSeries(await ctx.offload(_series_order, source.series, [], shard_ns), statement.order_desc)
    for group in source.groups:
        picker = _PointPicker(call, len(fields), buckets, ctx.deadline, whole, per_series)
        cap = _PointCap((statement.limit or 0) + statement.offset + 1, cap_shard_ns) if limited else None
        stream = _rows_of(
            ctx, database, source, group, fields, tag_keys, start, end, statement.order_desc,
            whole is not None or per_series is not None, True,
        )  # fmt: skip
        try:
            async for rows in stream:
                if cap is not None:  # the points of the selected field count, as InfluxDB reads that field
                    rows = cap.admit([row for row in rows if row[1] is not None and row[1] == row[1]])
                if rows:
                    await ctx.offload(picker.feed, rows)
        finally:
            await stream.aclose()
        picked = await ctx.offload(picker.finish)
        if not picked:
            continue
        starts: Sequence[int] = [0]
        if buckets is not None:
            lowest = min(picked) if start == MIN_TIME else buckets.starts[0]
            starts = [at for at in buckets.starts if at >= lowest]
            _check_buckets(len(starts), ctx.max_buckets)
        answer = await ctx.offload(
            _picked_rows, statement, call, picked, fields, tag_keys, starts, start, ctx.epoch, ctx.deadline
        )
        answer = _paged(answer, [statement.offset, statement.limit])
        header = SeriesHeader(MEASUREMENT, header_columns, group.tags)
        for i in range(0, len(answer), ctx.batch):
            yield header, answer[i : i + ctx.batch]


_SELECTOR_NAMES = frozenset({"first", "last", "min", "max"})


class _PointPicker:
    """Per bucket, the rows of the points a selector picks; holds one bucket's rows at a time."""

    def __init__(
        self, call: Call, fields: int, buckets: timebuckets.Buckets | None, deadline: float | None,
        whole: _WholeRange | None = None, per_series: _PerSeries | None = None,
    ) -> None:
        self.call, self.fields, self.buckets, self.deadline = call, fields, buckets, deadline
        self.whole = whole  # first()/last() without GROUP BY time: rows end in their series id
        self.per_series = per_series  # first/last/min/max per GROUP BY time bucket: rows end in their series id
        self.current: int | None = None
        self.rows: list[Sequence[Any]] = []
        self.picked: dict[int, list[Sequence[Any]]] = {}
        self.series_picks: list[tuple[int, int, Sequence[Any]]] = []  # (bucket, series, row)

    def feed(self, rows: list[Sequence[Any]]) -> None:
        check_deadline(self.deadline)
        if self.buckets is None:
            buckets = [0] * len(rows)
        else:
            buckets = self.buckets.starts_of(np.array([row[0] for row in rows], dtype=np.int64)).tolist()
        for row, bucket in zip(rows, buckets):
            if row[1] is None or row[1] != row[1]:  # no value of the selector's field on this row
                continue
            if bucket != self.current:
                self._pick()
                self.current = bucket
            self.rows.append(row)
            if len(self.rows) > MAX_BUCKET_POINTS:
                raise StatementError(
                    f"more than {MAX_BUCKET_POINTS} points in one bucket for {self.call.name}(): "
                    "use GROUP BY time() or a shorter time range"
                )

    def finish(self) -> dict[int, list[Sequence[Any]]]:
        self._pick()
        if self.per_series is not None:
            self.picked = self.per_series.reduce(self.call.name, self.series_picks, self.deadline)
        return self.picked

    def _pick(self) -> None:
        if self.current is None or not self.rows:
            return
        times = np.array([row[0] for row in self.rows], dtype=np.int64)
        values = np.array([row[1] for row in self.rows], dtype=np.float64)
        name = self.call.name
        if name in ("top", "bottom"):
            size = self.call.args[-1]
            assert isinstance(size, IntegerLiteral)
            chosen = top_bottom(name, values, times, None, size.value).tolist()
        elif name == "sample":
            size = self.call.args[1]
            assert isinstance(size, IntegerLiteral)
            chosen = sorted(np.random.default_rng().permutation(len(values))[: size.value].tolist(), key=lambda i: times[i])
        elif name == "percentile":
            p = self.call.args[1]
            assert isinstance(p, (IntegerLiteral, NumberLiteral))
            rank = int(math.floor(len(values) * float(p.value) / 100.0 + 0.5)) - 1
            chosen = [go_sort_order(values.tolist(), self.deadline)[rank]] if 0 <= rank < len(values) else []
        elif self.whole is not None:
            series = np.array([row[-1] for row in self.rows], dtype=np.int64)
            chosen = [self.whole.pick(name == "last", values, times, series)]
        elif self.per_series is not None:  # each series' own pick; the reduce across them waits for finish()
            series = np.array([row[-1] for row in self.rows], dtype=np.int64)
            for sid in np.unique(series).tolist():
                own = np.flatnonzero(series == sid)
                row = self.rows[int(own[_selected_index(name, values[own], times[own])])]
                self.series_picks.append((self.current, sid, row))
            chosen = []
        else:
            chosen = [_selected_index(name, values, times)]
        if chosen:
            self.picked[self.current] = [self.rows[i] for i in chosen]
        self.rows = []


def _selected_index(name: str, values: np.ndarray, times: np.ndarray) -> int:
    """The point first, last, min or max selects in a bucket, with InfluxDB's ties: min/max the earliest
    point; first/last the larger value; then the earlier row."""
    if name in ("min", "max"):
        best = values.min() if name == "min" else values.max()
        candidates = np.flatnonzero(values == best)
        return int(candidates[np.argmin(times[candidates])])
    when = times.min() if name == "first" else times.max()
    candidates = np.flatnonzero(times == when)
    return int(candidates[np.argmax(values[candidates])])


@dataclass(frozen=True, slots=True)
class _PerSeries:
    """first/last/min/max beside fields under GROUP BY time over several series, as InfluxDB 1.6 picks:
    each series' reducer picks its point per bucket, then a merge of the series' picks (a heap keyed by
    bucket, fed in series key order: columnar.merge_order) feeds one more reducer, which keeps the first
    point it sees among equal ones. Checked against influxd with two series tied bucket after bucket;
    three tied series with a tag beside the selector still pick otherwise than InfluxDB."""

    order: columnar.SeriesOrder
    descending: bool

    def reduce(
        self, name: str, picks: list[tuple[int, int, Sequence[Any]]], deadline: float | None
    ) -> dict[int, list[Sequence[Any]]]:
        if not picks:
            return {}
        ascending = sorted(picks, key=lambda pick: pick[0])  # merge_order takes times ascending
        buckets = np.array([bucket for bucket, _, _ in ascending], dtype=np.int64)
        series = np.array([sid for _, sid, _ in ascending], dtype=np.int64)
        out: dict[int, list[Sequence[Any]]] = {}
        for n in columnar.merge_order(buckets, series, self.order, self.descending, deadline).tolist():
            bucket, _, row = ascending[n]
            held = out.get(bucket)
            if held is None or _replaces(name, row, held[0]):
                out[bucket] = [row]
        return out


def _replaces(name: str, row: Sequence[Any], held: Sequence[Any]) -> bool:
    """Whether InfluxDB's reducer takes `row` over the point it holds (equal points: it keeps its own)."""
    value, time, held_value, held_time = float(row[1]), row[0], float(held[1]), held[0]
    if name == "min":
        return value < held_value or (value == held_value and time < held_time)
    if name == "max":
        return value > held_value or (value == held_value and time < held_time)
    if name == "first":
        return time < held_time or (time == held_time and value > held_value)
    return time > held_time or (time == held_time and value > held_value)  # last


@dataclass(frozen=True, slots=True)
class _WholeRange:
    """first()/last() beside fields without GROUP BY time, as InfluxDB 1.6 picks the point: of the shard
    group holding the first (last) point, the first two points its storage reads, the earlier (later),
    at equal times the larger value (storage.query_aggregates does the same without fields). With a tag
    beside it, InfluxDB reads the series in series key order (last(): from the last key); without, through
    its merge heap (columnar.edge_reads). Checked against influxd with up to five series."""

    rank: dict[int, int]  # series id -> place in series key order
    shard_ns: int
    tag_beside: bool

    def pick(self, last: bool, values: np.ndarray, times: np.ndarray, series: np.ndarray) -> int:
        edge = int(times.max() if last else times.min())
        shard_lo, shard_hi = shard_window(edge, edge + 1, self.shard_ns)
        in_shard = (times >= shard_lo) & (times < shard_hi)
        ends: dict[int, int] = {}
        for sid, time in zip(series[in_shard].tolist(), times[in_shard].tolist()):
            ends[sid] = max(ends.get(sid, time), time) if last else min(ends.get(sid, time), time)
        if self.tag_beside:
            keyed = sorted(ends, key=lambda sid: (self.rank.get(sid, len(self.rank)), sid), reverse=last)
            read = [sid for sid in keyed if ends[sid] == edge][:2]
        else:
            read = [sid for sid in columnar.edge_reads(self.rank, ends, last, 2) if ends[sid] == edge]
        at_edge = times == edge
        rows = [int(np.flatnonzero(at_edge & (series == sid))[0]) for sid in read]
        best = rows[0]
        for row in rows[1:]:  # the reducer takes a later point only for a larger value
            if values[row] > values[best]:
                best = row
        return best


def _picked_rows(
    statement: SelectStatement, call: Call, picked: dict[int, list[Sequence[Any]]], fields: list[str],
    tag_keys: list[str], starts: Sequence[int], start: int, epoch: str | None, deadline: float | None,
) -> list[list[Any]]:
    """The rows of one series: `picked` per bucket start (0 without GROUP BY time), `starts` the
    buckets of the answer."""
    interval = statement.group_by_time
    fill = statement.fill if statement.fill is not None else "null"
    own_time = interval is None or call.name in ("top", "bottom", "sample")
    # top(), bottom() and sample() answer their points only: no bucket of theirs is filled
    unfilled = interval is None or fill == "none" or call.name in ("top", "bottom", "sample")
    zone = _zone(statement)
    chosen = sorted(picked) if unfilled else list(starts)
    if statement.order_desc:
        chosen.reverse()
    out: list[list[Any]] = []
    for n, bucket in enumerate(chosen):
        if n % 1024 == 0:
            check_deadline(deadline)
        bucket_time = bucket if interval is not None else (start if start != MIN_TIME else 0)
        points = picked.get(bucket)
        if points is None:  # a bucket without a point: fill() gives every column
            value = float(fill) if isinstance(fill, float) else None
            out.append([format_time(bucket_time, epoch, zone), *([_cell(value) if value is not None else None] * len(statement.fields))])
            continue
        for row in points:
            named: dict[str, Any] = dict(zip(fields, row[1 : 1 + len(fields)]))
            named.update(zip(tag_keys, row[1 + len(fields) :]))
            cells = []
            for item in statement.fields:
                value = row[1] if item.expr is call else _point_value(item.expr, named, call, row[1])
                if value is None and isinstance(fill, float) and interval is not None:
                    value = fill  # InfluxDB fills the selected row's missing values too
                cells.append(_json_number(value) if isinstance(value, float) else value)
            out.append([format_time(row[0] if own_time else bucket_time, epoch, zone), *cells])
    if fill == "linear" and not unfilled:
        _interpolate_selector(out, chosen, picked, statement, call)
    if fill == "previous" and interval is not None:
        # InfluxDB carries every column: an empty bucket, and a field the picked point's row lacks, take the
        # column's value in the row before (in the answer's order).
        carried: list[Any] = [None] * len(statement.fields)
        for n, row in enumerate(out):
            if n % 1024 == 0:
                check_deadline(deadline)
            for column, value in enumerate(row[1:]):
                if value is None:
                    row[column + 1] = carried[column]
                else:
                    carried[column] = value
    return out


def _interpolate_selector(
    out: list[list[Any]], starts: list[int], picked: dict[int, list[Sequence[Any]]], statement: SelectStatement,
    call: Call,
) -> None:
    """fill(linear) beside fields: an empty bucket's selector value on the line between the buckets around
    it (InfluxDB's arithmetic: slope per ns times the ns since the earlier one); its other columns stay null.
    `out` holds one row per bucket of `starts` (their start times)."""
    columns = [n + 1 for n, item in enumerate(statement.fields) if item.expr is call]
    if not columns:
        return
    column = columns[0]
    known = sorted((bucket, float(picked[bucket][0][1])) for bucket in starts if bucket in picked)
    at = [bucket for bucket, _ in known]
    for index, row in zip(starts, out):
        if index in picked:
            continue
        k = bisect.bisect_left(at, index)
        if not 0 < k < len(at):
            continue
        (a, va), (b, vb) = known[k - 1], known[k]
        row[column] = _json_number((vb - va) / float(b - a) * float(index - a) + va)


def _point_value(expr: Expr, named: dict[str, Any], call: Call, selected: Any) -> Any:
    """A field's value on the selected point's row: a field or tag as stored, math on numbers."""
    if expr is call:
        return float(selected)
    if isinstance(expr, VarRef):
        value = named.get(expr.name)
        return None if isinstance(value, float) and math.isnan(value) else value
    if isinstance(expr, (IntegerLiteral, NumberLiteral)):
        return float(expr.value)
    if isinstance(expr, (BinaryExpr, Call)):
        args = [expr.lhs, expr.rhs] if isinstance(expr, BinaryExpr) else list(expr.args)
        values = [_point_value(arg, named, call, selected) for arg in args]
        if any(not isinstance(v, (int, float)) or isinstance(v, bool) for v in values):
            return None
        numbers = [float(v) for v in values]
        result = _arithmetic(expr.op, *numbers) if isinstance(expr, BinaryExpr) else _math(expr.name, numbers)
        result = float(result)
        return None if math.isnan(result) or math.isinf(result) else result
    return None
