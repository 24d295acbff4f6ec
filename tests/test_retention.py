"""Retention: durations, the per-user setting, the background sweep on real files, and what
/write and SHOW RETENTION POLICIES answer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient
from click.testing import CliRunner

from tests.conftest import AddUser, Pt, TokenMaker, basic, stored
from tracker.accounts import Accounts
from tracker.app import create_app
from tracker.appkeys import RETENTION
from tracker.cli import CliOptions, cli
from tracker.config import Settings
from tracker.retention import RetentionSweeper, format_duration, parse_retention, shard_group_duration
from tracker.storage import AccountStore, SampleStore

SECOND = 10**9
HOUR = 3600 * SECOND
AUTH = basic("test", "test1234")


def count_rows(path: Path, where: str = "1", params: tuple[Any, ...] = ()) -> int:
    """Rows in a user's file, counted by a connection of our own, as another process would."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute(f"SELECT count(*) FROM samples WHERE {where}", params).fetchone()[0]


async def fill(store: SampleStore, user: str, start_ns: int, count: int, step_ns: int = SECOND) -> None:
    """`count` samples from start_ns on, written in chunks as a phone's backlog would be."""
    points = [Pt(start_ns + i * step_ns, {"hr_bpm": float(100 + i % 50)}) for i in range(count)]
    for i in range(0, count, 5000):
        await store.write(user, points[i : i + 5000])


class Users:
    """An accounts file with users whose retention the test sets, read as the server reads it."""

    def __init__(self, store: AccountStore, default_retention_ns: int = 0) -> None:
        self.store = store
        self.accounts = Accounts(store, cache_seconds=0, default_retention_ns=default_retention_ns)

    async def add(self, name: str, retention_ns: int | None = None) -> None:
        await self.store.add_user(name, "not-a-real-hash")
        if retention_ns is not None:
            await self.accounts.set_retention(name, retention_ns)


@pytest.fixture
async def users(tmp_path: Path):
    store = await AccountStore.open(tmp_path)
    yield Users(store)
    await store.close()


@pytest.fixture
async def samples(tmp_path: Path):
    store = SampleStore(tmp_path)
    yield store
    await store.close()


# ----- durations ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("8h", 8 * HOUR), ("90m", 90 * 60 * SECOND), ("1h30m", 90 * 60 * SECOND), ("7d", 7 * 24 * HOUR),
        ("2w", 14 * 24 * HOUR), ("3600s", HOUR), ("inf", 0), ("INF", 0), ("0", 0), ("0s", 0), (" 8h ", 8 * HOUR),
    ],
)  # fmt: skip
def test_parse_retention(text: str, ns: int) -> None:
    assert parse_retention(text) == ns


@pytest.mark.parametrize(
    ("text", "message"),
    [("8", "invalid retention '8'"), ("8x", "invalid retention '8x'"), ("", "invalid retention ''"),
     ("-1h", "invalid retention '-1h'"), ("forever", "invalid retention"), ("59m", "'59m' is too short")],
)  # fmt: skip
def test_parse_retention_refuses(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_retention(text)
    assert message in str(info.value)
    assert "8h, 90m, 7d or 2w" in str(info.value)


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "0s"), (8 * HOUR, "8h0m0s"), (90 * 60 * SECOND, "1h30m0s"), (7 * 24 * HOUR, "168h0m0s"),
        (45 * SECOND, "45s"), (61 * SECOND, "1m1s"), (HOUR + SECOND // 2, "1h0m0.5s"), (1_500_000, "1.5ms"),
        (2_000, "2µs"), (7, "7ns"), (-90 * SECOND, "-1m30s"),
    ],
)  # fmt: skip
def test_format_duration_as_go_does(ns: int, text: str) -> None:
    assert format_duration(ns) == text


@pytest.mark.parametrize(
    ("retention", "shard"),
    [(0, 7 * 24 * HOUR), (HOUR, HOUR), (8 * HOUR, HOUR), (2 * 24 * HOUR, 24 * HOUR), (180 * 24 * HOUR, 7 * 24 * HOUR)],
)
def test_shard_group_duration_as_influxdb_picks_it(retention: int, shard: int) -> None:
    assert shard_group_duration(retention) == shard


def test_settings_retention_from_env_and_flag() -> None:
    assert Settings.from_env({}).retention_ns == 0
    assert Settings.from_env({"TRACKER_RETENTION": "8h"}).retention_ns == 8 * HOUR
    assert Settings.from_env({"TRACKER_RETENTION": "8h"}, retention="2w").retention_ns == 14 * 24 * HOUR
    with pytest.raises(ValueError, match="invalid retention '8'"):
        Settings.from_env({"TRACKER_RETENTION": "8"})
    with pytest.raises(ValueError, match="retention check seconds must be positive"):
        Settings.from_env({"TRACKER_RETENTION_CHECK_SECONDS": "0"})


def test_serve_refuses_a_bad_retention_in_one_line() -> None:
    result = CliRunner().invoke(cli, ["serve", "--retention", "8 hours"], env={"TRACKER_RETENTION": None})
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "Error: invalid retention '8 hours': use a duration such as 8h, 90m, 7d or 2w (at least 1h), "
        "or inf to keep everything"
    ]


# ----- the per-user setting -----------------------------------------------------------------------


async def test_user_retention_overrides_the_default(users: Users) -> None:
    users.accounts.default_retention_ns = 8 * HOUR
    await users.add("ann")
    await users.add("bob", 2 * 24 * HOUR)
    await users.add("cy", 0)
    assert await users.accounts.retention_by_user() == {"ann": 8 * HOUR, "bob": 2 * 24 * HOUR, "cy": 0}
    assert await users.accounts.retention_ns("bob") == 2 * 24 * HOUR
    assert await users.accounts.retention_overrides() == {"bob": 2 * 24 * HOUR, "cy": 0}
    await users.accounts.set_retention("bob", None)  # back to the server's default
    assert await users.accounts.retention_ns("bob") == 8 * HOUR
    with pytest.raises(Exception, match="unknown user 'dan'"):
        await users.accounts.set_retention("dan", HOUR)


def run_cli(args: list[str], data_dir: Path) -> Any:
    env = {"TRACKER_DATA_DIR": None}
    return CliRunner().invoke(cli, [*args, "--data-dir", str(data_dir)], env=env, obj=CliOptions())


async def test_cli_round_trip(users: Users, tmp_path: Path) -> None:
    await users.add("ann")
    await users.add("bob")

    def listed() -> dict[str, str]:
        result = run_cli(["user", "list"], tmp_path)
        assert result.exit_code == 0, result.output
        lines = result.stdout.splitlines()
        assert lines[0].split() == ["NAME", "CREATED", "DATA", "RETENTION"]
        return {line.split()[0]: line.split()[3] for line in lines[1:]}

    assert await asyncio.to_thread(listed) == {"ann": "default", "bob": "default"}
    result = await asyncio.to_thread(run_cli, ["user", "retention", "ann", "8h"], tmp_path)
    assert (result.exit_code, result.stdout) == (0, "ann keeps samples for 8h0m0s\n")
    result = await asyncio.to_thread(run_cli, ["user", "retention", "bob", "inf"], tmp_path)
    assert (result.exit_code, result.stdout) == (0, "bob keeps every sample\n")
    assert await asyncio.to_thread(listed) == {"ann": "8h0m0s", "bob": "inf"}
    # The server's view (another connection, as a running server has) follows at once.
    assert await users.accounts.retention_by_user() == {"ann": 8 * HOUR, "bob": 0}

    result = await asyncio.to_thread(run_cli, ["user", "retention", "ann", "default"], tmp_path)
    assert result.exit_code == 0 and "follows the server's retention" in result.stdout
    assert await asyncio.to_thread(listed) == {"ann": "default", "bob": "inf"}

    for args, message in [
        (["user", "retention", "ann", "5m"], "Error: retention '5m' is too short"),
        (["user", "retention", "ann", "8 h"], "Error: invalid retention '8 h'"),
        (["user", "retention", "zed", "8h"], "Error: unknown user 'zed'"),
    ]:
        result = await asyncio.to_thread(run_cli, args, tmp_path)
        assert result.exit_code == 1
        assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith(message), result.stderr
    assert await asyncio.to_thread(listed) == {"ann": "default", "bob": "inf"}


# ----- removing old samples -----------------------------------------------------------------------


async def test_delete_before_removes_oldest_in_batches(samples: SampleStore, tmp_path: Path) -> None:
    await fill(samples, "ann", 1000 * SECOND, 1050)
    path = samples.path_for("ann")
    cutoff = 2000 * SECOND  # the first 1000 samples are older
    batches = []
    while True:
        removed, oldest = await samples.delete_before("ann", cutoff, 300)
        batches.append(removed)
        # Each batch is committed on its own: another connection sees the file shrink step by step.
        assert count_rows(path) == 1050 - sum(batches)
        if oldest is None or oldest >= cutoff:
            break
    assert batches == [300, 300, 300, 100]
    assert oldest == cutoff
    assert count_rows(path, "time < ?", (cutoff,)) == 0
    assert count_rows(path) == 50
    assert await samples.delete_before("ann", cutoff, 300) == (0, cutoff)
    assert await samples.delete_before("nobody", cutoff, 300) == (0, None)
    assert not samples.path_for("nobody").exists()  # looking did not create a file


async def test_a_batch_keeps_every_series_of_its_last_time_together(samples: SampleStore) -> None:
    points = [Pt(t * SECOND, {"hr_bpm": 1.0}, (("device", d),)) for t in range(10) for d in ("a", "b", "c")]
    await samples.write("ann", points)
    removed, oldest = await samples.delete_before("ann", 100 * SECOND, 4)
    # The 4th oldest row is at t=1; all of t=1 goes with it, so no time is ever half removed.
    assert (removed, oldest) == (6, 2 * SECOND)


async def test_sweep_runs_in_batches_while_writes_go_on(samples: SampleStore, users: Users) -> None:
    now = time.time_ns()
    await users.add("ann", HOUR)
    old = 20_000
    await fill(samples, "ann", now - 3 * HOUR, old, step_ns=SECOND // 10)
    path = samples.path_for("ann")
    sweeper = RetentionSweeper(samples, users.accounts, rows_per_batch=500)
    sweep = asyncio.create_task(sweeper.sweep())

    # Fresh samples written while the sweep runs: every write succeeds, and some are committed
    # while old rows are still there, i.e. between the sweep's batches rather than after them all.
    written, seen_mid_sweep = 0, 0
    while not sweep.done():
        await samples.write("ann", [Pt(now + written * SECOND, {"hr_bpm": 150.0})])
        written += 1
        if 0 < count_rows(path, "time < ?", (now - HOUR,)) < old:
            seen_mid_sweep += 1
    [removal] = await sweep
    assert (removal.user, removal.removed, removal.batches) == ("ann", old, old // 500)
    assert seen_mid_sweep > 0
    assert count_rows(path, "time < ?", (now - HOUR,)) == 0
    assert count_rows(path) == written  # every fresh sample is there


async def test_sweep_bounds_the_files_it_opens_per_cycle(samples: SampleStore, users: Users) -> None:
    now = time.time_ns()
    names = [f"u{i}" for i in range(5)]
    for name in names:
        await users.add(name, HOUR)
        await fill(samples, name, now - 2 * HOUR, 10)
    await users.add("keeper", 0)  # keeps everything: never touched
    await fill(samples, "keeper", now - 2 * HOUR, 10)
    await samples.close()

    store = SampleStore(samples.data_dir)
    try:
        sweeper = RetentionSweeper(store, users.accounts, files_per_cycle=2)
        left = {name: 10 for name in names}
        for expected_users in (2, 2, 1, 0):
            removals = await sweeper.sweep()
            assert len(removals) == expected_users
            for removal in removals:
                left[removal.user] -= removal.removed
            assert left == {name: count_rows(store.path_for(name)) for name in names}
        assert set(left.values()) == {0}
        assert count_rows(store.path_for("keeper")) == 10
        # Now nothing is due, nothing was written: a cycle opens no file at all.
        await store.close()
        store = SampleStore(samples.data_dir)
        sweeper._samples = store
        assert await sweeper.sweep() == []
        assert not store._files  # opened none
    finally:
        await store.close()


async def test_sweep_comes_back_when_samples_fall_due_or_are_written(samples: SampleStore, users: Users) -> None:
    clock = [1_000 * HOUR]
    await users.add("ann", HOUR)
    await fill(samples, "ann", clock[0] - 30 * 60 * SECOND, 3, step_ns=10 * 60 * SECOND)  # 30, 20, 10 min old
    sweeper = RetentionSweeper(samples, users.accounts, clock=lambda: clock[0])
    assert await sweeper.sweep() == []  # nothing expired yet
    clock[0] += 45 * 60 * SECOND  # the first two are now older than an hour
    [removal] = await sweeper.sweep()
    assert removal.removed == 2
    assert [s.time for s in await read_all(samples, "ann")] == [clock[0] - 45 * 60 * SECOND - 10 * 60 * SECOND]
    # A backlog arrives with a sample that expires well before the file's oldest one would.
    await samples.write("ann", [Pt(clock[0] - HOUR - SECOND, {"hr_bpm": 1.0})])
    [removal] = await sweeper.sweep()
    assert removal.removed == 1
    # A shorter retention set from the CLI applies at the next cycle.
    await users.accounts.set_retention("ann", 2 * HOUR)
    assert await sweeper.sweep() == []
    await users.accounts.set_retention("ann", 1 * HOUR)
    clock[0] += HOUR
    [removal] = await sweeper.sweep()
    assert removal.removed == 1
    assert await read_all(samples, "ann") == []


async def read_all(store: SampleStore, user: str) -> list[Any]:
    rows = []
    async for batch in store.read_range(user, -(2**62), 2**62):
        rows.extend(batch)
    return rows


async def test_the_server_sweeps_in_the_background(
    aiohttp_client: Callable[..., Awaitable[TestClient]], tmp_path: Path, add_user: AddUser,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    settings = Settings(data_dir=tmp_path / "data", retention="2h", retention_check_seconds=0.05)
    await add_user("test", "test1234")
    now = time.time_ns()
    store = SampleStore(settings.data_dir)
    await fill(store, "test", now - 5 * HOUR, 300, step_ns=30 * SECOND)  # 5h..2.5h old
    await fill(store, "test", now - HOUR, 5, step_ns=SECOND)
    await store.close()
    path = store.path_for("test")
    assert count_rows(path) == 305

    caplog.set_level(logging.INFO, logger="tracker.retention")
    client = await aiohttp_client(create_app(settings))
    deadline = time.monotonic() + 10
    while count_rows(path) > 5:
        assert time.monotonic() < deadline, "the background sweep did not remove the old samples"
        await asyncio.sleep(0.05)
    assert [r.time for r in await stored(settings, "test")] == [now - HOUR + i * SECOND for i in range(5)]
    assert "retention: removed 300 samples of test older than 2h0m0s, in 1 batches" in caplog.messages
    assert client.app[RETENTION] is not None


# ----- /write and SHOW RETENTION POLICIES ----------------------------------------------------------


@pytest.fixture
async def test_user(add_user: AddUser) -> None:
    await add_user("test", "test1234")


async def set_retention(settings: Settings, user: str, retention_ns: int | None) -> None:
    """As `tracker user retention` does: through an accounts connection of its own."""
    store = await AccountStore.open(settings.data_dir)
    try:
        await Accounts(store).set_retention(user, retention_ns)
    finally:
        await store.close()


@pytest.mark.usefixtures("test_user")
async def test_write_beyond_retention_is_a_partial_write(client: TestClient, settings: Settings) -> None:
    now = time.time_ns()
    old, fresh = now - 2 * HOUR, now - 30 * SECOND
    body = f"samples hr_bpm=1 {old}\nsamples hr_bpm=2 {fresh}\nsamples hr_bpm=3 {old + 1}\nsamples hr_bpm=4 {fresh + 1}"
    # No retention: everything is kept.
    resp = await client.post("/write?db=test", data=body, headers=AUTH)
    assert resp.status == 204
    assert len(await stored(settings, "test")) == 4

    await set_retention(settings, "test", HOUR)
    body = body.replace("hr_bpm=", "pwr_w=")
    resp = await client.post("/write?db=test", data=body, headers=AUTH)
    assert resp.status == 400
    assert await resp.json() == {"error": "partial write: points beyond retention policy dropped=2"}
    rows = {r.time: r.fields for r in await stored(settings, "test")}
    assert rows[fresh] == {"hr_bpm": 2.0, "pwr_w": 2.0} and rows[fresh + 1] == {"hr_bpm": 4.0, "pwr_w": 4.0}
    assert rows[old] == {"hr_bpm": 1.0}  # the old points were not written

    # Every point too old: still InfluxDB's partial-write answer, nothing stored.
    resp = await client.post("/write?db=test&precision=s", data=f"samples cad_rpm=9 {old // SECOND}", headers=AUTH)
    assert resp.status == 400
    assert await resp.json() == {"error": "partial write: points beyond retention policy dropped=1"}
    assert all("cad_rpm" not in r.fields for r in await stored(settings, "test"))

    # With a refused line as well, both are named and both count as dropped.
    resp = await client.post(
        "/write?db=test", data=f"samples foo=1 {fresh}\nsamples dur_s=5 {fresh}\nsamples dur_s=6 {old}", headers=AUTH
    )
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error.startswith("partial write: unable to parse 'samples foo=1 ")
    assert error.endswith("\npoints beyond retention policy dropped=2")
    assert {r.time: r.fields.get("dur_s") for r in await stored(settings, "test")}[fresh] == 5.0


@pytest.mark.usefixtures("test_user")
async def test_every_way_in_refuses_samples_beyond_retention(
    client: TestClient, settings: Settings, make_token: TokenMaker
) -> None:
    """The apps and the JSON API hold samples to the retention as /write does: an old one is refused
    with the rule, not stored for the sweep to remove later."""
    await set_retention(settings, "test", HOUR)
    token = await make_token("test", "phone")
    now = time.time_ns()
    old_s, fresh_s = (now - 2 * HOUR) // SECOND, (now - 30 * SECOND) // SECOND
    rule = "beyond retention policy: samples are kept for 1h0m0s"

    def iso(seconds: int) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))

    async def refused(resp: Any, parameter: str) -> None:
        assert resp.status == 400
        assert await resp.json() == {"error": f'parameter "{parameter}": {rule}'}

    await refused(await client.get(f"/osmand?id={token}&lat=1&lon=2&timestamp={old_s}"), "timestamp")
    await refused(await client.get(f"/gpslogger?id={token}&lat=1&lon=2&time={iso(old_s)}"), "time")
    await refused(await client.get(f"/gpslogger?id={token}&lat=1&lon=2&timestamp={old_s}"), "timestamp")
    traccar = {"device_id": token, "location": {"timestamp": iso(old_s), "coords": {"latitude": 1, "longitude": 2}}}
    await refused(await client.post("/osmand", json=traccar), "location.timestamp")
    owntracks = {"_type": "location", "lat": 1, "lon": 2, "tst": old_s}
    await refused(await client.post("/owntracks", json=owntracks, headers=AUTH), "tst")

    # The JSON API names each such sample among the invalid items; nothing is stored...
    batch = {"samples": [{"time": old_s, "fields": {"hr_bpm": 1}}, {"time": fresh_s, "fields": {"hr_bpm": 2}}]}
    resp = await client.post("/api/v1/samples", json=batch, headers=AUTH)
    assert resp.status == 400
    assert await resp.json() == {
        "error": "1 of 2 samples are invalid; nothing was stored",
        "errors": [{"index": 0, "path": "/samples/0/time", "message": rule}],
    }
    resp = await client.post("/api/v1/samples", json={"time": old_s, "fields": {"hr_bpm": 1}}, headers=AUTH)
    assert resp.status == 400
    assert (await resp.json())["errors"] == [{"index": 0, "path": "/time", "message": rule}]
    assert await stored(settings, "test") == []
    # ... unless partial: then the others are.
    resp = await client.post("/api/v1/samples?partial=true", json=batch, headers=AUTH)
    assert resp.status == 207
    assert (await resp.json())["stored"] == 1

    # Fresh samples come in every way.
    assert (await client.get(f"/osmand?id={token}&lat=1&lon=2&timestamp={fresh_s + 1}")).status == 200
    assert (await client.get(f"/gpslogger?id={token}&lat=1&lon=2&time={iso(fresh_s + 2)}")).status == 200
    owntracks["tst"] = fresh_s + 3
    assert (await client.post("/owntracks", json=owntracks, headers=AUTH)).status == 200
    assert [r.time // SECOND - fresh_s for r in await stored(settings, "test")] == [0, 1, 2, 3]

    # A user kept forever again takes any age.
    await set_retention(settings, "test", 0)
    assert (await client.get(f"/osmand?id={token}&lat=1&lon=2&timestamp={old_s}")).status == 200
    assert (await stored(settings, "test"))[0].time == old_s * SECOND


async def show_retention(client: TestClient, db: str = "test", auth: dict[str, str] = AUTH) -> list[Any]:
    resp = await client.get("/query", params={"q": f'SHOW RETENTION POLICIES ON "{db}"'}, headers=auth)
    assert resp.status == 200
    body = await resp.json()
    series = body["results"][0]["series"][0]
    assert series["columns"] == ["name", "duration", "shardGroupDuration", "replicaN", "default"]
    return series["values"]


@pytest.mark.parametrize(
    ("default", "own", "row"),
    [
        ("inf", None, ["autogen", "0s", "168h0m0s", 1, True]),
        ("8h", None, ["autogen", "8h0m0s", "1h0m0s", 1, True]),
        ("8h", 7 * 24 * HOUR, ["autogen", "168h0m0s", "24h0m0s", 1, True]),
        ("8h", 0, ["autogen", "0s", "168h0m0s", 1, True]),
        ("inf", 90 * 60 * SECOND, ["autogen", "1h30m0s", "1h0m0s", 1, True]),
    ],
)
async def test_show_retention_policies(
    aiohttp_client: Callable[..., Awaitable[TestClient]], tmp_path: Path, add_user: AddUser,
    default: str, own: int | None, row: list[Any],
) -> None:  # fmt: skip
    settings = Settings(data_dir=tmp_path / "data", retention=default)
    await add_user("test", "test1234")
    if own is not None:
        await set_retention(settings, "test", own)
    client = await aiohttp_client(create_app(settings))
    assert await show_retention(client) == [row]


async def test_show_retention_policies_follows_the_cli_and_shares(
    aiohttp_client: Callable[..., Awaitable[TestClient]], tmp_path: Path, add_user: AddUser
) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    await add_user("test", "test1234")
    await add_user("viewer", "viewer123")
    client = await aiohttp_client(create_app(settings))
    assert (await show_retention(client))[0][1] == "0s"
    result = await asyncio.to_thread(run_cli, ["user", "retention", "test", "8h"], settings.data_dir)
    assert result.exit_code == 0, result.output
    assert (await show_retention(client))[0][1] == "8h0m0s"  # the running server follows at once
    result = await asyncio.to_thread(run_cli, ["share", "add", "test", "viewer"], settings.data_dir)
    assert result.exit_code == 0, result.output
    # A viewer sees the owner's policy for the owner's database, and their own for theirs.
    assert (await show_retention(client, "test", basic("viewer", "viewer123")))[0][1] == "8h0m0s"
    assert (await show_retention(client, "viewer", basic("viewer", "viewer123")))[0][1] == "0s"


async def test_a_bad_file_does_not_stop_the_sweep(
    samples: SampleStore, users: Users, caplog: pytest.LogCaptureFixture
) -> None:
    now = time.time_ns()
    for name in ("ann", "bob"):
        await users.add(name, HOUR)
        await fill(samples, name, now - 2 * HOUR, 10)
    await samples.close()
    with contextlib.closing(sqlite3.connect(samples.path_for("ann"))) as conn:
        conn.execute("PRAGMA user_version = 99")  # written by a newer Tracker
    store = SampleStore(samples.data_dir)
    try:
        sweeper = RetentionSweeper(store, users.accounts)
        [removal] = await sweeper.sweep()
        assert (removal.user, removal.removed) == ("bob", 10)
        assert count_rows(store.path_for("ann")) == 10  # untouched
        assert any("could not remove old samples of ann" in m and "newer Tracker" in m for m in caplog.messages)
        assert await sweeper.sweep() == []  # tried again, still nothing to do, still no exception
    finally:
        await store.close()
