"""GET and POST /query: InfluxDB 1.x's parameters, authorization, result shapes and streaming.

Order of checks, as InfluxDB's handler: credentials (401), `q` (400), parse (400), authorization of
every statement before any runs (403), then each statement in turn; what goes wrong while one runs
is reported inside its result with status 200.

Answers are JSON text built piece by piece: rows go from SQLite batches through orjson straight
into the body, never into a tree of Python objects for the whole answer. Small answers are sent
with a Content-Length; once an answer outgrows STREAM_AFTER bytes it is streamed (chunked transfer
encoding), so a day of samples never sits in memory at once. `chunked=true` gives InfluxDB's
one-JSON-object-per-line form instead.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import orjson
from aiohttp import hdrs, web
from aiohttp.web import ContentCoding

from tracker.appkeys import ACCOUNTS, QUERY_WORKERS, SAMPLES, SETTINGS
from tracker.influx import select
from tracker.http.auth import authenticate, credentials_from
from tracker.http.responses import JSON, InfluxError, request_id_of
from tracker.influx.errors import INFLUX_VERSION
from tracker.influx.influxql import (
    CreateDatabase,
    DeleteStatement,
    QueryParseError,
    SelectStatement,
    ShowDatabases,
    ShowFieldKeys,
    ShowMeasurements,
    ShowRetentionPolicies,
    ShowSeries,
    ShowTagKeys,
    ShowTagValues,
    Statement,
    UnsupportedStatement,
    parse_query,
)
from tracker.storage import EPOCH_NS

DEFAULT_CHUNK_SIZE = 10_000  # InfluxDB's default rows per chunk
NOT_EXECUTED = "not executed"  # InfluxDB's answer for the statements after one that failed
STREAM_AFTER = 256 * 1024  # bytes of answer held back before switching to a streamed response
# A batch of rows with more values than this is encoded on a query thread (a few hundred µs inline).
ENCODE_INLINE_VALUES = 20_000
# Parsing a long query text takes a while (a few hundred ms at the length limit): off the event loop then.
PARSE_IN_THREAD_CHARS = 16 * 1024
# A client that stops reading a streamed answer is cut off this long after the query's deadline
# (the grace lets the answer's last bytes, such as the timeout error, still reach a reading client).
SEND_GRACE_SECONDS = 5.0
# Statements InfluxDB allows only to admins; Tracker has none, so they are refused like InfluxDB refuses a non-admin.
# Who a caller without credentials is: no user's name. They may read a public user's database
# (`tracker user public NAME on`), named by `db`, and nothing else; their queries share one user's
# worth of query threads.
ANONYMOUS = ""
_ADMIN_ONLY = (
    "GRANT", "REVOKE", "KILL", "ALTER", "SET PASSWORD", "CREATE USER", "DROP USER", "SHOW USERS", "SHOW GRANTS",
    "DROP DATABASE", "CREATE RETENTION", "DROP RETENTION", "SHOW STATS", "SHOW DIAGNOSTICS", "SHOW SHARD",
    "DROP SHARD", "CREATE SUBSCRIPTION", "DROP SUBSCRIPTION", "SHOW SUBSCRIPTIONS", "SHOW QUERIES",
)  # fmt: skip
# Statements that change a database: only its owner may (a share gives read access only).
_CHANGES_DATA = ("DELETE", "DROP", "SELECT INTO", "CREATE CONTINUOUS")
# InfluxDB answers these in one piece per series even when asked for chunks (only SELECT, SHOW SERIES
# and SHOW FIELD KEYS, which it runs as SELECTs, are split).
_ANSWERED_WHOLE = (ShowTagValues, ShowTagKeys, ShowMeasurements, ShowDatabases, ShowRetentionPolicies)
_KIND = {
    SelectStatement: "SELECT",
    ShowMeasurements: "SHOW MEASUREMENTS",
    ShowFieldKeys: "SHOW FIELD KEYS",
    ShowTagKeys: "SHOW TAG KEYS",
    ShowTagValues: "SHOW TAG VALUES",
    ShowRetentionPolicies: "SHOW RETENTION POLICIES",
    ShowSeries: "SHOW SERIES",
    ShowDatabases: "SHOW DATABASES",
}


FLUX_NOT_SUPPORTED = (
    "Flux queries are not supported: Tracker answers InfluxQL, the InfluxDB 1.x query language, "
    "on /query (GET or POST /query?db=<database>&q=SELECT ...)"
)


async def flux_query(request: web.Request) -> web.Response:
    """POST /api/v2/query: a v2 client's Flux. Refused with what to use instead, in the v2 error form
    (`code` and `message`, which influxdb-client and Grafana show) beside InfluxDB 1.x's `error`. The
    answer says nothing about the server's users, so it needs no credentials."""
    raise InfluxError(501, FLUX_NOT_SUPPORTED, details={"code": "not implemented", "message": FLUX_NOT_SUPPORTED})


async def query(request: web.Request) -> web.StreamResponse:
    accounts = request.app[ACCOUNTS]
    anonymous = credentials_from(request) is None
    if not anonymous:
        user = await authenticate(request, accounts)
    params = await _parameters(request)
    default_db = params.get("db", "")
    readable = [] if anonymous else await accounts.readable_databases(user)
    if default_db and default_db not in readable and await accounts.is_public(default_db):
        readable = [*readable, default_db]  # a public user's database, named by `db`: anyone reads it
    if anonymous:
        if not readable:
            await authenticate(request, accounts)  # raises its 401: a private or unknown database alike
        user = ANONYMOUS
    text = params.get("q", "")
    if not text.strip():
        raise InfluxError(400, 'missing required parameter "q"')
    settings = request.app[SETTINGS]
    if len(text) > settings.max_query_length:
        raise InfluxError(
            400, f"error parsing query: the query is {len(text)} characters long, more than the limit of {settings.max_query_length}"
        )
    bind: dict[str, Any] = {}
    if params.get("params"):
        try:
            bind = orjson.loads(params["params"])
        except orjson.JSONDecodeError as exc:
            raise InfluxError(400, f"error parsing query parameters: {exc}") from None
        if not isinstance(bind, dict):
            raise InfluxError(400, "error parsing query parameters: expected a JSON object")
    now_ns = time.time_ns()
    try:
        if len(text) > PARSE_IN_THREAD_CHARS:
            statements = await asyncio.to_thread(parse_query, text, now_ns=now_ns, params=bind)
        else:
            statements = parse_query(text, now_ns=now_ns, params=bind)
    except QueryParseError as exc:
        raise InfluxError(400, exc.message) from None

    _authorize(statements, user, readable, default_db)

    epoch = params.get("epoch", "")
    ctx = select.Context(
        store=request.app[SAMPLES],
        workers=request.app[QUERY_WORKERS],
        user=user,
        readable=readable,
        default_db=default_db,
        default_rp=params.get("rp", ""),
        epoch=None if not epoch else (epoch if epoch in EPOCH_NS else "ns"),  # InfluxDB: anything else is ns
        now_ns=now_ns,
        retention_ns=accounts.retention_ns,
        deadline=time.monotonic() + settings.query_timeout if settings.query_timeout > 0 else None,
        max_points=settings.max_select_points,
        max_buckets=settings.max_select_buckets,
    )
    chunked = params.get("chunked", "") == "true"
    writer = _AnswerWriter(request, pretty=params.get("pretty", "") == "true", chunked=chunked, deadline=ctx.deadline)
    if not statements:  # only `;` and comments: InfluxDB runs nothing and answers {} (nothing when chunked)
        if not chunked:
            await writer.emit(b"{}\n")
        return await writer.finish()
    # Past the deadline InfluxDB kills the query: the statement running reports the timeout, later ones do not run.
    # A statement that fails stops the request, as in InfluxDB: each statement after it is answered
    # "not executed" under the failed one's statement_id (InfluxDB's executor keeps that id), and
    # without chunking those answers replace the failed one's (its handler merges results by id).
    if chunked:
        chunk_size = _positive_int(params.get("chunk_size", ""), DEFAULT_CHUNK_SIZE)
        ctx.batch = min(ctx.batch, chunk_size)
        for statement_id, statement in enumerate(statements):
            size = chunk_size if not isinstance(statement, _ANSWERED_WHOLE) else sys.maxsize
            if await _write_chunked(writer, ctx, statement_id, select.execute(statement, ctx), size) is not None:
                not_executed = orjson.dumps({"results": [{"statement_id": statement_id, "error": NOT_EXECUTED}]}) + b"\n"
                for _ in statements[statement_id + 1 :]:
                    await writer.emit(not_executed)
                break
    else:
        await writer.emit(b'{"results":[')
        for statement_id, statement in enumerate(statements):
            error_shown = NOT_EXECUTED if statement_id < len(statements) - 1 else None
            if await _write_result(writer, ctx, statement_id, select.execute(statement, ctx), error_shown) is not None:
                break
        await writer.emit(b"]}\n")
    return await writer.finish()


async def _parameters(request: web.Request) -> dict[str, str]:
    """URL parameters, overridden by a urlencoded or multipart form body (Go's FormValue order)."""
    params = dict(request.rel_url.query)
    if request.method == "POST" and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        try:
            form = await request.post()
        except (ValueError, LookupError) as exc:  # a broken multipart body, a form that is not UTF-8, an unknown charset
            raise InfluxError(400, f"unable to parse the form body: {exc}") from None
        params.update({key: value for key, value in form.items() if isinstance(value, str)})
    return params


def _positive_int(text: str, default: int) -> int:
    try:
        value = int(text)
    except ValueError:
        return default
    return value if value > 0 else default


def _authorize(statements: list[Statement], user: str, readable: list[str], default_db: str) -> None:
    """Every statement is checked before any runs, as InfluxDB does: one refusal refuses the query."""
    prefix = f"error authorizing query: {user or 'anonymous'} not authorized to execute statement"
    for statement in statements:
        if isinstance(statement, CreateDatabase):
            # Telegraf sends CREATE DATABASE for its own database at startup: that one exists already.
            if statement.name != user:
                raise InfluxError(403, f"{prefix} 'CREATE DATABASE \"{statement.name}\"', requires admin privilege")
        elif isinstance(statement, DeleteStatement):
            # Only the owner deletes, from the database of the `db` parameter; InfluxDB's words for
            # anyone else (DROP MEASUREMENT is an admin's statement there: here the owner's).
            if default_db != user:
                needed = "admin privilege" if statement.keyword == "DROP MEASUREMENT" else f"WRITE on {default_db}"
                raise InfluxError(403, f"{prefix} '{statement.text}', requires {needed}")
        elif isinstance(statement, UnsupportedStatement):
            # Rights first, as InfluxDB: another user's database is refused (403) before "not supported".
            if statement.keyword.startswith(_ADMIN_ONLY):
                raise InfluxError(403, f"{prefix} '{statement.text}', requires admin privilege")
            database = statement.database or default_db
            if database and database not in readable:
                raise InfluxError(403, f"{prefix} '{statement.text}', requires READ on {database}")
            if database and database != user and statement.keyword.startswith(_CHANGES_DATA):
                raise InfluxError(403, f"{prefix} '{statement.text}', requires WRITE on {database}")
        else:
            database = select.statement_database(statement, default_db)
            if database is not None and database not in readable:
                raise InfluxError(403, f"{prefix} '{_KIND.get(type(statement), 'SELECT')}', requires READ on {database}")


# ---------------------------------------------------------------------------------------------
# Writing the answer


class _AnswerWriter:
    """Collects the answer's bytes; starts streaming once it outgrows STREAM_AFTER. A pretty answer is
    indented as a whole, so only while it is that small: a larger one streams unindented (the same
    JSON), rather than being held in memory whole, twice."""

    def __init__(self, request: web.Request, *, pretty: bool, chunked: bool, deadline: float | None = None) -> None:
        self.request = request
        self.pretty = pretty
        self.chunked = chunked
        self.deadline = deadline  # time.monotonic(): a client that stops reading is cut off here
        self.gzip = "gzip" in request.headers.get(hdrs.ACCEPT_ENCODING, "").lower()
        self.pending: list[bytes | memoryview] = []
        self.pending_size = 0
        self.response: web.StreamResponse | None = None

    async def emit(self, data: bytes | memoryview) -> None:
        if self.pretty and self.chunked:
            data = _indent(data)  # every line is a whole JSON object
        if self.response is not None:
            await self._send(data)
            return
        self.pending.append(data)
        self.pending_size += len(data)
        if self.pending_size >= STREAM_AFTER:
            self.response = self._prepared(web.StreamResponse(status=200))
            await self.response.prepare(self.request)
            await self._flush()

    async def _flush(self) -> None:
        assert self.response is not None
        data = b"".join(self.pending)
        self.pending.clear()
        self.pending_size = 0
        await self._send(data)

    async def _send(self, data: bytes | memoryview) -> None:
        assert self.response is not None
        if self.deadline is None:
            await self.response.write(data)
            return
        try:
            async with asyncio.timeout(self.deadline - time.monotonic() + SEND_GRACE_SECONDS):
                await self.response.write(data)
        except TimeoutError:
            # The client stopped reading and the answer cannot be finished: drop the connection,
            # which also ends the statement (its cursor closes as the handler unwinds).
            if self.request.transport is not None:
                self.request.transport.close()
            raise ConnectionResetError("the client stopped reading the answer") from None

    async def finish(self) -> web.StreamResponse:
        if self.response is not None:
            await self.response.write_eof()
            return self.response
        body = b"".join(self.pending)
        if self.pretty and not self.chunked:
            body = _indent(body)
        return self._prepared(web.Response(status=200, body=body))

    def _prepared(self, response: web.StreamResponse) -> web.StreamResponse:
        response.content_type = JSON
        if self.gzip:  # InfluxDB compresses 200 answers only, and only with gzip
            response.enable_compression(ContentCoding.gzip)
        # A streamed answer's headers leave before the conventions middleware sees it: set them here.
        request_id = request_id_of(self.request)
        response.headers["X-Influxdb-Version"] = INFLUX_VERSION
        response.headers["X-Influxdb-Build"] = "OSS"
        response.headers["Request-Id"] = request_id
        response.headers["X-Request-Id"] = request_id
        return response


def _indent(data: bytes) -> bytes:
    return orjson.dumps(orjson.loads(data), option=orjson.OPT_INDENT_2) + b"\n"


async def _encoded(ctx: select.Context, rows: list[Any]) -> bytes:
    """A batch of rows as JSON. A large batch is encoded on a query thread: its size is the user's
    to choose, the event loop is everyone's.
    Whole-number floats arrive as integers already (InfluxDB writes 145, not 145.0): storage does it
    in SQL, which runs without the GIL; fixing the text here cost as much as encoding it."""
    if len(rows) * len(rows[0]) <= ENCODE_INLINE_VALUES:
        return orjson.dumps(rows)
    return await ctx.offload(orjson.dumps, rows)


def _series_keys(header: select.SeriesHeader) -> dict[str, Any]:
    """A series' name, tags and columns, with empty keys left out as InfluxDB does."""
    head: dict[str, Any] = {}
    if header.name is not None:
        head["name"] = header.name
    if header.tags:
        head["tags"] = header.tags
    head["columns"] = header.columns
    return head


def _series_head(header: select.SeriesHeader) -> bytes:
    """`{"name":…,"tags":…,"columns":[…],"values":[`: the opening of a streamed series."""
    return orjson.dumps(_series_keys(header))[:-1] + b',"values":['


async def _write_result(
    writer: _AnswerWriter, ctx: select.Context, statement_id: int, output: select.Output, error_shown: str | None = None
) -> str | None:
    """One result object of the non-chunked answer, series by series, batch by batch; its error if any
    (answered as `error_shown` instead, when given)."""
    await writer.emit(b'%s{"statement_id":%d' % (b"," if statement_id else b"", statement_id))
    current: select.SeriesHeader | None = None
    error: str | None = None
    rows_in_series = 0
    try:
        async for header, rows in output:
            if not rows:
                continue
            if header is not current:
                opening = b',"series":[' if current is None else _series_end(rows_in_series) + b","
                await writer.emit(opening + _series_head(header))
                current, rows_in_series = header, 0
            else:
                await writer.emit(b",")
            rows_in_series += len(rows)
            # "[…],[…]": without the outer brackets (a view: no copy of a batch's text)
            await writer.emit(memoryview(await _encoded(ctx, rows))[1:-1])
    except select.StatementError as exc:
        error = str(exc)
    if current is not None:
        await writer.emit(_series_end(rows_in_series) + b"]")
    if error is not None:
        await writer.emit(b',"error":' + orjson.dumps(error_shown or error))
    await writer.emit(b"}")
    return error


def _series_end(rows: int) -> bytes:
    """The close of a series' values. InfluxDB builds even an unchunked answer from chunks of
    DEFAULT_CHUNK_SIZE rows and joins a series' chunks, keeping the first one's "partial": true."""
    return b'],"partial":true}' if rows > DEFAULT_CHUNK_SIZE else b"]}"


async def _write_chunked(
    writer: _AnswerWriter, ctx: select.Context, statement_id: int, output: select.Output, chunk_size: int
) -> str | None:
    """InfluxDB's chunked form: one `{"results":[…]}` line per series chunk of up to chunk_size rows;
    "partial":true on a series continued in the next line and on a result continued in the next line."""

    async def line(header: select.SeriesHeader | None, rows: list[Any], series_partial: bool, result_partial: bool,
                   error: str | None = None) -> bytes:  # fmt: skip
        result: dict[str, Any] = {"statement_id": statement_id}
        if header is not None and rows:
            series = _series_keys(header)
            series["values"] = orjson.Fragment(await _encoded(ctx, rows))  # already JSON text
            if series_partial:
                series["partial"] = True
            result["series"] = [series]
        if error is not None:
            result["error"] = error
        if result_partial:
            result["partial"] = True
        return orjson.dumps({"results": [result]}) + b"\n"

    current: select.SeriesHeader | None = None
    rows: list[Any] = []
    error: str | None = None
    try:
        async for header, batch in output:
            if not batch:
                continue
            if header is not current:
                if current is not None and rows:
                    await writer.emit(await line(current, rows, False, True))
                current, rows = header, []
            rows.extend(batch)
            # Strictly more than a chunk: only then is it certain that the series goes on.
            while len(rows) > chunk_size:
                await writer.emit(await line(current, rows[:chunk_size], True, True))
                del rows[:chunk_size]
    except select.StatementError as exc:
        error = str(exc)
    try:
        last = await line(current, rows, False, False, error)
    except select.StatementError as exc:  # the deadline passed before the last rows were encoded
        error = str(exc)
        last = await line(None, [], False, False, error)
    await writer.emit(last)
    return error
