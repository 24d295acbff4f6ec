"""Samples as columns (tracker.storage.blocks, tracker.influx.columnar) answer exactly as the SQL path:
every query here runs both ways and the answers must be the same bytes. Also: the cache of sealed
hours notices late samples, merges and deletions (the triggers of schema v2), and live samples do
not touch the table the triggers keep."""

from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path
from typing import Any, AsyncIterator

import numpy as np
import orjson
import pytest

from tests.conftest import Pt
from tracker.influx import columnar, select
from tracker.influx.influxql import parse_query
from tracker.influx.workers import QueryWorkers
from tracker.storage import SampleStore, blocks

HOUR = 3_600_000_000_000
SECOND = 1_000_000_000
T0 = 1_763_942_400 * SECOND  # 2025-11-24T00:00:00Z, a block boundary
DAY = f"time >= {T0}ns AND time < {T0 + 24 * HOUR}ns"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SampleStore]:
    store = SampleStore(tmp_path)
    yield store
    await store.close()


@pytest.fixture
def workers() -> QueryWorkers:
    return QueryWorkers(2, 2)


async def answer(store: SampleStore, workers: QueryWorkers, query: str, epoch: str | None, use_columns: bool,
                 now_ns: int | None = None, batch: int = 5000) -> bytes:  # fmt: skip
    now_ns = time.time_ns() if now_ns is None else now_ns
    out: list[Any] = []
    for statement in parse_query(query, now_ns=now_ns):
        ctx = select.Context(store=store, workers=workers, user="alice", readable=["alice"], default_db="alice",
                             default_rp="", epoch=epoch, now_ns=now_ns, batch=batch, columnar=use_columns)  # fmt: skip
        try:
            out.append([(h.name, h.columns, h.tags, rows) async for h, rows in select.execute(statement, ctx)])
        except select.StatementError as exc:
            out.append(str(exc))
    return orjson.dumps(out)


async def same_both_ways(store: SampleStore, workers: QueryWorkers, query: str, epoch: str | None = "ms", **kw: Any) -> bytes:
    by_columns = await answer(store, workers, query, epoch, True, **kw)
    by_sql = await answer(store, workers, query, epoch, False, **kw)
    assert by_columns == by_sql, query
    return by_columns


def day_of_samples(seed: int) -> list[Pt]:
    """Four hours and a bit with gaps, NULL fields, whole and fractional values, two series."""
    rng = random.Random(seed)
    points = []
    for n in range(0, 4 * 3600 + 120, 1):
        if rng.random() < 0.1:
            continue  # gaps
        t = T0 + n * SECOND + (rng.choice([0, 0, 0, 250_000_000]) if n % 7 == 0 else 0)
        fields = {
            "hr_bpm": float(rng.randint(90, 180)),
            "spd_kph": round(rng.uniform(0, 40), rng.choice([0, 1, 2, 6])),
            "lat": 52.5 + rng.random() / 100,
        }
        if rng.random() < 0.3:
            fields["pwr_w"] = rng.choice([0.0, -0.0, 1e-7, 123.456, float(rng.randint(0, 500)), 0.1 + 0.2])
        if rng.random() < 0.2:
            del fields["hr_bpm"]
        points.append(Pt(t, fields))
        if rng.random() < 0.05:  # a second series at the same time
            points.append(Pt(t, {"hr_bpm": float(rng.randint(60, 70)), "alt_m": 1.5}, (("device", "watch"),)))
    return points


RAW_QUERIES = [
    f"SELECT * FROM samples WHERE {DAY}",
    f"SELECT hr_bpm FROM samples WHERE {DAY}",
    f"SELECT pwr_w, pwr_w, nope FROM samples WHERE {DAY}",
    f"SELECT nope FROM samples WHERE {DAY}",
    f"SELECT alt_m, lat FROM samples WHERE {DAY} ORDER BY time DESC",
    f"SELECT * FROM samples WHERE {DAY} LIMIT 10 OFFSET 3601",
    f"SELECT * FROM samples WHERE {DAY} ORDER BY time DESC LIMIT 5000 OFFSET 7",
    f"SELECT spd_kph FROM samples WHERE time >= {T0 + HOUR - 90 * SECOND}ns AND time < {T0 + HOUR + 90 * SECOND}ns",
    f"SELECT * FROM samples WHERE time >= {T0 + 2 * HOUR}ns AND time < {T0 + 2 * HOUR}ns",  # empty range
    f"SELECT * FROM samples WHERE time >= {T0 - 5 * HOUR}ns AND time < {T0}ns",  # nothing there
    "SELECT * FROM samples",  # no bounds: trimmed to the samples
    f"SELECT * FROM samples WHERE {DAY} AND device = 'watch'",
    f"SELECT hr_bpm, device FROM samples WHERE {DAY} AND (device != 'watch' OR device =~ /^w/) ORDER BY time DESC LIMIT 300",
    f"SELECT hr_bpm FROM samples WHERE {DAY} AND device = 'nobody'",
    f"SELECT hr_bpm FROM samples WHERE {DAY} AND (device = 'watch' OR hr_bpm > 150)",  # a value filter: SQL both ways
    f"SELECT * FROM samples WHERE {DAY} AND hr_bpm > 150",  # field filter: SQL path both ways
    f"SELECT hr_bpm * 2 FROM samples WHERE {DAY}",  # arithmetic: SQL path both ways
    f"SELECT * FROM samples WHERE {DAY} GROUP BY device",
    f"SELECT * FROM samples WHERE {DAY} GROUP BY * LIMIT 20 OFFSET 2",
    f"SELECT hr_bpm FROM samples WHERE time > {T0 + 3 * HOUR + 5 * SECOND}ns AND time <= {T0 + 4 * HOUR + 60 * SECOND}ns",
]

AGGREGATE_QUERIES = [
    f"SELECT mean(hr_bpm), max(pwr_w), mean(spd_kph) FROM samples WHERE {DAY} GROUP BY time(1m) fill(none)",
    f"SELECT mean(hr_bpm), max(pwr_w) FROM samples WHERE {DAY} GROUP BY time(1m)",
    f"SELECT sum(spd_kph), count(pwr_w), min(lat), spread(pwr_w), stddev(spd_kph) FROM samples WHERE {DAY} GROUP BY time(7m, 3m) fill(previous)",
    f"SELECT stddev(pwr_w), count(alt_m), mean(nope) FROM samples WHERE {DAY} GROUP BY time(10s) fill(0)",
    f"SELECT mean(lat) + sum(hr_bpm) / 2 FROM samples WHERE {DAY} GROUP BY time(1h) fill(linear)",
    f"SELECT sum(lat), max(spd_kph) FROM samples WHERE {DAY} GROUP BY time(1d)",
    f"SELECT count(hr_bpm) FROM samples WHERE {DAY} GROUP BY time(1s) ORDER BY time DESC LIMIT 50 OFFSET 20",
    f"SELECT mean(alt_m) FROM samples WHERE {DAY} GROUP BY time(30m)",
    f"SELECT mean(hr_bpm), count(alt_m) FROM samples WHERE {DAY} GROUP BY time(1m), device",
    f"SELECT max(hr_bpm) FROM samples WHERE {DAY} AND device = 'watch' GROUP BY time(5m) fill(none)",
    f"SELECT first(hr_bpm), median(spd_kph) FROM samples WHERE {DAY} GROUP BY time(1m)",  # SQL both ways
    f"SELECT mean(hr_bpm) FROM samples WHERE time >= {T0 + 90 * SECOND}ns AND time < {T0 + 5 * HOUR}ns GROUP BY time(17m)",
    f"SELECT mean(hr_bpm), max(spd_kph) FROM samples WHERE {DAY}",  # no GROUP BY time: SQL both ways
]


@pytest.mark.parametrize("seed", [1, 2])
async def test_raw_and_aggregate_answers_are_the_same_bytes_both_ways(store: SampleStore, workers: QueryWorkers, seed: int) -> None:
    await store.write("alice", day_of_samples(seed))
    for epoch in ("ms", "ns", "u", "s", "h", None):
        for query in RAW_QUERIES:
            await same_both_ways(store, workers, query, epoch, batch=997)
    for query in AGGREGATE_QUERIES:
        await same_both_ways(store, workers, query, "ms")
        await same_both_ways(store, workers, query, None)


async def test_the_answer_is_built_from_columns(store: SampleStore, workers: QueryWorkers, monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparisons above compare something: the columnar path is what answers these queries."""
    await store.write("alice", day_of_samples(3))
    calls = []
    real_raw, real_buckets = columnar.raw_answer, columnar.bucket_aggregates
    monkeypatch.setattr(columnar, "raw_answer", lambda *a: calls.append("raw") or real_raw(*a))
    monkeypatch.setattr(columnar, "bucket_aggregates", lambda *a: calls.append("buckets") or real_buckets(*a))
    await answer(store, workers, RAW_QUERIES[0], "ms", True)
    await answer(store, workers, f"SELECT * FROM samples WHERE {DAY} AND device = 'watch'", "ms", True)
    await answer(store, workers, f"SELECT hr_bpm FROM samples WHERE {DAY} GROUP BY device", "ms", True)  # two series
    await answer(store, workers, AGGREGATE_QUERIES[0], "ms", True)
    await answer(store, workers, f"SELECT mean(hr_bpm) FROM samples WHERE {DAY} GROUP BY time(1m), device", "ms", True)
    if sqlite3.sqlite_version_info < (3, 43, 0):
        assert calls == ["raw"] * 4 + ["buckets"] * 3
    else:
        assert calls == ["raw"] * 4
    assert store.column_cache.used_bytes > 0


async def test_samples_written_into_cached_hours_are_answered(store: SampleStore, workers: QueryWorkers) -> None:
    await store.write("alice", day_of_samples(4))
    query = f"SELECT hr_bpm, cad_rpm FROM samples WHERE {DAY}"
    before = await same_both_ways(store, workers, query)
    assert store.column_cache.used_bytes > 0  # the hours are cached now
    late = T0 + HOUR + 1234 * SECOND + 5
    await store.write("alice", [Pt(late, {"cad_rpm": 77.0})])  # a late sample in an old hour
    after = await same_both_ways(store, workers, query)
    assert after != before and b"77" in after
    # a merge into an existing old point
    await store.write("alice", [Pt(late, {"hr_bpm": 191.0})])
    merged = await same_both_ways(store, workers, query)
    assert b",191,77]" in merged
    # a deletion (retention) of old samples
    await store.delete_before("alice", T0 + 2 * HOUR, 1_000_000)
    trimmed = await same_both_ways(store, workers, query)
    assert b",191,77]" not in trimmed
    await same_both_ways(store, workers, f"SELECT count(cad_rpm), mean(hr_bpm) FROM samples WHERE {DAY} GROUP BY time(1m)")


async def test_recent_samples_are_read_fresh_and_do_not_touch_the_change_table(store: SampleStore, workers: QueryWorkers, tmp_path: Path) -> None:
    now = time.time_ns()
    await store.write("alice", [Pt(now - n * SECOND, {"hr_bpm": float(n % 50 + 100)}) for n in range(1, 590)])
    with sqlite3.connect(store.path_for("alice")) as conn:
        assert conn.execute("SELECT count(*) FROM sample_block_changes").fetchone()[0] == 0  # nothing older than 10 min
    await store.write("alice", [Pt(now - n * SECOND, {"hr_bpm": float(n % 50 + 100)}) for n in range(601, 1200)])
    window = "time > now() - 30m"
    first = await same_both_ways(store, workers, f"SELECT hr_bpm FROM samples WHERE {window}", now_ns=now)
    await store.write("alice", [Pt(now - 500 * SECOND, {"hr_bpm": 42.0})])  # still live: not in the table, not cached
    second = await same_both_ways(store, workers, f"SELECT hr_bpm FROM samples WHERE {window}", now_ns=now)
    assert first != second and b",42]" in second
    await same_both_ways(store, workers, f"SELECT mean(hr_bpm) FROM samples WHERE {window} GROUP BY time(1m)", now_ns=now)
    with sqlite3.connect(store.path_for("alice")) as conn:
        # samples over 10 minutes old are tracked
        old = [row[0] for row in conn.execute("SELECT block FROM sample_block_changes")]
    assert old == sorted({(now - n * SECOND) // HOUR for n in range(601, 1200)})


async def test_a_late_write_while_a_block_is_read_is_not_cached(store: SampleStore, workers: QueryWorkers, monkeypatch: pytest.MonkeyPatch) -> None:
    await store.write("alice", day_of_samples(5)[:100])
    real_read = blocks._read_columns

    async def read_then_write(*args: Any) -> blocks.Columns:
        columns = await real_read(*args)
        await store.write("alice", [Pt(T0 + 5 * SECOND + 1, {"hr_bpm": 55.0})])
        return columns

    monkeypatch.setattr(blocks, "_read_columns", read_then_write)
    await answer(store, workers, f"SELECT hr_bpm FROM samples WHERE {DAY}", "ms", True)
    monkeypatch.setattr(blocks, "_read_columns", real_read)
    assert store.column_cache.used_bytes == 0  # the block changed while it was read: not kept
    assert b",55]" in await same_both_ways(store, workers, f"SELECT hr_bpm FROM samples WHERE {DAY}")


async def test_long_spans_take_the_sql_path(store: SampleStore, workers: QueryWorkers) -> None:
    await store.write("alice", [Pt(T0, {"hr_bpm": 1.0}), Pt(T0 + (blocks.MAX_BLOCKS + 1) * HOUR, {"hr_bpm": 2.0})])
    assert await blocks.query_columns(store, "alice", start_ns=0, end_ns=2**62, now_ns=time.time_ns(), offload=None) is None  # type: ignore[arg-type]
    await same_both_ways(store, workers, "SELECT * FROM samples")
    await same_both_ways(store, workers, f"SELECT mean(hr_bpm) FROM samples WHERE time >= {T0}ns AND time < {T0 + 50 * HOUR}ns GROUP BY time(1h)")


async def test_limits_hold_on_the_columnar_path(store: SampleStore, workers: QueryWorkers) -> None:
    await store.write("alice", day_of_samples(6)[:3000])
    ctx = select.Context(store=store, workers=workers, user="alice", readable=["alice"], default_db="alice",
                         default_rp="", epoch="ms", now_ns=time.time_ns(), max_points=1000, max_buckets=100)  # fmt: skip
    statement = parse_query(f"SELECT * FROM samples WHERE {DAY}", now_ns=ctx.now_ns)[0]
    with pytest.raises(select.StatementError, match="max-select-point"):
        [item async for item in select.execute(statement, ctx)]
    statement = parse_query(f"SELECT mean(hr_bpm) FROM samples WHERE {DAY} GROUP BY time(1m)", now_ns=ctx.now_ns)[0]
    with pytest.raises(select.StatementError, match="max-select-buckets"):
        [item async for item in select.execute(statement, ctx)]
    ctx.max_points, ctx.max_buckets, ctx.deadline = 0, 0, time.monotonic() - 1
    with pytest.raises(select.StatementError, match="query-timeout"):
        [item async for item in select.execute(statement, ctx)]


def test_sums_are_taken_one_value_after_the_other() -> None:
    """Both ways of summing many buckets give SQLite's sequential sums (not numpy's pairwise ones)."""
    import numpy as np

    rng = random.Random(7)
    values = np.array([rng.uniform(-1e6, 1e6) * 10 ** rng.randint(-8, 8) for _ in range(5000)])
    for cuts in ([0, 4000, 4990], list(range(0, 5000, 3)), [0, 1, 2, 10, 2000]):
        starts = np.array(cuts)
        lengths = np.diff(np.r_[starts, len(values)])
        expected = []
        for start, length in zip(cuts, lengths):
            total = 0.0
            for value in values[start : start + length].tolist():
                total += value
            expected.append(total)
        assert columnar._sequential_sums(values, starts, lengths).tolist() == expected


async def test_times_before_1970_and_fractions(store: SampleStore, workers: QueryWorkers) -> None:
    times = [-HOUR - 1, -1_500_000_001, -1, 0, 1, 999_999_999, 1_000_000_000, HOUR - 1, HOUR + 120_000_000]
    await store.write("alice", [Pt(t, {"hr_bpm": float(n), "lat": n / 3}) for n, t in enumerate(times)])
    span = f"time >= {-2 * HOUR}ns AND time < {2 * HOUR}ns"
    for epoch in ("ns", "u", "ms", "s", "m", "h", None):
        body = await same_both_ways(store, workers, f"SELECT * FROM samples WHERE {span}", epoch)
        assert body.count(b"]") > len(times)
        await same_both_ways(store, workers, f"SELECT * FROM samples WHERE {span} ORDER BY time DESC LIMIT 4", epoch)
    for query in (f"SELECT mean(lat), count(hr_bpm) FROM samples WHERE {span} GROUP BY time(1s)",
                  f"SELECT sum(lat) FROM samples WHERE {span} GROUP BY time(7m, -1m) fill(0)"):  # fmt: skip
        await same_both_ways(store, workers, query, None)
        await same_both_ways(store, workers, query, "ms")


async def test_a_file_from_before_the_change_table_migrates_and_is_tracked(tmp_path: Path, workers: QueryWorkers) -> None:
    from tracker.storage.schema import SAMPLE_MIGRATIONS

    (tmp_path / "users").mkdir()
    with sqlite3.connect(tmp_path / "users" / "alice.sqlite") as conn:
        conn.executescript(SAMPLE_MIGRATIONS[0])
        conn.execute("PRAGMA user_version = 1")
        conn.execute("INSERT INTO series (id, tags) VALUES (1, '[]')")
        conn.executemany("INSERT INTO samples (time, series, hr_bpm) VALUES (?, 1, ?)", [(T0 + n * SECOND, 100.0 + n % 7) for n in range(5000)])
    conn.close()
    store = SampleStore(tmp_path)
    try:
        query = f"SELECT hr_bpm FROM samples WHERE {DAY}"
        before = await same_both_ways(store, workers, query)
        await store.write("alice", [Pt(T0 + 17 * SECOND, {"hr_bpm": 66.5})])
        after = await same_both_ways(store, workers, query)
        assert before != after and b",66.5]" in after
        with sqlite3.connect(store.path_for("alice")) as conn:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == len(SAMPLE_MIGRATIONS)
            # a merge into an old point: the hour's version moved (the upsert may run both triggers)
            assert [block for block, version in conn.execute("SELECT block, version FROM sample_block_changes") if version > 0] == [T0 // HOUR]
    finally:
        await store.close()


def test_two_series_shortcut_orders_rows_at_one_time_as_the_heap() -> None:
    """Two series (the common case: two devices at 1 Hz) skip replaying InfluxDB's merge heap row by
    row; the shortcut must give the heap's order (which test_influx_clauses checks against influxd)."""
    rng = random.Random(7)
    for _ in range(1500):
        rows = sorted(
            (t, sid) for sid in (rng.choice([3, 7]), 5) for t in rng.sample(range(40), rng.randint(1, 30))
        )
        times = np.array([t for t, _ in rows], dtype=np.int64)
        series = np.array([sid for _, sid in rows], dtype=np.int64)
        ids = sorted(set(series.tolist()))
        rank = {sid: n for n, sid in enumerate(sorted(ids, key=lambda _: rng.random()))}
        tie_keys = {sid: rng.choice([(), ("a",), ("b",), (None,), ("a", "x")]) for sid in ids}
        order = columnar.SeriesOrder(rank, tie_keys, HOUR)
        for descending in (False, True):
            by_heap = columnar._heap_merge(times, series, order, descending, None, None)
            assert columnar._two_series_merge(times, series, order, descending).tolist() == by_heap.tolist(), rows
