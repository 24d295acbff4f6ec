"""Activities: splitting stored samples (incrementally, with late and imported samples), the owner's
edits, the cached summaries, and the HTTP API with its access rules."""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Pt
from tracker.activities.settings import ActivitySettings
from tracker.storage import SampleStore
from tracker.storage import activities as stored
from tracker.storage.connection import immediate

S = 1_000_000_000
GAP = 1800 * S  # the default gap
T0 = 1_700_000_000 * S


def pt(t: int, device: str = "phone", sport: str = "", **fields: float) -> Pt:
    tags = tuple(sorted([("device", device)] + ([("sport", sport)] if sport else [])))
    return Pt(t, fields or {"spd_kph": 10.0}, tags)


async def spans(store: SampleStore, user: str) -> list[tuple[str, str, int, int, int]]:
    await stored.refresh(store, user)
    rows = await stored.list_activities(store, user, limit=10_000)
    return sorted((r.device, r.sport, r.start_ns, r.end_ns, r.samples) for r in rows)


def reference(points: list[Pt], gap_ns: int) -> list[tuple[str, str, int, int, int]]:
    """The activities of these points split from scratch, by a plain reading of the rule."""
    by_track: dict[tuple[str, str], list[int]] = {}
    for p in points:
        tags = dict(p.tags)
        by_track.setdefault((tags.get("device", ""), tags.get("sport", "")), []).append(p.time)
    out = []
    for (device, sport), times in by_track.items():
        times = sorted(set(times))
        group = [times[0]]
        for t in times[1:]:
            if t - group[-1] > gap_ns:
                out.append((device, sport, group[0], group[-1], len(group)))
                group = []
            group.append(t)
        out.append((device, sport, group[0], group[-1], len(group)))
    return sorted(out)


@pytest.fixture
async def store(tmp_path: Path):
    s = SampleStore(tmp_path)
    yield s
    await s.close()


async def test_samples_split_by_gap_and_by_track(store: SampleStore) -> None:
    ride = [pt(T0 + i * S) for i in range(10)]
    after_lunch = [pt(T0 + 3600 * S + i * S) for i in range(5)]
    run = [pt(T0 + 5 * S, device="watch", sport="running") for _ in range(1)]
    await store.write("ann", ride + after_lunch + run)
    assert await spans(store, "ann") == [
        ("phone", "", T0, T0 + 9 * S, 10),
        ("phone", "", T0 + 3600 * S, T0 + 3604 * S, 5),
        ("watch", "running", T0 + 5 * S, T0 + 5 * S, 1),
    ]


async def test_a_user_without_samples_has_no_activities(store: SampleStore) -> None:
    assert await spans(store, "nobody") == []


@pytest.mark.parametrize("gap_s", [60, 600])
@pytest.mark.parametrize("seed", range(6))
async def test_random_batches_in_random_order_split_as_from_scratch(store: SampleStore, seed: int, gap_s: int) -> None:
    # With a 600 s gap activities reach far beyond the window a write re-reads: their far parts
    # stand in as counted chunks, which must still give the from-scratch split.
    rng = random.Random(seed)
    points = _random_points(rng, rng.randrange(50, 300))
    await _write_in_random_batches(store, rng, points, gap_s, max_batch=20, refresh_chance=0.5)
    assert await spans(store, "ann") == reference(points, gap_s * S)


def _random_points(rng: random.Random, count: int) -> list[Pt]:
    """`count` samples over 3 hours on three tracks, in random order."""
    points = [
        pt(T0 + rng.randrange(0, 3 * 3600) * S, rng.choice(["phone", "phone", "watch"]), rng.choice(["", "cycling"]))
        for _ in range(count)
    ]
    rng.shuffle(points)
    return points


async def _write_in_random_batches(
    store: SampleStore, rng: random.Random, points: list[Pt], gap_s: int, *, max_batch: int, refresh_chance: float,
    step_rows: int = stored.REFRESH_STEP_ROWS,
) -> None:
    """Ann's samples in batches of random sizes, refreshing her activities now and then."""
    # The first write makes the file; the settings then say the gap.
    await store.write("ann", points[:1])
    await stored.save_settings(store, "ann", ActivitySettings(gap_s=gap_s))
    index = 1
    while index < len(points):
        size = rng.randrange(1, max_batch)
        await store.write("ann", points[index : index + size])
        index += size
        if rng.random() < refresh_chance:
            await stored.refresh(store, "ann", step_rows=step_rows)


@pytest.mark.parametrize("gap_s", [60, 600])
@pytest.mark.parametrize("seed", range(4))
async def test_a_refresh_in_tiny_steps_splits_as_from_scratch(store: SampleStore, seed: int, gap_s: int) -> None:
    # Steps of 7 sample rows: big dirty ranges are cut many times, each cut's rest left dirty for the
    # next step, and the result must still be the from-scratch split, also after a new gap re-splits
    # the whole history (one dirty range over everything).
    rng = random.Random(100 + seed)
    points = _random_points(rng, rng.randrange(150, 400))
    await _write_in_random_batches(store, rng, points, gap_s, max_batch=60, refresh_chance=0.3, step_rows=7)
    await stored.refresh(store, "ann", step_rows=7)
    assert await spans(store, "ann") == reference(points, gap_s * S)
    await stored.save_settings(store, "ann", ActivitySettings(gap_s=gap_s * 3))
    await stored.refresh(store, "ann", step_rows=7)
    assert await spans(store, "ann") == reference(points, gap_s * 3 * S)


async def test_each_step_reads_a_bounded_number_of_rows(store: SampleStore, monkeypatch: pytest.MonkeyPatch) -> None:
    # 1,000 samples a second apart, all dirty at once; a 60 s gap (60 rows on each side of a cut).
    await store.write("ann", [pt(T0)])
    await stored.save_settings(store, "ann", ActivitySettings(gap_s=60))
    await store.write("ann", [pt(T0 + i * S) for i in range(1000)] + [pt(T0 + 5000 * S + i * S) for i in range(300)])
    read_by_step: list[int] = []
    step = stored.refresh_step

    def counting(conn: sqlite3.Connection, step_rows: int, stats: stored.RefreshStats) -> bool:
        before = stats.times_read
        more = step(conn, step_rows, stats)
        read_by_step.append(stats.times_read - before)
        return more

    monkeypatch.setattr(stored, "refresh_step", counting)
    await stored.refresh(store, "ann", step_rows=200)
    # Each step: at most 200 rows of the dirty range, the 60 s (61 rows) on each side of it, and
    # the two counted chunks around them.
    assert max(read_by_step) <= 200 + 2 * 61 + 2
    assert len(read_by_step) >= 1300 // 200
    assert await spans(store, "ann") == [
        ("phone", "", T0, T0 + 999 * S, 1000),
        ("phone", "", T0 + 5000 * S, T0 + 5299 * S, 300),
    ]


async def test_another_users_write_commits_while_a_big_refresh_runs(store: SampleStore, monkeypatch: pytest.MonkeyPatch) -> None:
    await store.write("ann", [pt(T0)])
    await stored.save_settings(store, "ann", ActivitySettings(gap_s=60))
    await store.write("ann", [pt(T0 + i * S) for i in range(3000)])
    steps: list[str] = []
    step = stored.refresh_step

    def counting(conn: sqlite3.Connection, step_rows: int, stats: stored.RefreshStats) -> bool:
        steps.append("step")
        return step(conn, step_rows, stats)

    monkeypatch.setattr(stored, "refresh_step", counting)
    refreshing = asyncio.ensure_future(stored.refresh(store, "ann", step_rows=10))
    while not steps:  # the refresh has begun
        await asyncio.sleep(0)
    await store.write("bob", [pt(T0, hr_bpm=120.0)])
    # Bob's write is committed (another connection reads it) while Ann's refresh is mid-way: its
    # steps so far are committed, the rest of her dirty range still recorded.
    assert not refreshing.done()
    done_before = len(steps)
    assert 1 <= done_before < 3000 // 10
    assert (await store.read_all("bob", "SELECT count(*) FROM samples"))[0][0] == 1
    assert (await store.read_all("ann", "SELECT count(*) FROM activity_dirty"))[0][0] >= 1
    await refreshing
    assert len(steps) >= 3000 // 10
    assert await spans(store, "ann") == [("phone", "", T0, T0 + 2999 * S, 3000)]


async def test_a_refresh_cut_short_is_carried_on_by_another_process(tmp_path: Path) -> None:
    # One step in one process (as if it then crashed), the rest by another process on the same file.
    first, second = SampleStore(tmp_path, writer_key="worker-0"), SampleStore(tmp_path, writer_key="worker-1")
    try:
        rng = random.Random(9)
        points = [pt(T0 + rng.randrange(0, 4 * 3600) * S, rng.choice(["a", "b"])) for _ in range(500)]
        await first.write("ann", points)

        def one_step(conn: sqlite3.Connection) -> bool:
            with immediate(conn):
                return stored.refresh_step(conn, 50, stored.RefreshStats())

        assert await first.run_on_writer("ann", one_step) is True
        assert (await second.read_all("ann", "SELECT count(*) FROM activity_dirty"))[0][0] >= 1
        await stored.refresh(second, "ann", step_rows=50)
        assert await spans(first, "ann") == await spans(second, "ann") == reference(points, GAP)
    finally:
        await first.close()
        await second.close()


async def test_a_late_sample_bridges_two_activities_keeping_the_longer_ones_id(store: SampleStore) -> None:
    first = [pt(T0 + i * 60 * S) for i in range(20)]  # 19 minutes
    second = [pt(T0 + 3000 * S + i * 60 * S) for i in range(5)]  # 50 min after the start
    await store.write("ann", first + second)
    await stored.refresh(store, "ann")
    before = {r.start_ns: r.id for r in await stored.list_activities(store, "ann", limit=10)}
    await stored.rename(store, "ann", before[T0], "Morning")
    await store.write("ann", [pt(T0 + 2000 * S)])  # 14 min after the first ends, 16 min before the second
    await stored.refresh(store, "ann")
    [merged] = await stored.list_activities(store, "ann", limit=10)
    assert (merged.id, merged.name, merged.start_ns, merged.end_ns, merged.samples) == (
        before[T0], "Morning", T0, T0 + 3240 * S, 26
    )


async def test_late_samples_before_and_inside(store: SampleStore) -> None:
    await store.write("ann", [pt(T0 + i * S) for i in range(0, 100, 10)])
    await stored.refresh(store, "ann")
    await store.write("ann", [pt(T0 + 5 * S), pt(T0 - 1000 * S), pt(T0 - 5000 * S)])
    assert await spans(store, "ann") == [
        ("phone", "", T0 - 5000 * S, T0 - 5000 * S, 1),
        ("phone", "", T0 - 1000 * S, T0 + 90 * S, 12),
    ]


def _set_summaries(path: Path, text: str) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE activities SET summary = ?", (text,))


async def test_a_live_write_touches_only_the_live_activity(store: SampleStore) -> None:
    # Five two-hour rides, a sample every 10 s (720 each), a day apart.
    days = [[pt(T0 + day * 86400 * S + i * 10 * S) for i in range(720)] for day in range(5)]
    await store.write("ann", [p for day in days for p in day])
    await stored.refresh(store, "ann")
    _set_summaries(store.path_for("ann"), json.dumps({"samples": "cached"}))
    last = T0 + 4 * 86400 * S + 7190 * S
    await store.write("ann", [pt(last + 10 * S)])
    stats = await stored.refresh(store, "ann")
    # Read: the 180 samples of the last 30 min (the gap) before the new one, the new one, and the
    # rest of the ride as one counted chunk; nothing of the other rides.
    assert stats.times_read == 180 + 1 + 1
    assert (stats.inserted, stats.updated, stats.deleted) == (0, 1, 0)
    rows = await stored.list_activities(store, "ann", limit=10)
    assert [r.summary for r in rows] == [None] + [{"samples": "cached"}] * 4
    assert (rows[0].samples, rows[0].end_ns) == (721, last + 10 * S)


async def test_a_refresh_with_nothing_written_reads_nothing(store: SampleStore) -> None:
    await store.write("ann", [pt(T0)])
    await stored.refresh(store, "ann")
    assert await stored.refresh(store, "ann", force=True) == stored.RefreshStats()


async def test_a_new_gap_resplits_everything_and_summaries_go_stale(store: SampleStore) -> None:
    await store.write("ann", [pt(T0), pt(T0 + 100 * S), pt(T0 + 1000 * S)])
    assert len(await spans(store, "ann")) == 1
    _set_summaries(store.path_for("ann"), "{}")
    await stored.save_settings(store, "ann", ActivitySettings(gap_s=300))
    assert await spans(store, "ann") == [("phone", "", T0, T0 + 100 * S, 2), ("phone", "", T0 + 1000 * S, T0 + 1000 * S, 1)]
    assert await stored.read_settings(store, "ann") == ActivitySettings(gap_s=300)
    assert all(r.summary is None for r in await stored.list_activities(store, "ann", limit=10))


async def test_split_and_merge_survive_late_samples(store: SampleStore) -> None:
    await store.write("ann", [pt(T0 + i * 60 * S) for i in range(30)])
    await stored.refresh(store, "ann")
    [whole] = await stored.list_activities(store, "ann", limit=10)
    first, second = await stored.split(store, "ann", whole.id, T0 + 10 * 60 * S)
    # The longer part overlaps the old activity most: it keeps the id.
    assert (second.id, first.samples, second.samples, second.start_ns) == (whole.id, 10, 20, T0 + 600 * S)
    assert first.id != whole.id
    await store.write("ann", [pt(T0 + 10 * 60 * S - 30 * S), pt(T0 + 10 * 60 * S + 30 * S)])
    assert [s[4] for s in await spans(store, "ann")] == [11, 21]
    merged = await stored.merge(store, "ann", [second.id, first.id])
    assert (merged.id, merged.samples, merged.end_ns) == (first.id, 32, T0 + 29 * 60 * S)
    # A join spans the pause between merged activities, even one longer than the gap.
    await store.write("ann", [pt(T0 + 4 * 3600 * S)])
    await stored.refresh(store, "ann")
    rows = await stored.list_activities(store, "ann", limit=10)
    assert len(rows) == 2
    joined = await stored.merge(store, "ann", [r.id for r in rows])
    await store.write("ann", [pt(T0 + 3 * 3600 * S)])  # a late sample inside the joined pause
    assert await spans(store, "ann") == [("phone", "", T0, T0 + 4 * 3600 * S, 34)]
    assert joined.samples == 33


async def test_edits_refuse_what_does_not_apply(store: SampleStore) -> None:
    await store.write("ann", [pt(T0), pt(T0 + S), pt(T0, device="watch")])
    await stored.refresh(store, "ann")
    rows = {r.device: r for r in await stored.list_activities(store, "ann", limit=10)}
    with pytest.raises(stored.ActivityEditError, match="at must be after"):
        await stored.split(store, "ann", rows["phone"].id, T0)
    with pytest.raises(stored.ActivityEditError, match="same device and sport"):
        await stored.merge(store, "ann", [rows["phone"].id, rows["watch"].id])
    with pytest.raises(stored.ActivityEditError, match="no activity 999"):
        await stored.merge(store, "ann", [rows["phone"].id, 999])


async def test_delete_removes_the_activitys_samples_and_nothing_else(store: SampleStore) -> None:
    await store.write("ann", [pt(T0 + i * S) for i in range(5)] + [pt(T0 + 2 * S, device="watch")] + [pt(T0 + 9000 * S)])
    await stored.refresh(store, "ann")
    rows = sorted(await stored.list_activities(store, "ann", limit=10), key=lambda r: (r.start_ns, r.device))
    removed = await stored.delete(store, "ann", rows[0].id)
    assert removed == 5
    assert await spans(store, "ann") == [("phone", "", T0 + 9000 * S, T0 + 9000 * S, 1), ("watch", "", T0 + 2 * S, T0 + 2 * S, 1)]
    left = []
    async for batch in store.read_range("ann", T0 - S, T0 + 10_000 * S):
        left += [(s.time, s.tags["device"]) for s in batch]
    assert left == [(T0 + 2 * S, "watch"), (T0 + 9000 * S, "phone")]


async def test_retention_removal_removes_the_activities(store: SampleStore) -> None:
    await store.write("ann", [pt(T0 + i * S) for i in range(5)] + [pt(T0 + 9000 * S)])
    await store.delete_before("ann", T0 + 100 * S, 1000)
    assert await spans(store, "ann") == [("phone", "", T0 + 9000 * S, T0 + 9000 * S, 1)]


async def test_pagination_is_newest_first_with_a_cursor(store: SampleStore) -> None:
    await store.write("ann", [pt(T0 + i * 7200 * S) for i in range(5)])
    await stored.refresh(store, "ann")
    page = await stored.list_activities(store, "ann", limit=2)
    assert [r.start_ns for r in page] == [T0 + 4 * 7200 * S, T0 + 3 * 7200 * S]
    rest = await stored.list_activities(store, "ann", limit=10, before=(page[-1].start_ns, page[-1].id))
    assert [r.start_ns for r in rest] == [T0 + i * 7200 * S for i in (2, 1, 0)]
    ranged = await stored.list_activities(store, "ann", limit=10, from_ns=T0 + 7200 * S, to_ns=T0 + 2 * 7200 * S)
    assert len(ranged) == 2


# ---- the HTTP API

from aiohttp.test_utils import TestClient  # noqa: E402

from tests.conftest import basic  # noqa: E402
from tests.sse import sign_in  # noqa: E402


async def _write(client: TestClient, user: str, lines: list[str]) -> None:
    response = await client.post(f"/write?db={user}", data="\n".join(lines), headers=basic(user, f"pw-{user}"))
    assert response.status == 204, await response.text()


def _line(t: int, device: str = "phone", sport: str = "cycling", **fields: float) -> str:
    values = ",".join(f"{k}={v}" for k, v in (fields or {"spd_kph": 20.0}).items())
    return f"samples,device={device},sport={sport} {values} {t}"


@pytest.fixture
async def ann(client: TestClient, add_user: Any, accounts: Any) -> TestClient:
    for name in ("ann", "bob", "eve"):
        await add_user(name, f"pw-{name}")
    await accounts.add_share("ann", "bob")
    morning = [_line(T0 + i * S, hr_bpm=100 + i) for i in range(10)]
    evening = [_line(T0 + 9 * 3600 * S + i * S) for i in range(3)]
    await _write(client, "ann", morning + evening)
    return client


async def test_the_list_is_newest_first_with_summaries_and_a_cursor(ann: TestClient) -> None:
    page = await ann.get("/api/activities?limit=1", headers=basic("ann", "pw-ann"))
    assert page.status == 200
    body = await page.json()
    [evening] = body["activities"]
    assert {k: evening[k] for k in ("user", "device", "sport", "name", "named", "start", "start_ns", "end_ns", "samples")} == {
        "user": "ann", "device": "phone", "sport": "cycling", "name": "Cycling, 15 Nov 2023 07:13", "named": False,
        "start": "2023-11-15T07:13:20Z", "start_ns": T0 + 9 * 3600 * S, "end_ns": T0 + 9 * 3600 * S + 2 * S, "samples": 3,
    }
    assert set(evening["summary"]) >= {"samples", "elapsed_s", "distance_m", "hr_avg_bpm"}
    assert evening["summary"]["samples"] == 3
    rest = await (await ann.get(f"/api/activities?before={body['next']}", headers=basic("ann", "pw-ann"))).json()
    assert [a["start_ns"] for a in rest["activities"]] == [T0] and rest["next"] is None


async def test_the_summary_is_computed_cached_and_recomputed_when_samples_change(ann: TestClient) -> None:
    auth = basic("ann", "pw-ann")
    morning = (await (await ann.get("/api/activities", headers=auth)).json())["activities"][-1]
    summary = morning["summary"]
    assert (summary["samples"], summary["elapsed_s"], summary["hr_avg_bpm"], summary["hr_max_bpm"]) == (10, 9.0, 104.5, 109)
    # A late sample inside the morning ride: its summary follows, from the samples now stored.
    await _write(ann, "ann", [_line(T0 + 9 * S + S // 2, hr_bpm=150)])
    again = (await (await ann.get(f"/api/activities/{morning['id']}", headers=auth)).json())["summary"]
    assert (again["samples"], again["hr_avg_bpm"], again["hr_max_bpm"]) == (11, (1045 + 150) / 11, 150)


async def test_samples_are_the_activitys_own_and_downsampling_keeps_peaks(ann: TestClient) -> None:
    body = await (await ann.get("/api/activities", headers=basic("ann", "pw-ann"))).json()
    morning = body["activities"][-1]["id"]
    full = await (await ann.get(f"/api/activities/{morning}/samples", headers=basic("ann", "pw-ann"))).json()
    assert full["columns"] == ["time", "hr_bpm"] and full["downsampled"] is False
    assert [row[0] for row in full["values"]] == [T0 + i * S for i in range(10)]
    small = await (await ann.get(f"/api/activities/{morning}/samples?points=4", headers=basic("ann", "pw-ann"))).json()
    assert small["downsampled"] is True and len(small["values"]) <= 4
    heart = [row[1] for row in small["values"]]
    assert min(heart) == 100 and max(heart) == 109  # the extremes survive
    sub = await (await ann.get(
        f"/api/activities/{morning}/samples?start={T0 + 2 * S}&end=2023-11-14T22:13:23Z", headers=basic("ann", "pw-ann")
    )).json()  # fmt: skip
    assert [row[1] for row in sub["values"]] == [102, 103]


async def test_owner_edits_over_http(ann: TestClient) -> None:
    auth = basic("ann", "pw-ann")
    morning = (await (await ann.get("/api/activities", headers=auth)).json())["activities"][-1]
    renamed = await ann.patch(f"/api/activities/{morning['id']}", json={"name": "  Commute "}, headers=auth)
    assert (await renamed.json())["name"] == "Commute" and (await renamed.json())["named"] is True
    parts = await ann.post(f"/api/activities/{morning['id']}/split", json={"at": T0 + 4 * S}, headers=auth)
    assert parts.status == 200, await parts.text()
    first, second = (await parts.json())["activities"]
    assert (first["samples"], second["samples"]) == (4, 6)
    merged = await ann.post("/api/activities/merge", json={"ids": [first["id"], second["id"]]}, headers=auth)
    assert (await merged.json())["samples"] == 10
    refused = await ann.delete(f"/api/activities/{first['id']}", headers=auth)
    assert refused.status == 400 and "confirm" in (await refused.json())["error"]
    gone = await ann.delete(f"/api/activities/{first['id']}?confirm={first['id']}", headers=auth)
    assert (await gone.json()) == {"deleted": first["id"], "samples_removed": 10}
    left = (await (await ann.get("/api/activities", headers=auth)).json())["activities"]
    assert [a["samples"] for a in left] == [3]
    query = await ann.get("/query", params={"db": "ann", "q": "SELECT count(spd_kph) FROM samples"}, headers=auth)
    assert (await query.json())["results"][0]["series"][0]["values"][0][1] == 3


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/api/activities?limit=0", None, "limit must be between 1 and 500"),
        ("/api/activities?from=yesterday", None, "from: 'yesterday' is not a time"),
        ("/api/activities?before=x", None, "before must be a cursor"),
        ("/api/activities/x", None, "activity id must be a positive integer"),
        ("/api/activities/%C2%B2", None, "activity id must be a positive integer, got '\u00b2'"),
        ("/api/activities/0", None, "activity id must be a positive integer, got '0'"),
        ("/api/activities/" + "9" * 19, None, "activity id must be a positive integer"),
        ("/api/activities/999", None, "ann has no activity 999"),
        ("/api/activities/1/samples?points=1", None, "points must be between 2 and 20000"),
    ],
)
async def test_bad_requests_name_the_field(ann: TestClient, path: str, body: Any, message: str) -> None:
    response = await ann.get(path, headers=basic("ann", "pw-ann"))
    assert response.status in (400, 404)
    assert message in (await response.json())["error"]


async def test_bad_edits_name_the_field(ann: TestClient) -> None:
    auth = basic("ann", "pw-ann")
    some = (await (await ann.get("/api/activities", headers=auth)).json())["activities"][0]["id"]
    cases = [
        ("PATCH", f"/api/activities/{some}", {"name": 5}, "name must be a string or null"),
        ("POST", f"/api/activities/{some}/split", {"at": "soon"}, "at: 'soon' is not a time"),
        ("POST", f"/api/activities/{some}/split", {"at": 0}, "at must be after the activity's start"),
        ("POST", "/api/activities/merge", {"ids": [some]}, "ids must be a list of 2 to 100"),
        ("PUT", "/api/activity-settings", {"gap_s": 1}, "gap_s must be between 60 and 604800"),
        ("PUT", "/api/activity-settings", {"colour": 1}, "unknown activity setting 'colour'"),
    ]
    for method, path, body, message in cases:
        response = await ann.request(method, path, json=body, headers=auth)
        assert response.status == 400, (path, await response.text())
        assert message in (await response.json())["error"]


async def test_settings_round_trip_and_resplit(ann: TestClient) -> None:
    auth = basic("ann", "pw-ann")
    put = await ann.put("/api/activity-settings", json={"gap_s": 9 * 3600, "ftp_w": 250}, headers=auth)
    assert put.status == 200
    assert (await (await ann.get("/api/activity-settings", headers=auth)).json())["ftp_w"] == 250
    listed = (await (await ann.get("/api/activities", headers=auth)).json())["activities"]
    assert [a["samples"] for a in listed] == [13]


async def test_access_matrix(ann: TestClient) -> None:
    # The owner reads and changes; a viewer the owner shares with reads only; others are refused.
    assert (await ann.get("/api/activities", headers=basic("ann", "pw-ann"))).status == 200
    shared = await ann.get("/api/activities?user=ann", headers=basic("bob", "pw-bob"))
    assert shared.status == 200 and len((await shared.json())["activities"]) == 2
    some = (await shared.json())["activities"][0]["id"]
    for method, path, body in [
        ("PATCH", f"/api/activities/{some}?user=ann", {"name": "x"}),
        ("DELETE", f"/api/activities/{some}?user=ann&confirm={some}", None),
        ("PUT", "/api/activity-settings?user=ann", {"gap_s": 600}),
    ]:
        response = await ann.request(method, path, json=body, headers=basic("bob", "pw-bob"))
        assert (response.status, await response.json()) == (403, {"error": "user: only ann may change their activities"})
    stranger = await ann.get(f"/api/activities/{some}?user=ann", headers=basic("eve", "pw-eve"))
    assert (stranger.status, await stranger.json()) == (403, {"error": "user: eve may not read the activities of ann"})
    anonymous = await ann.get("/api/activities?user=ann")
    assert anonymous.status == 401
    wrong = await ann.get("/api/activities?user=ann", headers=basic("ann", "nope"))
    assert wrong.status == 401
    # Bob's own (empty) list.
    assert (await (await ann.get("/api/activities", headers=basic("bob", "pw-bob"))).json()) == {"activities": [], "next": None}


async def test_the_browser_session_reads_and_changes_with_the_csrf_token(ann: TestClient) -> None:
    csrf = await sign_in(ann, "ann", "pw-ann")
    listed = await ann.get("/api/activities")
    assert listed.status == 200
    some = (await listed.json())["activities"][0]["id"]
    without = await ann.patch(f"/api/activities/{some}", json={"name": "x"})
    assert without.status == 403
    with_token = await ann.patch(f"/api/activities/{some}", json={"name": "x"}, headers={"X-CSRF-Token": csrf})
    assert with_token.status == 200 and (await with_token.json())["name"] == "x"


async def test_the_openapi_document_lists_every_activities_route(client: TestClient) -> None:
    document = await (await client.get("/api/v1/openapi.json")).json()
    routes = {
        (route.method.lower(), route.resource.canonical)
        for route in client.app.router.routes()
        if route.resource and route.resource.canonical.startswith("/api/activit") and route.method != "HEAD"
    }
    assert len(routes) == 13
    assert {(m, p) for p, ops in document["paths"].items() for m in ops if "activit" in p} == routes


# ---- the cached summary, and files from before activities


async def test_a_summary_is_cached_only_while_nothing_changed_and_goes_stale_on_a_write(store: SampleStore) -> None:
    await store.write("ann", [pt(T0 + i * S) for i in range(10)] + [pt(T0 + 5000 * S)])
    await stored.refresh(store, "ann")
    rows = {r.start_ns: r for r in await stored.list_activities(store, "ann", limit=10)}
    ride, later = rows[T0], rows[T0 + 5000 * S]
    settings = await stored.read_settings(store, "ann")
    assert await stored.store_summary(store, "ann", later, {"samples": 1}, {}, settings)
    # Computed under other settings than the stored ones: not cached.
    assert not await stored.store_summary(store, "ann", ride, {"samples": 10}, {}, ActivitySettings(ftp_w=250))
    # A write into the ride not refreshed yet: not cached either.
    await store.write("ann", [pt(T0 + 3 * S + 1)])
    assert not await stored.store_summary(store, "ann", ride, {"samples": 10}, {}, settings)
    await stored.refresh(store, "ann")
    ride = await stored.get_activity(store, "ann", ride.id)
    assert ride is not None and ride.samples == 11
    assert await stored.store_summary(store, "ann", ride, {"samples": 11}, {}, settings)
    # Another write into the ride: its summary goes stale, the other activity's stays.
    await store.write("ann", [pt(T0 + 4 * S, hr_bpm=180)])
    await stored.refresh(store, "ann")
    assert (await stored.get_activity(store, "ann", ride.id)).summary is None
    assert (await stored.get_activity(store, "ann", later.id)).summary == {"samples": 1}
    # Changed settings make every summary stale.
    await stored.save_settings(store, "ann", ActivitySettings(ftp_w=250))
    assert (await stored.get_activity(store, "ann", later.id)).summary is None


async def test_a_file_from_before_activities_is_split_when_opened(tmp_path: Path) -> None:
    from tracker.storage import SAMPLE_MIGRATIONS

    path = tmp_path / "users" / "ann.sqlite"
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as conn:
        for script in SAMPLE_MIGRATIONS[:4]:
            conn.executescript(script)
        conn.execute("INSERT INTO series (id, tags) VALUES (1, '[[\"device\",\"phone\"]]')")
        conn.executemany("INSERT INTO samples (time, series, spd_kph) VALUES (?, 1, 5)", [(T0,), (T0 + S,), (T0 + 9000 * S,)])
        conn.execute("PRAGMA user_version = 4")
    conn.close()
    store = SampleStore(tmp_path)
    try:
        assert await spans(store, "ann") == [("phone", "", T0, T0 + S, 2), ("phone", "", T0 + 9000 * S, T0 + 9000 * S, 1)]
    finally:
        await store.close()


async def test_the_envelope_keeps_each_buckets_extremes_and_its_last_fix(store: SampleStore) -> None:
    heart = [100, 150, 90, 120, 110, 95, 97, 180, 96, 99]
    points = [pt(T0 + i * S, hr_bpm=heart[i], lat=40.0 + i, lng=8.0) for i in range(10)]
    points[9] = pt(T0 + 9 * S, hr_bpm=99)  # no fix in the last sample: the bucket's last fix is at 8 s
    await store.write("ann", points + [pt(T0 + 3 * S, device="watch", hr_bpm=250)])  # another track
    buckets = await stored.track_envelope(store, "ann", ("phone", ""), T0, T0 + 9 * S, 2)
    assert [(first - T0, last - T0) for first, last, _ in buckets] == [(0, 4 * S), (5 * S, 9 * S)]
    assert [b[2]["hr_bpm"] for b in buckets] == [(90, 150), (95, 180)]
    assert [b[2]["lat"] for b in buckets] == [(44.0, 44.0), (48.0, 48.0)]
    assert [b[2]["pwr_w"] for b in buckets] == [(None, None), (None, None)]


async def test_two_processes_writing_and_refreshing_one_file_agree(tmp_path: Path) -> None:
    # Two stores on one data folder, as two worker processes: each writes and refreshes in turn.
    first, second = SampleStore(tmp_path, writer_key="worker-0"), SampleStore(tmp_path, writer_key="worker-1")
    try:
        rng = random.Random(3)
        points = [pt(T0 + rng.randrange(0, 4 * 3600) * S, rng.choice(["a", "b"])) for _ in range(300)]
        for index in range(0, len(points), 10):
            writer, refresher = (first, second) if index % 20 else (second, first)
            await writer.write("ann", points[index : index + 10])
            await stored.refresh(refresher, "ann")
        assert await spans(first, "ann") == await spans(second, "ann") == reference(points, GAP)
    finally:
        await first.close()
        await second.close()
