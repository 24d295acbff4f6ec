"""Activities in a user's sample file: their rows, the owner's cuts and joins, the activity settings,
and the refresh that re-splits only what changed.

The writer marks the time range of every write and deletion in `activity_dirty` (one upsert per
batch, tracker.storage.samples). A refresh runs as jobs on the writer thread, so it serialises with
writes: it widens each dirty range by the gap and to the activities it touches, re-reads only those
samples' times per track, re-splits them (tracker.activities.segments) and replaces only the affected
rows, keeping ids. The writer thread serves every user, so a refresh goes in steps (`refresh_step`):
each one short transaction over at most REFRESH_STEP_ROWS sample rows (plus the gap's worth around a
cut), leaving the rest of a big dirty range recorded in `activity_dirty` for the next step (or for
another process, or after a crash); other users' writes commit between the steps.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any, AsyncIterator, Iterable, Sequence

from tracker.activities.segments import split_points
from tracker.activities.settings import ActivitySettings
from tracker.storage.connection import immediate
from tracker.storage.samples import DEVICE_TAG, SampleStore, mark_activities_dirty
from tracker.vocabulary import FIELD_KEYS

SPORT_TAG = "sport"
Track = tuple[str, str]  # (device, sport)
# SQLite's integers: widened ranges are clamped to them.
_MIN_NS = -(2**63)
_MAX_NS = 2**63 - 1
_COLUMNS = ", ".join(FIELD_KEYS)
_ACTIVITY_COLUMNS = "id, device, sport, start_ns, end_ns, samples, name, summary"
# Sample rows (of any track) one refresh step re-reads at most, besides the gap's worth on each side
# of a cut: its transaction holds the writer thread, shared by every user, for well under a second.
REFRESH_STEP_ROWS = 100_000
# Sample rows read at once when folding an activity's samples: memory stays bounded however long it is.
READ_CHUNK_ROWS = 50_000


@dataclass(frozen=True, slots=True)
class ActivityRow:
    id: int
    device: str
    sport: str
    start_ns: int
    end_ns: int
    samples: int
    name: str | None
    summary: dict[str, Any] | None  # None when stale

    @property
    def track(self) -> Track:
        return (self.device, self.sport)


def _row(values: Sequence[Any]) -> ActivityRow:
    summary = json.loads(values[7]) if values[7] is not None else None
    return ActivityRow(values[0], values[1], values[2], values[3], values[4], values[5], values[6], summary)


def _clamp(value: int) -> int:
    return max(_MIN_NS, min(_MAX_NS, value))


# ---- settings


def load_settings(conn: sqlite3.Connection) -> ActivitySettings:
    stored = {key: json.loads(value) for key, value in conn.execute("SELECT key, value FROM activity_settings")}
    return ActivitySettings.from_json(stored)


async def read_settings(store: SampleStore, user: str) -> ActivitySettings:
    rows = await store.read_all(user, "SELECT key, value FROM activity_settings")
    return ActivitySettings.from_json({key: json.loads(value) for key, value in rows})


async def save_settings(store: SampleStore, user: str, settings: ActivitySettings) -> None:
    """Store the settings; every summary goes stale, and a new gap re-splits the whole history."""

    def save(conn: sqlite3.Connection) -> None:
        with immediate(conn):
            before = load_settings(conn)
            conn.executemany(
                "INSERT INTO activity_settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [(key, json.dumps(value)) for key, value in settings.to_json().items()],
            )
            if before == settings:
                return
            conn.execute("UPDATE activities SET summary = NULL, summary_state = NULL")
            if before.gap_s != settings.gap_s:
                low, high = conn.execute("SELECT min(time), max(time) FROM samples").fetchone()
                if low is not None:
                    mark_activities_dirty(conn, low, high)

    await store.run_on_writer(user, save, create=True)  # settings before the first sample are kept too


# ---- refresh


@dataclass(slots=True)
class RefreshStats:
    """What a refresh did: sample times it read, rows it inserted, updated and deleted."""

    times_read: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0


def _tracks(conn: sqlite3.Connection) -> dict[Track, list[int]]:
    """Each track's series ids; tracks that only have activities left (their series gone) with none."""
    tracks: dict[Track, list[int]] = {}
    for series_id, tags_text in conn.execute("SELECT id, tags FROM series"):
        tags = dict(json.loads(tags_text))
        tracks.setdefault((tags.get(DEVICE_TAG, ""), tags.get(SPORT_TAG, "")), []).append(series_id)
    for device, sport in conn.execute("SELECT DISTINCT device, sport FROM activities"):
        tracks.setdefault((device, sport), [])
    return tracks


def _merged_ranges(ranges: Iterable[tuple[int, int]], gap_ns: int) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for low, high in sorted(ranges):
        if merged and low - gap_ns <= merged[-1][1] + gap_ns:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return merged


def refresh_in(conn: sqlite3.Connection) -> RefreshStats:
    """Inside the caller's transaction: re-split what the dirty ranges touch, then forget them (all
    steps at once: for the owner's edits, which refresh in steps first and so find little left)."""
    stats = RefreshStats()
    while refresh_step(conn, REFRESH_STEP_ROWS, stats):
        pass
    return stats


def _rows_between(conn: sqlite3.Connection, low: int, high: int, limit: int) -> int:
    """Sample rows with low <= time <= high, counted up to `limit`."""
    return int(
        conn.execute("SELECT count(*) FROM (SELECT 1 FROM samples WHERE time >= ? AND time <= ? LIMIT ?)", (low, high, limit)).fetchone()[0]
    )


def _step_cut(conn: sqlite3.Connection, low: int, high: int, rows: int) -> int:
    """Where a step over the dirty range [low, high] stops (inclusive): at its `rows`-th sample row,
    so a step always covers at least one instant; `high` when the range holds no more than that."""
    found = conn.execute("SELECT time FROM samples WHERE time >= ? ORDER BY time LIMIT 1 OFFSET ?", (low, rows - 1)).fetchone()
    return high if found is None else min(found[0], high)


def refresh_step(conn: sqlite3.Connection, step_rows: int, stats: RefreshStats) -> bool:
    """Inside the caller's transaction: re-split the oldest dirty ranges, over at most `step_rows`
    sample rows of theirs (and the gap's worth of samples on each side, which the re-split reads
    too), and forget what was done; whether dirty ranges are left for another step.

    Ranges are taken oldest first, whole while the budget lasts; the first one, when too big, up to a
    cut, its rest marked dirty again. Re-splitting [low, cut] and then [cut + 1, high] gives the same
    activities as [low, high] at once: the second re-reads from cut + 1 - gap, so every pause that
    the first judged against samples it did not re-split is judged again."""
    dirty = conn.execute("SELECT start_ns, end_ns FROM activity_dirty").fetchall()
    if not dirty:
        return False
    gap_ns = int(load_settings(conn).gap_s * 1e9)
    tracks = _tracks(conn)
    ranges = _merged_ranges(dirty, gap_ns)
    budget = max(1, step_rows)
    for index, (low, high) in enumerate(ranges):
        rows = _rows_between(conn, low, high, budget + 1)
        if rows > budget and index > 0:
            return True  # the next step starts here
        cut = high if rows <= budget else _step_cut(conn, low, high, budget)
        for track, series_ids in tracks.items():
            _resplit(conn, track, series_ids, low, cut, gap_ns, stats)
        # The range's rows are exactly those inside it (merged ranges are disjoint); the rest goes back.
        conn.execute("DELETE FROM activity_dirty WHERE start_ns >= ? AND end_ns <= ?", (low, high))
        if cut < high:
            mark_activities_dirty(conn, cut + 1, high)
            return True
        budget -= rows
        if budget < 1:
            return index + 1 < len(ranges)
    return False


_IN_TRACK = "series IN (SELECT value FROM json_each(?))"


def _resplit(
    conn: sqlite3.Connection, track: Track, series_ids: list[int], low: int, high: int, gap_ns: int, stats: RefreshStats
) -> None:
    """Re-split the track around the changed range [low, high].

    Only the samples within the gap of the range can split or join differently: the parts of the
    activities it touches that lie further out keep their samples and their pauses, so each stands
    in as one chunk (its last or first sample, and how many it holds) instead of being read again.
    A live write thus reads the last gap's worth of samples, not the whole ride.
    """
    device, sport = track
    window_low, window_high = _clamp(low - gap_ns), _clamp(high + gap_ns)
    touched = [
        _row(values)
        for values in conn.execute(
            f"SELECT {_ACTIVITY_COLUMNS} FROM activities WHERE device = ? AND sport = ? AND end_ns >= ? AND start_ns <= ? "
            "ORDER BY start_ns",
            (device, sport, window_low, window_high),
        )
    ]
    ids = json.dumps(series_ids)
    # Per chunk: its last time (what the split compares), first time, and sample count.
    lasts: list[int] = []
    firsts: list[int] = []
    counts: list[int] = []
    if touched and touched[0].start_ns < window_low and series_ids:
        count, last = conn.execute(
            f"SELECT count(DISTINCT time), max(time) FROM samples WHERE time >= ? AND time < ? AND {_IN_TRACK}",
            (touched[0].start_ns, window_low, ids),
        ).fetchone()
        if count:
            lasts.append(last)
            firsts.append(touched[0].start_ns)
            counts.append(count)
    if series_ids:
        for (t,) in conn.execute(
            f"SELECT DISTINCT time FROM samples WHERE time >= ? AND time <= ? AND {_IN_TRACK} ORDER BY time",
            (window_low, window_high, ids),
        ):
            lasts.append(t)
            firsts.append(t)
            counts.append(1)
    stats.times_read += len(lasts)
    if touched and max(row.end_ns for row in touched) > window_high and series_ids:
        end = max(row.end_ns for row in touched)
        count, first = conn.execute(
            f"SELECT count(DISTINCT time), min(time) FROM samples WHERE time > ? AND time <= ? AND {_IN_TRACK}",
            (window_high, end, ids),
        ).fetchone()
        if count:
            # The chunk's pauses are compared at its first sample; its end is the activity's.
            lasts.append(first)
            firsts.append(first)
            counts.append(count)
            suffix_end = end
        else:
            suffix_end = None
    else:
        suffix_end = None
    if not lasts and not touched:
        return
    span_low = min([window_low, *(row.start_ns for row in touched)])
    span_high = max([window_high, *(row.end_ns for row in touched)])
    cuts = [
        at
        for (at,) in conn.execute(
            "SELECT at_ns FROM activity_cuts WHERE device = ? AND sport = ? AND at_ns > ? AND at_ns <= ?",
            (device, sport, span_low, span_high),
        )
    ]
    joins = [
        (a, b)
        for a, b in conn.execute(
            "SELECT from_ns, to_ns FROM activity_joins WHERE device = ? AND sport = ? AND to_ns >= ? AND from_ns <= ?",
            (device, sport, span_low, span_high),
        )
    ]
    fresh = []
    for a, b in split_points(lasts, gap_ns, cuts, joins):
        end = suffix_end if suffix_end is not None and b == len(lasts) else lasts[b - 1]
        fresh.append((firsts[a], end, sum(counts[a:b])))
    # A new activity keeps the id (and name) of the old one it overlaps most; each old id once.
    pairs = sorted(
        (
            (min(end, old.end_ns) - max(start, old.start_ns), index, old_index)
            for index, (start, end, _) in enumerate(fresh)
            for old_index, old in enumerate(touched)
            if start <= old.end_ns and old.start_ns <= end
        ),
        reverse=True,
    )
    taken: dict[int, int] = {}  # fresh index -> touched index
    used: set[int] = set()
    for _, index, old_index in pairs:
        if index not in taken and old_index not in used:
            taken[index] = old_index
            used.add(old_index)
    for old_index, old in enumerate(touched):
        if old_index not in used:
            conn.execute("DELETE FROM activities WHERE id = ?", (old.id,))
            stats.deleted += 1
    for index, (start, end, count) in enumerate(fresh):
        matched = taken.get(index)
        if matched is None:
            conn.execute(
                "INSERT INTO activities (device, sport, start_ns, end_ns, samples) VALUES (?, ?, ?, ?, ?)",
                (device, sport, start, end, count),
            )
            stats.inserted += 1
            continue
        old = touched[matched]
        samples_changed = start <= high and low <= end  # the dirty range reaches into it
        if (start, end, count) == (old.start_ns, old.end_ns, old.samples) and not samples_changed:
            continue
        # Samples only appended after it (the live case): its summary's fold state stays, so the next
        # summary folds in the new samples alone; any other change starts the fold over.
        appended = start == old.start_ns and low > old.end_ns
        conn.execute(
            "UPDATE activities SET start_ns = ?, end_ns = ?, samples = ?, summary = NULL, "
            "summary_state = CASE WHEN ? THEN summary_state END WHERE id = ?",
            (start, end, count, appended, old.id),
        )
        stats.updated += 1


async def refresh(store: SampleStore, user: str, *, force: bool = False, step_rows: int = REFRESH_STEP_ROWS) -> RefreshStats:
    """Bring the user's activities up to date with their samples (cheap when nothing changed), in
    steps of at most `step_rows` sample rows each."""
    if not force:
        pending = await store.read_all(user, "SELECT EXISTS (SELECT 1 FROM activity_dirty)")
        if not pending or not pending[0][0]:
            return RefreshStats()

    stats = RefreshStats()

    def run(conn: sqlite3.Connection) -> bool:
        with immediate(conn):
            return refresh_step(conn, step_rows, stats)

    # One job a step: writes queued meanwhile (any user's) commit between them.
    while await store.run_on_writer(user, run):
        pass
    return stats


# ---- reads


async def list_activities(
    store: SampleStore, user: str, *, limit: int, before: tuple[int, int] | None = None,
    from_ns: int | None = None, to_ns: int | None = None,
) -> list[ActivityRow]:  # fmt: skip
    """Newest first (by start, then id), those starting before the cursor `before` = (start_ns, id),
    overlapping [from_ns, to_ns]; up to `limit`."""
    where = ["1"]
    args: list[Any] = []
    if before is not None:
        where.append("(start_ns, id) < (?, ?)")
        args += list(before)
    if from_ns is not None:
        where.append("end_ns >= ?")
        args.append(from_ns)
    if to_ns is not None:
        where.append("start_ns <= ?")
        args.append(to_ns)
    rows = await store.read_all(
        user,
        f"SELECT {_ACTIVITY_COLUMNS} FROM activities WHERE {' AND '.join(where)} ORDER BY start_ns DESC, id DESC LIMIT ?",
        (*args, limit),
    )
    return [_row(values) for values in rows]


async def track_activities(store: SampleStore, user: str, track: Track, from_ns: int, to_ns: int) -> list[ActivityRow]:
    """The track's activities overlapping [from_ns, to_ns], oldest first."""
    rows = await store.read_all(
        user,
        f"SELECT {_ACTIVITY_COLUMNS} FROM activities WHERE device = ? AND sport = ? AND end_ns >= ? AND start_ns <= ? "
        "ORDER BY start_ns, id",
        (track[0], track[1], from_ns, to_ns),
    )
    return [_row(values) for values in rows]


async def get_activity(store: SampleStore, user: str, activity_id: int) -> ActivityRow | None:
    rows = await store.read_all(user, f"SELECT {_ACTIVITY_COLUMNS} FROM activities WHERE id = ?", (activity_id,))
    return _row(rows[0]) if rows else None


@dataclass(slots=True)
class TrackSamples:
    """An activity's samples: times (rising, one per instant: rows of the track's series at the same
    time are merged) and one column per vocabulary key, None where unset."""

    times: list[int]
    columns: dict[str, list[float | None]]


def _merged_rows(rows: Iterable[Sequence[Any]]) -> TrackSamples:
    times: list[int] = []
    columns: dict[str, list[float | None]] = {key: [] for key in FIELD_KEYS}
    lists = [columns[key] for key in FIELD_KEYS]
    for row in rows:
        if times and times[-1] == row[0]:
            for values, value in zip(lists, row[1:]):
                if value is not None:
                    values[-1] = value
            continue
        times.append(row[0])
        for values, value in zip(lists, row[1:]):
            values.append(value)
    return TrackSamples(times, columns)


async def track_samples(store: SampleStore, user: str, track: Track, start_ns: int, end_ns: int) -> TrackSamples:
    """The track's samples with start_ns <= time <= end_ns."""
    ids = await _track_series(store, user, track)
    if not ids:
        return TrackSamples([], {key: [] for key in FIELD_KEYS})
    rows = await store.read_all(
        user,
        f"SELECT time, {_COLUMNS} FROM samples WHERE time >= ? AND time <= ? "
        "AND series IN (SELECT value FROM json_each(?)) ORDER BY time, series",
        (start_ns, end_ns, json.dumps(ids)),
    )
    return _merged_rows(rows)


async def track_sample_chunks(
    store: SampleStore, user: str, track: Track, start_ns: int, end_ns: int
) -> AsyncIterator[TrackSamples]:
    """The track's samples with start_ns <= time <= end_ns in time order, in pieces of at most
    READ_CHUNK_ROWS rows (an instant's rows never straddle two pieces, so an instant with more rows
    than that is a piece alone): one piece in memory at a time."""
    ids = await _track_series(store, user, track)
    if not ids:
        return
    chunk_rows = max(1, READ_CHUNK_ROWS)
    ids_text = json.dumps(ids)
    low = start_ns
    while low <= end_ns:
        # The piece ends before the time of its (chunk_rows + 1)-th row: that instant starts the next.
        found = await store.read_all(
            user,
            f"SELECT time FROM samples WHERE time >= ? AND time <= ? AND {_IN_TRACK} ORDER BY time, series LIMIT 1 OFFSET ?",
            (low, end_ns, ids_text, chunk_rows),
        )
        # More rows than that at one instant: that instant alone.
        high = end_ns if not found else max(found[0][0] - 1, low)
        rows = await store.read_all(
            user,
            f"SELECT time, {_COLUMNS} FROM samples WHERE time >= ? AND time <= ? AND {_IN_TRACK} ORDER BY time, series",
            (low, high, ids_text),
        )
        if rows:
            yield _merged_rows(rows)
        low = high + 1


def _track_of(tags_text: str) -> Track:
    tags = dict(json.loads(tags_text))
    return (tags.get(DEVICE_TAG, ""), tags.get(SPORT_TAG, ""))


async def track_tag_sets(store: SampleStore, user: str, track: Track) -> list[dict[str, str]]:
    rows = await store.read_all(user, "SELECT tags FROM series")
    return [dict(json.loads(text)) for (text,) in rows if _track_of(text) == track]


async def summary_state(store: SampleStore, user: str, activity_id: int) -> tuple[dict[str, Any] | None, bool]:
    """The activity's stored summary fold state (None when there is none) and whether its summary is current."""
    rows = await store.read_all(user, "SELECT summary_state, summary IS NOT NULL FROM activities WHERE id = ?", (activity_id,))
    if not rows or rows[0][0] is None:
        return None, bool(rows and rows[0][1])
    return json.loads(rows[0][0]), bool(rows[0][1])


async def store_summary(
    store: SampleStore, user: str, row: ActivityRow, summary: dict[str, Any], state: dict[str, Any], settings: ActivitySettings
) -> bool:
    """Cache a summary computed from `row`'s samples under `settings`, with its fold state, unless
    anything changed since (the row, the settings, or a write not yet refreshed). Whether it was stored."""
    text = json.dumps(summary)
    state_text = json.dumps(state)

    def save(conn: sqlite3.Connection) -> bool:
        with immediate(conn):
            if conn.execute("SELECT EXISTS (SELECT 1 FROM activity_dirty)").fetchone()[0]:
                return False
            if load_settings(conn) != settings:
                return False
            return conn.execute(
                "UPDATE activities SET summary = ?, summary_state = ? WHERE id = ? AND start_ns = ? AND end_ns = ? "
                "AND samples = ? AND summary IS NULL",
                (text, state_text, row.id, row.start_ns, row.end_ns, row.samples),
            ).rowcount == 1

    return bool(await store.run_on_writer(user, save))


# ---- the owner's edits


class ActivityEditError(ValueError):
    """An edit that does not apply (the message says why); 404 when `missing`."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


async def rename(store: SampleStore, user: str, activity_id: int, name: str | None) -> bool:
    def run(conn: sqlite3.Connection) -> bool:
        with immediate(conn):
            return conn.execute("UPDATE activities SET name = ? WHERE id = ?", (name, activity_id)).rowcount == 1

    return bool(await store.run_on_writer(user, run))


def _fetch(conn: sqlite3.Connection, activity_id: int) -> ActivityRow:
    values = conn.execute(f"SELECT {_ACTIVITY_COLUMNS} FROM activities WHERE id = ?", (activity_id,)).fetchone()
    if values is None:
        raise ActivityEditError(f"no activity {activity_id}", missing=True)
    return _row(values)


async def split(store: SampleStore, user: str, activity_id: int, at_ns: int) -> list[ActivityRow]:
    """Cut the activity at `at_ns` (samples before it, and from it on): the two activities."""
    await refresh(store, user)  # in steps: the edit's own transaction then finds little left

    def run(conn: sqlite3.Connection) -> list[ActivityRow]:
        with immediate(conn):
            refresh_in(conn)
            row = _fetch(conn, activity_id)
            if not row.start_ns < at_ns <= row.end_ns:
                raise ActivityEditError(
                    f"at must be after the activity's start ({row.start_ns}) and at most its end ({row.end_ns}), got {at_ns}"
                )
            conn.execute(
                "DELETE FROM activity_joins WHERE device = ? AND sport = ? AND from_ns < ? AND to_ns >= ?",
                (row.device, row.sport, at_ns, at_ns),
            )
            conn.execute("INSERT OR IGNORE INTO activity_cuts (device, sport, at_ns) VALUES (?, ?, ?)", (row.device, row.sport, at_ns))
            mark_activities_dirty(conn, row.start_ns, row.end_ns)
            refresh_in(conn)
            return [
                _row(values)
                for values in conn.execute(
                    f"SELECT {_ACTIVITY_COLUMNS} FROM activities WHERE device = ? AND sport = ? AND start_ns >= ? AND end_ns <= ? "
                    "ORDER BY start_ns",
                    (row.device, row.sport, row.start_ns, row.end_ns),
                )
            ]

    return await store.run_on_writer(user, run, create=True)  # the activity is there: so is its file


async def merge(store: SampleStore, user: str, activity_ids: Sequence[int]) -> ActivityRow:
    """Join consecutive activities of one track into one (keeping the first's id and name)."""
    await refresh(store, user)  # in steps: the edit's own transaction then finds little left

    def run(conn: sqlite3.Connection) -> ActivityRow:
        with immediate(conn):
            refresh_in(conn)
            rows = sorted((_fetch(conn, i) for i in set(activity_ids)), key=lambda r: r.start_ns)
            if len(rows) < 2:
                raise ActivityEditError("ids must name at least two different activities")
            if len({row.track for row in rows}) != 1:
                raise ActivityEditError("ids must be activities of the same device and sport")
            device, sport = rows[0].track
            between = conn.execute(
                "SELECT count(*) FROM activities WHERE device = ? AND sport = ? AND start_ns >= ? AND end_ns <= ?",
                (device, sport, rows[0].start_ns, rows[-1].end_ns),
            ).fetchone()[0]
            if between != len(rows):
                raise ActivityEditError("ids must be consecutive activities: another one lies between them")
            for first, second in zip(rows, rows[1:]):
                conn.execute(
                    "DELETE FROM activity_cuts WHERE device = ? AND sport = ? AND at_ns > ? AND at_ns <= ?",
                    (device, sport, first.end_ns, second.start_ns),
                )
                conn.execute(
                    "INSERT OR IGNORE INTO activity_joins (device, sport, from_ns, to_ns) VALUES (?, ?, ?, ?)",
                    (device, sport, first.end_ns, second.start_ns),
                )
            # The first's id and name: the merged activity overlaps each old one, the first by its length.
            for row in rows[1:]:
                conn.execute("DELETE FROM activities WHERE id = ?", (row.id,))
            conn.execute(
                "UPDATE activities SET end_ns = ?, summary = NULL, summary_state = NULL WHERE id = ?", (rows[-1].end_ns, rows[0].id)
            )
            mark_activities_dirty(conn, rows[0].start_ns, rows[-1].end_ns)
            refresh_in(conn)
            return _fetch(conn, rows[0].id)

    return await store.run_on_writer(user, run, create=True)  # the activity is there: so is its file


async def delete(store: SampleStore, user: str, activity_id: int) -> int:
    """Remove the activity's samples (its track's series over its time range, through the store's
    deletion path) and so the activity; the samples removed."""
    await refresh(store, user)
    row = await get_activity(store, user, activity_id)
    if row is None:
        raise ActivityEditError(f"no activity {activity_id}", missing=True)
    tag_sets = await track_tag_sets(store, user, row.track)
    removed = await store.delete_samples(user, tag_sets, row.start_ns, row.end_ns + 1)

    def forget(conn: sqlite3.Connection) -> None:
        with immediate(conn):
            conn.execute(
                "DELETE FROM activity_cuts WHERE device = ? AND sport = ? AND at_ns > ? AND at_ns <= ?",
                (row.device, row.sport, row.start_ns, row.end_ns),
            )
            conn.execute(
                "DELETE FROM activity_joins WHERE device = ? AND sport = ? AND from_ns >= ? AND to_ns <= ?",
                (row.device, row.sport, row.start_ns, row.end_ns),
            )
            mark_activities_dirty(conn, row.start_ns, row.end_ns)

    await store.run_on_writer(user, forget)
    await refresh(store, user)  # no samples left in its range: its row goes
    return removed


# Fields describing one GPS fix: never combined across samples.
FIX_FIELDS = ("lat", "lng", "acc_m", "bearing")
_RANGE_FIELDS = tuple(key for key in FIELD_KEYS if key not in FIX_FIELDS)


async def track_count(store: SampleStore, user: str, track: Track, start_ns: int, end_ns: int) -> int:
    """How many instants of the track have samples with start_ns <= time <= end_ns."""
    ids = await _track_series(store, user, track)
    if not ids:
        return 0
    rows = await store.read_all(
        user, f"SELECT count(DISTINCT time) FROM samples WHERE time >= ? AND time <= ? AND {_IN_TRACK}",
        (start_ns, end_ns, json.dumps(ids)),
    )  # fmt: skip
    return int(rows[0][0])


async def _track_series(store: SampleStore, user: str, track: Track) -> list[int]:
    series = await store.read_all(user, "SELECT id, tags FROM series")
    return [i for i, text in series if _track_of(text) == track]


async def track_envelope(
    store: SampleStore, user: str, track: Track, start_ns: int, end_ns: int, buckets: int
) -> list[tuple[int, int, dict[str, tuple[float | None, float | None]]]]:
    """The track's samples with start_ns <= time <= end_ns in `buckets` buckets of equal time, in
    SQLite (memory stays at one row per bucket whatever the range): per non-empty bucket its first
    and last time and, per field, (minimum, maximum); a fix field gives the bucket's last fix twice."""
    ids = await _track_series(store, user, track)
    if not ids or buckets < 1 or end_ns < start_ns:
        return []
    width = (end_ns - start_ns) // buckets + 1
    ranges = ", ".join(f"min({key}), max({key})" for key in _RANGE_FIELDS)
    args = (start_ns, end_ns, json.dumps(ids), width)
    where = "WHERE time >= ?1 AND time <= ?2 AND series IN (SELECT value FROM json_each(?3))"
    out: dict[int, tuple[int, int, dict[str, tuple[float | None, float | None]]]] = {}
    for b, first, last, *values in await store.read_all(
        user, f"SELECT (time - ?1) / ?4 AS b, min(time), max(time), {ranges} FROM samples {where} GROUP BY b", args
    ):
        fields = {key: (values[2 * i], values[2 * i + 1]) for i, key in enumerate(_RANGE_FIELDS)}
        fields.update({key: (None, None) for key in FIX_FIELDS})
        out[b] = (first, last, fields)
    # SQLite's bare columns: beside max(time), the other columns come from that very row.
    fix = ", ".join(FIX_FIELDS)
    for b, _last, *values in await store.read_all(
        user, f"SELECT (time - ?1) / ?4 AS b, max(time), {fix} FROM samples {where} AND lat IS NOT NULL GROUP BY b", args
    ):
        if b in out:
            out[b][2].update({key: (value, value) for key, value in zip(FIX_FIELDS, values)})
    return [out[b] for b in sorted(out)]
