"""Activity files in and out of a user's samples: one import and one export, used by the CLI and the API.

Import turns a file's tracks (tracker.formats) into points tagged `device` and `sport` (left out when
the file names none) and stores them through the store's write path in big batches; writes merge, so
importing a file twice changes nothing. After an import the user's activities are brought up to date and
the summary names those the file's samples fall in (`note_activities`). Export reads a time range (optionally one track: device and
sport) into one Track that tracker.formats writes; the activities call it with an activity's track and
span.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tracker import formats
from tracker.activities.names import activity_name
from tracker.formats import Track
from tracker.formats.track import rfc3339
from tracker.lineprotocol import MAX_NANO_TIME, MIN_NANO_TIME, Point
from tracker.retention import Cutoff
from tracker.rules import parse_time_string
from tracker.storage import DEVICE_TAG, SampleStore, activities
from tracker.vocabulary import MEASUREMENT

Default = TypeVar("Default", int, None)

SPORT_TAG = activities.SPORT_TAG  # the tag activities split by
MIN_TIME_NS, MAX_TIME_NS = MIN_NANO_TIME, MAX_NANO_TIME + 1  # an export's range, when start or end is not given
IMPORT_BATCH = 50_000  # points per store write: one journal entry and one transaction each
EXPORT_MAX_SAMPLES = 2_000_000  # one export's samples are held in memory to write the file: bounded
READ_BATCH = 10_000


class ExportTooLarge(ValueError):
    """The range holds more samples than one export writes."""


class NothingToExport(LookupError):
    """The range (and track) holds no samples."""


@dataclass(frozen=True, slots=True)
class Exported:
    data: bytes
    filename: str  # USER-<first sample's time>.<format>, safe as a file name


@dataclass(slots=True)
class ImportSummary:
    filename: str
    format: str = ""
    tracks: list[dict[str, Any]] = field(default_factory=list)  # per track: kind, name, device, sport, points, start, end
    points: int = 0
    stored: int = 0
    refused: dict[str, int] = field(default_factory=dict)  # why -> points not stored (retention, clock)
    unmapped: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    activities: list[dict[str, Any]] = field(default_factory=list)  # id, name, start, end: where the samples fell

    def as_json(self) -> dict[str, Any]:
        starts = [t["start"] for t in self.tracks if t["start"]]
        ends = [t["end"] for t in self.tracks if t["end"]]
        return {
            "file": self.filename, "format": self.format, "tracks": self.tracks, "points": self.points,
            "stored": self.stored, "refused": self.refused, "unmapped": self.unmapped,
            "start": min(starts) if starts else None, "end": max(ends) if ends else None,
            "activities": self.activities,
        }  # fmt: skip


def tags_of(track: Track) -> tuple[tuple[str, str], ...]:
    tags = [(DEVICE_TAG, track.device), (SPORT_TAG, track.sport)]
    return tuple(sorted((key, value) for key, value in tags if value))


def _points(
    samples: Sequence[tuple[int, dict[str, float]]], tags: tuple[tuple[str, str], ...], cutoff: Cutoff, refused: dict[str, int]
) -> list[Point]:
    """The samples the cutoff keeps, as points; the others counted in `refused` by reason."""
    points: list[Point] = []
    for time_ns, fields in samples:
        reason = cutoff.refusal(time_ns)
        if reason is None:
            points.append(Point(MEASUREMENT, tags, dict(fields), time_ns))
        else:
            refused[reason] = refused.get(reason, 0) + 1
    return points


async def import_tracks(
    filename: str,
    tracks: Sequence[Track],
    *,
    write: Callable[[list[Point]], Awaitable[None]],
    cutoff: Cutoff,
    progress: Callable[[int], None] | None = None,
) -> ImportSummary:
    """Store the tracks' points (courses have none to store: they are counted, not stored)."""
    started = time.monotonic()
    summary = ImportSummary(filename, format=tracks[0].format if tracks else "")
    for track in tracks:
        for name, count in track.unmapped.items():
            summary.unmapped[name] = summary.unmapped.get(name, 0) + count
        summary.tracks.append({
            "kind": track.kind, "name": track.name, "device": track.device, "sport": track.sport,
            "points": len(track.points) if track.kind == "activity" else len(track.route),
            "start": rfc3339(track.points[0][0]) if track.points else None,
            "end": rfc3339(track.points[-1][0]) if track.points else None,
        })  # fmt: skip
        if track.kind != "activity":
            continue
        tags = tags_of(track)
        summary.points += len(track.points)
        for first in range(0, len(track.points), IMPORT_BATCH):
            # Built off the event loop: a batch is tens of thousands of points.
            batch = await asyncio.to_thread(_points, track.points[first : first + IMPORT_BATCH], tags, cutoff, summary.refused)
            if batch:
                await write(batch)
                summary.stored += len(batch)
            if progress is not None:
                progress(min(IMPORT_BATCH, len(track.points) - first))
    summary.seconds = time.monotonic() - started
    return summary


async def note_activities(store: SampleStore, user: str, tracks: Sequence[Track], summary: ImportSummary) -> None:
    """Refresh the user's activities (the import marked what it wrote) and list in the summary those of
    each imported track's span, oldest first; an activity two tracks share is listed once."""
    if not summary.stored:
        return  # nothing landed (refused by retention or the clock, or a course file): in no activity
    await activities.refresh(store, user)
    seen: set[int] = set()
    for track in tracks:
        if track.kind != "activity" or not track.points:
            continue
        key = (track.device, track.sport)
        for row in await activities.track_activities(store, user, key, track.points[0][0], track.points[-1][0]):
            if row.id not in seen:
                seen.add(row.id)
                summary.activities.append({
                    "id": row.id, "name": activity_name(row.name, row.sport, row.start_ns),
                    "start": rfc3339(row.start_ns), "end": rfc3339(row.end_ns),
                })  # fmt: skip


def parse_time(value: object, name: str, default: Default) -> int | Default:
    """A time parameter (an export's start or end, an activity range or split): ns since the epoch (an
    integer, or its digits) or RFC 3339; `default` when absent or ""; ValueError naming the parameter."""
    if value is None or value == "":
        return default
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = value.strip() if isinstance(value, str) else ""
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        return parse_time_string(text)
    except ValueError:
        raise ValueError(
            f"{name}: {str(value)[:40]!r} is not a time: use RFC 3339 (2026-12-05T07:00:00Z) or ns since the epoch"
        ) from None


async def export_track(
    store: SampleStore, user: str, start_ns: int, end_ns: int, *, device: str | None = None, sport: str | None = None,
) -> Track:
    """The samples of start_ns <= time < end_ns, of one track when device and/or sport are given ("" for
    samples without that tag), as one Track; samples of several series at one time merge into one point."""
    merged: dict[int, dict[str, float]] = {}
    devices: set[str] = set()
    sports: set[str] = set()
    count = 0
    async for batch in store.read_range(user, start_ns, end_ns, batch=READ_BATCH):
        for sample in batch:
            sample_device = sample.tags.get(DEVICE_TAG, "")
            sample_sport = sample.tags.get(SPORT_TAG, "")
            if (device is not None and sample_device != device) or (sport is not None and sample_sport != sport):
                continue
            count += 1
            if count > EXPORT_MAX_SAMPLES:
                raise ExportTooLarge(
                    f"the range holds more than {EXPORT_MAX_SAMPLES} samples; export a shorter range (start, end) or one track (device, sport)"
                )
            devices.add(sample_device)
            sports.add(sample_sport)
            merged.setdefault(sample.time, {}).update(sample.fields)
    one_device = devices.pop() if len(devices) == 1 else ""
    one_sport = sports.pop() if len(sports) == 1 else ""
    name = " ".join(part for part in (user, one_sport, rfc3339(min(merged)) if merged else "") if part)
    return Track(name=name, sport=one_sport, device=one_device, points=sorted(merged.items()))


async def export_file(
    store: SampleStore, user: str, fmt: str, start_ns: int, end_ns: int, *, device: str | None = None, sport: str | None = None,
) -> Exported:
    """The file of `export_track`'s samples in `fmt` (written off the event loop): what GET /api/export,
    `tracker export` and an activity's export answer. NothingToExport when there are no samples."""
    track = await export_track(store, user, start_ns, end_ns, device=device, sport=sport)
    if not track.points:
        raise NothingToExport("no samples in the range (start, end, device, sport)")
    data = await asyncio.to_thread(formats.write, fmt, track)
    stamp = rfc3339(track.points[0][0]).replace(":", "-")
    return Exported(data, f"{user}-{stamp}.{fmt}")
