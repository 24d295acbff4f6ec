"""A fuzz run of every HTTP endpoint against a real `tracker serve` subprocess.

Seeded (FUZZ_SEED in the environment picks another seed; the default is fixed, so CI repeats the
same run) and bounded: every request has a timeout, and the whole run takes well under 90 s.
Requests are written byte by byte over raw sockets, so invalid UTF-8 reaches every place a client
can put it: the URL, header values, Basic credentials, cookies and bodies.

What must hold for every answer: a status below 500, within the timeout (an event stream only has to
start). After the onslaught: the server still answers, its resident memory (VmRSS) is under
RSS_LIMIT_MB and its peak (VmHWM) under PEAK_LIMIT_MB, and its log holds no traceback and no ERROR.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import os
import random
import time
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from urllib.parse import quote_from_bytes

import pytest

from tests.tracker_process import TrackerProcess

pytestmark = pytest.mark.slow  # a real server for many seconds: left out of `make test-fast`

SEED = int(os.environ.get("FUZZ_SEED", "1405"))
RANDOM_REQUESTS = 2500
CONCURRENCY = 8
TIMEOUT = 30.0  # seconds for any one request
USER, PASSWORD = "fuzz", "fuzz-password-1"
OTHER = "other"
# The server runs with the default limits except these, which keep the run light on a small machine:
# a gzip bomb is cut at 50 MB instead of 250 MB, and a query at 10 s instead of 60 s.
SERVER_ENV = {"TRACKER_MAX_DECOMPRESSED_SIZE": "50000000", "TRACKER_QUERY_TIMEOUT": "10"}
MAX_BODY_SIZE = 25_000_000  # the default
# Resident memory after the run, and its peak during it. The server starts at ~50 MB; parsing and
# storing the run's largest writes (86,400 and 99,999 lines) takes it to ~220 MB, which Python keeps
# for reuse. On top of that a request may hold its body (25 MB) and the inflated body (50 MB), and
# a password check 64 MiB (argon2; the wrong passwords are sent one at a time, among the heavy cases).
RSS_LIMIT_MB = 300
PEAK_LIMIT_MB = 400


# ----- the server -----------------------------------------------------------------------------------


class Server(TrackerProcess):
    def status(self, key: str) -> int:
        """A /proc/PID/status figure in MB (VmRSS, VmHWM)."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) // 1024
        raise KeyError(key)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("fuzz")
    server = Server(folder / "data", folder / "server.log", env=SERVER_ENV)
    for name in (USER, OTHER):
        server.add_user(name, PASSWORD)
    server.start(timeout=30)
    try:
        yield server
        server.stop(timeout=30)  # asserts a clean exit
    finally:
        server.close()


# ----- a raw HTTP/1.1 client ------------------------------------------------------------------------


@dataclass
class Answer:
    status: int | None  # None: the server closed the connection without an answer
    head: bytes
    body: bytes


Headers = list[tuple[bytes, bytes]]


async def send(
    port: int, method: bytes, target: bytes, headers: Headers = (), body: bytes | None = None, *,  # type: ignore[assignment]
    chunked: bool = False, stream: bool = False,
) -> Answer:  # fmt: skip
    """One request on its own connection (Connection: close); the whole answer, or for an event
    stream just its head and first bytes. Raises TimeoutError past TIMEOUT."""
    lines = [method + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
    lines += [name + b": " + value for name, value in headers]
    if body is not None:
        lines.append(b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % len(body))
    payload = b"\r\n".join(lines) + b"\r\n\r\n"
    if body is not None:
        payload += b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if chunked and body else (b"0\r\n\r\n" if chunked else body)
    async with asyncio.timeout(TIMEOUT):
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**20)
        try:
            try:
                writer.write(payload)
                await writer.drain()
            except ConnectionError:
                pass  # refused before the body was read: the answer may still be there
            try:
                if stream:
                    head = await reader.readuntil(b"\r\n\r\n")
                    try:
                        async with asyncio.timeout(0.2):
                            rest = await reader.read(4096)
                    except TimeoutError:
                        rest = b""
                    data = head + rest
                else:
                    data = await reader.read()
            except (ConnectionError, asyncio.IncompleteReadError) as exc:
                data = getattr(exc, "partial", b"")
        finally:
            writer.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1."):
        return Answer(None, head, rest)
    return Answer(int(head.split(b" ", 2)[1]), head, rest)


# ----- what gets sent -------------------------------------------------------------------------------

ROUTES: list[tuple[bytes, bytes]] = [
    (b"POST", b"/write"), (b"POST", b"/api/v2/write"), (b"GET", b"/query"), (b"POST", b"/query"),
    (b"GET", b"/ping"), (b"HEAD", b"/ping"), (b"GET", b"/health"), (b"GET", b"/time"),
    (b"OPTIONS", b"/write"), (b"OPTIONS", b"/query"),
    (b"GET", b"/"), (b"GET", b"/watch/fuzz"), (b"GET", b"/watch/%ff%fe"), (b"GET", b"/static/app.js"),
    (b"GET", b"/static/../../etc/passwd"), (b"GET", b"/vendor/leaflet/leaflet.js"), (b"GET", b"/vendor/x/%2e%2e/y"),
    (b"POST", b"/login"), (b"POST", b"/logout"), (b"GET", b"/api/me"),
    (b"GET", b"/api/watch/fuzz/config"), (b"GET", b"/api/watch/fuzz/samples"), (b"GET", b"/api/watch/other/samples"),
    (b"GET", b"/api/watch/fuzz/events"), (b"GET", b"/api/watch/%C0%AE/events"),
    (b"GET", b"/api/links"), (b"POST", b"/api/links"), (b"DELETE", b"/api/links/1"), (b"DELETE", b"/api/links/%ff"),
    (b"GET", b"/api/profile"), (b"POST", b"/api/profile"),
    (b"GET", b"/api/shares"), (b"POST", b"/api/shares"), (b"DELETE", b"/api/shares"), (b"DELETE", b"/api/shares/other"),
    (b"GET", b"/api/watch/fuzz/devices"), (b"POST", b"/auth"),
    (b"GET", b"/api/tokens"), (b"POST", b"/api/tokens"), (b"DELETE", b"/api/tokens/1"), (b"DELETE", b"/api/tokens/%ff"),
    (b"GET", b"/api/alerts"), (b"POST", b"/api/alerts"), (b"DELETE", b"/api/alerts"),
    (b"GET", b"/api/sessions"), (b"DELETE", b"/api/sessions"), (b"DELETE", b"/api/sessions?all=%ff"), (b"POST", b"/api/password"),
    (b"GET", b"/osmand"), (b"POST", b"/osmand"), (b"GET", b"/gpslogger"), (b"POST", b"/gpslogger"),
    (b"POST", b"/owntracks"), (b"POST", b"/api/v1/samples"), (b"GET", b"/api/v1/openapi.json"),
    (b"POST", b"/api/import"), (b"GET", b"/api/export"), (b"POST", b"/api/courses"), (b"POST", b"/api/courses?name=x"),
    (b"GET", b"/nowhere"), (b"PUT", b"/write"), (b"PATCH", b"/query"), (b"TRACE", b"/"),
]  # fmt: skip
STREAM_PATHS = (b"/api/watch/fuzz/events", b"/api/watch/%C0%AE/events")
# u and p (credentials) are chosen with the other credentials below: a wrong password costs a hash.
PARAMS = [
    "db", "q", "precision", "epoch", "rp", "consistency", "chunked", "chunk_size", "pretty", "params",
    "bucket", "org", "token", "from", "to", "max_points", "verbose", "last_event_id",
    "id", "deviceid", "lat", "lon", "timestamp", "time", "speed", "hr", "location", "d", "device", "partial", "on_conflict",
    "user", "format", "start", "end", "sport",
]  # fmt: skip
QUERY_PIECES = [
    "SELECT", " * ", "hr_bpm", "mean(hr_bpm)", "count(pwr_w)", " FROM samples", ' FROM "fuzz"."autogen"."samples"',
    " WHERE ", "time > now() - 1h", " AND ", " OR ", "device = 'x'", "device =~ /a.*/", "(", ")", " GROUP BY time(1s)",
    " fill(linear)", " LIMIT 3", " OFFSET 2", " ORDER BY time DESC", ";", "SHOW DATABASES", "SHOW SERIES",
    "SHOW TAG VALUES WITH KEY = \"device\"", "CREATE DATABASE fuzz", "DROP DATABASE fuzz", "$x", " + ", " / 0",
    "'\\'", '"', "\u00e9", "\x00", "1e400", "-9223372036854775808", "2024-01-01T00:00:00Z",
]  # fmt: skip
LINE_PIECES = [
    b"samples", b",device=watch", b" ", b"hr_bpm=", b"pwr_w=", b"lat=", b"foo=", b"1", b"-91", b"1.5e3", b"12i",
    b"true", b'"str"', b",", b"=", b"\\", b'"', b"\n", b"\r\n", b"\t", b"#", b"1700000000000000000", b"99999999999999999999",
    b"\xff\xfe", b"\xc3\xa9", b"\xed\xa0\x80", b"\x00",
]  # fmt: skip
VALUES = [
    b"", b"fuzz", b"other", b"..", b"ns", b"s", b"h", b"-1", b"0", b"1", b"99999999999999999999999", b"true", b"false",
    b"autogen", b"fuzz/autogen", b"%ff%fe", b"%00", b"%", b"%zz", b"\xff\xfe", b"\xc3", "\u00e9\u6f22\U0001f600".encode(),
    b"a" * 5000, b'{"x": 1}', b"[1,2]", b"{", b"null",
]  # fmt: skip


def query_text(rng: random.Random) -> str:
    return "".join(rng.choice(QUERY_PIECES) for _ in range(rng.randint(1, 14)))


def line_soup(rng: random.Random) -> bytes:
    return b"".join(rng.choice(LINE_PIECES) for _ in range(rng.randint(0, 40)))


def basic(user: bytes, password: bytes) -> bytes:
    return b"Basic " + base64.b64encode(user + b":" + password)


@dataclass
class Session:
    cookie: bytes  # the Cookie header of a signed-in browser
    csrf: bytes


def random_request(rng: random.Random, session: Session) -> tuple[bytes, bytes, Headers, bytes | None, bool]:
    method, path = rng.choice(ROUTES)
    if rng.random() < 0.05:
        method = rng.choice([b"GET", b"POST", b"DELETE", b"FOO", b"get"])
    params: list[bytes] = []
    for _ in range(rng.randint(0, 5)):
        name = rng.choice(PARAMS).encode() if rng.random() < 0.9 else rng.choice(VALUES)
        if name == b"q":
            value = quote_from_bytes(query_text(rng).encode()).encode()
        elif rng.random() < 0.15:
            value = rng.choice(VALUES)  # raw bytes in the URL, invalid UTF-8 included
        else:
            value = quote_from_bytes(rng.choice(VALUES)).encode()
        params.append(name + b"=" + value)
    if b"db=" not in b"&".join(params) and rng.random() < 0.7:
        params.append(b"db=" + rng.choice([b"fuzz", b"fuzz", b"other", b"nobody"]))
    if b"bucket=" not in b"&".join(params) and path == b"/api/v2/write" and rng.random() < 0.7:
        params.append(b"bucket=fuzz")

    headers: Headers = []
    auth = rng.random()
    if auth < 0.5:
        headers.append((b"Authorization", basic(USER.encode(), PASSWORD.encode())))
    elif auth < 0.55:
        headers.append((b"Authorization", b"Token " + f"{USER}:{PASSWORD}".encode()))
    elif auth < 0.6:
        params.append(b"u=" + USER.encode() + b"&p=" + PASSWORD.encode())
    elif auth < 0.7:  # unusable credentials; wrong passwords are among the heavy cases (each costs a hash)
        headers.append((b"Authorization", rng.choice([
            b"Basic", b"Basic !!!", b"Basic " + base64.b64encode(b"\xff\xfe\xfd"), b"Basic " + base64.b64encode(b"fuzz"),
            b"Bearer x.y.z", b"Token", b"Token \xff:\xfe", b"\xff\xfe", b"Digest a=b",
        ])))  # fmt: skip
    if rng.random() < 0.3:
        headers.append((b"Cookie", rng.choice([session.cookie, session.cookie, b"tracker_session=\xff\xfe; tracker_csrf=x", b"=;;=="])))
    if rng.random() < 0.3:
        headers.append((b"X-CSRF-Token", rng.choice([session.csrf, session.csrf, b"nope", b"\xff"])))
    if rng.random() < 0.1:
        headers.append((b"Last-Event-ID", rng.choice([b"0-0", b"\xff\xfe", b"x" * 3000, b"-", b"999999999999999999999-1"])))
    if rng.random() < 0.1:
        headers.append((rng.choice([b"X-Request-Id", b"Request-Id", b"X-Forwarded-For", b"X-Forwarded-Proto", b"Accept"]),
                        rng.choice(VALUES)))  # fmt: skip
    if rng.random() < 0.2:
        headers.append((b"Accept-Encoding", rng.choice([b"gzip", b"deflate, br", b"\xff"])))
    target = path + (b"?" + b"&".join(params) if params else b"")

    body: bytes | None = None
    if method in (b"POST", b"DELETE", b"PUT", b"PATCH") or rng.random() < 0.05:
        kind = rng.random()
        if kind < 0.4:
            body = line_soup(rng)
        elif kind < 0.55:
            body = json.dumps(rng.choice([{"username": USER, "password": PASSWORD}, {"label": "x" * rng.randint(0, 300),
                              "expires": rng.choice(["2h", "-1s", "999999999d", ""])}, {"public": rng.random() < 0.5},
                              {"viewer": rng.choice([OTHER, USER, "..", ""])}, [], "x",
                              {"after": rng.choice(["1s", "10m", "x"]), "webhook": rng.choice(["ftp://x", "", 5]), "device": None},
                              {"time": rng.choice([1700000000, "2025-06-01T10:00:00Z", "x", None, 1e300]),
                               "device": rng.choice(["w", "", "\u0000", None]), "fields": {"hr_bpm": rng.choice([150, -1, "x"])}},
                              {"samples": [{"time": 1, "fields": {"lat": 91}}, None, {}]},
                              {"_type": "location", "lat": 1, "lon": 2, "tst": rng.choice([1700000000, "x", -1e30])},
                              {"device_id": "x", "location": {"timestamp": "x", "coords": {"latitude": 1}}}])).encode()  # fmt: skip
            headers.append((b"Content-Type", b"application/json"))
        elif kind < 0.7:
            body = b"q=" + quote_from_bytes(query_text(rng).encode()).encode() + b"&db=fuzz&username=fuzz&password=" + rng.choice(VALUES)
            headers.append((b"Content-Type", b"application/x-www-form-urlencoded"))
        elif kind < 0.8:
            body = rng.randbytes(rng.randint(0, 2000))
            headers.append((b"Content-Type", rng.choice([b"application/json", b"application/x-www-form-urlencoded",
                            b"multipart/form-data; boundary=zz", b"text/plain; charset=\xff", b"\xff"])))  # fmt: skip
        else:
            body = gzip.compress(line_soup(rng))
            if rng.random() < 0.3:
                body = body[: rng.randint(0, len(body))]  # truncated
            headers.append((b"Content-Encoding", rng.choice([b"gzip", b"GZIP", b"deflate", b"\xff"])))
    return method, target, headers, body, rng.random() < 0.1 and body is not None


# ----- heavy, deterministic cases ------------------------------------------------------------------


def gzip_bomb(inflated: int, members: int = 1) -> bytes:
    """`members` gzip members that together inflate to `inflated` bytes of newlines."""
    out = []
    for _ in range(members):
        packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        chunk = b"\n" * 2**20
        parts = [packer.compress(chunk) for _ in range(inflated // members // len(chunk))]
        out.append(b"".join(parts) + packer.flush())
    return b"".join(out)


def heavy_cases(form_csrf: bytes) -> list[tuple[str, bytes, bytes, Headers, bytes | None, tuple[int, ...]]]:
    """(name, method, target, headers, body, acceptable statuses); `form_csrf`: a genuine pre-login CSRF token."""
    auth = [(b"Authorization", basic(USER.encode(), PASSWORD.encode()))]
    gz = [*auth, (b"Content-Encoding", b"gzip")]
    form = [*auth, (b"Content-Type", b"application/x-www-form-urlencoded")]
    million = b"samples hr_bpm=1 1\n" * 1_000_000
    deep_where = "SELECT hr_bpm FROM samples WHERE " + "(" * 100_000 + "hr_bpm > 1" + ")" * 100_000
    deep_math = "SELECT " + "(" * 100_000 + "hr_bpm" + ")" * 100_000 + " FROM samples"
    many = "SELECT hr_bpm FROM samples;" * 9000
    write = b"/write?db=fuzz"
    return [
        ("gzip bomb", b"POST", write, gz, gzip_bomb(200 * 2**20), (413,)),
        ("gzip bomb in members", b"POST", write, gz, gzip_bomb(120 * 2**20, members=40), (413,)),
        ("gzip of gzip", b"POST", write, gz, gzip.compress(gzip_bomb(20 * 2**20)), (400,)),
        ("1 million lines", b"POST", write, auth, million, (413,)),
        ("1 million lines gzipped", b"POST", write, gz, gzip.compress(million), (413,)),
        ("one 20 MB line", b"POST", write, auth, b"samples hr_bpm=" + b"1" * 20_000_000, (400,)),
        ("one 20 MB quoted line", b"POST", write, auth, b'samples s="' + b"\\" * 20_000_000 + b'"', (400,)),
        ("a body over the limit", b"POST", write, auth, b"#" * (MAX_BODY_SIZE + 1), (413,)),
        ("99 999 good lines", b"POST", write, auth, b"".join(b"samples,device=d hr_bpm=%d %d\n" % (i % 200, 10**18 + i)
                                                                  for i in range(99_999)), (204,)),  # fmt: skip
        ("100k parentheses in WHERE", b"POST", b"/query?db=fuzz", form, b"q=" + quote_from_bytes(deep_where.encode()).encode(), (400,)),
        ("100k parentheses in SELECT", b"POST", b"/query?db=fuzz", form, b"q=" + quote_from_bytes(deep_math.encode()).encode(), (400,)),
        ("100k parentheses in the URL", b"GET", b"/query?db=fuzz&q=" + quote_from_bytes(deep_where.encode()).encode(), auth, None, (400,)),
        ("9000 statements", b"POST", b"/query?db=fuzz", form, b"q=" + quote_from_bytes(many.encode()).encode(), (200,)),
        ("a whole day, raw", b"GET", b"/query?db=fuzz&q=SELECT%20*%20FROM%20samples&chunked=true", auth, None, (200,)),
        ("GROUP BY 1ns over everything", b"GET", b"/query?db=fuzz&q=SELECT%20mean(hr_bpm)%20FROM%20samples%20WHERE%20time%20%3E%200%20GROUP%20BY%20time(1ns)", auth, None, (200,)),
        ("a huge header", b"GET", b"/ping", [(b"X-Big", b"x" * 100_000)], None, (400,)),
        ("a header of invalid UTF-8", b"GET", b"/api/me", [(b"Cookie", b"\xff" * 5000)], None, (401,)),
        ("credentials of invalid UTF-8", b"GET", b"/query?db=fuzz&q=SHOW%20DATABASES", [(b"Authorization", basic(b"\xff\xfe", b"\xc3"))], None, (401,)),
        ("a password of invalid UTF-8", b"POST", write, [(b"Authorization", basic(b"fuzz", b"\xff\xfe"))], b"samples hr_bpm=1", (401,)),
        ("a Token of invalid UTF-8", b"POST", write, [(b"Authorization", b"Token fuzz:\xff\xfe")], b"samples hr_bpm=1", (401,)),
        ("a wrong password", b"POST", write, [(b"Authorization", basic(b"fuzz", b"wrong"))], b"samples hr_bpm=1", (401,)),
        ("an unknown user", b"GET", b"/query?q=SHOW%20DATABASES&u=nobody&p=x", [], None, (401,)),
        ("u and p of invalid UTF-8", b"GET", b"/query?q=SHOW%20DATABASES&u=%ff&p=%fe%00", [], None, (401,)),
        ("u and p of raw bytes", b"GET", b"/query?q=SHOW%20DATABASES&u=%ff&p=\xfe", [], None, (400, 401)),
        ("sign in with a password of invalid UTF-8", b"POST", b"/login", [(b"Cookie", b"tracker_csrf=" + form_csrf),
         (b"X-CSRF-Token", form_csrf), (b"Content-Type", b"application/x-www-form-urlencoded")],
         b"username=fuzz&password=%ff%fe&csrf=" + form_csrf, (303,)),
        ("a URL of raw bytes", b"GET", b"/write?db=\xff\xfe&precision=\xc3", auth, None, (400, 404, 405)),
        ("malformed chunking", b"POST", write, [*auth, (b"Transfer-Encoding", b"chunked")], b"zz\r\nxx\r\n", (400,)),
        ("many headers", b"GET", b"/ping", [(b"X-%d" % i, b"1") for i in range(500)], None, (400,)),
    ]  # fmt: skip


# ----- the run --------------------------------------------------------------------------------------


async def pre_login_csrf(port: int) -> bytes:
    """The CSRF token the server signs for its sign-in form (a made-up one is refused)."""
    answer = await send(port, b"GET", b"/api/me")
    assert answer.status == 401, answer
    return json.loads(answer.body)["csrf"].encode()


async def sign_in(port: int) -> Session:
    body = json.dumps({"username": USER, "password": PASSWORD}).encode()
    token = await pre_login_csrf(port)
    csrf = [(b"Cookie", b"tracker_csrf=" + token), (b"X-CSRF-Token", token)]  # double submit, before a session
    answer = await send(port, b"POST", b"/login", [(b"Content-Type", b"application/json"), *csrf], body)
    assert answer.status == 200, answer
    cookies = [line.split(b":", 1)[1].split(b";", 1)[0].strip() for line in answer.head.split(b"\r\n")
               if line.lower().startswith(b"set-cookie:")]  # fmt: skip
    csrf = json.loads(answer.body)["csrf"].encode()
    return Session(b"; ".join(cookies), csrf)


async def fuzz(server: Server) -> tuple[list[str], Counter[int | None]]:
    problems: list[str] = []
    statuses: Counter[int | None] = Counter()
    port = server.port
    session = await sign_in(port)
    # some data to read back: a day of samples, and a share so that `other` sees something
    day = b"".join(b"samples hr_bpm=%d,pwr_w=%d %d\n" % (100 + i % 80, i % 400, i) for i in range(86_400))
    answer = await send(port, b"POST", b"/write?db=fuzz&precision=s", [(b"Authorization", basic(USER.encode(), PASSWORD.encode()))], day)
    assert answer.status == 204, answer

    async def check(label: str, coro: object, acceptable: tuple[int, ...] | None = None, size: int = 0) -> None:
        try:
            answer = await coro  # type: ignore[misc]
        except TimeoutError:
            problems.append(f"{label}: no answer within {TIMEOUT} s")
            return
        statuses[answer.status] += 1
        if answer.status is None:
            if size <= MAX_BODY_SIZE:  # only a refused oversized body may be cut off unanswered
                problems.append(f"{label}: connection closed without an answer")
        elif answer.status >= 500 or (acceptable is not None and answer.status not in acceptable):
            problems.append(f"{label}: {answer.status} {answer.body[:300]!r}")

    for name, method, target, headers, body, acceptable in heavy_cases(await pre_login_csrf(port)):
        await check(name, send(port, method, target, headers, body), acceptable, len(body or b""))

    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(RANDOM_REQUESTS):
        queue.put_nowait(index)

    async def worker() -> None:
        while not queue.empty():
            index = queue.get_nowait()
            rng = random.Random(SEED * 1_000_003 + index)  # each request from its own seed: any order, same run
            method, target, headers, body, chunked = random_request(rng, session)
            stream = target.split(b"?")[0] in STREAM_PATHS
            label = f"request {index} {method.decode(errors='replace')} {target[:120]!r}"
            await check(label, send(port, method, target, headers, body, chunked=chunked, stream=stream))

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    answer = await send(port, b"GET", b"/ping")
    if answer.status != 204:
        problems.append(f"the server no longer answers /ping: {answer}")
    return problems, statuses


def test_fuzz_every_endpoint(server: Server) -> None:
    started = time.monotonic()
    problems, statuses = asyncio.run(fuzz(server))
    elapsed = time.monotonic() - started
    assert server.process is not None and server.process.poll() is None, "the server died"
    rss, peak = server.status("VmRSS"), server.status("VmHWM")
    print(f"fuzz seed {SEED}: {RANDOM_REQUESTS} random requests and the heavy cases in {elapsed:.1f} s; "
          f"server VmRSS {rss} MB, VmHWM {peak} MB; statuses {sorted(statuses.items(), key=str)}")  # fmt: skip
    assert problems == [], "\n".join(problems)
    assert rss < RSS_LIMIT_MB, f"VmRSS {rss} MB after the run"
    assert peak < PEAK_LIMIT_MB, f"VmHWM {peak} MB during the run"
    log = server.log()
    assert "Traceback" not in log and " ERROR " not in log, log[-5000:]
