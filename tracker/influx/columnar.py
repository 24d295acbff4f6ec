"""Raw SELECT answers built from samples as columns (tracker.storage.blocks) instead of SQLite rows.

Used where a SELECT reads fields and tags as stored, filtered by time and series only: the rows are
the SQL path's rows, value for value (whole-number floats as integers, NULL as None, times floored to
the epoch unit or as RFC 3339 text, (time, series) order, DESC, OFFSET and LIMIT), which the tests check
by comparing the two paths. All of it runs on query threads.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Iterable, Literal, Sequence

import numpy as np

from tracker.influx.workers import check_deadline
from tracker.retention import GO_ZERO_TIME_NS
from tracker.storage import EPOCH_NS, Columns, SeriesTags

Keep = frozenset[int] | Literal["all"]  # the series a filter keeps
_INT64_BOUND = 2.0**63  # whole floats from -2**63 up to (not including) this are written as integers


@dataclass(slots=True)
class RawAnswer:
    """The answer's rows, ready to be taken a batch at a time: `times` in the epoch unit (or RFC 3339 text), in answer
    order after OFFSET and LIMIT, and per output column its values (None: a field with no values)."""

    times: np.ndarray
    values: list[np.ndarray | None]

    def __len__(self) -> int:
        return len(self.times)

    def rows(self, start: int, stop: int, deadline: float | None) -> list[tuple[Any, ...]]:
        check_deadline(deadline)
        count = len(self.times[start:stop])
        columns: list[Iterable[Any]] = [self.times[start:stop].tolist()]
        for column in self.values:
            if column is None:
                columns.append(itertools.repeat(None, count))
            elif column.dtype == object:  # tag values, already as they are written
                columns.append(column[start:stop].tolist())
            else:
                columns.append(_json_values(column[start:stop]))
        return list(zip(*columns))


def raw_answer(
    columns: Columns,
    sources: Sequence[tuple[str, str]],
    series: SeriesTags,
    keep: Keep,
    epoch: str | None,
    descending: bool,
    limit: int | None,
    offset: int,
    order: SeriesOrder | None = None,
    deadline: float | None = None,
) -> RawAnswer:
    """`sources`: per output column ("field", name), ("tag", key) or ("null", "") (storage's
    column_source); `keep` the series to answer (a filter's only_series). Rows whose every field is
    empty are left out, as InfluxDB does. Rows of several series at one time come in InfluxDB's
    order where `order` is given (see merge_order), else in series id order."""
    fields = {name for kind, name in sources if kind == "field"}
    chosen = _chosen_rows(columns, fields, keep)
    if chosen is None:
        return RawAnswer(np.empty(0, dtype=np.int64), [None] * len(sources))
    if order is not None and len(chosen) > 1 and bool((np.diff(columns.times[chosen]) == 0).any()):
        needed = None if limit is None or offset_alone(limit, offset) else offset + limit
        chosen = chosen[merge_order(columns.times[chosen], columns.series[chosen], order, descending, deadline, needed)]
    elif descending:
        chosen = chosen[::-1]
    if order is not None and offset_alone(limit, offset):
        chosen = chosen[shard_firsts(columns.times[chosen], order.shard_ns, offset + 1)]
    chosen = chosen[offset : None if limit is None else offset + limit]
    times = columns.times[chosen]
    if epoch is None:
        times = _rfc3339(times)
    elif EPOCH_NS[epoch] != 1:
        times = times // EPOCH_NS[epoch]  # floors, as the SQL does for times before 1970
    values: list[np.ndarray | None] = []
    for kind, name in sources:
        if kind == "tag":
            # A tag's value per row: looked up once per series, then spread by index.
            ids, position = np.unique(columns.series[chosen], return_inverse=True)
            per_series = np.array([None] + [series.get(sid, {}).get(name) for sid in ids.tolist()], dtype=object)[1:]
            values.append(per_series[position])
        else:
            values.append(columns.fields[name][chosen] if kind == "field" and name in columns.fields else None)
    return RawAnswer(times, values)


def _rfc3339(times_ns: np.ndarray) -> np.ndarray:
    """Times as Go's RFC3339Nano writes them (the SQL path's text): the fraction without trailing
    zeros, none at all when whole."""
    seconds = times_ns // 1_000_000_000
    fraction = times_ns - seconds * 1_000_000_000
    text = np.datetime_as_string(seconds.astype("datetime64[s]"), unit="s")
    digits = np.char.rstrip(np.char.mod("%09d", fraction), "0")
    return np.char.add(text, np.where(fraction == 0, "Z", np.char.add(np.char.add(".", digits), "Z")))


def _chosen_rows(columns: Columns, fields: set[str], keep: Keep) -> np.ndarray | None:
    """Indexes of the rows of the kept series where any of `fields` has a value; None if none can."""
    present = [columns.fields[name] for name in sorted(fields) if name in columns.fields]
    if not present or (keep != "all" and not keep):
        return None
    has_value = ~np.isnan(present[0])
    for column in present[1:]:
        has_value |= ~np.isnan(column)
    if keep != "all":
        has_value &= np.isin(columns.series, np.fromiter(keep, dtype=np.int64, count=len(keep)))
    return np.flatnonzero(has_value)


def _json_values(column: np.ndarray) -> list[Any]:
    """Floats as Python values the way InfluxDB writes them: whole numbers as integers, NaN as None."""
    missing = np.isnan(column)
    whole = (column == np.trunc(column)) & (column >= -_INT64_BOUND) & (column < _INT64_BOUND)
    if whole.all():
        return column.astype(np.int64).tolist()  # type: ignore[no-any-return]
    if not whole.any() and not missing.any():
        return column.tolist()  # type: ignore[no-any-return]
    out = column.astype(object)
    if whole.any():
        out[whole] = column[whole].astype(np.int64).astype(object)
    if missing.any():
        out[missing] = None
    return out.tolist()  # type: ignore[no-any-return]


# GROUP BY time aggregates answered from columns: the SQL path's values bit for bit. SQLite (before
# 3.43) sums doubles one after the other from 0.0 in (time, series) order, and so do these; avg is
# that sum over the count, stddev the same two passes as storage's SQL (the mean, then the sum of
# squared differences from it). Later SQLite versions sum with
# compensation (Kahan-Babuska-Neumaier), so there the SQL path answers (see `aggregates_supported`).
COLUMN_AGGREGATES = frozenset({"mean", "sum", "count", "min", "max", "spread", "stddev"})
# Sequential sums take min(buckets, longest bucket) vectorized steps; past this, the SQL path answers.
MAX_SUM_STEPS = 4096


def aggregates_supported(calls: Sequence[tuple[str, str]], sqlite_version: tuple[int, int, int]) -> bool:
    return sqlite_version < (3, 43, 0) and all(fn in COLUMN_AGGREGATES for fn, _ in calls)


def bucket_aggregates(
    columns: Columns, calls: Sequence[tuple[str, str]], keep: Keep, interval_ns: int, offset_ns: int,
    deadline: float | None,
) -> dict[int, list[Any]] | None:
    """{bucket index: [value per call]} as storage.query_aggregates answers it for the kept series:
    only buckets where a field of the calls has a value; (function, "") calls, and calls with no value
    in a bucket (a count too), are None. None: too costly here, use SQL."""
    chosen = _chosen_rows(columns, {name for _, name in calls if name}, keep)
    if chosen is None or not len(chosen):
        return {}
    buckets = (columns.times[chosen] - offset_ns) // interval_ns
    starts = np.flatnonzero(np.r_[True, buckets[1:] != buckets[:-1]])
    lengths = np.diff(np.r_[starts, len(chosen)])
    if min(len(starts), int(lengths.max())) > MAX_SUM_STEPS:
        return None
    results: list[list[Any]] = []
    for fn, name in calls:
        check_deadline(deadline)
        if name not in columns.fields:
            results.append([None] * len(starts))
            continue
        results.append(_aggregate(fn, columns.fields[name][chosen], starts, lengths))
    return {index: [result[n] for result in results] for n, index in enumerate(buckets[starts].tolist())}


def _aggregate(fn: str, values: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> list[Any]:
    valid = ~np.isnan(values)
    count = np.add.reduceat(valid.astype(np.int64), starts)
    empty = count == 0
    if fn == "count":
        result: np.ndarray = count
    elif fn in ("min", "max", "spread"):
        low = np.fmin.reduceat(values, starts) if fn != "max" else None
        high = np.fmax.reduceat(values, starts) if fn != "min" else None
        result = low if high is None else high if low is None else high - low
    else:
        total = _sequential_sums(np.where(valid, values, 0.0), starts, lengths)
        if fn == "sum":
            result = total
        elif fn == "mean":
            with np.errstate(invalid="ignore", divide="ignore"):
                result = total / count
        else:  # stddev, as storage's SQL: the sample variance, -1.0 for one value
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.repeat(total / count, lengths)
                squares = _sequential_sums(np.where(valid, (values - mean) * (values - mean), 0.0), starts, lengths)
                result = np.where(count == 1, -1.0, squares / (count - 1))
    out = result.astype(object)
    out[empty] = None
    return out.tolist()  # type: ignore[no-any-return]


def _sequential_sums(values: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Per bucket, ((0.0 + v1) + v2) + ...: one value after the other, as SQLite's sum (a NULL adds 0.0,
    which changes no sum that starts from 0.0)."""
    sums = np.zeros(len(starts))
    if len(starts) <= int(lengths.max()):
        for n, (start, length) in enumerate(zip(starts.tolist(), lengths.tolist())):
            sums[n] = np.add.accumulate(np.r_[0.0, values[start : start + length]])[-1]
        return sums
    # Many short buckets: step j adds every bucket's j-th value (longest buckets first).
    order = np.argsort(-lengths, kind="stable")
    ordered_starts, ordered_lengths = starts[order], lengths[order]
    ordered_sums = np.zeros(len(starts))
    for j in range(int(lengths.max())):
        active = int(np.searchsorted(-ordered_lengths, -j, side="left"))  # buckets longer than j
        ordered_sums[:active] += values[ordered_starts[:active] + j]
    sums[order] = ordered_sums
    return sums


# Rows of several series at one time. InfluxDB 1.x merges a raw SELECT's series with a Go heap
# (container/heap) per shard, fed each series' points in series key order (reversed for DESC); its
# Less orders by time, then by the selected names' values while they are strings (tags; a field or a
# missing tag ends the comparison as "not less"), so equal rows come out in the heap's own order. The
# loop below replays that heap, row by row: it runs only where rows of several series share a time.


def offset_alone(limit: int | None, offset: int) -> bool:
    """A raw OFFSET without LIMIT: InfluxDB then keeps only the first OFFSET + 1 rows of each shard
    group before it skips OFFSET rows of the whole (so over one shard group, one row)."""
    return limit is None and offset > 0


def shard_firsts(times: np.ndarray, shard_ns: int, count: int) -> np.ndarray:
    """Positions of the first `count` rows of each shard group, `times` in the answer's order."""
    if not len(times):
        return np.empty(0, dtype=np.int64)
    shard = (times + GO_ZERO_TIME_NS % shard_ns) // shard_ns
    starts = np.flatnonzero(np.r_[True, shard[1:] != shard[:-1]])
    place = np.arange(len(times)) - np.repeat(starts, np.diff(np.r_[starts, len(times)]))
    return np.flatnonzero(place < count)


@dataclass(frozen=True, slots=True)
class SeriesOrder:
    """What InfluxDB's merge of series looks at: each series' place in series key order, its values
    of the selected tags that lead the sorted selected names (the heap's tie-break), and the shard
    group duration (each shard has a heap of its own)."""

    rank: dict[int, int]  # series id -> place, in series key order
    tie_keys: dict[int, tuple[str | None, ...]]
    shard_ns: int


def merge_order(times: np.ndarray, series: np.ndarray, order: SeriesOrder, descending: bool,
                deadline: float | None, needed: int | None = None) -> np.ndarray:  # fmt: skip
    """Positions of the rows (given in time order, ascending) in the order InfluxDB answers them; with
    `needed`, only that many first ones (OFFSET + LIMIT: the heap stops there)."""
    out: list[np.ndarray] = []
    done = 0
    # Shard groups start where Go's Time.Truncate puts them: multiples of their length since year 1.
    shard = (times + GO_ZERO_TIME_NS % order.shard_ns) // order.shard_ns
    cuts = np.flatnonzero(np.diff(shard)) + 1
    bounds = list(zip(np.r_[0, cuts].tolist(), np.r_[cuts, len(times)].tolist()))
    for lo, hi in reversed(bounds) if descending else bounds:
        if needed is not None and done >= needed:
            break
        check_deadline(deadline)
        part_times = times[lo:hi]
        if not bool((np.diff(part_times) == 0).any()):
            out.append(np.arange(lo, hi)[::-1] if descending else np.arange(lo, hi))
        elif len(np.unique(series[lo:hi])) == 2:
            out.append(lo + _two_series_merge(part_times, series[lo:hi], order, descending))
        else:
            left = None if needed is None else needed - done
            out.append(lo + _heap_merge(part_times, series[lo:hi], order, descending, deadline, left))
        done += len(out[-1])
    return np.concatenate(out) if out else np.empty(0, dtype=np.int64)


def edge_reads(rank: dict[int, int], ends: dict[int, int], last: bool, pops: int) -> list[int]:
    """The series whose points at a range's edge InfluxDB's storage reads first: its merge heap over the
    series (fed in series key order, `rank`; reversed for the last edge), each at its point nearest
    the edge (`ends`), popped `pops` times. Among equal times the heap's own order decides."""
    ids = sorted(ends, key=lambda sid: rank.get(sid, sid))
    by_time = sorted(range(len(ids)), key=lambda n: ends[ids[n]])  # merge_order's input: ascending time
    times = np.array([ends[ids[n]] for n in by_time], dtype=np.int64)
    series = np.array([ids[n] for n in by_time], dtype=np.int64)
    positions = _heap_merge(times, series, SeriesOrder(rank, {}, 0), last, None, pops)
    return series[positions].tolist()


def _tie_break(a: tuple[str | None, ...], b: tuple[str | None, ...], descending: bool) -> int:
    """-1 if the heap's Less puts a's row first at one time, 1 if b's, 0 if it cannot tell them apart."""
    for x, y in zip(a, b):
        if x is None or y is None:
            return 0
        if x != y:
            return -1 if (x > y if descending else x < y) else 1
    return 0


def _two_series_merge(times: np.ndarray, series: np.ndarray, order: SeriesOrder, descending: bool) -> np.ndarray:
    """_heap_merge for two series, without a loop per row. A heap of two holds one point while the
    other's next is pushed, and a push moves only a strictly smaller point up: at one time, the point
    that waited longer comes first, i.e. the one whose series' previous point came out first (a series'
    first point waited from the start; both first: the first series fed). Equal previous times were
    themselves such a tie: its winner wins again."""
    answer = np.arange(len(times))[::-1] if descending else np.arange(len(times))
    at = -times[answer] if descending else times[answer]  # ascending, in answer order
    in_answer = series[answer]
    first, second = sorted(set(in_answer.tolist()), key=lambda sid: order.rank.get(sid, sid), reverse=descending)
    tie = np.flatnonzero(at[1:] == at[:-1])  # rows tie and tie + 1 share a time
    if not len(tie):
        return answer
    decided = _tie_break(order.tie_keys.get(first, ()), order.tie_keys.get(second, ()), descending)
    if decided:
        winner = np.full(len(tie), first if decided < 0 else second)
    else:
        # Each row's series' previous time (or none), then per tie who waited longer.
        previous = np.zeros(len(at), dtype=np.int64)
        has_previous = np.zeros(len(at), dtype=bool)
        for sid in (first, second):
            rows = np.flatnonzero(in_answer == sid)
            previous[rows[1:]] = at[rows[:-1]]
            has_previous[rows[1:]] = True
        a, b = tie, tie + 1
        a_first = (~has_previous[a] & has_previous[b]) | (has_previous[a] & has_previous[b] & (previous[a] < previous[b]))
        b_first = (has_previous[a] & ~has_previous[b]) | (has_previous[a] & has_previous[b] & (previous[b] < previous[a]))
        neither = ~has_previous[a] & ~has_previous[b]
        winner = np.where(a_first, in_answer[a], np.where(b_first, in_answer[b], first))
        # Equal previous times: the previous tie's winner (carried forward).
        inherits = ~(a_first | b_first | neither)
        source = np.where(inherits, 0, np.arange(len(tie)))
        source = np.maximum.accumulate(source)
        winner = winner[source]
    swap = in_answer[tie] != winner
    out = answer.copy()
    out[tie[swap]], out[tie[swap] + 1] = answer[tie[swap] + 1], answer[tie[swap]]
    return out


def _heap_merge(times: np.ndarray, series: np.ndarray, order: SeriesOrder, descending: bool,
                deadline: float | None, needed: int | None) -> np.ndarray:  # fmt: skip
    ids = sorted(set(series.tolist()), key=lambda sid: order.rank.get(sid, sid), reverse=descending)
    by_series = np.argsort(series, kind="stable")  # each series' rows, in time order
    counts = np.bincount(np.searchsorted(np.unique(series), series))
    starts = dict(zip(np.unique(series).tolist(), np.r_[0, np.cumsum(counts)[:-1]].tolist()))
    lengths = dict(zip(np.unique(series).tolist(), counts.tolist()))
    time_list = times.tolist()
    # One heap item per series: [time, tie key, row positions, next index]
    items: list[list[Any]] = []
    for sid in ids:
        rows = by_series[starts[sid] : starts[sid] + lengths[sid]].tolist()
        if descending:
            rows.reverse()
        items.append([time_list[rows[0]], order.tie_keys.get(sid, ()), rows, 1])

    def less(a: list[Any], b: list[Any]) -> bool:
        if a[0] != b[0]:
            return bool(a[0] > b[0]) if descending else bool(a[0] < b[0])
        for x, y in zip(a[1], b[1]):
            if x is None or y is None:
                return False
            if x != y:
                return x > y if descending else x < y
        return False

    def down(heap: list[list[Any]], i: int, n: int) -> None:
        while True:
            j = 2 * i + 1
            if j >= n:
                return
            if j + 1 < n and less(heap[j + 1], heap[j]):
                j += 1
            if not less(heap[j], heap[i]):
                return
            heap[i], heap[j] = heap[j], heap[i]
            i = j

    heap = items
    for i in range(len(heap) // 2 - 1, -1, -1):  # heap.Init
        down(heap, i, len(heap))
    out = np.empty(len(times) if needed is None else min(needed, len(times)), dtype=np.int64)
    for n in range(len(out)):
        if n % 4096 == 0:
            check_deadline(deadline)
        last = len(heap) - 1  # heap.Pop: the root swapped to the end, sifted, taken
        heap[0], heap[last] = heap[last], heap[0]
        down(heap, 0, last)
        item = heap.pop()
        rows, k = item[2], item[3]
        out[n] = rows[k - 1]
        if k < len(rows):  # the series' next point, pushed (heap.Push: appended, sifted up)
            item[0], item[3] = time_list[rows[k]], k + 1
            heap.append(item)
            j = len(heap) - 1
            while j > 0:
                parent = (j - 1) // 2
                if not less(heap[j], heap[parent]):
                    break
                heap[parent], heap[j] = heap[j], heap[parent]
                j = parent
    return out
