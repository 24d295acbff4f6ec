"""The cached summary over HTTP: a live append folds in the new samples alone, anything else folds all
of them; either way the summary and the default laps equal the from-scratch reference's."""

from __future__ import annotations

import math
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests import activity_summary_reference as reference
from tests.conftest import basic
from tracker.activities.settings import ActivitySettings
from tracker.appkeys import SAMPLES
from tracker.storage import activities as stored

S = 1_000_000_000
T0 = 1_700_000_000 * S
KEYS = ("lat", "lng", "alt_m", "hr_bpm", "pwr_w", "cad_rpm")
AUTH = basic("ann", "pw-ann")


def ride(start: int, count: int, rng: random.Random) -> list[tuple[int, dict[str, float]]]:
    out = []
    for i in range(count):
        t = start + i * S
        out.append((t, {
            "lat": round(45 + (t - T0) / S * 6e-5 + rng.uniform(-1e-5, 1e-5), 7), "lng": round(7 + rng.uniform(-1e-5, 1e-5), 7),
            "alt_m": round(500 + 20 * math.sin((t - T0) / S / 60) + rng.uniform(-2, 2), 2),
            "hr_bpm": float(rng.randint(90, 180)), "pwr_w": float(rng.choice((0, rng.randint(100, 400)))),
            "cad_rpm": float(rng.choice((0, rng.randint(60, 100)))),
        }))  # fmt: skip
    return out


async def write(client: TestClient, samples: list[tuple[int, dict[str, float]]]) -> None:
    lines = [
        "samples,device=phone,sport=cycling " + ",".join(f"{k}={v!r}" for k, v in fields.items()) + f" {t}"
        for t, fields in samples
    ]
    response = await client.post("/write?db=ann", data="\n".join(lines), headers=AUTH)
    assert response.status == 204, await response.text()


def expected(samples: list[tuple[int, dict[str, float]]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    samples = sorted(samples)
    times = [t for t, _ in samples]
    columns = {key: [fields.get(key) for _, fields in samples] for key in KEYS}
    return reference.summarize(times, columns, ActivitySettings()), reference.laps(times, columns, 1000.0, ActivitySettings())


def same(got: Any, want: Any) -> None:
    if isinstance(want, dict):
        assert got.keys() == want.keys()
        for key in want:
            same(got[key], want[key])
    elif isinstance(want, list):
        assert len(got) == len(want)
        for a, b in zip(got, want):
            same(a, b)
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-9, abs=1e-6)
    else:
        assert got == want


@pytest.fixture
def pieces(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """Per read of an activity's samples, how many samples each of its pieces held."""
    found: list[list[int]] = []
    read = stored.track_sample_chunks

    async def counting(*args: Any) -> AsyncIterator[stored.TrackSamples]:
        sizes: list[int] = []
        found.append(sizes)
        async for piece in read(*args):
            sizes.append(len(piece.times))
            yield piece

    monkeypatch.setattr(stored, "track_sample_chunks", counting)
    return found


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many samples each read of an activity's samples returned (all its pieces)."""
    counts: list[int] = []
    read = stored.track_sample_chunks

    async def counting(*args: Any) -> AsyncIterator[stored.TrackSamples]:
        counts.append(0)
        index = len(counts) - 1
        async for piece in read(*args):
            counts[index] += len(piece.times)
            yield piece

    monkeypatch.setattr(stored, "track_sample_chunks", counting)
    return counts


async def test_a_live_append_folds_in_only_the_new_samples(client: TestClient, add_user: Any, reads: list[int]) -> None:
    await add_user("ann", "pw-ann")
    rng = random.Random(7)
    samples = ride(T0, 1500, rng)
    await write(client, samples)
    [activity] = (await (await client.get("/api/activities", headers=AUTH)).json())["activities"]
    url = f"/api/activities/{activity['id']}"
    want_summary, want_laps = expected(samples)
    same(activity["summary"], want_summary)
    assert reads == [1500]
    assert want_summary["distance_m"] > 1500 and len(want_laps) >= 2  # the laps below are real ones

    # Live: five more samples after the end. Only those five are read, and the summary is exact.
    reads.clear()
    more = ride(T0 + 1500 * S, 5, rng)
    samples += more
    await write(client, more)
    got = await (await client.get(url, headers=AUTH)).json()
    want_summary, want_laps = expected(samples)
    assert got["samples"] == 1505
    same(got["summary"], want_summary)
    assert reads == [5]

    # The default laps come from the cache; another distance reads the activity.
    reads.clear()
    same((await (await client.get(f"{url}/laps", headers=AUTH)).json())["laps"], want_laps)
    assert reads == []
    times = [t for t, _ in samples]
    columns = {key: [fields[key] for _, fields in samples] for key in KEYS}
    same(
        (await (await client.get(f"{url}/laps?every_m=300", headers=AUTH)).json())["laps"],
        reference.laps(times, columns, 300.0, ActivitySettings()),
    )
    assert reads == [1505]

    # A late sample inside: everything is folded again, and the summary is the exact one.
    reads.clear()
    late = [(T0 + 700 * S + S // 2, {"lat": 45.05, "lng": 7.0, "alt_m": 900.0, "hr_bpm": 199.0, "pwr_w": 1500.0, "cad_rpm": 120.0})]
    samples += late
    await write(client, late)
    got = await (await client.get(url, headers=AUTH)).json()
    want_summary, want_laps = expected(samples)
    assert got["summary"]["hr_max_bpm"] == 199 and got["summary"]["pwr_max_w"] == 1500
    same(got["summary"], want_summary)
    same((await (await client.get(f"{url}/laps", headers=AUTH)).json())["laps"], want_laps)
    assert reads == [1506]

    # Appends again after that: the fold continues from the recomputed state.
    reads.clear()
    more = ride(T0 + 1505 * S, 3, rng)
    samples += more
    await write(client, more)
    got = await (await client.get(url, headers=AUTH)).json()
    same(got["summary"], expected(samples)[0])
    assert reads == [3]


async def test_a_settings_change_folds_everything_again(client: TestClient, add_user: Any, reads: list[int]) -> None:
    await add_user("ann", "pw-ann")
    samples = ride(T0, 300, random.Random(3))
    await write(client, samples)
    [activity] = (await (await client.get("/api/activities", headers=AUTH)).json())["activities"]
    reads.clear()
    response = await client.put("/api/activity-settings", json={"hr_max_bpm": 190}, headers=AUTH)
    assert response.status == 200, await response.text()
    got = await (await client.get(f"/api/activities/{activity['id']}", headers=AUTH)).json()
    times = [t for t, _ in samples]
    columns = {key: [fields[key] for _, fields in samples] for key in KEYS}
    same(got["summary"], reference.summarize(times, columns, ActivitySettings(hr_max_bpm=190)))
    assert got["summary"]["hr_zones_s"] is not None
    assert reads == [300]


async def test_a_state_of_another_layout_is_folded_again(client: TestClient, add_user: Any, reads: list[int]) -> None:
    """A state an older version stored (other keys) is not continued: the activity is folded again."""
    await add_user("ann", "pw-ann")
    samples = ride(T0, 1200, random.Random(5))
    await write(client, samples)
    [activity] = (await (await client.get("/api/activities", headers=AUTH)).json())["activities"]
    url = f"/api/activities/{activity['id']}"

    def older(conn: Any) -> None:
        conn.execute("UPDATE activities SET summary_state = ?", ('{"samples": 1200, "sums": [1, 2]}',))

    await client.app[SAMPLES].run_on_writer("ann", older)
    reads.clear()
    _, want_laps = expected(samples)
    # the summary is cached: the laps cannot come from that state, so they come from the samples
    same((await (await client.get(f"{url}/laps", headers=AUTH)).json())["laps"], want_laps)
    assert reads == [1200]
    more = ride(T0 + 1200 * S, 2, random.Random(6))
    await write(client, more)
    reads.clear()
    same((await (await client.get(url, headers=AUTH)).json())["summary"], expected(samples + more)[0])
    assert reads[-1] == 1202


async def test_a_long_activity_is_read_and_folded_in_bounded_pieces(
    client: TestClient, add_user: Any, pieces: list[list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Memory stays bounded for an activity that never pauses: its samples come in pieces of at most
    READ_CHUNK_ROWS rows, folded one after the other, and give the summary and laps of all at once."""
    monkeypatch.setattr(stored, "READ_CHUNK_ROWS", 97)
    await add_user("ann", "pw-ann")
    samples = ride(T0, 1000, random.Random(11))
    await write(client, samples)
    [activity] = (await (await client.get("/api/activities", headers=AUTH)).json())["activities"]
    want_summary, want_laps = expected(samples)
    same(activity["summary"], want_summary)
    assert pieces == [[97] * 10 + [30]]
    pieces.clear()
    times = [t for t, _ in samples]
    columns = {key: [fields[key] for _, fields in samples] for key in KEYS}
    url = f"/api/activities/{activity['id']}"
    same(
        (await (await client.get(f"{url}/laps?every_m=250", headers=AUTH)).json())["laps"],
        reference.laps(times, columns, 250.0, ActivitySettings()),
    )
    assert pieces == [[97] * 10 + [30]]


async def test_an_instant_never_straddles_two_pieces(client: TestClient, add_user: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Two series of the track (another tag) at every instant: 2 rows an instant, pieces of 5 rows.
    monkeypatch.setattr(stored, "READ_CHUNK_ROWS", 5)
    await add_user("ann", "pw-ann")
    lines = [f"samples,device=phone,sport=cycling,src=a hr_bpm={100 + i} {T0 + i * S}" for i in range(9)]
    lines += [f"samples,device=phone,sport=cycling,src=b pwr_w={200 + i} {T0 + i * S}" for i in range(9)]
    response = await client.post("/write?db=ann", data="\n".join(lines), headers=AUTH)
    assert response.status == 204
    store = client.app[SAMPLES]
    got = [p async for p in stored.track_sample_chunks(store, "ann", ("phone", "cycling"), T0, T0 + 8 * S)]
    assert [len(p.times) for p in got] == [2, 2, 2, 2, 1]  # 4 rows (2 instants) fit in 5 rows
    assert [t for p in got for t in p.times] == [T0 + i * S for i in range(9)]
    assert [v for p in got for v in p.columns["hr_bpm"]] == [100.0 + i for i in range(9)]
    assert [v for p in got for v in p.columns["pwr_w"]] == [200.0 + i for i in range(9)]
    # More rows at one instant than a piece holds: that instant alone.
    monkeypatch.setattr(stored, "READ_CHUNK_ROWS", 1)
    got = [p async for p in stored.track_sample_chunks(store, "ann", ("phone", "cycling"), T0, T0 + 2 * S)]
    assert [(p.times, p.columns["hr_bpm"], p.columns["pwr_w"]) for p in got] == [
        ([T0 + i * S], [100.0 + i], [200.0 + i]) for i in range(3)
    ]
