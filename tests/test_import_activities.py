"""Imports and activities together: after an import (HTTP and CLI) the activities are up to date and the
summary names those the file's samples fall in; the same file twice gives the same activities and no new
samples; imported samples between or inside live activities re-split them as a split from scratch would.

The files are written by gpxpy (an independent library), as a Garmin Edge would name itself: creator
"Edge 530" is device `edge-530`, trk type "cycling" the sport, the tags live samples carry here too.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import gpxpy.gpx
import pytest
from aiohttp.test_utils import TestClient

from tests.cli_helpers import add_user as cli_add_user
from tests.cli_helpers import invoke
from tests.conftest import AddUser, basic

PASSWORD = "password-1"
ANN = basic("ann", PASSWORD)
S = 10**9
T0 = 1_796_022_000  # 2026-11-30T07:00:00Z, in seconds
MINUTE = 60


def gpx_file(seconds: list[int], creator: str = "Edge 530", sport: str = "cycling") -> bytes:
    """A GPX track with a fix at each of `seconds` (since the epoch), heart rate in Garmin's extension."""
    document = gpxpy.gpx.GPX()
    document.creator = creator
    track = gpxpy.gpx.GPXTrack(name="Ride")
    track.type = sport  # type: ignore[assignment]
    segment = gpxpy.gpx.GPXTrackSegment()
    for i, second in enumerate(seconds):
        segment.points.append(gpxpy.gpx.GPXTrackPoint(
            46.0 + i * 1e-5, 14.0, elevation=300.0, time=dt.datetime.fromtimestamp(second, dt.timezone.utc),
        ))  # fmt: skip
    track.segments.append(segment)
    document.tracks.append(track)
    return document.to_xml(version="1.1").encode()


def iso(second: int) -> str:
    return dt.datetime.fromtimestamp(second, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


async def import_file(client: TestClient, data: bytes, filename: str = "ride.gpx") -> dict[str, Any]:
    resp = await client.post("/api/import", data=data, headers={**ANN, "X-Filename": filename})
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def activity_spans(client: TestClient) -> list[tuple[int, str, str, int]]:
    """(id, start, end, samples) of every activity, oldest first."""
    listing = await (await client.get("/api/activities?limit=500", headers=ANN)).json()
    return [(a["id"], a["start"], a["end"], a["samples"]) for a in reversed(listing["activities"])]


async def sample_count(client: TestClient) -> int:
    """Through /query, not the activities: every stored position."""
    resp = await client.get("/query", params={"db": "ann", "q": "SELECT count(lat) FROM samples"}, headers=ANN)
    series = (await resp.json())["results"][0].get("series")
    return series[0]["values"][0][1] if series else 0


@pytest.fixture
async def ann(client: TestClient, add_user: AddUser) -> TestClient:
    await add_user("ann", PASSWORD)
    return client


async def test_the_import_summary_names_the_activities_and_a_second_import_changes_nothing(ann: TestClient) -> None:
    # Two rides 10 minutes long, one fix a minute, 50 minutes apart: more than the 30-minute gap.
    first = [T0 + i * MINUTE for i in range(11)]
    second = [T0 + 60 * MINUTE + i * MINUTE for i in range(11)]
    data = gpx_file(first + second)
    summary = await import_file(ann, data)
    assert summary["stored"] == 22
    ids = [a["id"] for a in summary["activities"]]
    assert summary["activities"] == [
        {"id": ids[0], "name": "Cycling, 30 Nov 2026 07:00", "start": iso(first[0]), "end": iso(first[-1])},
        {"id": ids[1], "name": "Cycling, 30 Nov 2026 08:00", "start": iso(second[0]), "end": iso(second[-1])},
    ]
    spans = await activity_spans(ann)
    assert spans == [(ids[0], iso(first[0]), iso(first[-1]), 11), (ids[1], iso(second[0]), iso(second[-1]), 11)]

    again = await import_file(ann, data)
    assert again["activities"] == summary["activities"]
    assert await activity_spans(ann) == spans
    assert await sample_count(ann) == 22


async def test_imported_samples_between_and_inside_live_activities_resplit(ann: TestClient) -> None:
    # Live: 07:00-07:10 and 08:00-08:05, a fix every 30 s, from the same device and sport.
    morning = [T0 + i * 30 for i in range(21)]
    later = [T0 + 60 * MINUTE + i * 30 for i in range(11)]
    lines = [f"samples,device=edge-530,sport=cycling lat=46,lng=14,hr_bpm=120i {t * S}" for t in morning + later]
    resp = await ann.post("/write?db=ann", data="\n".join(lines), headers=ANN)
    assert resp.status == 204, await resp.text()
    [(morning_id, *_), (later_id, *_)] = await activity_spans(ann)
    assert morning_id != later_id

    # Inside the morning ride (at the quarter minutes): still two activities, 10 more samples in the first.
    inside = [T0 + 15 + i * 30 for i in range(10)]
    summary = await import_file(ann, gpx_file(inside), "inside.gpx")
    assert [a["id"] for a in summary["activities"]] == [morning_id]
    assert await activity_spans(ann) == [
        (morning_id, iso(morning[0]), iso(morning[-1]), 31), (later_id, iso(later[0]), iso(later[-1]), 11),
    ]

    # Between them, every 20 minutes from 07:25 to 07:45: no pause over 30 minutes is left, so one activity,
    # with the id of the one it overlaps most (the morning's 31 samples against 11).
    between = [T0 + 25 * MINUTE, T0 + 45 * MINUTE]
    summary = await import_file(ann, gpx_file(between), "between.gpx")
    assert [a["id"] for a in summary["activities"]] == [morning_id]
    assert summary["activities"][0]["end"] == iso(later[-1])
    assert await activity_spans(ann) == [(morning_id, iso(morning[0]), iso(later[-1]), 31 + 2 + 11)]

    # Another device's file over the same time is another track: an activity of its own.
    summary = await import_file(ann, gpx_file(between, creator="Forerunner 965", sport="running"), "run.gpx")
    [run] = summary["activities"]
    assert run["id"] not in (morning_id, later_id) and run["name"] == "Running, 30 Nov 2026 07:25"
    assert len(await activity_spans(ann)) == 2


def test_tracker_import_lists_the_activities_and_twice_changes_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    cli_add_user(data_dir, "ann")
    ride = tmp_path / "ride.gpx"
    ride.write_bytes(gpx_file([T0 + i * MINUTE for i in range(11)] + [T0 + 120 * MINUTE + i for i in range(5)]))
    outputs = []
    for _ in range(2):
        result = invoke(["import", "ann", str(ride), "--data-dir", str(data_dir)])
        assert result.exit_code == 0, result.output
        outputs.append([line.strip() for line in result.output.splitlines() if line.strip().startswith("activity ")])
    assert outputs[0] == [
        f"activity 1: Cycling, 30 Nov 2026 07:00, {iso(T0)} to {iso(T0 + 10 * MINUTE)}",
        f"activity 2: Cycling, 30 Nov 2026 09:00, {iso(T0 + 120 * MINUTE)} to {iso(T0 + 120 * MINUTE + 4)}",
    ]
    assert outputs[1] == outputs[0]
