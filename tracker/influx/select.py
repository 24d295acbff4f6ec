"""Running parsed InfluxQL statements against one user's samples: planning, fill, aggregation glue.

Every statement runs as an async iterator of (SeriesHeader, rows) pairs: consecutive pairs with the
same header object belong to one series, and rows arrive in batches straight from SQLite, so the
HTTP layer can stream them without holding the whole answer. A problem that InfluxDB reports inside
the statement's result (status 200) is raised as StatementError.

All SQL lives in tracker.storage; this module decides what to ask for and shapes the answer.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, AsyncIterator, Awaitable, Callable, Sequence

from tracker import storage
from tracker.influx.influxql import (
    MAX_TIME,
    MIN_TIME,
    BinaryExpr,
    BooleanLiteral,
    Call,
    CreateDatabase,
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
from tracker.retention import format_duration, shard_group_duration
from tracker.storage import QueryColumn, QueryFilter, SampleStore, SeriesTags
from tracker.vocabulary import FIELD_KEYS, MEASUREMENT

DEFAULT_RETENTION_POLICY = "autogen"
MAX_BUCKETS = 1_000_000  # GROUP BY time buckets per series; InfluxDB's max-select-buckets, made finite
_FIELDS = frozenset(FIELD_KEYS)
_SELECTORS = frozenset({"first", "last", "min", "max"})
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

Row = Sequence[Any]


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
    user: str
    readable: list[str]  # databases this user may read (own first)
    default_db: str  # the `db` parameter ("" if absent)
    default_rp: str  # the `rp` parameter
    epoch: str | None  # None: RFC 3339 strings
    now_ns: int
    batch: int = 5000  # rows per fetch from SQLite
    retention_ns: Callable[[str], Awaitable[int]] = _keeps_everything  # a database's retention, 0 = forever


def statement_database(statement: Statement, default_db: str) -> str | None:
    """The database a statement reads: its own "db". prefix or ON clause, else the `db` parameter."""
    if isinstance(statement, (ShowDatabases, CreateDatabase, UnsupportedStatement)):
        return None
    sources: list[Source] = []
    if isinstance(statement, SelectStatement):
        sources = statement.sources
    elif isinstance(statement, (ShowFieldKeys, ShowTagKeys, ShowTagValues, ShowSeries)):
        sources = statement.from_
    explicit = getattr(statement, "database", None) or next((s.database for s in sources if s.database), None)
    return explicit or default_db or None


async def execute(statement: Statement, ctx: Context) -> Output:
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
    else:  # pragma: no cover - every parsed statement type is handled above
        raise StatementError(f"statement not supported by Tracker: {type(statement).__name__}")
    async for item in runner(statement, database, ctx):
        yield item


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
    where = _compile_condition(rest, series)
    group_keys = _group_keys(statement.group_by_tags, series)
    if statement.is_aggregate:
        runner = _aggregate_select(statement, database, ctx, start, end, where, series, group_keys)
    else:
        runner = _raw_select(statement, database, ctx, start, end, where, series, group_keys)
    async for item in runner:
        yield item


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


async def _raw_select(
    statement: SelectStatement,
    database: str,
    ctx: Context,
    start: int,
    end: int,
    where: QueryFilter,
    series: SeriesTags,
    group_keys: list[str],
) -> Output:
    names: list[str] = []
    columns: list[QueryColumn] = []
    tag_keys = [key for key in _tag_keys(series) if key not in group_keys]
    for item in statement.fields:
        if isinstance(item.expr, Wildcard):
            hint = item.expr.type_hint
            found: list[tuple[str, QueryColumn]] = []
            if hint != "tag":
                fields = await storage.query_field_keys(ctx.store, database, start, end)
                found += [(name, storage.field_sql(name)) for name in fields]
            if hint != "field":
                found += [(key, storage.tag_sql(key, series)) for key in tag_keys]
            for name, column in sorted(found, key=lambda pair: pair[0]):
                names.append(name)
                columns.append(column)
        else:
            names.append(item.name)
            columns.append(_value_sql(item.expr, series))
    header_columns = ["time", *_unique_names(names)]
    for tags, group_where in _groups(group_keys, series, where):
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
        ):
            yield header, rows


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
    statement: SelectStatement,
    database: str,
    ctx: Context,
    start: int,
    end: int,
    where: QueryFilter,
    series: SeriesTags,
    group_keys: list[str],
) -> Output:
    keys: list[tuple[str, str]] = []
    for item in statement.fields:
        for call in _calls(item.expr):
            if _call_key(call) not in keys:
                keys.append(_call_key(call))
    interval = statement.group_by_time
    # A lone selector without GROUP BY time answers with the time of the point it selected.
    point_times = (
        interval is None and len(statement.fields) == 1 and isinstance(statement.fields[0].expr, Call)
        and statement.fields[0].expr.name in _SELECTORS
    )  # fmt: skip
    if interval is not None and end == MAX_TIME:
        end = ctx.now_ns + 1  # InfluxDB ends GROUP BY time at now() when no upper bound is given
    header_columns = ["time", *_unique_names([item.name for item in statement.fields])]
    fill = statement.fill if statement.fill is not None else "null"
    counts = [i for i, item in enumerate(statement.fields) if isinstance(item.expr, Call) and item.expr.name == "count"]

    for tags, group_where in _groups(group_keys, series, where):
        data = await storage.query_aggregates(
            ctx.store,
            database,
            start_ns=start,
            end_ns=end,
            calls=keys,
            where=group_where,
            interval_ns=None if interval is None else interval[0],
            offset_ns=0 if interval is None else interval[1],
            point_times=point_times,
        )
        if not data:
            continue
        buckets: list[tuple[int, list[Any], bool]] = []  # (time, values, had data)
        if interval is None:
            values, times = _evaluate_bucket(statement.fields, keys, data[0])
            at = times[0] if point_times and times[0] is not None else (start if start != MIN_TIME else 0)
            buckets.append((at, values, True))
        else:
            every, offset = interval
            first = (start - offset) // every if start != MIN_TIME else min(data)
            last = (end - 1 - offset) // every
            if last - first + 1 > MAX_BUCKETS:
                raise StatementError(
                    f"GROUP BY time gives {last - first + 1} buckets, more than {MAX_BUCKETS}: "
                    "use a larger interval or a narrower time range"
                )
            for index in range(first, last + 1):
                found = data.get(index)
                if found is None:
                    if fill == "none":
                        continue
                    buckets.append((index * every + offset, [None] * len(statement.fields), False))
                else:
                    buckets.append((index * every + offset, _evaluate_bucket(statement.fields, keys, found)[0], True))
            _fill(buckets, fill, counts)
        if statement.order_desc:
            buckets.reverse()
        stop = None if statement.limit is None else statement.offset + statement.limit
        chosen = buckets[statement.offset : stop]
        if not chosen:
            continue
        header = SeriesHeader(MEASUREMENT, header_columns, tags)
        for i in range(0, len(chosen), ctx.batch):
            yield header, [
                [format_time(at, ctx.epoch), *map(_json_number, values)] for at, values, _ in chosen[i : i + ctx.batch]
            ]


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
        out_times.append(times.get(_call_key(item.expr)) if isinstance(item.expr, Call) else None)
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


def _fill(buckets: list[tuple[int, list[Any], bool]], fill: str | float, counts: list[int]) -> None:
    """Fill missing values in place: null (count says 0), a number, previous, or linear."""
    if fill == "none":
        return
    width = len(buckets[0][1]) if buckets else 0
    for column in range(width):
        if fill == "null":
            if column in counts:
                for _, values, had_data in buckets:
                    if not had_data:
                        values[column] = 0  # InfluxDB: COUNT() reports 0 for intervals with no data
        elif fill == "previous":
            last = None
            for _, values, _ in buckets:
                if values[column] is None:
                    values[column] = last
                else:
                    last = values[column]
        elif fill == "linear":
            known = [(at, values[column]) for at, values, _ in buckets if values[column] is not None]
            k = 0
            for at, values, _ in buckets:
                while k < len(known) and known[k][0] < at:
                    k += 1
                if values[column] is None and 0 < k < len(known):
                    (t0, v0), (t1, v1) = known[k - 1], known[k]
                    values[column] = v0 + (v1 - v0) * (at - t0) / (t1 - t0)
        else:
            for _, values, _ in buckets:
                if values[column] is None:
                    values[column] = fill


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


_TRUE, _FALSE = QueryFilter("1"), QueryFilter("0")


def _compile_condition(expr: Expr | None, series: SeriesTags) -> QueryFilter:
    """The WHERE remainder as SQL: fields compare in SQL, tag comparisons become series-id sets."""
    if expr is None:
        return _TRUE
    if isinstance(expr, BooleanLiteral):
        return _TRUE if expr.value else _FALSE
    if not isinstance(expr, BinaryExpr):
        raise StatementError("invalid condition")
    if expr.op in ("AND", "OR"):
        return storage.combine_filters(expr.op, _compile_condition(expr.lhs, series), _compile_condition(expr.rhs, series))
    lhs, rhs = expr.lhs, expr.rhs
    if isinstance(lhs, VarRef) and _is_tag(lhs) or isinstance(rhs, VarRef) and _is_tag(rhs):
        return storage.series_in([sid for sid, tags in series.items() if _tag_condition(expr, tags)])
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


def _matching_series(condition: Expr | None, series: SeriesTags) -> SeriesTags:
    if condition is None:
        return series
    try:
        _, _, rest = time_range(condition, 0)  # time terms say nothing about which series exist
    except QueryParseError as exc:
        raise StatementError(exc.message) from None
    if rest is None:
        return series
    return {sid: tags for sid, tags in series.items() if _tag_condition(rest, tags)}


# ---------------------------------------------------------------------------------------------
# SHOW


def _from_samples(sources: list[Source], ctx: Context) -> bool:
    return not sources or _reads_samples(sources, ctx.default_rp)


def _page(rows: list[Row], limit: int | None, offset: int) -> list[Row]:
    return rows[offset : None if limit is None else offset + limit]


async def _show_measurements(statement: ShowMeasurements, database: str, ctx: Context) -> Output:
    if not statement.matches_name(MEASUREMENT) or not await storage.query_has_samples(ctx.store, database):
        return
    if statement.condition is not None:
        series = await storage.query_series(ctx.store, database)
        if not _matching_series(statement.condition, series):
            return
    rows = _page([[MEASUREMENT]], statement.limit, statement.offset)
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
    series = _matching_series(statement.condition, await storage.query_series(ctx.store, database))
    rows = _page([[key] for key in _tag_keys(series)], statement.limit, statement.offset)
    if rows:
        yield SeriesHeader(MEASUREMENT, ["tagKey"]), rows


async def _show_tag_values(statement: ShowTagValues, database: str, ctx: Context) -> Output:
    if not _from_samples(statement.from_, ctx):
        return
    series = _matching_series(statement.condition, await storage.query_series(ctx.store, database))
    pairs = sorted(
        {(key, value) for tags in series.values() for key, value in tags.items() if statement.matches_key(key)}
    )
    rows = _page([list(pair) for pair in pairs], statement.limit, statement.offset)
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
    series = _matching_series(statement.condition, await storage.query_series(ctx.store, database))
    keys = sorted(series_key(tags) for tags in series.values())
    rows = _page([[key] for key in keys], statement.limit, statement.offset)
    if rows:
        yield SeriesHeader(None, ["key"]), rows
