"""Running parsed InfluxQL statements against one user's samples: planning, fill, aggregation glue.

Every statement runs as an async iterator of (SeriesHeader, rows) pairs: consecutive pairs with the
same header object belong to one series, and rows arrive in batches straight from SQLite, so the
HTTP layer can stream them without holding the whole answer. A problem that InfluxDB reports inside
the statement's result (status 200) is raised as StatementError.

All SQL lives in tracker.storage; this module decides what to ask for and shapes the answer.
"""

from __future__ import annotations

import bisect
import functools
import math
import re
import sqlite3
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable, Sequence, TypeVar

import numpy as np

from tracker import storage
from tracker.influx import columnar, timebuckets
from tracker.influx.timebuckets import format_time
from tracker.influx.influxql import (
    MAX_TIME,
    MIN_TIME,
    BinaryExpr,
    BooleanLiteral,
    Call,
    CreateDatabase,
    DeleteStatement,
    Expr,
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
    Statement,
    StringLiteral,
    UnsupportedStatement,
    VarRef,
    Wildcard,
    time_range,
)
from tracker.influx.workers import QueryWorkers, check_deadline, past
from tracker.retention import (
    DEFAULT_RETENTION_POLICY,
    RETENTION_POLICY_NAMES,
    format_duration,
    shard_group_duration,
    shard_window,
)
from tracker.storage import QueryColumn, QueryFilter, SampleStore, SeriesTags
from tracker.vocabulary import FIELD_KEYS, MEASUREMENT

QUERY_TIMEOUT = "query-timeout limit exceeded"  # InfluxDB's words, which Grafana shows as they are
_FIELDS = frozenset(FIELD_KEYS)
_SELECTORS = frozenset({"first", "last", "min", "max"})
# Loops over series or buckets look at the query's deadline this often (a few hundred microseconds).
_DEADLINE_EVERY = 1024

Row = Sequence[Any]
# A bucket's aggregate that InfluxDB answers as a point without a value (stddev of one value): written
# null like a missing one, but fill() leaves it, and fill(previous) carries it on as null.
NO_VALUE: Any = type("NoValue", (), {"__repr__": lambda self: "NO_VALUE"})()
T = TypeVar("T")


class StatementError(Exception):
    """Reported inside the statement's result, with status 200, as InfluxDB does for execution errors."""


@dataclass(slots=True)
class SeriesHeader:
    name: str | None
    columns: list[str]
    tags: dict[str, str] | None = None


Output = AsyncIterator[tuple[SeriesHeader, list[Row]]]


async def _keeps_everything(database: str) -> int:
    return 0


@dataclass(slots=True)
class Context:
    store: SampleStore
    workers: QueryWorkers  # where the Python work on series and buckets runs, off the event loop
    user: str
    readable: list[str]  # databases this user may read (own first)
    default_db: str  # the `db` parameter ("" if absent)
    default_rp: str  # the `rp` parameter
    epoch: str | None  # None: RFC 3339 strings
    now_ns: int
    batch: int = 5000  # rows per fetch from SQLite
    retention_ns: Callable[[str], Awaitable[int]] = _keeps_everything  # a database's retention, 0 = forever
    deadline: float | None = None  # time.monotonic() past which the query stops (query-timeout)
    max_points: int = 0  # rows one SELECT may return (InfluxDB's max-select-point); 0: no limit
    max_buckets: int = 0  # GROUP BY time buckets one SELECT may make, all series together; 0: no limit
    columnar: bool = True  # answer what can be from samples as columns (tests turn it off to compare)
    # fill(null) makes count() of an empty bucket 0, as InfluxDB answers; inside a subquery it stays null
    count_fill_zero: bool = True

    def past_deadline(self) -> bool:
        return past(self.deadline)

    async def offload(self, work: Callable[..., T], *args: Any) -> T:
        """`work(*args)` on a query thread (this user's share of them); past the deadline, the timeout
        as the statement's error (whether no thread came free in time or the work itself stopped)."""
        try:
            return await self.workers.run(self.user, self.deadline, work, *args)
        except storage.QueryTimeout:
            raise StatementError(QUERY_TIMEOUT) from None


def statement_database(statement: Statement, default_db: str) -> str | None:
    """The database a statement reads: its own "db". prefix or ON clause, else the `db` parameter."""
    if isinstance(statement, (ShowDatabases, CreateDatabase, UnsupportedStatement)):
        return None
    sources: list[Source] = []
    if isinstance(statement, SelectStatement):
        sources = statement.sources
    elif isinstance(statement, (ShowFieldKeys, ShowTagKeys, ShowTagValues, ShowSeries)):
        sources = statement.from_
    inner = next((source.query for source in sources if source.query is not None), None)
    if inner is not None:  # FROM (SELECT ...): the database the innermost statement reads
        return statement_database(inner, default_db)
    explicit = getattr(statement, "database", None) or next((s.database for s in sources if s.database), None)
    return explicit or default_db or None


async def execute(statement: Statement, ctx: Context) -> Output:
    if ctx.past_deadline():
        raise StatementError(QUERY_TIMEOUT)
    if isinstance(statement, ShowDatabases):
        yield SeriesHeader("databases", ["name"]), [[name] for name in ctx.readable]
        return
    if isinstance(statement, CreateDatabase):
        return  # authorized (own database) by the caller: it exists already, nothing to do
    if isinstance(statement, UnsupportedStatement):
        raise StatementError(f"statement not supported by Tracker: {statement.keyword}")
    database = statement_database(statement, ctx.default_db)
    if database is None:
        raise StatementError("database name required")
    if isinstance(statement, ShowRetentionPolicies):
        # One policy, autogen, lasting the user's retention (InfluxDB shows forever as 0s).
        duration = await ctx.retention_ns(database)
        shard_group = shard_group_duration(duration)
        yield SeriesHeader(None, ["name", "duration", "shardGroupDuration", "replicaN", "default"]), [
            [DEFAULT_RETENTION_POLICY, format_duration(duration), format_duration(shard_group), 1, True]
        ]
        return
    if isinstance(statement, SelectStatement):
        runner: Callable[..., Output] = _select
    elif isinstance(statement, ShowMeasurements):
        runner = _show_measurements
    elif isinstance(statement, ShowFieldKeys):
        runner = _show_field_keys
    elif isinstance(statement, ShowTagKeys):
        runner = _show_tag_keys
    elif isinstance(statement, ShowTagValues):
        runner = _show_tag_values
    elif isinstance(statement, ShowSeries):
        runner = _show_series
    elif isinstance(statement, DeleteStatement):
        runner = _delete
    else:  # pragma: no cover - every parsed statement type is handled above
        raise StatementError(f"statement not supported by Tracker: {type(statement).__name__}")
    limit = ctx.max_points if isinstance(statement, SelectStatement) else 0
    count = 0
    try:
        async for header, rows in runner(statement, database, ctx):
            if ctx.past_deadline():
                raise StatementError(QUERY_TIMEOUT)
            count += len(rows)
            if limit and count > limit:
                raise StatementError(f"max-select-point limit exceeed: ({count}/{limit})")  # sic, InfluxDB's text
            yield header, rows
    except storage.QueryTimeout:  # SQLite interrupted the statement, or Python work stopped, at the deadline
        raise StatementError(QUERY_TIMEOUT) from None


# ---------------------------------------------------------------------------------------------
# SELECT


def _reads_samples(sources: Sequence[Source], default_rp: str) -> bool:
    """True if a source names our one measurement; an unknown retention policy is an error."""
    hit = False
    for source in sources:
        rp = source.retention_policy or default_rp
        if rp not in RETENTION_POLICY_NAMES:
            raise StatementError(f"retention policy not found: {rp}")
        if source.regex is not None:
            hit = hit or source.regex.compiled.search(MEASUREMENT) is not None
        else:
            hit = hit or source.name == MEASUREMENT
    return hit


async def _select(statement: SelectStatement, database: str, ctx: Context) -> Output:
    if statement.compile_error is not None:
        raise StatementError(statement.compile_error)
    # Imported here: the functions module builds on this one (buckets, fill, time format).
    from tracker.influx import functions

    if statement.sources[0].query is not None:  # FROM (SELECT ...): over the inner answer's rows
        async for item in functions.select_subquery(statement, database, ctx):
            yield item
        return
    if not _reads_samples(statement.sources, ctx.default_rp):
        return  # another measurement: empty result, as InfluxDB answers for unknown measurements
    try:
        start, end, rest = time_range(statement.condition, ctx.now_ns)
    except QueryParseError as exc:  # already checked at parse time; kept for safety
        raise StatementError(exc.message) from None
    if start >= end:
        return
    series = await storage.query_series(ctx.store, database)
    if not series:
        return
    # Matching tag conditions (regexes included) against every series is work the user controls.
    plan = await ctx.offload(_plan, statement, rest, series, ctx.deadline)
    if functions.has_wildcard_calls(statement):  # count(*), mean(/regex/): one call per field in range
        fields = await storage.query_field_keys(ctx.store, database, start, end, ctx.deadline)
        statement = functions.expand_wildcards(statement, fields)
        if not statement.fields:
            return
    if statement.needs_functions or functions.fills_like_influxdb(statement):
        runner = functions.select_functions(statement, database, ctx, start, end, plan)
    elif statement.is_aggregate:
        runner = _aggregate_select(statement, database, ctx, start, end, plan)
    else:
        runner = _raw_select(statement, database, ctx, start, end, plan)
    async for item in runner:
        yield item


@dataclass(slots=True)
class _Plan:
    series: SeriesTags
    group_keys: list[str]
    groups: list[tuple[dict[str, str] | None, QueryFilter]]  # one (tags, filter) per series of the answer
    matching: SeriesTags  # the series the tag terms of WHERE can keep


def _plan(statement: SelectStatement, condition: Expr | None, series: SeriesTags, deadline: float | None) -> _Plan:
    where = _compile_condition(condition, series, deadline)
    group_keys = _group_keys(statement.group_by_tags, series)
    # The answer's series are those of the series the tag terms of WHERE can keep (what SLIMIT counts).
    matching = _matching_series(condition, series, deadline)
    return _Plan(series, group_keys, _groups(group_keys, matching if group_keys else series, where), matching)


def _tag_keys(series: SeriesTags) -> list[str]:
    return sorted({key for tags in series.values() for key in tags})


def _group_keys(group_by: list[str], series: SeriesTags) -> list[str]:
    if "*" in group_by:
        return _tag_keys(series)
    return sorted(set(group_by))


def _groups(keys: list[str], series: SeriesTags, where: QueryFilter) -> list[tuple[dict[str, str] | None, QueryFilter]]:
    """One (tags, filter) per series of the answer: all data at once, or one per GROUP BY tag value set."""
    if not keys:
        return [(None, where)]
    by_values: dict[tuple[str, ...], list[int]] = {}
    for sid, tags in series.items():
        by_values.setdefault(tuple(tags.get(key, "") for key in keys), []).append(sid)
    return [
        (dict(zip(keys, values)), storage.combine_filters("AND", where, storage.series_in(ids)))
        for values, ids in sorted(by_values.items())
    ]


def column_names(fields: list[FieldExpr]) -> list[str]:
    """A SELECT's column names as InfluxDB gives them: aliases as written (repeats too), then each
    other name, suffixed _1, _2 ... where it is taken already: percentile, percentile_1."""
    taken: dict[str, int] = {item.alias: 1 for item in fields if item.alias is not None}
    out: list[str] = []
    for item in fields:
        if item.alias is not None:
            out.append(item.alias)
            continue
        name = item.name
        count = taken.get(name, 0)
        if count:
            while f"{name}_{count}" in taken:
                count += 1
            taken[name] = count + 1
            name = f"{name}_{count}"
        taken[name] = taken.get(name, 0) + 1
        out.append(name)
    return out


async def _raw_select(statement: SelectStatement, database: str, ctx: Context, start: int, end: int, plan: _Plan) -> Output:
    zone = timebuckets.load_zone(statement.time_zone) if statement.time_zone is not None else None
    async for header, rows in _raw_rows(statement, database, ctx, start, end, plan, zone):
        if zone is not None and ctx.epoch is None:  # times came as ns, to be written with the zone's offset
            rows = await ctx.offload(_zoned_times, rows, zone, ctx.deadline)
        yield header, rows


def _zoned_times(rows: list[Row], zone: timebuckets.ZoneInfo, deadline: float | None) -> list[Row]:
    check_deadline(deadline)
    return [(format_time(row[0], None, zone), *row[1:]) for row in rows]


async def _raw_rows(
    statement: SelectStatement, database: str, ctx: Context, start: int, end: int, plan: _Plan,
    zone: timebuckets.ZoneInfo | None,
) -> Output:  # fmt: skip
    epoch = "ns" if zone is not None and ctx.epoch is None else ctx.epoch
    groups = await _answer_series(statement, database, ctx, start, end, plan)
    limit = statement.limit
    fields: list[str] = []
    shard_ns = shard_group_duration(await ctx.retention_ns(database))
    if any(
        isinstance(item.expr, RegexLiteral) or (isinstance(item.expr, Wildcard) and item.expr.type_hint != "tag")
        for item in statement.fields
    ):
        # `*` and /regex/ are every field of the shards the range falls in, as in InfluxDB (not only
        # those with values in the range itself).
        lo, hi = shard_window(start, end, shard_ns)
        fields = await storage.query_field_keys(ctx.store, database, lo, hi, ctx.deadline)
    # A tag column is a CASE over every series: as much work as the user has series.
    names, columns, reads = await ctx.offload(_raw_columns, statement, fields, plan)
    header_columns = [statement.time_column, *column_names(names)]
    sources = [storage.column_source(column) for column in columns]
    if len(plan.series) <= _SERIES_INLINE:
        order = _series_order(plan.series, reads, shard_ns)
    else:  # sorting series keys grows with the user's series
        order = await ctx.offload(_series_order, plan.series, reads, shard_ns)
    if (
        ctx.columnar and all(where.only_series is not None for _, where in groups)
        and None not in sources and any(source[0] == "field" for source in sources if source)
    ):  # fmt: skip
        # Fields and tags as stored, filtered by series at most: from samples as columns (sealed hours cached).
        found = await storage.query_columns(
            ctx.store, database, start_ns=start, end_ns=end, now_ns=ctx.now_ns, offload=ctx.offload,
            deadline=ctx.deadline, fields={name for kind, name in sources if kind == "field"},  # type: ignore[misc]
        )
        if found is not None:  # None: too long a span to hold as columns, the SQL below streams it
            for tags, group_where in groups if len(found) else []:
                answer = await ctx.offload(
                    columnar.raw_answer, found, sources, plan.series, group_where.only_series, epoch,
                    statement.order_desc, limit, statement.offset, order, ctx.deadline,
                )  # fmt: skip
                header = SeriesHeader(MEASUREMENT, header_columns, tags)
                for first in range(0, len(answer), ctx.batch):
                    yield header, await ctx.offload(answer.rows, first, first + ctx.batch, ctx.deadline)
            return
    for tags, group_where in groups:
        header = SeriesHeader(MEASUREMENT, header_columns, tags)
        only = group_where.only_series
        several = len(plan.series) > 1 and (only is None or only == "all" or len(only) > 1)
        if several or columnar.offset_alone(limit, statement.offset):
            async for rows in _merged_sql_rows(
                statement, database, ctx, start, end, columns, group_where, epoch, order, limit
            ):  # fmt: skip
                yield header, rows
            continue
        async for rows in storage.query_raw(
            ctx.store,
            database,
            start_ns=start,
            end_ns=end,
            columns=columns,
            where=group_where,
            epoch=epoch,
            descending=statement.order_desc,
            limit=limit,
            offset=statement.offset,
            batch=ctx.batch,
            deadline=ctx.deadline,
        ):
            yield header, rows


# Rows of several series the SQL path holds to put rows at one time in InfluxDB's order (about a
# day of 1 Hz samples of two devices, a few seconds of reading at most). Past that the rest
# streams, rows at one time in the order their series were first written.
MERGE_MAX_ROWS = 200_000


async def _merged_sql_rows(
    statement: SelectStatement, database: str, ctx: Context, start: int, end: int, columns: list[QueryColumn],
    where: QueryFilter, epoch: str | None, order: columnar.SeriesOrder, limit: int | None,
) -> AsyncIterator[list[Row]]:  # fmt: skip
    """A raw SELECT's rows of several series from SQL, rows at one time in InfluxDB's order (see
    columnar.merge_order), then OFFSET and LIMIT."""
    held: list[Row] = []
    stream = storage.query_raw(
        ctx.store, database, start_ns=start, end_ns=end, columns=columns, where=where, epoch=epoch,
        descending=statement.order_desc, batch=ctx.batch, deadline=ctx.deadline, with_series=True,
    )  # fmt: skip
    async for rows in stream:
        held.extend(rows)
        if len(held) > MERGE_MAX_ROWS:
            break
    else:
        alone = columnar.offset_alone(limit, statement.offset)
        needed = None if limit is None else statement.offset + limit
        ordered = await ctx.offload(
            _merged, held, order, statement.order_desc, ctx.deadline, needed, statement.offset if alone else 0
        )
        chosen = ordered[statement.offset : needed]
        for first in range(0, len(chosen), ctx.batch):
            yield chosen[first : first + ctx.batch]
        return
    # Too many to hold: as they come (at one time, in the order the series were first written), paged here.
    skip, left = statement.offset, limit
    batches: AsyncIterator[list[Row]] = _chained(held, stream)
    async for rows in batches:
        if skip:
            dropped = min(skip, len(rows))
            rows, skip = rows[dropped:], skip - dropped
        rows = [row[:-2] for row in rows]
        if left is not None:
            rows = rows[:left]
            left -= len(rows)
        if rows:
            yield rows
        if left == 0:
            break


async def _chained(first: list[Row], rest: AsyncIterator[list[Row]]) -> AsyncIterator[list[Row]]:
    yield first
    async for rows in rest:
        yield rows


def _merged(
    rows: list[Row], order: columnar.SeriesOrder, descending: bool, deadline: float | None, needed: int | None,
    offset_without_limit: int,
) -> list[Row]:  # fmt: skip
    """The rows in InfluxDB's order; given an OFFSET without LIMIT, only the first OFFSET + 1 rows of
    each shard group (see columnar.offset_alone)."""
    if descending:
        rows = rows[::-1]  # merge_order takes the rows in ascending time order
    times = np.fromiter((row[-2] for row in rows), dtype=np.int64, count=len(rows))
    series = np.fromiter((row[-1] for row in rows), dtype=np.int64, count=len(rows))
    positions = columnar.merge_order(times, series, order, descending, deadline, needed)
    if offset_without_limit:
        positions = positions[columnar.shard_firsts(times[positions], order.shard_ns, offset_without_limit + 1)]
    return [rows[n][:-2] for n in positions.tolist()]


_SERIES_INLINE = 32  # as few series as this are ordered without a trip to a query thread


def _series_order(series: SeriesTags, names: list[str], shard_ns: int) -> columnar.SeriesOrder:
    """What orders rows of several series at one time as InfluxDB does: each series' place in series
    key order, and its values of the tags that come first among the selected names, sorted (InfluxDB's
    merge compares those while they are strings; the first field ends the comparison)."""
    rank = {sid: n for n, sid in enumerate(sorted(series, key=lambda sid: series_key(series[sid])))}
    leading_tags: list[str] = []
    for name in sorted(set(names)):
        if name in _FIELDS:
            break
        leading_tags.append(name)
    tie_keys = {sid: tuple(tags.get(key) for key in leading_tags) for sid, tags in series.items()}
    return columnar.SeriesOrder(rank, tie_keys, shard_ns)


def _raw_columns(
    statement: SelectStatement, fields: list[str], plan: _Plan
) -> tuple[list[FieldExpr], list[QueryColumn], list[str]]:
    """The raw SELECT's columns, `*` and /regex/ expanded (InfluxDB's RewriteFields: the fields and the
    tags not grouped by, in name order), their SQL, and the names they read; `fields` are those with
    values in range."""
    items: list[FieldExpr] = []
    columns: list[QueryColumn] = []
    reads: list[str] = []
    tag_keys = [key for key in _tag_keys(plan.series) if key not in plan.group_keys]
    for item in statement.fields:
        if isinstance(item.expr, (Wildcard, RegexLiteral)):
            hint = item.expr.type_hint if isinstance(item.expr, Wildcard) else None
            found: list[tuple[str, QueryColumn]] = []
            if hint != "tag":
                found += [(name, storage.field_sql(name)) for name in fields]
            if hint != "field":
                found += [(key, storage.tag_sql(key, plan.series)) for key in tag_keys]
            if isinstance(item.expr, RegexLiteral):
                pattern = item.expr.compiled
                found = [(name, column) for name, column in found if pattern.search(name) is not None]
            for name, column in sorted(found, key=lambda pair: pair[0]):
                items.append(FieldExpr(VarRef(name)))
                columns.append(column)
                reads.append(name)
        else:
            items.append(item)
            columns.append(_value_sql(item.expr, plan.series))
            reads.extend(_var_names(item.expr))
    return items, columns, reads


def _var_names(expr: Expr) -> list[str]:
    if isinstance(expr, VarRef):
        return [expr.name]
    if isinstance(expr, BinaryExpr):
        return _var_names(expr.lhs) + _var_names(expr.rhs)
    return []


def _calls(expr: Expr) -> list[Call]:
    if isinstance(expr, Call):
        return [expr]
    if isinstance(expr, BinaryExpr):
        return _calls(expr.lhs) + _calls(expr.rhs)
    return []


def _call_key(call: Call) -> tuple[str, str]:
    arg = call.args[0]
    assert isinstance(arg, VarRef)  # the parser allows exactly one field name
    # A tag (or a name outside the vocabulary) has no numbers to aggregate.
    name = arg.name if arg.name in _FIELDS and arg.type_hint != "tag" else ""
    return call.name, name


async def _aggregate_select(
    statement: SelectStatement, database: str, ctx: Context, start: int, end: int, plan: _Plan
) -> Output:
    keys: list[tuple[str, str]] = []
    for item in statement.fields:
        for call in _calls(item.expr):
            if _call_key(call) not in keys:
                keys.append(_call_key(call))
    interval = statement.group_by_time
    zone = timebuckets.load_zone(statement.time_zone) if statement.time_zone is not None else None
    # A lone selector without GROUP BY time answers with the time of the point it selected (inside math
    # too; the same call written twice is still one, as InfluxDB counts them).
    point_times = interval is None and len(keys) == 1 and keys[0][0] in _SELECTORS
    if interval is not None and end == MAX_TIME:
        end = ctx.now_ns + 1  # InfluxDB ends GROUP BY time at now() when no upper bound is given
    header_columns = [statement.time_column, *column_names(statement.fields)]
    fill = statement.fill if statement.fill is not None else "null"
    counts = [i for i, item in enumerate(statement.fields) if isinstance(item.expr, Call) and item.expr.name == "count"
              and ctx.count_fill_zero]  # fmt: skip
    unfilled: set[int] = set()
    if interval is not None and not isinstance(fill, str):
        unfilled = await _unfilled_columns(statement, database, ctx, start, end)
    made = 0  # buckets of the series answered so far
    read: list[storage.Columns | None] = []  # samples as columns, once read: one read serves every group
    groups = await _answer_series(statement, database, ctx, start, end, plan)

    def refuse_beyond(count: int) -> None:
        # Refused before any work, as InfluxDB's max-select-buckets (Tracker counts every series' buckets).
        _check_buckets(count * len(groups), ctx.max_buckets)

    buckets: timebuckets.Buckets | None = None
    if interval is not None and start != MIN_TIME:
        if zone is None:  # a range of bucket starts: no work to send to a query thread
            buckets = timebuckets.Buckets(start, end, *interval, None, refuse_beyond)
        else:
            buckets = await ctx.offload(timebuckets.Buckets, start, end, *interval, zone, refuse_beyond, ctx.deadline)

    for tags, group_where in groups:
        if interval is None:
            data = await _bucket_data(ctx, database, start, end, keys, group_where, None, point_times, read, plan.series)
            if not data:
                continue
            values, times = _evaluate_bucket(statement.fields, keys, data[0])
            at = times[0] if point_times and times[0] is not None else (start if start != MIN_TIME else 0)
            if statement.offset == 0 and statement.limit != 0:
                yield SeriesHeader(MEASUREMENT, header_columns, tags), [
                    [timebuckets.format_time(at, ctx.epoch, zone), *map(_json_number, values)]
                ]
            continue
        group_buckets = buckets
        if group_buckets is None:  # no lower time bound: the buckets start at the group's earliest data
            runs = [timebuckets.Run(start, end, interval[0], interval[1])]
            data = await _bucket_data(ctx, database, start, end, keys, group_where, runs, False, read)
            if not data:
                continue
            group_buckets = await ctx.offload(
                timebuckets.Buckets, min(data), end, *interval, zone,
                lambda count: _check_buckets(made + count, ctx.max_buckets), ctx.deadline,
            )  # fmt: skip
            if zone is not None:
                data = await _bucket_data(ctx, database, start, end, keys, group_where, group_buckets.runs, False, read)
        else:
            data = await _bucket_data(ctx, database, start, end, keys, group_where, group_buckets.runs, False, read)
            if not data:
                continue
        made += len(group_buckets.starts)
        _check_buckets(made, ctx.max_buckets)
        answer = await ctx.offload(
            _Buckets, statement.fields, keys, data, group_buckets, fill, counts, unfilled, ctx.deadline
        )
        if answer.pages_columns(statement.offset, statement.limit) or zone is not None:  # walks over the buckets
            chosen = await ctx.offload(answer.order, statement.order_desc, statement.offset, statement.limit)
        else:
            chosen = answer.order(statement.order_desc, statement.offset, statement.limit)
        header = SeriesHeader(MEASUREMENT, header_columns, tags)
        for i in range(0, len(chosen), ctx.batch):
            yield header, await ctx.offload(answer.rows, chosen[i : i + ctx.batch], ctx.epoch, ctx.deadline)


Group = tuple[dict[str, str] | None, QueryFilter]
# SLIMIT/SOFFSET look at the series of each shard group the range falls in, as InfluxDB: past this
# many shard groups, they page the series of the whole range instead.
_MAX_PAGED_SHARDS = 1000


async def _answer_series(
    statement: SelectStatement, database: str, ctx: Context, start: int, end: int, plan: _Plan
) -> list[Group]:
    """The answer's series (tags, filter), in their order: with ORDER BY time DESC the last first, as
    InfluxDB. SLIMIT/SOFFSET page, as InfluxDB, the series of each shard group the range falls in (a
    week of samples each, by default) with its arithmetic (SOFFSET alone keeps none): a series picked in
    some shard groups only answers from those."""
    groups = plan.groups
    if statement.slimit > 0 or statement.soffset > 0:
        shard_ns = shard_group_duration(await ctx.retention_ns(database))
        span = await storage.query_time_span(ctx.store, database, start, end)
        lo, hi = shard_window(span[0], span[1] + 1, shard_ns) if span else (0, 0)
        if span is None:
            groups = []
        elif (hi - lo) // shard_ns > _MAX_PAGED_SHARDS:
            groups = _series_page(groups, statement.slimit, statement.soffset)
        else:
            windows = [(w, w + shard_ns) for w in range(lo, hi, shard_ns)]
            present = await storage.query_series_between(ctx.store, database, windows, ctx.deadline)
            groups = await ctx.offload(_paged_per_shard, statement, plan, windows, present, start, end)
    return groups[::-1] if statement.order_desc else groups


def _series_page(groups: list[T], slimit: int, soffset: int) -> list[T]:
    """InfluxDB's SLIMIT/SOFFSET arithmetic: SOFFSET without SLIMIT keeps none."""
    if slimit <= 0 and soffset <= 0:
        return groups
    if soffset > len(groups):
        return []
    return groups[soffset : min(soffset + slimit, len(groups))]


def _paged_per_shard(
    statement: SelectStatement, plan: _Plan, windows: list[tuple[int, int]], present: list[set[int]], start: int, end: int
) -> list[Group]:
    keys = plan.group_keys
    index = {tuple(sorted((tags or {}).items())): n for n, (tags, _) in enumerate(plan.groups)}
    group_of = {
        sid: index.get(tuple(sorted((key, tags.get(key, "")) for key in keys))) for sid, tags in plan.matching.items()
    }
    has: dict[int, list[int]] = {}  # group -> the windows it has series in
    picked: dict[int, list[int]] = {}  # group -> the windows whose page it is on
    for w, in_window in enumerate(present):
        here = sorted({group_of[sid] for sid in in_window if group_of.get(sid) is not None})
        for g in here:
            has.setdefault(g, []).append(w)
        for g in _series_page(here, statement.slimit, statement.soffset):
            picked.setdefault(g, []).append(w)
    out: list[Group] = []
    for g, (tags, where) in enumerate(plan.groups):
        if g not in picked:
            continue
        if picked[g] != has[g]:
            ranges = [(max(windows[w][0], start), min(windows[w][1], end)) for w in picked[g]]
            where = storage.combine_filters("AND", where, storage.time_ranges(ranges))
        out.append((tags, where))
    return out


async def _bucket_data(
    ctx: Context, database: str, start: int, end: int, keys: list[tuple[str, str]], where: QueryFilter,
    runs: list[timebuckets.Run] | None, point_times: bool, read: list[storage.Columns | None],
    series: storage.SeriesTags | None = None,
) -> dict[int, list[Any]]:
    """{bucket start time: [value per key]} of the buckets holding data, each run of buckets over its
    own range (no runs: no GROUP BY time, everything in bucket 0): from samples as columns where they
    can answer (GROUP BY time over a bounded range, filtered by series at most), else from SQL. `read`
    keeps the columns of the statement's range once read, for its other groups."""
    if runs is None:
        # first()/last() of the whole range look at InfluxDB's series key order and shard groups.
        edge_reads: storage.EdgeReads | None = None
        shard_ns = 0
        if series and any(fn in ("first", "last") for fn, _ in keys):
            edge_reads = functools.partial(columnar.edge_reads, _series_rank(series, where))
            shard_ns = shard_group_duration(await ctx.retention_ns(database))
        return await storage.query_aggregates(
            ctx.store, database, start_ns=start, end_ns=end, calls=keys, where=where, point_times=point_times,
            edge_reads=edge_reads, shard_ns=shard_ns, deadline=ctx.deadline,
        )  # fmt: skip
    if (
        ctx.columnar and where.only_series is not None and start != MIN_TIME
        and columnar.aggregates_supported(keys, sqlite3.sqlite_version_info)
    ):  # fmt: skip
        if not read:
            read.append(await storage.query_columns(
                ctx.store, database, start_ns=start, end_ns=end, now_ns=ctx.now_ns, offload=ctx.offload,
                deadline=ctx.deadline, fields={name for _, name in keys},
            ))  # fmt: skip
    out: dict[int, list[Any]] = {}
    for run in runs:
        found: dict[int, list[Any]] | None = None
        if read and read[0] is not None:
            found = await ctx.offload(
                columnar.bucket_aggregates, read[0].between(run.lo, run.hi), keys, where.only_series, run.step,
                run.phase, ctx.deadline,
            )  # fmt: skip
        if found is None:
            found = await storage.query_aggregates(
                ctx.store, database, start_ns=run.lo, end_ns=run.hi, calls=keys, where=where, interval_ns=run.step,
                offset_ns=run.phase, deadline=ctx.deadline,
            )  # fmt: skip
        for index, values in found.items():
            out[run.start_of(index)] = values
    return out


# Aggregates whose answer takes the type of the field: over a field the shards do not hold, InfluxDB
# has nothing to fill with a number (mean, median, count and stddev are numbers whatever the field).
_TYPED_BY_FIELD = frozenset({"sum", "min", "max", "spread", "first", "last"})


def _series_rank(series: storage.SeriesTags, where: QueryFilter) -> dict[int, int]:
    """The places in InfluxDB's series key order of the series `where` may keep."""
    kept = where.only_series
    ids = series if kept is None or kept == "all" else [sid for sid in kept if sid in series]
    return {sid: n for n, sid in enumerate(sorted(ids, key=lambda sid: series_key(series[sid])))}


async def _unfilled_columns(statement: SelectStatement, database: str, ctx: Context, start: int, end: int) -> set[int]:
    """The output columns fill(<number>) leaves null, as InfluxDB: a lone aggregate typed by its field,
    of a field without values in the shard groups (a week each, by default) the range falls in."""
    typed = {
        n: _call_key(item.expr)[1] for n, item in enumerate(statement.fields)
        if isinstance(item.expr, Call) and item.expr.name in _TYPED_BY_FIELD
    }  # fmt: skip
    if not typed:
        return set()
    lo, hi = shard_window(start, end, shard_group_duration(await ctx.retention_ns(database)))
    held = set(await storage.query_field_keys(ctx.store, database, lo, hi, ctx.deadline))
    return {n for n, name in typed.items() if name not in held}


def _check_buckets(count: int, limit: int) -> None:
    if limit and count > limit:
        raise StatementError(f"max-select-buckets limit exceeded: ({count}/{limit})")  # InfluxDB's words


class _Buckets:
    """One series of a GROUP BY time answer: every bucket's values, filled, produced a batch at a time,
    so neither the whole answer nor a list of empty buckets is ever held in memory (without tz() the
    bucket starts are a range). Built and read on a query thread: the work grows with the buckets
    asked for, which the user controls."""

    def __init__(
        self,
        fields: list[FieldExpr],
        keys: list[tuple[str, str]],
        data: dict[int, list[Any]],
        buckets: timebuckets.Buckets,
        fill: str | float,
        counts: list[int],
        unfilled: set[int],
        deadline: float | None,
    ) -> None:
        self.zone = buckets.zone
        self.every = buckets.every
        self.descending = False
        self.fill = fill
        self.unfilled = unfilled  # columns fill(<number>) leaves null
        self.counts = set(counts)  # whole numbers in InfluxDB: filled as such
        self.paged: list[set[int]] | None = None  # fill(none) with OFFSET/LIMIT: each column's page
        self.width = len(fields)
        self.values: dict[int, list[Any]] = {}  # bucket start -> values, for the buckets holding data
        for n, at in enumerate(sorted(data)):
            if n % _DEADLINE_EVERY == 0:
                check_deadline(deadline)
            self.values[at] = _evaluate_bucket(fields, keys, data[at])[0]
        self.filled = sorted(self.values)
        self.buckets = buckets
        # fill(null) gives a count 0 in the series' empty buckets, but only if it counted values in some
        # bucket of the range: InfluxDB fills the buckets of the series its count answered, and a count
        # that found nothing anywhere stays null.
        self.zero_counts = {
            column for column in counts if any(self.values[at][column] is not None for at in self.filled)
        }
        # Per column, the buckets with a value and those values: what previous and linear fill look up.
        self.known: list[tuple[list[int], list[Any]]] = []
        if fill in ("previous", "linear"):
            for column in range(self.width):
                at = [start for start in self.filled if self.values[start][column] is not None]
                self.known.append((at, [self.values[start][column] for start in at]))

    def pages_columns(self, offset: int, limit: int | None) -> bool:
        return self.fill == "none" and (offset > 0 or limit is not None)

    def order(self, descending: bool, offset: int, limit: int | None) -> Sequence[int]:
        """The bucket start times of the answer, in its order, after OFFSET and LIMIT."""
        self.descending = descending  # fill(previous) looks back in the answer's order, as InfluxDB
        if self.fill == "none":
            starts: Sequence[int] = self.filled[::-1] if descending else self.filled
        else:
            starts = self.buckets.row_times(self.filled, descending)
        if self.pages_columns(offset, limit):
            # InfluxDB pages each column's points before it joins them into rows: without fill, a
            # column's page can hold other buckets than another's.
            end = None if limit is None else offset + limit
            self.paged = [
                set([at for at in starts if self.values[at][column] is not None][offset:end])
                for column in range(self.width)
            ]
            kept = set().union(*self.paged)
            return [at for at in starts if at in kept]
        return starts[offset : None if limit is None else offset + limit]

    def rows(self, starts: Sequence[int], epoch: str | None, deadline: float | None) -> list[list[Any]]:
        out = []
        for n, at in enumerate(starts):
            if n % _DEADLINE_EVERY == 0:
                check_deadline(deadline)
            found = self.values.get(at)
            values = [None] * self.width if found is None else list(found)
            if self.paged is not None:
                values = [value if at in self.paged[column] else None for column, value in enumerate(values)]
            for column, value in enumerate(values):
                if value is None:
                    values[column] = self._filled(column, at)
            out.append([timebuckets.format_time(at, epoch, self.zone), *map(_json_number, values)])
        return out

    def _filled(self, column: int, at_time: int) -> Any:
        """The value fill() gives the bucket starting at `at_time` where it has none in this column."""
        fill = self.fill
        if fill == "none" or column in self.unfilled:
            return None
        if fill == "null":
            return 0 if column in self.zero_counts else None
        if fill == "previous":
            at, values = self.known[column]
            if self.descending:  # the bucket after, which came before in the answer
                k = bisect.bisect_left(at, at_time)
                return values[k] if k < len(at) else None
            k = bisect.bisect_right(at, at_time)
            return values[k - 1] if k else None
        if fill == "linear":
            at, values = self.known[column]
            k = bisect.bisect_left(at, at_time)
            if not 0 < k < len(at) or values[k - 1] is NO_VALUE or values[k] is NO_VALUE:
                return None
            # InfluxDB's arithmetic, for equal answers: times as whole intervals (Go's division, which
            # truncates), the slope per interval times the intervals since the previous value
            before, now, after = (_go_quotient(t, self.every) for t in (at[k - 1], at_time, at[k]))
            value = (values[k] - values[k - 1]) / float(after - before) * float(now - before) + values[k - 1]
            return int(value) if column in self.counts else value  # Go's int64() truncates
        return int(fill) if column in self.counts else fill


def _go_quotient(a: int, b: int) -> int:
    """a / b as Go divides integers: truncated toward zero."""
    quotient = abs(a) // abs(b)
    return quotient if (a >= 0) == (b > 0) else -quotient


def _evaluate_bucket(fields: list[FieldExpr], keys: list[tuple[str, str]], raw: list[Any]) -> tuple[list[Any], list[int | None]]:
    """Per output field: its value in this bucket, and the selected point's time (selectors only)."""
    values: dict[tuple[str, str], Any] = {}
    times: dict[tuple[str, str], int | None] = {}
    for key, value in zip(keys, raw):
        time = None
        if isinstance(value, tuple):  # a selector's (value, time of the point)
            value, time = value
        if key[0] == "stddev" and value is not None:
            # storage answers the variance, or -1 for a bucket of one value: a point without a value
            value = math.sqrt(value) if value >= 0 else NO_VALUE
        values[key], times[key] = value, time
    out, out_times = [], []
    for item in fields:
        out.append(_evaluate(item.expr, values))
        calls = _calls(item.expr)
        out_times.append(times.get(_call_key(calls[0])) if len(calls) == 1 else None)
    return out, out_times


def _evaluate(expr: Expr, values: dict[tuple[str, str], Any]) -> Any:
    if isinstance(expr, Call):
        return values[_call_key(expr)]
    if isinstance(expr, (IntegerLiteral, NumberLiteral)):
        return expr.value
    if isinstance(expr, BinaryExpr):
        lhs, rhs = _evaluate(expr.lhs, values), _evaluate(expr.rhs, values)
        if lhs is None or rhs is None or lhs is NO_VALUE or rhs is NO_VALUE:
            return None
        try:
            if expr.op == "+":
                return lhs + rhs
            if expr.op == "-":
                return lhs - rhs
            if expr.op == "*":
                return lhs * rhs
            if expr.op == "/":
                return lhs / rhs
            if expr.op == "%":
                return math.fmod(lhs, rhs)
        except (ZeroDivisionError, ValueError):
            return None
    return None  # a bare field or tag beside aggregates has no single value per bucket


def _json_number(value: Any) -> Any:
    """Whole-number floats as integers, the way InfluxDB writes them (`145`, not `145.0`)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    return None if value is NO_VALUE else value


# ---------------------------------------------------------------------------------------------
# Expressions -> SQL (via storage's builders) and tag conditions -> series ids


def _is_tag(ref: VarRef) -> bool:
    return ref.type_hint == "tag" or (ref.name not in _FIELDS and ref.type_hint != "field")


def _value_sql(expr: Expr, series: SeriesTags) -> QueryColumn:
    if isinstance(expr, VarRef):
        return storage.tag_sql(expr.name, series) if _is_tag(expr) else storage.field_sql(expr.name)
    if isinstance(expr, (IntegerLiteral, NumberLiteral)):
        return storage.number_sql(expr.value)
    if isinstance(expr, BinaryExpr) and expr.op in ("+", "-", "*", "/", "%"):
        return storage.arithmetic_sql(expr.op, _value_sql(expr.lhs, series), _value_sql(expr.rhs, series))
    raise StatementError(f"unsupported expression in SELECT: {type(expr).__name__}")


_TRUE, _FALSE = storage.KEEP_ALL, storage.KEEP_NONE


def _compile_condition(expr: Expr | None, series: SeriesTags, deadline: float | None) -> QueryFilter:
    """The WHERE remainder as SQL: fields compare in SQL, tag comparisons become series-id sets."""
    if expr is None:
        return _TRUE
    if isinstance(expr, BooleanLiteral):
        return _TRUE if expr.value else _FALSE
    if not isinstance(expr, BinaryExpr):
        raise StatementError("invalid condition")
    if expr.op in ("AND", "OR"):
        lhs_sql, rhs_sql = (_compile_condition(side, series, deadline) for side in (expr.lhs, expr.rhs))
        return storage.combine_filters(expr.op, lhs_sql, rhs_sql)
    lhs, rhs = expr.lhs, expr.rhs
    if isinstance(lhs, VarRef) and _is_tag(lhs) or isinstance(rhs, VarRef) and _is_tag(rhs):
        return storage.series_in(list(_matching_series(expr, series, deadline)))
    if isinstance(rhs, RegexLiteral) or _is_text(lhs) or _is_text(rhs):
        return _FALSE  # numeric fields never equal a string nor match a regex
    try:
        return storage.compare_sql(expr.op, _value_sql(lhs, series), _value_sql(rhs, series))
    except (StatementError, ValueError):
        return _FALSE


def _is_text(expr: Expr) -> bool:
    return isinstance(expr, (StringLiteral, BooleanLiteral))


def _tag_condition(expr: Expr, tags: dict[str, str]) -> bool:
    """Evaluate a condition for one series: tag comparisons decide; field terms count as true
    (SHOW ... WHERE cannot look at values; SELECT compiles those in SQL instead)."""
    if isinstance(expr, BooleanLiteral):
        return expr.value
    if not isinstance(expr, BinaryExpr):
        return True
    if expr.op == "AND":
        return _tag_condition(expr.lhs, tags) and _tag_condition(expr.rhs, tags)
    if expr.op == "OR":
        return _tag_condition(expr.lhs, tags) or _tag_condition(expr.rhs, tags)
    lhs, rhs, op = expr.lhs, expr.rhs, expr.op
    if isinstance(rhs, VarRef) and _is_tag(rhs) and not (isinstance(lhs, VarRef) and _is_tag(lhs)):
        lhs, rhs = rhs, lhs
        op = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}.get(op, op)
    if not (isinstance(lhs, VarRef) and _is_tag(lhs)):
        return True  # a field term
    value = tags.get(lhs.name, "")  # a missing tag compares as the empty string, as in InfluxDB
    if isinstance(rhs, RegexLiteral):
        found = rhs.compiled.search(value) is not None
        return found if op == "=~" else not found
    if isinstance(rhs, VarRef):
        other = tags.get(rhs.name, "") if _is_tag(rhs) else None
    elif isinstance(rhs, StringLiteral):
        other = rhs.value
    else:
        other = None  # a tag is text: it never equals a number
    if other is None:
        return op == "!="
    return {
        "=": value == other,
        "!=": value != other,
        "<": value < other,
        "<=": value <= other,
        ">": value > other,
        ">=": value >= other,
    }.get(op, False)


def _matching_series(condition: Expr | None, series: SeriesTags, deadline: float | None) -> SeriesTags:
    """The series whose tags satisfy the condition (time and field terms count as true)."""
    if condition is None:
        return series
    matching: SeriesTags = {}
    for n, (sid, tags) in enumerate(series.items()):
        if n % _DEADLINE_EVERY == 0:
            check_deadline(deadline)
        if _tag_condition(condition, tags):
            matching[sid] = tags
    return matching


def _shown_series(condition: Expr | None, series: SeriesTags, deadline: float | None) -> SeriesTags:
    """SHOW ... WHERE: the series it is about."""
    if condition is None:
        return series
    try:
        _, _, rest = time_range(condition, 0)  # time terms say nothing about which series exist
    except QueryParseError as exc:
        raise StatementError(exc.message) from None
    return _matching_series(rest, series, deadline)


# ---------------------------------------------------------------------------------------------
# DELETE, DROP SERIES, DROP MEASUREMENT (the caller has checked that the user owns the database)


async def _delete(statement: DeleteStatement, database: str, ctx: Context) -> Output:
    """InfluxDB's rules: WHERE holds tag conditions (and, for DELETE, a time range AND-ed with them);
    a field there is refused; a measurement other than ours deletes nothing. Answers no series."""
    condition = statement.condition
    comparisons = _comparisons(condition)
    if statement.keyword == "DROP SERIES" and any(map(_is_time_ref, (side for c in comparisons for side in (c.lhs, c.rhs)))):
        raise StatementError("DROP SERIES doesn't support time in WHERE clause")
    if statement.sources and not _reads_samples(statement.sources, ""):
        return
    try:
        start, end, tags_condition = time_range(condition, ctx.now_ns)
    except QueryParseError as exc:  # time inside OR: InfluxDB narrows the range oddly; refused here
        raise StatementError(exc.message.removeprefix("error parsing query: ")) from None
    if any(map(_is_field_term, _comparisons(tags_condition))):
        raise StatementError("fields not supported in WHERE clause during deletion")
    series = await storage.query_series(ctx.store, database)
    matched = await ctx.offload(_matching_series, tags_condition, series, ctx.deadline)
    await ctx.store.delete_samples(database, matched.values(), start, end)
    return
    yield  # an async generator that yields nothing: the result is `{"statement_id":N}`


def _comparisons(condition: Expr | None) -> list[BinaryExpr]:
    """The comparisons that AND and OR join in a WHERE condition."""
    out: list[BinaryExpr] = []
    stack = [condition] if condition is not None else []
    while stack:
        node = stack.pop()
        if isinstance(node, BinaryExpr) and node.op in ("AND", "OR"):
            stack.extend((node.rhs, node.lhs))
        elif isinstance(node, BinaryExpr):
            out.append(node)
    return out


def _is_time_ref(expr: Expr) -> bool:
    return isinstance(expr, VarRef) and expr.name.lower() == "time"


def _is_field_term(comparison: BinaryExpr) -> bool:
    """A comparison on a field, or of a tag with anything but a string, a regex or another tag:
    InfluxDB deletes whole series of a time range, and refuses those."""
    lhs, rhs = comparison.lhs, comparison.rhs
    if not isinstance(lhs, VarRef):
        lhs, rhs = rhs, lhs
    if not isinstance(lhs, VarRef) or not _is_tag(lhs):
        return True
    if isinstance(rhs, VarRef):
        return not _is_tag(rhs)
    return not isinstance(rhs, (StringLiteral, RegexLiteral))


# ---------------------------------------------------------------------------------------------
# SHOW


def _from_samples(sources: list[Source], ctx: Context) -> bool:
    return not sources or _reads_samples(sources, ctx.default_rp)


def _page(rows: list[Row], limit: int | None, offset: int) -> list[Row]:
    return rows[offset : None if limit is None else offset + limit]


ShowAboutSeries = ShowMeasurements | ShowTagKeys | ShowTagValues | ShowSeries


async def _series_rows(
    statement: ShowAboutSeries, database: str, ctx: Context, rows_of: Callable[[SeriesTags], list[Row]]
) -> list[Row]:
    """A SHOW's page of rows, made by `rows_of` from the series its WHERE selects: on a query thread,
    as matching tags and sorting grow with the user's series."""
    series = await storage.query_series(ctx.store, database)

    def page() -> list[Row]:
        shown = _shown_series(statement.condition, series, ctx.deadline)
        return _page(rows_of(shown), statement.limit, statement.offset)

    return await ctx.offload(page)


async def _show_measurements(statement: ShowMeasurements, database: str, ctx: Context) -> Output:
    if not statement.matches_name(MEASUREMENT) or not await storage.query_has_samples(ctx.store, database):
        return
    if statement.condition is None:
        rows = _page([[MEASUREMENT]], statement.limit, statement.offset)
    else:
        rows = await _series_rows(statement, database, ctx, lambda shown: [[MEASUREMENT]] if shown else [])
    if rows:
        yield SeriesHeader("measurements", ["name"]), rows


async def _show_field_keys(statement: ShowFieldKeys, database: str, ctx: Context) -> Output:
    if not _from_samples(statement.from_, ctx):
        return
    keys = sorted(await storage.query_field_keys(ctx.store, database))
    rows = _page([[key, "float"] for key in keys], statement.limit, statement.offset)
    if rows:
        yield SeriesHeader(MEASUREMENT, ["fieldKey", "fieldType"]), rows


async def _show_tag_keys(statement: ShowTagKeys, database: str, ctx: Context) -> Output:
    if not _from_samples(statement.from_, ctx):
        return
    rows = await _series_rows(statement, database, ctx, lambda shown: [[key] for key in _tag_keys(shown)])
    if rows:
        yield SeriesHeader(MEASUREMENT, ["tagKey"]), rows


async def _show_tag_values(statement: ShowTagValues, database: str, ctx: Context) -> Output:
    if not _from_samples(statement.from_, ctx):
        return

    def key_values(shown: SeriesTags) -> list[Row]:
        pairs = {(key, value) for tags in shown.values() for key, value in tags.items() if statement.matches_key(key)}
        return [list(pair) for pair in sorted(pairs)]

    rows = await _series_rows(statement, database, ctx, key_values)
    if rows:
        yield SeriesHeader(MEASUREMENT, ["key", "value"]), rows


_KEY_ESCAPES = re.compile(r"([,= ])")


def _escape(text: str) -> str:
    return _KEY_ESCAPES.sub(r"\\\1", text)


def series_key(tags: dict[str, str]) -> str:
    """`samples,device=a,host=b`: line protocol's escaping of tag keys and values."""
    return ",".join([MEASUREMENT] + [f"{_escape(key)}={_escape(value)}" for key, value in sorted(tags.items())])


async def _show_series(statement: ShowSeries, database: str, ctx: Context) -> Output:
    if not _from_samples(statement.from_, ctx):
        return
    rows = await _series_rows(
        statement, database, ctx, lambda shown: [[key] for key in sorted(series_key(tags) for tags in shown.values())]
    )
    if rows:
        yield SeriesHeader(None, ["key"]), rows
