"""POST /write and POST /api/v2/write: InfluxDB's write answers, our vocabulary, committed before 204."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time

from aiohttp import web

from tracker import ingest, lineprotocol
from tracker.accounts import Writer
from tracker.appkeys import ACCOUNTS, SETTINGS
from tracker.http.auth import authenticate_writer
from tracker.http.body import read_body
from tracker.http.responses import InfluxError
from tracker.influx.errors import no_content
from tracker.lineprotocol import Point
from tracker.retention import RETENTION_POLICY_NAMES

log = logging.getLogger(__name__)

CONSISTENCY_LEVELS = frozenset({"", "any", "one", "quorum", "all"})
V2_PRECISIONS = {"": "ns", "ns": "ns", "us": "u", "ms": "ms", "s": "s"}
# Parsing a large body takes milliseconds of CPU; doing it in a thread lets small live writes
# (the phones) keep flowing meanwhile. Small bodies are cheaper to parse in place.
PARSE_IN_THREAD_BYTES = 64 * 1024
# A write's error quotes at most this many refused lines, each cut to MAX_QUOTE_BYTES, then
# "... and N more"; the whole error stays within MAX_ERROR_BYTES.
QUOTED_LINES = 10
MAX_QUOTE_BYTES = 512
MAX_ERROR_BYTES = 4096


async def write_v1(request: web.Request) -> web.Response:
    query = request.rel_url.query
    writer = await authenticate_writer(request, request.app[ACCOUNTS])
    database = query.get("db", "")
    if not database:
        raise InfluxError(400, "database is required")
    precision = query.get("precision", "") or "ns"
    if precision not in lineprotocol.PRECISION_NS:
        raise InfluxError(400, f'invalid precision "{precision}" (use n, u, ms, s, m or h)')
    if query.get("consistency", "") not in CONSISTENCY_LEVELS:
        raise InfluxError(400, "invalid consistency level")
    return await _write(request, writer, database, query.get("rp", ""), precision)


async def write_v2(request: web.Request) -> web.Response:
    query = request.rel_url.query
    writer = await authenticate_writer(request, request.app[ACCOUNTS])
    bucket = query.get("bucket", "")
    if not bucket:
        raise InfluxError(404, f'bucket name "{bucket}" is missing a slash; not in "database/retention-policy" format')
    database, _, retention_policy = bucket.partition("/")
    if not database:
        raise InfluxError(404, f'bucket name "{bucket}" is in db/rp form but has an empty database')
    precision = query.get("precision", "")
    if precision not in V2_PRECISIONS:
        raise InfluxError(400, f'invalid precision "{precision}" (use ns, us, ms or s)')
    return await _write(request, writer, database, retention_policy, V2_PRECISIONS[precision])


async def _write(request: web.Request, writer: Writer, database: str, retention_policy: str, precision: str) -> web.Response:
    accounts, user = request.app[ACCOUNTS], writer.user
    if user != database:
        # Telling "no such database" apart from "not yours" only to a signed-in user, as InfluxDB does.
        if not await accounts.user_exists(database):
            raise InfluxError(404, f'database not found: "{database}"')
        raise InfluxError(403, f'"{user}" user is not authorized to write to database "{database}"')
    if retention_policy not in RETENTION_POLICY_NAMES:
        # InfluxDB answers 500 here; a client's typo is never a server error in Tracker.
        raise InfluxError(404, f"retention policy not found: {retention_policy}")

    body = await read_body(request)
    if not body:
        return no_content()
    now_ns = time.time_ns()
    max_line = request.app[SETTINGS].max_line_length
    # Parsed and held to the vocabulary in one pass (compiled when built).
    if len(body) > PARSE_IN_THREAD_BYTES:
        parsed = await asyncio.to_thread(lineprotocol.parse_samples, body, precision, now_ns, max_line)
    else:
        parsed = lineprotocol.parse_samples(body, precision, now_ns, max_line)

    accepted, rejected = parsed.points, parsed.refused
    beyond_retention: list[Point] = []
    ahead: list[Point] = []
    if accepted:
        # InfluxDB drops points older than now minus the policy's duration and writes the rest; points
        # from a clock that runs ahead are dropped the same way.
        cutoff = await ingest.cutoff(request.app, user, now_ns)
        kept: list[Point] = []
        for point in accepted:
            if cutoff.beyond_retention(point.time):
                beyond_retention.append(point)
            elif cutoff.ahead(point.time):
                ahead.append(point)
            else:
                kept.append(point)
        accepted = kept
    if accepted:
        try:
            await ingest.commit(request.app, writer, accepted)
        except sqlite3.Error as exc:
            log.error("write for %s failed: %s", user, exc)
            raise InfluxError(500, f"write failed, nothing was stored: {exc}") from None
    quoted = [str(error) for error in parsed.errors] + rejected
    rules = []
    if ahead:
        rules.append(f"points {cutoff.ahead_rule}: {_lines_named(ahead)}")
    if beyond_retention:
        rules.append("points beyond retention policy")
    if not quoted and not rules:
        return no_content()
    # The whole answer stays within MAX_ERROR_BYTES: the rules' lines are short and bounded, the quotes get the rest.
    room = MAX_ERROR_BYTES - 64 - sum(len(rule.encode()) + 1 for rule in rules)
    text = "\n".join(([bounded_quotes(quoted, room)] if quoted else []) + rules)
    if not accepted and not beyond_retention and not ahead:
        raise InfluxError(400, text)
    # InfluxDB counts syntax errors as dropped=0 (sic); we count the lines the vocabulary refused.
    raise InfluxError(400, f"partial write: {text} dropped={len(rejected) + len(beyond_retention) + len(ahead)}")


def _lines_named(points: list[Point]) -> str:
    """Which lines, the first few by number: "line 2", "lines 2, 5, 9 and 40 more"."""
    numbers = [str(point.line_no) for point in points[:QUOTED_LINES]]
    more = len(points) - len(numbers)
    if len(numbers) == 1:
        return f"line {numbers[0]}"
    return f"lines {', '.join(numbers)}" + (f" and {more} more" if more else "")


def bounded_quotes(messages: list[str], limit: int) -> str:
    """The first few messages, one a line, then "... and N more": at most `limit` bytes of UTF-8 in all.

    A partial write names each refused line (InfluxDB quotes every one); a sender whose every flush
    has thousands of them would get as many kilobytes back each time, so only the first are quoted.
    """
    tail_room = 32  # "... and 100000 more" with room to spare
    room = limit - tail_room
    shown: list[str] = []
    for message in messages[:QUOTED_LINES]:
        share = min(room - 1, MAX_QUOTE_BYTES)  # 1: the newline
        if share < 64:
            break
        encoded = message.encode()
        if len(encoded) > share:  # a long line is cut in its middle: the quote's start and the rule stay
            half = (share - 5) // 2
            message = encoded[:half].decode("utf-8", "ignore") + " ... " + encoded[-half:].decode("utf-8", "ignore")
            encoded = message.encode()
        shown.append(message)
        room -= len(encoded) + 1
    more = len(messages) - len(shown)
    return "\n".join(shown + ([f"... and {more} more"] if more else []))
