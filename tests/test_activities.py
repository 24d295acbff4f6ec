"""Activities: splitting stored samples (incrementally, with late and imported samples), the owner's
edits, the cached summaries, and the HTTP API with its access rules."""

from __future__ import annotations

import json
import random
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Pt
from tracker.activities.settings import ActivitySettings
from tracker.storage import SampleStore
from tracker.storage import activities as stored

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


@pytest.mark.parametrize("seed", range(8))
async def test_random_batches_in_random_order_split_as_from_scratch(store: SampleStore, seed: int) -> None:
    rng = random.Random(seed)
    gap = 60 * S
    points: list[Pt] = []
    for _ in range(rng.randrange(50, 300)):
        device = rng.choice(["phone", "phone", "watch"])
        sport = rng.choice(["", "cycling"])
        points.append(pt(T0 + rng.randrange(0, 3 * 3600) * S, device, sport))
    rng.shuffle(points)
    # The first write makes the file; the settings then say a 60 s gap.
    await store.write("ann", points[:1])
    await stored.save_settings(store, "ann", ActivitySettings(gap_s=60))
    index = 1
    while index < len(points):
        size = rng.randrange(1, 20)
        await store.write("ann", points[index : index + size])
        index += size
        if rng.random() < 0.5:
            await stored.refresh(store, "ann")
    assert await spans(store, "ann") == reference(points, gap)


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
    days = [[pt(T0 + day * 86400 * S + i * S) for i in range(500)] for day in range(5)]
    await store.write("ann", [p for day in days for p in day])
    await stored.refresh(store, "ann")
    _set_summaries(store.path_for("ann"), json.dumps({"samples": "cached"}))
    live = T0 + 4 * 86400 * S + 500 * S
    await store.write("ann", [pt(live)])
    stats = await stored.refresh(store, "ann")
    assert stats.times_read == 501  # the live activity's samples and the new one, nothing older
    assert (stats.inserted, stats.updated, stats.deleted) == (0, 1, 0)
    rows = await stored.list_activities(store, "ann", limit=10)
    assert [r.summary for r in rows] == [None] + [{"samples": "cached"}] * 4
    assert rows[0].samples == 501


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
