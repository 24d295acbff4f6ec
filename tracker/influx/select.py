"""Running parsed InfluxQL statements against one user's samples: planning, fill, aggregation glue.

Every statement runs as an async iterator of (SeriesHeader, rows) pairs: consecutive pairs with the
same header object belong to one series, and rows arrive in batches straight from SQLite, so the
HTTP layer can stream them without holding the whole answer. A problem that InfluxDB reports inside
the statement's result (status 200) is raised as StatementError.

All SQL lives in tracker.storage; this module decides what to ask for and shapes the answer.
"""

from __future__ import annotations

import bisect
import math
import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, AsyncIterator, Awaitable, Callable, Sequence, TypeVar

from tracker import storage
from tracker.influx import columnar
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
from tracker.retention import format_duration, shard_group_duration
from tracker.storage import QueryColumn, QueryFilter, SampleStore, SeriesTags
from tracker.vocabulary import FIELD_KEYS, MEASUREMENT

DEFAULT_RETENTION_POLICY = "autogen"
QUERY_TIMEOUT = "query-timeout limit exceeded"  # InfluxDB's words, which Grafana shows as they are
_FIELDS = frozenset(FIELD_KEYS)
_SELECTORS = frozenset({"first", "last", "min", "max"})
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# Loops over series or buckets look at the query's deadline this often (a few hundred microseconds).
_DEADLINE_EVERY = 1024

Row = Sequence[Any]
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
        if rp not in ("", DEFAULT_RETENTION_POLICY):
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


def _plan(statement: SelectStatement, condition: Expr | None, series: SeriesTags, deadline: float | None) -> _Plan:
    where = _compile_condition(condition, series, deadline)
    group_keys = _group_keys(statement.group_by_tags, series)
    return _Plan(series, group_keys, _groups(group_keys, series, where))


def in_answer_order(groups: list[T], descending: bool) -> list[T]:
    """The answer's series as InfluxDB orders them: by tags, the other way round for ORDER BY time DESC."""
    return groups[::-1] if descending else groups


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


def _unique_names(names: list[str]) -> list[str]:
    """InfluxDB suffixes repeated column names: hr_bpm, hr_bpm_1, ..."""
    seen: dict[str, int] = {}
    out: list[str] = []
    for name in names:
        if name in seen:
            seen[name] += 1
            name = f"{name}_{seen[name]}"
            while name in seen:
                name += "_"
        seen.setdefault(name, 0)
        out.append(name)
    return out


async def _raw_select(statement: SelectStatement, database: str, ctx: Context, start: int, end: int, plan: _Plan) -> Output:
    fields: list[str] = []
    if any(isinstance(item.expr, Wildcard) and item.expr.type_hint != "tag" for item in statement.fields):
        fields = await storage.query_field_keys(ctx.store, database, start, end, ctx.deadline)
    # A tag column is a CASE over every series: as much work as the user has series.
    names, columns = await ctx.offload(_raw_columns, statement, fields, plan)
    header_columns = ["time", *_unique_names(names)]
    sources = [storage.column_source(column) for column in columns]
    if (
        ctx.columnar and all(where.only_series is not None for _, where in plan.groups)
        and None not in sources and any(source[0] == "field" for source in sources if source)
    ):  # fmt: skip
        # Fields and tags as stored, filtered by series at most: from samples as columns (sealed hours cached).
        found = await storage.query_columns(
            ctx.store, database, start_ns=start, end_ns=end, now_ns=ctx.now_ns, offload=ctx.offload,
            deadline=ctx.deadline, fields={name for kind, name in sources if kind == "field"},  # type: ignore[misc]
        )
        if found is not None:  # None: too long a span to hold as columns, the SQL below streams it
            for tags, group_where in in_answer_order(plan.groups, statement.order_desc) if len(found) else []:
                answer = await ctx.offload(
                    columnar.raw_answer, found, sources, plan.series, group_where.only_series, ctx.epoch,
                    statement.order_desc, statement.limit, statement.offset,
                )  # fmt: skip
                header = SeriesHeader(MEASUREMENT, header_columns, tags)
                for first in range(0, len(answer), ctx.batch):
                    yield header, await ctx.offload(answer.rows, first, first + ctx.batch, ctx.deadline)
            return
    for tags, group_where in in_answer_order(plan.groups, statement.order_desc):
        header = SeriesHeader(MEASUREMENT, header_columns, tags)
        async for rows in storage.query_raw(
            ctx.store,
            database,
            start_ns=start,
            end_ns=end,
            columns=columns,
            where=group_where,
            epoch=ctx.epoch,
            descending=statement.order_desc,
            limit=statement.limit,
            offset=statement.offset,
            batch=ctx.batch,
            deadline=ctx.deadline,
        ):
            yield header, rows


def _raw_columns(statement: SelectStatement, fields: list[str], plan: _Plan) -> tuple[list[str], list[QueryColumn]]:
    """The raw SELECT's column names and SQL; `fields` are those with values in range (for `*`)."""
    names: list[str] = []
    columns: list[QueryColumn] = []
    tag_keys = [key for key in _tag_keys(plan.series) if key not in plan.group_keys]
    for item in statement.fields:
        if isinstance(item.expr, Wildcard):
            hint = item.expr.type_hint
            found: list[tuple[str, QueryColumn]] = []
            if hint != "tag":
                found += [(name, storage.field_sql(name)) for name in fields]
            if hint != "field":
                found += [(key, storage.tag_sql(key, plan.series)) for key in tag_keys]
            for name, column in sorted(found, key=lambda pair: pair[0]):
                names.append(name)
                columns.append(column)
        else:
            names.append(item.name)
            columns.append(_value_sql(item.expr, plan.series))
    return names, columns


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
    # A lone selector without GROUP BY time answers with the time of the point it selected (inside math too).
    all_calls = [call for item in statement.fields for call in _calls(item.expr)]
    point_times = interval is None and len(all_calls) == 1 and all_calls[0].name in _SELECTORS
    if interval is not None and end == MAX_TIME:
        end = ctx.now_ns + 1  # InfluxDB ends GROUP BY time at now() when no upper bound is given
    if interval is not None and start != MIN_TIME:
        # Refused before any work, as InfluxDB's max-select-buckets (Tracker counts every series' buckets).
        _check_buckets(_bucket_range(start, end, interval)[1] * len(plan.groups), ctx.max_buckets)
    header_columns = ["time", *column_names(statement.fields)]
    fill = statement.fill if statement.fill is not None else "null"
    counts = [i for i, item in enumerate(statement.fields) if isinstance(item.expr, Call) and item.expr.name == "count"
              and ctx.count_fill_zero]  # fmt: skip
    made = 0  # buckets of the series answered so far
    read: list[storage.Columns | None] = []  # samples as columns, once read: one read serves every group

    for tags, group_where in in_answer_order(plan.groups, statement.order_desc):
        data = await _bucket_data(
            ctx, database, start, end, keys, group_where, interval, point_times, read, plan.series
        )  # fmt: skip
        if not data:
            continue
        header = SeriesHeader(MEASUREMENT, header_columns, tags)
        if interval is None:
            values, times = _evaluate_bucket(statement.fields, keys, data[0])
            at = times[0] if point_times and times[0] is not None else (start if start != MIN_TIME else 0)
            if statement.offset == 0 and statement.limit != 0:
                yield header, [[format_time(at, ctx.epoch), *map(_json_number, values)]]
            continue
        first, count = _bucket_range(start if start != MIN_TIME else None, end, interval, min(data))
        made += count
        _check_buckets(made, ctx.max_buckets)
        buckets = await ctx.offload(
            _Buckets, statement.fields, keys, data, first, count, interval, fill, counts, ctx.deadline
        )
        chosen = buckets.order(statement.order_desc, statement.offset, statement.limit)
        for i in range(0, len(chosen), ctx.batch):
            yield header, await ctx.offload(buckets.rows, chosen[i : i + ctx.batch], ctx.epoch, ctx.deadline)


async def _bucket_data(
    ctx: Context, database: str, start: int, end: int, keys: list[tuple[str, str]], where: QueryFilter,
    interval: tuple[int, int] | None, point_times: bool, read: list[storage.Columns | None],
    series: storage.SeriesTags | None = None,
) -> dict[int, list[Any]]:
    """{bucket index: [value per key]} of the buckets holding data: from samples as columns where they
    can answer (GROUP BY time over a bounded range, filtered by series at most), else from SQL. `read`
    keeps the columns of the statement's range once read, for its other groups."""
    if (
        ctx.columnar and interval is not None and where.only_series is not None and start != MIN_TIME
        and columnar.aggregates_supported(keys, sqlite3.sqlite_version_info)
    ):  # fmt: skip
        if not read:
            read.append(await storage.query_columns(
                ctx.store, database, start_ns=start, end_ns=end, now_ns=ctx.now_ns, offload=ctx.offload,
                deadline=ctx.deadline, fields={name for _, name in keys},
            ))  # fmt: skip
        if read[0] is not None:
            data = await ctx.offload(
                columnar.bucket_aggregates, read[0], keys, where.only_series, interval[0], interval[1], ctx.deadline
            )
            if data is not None:
                return data  # type: ignore[no-any-return]
    whole_range_first_last = interval is None and any(fn in ("first", "last") for fn, _ in keys)
    return await storage.query_aggregates(
        ctx.store,
        database,
        start_ns=start,
        end_ns=end,
        calls=keys,
        where=where,
        interval_ns=None if interval is None else interval[0],
        offset_ns=0 if interval is None else interval[1],
        point_times=point_times,
        series_order=_in_series_key_order(series, where) if whole_range_first_last and series else (),
        shard_ns=shard_group_duration(await ctx.retention_ns(database) if whole_range_first_last else 0),
        deadline=ctx.deadline,
    )


def _in_series_key_order(series: storage.SeriesTags, where: QueryFilter) -> list[int]:
    """The ids of the series `where` may keep, in InfluxDB's series key order."""
    kept = where.only_series
    ids = series if kept is None or kept == "all" else [sid for sid in kept if sid in series]
    return sorted(ids, key=lambda sid: series_key(series[sid]))


def bucket_index(time_ns: Any, interval: tuple[int, int]) -> Any:
    """The GROUP BY time bucket a time falls in (an int, or a numpy array of times at once)."""
    every, offset = interval
    return (time_ns - offset) // every


def bucket_start(index: Any, interval: tuple[int, int]) -> Any:
    """Where a GROUP BY time bucket starts (an int, or a numpy array of indexes at once)."""
    every, offset = interval
    return index * every + offset


def _bucket_range(start: int | None, end: int, interval: tuple[int, int], earliest: int = 0) -> tuple[int, int]:
    """(index of the first bucket, number of buckets) of GROUP BY time over [start, end); with no
    start, the first bucket is the earliest one holding data."""
    first = bucket_index(start, interval) if start is not None else earliest
    return first, max(0, bucket_index(end - 1, interval) - first + 1)


def _check_buckets(count: int, limit: int) -> None:
    if limit and count > limit:
        raise StatementError(f"max-select-buckets limit exceeded: ({count}/{limit})")  # InfluxDB's words


class _Buckets:
    """One series of a GROUP BY time answer: every bucket's values, filled, produced a batch at a time,
    so neither the whole answer nor a list of empty buckets is ever held in memory. Built and read
    on a query thread: the work grows with the buckets asked for, which the user controls."""

    def __init__(
        self,
        fields: list[FieldExpr],
        keys: list[tuple[str, str]],
        data: dict[int, list[Any]],
        first: int,
        count: int,
        interval: tuple[int, int],
        fill: str | float,
        counts: list[int],
        deadline: float | None,
    ) -> None:
        self.first, self.count = first, count
        self.interval = interval
        self.fill = fill
        self.counts = counts
        self.width = len(fields)
        self.values: dict[int, list[Any]] = {}  # bucket index -> values, for the buckets holding data
        for n, index in enumerate(sorted(data)):
            if n % _DEADLINE_EVERY == 0:
                check_deadline(deadline)
            if first <= index < first + count:
                self.values[index] = _evaluate_bucket(fields, keys, data[index])[0]
        self.filled = sorted(self.values)
        # Per column, the buckets with a value and those values: what previous and linear fill look up.
        self.known: list[tuple[list[int], list[Any]]] = []
        if fill in ("previous", "linear"):
            for column in range(self.width):
                at = [index for index in self.filled if self.values[index][column] is not None]
                self.known.append((at, [self.values[index][column] for index in at]))

    def order(self, descending: bool, offset: int, limit: int | None) -> Sequence[int]:
        """The bucket indexes of the answer, in its order, after OFFSET and LIMIT."""
        indexes: Sequence[int] = self.filled if self.fill == "none" else range(self.first, self.first + self.count)
        if descending:
            indexes = indexes[::-1]
        return indexes[offset : None if limit is None else offset + limit]

    def rows(self, indexes: Sequence[int], epoch: str | None, deadline: float | None) -> list[list[Any]]:
        out = []
        for n, index in enumerate(indexes):
            if n % _DEADLINE_EVERY == 0:
                check_deadline(deadline)
            found = self.values.get(index)
            values = [None] * self.width if found is None else list(found)
            for column, value in enumerate(values):
                if value is None:
                    values[column] = self._filled(column, index, found is not None)
            out.append([format_time(bucket_start(index, self.interval), epoch), *map(_json_number, values)])
        return out

    def _filled(self, column: int, index: int, had_data: bool) -> Any:
        """The value fill() gives a bucket without one in this column."""
        fill = self.fill
        if fill == "none":
            return None
        if fill == "null":
            # InfluxDB: COUNT() reports 0 for intervals with no data.
            return 0 if column in self.counts and not had_data else None
        if fill == "previous":
            at, values = self.known[column]
            k = bisect.bisect_right(at, index)
            return values[k - 1] if k else None
        if fill == "linear":
            at, values = self.known[column]
            k = bisect.bisect_left(at, index)
            if not 0 < k < len(at):
                return None
            # InfluxDB's arithmetic (slope per ns, times the ns since the previous value), for equal answers
            before, now, after = (bucket_start(i, self.interval) for i in (at[k - 1], index, at[k]))
            return (values[k] - values[k - 1]) / (after - before) * (now - before) + values[k - 1]
        return fill


def _evaluate_bucket(fields: list[FieldExpr], keys: list[tuple[str, str]], raw: list[Any]) -> tuple[list[Any], list[int | None]]:
    """Per output field: its value in this bucket, and the selected point's time (selectors only)."""
    values: dict[tuple[str, str], Any] = {}
    times: dict[tuple[str, str], int | None] = {}
    for key, value in zip(keys, raw):
        time = None
        if isinstance(value, tuple):  # a selector's (value, time of the point)
            value, time = value
        if key[0] == "stddev" and value is not None:
            value = math.sqrt(max(value, 0.0))  # storage answers the variance
        if key[0] == "count" and value is None:
            value = 0
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
        if lhs is None or rhs is None:
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
    return value


def format_time(ns: int, epoch: str | None) -> int | str:
    if epoch is not None:
        return ns // storage.EPOCH_NS[epoch]
    seconds, fraction = divmod(ns, 1_000_000_000)
    text = (_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")
    if fraction:
        text += "." + f"{fraction:09d}".rstrip("0")
    return text + "Z"


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
