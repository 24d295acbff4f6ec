"""Query reads: the SQL behind /query (InfluxQL SELECT and SHOW). Planning lives in
tracker.influx.select; this module only turns a small plan into SQL and streams rows back.
Rows come back as plain tuples with times already in the answer's unit and whole-number floats
already integers (both done in SQL), so the caller can hand batches to orjson untouched."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, Literal, Sequence

from tracker.retention import shard_window
from tracker.storage.connection import _bounded
from tracker.storage.samples import _FIELD_SET, SampleStore, _UserFile
from tracker.vocabulary import FIELD_KEYS


EPOCH_NS: dict[str, int] = {"ns": 1, "u": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
                            "m": 60_000_000_000, "h": 3_600_000_000_000}  # fmt: skip
SeriesTags = dict[int, dict[str, str]]  # series id -> its tags


@dataclass(frozen=True, slots=True)
class QueryColumn:
    """One output column of a raw read: a vocabulary field, a tag, or SQL-safe arithmetic on them.

    `sql` is built only by `field_sql`, `tag_sql` and `arithmetic_sql` below; `fields` are the
    vocabulary columns it reads (a row whose every read field is NULL is not returned).
    """

    sql: str
    params: tuple[Any, ...] = ()
    fields: tuple[str, ...] = ()
    tag: str | None = None  # the tag key, for a column that is a tag's value and nothing else


def field_sql(name: str) -> QueryColumn:
    if name not in _FIELD_SET:  # an unknown field has no value anywhere
        return QueryColumn("NULL")
    return QueryColumn(f"samples.{name}", (), (name,))


def column_source(column: QueryColumn) -> tuple[str, str] | None:
    """What a column is when it is no more than one value as stored: ("field", name), ("tag", key), or
    ("null", "") for one never set; None for arithmetic. Only such columns are answered from columns."""
    if column.sql == "NULL" and not column.params:
        return ("null", "")
    if column.tag is not None:
        return ("tag", column.tag)
    if len(column.fields) == 1 and column.sql == f"samples.{column.fields[0]}":
        return ("field", column.fields[0])
    return None


def tag_sql(key: str, series: SeriesTags) -> QueryColumn:
    """A tag's value per row, looked up from the series id (no join with `series` per row)."""
    pairs = [(sid, tags[key]) for sid, tags in series.items() if key in tags]
    if not pairs:
        return QueryColumn("NULL")
    whens = " ".join("WHEN ? THEN ?" for _ in pairs)
    return QueryColumn(f"CASE samples.series {whens} END", tuple(v for pair in pairs for v in pair), (), key)


def series_sql() -> QueryColumn:
    """The row's series id (to tell series apart where InfluxDB's order of them matters)."""
    return QueryColumn("samples.series")


def number_sql(value: float) -> QueryColumn:
    return QueryColumn("?", (value,))


def arithmetic_sql(op: str, lhs: QueryColumn, rhs: QueryColumn) -> QueryColumn:
    if op not in ("+", "-", "*", "/", "%"):
        raise ValueError(f"not an arithmetic operator: {op}")
    # Force float arithmetic: SQLite would divide two whole numbers as integers.
    sql = f"(1.0 * {lhs.sql} {op} {rhs.sql})"
    return QueryColumn(sql, lhs.params + rhs.params, lhs.fields + rhs.fields)


@dataclass(frozen=True, slots=True)
class QueryFilter:
    """A WHERE remainder compiled to SQL over `samples` (tags already resolved to series ids)."""

    sql: str = "1"
    params: tuple[Any, ...] = ()
    # What the filter keeps when that is decided by the series alone: every series (the filter "1"),
    # or those ids. None: it looks at values too. Lets samples as columns answer tag filters.
    only_series: frozenset[int] | None | Literal["all"] = None


KEEP_ALL = QueryFilter("1", (), "all")
KEEP_NONE = QueryFilter("0", (), frozenset())


def series_in(ids: Sequence[int]) -> QueryFilter:
    if not ids:
        return KEEP_NONE
    return QueryFilter(f"samples.series IN ({', '.join(str(int(i)) for i in ids)})", (), frozenset(int(i) for i in ids))


def compare_sql(op: str, lhs: QueryColumn, rhs: QueryColumn) -> QueryFilter:
    if op not in ("=", "!=", "<", "<=", ">", ">="):
        raise ValueError(f"not a comparison operator: {op}")
    return QueryFilter(f"({lhs.sql} {op} {rhs.sql})", lhs.params + rhs.params, None)


def combine_filters(op: str, lhs: QueryFilter, rhs: QueryFilter) -> QueryFilter:
    if op not in ("AND", "OR"):
        raise ValueError(f"not a boolean operator: {op}")
    return QueryFilter(f"({lhs.sql} {op} {rhs.sql})", lhs.params + rhs.params, _combined_series(op, lhs, rhs))


def _combined_series(op: str, lhs: QueryFilter, rhs: QueryFilter) -> frozenset[int] | None | Literal["all"]:
    a, b = lhs.only_series, rhs.only_series
    if a is None or b is None:
        return None
    if a == "all" or b == "all":
        return b if op == "AND" and a == "all" else a if op == "AND" else "all"
    return a & b if op == "AND" else a | b


def _time_sql(epoch: str | None) -> str:
    """`samples.time` as the answer wants it: floor-divided to the epoch unit, or RFC 3339 text like
    Go's RFC3339Nano (fraction without trailing zeros, none at all when whole)."""
    if epoch is not None:
        div = EPOCH_NS[epoch]
        return "samples.time" if div == 1 else f"(samples.time / {div} - (samples.time % {div} < 0))"
    sec = "(samples.time / 1000000000 - (samples.time % 1000000000 < 0))"
    frac = f"(samples.time - {sec} * 1000000000)"
    return (
        f"strftime('%Y-%m-%dT%H:%M:%S', {sec}, 'unixepoch') || "
        f"CASE WHEN {frac} = 0 THEN 'Z' ELSE '.' || rtrim(substr({frac} + 1000000000, 2), '0') || 'Z' END"
    )


def _whole_as_integer(sql: str) -> str:
    # InfluxDB writes a whole-number float as `145`; doing it here keeps Python off the rows.
    return f"CASE WHEN {sql} = CAST({sql} AS INTEGER) THEN CAST({sql} AS INTEGER) ELSE {sql} END"


async def query_series(store: SampleStore, user: str) -> SeriesTags:
    handle = store._existing_file(user)
    if handle is None:
        return {}
    rows = await _query_fetchall(store, handle, "SELECT id, tags FROM series ORDER BY id", ())
    return {sid: dict(json.loads(tags)) for sid, tags in rows}


async def query_series_between(
    store: SampleStore, user: str, windows: Sequence[tuple[int, int]], deadline: float | None = None
) -> list[set[int]]:
    """Per [lo, hi) window, the series with samples in it (what an InfluxDB shard of that window
    would know). One scan of each window."""
    handle = store._existing_file(user)
    if handle is None:
        return [set() for _ in windows]
    out = []
    for lo, hi in windows:
        rows = await _query_fetchall(
            store, handle, "SELECT DISTINCT series FROM samples WHERE time >= ? AND time < ?", (lo, hi), deadline
        )
        out.append({sid for (sid,) in rows})
    return out


async def query_time_span(store: SampleStore, user: str, start_ns: int, end_ns: int) -> tuple[int, int] | None:
    """The first and last sample times in [start, end), None if there is none (two primary-key seeks)."""
    handle = store._existing_file(user)
    if handle is None:
        return None
    (lowest, highest), = await _query_fetchall(
        store, handle, "SELECT min(time), max(time) FROM samples WHERE time >= ? AND time < ?", (start_ns, end_ns)
    )
    return None if lowest is None else (lowest, highest)


def time_ranges(ranges: Sequence[tuple[int, int]]) -> QueryFilter:
    """Samples in any of these [lo, hi) time ranges."""
    if not ranges:
        return KEEP_NONE
    sql = " OR ".join("(samples.time >= ? AND samples.time < ?)" for _ in ranges)
    return QueryFilter(f"({sql})", tuple(n for pair in ranges for n in pair), None)


async def query_has_samples(store: SampleStore, user: str) -> bool:
    handle = store._existing_file(user)
    if handle is None:
        return False
    rows = await _query_fetchall(store, handle, "SELECT EXISTS (SELECT 1 FROM samples)", ())
    return bool(rows[0][0])


async def query_field_keys(
    store: SampleStore, user: str, start_ns: int | None = None, end_ns: int | None = None, deadline: float | None = None
) -> list[str]:
    """Vocabulary fields with a value in the file (SHOW FIELD KEYS), or in [start, end) (SELECT *).

    Fields are only ever added to a file by writes, so what was found is kept per open file (and per
    range), and only the fields not yet seen are looked for again, once the file changed (PRAGMA
    data_version): a repeated SELECT * over a day costs no extra scan. A deletion (in any process)
    starts it afresh.
    """
    handle = store._existing_file(user)
    if handle is None:
        return []
    known: tuple[tuple[int, int], dict[tuple[int, int] | None, set[str]], set[tuple[int, int] | None]] | None = getattr(
        handle, "query_fields", None
    )
    version, deletions = (
        await _query_fetchall(
            store, handle, "SELECT (SELECT data_version FROM pragma_data_version()), (SELECT generation FROM sample_deletions)", ()
        )
    )[0]
    if known is None or known[0] != (version, deletions):
        kept = known is not None and known[0][1] == deletions  # what was found stays found, until a deletion
        known = ((version, deletions), known[1] if kept and known is not None else {}, set())
    found_in, probed = known[1], known[2]
    handle.query_fields = known  # type: ignore[attr-defined]  # lives and dies with the open file
    key = None if start_ns is None or end_ns is None else (start_ns, end_ns)
    if key not in found_in and len(found_in) > 64:  # now()-relative ranges differ every time; keep the memo small
        found_in.clear()
        probed.clear()  # a range forgotten is looked at again
    found = found_in.setdefault(key, set())
    missing = [name for name in FIELD_KEYS if name not in found]
    if missing and key not in probed:
        where, params = ("", ()) if key is None else (" AND time >= ?1 AND time < ?2", key)
        found.update(await _fields_with_values(store, handle, missing, where, params, deadline))
        probed.add(key)
    return [name for name in FIELD_KEYS if name in found]


async def _fields_with_values(
    store: SampleStore, handle: _UserFile, fields: list[str], where: str, params: tuple[Any, ...], deadline: float | None
) -> set[str]:
    if not fields:
        return set()
    # Usually none of the fields not found before has come: one scan says so (a probe per field
    # would scan once per absent field).
    any_value = " OR ".join(f"{key} IS NOT NULL" for key in fields)
    sql = f"SELECT EXISTS (SELECT 1 FROM samples WHERE ({any_value}){where})"
    if not (await _query_fetchall(store, handle, sql, params, deadline))[0][0]:
        return set()
    # One probe per field: a present one stops at its first row.
    probes = ", ".join(f"EXISTS (SELECT 1 FROM samples WHERE {key} IS NOT NULL{where})" for key in fields)
    found = (await _query_fetchall(store, handle, f"SELECT {probes}", params, deadline))[0]
    return {key for key, hit in zip(fields, found) if hit}


async def query_raw(
    store: SampleStore,
    user: str,
    *,
    start_ns: int,
    end_ns: int,
    columns: Sequence[QueryColumn],
    where: QueryFilter = QueryFilter(),
    epoch: str | None = None,
    descending: bool = False,
    limit: int | None = None,
    offset: int = 0,
    batch: int = 5000,
    deadline: float | None = None,
    with_series: bool = False,
) -> AsyncIterator[list[tuple[Any, ...]]]:
    """Rows of (time, *columns) in time order, in batches, streamed through one cursor.

    Rows at the same time come in series id order. `with_series` adds two columns at the end: the
    time in ns and the series id (for the caller to order rows at one time as InfluxDB).

    Rows whose read fields are all NULL are skipped (InfluxDB's raw SELECT does not return them).
    Whole-number values come back as integers (SQLite does that without holding the GIL).
    Past `deadline` (time.monotonic()) the statement is interrupted: QueryTimeout.
    """
    handle = store._existing_file(user)
    read_fields = sorted({name for column in columns for name in column.fields})
    if handle is None or not read_fields:
        return
    any_value = " OR ".join(f"samples.{name} IS NOT NULL" for name in read_fields)
    select = ", ".join(_whole_as_integer(c.sql) if c.fields else c.sql for c in columns)
    if with_series:
        select += ", samples.time, samples.series"
    order = "DESC" if descending else "ASC"
    sql = (
        f"SELECT {_time_sql(epoch)}, {select} FROM samples "
        f"WHERE samples.time >= ? AND samples.time < ? AND ({any_value}) AND {where.sql} "
        f"ORDER BY samples.time {order}, samples.series {order} LIMIT ? OFFSET ?"
    )
    # _whole_as_integer writes each expression four times, so its parameters are bound as often.
    params: list[Any] = []
    for c in columns:
        params.extend(c.params * (4 if c.fields else 1))
    params += [start_ns, end_ns, *where.params, -1 if limit is None else limit, offset]
    async with store._reading(handle) as conn:
        async with conn.execute(sql, _bounded(params, deadline)) as cursor:
            while rows := await cursor.fetchmany(batch):
                yield rows  # type: ignore[misc]


# Aggregates done with one SQL aggregate each; the others take a query of their own. A count over no
# values is NULL, as every other aggregate's: InfluxDB answers no count there, not 0 (fill(null) turns
# it into 0 only in a series that has values of that field somewhere in the range).
_SQL_AGGREGATES = {
    "mean": "avg({0})",
    "min": "min({0})",
    "max": "max({0})",
    "sum": "sum({0})",
    "count": "nullif(count({0}), 0)",
    "spread": "max({0}) - min({0})",
}
# Selectors: (value, time) of one point per bucket, with InfluxDB's ties. Per GROUP BY time bucket its
# reducers (FloatFirstReduce ... FloatMaxReduce) decide: first/last the bucket's first/last time, and
# there the larger value (min/max of buckets need no time: _SQL_AGGREGATES). Without GROUP BY time,
# min/max as this ORDER BY (the value, then the earliest time); first/last see _first_or_last.
_SELECTORS = frozenset({"first", "last", "min", "max"})
_SELECTOR_TIMES = {"first": "min", "last": "max"}
_MIN_MAX_ORDER = {"min": "{0} ASC, samples.time ASC", "max": "{0} DESC, samples.time ASC"}
# first()/last() of a whole range: given each series' time nearest that edge, whether it is the last
# edge, and how many points InfluxDB's storage reads there, the series it reads them from (its merge
# heap's order; tracker.influx.columnar.edge_reads replays it).
EdgeReads = Callable[[dict[int, int], bool, int], Sequence[int]]


# GROUP BY time over a few buckets: GROUP BY on a computed bucket number makes SQLite sort every row
# in a temp B-tree (most of a day query's time). Walking the buckets instead and reading each one
# with a primary-key range scans the rows already in time order, no sort, but once per aggregate
# and with a few lookups per bucket, so it is only used where that clearly costs less: few buckets,
# and one scan, or two over every row in range (a tag or field filter shrinks what the sort costs
# but not what each scan costs, so filtered reads walk with one aggregate only).
_WALK_MAX_BUCKETS = 4096
_WALK_MAX_SCANS = 2
_WALK_MAX_SCANS_FILTERED = 1
_INT64 = (-(2**63), 2**63 - 1)


@dataclass(frozen=True, slots=True)
class _BucketWalk:
    first: int  # bucket indexes first..last
    last: int
    first_lo: int  # the first bucket's [lo, hi), already clamped to [start, end)
    first_hi: int
    interval_ns: int
    end_ns: int


def _bucket_walk(
    start_ns: int, end_ns: int, interval_ns: int | None, offset_ns: int, scans: int, filtered: bool
) -> _BucketWalk | None:
    max_scans = _WALK_MAX_SCANS_FILTERED if filtered else _WALK_MAX_SCANS
    if interval_ns is None or interval_ns <= 0 or scans > max_scans or start_ns >= end_ns:
        return None
    first = (start_ns - offset_ns) // interval_ns
    last = (end_ns - 1 - offset_ns) // interval_ns
    if last - first + 1 > _WALK_MAX_BUCKETS:
        return None
    lowest, highest = first * interval_ns + offset_ns, (last + 1) * interval_ns + offset_ns
    if lowest < _INT64[0] or highest > _INT64[1]:  # SQLite would turn an overflowing bound into a float
        return None
    lo = max(lowest, start_ns)
    return _BucketWalk(first, last, lo, min(lowest + interval_ns, end_ns), interval_ns, end_ns)


def _per_bucket_sql(
    simple: Sequence[tuple[int, str, str]], walk: _BucketWalk, where: QueryFilter, any_value: str
) -> tuple[str, tuple[Any, ...]]:
    """The GROUP BY time aggregate as one correlated subquery per aggregate over each bucket's time
    range; the same rows per bucket as the GROUP BY form, and only buckets that hold any."""
    rows = f"FROM samples WHERE samples.time >= buckets.lo AND samples.time < buckets.hi AND {where.sql} AND ({any_value})"
    exprs: list[str] = []
    params: list[Any] = [walk.first, walk.first_lo, walk.first_hi, walk.interval_ns, walk.end_ns, walk.last]
    for _, fn, col in simple:
        if col in _FIELD_SET:
            exprs.append(f"(SELECT {_SQL_AGGREGATES[fn].format(f'samples.{col}')} {rows})")
            params.extend(where.params)
        else:
            exprs.append("NULL")
    params.extend(where.params)
    sql = (
        "WITH RECURSIVE buckets(b, lo, hi) AS (SELECT ?, ?, ? "
        "UNION ALL SELECT b + 1, hi, min(hi + ?, ?) FROM buckets WHERE b < ?) "
        f"SELECT b, {', '.join(exprs)} FROM buckets WHERE EXISTS (SELECT 1 {rows})"
    )
    return sql, tuple(params)


async def query_aggregates(
    store: SampleStore,
    user: str,
    *,
    start_ns: int,
    end_ns: int,
    calls: Sequence[tuple[str, str]],
    where: QueryFilter = QueryFilter(),
    interval_ns: int | None = None,
    offset_ns: int = 0,
    point_times: bool = False,
    edge_reads: EdgeReads | None = None,
    shard_ns: int = 0,
    deadline: float | None = None,
) -> dict[int, list[Any]]:
    """{bucket index: [value per call]} for the buckets holding data; `calls` are (function, field).

    Bucket index = floor((time - offset) / interval), floored correctly for negative times; with no
    interval everything is bucket 0. Values: numbers (None where a call has no values in the bucket, a
    count too), stddev as the sample variance (the caller takes the root), -1.0 for one value (InfluxDB
    answers a point without a value there, which fill() leaves alone). With
    `point_times`, selectors (first/last/min/max) give (value, time of that point).
    `edge_reads` (InfluxDB's merge of the series) and `shard_ns` (its shard group duration) decide
    first() and last() without GROUP BY time (_first_or_last).
    Memory: one entry per non-empty bucket, i.e. no more than the answer holds.
    Past `deadline` (time.monotonic()) the running statement is interrupted: QueryTimeout.
    """
    handle = store._existing_file(user)
    if handle is None or not calls:
        return {}
    bucket = "0"
    bucket_params: tuple[Any, ...] = ()
    if interval_ns is not None:
        bucket = "((samples.time - ?) / ? - ((samples.time - ?) % ? < 0))"
        bucket_params = (offset_ns, interval_ns, offset_ns, interval_ns)
    base_where = f"samples.time >= ? AND samples.time < ? AND {where.sql}"
    base_params = (start_ns, end_ns, *where.params)
    out: dict[int, list[Any]] = {}

    def slot(index: int) -> list[Any]:
        row = out.get(index)
        if row is None:
            row = out[index] = [None] * len(calls)
        return row

    async with store._reading(handle) as conn:
        simple = [(i, fn, col) for i, (fn, col) in enumerate(calls) if fn in _SQL_AGGREGATES
                  and not (point_times and fn in _SELECTORS)]  # fmt: skip
        used = [col for _, _, col in simple if col in _FIELD_SET]
        if simple and used:
            exprs = ", ".join(
                _SQL_AGGREGATES[fn].format(f"samples.{col}") if col in _FIELD_SET else "NULL" for _, fn, col in simple
            )
            any_value = " OR ".join(f"samples.{c} IS NOT NULL" for c in sorted(set(used)))
            walk = _bucket_walk(start_ns, end_ns, interval_ns, offset_ns, len(used), filtered=where.sql != "1")
            if walk is not None:
                sql, params = _per_bucket_sql(simple, walk, where, any_value)
            else:
                sql = f"SELECT {bucket} AS b, {exprs} FROM samples WHERE {base_where} AND ({any_value}) GROUP BY b"
                params = (*bucket_params, *base_params)
            async with conn.execute(sql, _bounded(params, deadline)) as cursor:
                while rows := await cursor.fetchmany(5000):
                    for b, *values in rows:
                        row = slot(b)
                        for (i, _, _), value in zip(simple, values):
                            row[i] = value
        for i, (fn, col) in enumerate(calls):
            if col not in _FIELD_SET or (fn in _SQL_AGGREGATES and not (point_times and fn in _SELECTORS)):
                continue
            column = f"samples.{col}"
            params = (*bucket_params, *base_params)
            if fn in _SELECTOR_TIMES and interval_ns is None:
                picked = await _first_or_last(
                    conn, fn == "last", column, base_where, base_params, where, edge_reads, shard_ns, deadline
                )  # fmt: skip
                if picked is not None:
                    slot(0)[i] = picked
                continue
            if fn in _MIN_MAX_ORDER and interval_ns is None:
                sql = (
                    f"SELECT 0, {column}, samples.time FROM samples WHERE {base_where} AND {column} IS NOT NULL "
                    f"ORDER BY {_MIN_MAX_ORDER[fn].format(column)} LIMIT 1"
                )
            elif fn == "stddev":
                # Two passes, as InfluxDB's reducer: each bucket's mean first, then the sum of squared
                # differences from it over the bucket's rows (a primary-key range from its first to its
                # last time). sum(x*x) - sum(x)^2/n would cancel away the digits of a small spread.
                sql = (
                    f"WITH means AS (SELECT {bucket} AS b, min(samples.time) AS lo, max(samples.time) AS hi, "
                    f"avg({column}) AS m, count({column}) AS n FROM samples WHERE {base_where} AND {column} IS NOT NULL "
                    "GROUP BY b) "
                    f"SELECT b, CASE WHEN n > 1 THEN (SELECT sum(({column} - means.m) * ({column} - means.m)) "
                    f"FROM samples WHERE samples.time >= means.lo AND samples.time <= means.hi AND {where.sql} "
                    f"AND {column} IS NOT NULL) / (n - 1) ELSE -1.0 END FROM means"
                )
                params += where.params
            elif fn in _SELECTOR_TIMES:  # min/max of buckets need no time: they are _SQL_AGGREGATES
                sql = (
                    f"SELECT picked.b, max({column}), picked.t FROM (SELECT {bucket} AS b, "
                    f"{_SELECTOR_TIMES[fn]}(samples.time) AS t FROM samples WHERE {base_where} AND {column} IS NOT NULL "
                    f"GROUP BY b) AS picked JOIN samples ON samples.time = picked.t "
                    f"WHERE {where.sql} AND {column} IS NOT NULL GROUP BY picked.b"
                )
                params += where.params
            elif fn == "median":  # the middle value, or the mean of the two middle ones
                sql = (
                    "SELECT b, avg(v) FROM (SELECT b, v, row_number() OVER (PARTITION BY b ORDER BY v) AS n, "
                    "count(*) OVER (PARTITION BY b) AS total FROM "
                    f"(SELECT {bucket} AS b, {column} AS v FROM samples WHERE {base_where} AND {column} IS NOT NULL)) "
                    "WHERE n IN ((total + 1) / 2, (total + 2) / 2) GROUP BY b"
                )
            else:
                raise ValueError(f"unknown aggregate {fn}")
            async with conn.execute(sql, _bounded(params, deadline)) as cursor:
                while rows := await cursor.fetchmany(5000):
                    for row in rows:
                        slot(row[0])[i] = (row[1], row[2]) if fn in _SELECTORS else row[1]
    return out


async def _first_or_last(
    conn: Any, last: bool, column: str, base_where: str, base_params: tuple[Any, ...], where: QueryFilter,
    edge_reads: EdgeReads | None, shard_ns: int, deadline: float | None,
) -> tuple[Any, int] | None:
    """first()/last() without GROUP BY time as InfluxDB 1.6 answers it: its storage reads, of the shard
    group holding the first (last) point, the first two points (a limit of one, and its limit iterator
    reads one more) of a heap merging the series by time alone, put in series key order (reversed for
    last()); the reducer keeps the earlier (later) one, at equal times the larger value. (value, time),
    or None: no point. Checked against influxd with up to five series, some missing at the edge. Without
    `edge_reads`, every series at the edge counts."""
    order = "DESC" if last else "ASC"
    sql = f"SELECT samples.time FROM samples WHERE {base_where} AND {column} IS NOT NULL ORDER BY samples.time {order} LIMIT 1"
    async with conn.execute(sql, _bounded(base_params, deadline)) as cursor:
        found = await cursor.fetchone()
    if found is None:
        return None
    edge = int(found[0])
    shard_lo, shard_hi = shard_window(edge, edge + 1, shard_ns) if edge_reads is not None else (edge, edge + 1)
    sql = (
        f"SELECT samples.series, {'max' if last else 'min'}(samples.time) FROM samples WHERE {base_where} "
        f"AND {column} IS NOT NULL AND samples.time >= ? AND samples.time < ? GROUP BY samples.series"
    )
    async with conn.execute(sql, _bounded((*base_params, shard_lo, shard_hi), deadline)) as cursor:
        ends = dict(await cursor.fetchall())
    read = edge_reads(ends, last, 2) if edge_reads is not None else ends
    chosen = [sid for sid in read if ends[sid] == edge]
    marks = ", ".join("?" for _ in chosen)
    sql = (
        f"SELECT max({column}) FROM samples WHERE samples.time = ? AND samples.series IN ({marks}) "
        f"AND {where.sql} AND {column} IS NOT NULL"
    )
    async with conn.execute(sql, _bounded((edge, *chosen, *where.params), deadline)) as cursor:
        value = (await cursor.fetchone())[0]
    return value, edge


async def _query_fetchall(
    store: SampleStore, handle: _UserFile, sql: str, params: Sequence[Any], deadline: float | None = None
) -> list[tuple[Any, ...]]:
    async with store._reading(handle) as conn:
        return list(await conn.execute_fetchall(sql, _bounded(params, deadline)))  # type: ignore[arg-type]

