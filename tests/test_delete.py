"""DELETE, DROP SERIES and DROP MEASUREMENT through /query: what each removes (the same as a real
InfluxDB 1.x given the same data and statement), who may, and that deleted samples stay deleted:
in the read cache, in other processes' views, and after a crash and the journal's replay."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import AddUser, Pt, basic
from tests.influxd import InfluxdProcess
from tests.tracker_process import PASSWORD, TrackerProcess
from tracker.accounts import Accounts
from tracker.influx.influxql import DeleteStatement, QueryParseError, UnsupportedStatement, parse_query
from tracker.storage import JournalReader, SampleStore, decode_points, recover
from tracker.storage import samples as samples_module
from tracker.storage.query import query_field_keys, query_series

S = 1_000_000_000

# The same five points go into InfluxDB and into Tracker: two old ones (2015), three in 2017, four
# series (one without tags), a field (lat) that only device a carries.
DATA = "\n".join(
    [
        "samples,device=a hr_bpm=1,lat=2 1420070400000000000",
        "samples,device=b hr_bpm=3 1420070401000000000",
        "samples,device=b hr_bpm=4 1500000000000000000",
        "samples,device=c cad_rpm=5 1500000000000000000",
        "samples hr_bpm=9 1500000000000000000",
    ]
)

# Statements whose answers and effects are compared with the real InfluxDB's.
STATEMENTS = [
    "DELETE FROM samples WHERE time < '2016-01-01'",
    "DELETE WHERE device = 'b'",
    "DELETE FROM samples",
    "DELETE WHERE time >= '2017-01-01'",
    "DELETE FROM samples WHERE time > '2015-01-01T00:00:00Z' AND time < '2017-07-14T02:40:00Z'",
    "DELETE FROM samples WHERE time < now() - 1h AND device = 'b'",
    "DELETE FROM samples WHERE device = 'b' AND time = '2015-01-01T00:00:01Z'",
    "DELETE FROM samples WHERE device = ''",
    "DELETE FROM samples WHERE device != 'a'",
    "DELETE FROM samples WHERE device !~ /b/",
    "DELETE FROM samples WHERE device = 'a' OR device = 'c'",
    "DELETE FROM samples WHERE (device = 'a' OR device =~ /c/) AND time > '2015-01-01T00:00:00Z'",
    "DELETE FROM samples WHERE \"hr_bpm\"::tag = 'x'",
    "DELETE FROM /sam/ WHERE device = 'a'",
    "DELETE FROM /^x/",
    "DELETE FROM nosuch",
    "DELETE FROM samples, nosuch WHERE device = 'c'",
    "DELETE FROM samples WHERE device =~ /^$/",
    "DELETE FROM samples WHERE device = 'a' AND device = 'b'",
    "DELETE FROM samples WHERE time <= '2015-01-01T00:00:01Z' AND device = 'b'",
    "DELETE FROM samples WHERE time > 1420070400000000000",
    "DELETE FROM samples WHERE time >= '2017-07-14T02:40:00Z' AND time <= '2017-07-14T02:40:00Z' AND device =~ /b|c/",
    "DELETE FROM samples WHERE host = ''",
    "DROP SERIES FROM samples WHERE host != ''",
    "DROP SERIES FROM samples WHERE device != host",
    "DROP SERIES FROM samples WHERE device = 'b'",
    "DROP SERIES WHERE device =~ /^[ab]/",
    "DROP SERIES FROM nosuch WHERE device = 'a'",
    "DROP MEASUREMENT samples",
    "DROP MEASUREMENT nosuch",
    "DELETE FROM samples WHERE device = 'a'; DROP SERIES FROM samples WHERE device = 'c'",
    # refused while running (status 200, the error inside the result), nothing deleted
    "DELETE FROM samples WHERE hr_bpm > 1",
    "DELETE FROM samples WHERE time < '2016-01-01' AND hr_bpm = 1",
    "DELETE FROM samples WHERE device = 5",
    "DROP SERIES FROM samples WHERE hr_bpm > 1",
    "DROP SERIES FROM samples WHERE time < '2016-01-01'",
    # refused by the parser (400)
    "DELETE FROM alice.samples",
    "DELETE FROM alice..samples",
    "DROP SERIES FROM alice.autogen.samples",
    "DROP MEASUREMENT /x/",
    "DROP MEASUREMENT alice.samples",
    "DELETE FROM samples LIMIT 1",
]
# What is looked at after each statement, on both sides.
AFTERWARDS = 'SHOW SERIES; SHOW MEASUREMENTS; SHOW TAG KEYS; SHOW TAG VALUES WITH KEY = "device"'


# ---------------------------------------------------------------------------------------------
# The parser


@pytest.mark.parametrize(
    "text, keyword, sources, has_condition",
    [
        ("DELETE FROM samples WHERE time < '2016-01-01'", "DELETE", ["samples"], True),
        ("DELETE WHERE device = 'x'", "DELETE", [], True),
        ("DELETE FROM samples", "DELETE", ["samples"], False),
        ("delete from /sam/, other where device = 'x'", "DELETE", [None, "other"], True),
        ("DROP SERIES FROM samples WHERE device = 'x'", "DROP SERIES", ["samples"], True),
        ("DROP SERIES WHERE device =~ /a/", "DROP SERIES", [], True),
        ('DROP MEASUREMENT "samples"', "DROP MEASUREMENT", ["samples"], False),
    ],
)
def test_deletions_parse(text: str, keyword: str, sources: list[str | None], has_condition: bool) -> None:
    [statement] = parse_query(text, now_ns=0)
    assert isinstance(statement, DeleteStatement)
    assert statement.keyword == keyword
    assert [source.name for source in statement.sources] == sources
    assert (statement.condition is not None) == has_condition
    assert statement.text == text


@pytest.mark.parametrize("text", ["DROP DATABASE alice", "DROP SHARD 1", "DROP RETENTION POLICY autogen ON alice",
                                  "DROP USER bob", "DROP CONTINUOUS QUERY cq ON alice"])  # fmt: skip
def test_other_drops_stay_unsupported(text: str) -> None:
    [statement] = parse_query(text, now_ns=0)
    assert isinstance(statement, UnsupportedStatement)


@pytest.mark.parametrize(
    "text, message",
    [  # InfluxDB 1.6's words, positions at the end of the text aside
        ("DELETE", "found EOF, expected FROM, WHERE"),
        ("DROP SERIES", "found EOF, expected FROM, WHERE"),
        ("DELETE samples", "found samples, expected FROM, WHERE at line 1, char 8"),
        ("DELETE FROM", "found EOF, expected identifier"),
    ],
)
def test_deletions_refused_by_the_parser(text: str, message: str) -> None:
    with pytest.raises(QueryParseError) as error:
        parse_query(text, now_ns=0)
    assert error.value.message.startswith("error parsing query: " + message)


# ---------------------------------------------------------------------------------------------
# Against a real InfluxDB 1.x


@pytest.fixture(scope="module")
def influx(influxd: InfluxdProcess) -> InfluxdProcess:
    """The shared real InfluxDB (skipped where it is not installed; failed under CI)."""
    return influxd


def _comparable(body: Any) -> Any:
    """InfluxDB names the shard in a deletion's error ("shard 5: fields not supported ..."): which
    shard is its business, not the answer's."""
    text = json.dumps(body)
    return json.loads(re.sub(r'"shard \d+: ', '"', text))


def _rows(result: dict[str, Any]) -> set[tuple[tuple[str, Any], ...]]:
    """SELECT * as a set of rows, null columns left out: InfluxDB still lists a field whose every
    value was deleted as a column of nulls (see the README's differences)."""
    rows: set[tuple[tuple[str, Any], ...]] = set()
    for series in result.get("series", []):
        for values in series["values"]:
            rows.add(tuple(sorted((c, v) for c, v in zip(series["columns"], values) if v is not None)))
    return rows


async def _tracker(client: TestClient, user: str, q: str) -> tuple[int, Any]:
    resp = await client.post("/query", data={"q": q, "db": user}, headers=basic(user, "pw-" + user))
    return resp.status, json.loads(await resp.read())


async def test_deletions_remove_what_influxdb_removes(client: TestClient, add_user: AddUser, influx: InfluxdProcess) -> None:
    checked_rows = 0
    for number, statement in enumerate(STATEMENTS):
        user = f"case{number}"
        await add_user(user, "pw-" + user)
        resp = await client.post(f"/write?db={user}", data=DATA, headers=basic(user, "pw-" + user))
        assert resp.status == 204, await resp.text()
        influx.create_database(user)
        influx.write(user, DATA)

        status, expected = influx.request(statement, db=user)
        answer = await _tracker(client, user, statement)
        assert answer == (status, _comparable(expected)), f"{statement}: the answer differs"

        expected_rows = _rows(influx.request("SELECT * FROM samples", db=user)[1]["results"][0])
        [result] = (await _tracker(client, user, "SELECT * FROM samples"))[1]["results"]
        assert _rows(result) == expected_rows, f"{statement}: the samples left differ"
        checked_rows += len(expected_rows)
        assert (await _tracker(client, user, AFTERWARDS)) == influx.request(AFTERWARDS, db=user), (
            f"{statement}: series, measurements or tags differ afterwards"
        )
        influx_fields = influx.request("SHOW FIELD KEYS", db=user)[1]
        if "series" not in influx_fields["results"][0]:  # the measurement is gone: so are its field keys
            assert (await _tracker(client, user, "SHOW FIELD KEYS"))[1] == influx_fields, statement
    assert checked_rows > 0  # the comparison compared samples


# ---------------------------------------------------------------------------------------------
# Who may


@pytest.fixture
async def people(client: TestClient, add_user: AddUser, accounts: Accounts) -> TestClient:
    for name in ("alice", "bob", "carol"):
        await add_user(name, "pw-" + name)
        resp = await client.post(f"/write?db={name}", data=DATA, headers=basic(name, "pw-" + name))
        assert resp.status == 204
    await accounts.add_share("alice", "bob")
    return client


async def _count(client: TestClient, user: str, password: str | None = None) -> int:
    resp = await client.get(
        "/query", params={"q": "SELECT count(hr_bpm) FROM samples", "db": user},
        headers=basic(user, password or "pw-" + user),
    )  # fmt: skip
    body = await resp.json()
    return int(body["results"][0]["series"][0]["values"][0][1])


@pytest.mark.parametrize(
    "who, statement, status, error",
    [  # InfluxDB 1.6's answers to a user with READ only, and to one without any privilege
        ("bob", "DELETE FROM samples", 403,
         "error authorizing query: bob not authorized to execute statement 'DELETE FROM samples', requires WRITE on alice"),
        ("carol", "DELETE FROM samples", 403,
         "error authorizing query: carol not authorized to execute statement 'DELETE FROM samples', requires WRITE on alice"),
        ("bob", "DROP SERIES FROM samples WHERE device = 'a'", 403,
         "error authorizing query: bob not authorized to execute statement 'DROP SERIES FROM samples WHERE device = 'a'', requires WRITE on alice"),
        ("carol", "DROP MEASUREMENT samples", 403,
         "error authorizing query: carol not authorized to execute statement 'DROP MEASUREMENT samples', requires admin privilege"),
        ("bob", "SELECT * FROM samples; DELETE FROM samples", 403,
         "error authorizing query: bob not authorized to execute statement 'DELETE FROM samples', requires WRITE on alice"),
    ],
)  # fmt: skip
async def test_only_the_owner_deletes(people: TestClient, who: str, statement: str, status: int, error: str) -> None:
    before = await _count(people, "alice")
    resp = await people.post("/query", data={"q": statement, "db": "alice"}, headers=basic(who, "pw-" + who))
    assert resp.status == status
    assert await resp.json() == {"error": error}
    assert await _count(people, "alice") == before == 4


async def test_without_a_database_even_the_owner_is_refused(people: TestClient) -> None:
    resp = await people.post("/query", data={"q": "DELETE FROM samples"}, headers=basic("alice", "pw-alice"))
    assert resp.status == 403
    assert await resp.json() == {
        "error": "error authorizing query: alice not authorized to execute statement 'DELETE FROM samples', requires WRITE on "
    }
    assert await _count(people, "alice") == 4


async def test_tokens_and_links_cannot_delete(people: TestClient, accounts: Accounts) -> None:
    token, _ = await accounts.create_token("alice", "phone")
    link, _ = await accounts.create_link("alice")
    await accounts.set_public("alice", True)
    # A token is no password (401); without one, a public user's database may be read, never deleted from (403).
    for headers, params, status in (
        ({"Authorization": f"Token alice:{token}"}, {}, 401),
        ({}, {"u": "alice", "p": token}, 401),
        ({}, {"token": link}, 403),
        ({}, {}, 403),
    ):
        resp = await people.post("/query", params={"db": "alice", "q": "DELETE FROM samples", **params}, headers=headers)
        assert resp.status == status, (headers, params)
    assert await _count(people, "alice") == 4


async def test_the_owner_deletes_only_her_own(people: TestClient, accounts: Accounts) -> None:
    status, body = await _tracker(people, "alice", "DROP MEASUREMENT samples")
    assert (status, body) == (200, {"results": [{"statement_id": 0}]})
    resp = await people.get("/query", params={"q": "SELECT * FROM samples", "db": "alice"}, headers=basic("alice", "pw-alice"))
    assert await resp.json() == {"results": [{"statement_id": 0}]}
    assert await _count(people, "bob") == 4 and await _count(people, "carol") == 4
    # A reload of the watch page shows nothing of what was deleted.
    token, _ = await accounts.create_link("alice")
    window = await (await people.get(f"/api/watch/alice/samples?from=0&to=1800000000000000000&token={token}")).json()
    assert window["samples"] == [] if "samples" in window else not any(window.values()), window
    # Writing again afterwards works, with the same tags as before.
    resp = await people.post("/write?db=alice", data=DATA, headers=basic("alice", "pw-alice"))
    assert resp.status == 204
    assert await _count(people, "alice") == 4


async def test_every_form_of_the_request_deletes(people: TestClient) -> None:
    """GET as well as POST, chunked, with bind parameters, beside other statements: InfluxDB 1.6
    answers each `{"statement_id":N}` (its chunked answer is one line per statement)."""
    alice = basic("alice", "pw-alice")
    resp = await people.get("/query", params={"db": "alice", "q": "DELETE FROM samples WHERE device = 'a'"}, headers=alice)
    assert (resp.status, await resp.text()) == (200, '{"results":[{"statement_id":0}]}\n')
    resp = await people.post("/query", params={"db": "alice", "chunked": "true"}, headers=alice,
                             data={"q": "DELETE FROM samples WHERE device = $d; SHOW TAG VALUES WITH KEY = device",
                                   "params": '{"d": "b"}'})  # fmt: skip
    lines = (await resp.text()).splitlines()
    assert lines == [
        '{"results":[{"statement_id":0}]}',
        '{"results":[{"statement_id":1,"series":[{"name":"samples","columns":["key","value"],"values":[["device","c"]]}]}]}',
    ]
    q = "SELECT count(hr_bpm), count(cad_rpm), count(lat) FROM samples; DELETE FROM samples; SELECT * FROM samples"
    status, body = await _tracker(people, "alice", q)
    assert status == 200 and body["results"][1:] == [{"statement_id": 1}, {"statement_id": 2}]
    assert body["results"][0]["series"][0]["values"][0][1:3] == [1, 1]  # the untagged sample and c's


@pytest.mark.parametrize(
    "statement, error",
    [  # InfluxDB runs these, narrowing the time range in ways its documentation does not describe
        ("DELETE FROM samples WHERE device = 'b' OR time < '2016-01-01'",
         "time conditions must be AND-ed with the rest of the WHERE clause (time inside OR is not supported)"),
        ("DELETE FROM samples WHERE time != '2015-01-01T00:00:01Z'",
         "invalid time comparison operator: != (use >, >=, <, <= or =)"),
    ],
)  # fmt: skip
async def test_time_it_cannot_honour_is_refused(people: TestClient, statement: str, error: str) -> None:
    status, body = await _tracker(people, "alice", statement)
    assert (status, body) == (200, {"results": [{"statement_id": 0, "error": error}]})
    assert await _count(people, "alice") == 4


# ---------------------------------------------------------------------------------------------
# Storage: steps, the read cache, other processes, the journal


async def test_a_deletion_in_many_steps_removes_exactly_its_samples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(samples_module, "DELETE_STEP_ROWS", 7)
    store = SampleStore(tmp_path)
    try:
        points = [Pt(t * S, {"hr_bpm": float(t)}, (("device", "abc"[t % 3]),)) for t in range(300)]
        await store.write("alice", points)
        journal_before = store.journal_commits
        removed = await store.delete_samples("alice", [{"device": "a"}, {"device": "b"}], 50 * S, 250 * S)
        expected_gone = {t for t in range(50, 250) if t % 3 in (0, 1)}
        assert removed == len(expected_gone)
        left = [s.time // S async for batch in store.read_range("alice", 0, 10**6 * S) for s in batch]
        assert left == [t for t in range(300) if t not in expected_gone]
        assert journal_before == store.journal_commits  # deletions are not counted as write groups
        # Series left without samples go; those with samples elsewhere stay.
        assert await store.delete_samples("alice", [{"device": "a"}], 0, 2**63 - 1) == len(range(0, 300, 3)) - len(
            [t for t in range(50, 250) if t % 3 == 0]
        )
        assert await store.tag_sets("alice") == [{"device": "b"}, {"device": "c"}]
    finally:
        await store.close()


@pytest.mark.parametrize("writer", ["this process", "another process"])
async def test_a_series_written_between_the_steps_stays(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writer: str) -> None:
    """DROP SERIES in several steps: a sample written to the series after a step (into the part
    already deleted) is not deleted, and the series keeps its row, whoever wrote it."""
    monkeypatch.setattr(samples_module, "DELETE_STEP_ROWS", 10)
    store = SampleStore(tmp_path)
    loop = asyncio.get_running_loop()
    real_step = samples_module._Writer._delete_step
    steps = 0

    def step_then_write(self: Any, user: str, path: Path, step: Any) -> Any:
        nonlocal steps
        result = real_step(self, user, path, step)
        steps += 1
        if steps == 1:  # after the first step: a write lands before the second
            if writer == "this process":
                asyncio.run_coroutine_threadsafe(store.write("alice", [Pt(2 * S, {"hr_bpm": 99.0}, (("device", "a"),))]), loop)
            else:
                with contextlib.closing(sqlite3.connect(path)) as conn, conn:
                    conn.execute("INSERT INTO samples (time, series, hr_bpm) SELECT ?, id, 99 FROM series WHERE tags = ?",
                                 (2 * S, json.dumps([["device", "a"]], separators=(",", ":"))))  # fmt: skip
        return result

    monkeypatch.setattr(samples_module._Writer, "_delete_step", step_then_write)
    try:
        await store.write("alice", [Pt(t * S, {"hr_bpm": float(t)}, (("device", "ab"[t % 2]),)) for t in range(100)])
        removed = await store.delete_samples("alice", [{"device": "a"}, {"device": "b"}], -(2**63) + 2, 2**63 - 1)
        assert steps > 2 and removed == 100
        left = [(s.time, s.fields) async for batch in store.read_range("alice", 0, 10**6 * S) for s in batch]
        assert left == [(2 * S, {"hr_bpm": 99.0})]
        assert await store.tag_sets("alice") == [{"device": "a"}]
        await store.write("alice", [Pt(3 * S, {"hr_bpm": 3.0}, (("device", "a"),))])  # its series id still holds
        assert len([s async for batch in store.read_range("alice", 0, 10**6 * S) for s in batch]) == 2
    finally:
        await store.close()


async def test_cached_hours_do_not_serve_deleted_samples(client: TestClient, add_user: AddUser) -> None:
    await add_user("alice", "pw-alice")
    hour = (time.time_ns() // (3600 * S) - 3) * 3600 * S  # an hour that ended long ago: sealed, cached
    lines = "\n".join(f"samples,device={'ab'[i % 2]} hr_bpm={60 + i % 50} {hour + i * 10 * S}" for i in range(360))
    assert (await client.post("/write?db=alice", data=lines, headers=basic("alice", "pw-alice"))).status == 204
    q = f"SELECT count(hr_bpm), sum(hr_bpm) FROM samples WHERE time >= {hour} AND time < {hour + 3600 * S} GROUP BY time(10m)"

    async def buckets() -> list[list[Any]]:
        status, body = await _tracker(client, "alice", q)
        return body["results"][0]["series"][0]["values"]

    before = await buckets()
    assert [row[1] for row in before] == [60] * 6
    assert await buckets() == before  # answered from the cache this time
    from tracker.appkeys import SAMPLES

    assert client.app[SAMPLES].column_cache.used_bytes > 0
    status, body = await _tracker(client, "alice", f"DELETE WHERE device = 'a' AND time < {hour + 1800 * S}")
    assert (status, body) == (200, {"results": [{"statement_id": 0}]})
    after = await buckets()
    assert [row[1] for row in after] == [30, 30, 30, 60, 60, 60]
    assert after[3:] == before[3:]
    assert [row[2] for row in after[:3]] == [
        sum(60 + i % 50 for i in range(k * 60, k * 60 + 60) if i % 2) for k in range(3)
    ]


async def test_other_processes_see_the_deletion(tmp_path: Path) -> None:
    """Two stores on one data folder, as two workers: the one that did not delete neither writes to a
    removed series id nor keeps showing a field whose values are gone."""
    one, other = SampleStore(tmp_path, writer_key="worker-0"), SampleStore(tmp_path, writer_key="worker-1")
    try:
        await one.write("alice", [Pt(1 * S, {"hr_bpm": 1.0}, (("device", "x"),)), Pt(2 * S, {"lat": 2.0}, (("device", "y"),))])
        await other.write("alice", [Pt(3 * S, {"hr_bpm": 3.0}, (("device", "x"),))])  # its writer knows the series now
        assert set(await query_field_keys(other, "alice")) == {"lat", "hr_bpm"}
        await one.delete_samples("alice", [{"device": "x"}, {"device": "y"}], 0, 2**63 - 1)
        assert await query_series(other, "alice") == {}
        assert await query_field_keys(other, "alice") == []
        # The series is gone from the file; the other worker's next write to it makes it anew.
        await other.write("alice", [Pt(4 * S, {"hr_bpm": 4.0}, (("device", "x"),))])
        rows = [(s.time, s.tags) async for batch in one.read_range("alice", 0, 10 * S) for s in batch]
        assert rows == [(4 * S, {"device": "x"})]
        assert list((await query_series(one, "alice")).values()) == [{"device": "x"}]
    finally:
        await one.close()
        await other.close()


async def test_a_checkpoint_makes_the_deletion_durable_before_it_says_so(tmp_path: Path) -> None:
    """What a power cut leaves: the user file without its WAL (the commits SQLite had not yet
    copied into it), and the journal. Once the journal says the deletion is durable, that file
    must hold it; recovery from the two must not bring the samples back."""
    data = tmp_path / "data"
    store = SampleStore(data, checkpoint_seconds=0.05)
    try:
        await store.write("alice", [Pt(t * S, {"hr_bpm": float(t)}, (("device", "ab"[t % 2]),)) for t in range(20)])
        await store.delete_samples("alice", [{"device": "a"}], 0, 2**63 - 1)
        deadline = time.monotonic() + 10
        while True:
            with contextlib.closing(sqlite3.connect(data / "journal.sqlite")) as journal:
                durable = journal.execute("SELECT max(durable_id) FROM writers").fetchone()[0]
                last = journal.execute("SELECT max(id) FROM entries").fetchone()[0]
            if durable >= last:  # the deletion's entry is the newest
                break
            assert time.monotonic() < deadline, "no checkpoint"
            await asyncio.sleep(0.05)
        copy = tmp_path / "after-power-cut"
        (copy / "users").mkdir(parents=True)
        shutil.copy(data / "users" / "alice.sqlite", copy / "users" / "alice.sqlite")  # without its WAL
        for name in ("journal.sqlite", "journal.sqlite-wal"):
            if (data / name).exists():
                shutil.copy(data / name, copy / name)
    finally:
        await store.close()
    recover(copy)
    restored = SampleStore(copy)
    try:
        left = [(s.time // S, s.tags) async for batch in restored.read_range("alice", 0, 100 * S) for s in batch]
        assert left == [(t, {"device": "b"}) for t in range(20) if t % 2 == 1]
        assert await restored.tag_sets("alice") == [{"device": "b"}]
    finally:
        await restored.close()


async def test_the_live_view_reads_no_points_from_a_deletion(tmp_path: Path) -> None:
    store = SampleStore(tmp_path)
    reader = JournalReader(tmp_path)
    try:
        written = await store.write("alice", [Pt(1 * S, {"hr_bpm": 1.0})])
        await store.delete_samples("alice", [{}], 0, 2 * S)
        rows = await reader.entries_after(0, ["alice"])
        assert [decode_points(blob) != [] for _, _, _, blob in rows] == [True, False]
        entries, _, newest = await reader.user_entries("alice", 0, 10**9)
        assert [entry_id for entry_id, _ in entries][0] == written.sequence
        assert decode_points(entries[1][1]) == [] and newest == entries[1][0]
    finally:
        await reader.close()
        await store.close()


# ---------------------------------------------------------------------------------------------
# A crash right after the answer


@pytest.mark.slow  # real servers, killed and started again
@pytest.mark.parametrize("workers", [1, 2], ids=["one process", "two workers"])
async def test_deleted_samples_stay_deleted_after_sigkill(tmp_path: Path, workers: int) -> None:
    """The journal is not checkpointed during the test (--journal-checkpoint 3600), so the restart
    replays every write: the deletion must be replayed in its place among them."""
    server = TrackerProcess(tmp_path / "data", tmp_path / "server.log", workers=workers,
                            serve_args=["--journal-checkpoint", "3600"])  # fmt: skip
    server.add_user("rider")
    auth = basic("rider", PASSWORD)
    base = 1_600_000_000 * S
    try:
        server.start()
        async with aiohttp.ClientSession(headers=auth) as session:

            async def post(path: str, **kwargs: Any) -> aiohttp.ClientResponse:
                async with session.post(server.url + path, **kwargs) as resp:
                    await resp.read()
                    return resp

            before = "\n".join(f"samples,device={d} hr_bpm={i} {base + i * S}" for i in range(50) for d in ("old", "kept"))
            assert (await post("/write?db=rider", data=before)).status == 204
            resp = await post("/query", data={"db": "rider", "q": f"DROP SERIES WHERE device = 'old'; DELETE WHERE time < {base + 10 * S}"})
            assert resp.status == 200
            after = "\n".join(f"samples,device=new hr_bpm={i} {base + i * S}" for i in range(5))
            assert (await post("/write?db=rider", data=after)).status == 204
        server.kill()
        server.start()
        async with aiohttp.ClientSession(headers=auth) as session:
            async with session.get(server.url + "/query", params={
                "db": "rider", "q": 'SELECT hr_bpm, device FROM samples; SHOW TAG VALUES WITH KEY = "device"', "epoch": "s",
            }) as resp:  # fmt: skip
                body = await resp.json()
        rows = body["results"][0]["series"][0]["values"]
        assert sorted((t, d) for t, _, d in rows) == sorted(
            [(base // S + i, "kept") for i in range(10, 50)] + [(base // S + i, "new") for i in range(5)]
        )
        assert body["results"][1]["series"][0]["values"] == [["device", "kept"], ["device", "new"]]
    finally:
        server.close()


async def test_field_keys_stay_found_past_many_ranges(tmp_path: Path) -> None:
    """The memo of fields per time range is bounded: once it forgets, a range asked again (and the
    whole file, SHOW FIELD KEYS) is looked at again rather than answered empty."""
    store = SampleStore(tmp_path, writer_key="worker-0")
    try:
        await store.write("alice", [Pt(1 * S, {"hr_bpm": 1.0}, (("device", "x"),))])
        assert await query_field_keys(store, "alice") == ["hr_bpm"]
        for n in range(100):  # now()-relative ranges: a new one every time
            assert await query_field_keys(store, "alice", 0, (n + 2) * S) == ["hr_bpm"]
        assert await query_field_keys(store, "alice") == ["hr_bpm"]
        assert await query_field_keys(store, "alice", 0, 2 * S) == ["hr_bpm"]
    finally:
        await store.close()
