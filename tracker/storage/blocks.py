"""Samples as columns: a time range of one user's samples as numpy arrays, for the reads that take
every row of a long range (a raw SELECT over a day, GROUP BY time over a day), where turning each
SQLite row into Python objects cost more than everything else together.

Samples are cut into blocks of one hour (floor(time / BLOCK_NS)). A block that ended over
SEALED_AFTER_NS ago is sealed: its columns are kept in memory (the store's column_cache, bounded
in bytes) and reused until a write changes it: the writer (samples._Applier, once per batch) and
a trigger on deletions (schema v2) bump `sample_block_changes.version` of the block of any sample
written or deleted more than CHANGES_AFTER_NS after its time, in the same transaction, and a cached
block is only used while its version is the one it was built at. Blocks not yet sealed are read from SQLite on every query.

Both the answers built from these columns and the SQL path's answers are the same bytes: tests
compare the two on many queries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Collection, Sequence, TypeVar

import numpy as np

from tracker.storage.connection import _bounded
from tracker.storage.samples import SampleStore, _UserFile
from tracker.storage.schema import BLOCK_NS
from tracker.vocabulary import FIELD_KEYS

# A block is cached once it ended this long ago: longer than CHANGES_AFTER_NS, so that a write into a
# cached block is always tracked, with five minutes to spare for clocks that step.
SEALED_AFTER_NS = 900_000_000_000
# Longest span (in blocks, after trimming the range to the samples in it) read as columns: the columns
# are held in memory whole, so longer reads take the SQL path, which streams.
MAX_BLOCKS = 48
_COLUMNS_SQL = ", ".join(FIELD_KEYS)

T = TypeVar("T")
Offload = Callable[..., Awaitable[Any]]  # runs a function with its arguments off the event loop


@dataclass(frozen=True, slots=True)
class Columns:
    """Samples in (time, series) order: `times` (ns) and `series` as int64, and per vocabulary field
    with any value a float64 array (NaN = no value); a field without any value is absent."""

    times: np.ndarray
    series: np.ndarray
    fields: dict[str, np.ndarray]

    @property
    def nbytes(self) -> int:
        return self.times.nbytes + self.series.nbytes + sum(column.nbytes for column in self.fields.values())

    def __len__(self) -> int:
        return len(self.times)

    def between(self, start_ns: int, end_ns: int) -> Columns:
        """The samples with start <= time < end (views, no copies)."""
        lo, hi = np.searchsorted(self.times, [start_ns, end_ns], side="left")
        if lo == 0 and hi == len(self.times):
            return self
        return Columns(self.times[lo:hi], self.series[lo:hi], {k: v[lo:hi] for k, v in self.fields.items()})

    @staticmethod
    def concatenate(parts: Sequence[Columns]) -> Columns:
        if len(parts) == 1:
            return parts[0]
        keys = [key for key in FIELD_KEYS if any(key in part.fields for part in parts)]
        fields = {}
        for key in keys:
            fields[key] = np.concatenate([part.fields.get(key, np.full(len(part), np.nan)) for part in parts])
        empty = np.empty(0, dtype=np.int64)
        return Columns(
            np.concatenate([part.times for part in parts]) if parts else empty,
            np.concatenate([part.series for part in parts]) if parts else empty,
            fields,
        )


def _columns_of(rows: list[tuple[Any, ...]]) -> Columns:
    """Rows of (time, series, every field) as Columns, NULL as NaN; runs off the event loop."""
    if not rows:
        empty = np.empty(0, dtype=np.int64)
        return Columns(empty, empty, {})
    table = np.array(rows, dtype=object)
    fields = {}
    for n, key in enumerate(FIELD_KEYS):
        column = table[:, n + 2].astype(np.float64)
        if not np.isnan(column).all():
            fields[key] = column
    return Columns(table[:, 0].astype(np.int64), table[:, 1].astype(np.int64), fields)


def block_of(time_ns: int) -> int:
    return time_ns // BLOCK_NS


async def query_columns(
    store: SampleStore,
    user: str,
    *,
    start_ns: int,
    end_ns: int,
    now_ns: int,
    offload: Offload,
    deadline: float | None = None,
    fields: Collection[str] | None = None,
) -> Columns | None:
    """Every sample with start <= time < end as Columns (only `fields`, if given), sealed blocks from
    the cache; None if the user has no file or the samples in range span more than MAX_BLOCKS (read
    those with SQL). `offload` runs the numpy work off the event loop (a query thread)."""
    cache = store.column_cache
    handle = store._existing_file(user)
    if handle is None:
        return None
    async with store._reading(handle) as conn:
        # Two primary-key seeks: an open-ended range becomes the samples' own span.
        span = await conn.execute_fetchall(
            "SELECT (SELECT min(time) FROM samples WHERE time >= ?1 AND time < ?2), "
            "(SELECT max(time) FROM samples WHERE time >= ?1 AND time < ?2)",
            _bounded((start_ns, end_ns), deadline),
        )
    lowest, highest = next(iter(span))
    if lowest is None:
        return _empty()
    first, last = block_of(lowest), block_of(highest)
    if last - first + 1 > MAX_BLOCKS:
        return None
    sealed_below = block_of(now_ns - SEALED_AFTER_NS)  # blocks < this ended long enough ago
    async with store._reading(handle) as conn:
        versions = dict(
            await conn.execute_fetchall(
                "SELECT block, version FROM sample_block_changes WHERE block >= ? AND block <= ?",
                (first, min(last, sealed_below - 1)),
            )
        )
    file_id = handle.cache_id
    parts: list[Columns] = []
    unsealed_from: int | None = None
    for block in range(first, last + 1):
        if block >= sealed_below:
            unsealed_from = block
            break
        key, version = (file_id, block), versions.get(block, 0)
        columns = cache.get(key, version)
        if columns is None:
            lo, hi = block * BLOCK_NS, (block + 1) * BLOCK_NS
            columns = await _read_columns(store, handle, lo, hi, offload, deadline)
            # Kept only if no tracked write landed in the block while it was read.
            async with store._reading(handle) as conn:
                now = await conn.execute_fetchall(
                    "SELECT version FROM sample_block_changes WHERE block = ?", (block,)
                )
            if (now[0][0] if now else 0) == version:
                cache.put(key, version, columns)
        parts.append(columns)
    if unsealed_from is not None:
        parts.append(await _read_columns(store, handle, max(start_ns, unsealed_from * BLOCK_NS), end_ns, offload, deadline))
    return await offload(_joined, parts, start_ns, end_ns, fields)  # type: ignore[no-any-return]


def _joined(parts: list[Columns], start_ns: int, end_ns: int, fields: Collection[str] | None) -> Columns:
    """The parts' samples with start <= time < end, as one Columns; on a query thread (copies only
    the fields asked for)."""
    if fields is not None:
        parts = [Columns(part.times, part.series, {k: v for k, v in part.fields.items() if k in fields}) for part in parts]
    return Columns.concatenate([part.between(start_ns, end_ns) for part in parts]) if parts else _empty()


def _empty() -> Columns:
    empty = np.empty(0, dtype=np.int64)
    return Columns(empty, empty, {})


async def _read_columns(
    store: SampleStore, handle: _UserFile, start_ns: int, end_ns: int, offload: Offload, deadline: float | None
) -> Columns:
    sql = f"SELECT time, series, {_COLUMNS_SQL} FROM samples WHERE time >= ? AND time < ? ORDER BY time, series"
    async with store._reading(handle) as conn:
        rows = list(await conn.execute_fetchall(sql, _bounded((start_ns, end_ns), deadline)))  # type: ignore[arg-type]
    return await offload(_columns_of, rows)  # type: ignore[no-any-return]
