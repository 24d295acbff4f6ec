"""Limits, each at its boundary: the limit passes, one more is refused with a clear error.

Everything runs against a real server (in-process aiohttp, real SQLite files); the slow-client and
header tests talk raw HTTP over a socket, so nothing a client library does hides what happens.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner

from tests.conftest import AddUser, basic, stored
from tracker import cli, storage
from tracker.app import create_app
from tracker.appkeys import SAMPLES
from tracker.config import Settings
from tracker.lineprotocol import Point
from tracker.storage import QueryTimeout, SampleStore

AUTH = basic("test", "test1234")
MakeClient = Callable[..., Awaitable[TestClient]]


@pytest.fixture
async def make_client(
    aiohttp_client: Callable[..., Awaitable[TestClient]], settings: Settings, add_user: AddUser
) -> MakeClient:
    """A server with some settings changed, and the user `test`."""
    await add_user("test", "test1234")

    async def make(**changes: Any) -> TestClient:
        return await aiohttp_client(create_app(settings.with_(**changes)))

    return make


def padded(size: int, time_s: int = 1) -> bytes:
    """A valid write body of exactly `size` bytes: one sample, then a comment filling the rest."""
    body = b"samples hr_bpm=1 %d\n#" % time_s
    assert size >= len(body)
    return body + b"x" * (size - len(body))


def line_of(size: int, time_ns: int) -> bytes:
    """One valid line of exactly `size` bytes (the value's decimals fill it up)."""
    prefix, suffix = b"samples hr_bpm=1.", b" %d" % time_ns
    return prefix + b"0" * (size - len(prefix) - len(suffix)) + suffix


async def write(client: TestClient, body: bytes, **headers: str) -> tuple[int, dict[str, Any] | None]:
    resp = await client.post("/write?db=test&precision=s", data=body, headers={**AUTH, **headers})
    return resp.status, (await resp.json() if resp.status != 204 else None)


async def stored_times(settings: Settings) -> list[int]:
    return [sample.time for sample in await stored(settings, "test")]


# ----- body size and decompressed size ------------------------------------------------------------


async def test_body_size_boundary(make_client: MakeClient, settings: Settings) -> None:
    client = await make_client(max_body_size=200)
    assert await write(client, padded(200, 1)) == (204, None)
    assert await write(client, padded(201, 2)) == (413, {"error": "Request Entity Too Large"})

    def chunks(body: bytes):  # no Content-Length: the limit holds while reading
        async def gen():
            for i in range(0, len(body), 50):
                yield body[i : i + 50]

        return gen()

    resp = await client.post("/write?db=test&precision=s", data=chunks(padded(200, 3)), headers=AUTH)
    assert resp.status == 204
    resp = await client.post("/write?db=test&precision=s", data=chunks(padded(201, 4)), headers=AUTH)
    assert resp.status == 413 and await resp.json() == {"error": "Request Entity Too Large"}
    assert await stored_times(settings) == [1 * 10**9, 3 * 10**9]


async def test_decompressed_size_boundary(make_client: MakeClient, settings: Settings) -> None:
    client = await make_client(max_body_size=1000, max_decompressed_size=2000)
    gz = {"Content-Encoding": "gzip"}
    refused = {"error": "Request Entity Too Large: body exceeds 2000 bytes once decompressed"}
    assert await write(client, gzip.compress(padded(2000, 1)), **gz) == (204, None)
    assert await write(client, gzip.compress(padded(2001, 2)), **gz) == (413, refused)
    # concatenated members count together
    two = gzip.compress(padded(1000, 3)) + gzip.compress(b"#" + b"x" * 999)
    assert await write(client, two, **gz) == (204, None)
    two = gzip.compress(padded(1000, 4)) + gzip.compress(b"#" + b"x" * 1000)
    assert await write(client, two, **gz) == (413, refused)
    # a bomb: 450 times its size once inflated
    bomb = gzip.compress(b"\n" * 900_000, compresslevel=9)
    assert len(bomb) < 1000
    assert await write(client, bomb, **gz) == (413, refused)
    assert await stored_times(settings) == [1 * 10**9, 3 * 10**9]


# ----- line length and lines per request ----------------------------------------------------------


async def test_line_length_boundary_is_a_per_line_refusal(make_client: MakeClient, settings: Settings) -> None:
    client = await make_client(max_line_length=40)
    body = line_of(40, 1) + b"\n" + line_of(41, 2) + b"\r\n" + line_of(40, 3) + b"\r\n"
    status, answer = await write(client, body)
    assert status == 400
    preview = line_of(41, 2).decode()  # a short line is quoted whole, a long one cut at 64 characters
    assert answer == {"error": f"partial write: unable to parse '{preview}': line 2: line too long (41 bytes, limit 40) dropped=0"}
    assert await stored_times(settings) == [1 * 10**9, 3 * 10**9]  # the lines around it are written
    status, answer = await write(client, line_of(41, 4))
    assert status == 400 and answer is not None
    assert answer["error"].endswith("line 1: line too long (41 bytes, limit 40)")
    # the v2 endpoint shares the limit
    resp = await client.post("/api/v2/write?bucket=test&precision=s", data=line_of(41, 5), headers=AUTH)
    assert resp.status == 400 and "line too long (41 bytes, limit 40)" in (await resp.json())["error"]
    assert await stored_times(settings) == [1 * 10**9, 3 * 10**9]


async def test_a_huge_line_is_refused_without_echoing_it(make_client: MakeClient, settings: Settings) -> None:
    client = await make_client()  # the defaults: 64 KiB per line
    huge = b'samples,device=x note="' + b"a" * 5_000_000 + b'"'  # a quoted string: the slow path's worst case
    status, answer = await write(client, b"samples hr_bpm=7 7\n" + huge + b"\nsamples hr_bpm=8 8")
    assert status == 400 and answer is not None
    assert answer["error"].endswith("line 2: line too long (5000024 bytes, limit 65536) dropped=0")
    assert len(answer["error"]) < 300
    assert await stored_times(settings) == [7 * 10**9, 8 * 10**9]


async def test_lines_per_request_boundary(make_client: MakeClient, settings: Settings) -> None:
    client = await make_client(max_lines_per_request=5)
    five = b"".join(b"samples hr_bpm=1 %d\n" % i for i in range(1, 6))
    assert await write(client, five) == (204, None)
    assert await write(client, five.rstrip(b"\n")) == (204, None)  # a last line without newline counts once
    refused = {"error": "Request Entity Too Large: 6 lines, more than the limit of 5 per request"}
    assert await write(client, five + b"samples hr_bpm=1 6") == (413, refused)
    assert await write(client, five + b"\n") == (413, refused)  # a blank line counts too
    assert await write(client, gzip.compress(five + b"# six\n"), **{"Content-Encoding": "gzip"}) == (413, refused)
    assert await stored_times(settings) == [i * 10**9 for i in range(1, 6)]  # nothing of the refused ones


# ----- query text ---------------------------------------------------------------------------------


async def query(client: TestClient, q: str, *, method: str = "GET", **params: str) -> tuple[int, dict[str, Any]]:
    if method == "GET":
        resp = await client.get("/query", params={"q": q, "db": "test", **params}, headers=AUTH)
    else:
        resp = await client.post("/query", data={"q": q, "db": "test", **params}, headers=AUTH)
    if resp.status >= 400:
        assert resp.headers["X-Influxdb-Error"]
    return resp.status, await resp.json()


async def test_query_length_boundary(make_client: MakeClient) -> None:
    client = await make_client(max_query_length=60)
    text = "SELECT hr_bpm FROM samples"
    for method in ("GET", "POST"):
        assert await query(client, text.ljust(60), method=method) == (200, {"results": [{"statement_id": 0}]})
        assert await query(client, text.ljust(61), method=method) == (
            400,
            {"error": "error parsing query: the query is 61 characters long, more than the limit of 60"},
        )


async def test_nesting_depth_boundary(make_client: MakeClient) -> None:
    client = await make_client()
    ok = {"results": [{"statement_id": 0}]}
    nested = "SELECT hr_bpm FROM samples WHERE {}hr_bpm > 1{}"
    assert await query(client, nested.format("(" * 100, ")" * 100)) == (200, ok)
    status, answer = await query(client, nested.format("(" * 101, ")" * 101))
    assert status == 400
    assert answer["error"].startswith("error parsing query: parentheses nested too deeply (more than 100 levels)")
    chain = "SELECT {} FROM samples"
    assert await query(client, chain.format(" + ".join(["hr_bpm"] * 256))) == (200, ok)  # 255 operators: 256 levels
    status, answer = await query(client, chain.format(" + ".join(["hr_bpm"] * 257)))
    assert status == 400
    assert answer["error"].startswith("error parsing query: expression is too complex (more than 256 levels deep)")


@pytest.mark.parametrize(
    "text",
    [
        "SELECT hr_bpm FROM samples WHERE " + "(" * 100_000 + "hr_bpm > 1" + ")" * 100_000,
        "SELECT " + "(" * 100_000 + "hr_bpm" + ")" * 100_000 + " FROM samples",
        "SELECT " + "-(" * 60_000 + "hr_bpm" + ")" * 60_000 + " FROM samples",
        "SELECT " + "mean(" * 25_000 + "hr_bpm" + ")" * 25_000 + " FROM samples",
        "SELECT " + " + ".join(["hr_bpm"] * 25_000) + " FROM samples",
        "SELECT hr_bpm FROM samples WHERE " + " AND ".join(["hr_bpm > 1"] * 15_000),
        "SELECT hr_bpm FROM samples WHERE " + " OR ".join(f"device = '{i}'" for i in range(10_000)),
    ],
    ids=["where-parens", "select-parens", "unary", "calls", "plus-chain", "and-chain", "or-chain"],
)
async def test_deeply_nested_query_text_is_a_400(make_client: MakeClient, text: str) -> None:
    client = await make_client()
    assert len(text) < Settings().max_query_length  # the nesting is what is refused here
    status, answer = await query(client, text, method="POST")
    assert status == 400
    assert answer["error"].startswith("error parsing query: ")
    assert "too deeply" in answer["error"] or "too complex" in answer["error"]
    # past the length limit it is refused before any parsing
    status, answer = await query(client, text.ljust(300_000), method="POST")
    assert (status, answer) == (400, {"error": "error parsing query: the query is 300000 characters long, more than the limit of 262144"})


# ----- query result size and time -----------------------------------------------------------------


async def test_max_select_points_boundary(make_client: MakeClient) -> None:
    body = b"".join(b"samples hr_bpm=%d %d\n" % (100 + i, i) for i in range(30))
    for limit, ok in ((30, True), (29, False)):
        client = await make_client(max_select_points=limit)
        assert await write(client, body) == (204, None)
        for q in ("SELECT hr_bpm FROM samples", "SELECT mean(hr_bpm) FROM samples WHERE time < 30s GROUP BY time(1s)"):
            status, answer = await query(client, q)
            assert status == 200
            (result,) = answer["results"]
            if ok:
                assert "error" not in result and len(result["series"][0]["values"]) == 30
            else:
                assert result["error"] == "max-select-point limit exceeed: (30/29)"  # InfluxDB's words, typo included
        # the same inside a chunked answer
        resp = await client.get("/query", params={"q": "SELECT hr_bpm FROM samples", "db": "test", "chunked": "true"}, headers=AUTH)
        text = await resp.text()
        assert resp.status == 200 and ("max-select-point limit exceeed: (30/29)" in text) is not ok
        # SHOW statements are not SELECTs
        status, answer = await query(client, "SHOW FIELD KEYS")
        assert status == 200 and "error" not in answer["results"][0]


async def test_query_timeout_is_reported_in_the_result_and_ends_the_query(make_client: MakeClient) -> None:
    body = b"".join(b"samples hr_bpm=%d,pwr_w=%d %d\n" % (i % 200, i % 500, i) for i in range(20_000))
    client = await make_client(query_timeout=1e-6)  # already over when the first statement runs
    assert await write(client, body) == (204, None)
    for q in (
        "SELECT hr_bpm FROM samples; SELECT pwr_w FROM samples",
        "SELECT mean(hr_bpm) FROM samples GROUP BY time(1m); SHOW DATABASES",
    ):
        status, answer = await query(client, q)
        assert status == 200
        # InfluxDB kills the query and the next statements do not run: as influxd 1.6.7 (query-timeout
        # set) answers, "not executed" in place of the statement that ran out of time
        assert answer["results"] == [{"statement_id": 0, "error": "not executed"}]
    status, answer = await query(client, "SELECT hr_bpm FROM samples")  # alone, it says why
    assert answer["results"] == [{"statement_id": 0, "error": "query-timeout limit exceeded"}]
    # a generous limit answers in full
    client = await make_client(query_timeout=60)
    status, answer = await query(client, "SELECT hr_bpm FROM samples; SELECT count(pwr_w) FROM samples")
    assert status == 200 and len(answer["results"][0]["series"][0]["values"]) == 20_000
    assert answer["results"][1]["series"][0]["values"][0][1] == 20_000


async def test_a_deadline_interrupts_only_its_own_sqlite_statement(tmp_path: Path) -> None:
    """The deadline is enforced inside SQLite (its progress handler interrupts the statement), and only
    for the statement that carries it: another read on the same connection runs to its end."""
    store = SampleStore(tmp_path)
    try:
        await store.write(
            "rider", [Point("samples", (), {"hr_bpm": float(i % 180), "pwr_w": float(i % 400)}, i) for i in range(30_000)]
        )
        columns = [storage.field_sql("hr_bpm")]

        async def read(deadline: float | None) -> int:
            rows = 0
            async for batch in storage.query_raw(
                store, "rider", start_ns=0, end_ns=10**9, columns=columns, deadline=deadline, batch=1000
            ):
                rows += len(batch)
            return rows

        past = time.monotonic() - 1.0  # only SQLite looks at it in query_raw: no Python-side check
        with pytest.raises(QueryTimeout):
            await read(past)
        with pytest.raises(QueryTimeout):
            await storage.query_aggregates(
                store, "rider", start_ns=0, end_ns=10**9, calls=[("mean", "hr_bpm"), ("median", "pwr_w")],
                interval_ns=1000, deadline=past,
            )  # fmt: skip
        # interleaved on the one read connection: the bounded statement stops, the other one does not
        bounded, unbounded = await asyncio.gather(read(past), read(None), return_exceptions=True)
        assert isinstance(bounded, QueryTimeout)
        assert unbounded == 30_000
        assert await read(time.monotonic() + 60) == 30_000  # and the connection is fine afterwards
    finally:
        await store.close()


# ----- request URL and header sizes, slow clients (raw sockets) -----------------------------------


@pytest.fixture
async def make_server(aiohttp_server: Callable[..., Awaitable[TestServer]], settings: Settings, add_user: AddUser):
    await add_user("test", "test1234")

    async def make(**changes: Any) -> TestServer:
        return await aiohttp_server(create_app(settings.with_(**changes)))

    return make


async def exchange(server: TestServer, request: bytes, timeout: float = 10.0) -> bytes:
    """Send one raw request and read until the server closes the connection."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(timeout):
            return await reader.read()
    finally:
        writer.close()


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


async def test_a_client_that_stops_reading_an_answer_is_cut_off_and_the_read_ends(
    make_server: Callable[..., Awaitable[TestServer]],
) -> None:
    server = await make_server(query_timeout=1.0)
    body = "".join(f"samples hr_bpm={i % 200},pwr_w={i % 700},cad_rpm={i % 90} {i}\n" for i in range(1, 90_001))
    async with aiohttp.ClientSession() as session:
        resp = await session.post(server.make_url("/write?db=test&precision=s"), data=body, headers=AUTH)
        assert resp.status == 204
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a tiny window: the answer backs up at once
    sock.connect((server.host, server.port))
    reader, writer = await asyncio.open_connection(sock=sock)
    q = b"%3B".join([b"SELECT%20*%20FROM%20samples"] * 8)  # ~30 MB of answer, far more than any socket buffer
    writer.write(b"GET /query?db=test&q=" + q + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: "
                 + AUTH["Authorization"].encode() + b"\r\n\r\n")  # fmt: skip
    handle = server.app[SAMPLES]._files["test"]
    async with asyncio.timeout(20):  # the deadline (1 s) and the grace for a last write (5 s), with room to spare
        while handle.active_reads == 0:  # the statement starts, and its answer backs up: nobody reads it
            await asyncio.sleep(0.05)
        while handle.active_reads:  # ... until the deadline ends the statement
            await asyncio.sleep(0.1)
    async with asyncio.timeout(15):
        answer = await reader.read()  # the connection ends: cut off, or (on a slow day) finished with the error
    writer.close()
    assert status_of(answer) == 200
    assert not answer.endswith(b"]}\n") or answer.endswith(
        (b'"error":"not executed"}]}\n', b'"error":"query-timeout limit exceeded"}]}\n')
    )  # "not executed" unless the last statement ran out of time


async def test_url_and_header_size_boundaries(make_server: Callable[..., Awaitable[TestServer]]) -> None:
    server = await make_server(max_url_length=100, max_header_size=200)
    close = b"Host: x\r\nConnection: close\r\n"

    def get(url: bytes, header: bytes = b"") -> bytes:
        return b"GET " + url + b" HTTP/1.1\r\n" + header + close + b"\r\n"

    url = b"/ping?pad=" + b"a" * 90
    assert len(url) == 100
    assert status_of(await exchange(server, get(url))) == 204
    answer = await exchange(server, get(url + b"a"))
    assert status_of(answer) == 400
    assert b"Got more than 100 bytes when reading" in answer  # aiohttp's words, as text/plain
    # a header's name and value together (without ": " and the line end); aiohttp counts the last
    # header of a request a few bytes too generously, so the one measured here comes first
    name = b"X-Pad"
    header = name + b": " + b"b" * (200 - len(name)) + b"\r\n"
    assert status_of(await exchange(server, get(b"/ping", header))) == 204
    answer = await exchange(server, get(b"/ping", header.replace(b"b", b"bb", 1)))
    assert status_of(answer) == 400 and b"Got more than 200 bytes when reading" in answer


async def test_a_client_trickling_its_head_is_cut_off_while_others_are_served(
    make_server: Callable[..., Awaitable[TestServer]],
) -> None:
    server = await make_server(read_timeout=1.0)
    reader, writer = await asyncio.open_connection(server.host, server.port)
    idle_reader, idle_writer = await asyncio.open_connection(server.host, server.port)  # sends nothing at all
    started = time.monotonic()
    request = b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"z" * 1000

    async def trickle() -> float:
        for byte in request:
            if reader.at_eof():
                break
            writer.write(bytes([byte]))
            try:
                await writer.drain()
            except ConnectionError:
                break
            await asyncio.sleep(0.05)
        return time.monotonic() - started

    async def read_until_closed(stream: asyncio.StreamReader) -> tuple[bytes, float]:
        try:
            data = await stream.read()
        except ConnectionError:
            data = b""
        return data, time.monotonic() - started

    async with asyncio.timeout(10):
        trickling = asyncio.create_task(trickle())
        closed = asyncio.create_task(read_until_closed(reader))
        idle_closed = asyncio.create_task(read_until_closed(idle_reader))
        await asyncio.sleep(0.3)
        # meanwhile, other clients are served at once
        for _ in range(3):
            assert status_of(await exchange(server, b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")) == 204
        data, after = await closed
        idle_data, idle_after = await idle_closed
        await trickling
    writer.close()
    idle_writer.close()
    assert data == b"" and idle_data == b""  # closed without an answer: the head never completed
    assert 0.9 <= after < 5 and 0.9 <= idle_after < 5


async def test_a_client_trickling_its_body_gets_408_and_is_cut_off(
    make_server: Callable[..., Awaitable[TestServer]], settings: Settings
) -> None:
    server = await make_server(read_timeout=1.0)
    head = (
        b"POST /write?db=test&precision=s HTTP/1.1\r\nHost: x\r\nAuthorization: "
        + AUTH["Authorization"].encode()
        + b"\r\nContent-Length: 1000\r\n\r\n"
    )
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(head + b"samples hr_bpm=1 1\n")
    started = time.monotonic()

    async def trickle() -> None:
        try:
            for _ in range(200):
                await asyncio.sleep(0.05)
                writer.write(b"#")
                await writer.drain()
        except ConnectionError:
            pass

    trickling = asyncio.create_task(trickle())
    async with asyncio.timeout(10):
        answer = await reader.read()  # until the server closes
    elapsed = time.monotonic() - started
    trickling.cancel()
    writer.close()
    assert status_of(answer) == 408
    assert answer.endswith(b'{"error":"timeout: the request body did not arrive within 1 s"}\n')
    assert 0.9 <= elapsed < 5
    assert await stored(settings, "test") == []

    # a body that arrives in pieces, in time, is fine
    reader, writer = await asyncio.open_connection(server.host, server.port)
    body = b"samples hr_bpm=2 2\n"
    writer.write(head.replace(b"1000", str(len(body)).encode()).replace(b"HTTP/1.1\r\n", b"HTTP/1.1\r\nConnection: close\r\n"))
    for i in range(0, len(body), 5):
        await asyncio.sleep(0.05)
        writer.write(body[i : i + 5])
    async with asyncio.timeout(10):
        answer = await reader.read()
    writer.close()
    assert status_of(answer) == 204
    assert [s.time for s in await stored(settings, "test")] == [2 * 10**9]


# ----- settings, flags and environment ------------------------------------------------------------

LIMIT_FLAGS = {
    "--max-decompressed-size": ("max_decompressed_size", "30000000"),
    "--max-line-length": ("max_line_length", "1000"),
    "--max-lines-per-request": ("max_lines_per_request", "7"),
    "--max-query-length": ("max_query_length", "500"),
    "--max-select-points": ("max_select_points", "0"),
    "--query-timeout": ("query_timeout", "2.5"),
    "--read-timeout": ("read_timeout", "9"),
    "--max-url-length": ("max_url_length", "4096"),
    "--max-header-size": ("max_header_size", "4000"),
    "--max-inflight-decompressed": ("max_inflight_decompressed", "600000000"),
}


def test_every_limit_is_a_serve_flag_and_an_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Settings] = []
    monkeypatch.setattr("tracker.app.run", seen.append)
    args = [item for flag, (_, value) in LIMIT_FLAGS.items() for item in (flag, value)]
    result = CliRunner().invoke(cli.cli, ["serve", *args], env={})
    assert result.exit_code == 0, result.output
    env = {f"TRACKER_{name.upper()}": value for name, value in LIMIT_FLAGS.values()}
    result = CliRunner().invoke(cli.cli, ["serve"], env=env)
    assert result.exit_code == 0, result.output
    for settings in seen:
        for name, value in LIMIT_FLAGS.values():
            assert getattr(settings, name) == type(getattr(Settings(), name))(value), name


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-line-length", "0"], "max line length must be at least 1"),
        (["--max-lines-per-request", "0"], "max lines per request must be at least 1"),
        (["--query-timeout", "-1"], "query timeout must be 0 (no limit) or more"),
        (["--max-select-points", "-5"], "max select points must be 0 (no limit) or more"),
        (["--read-timeout", "0"], "read timeout must be positive"),
        (["--max-header-size", "0"], "max header size must be at least 1"),
        (["--max-inflight-decompressed", "1000"], "max inflight decompressed must be at least the max decompressed size"),
    ],
)
def test_bad_limits_are_one_line_errors(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli.cli, ["serve", *args], env={})
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [f"Error: {message}"]



@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded; charset=\u00ff", "application/json; charset=bogus"])
async def test_a_body_in_a_charset_nobody_knows_is_the_clients_error(
    client: TestClient, add_user: AddUser, content_type: str
) -> None:
    await add_user("test", "test1234")
    body = b"q=SHOW DATABASES&username=test&password=test1234"
    resp = await client.post("/query?db=test", data=body, headers={**AUTH, "Content-Type": content_type})
    assert resp.status == 400
    if "form" in content_type:
        assert (await resp.json())["error"].startswith("unable to parse the form body: unknown encoding")
    # The sign-in reads it as no form and no JSON object: refused for its missing CSRF token, not a 500.
    resp = await client.post("/login", data=body, headers={"Content-Type": content_type})
    assert resp.status == 403
