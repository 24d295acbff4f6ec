"""Raw SELECT answers built from samples as columns (tracker.storage.blocks) instead of SQLite rows.

Used where a raw SELECT reads plain fields over a long range with nothing but time to filter on:
the rows are the SQL path's rows, value for value (whole-number floats as integers, NULL as None,
times floored to the epoch unit, (time, series) order, DESC, OFFSET and LIMIT), which the tests check
by comparing the two paths. All of it runs on query threads, a batch at a time.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from tracker.influx.workers import check_deadline
from tracker.storage import EPOCH_NS, Columns

_INT64_BOUND = 2.0**63  # whole floats from -2**63 up to (not including) this are written as integers


@dataclass(slots=True)
class RawAnswer:
    """The answer's rows, ready to be taken a batch at a time: `times` in the epoch unit, in answer
    order after OFFSET and LIMIT, and per output column its values (None: a field with no values)."""

    times: np.ndarray
    values: list[np.ndarray | None]

    def __len__(self) -> int:
        return len(self.times)

    def rows(self, start: int, stop: int, deadline: float | None) -> list[tuple[Any, ...]]:
        check_deadline(deadline)
        count = len(self.times[start:stop])
        columns: list[Iterable[Any]] = [self.times[start:stop].tolist()]
        for column in self.values:
            columns.append(itertools.repeat(None, count) if column is None else _json_values(column[start:stop]))
        return list(zip(*columns))


def raw_answer(
    columns: Columns, fields: Sequence[str], epoch: str, descending: bool, limit: int | None, offset: int
) -> RawAnswer:
    """`fields`: per output column its vocabulary field, or "" for one that is never set. Rows whose
    every named field is empty are left out, as InfluxDB does."""
    present = [columns.fields[name] for name in set(fields) if name in columns.fields]
    if not present:
        return RawAnswer(np.empty(0, dtype=np.int64), [None] * len(fields))
    has_value = ~np.isnan(present[0])
    for column in present[1:]:
        has_value |= ~np.isnan(column)
    chosen = np.flatnonzero(has_value)
    if descending:
        chosen = chosen[::-1]
    chosen = chosen[offset : None if limit is None else offset + limit]
    times = columns.times[chosen]
    divisor = EPOCH_NS[epoch]
    if divisor != 1:
        times = times // divisor  # floors, as the SQL does for times before 1970
    values = [columns.fields[name][chosen] if name in columns.fields else None for name in fields]
    return RawAnswer(times, values)


def _json_values(column: np.ndarray) -> list[Any]:
    """Floats as Python values the way InfluxDB writes them: whole numbers as integers, NaN as None."""
    missing = np.isnan(column)
    whole = (column == np.trunc(column)) & (column >= -_INT64_BOUND) & (column < _INT64_BOUND)
    if whole.all():
        return column.astype(np.int64).tolist()  # type: ignore[no-any-return]
    if not whole.any() and not missing.any():
        return column.tolist()  # type: ignore[no-any-return]
    out = column.astype(object)
    if whole.any():
        out[whole] = column[whole].astype(np.int64).astype(object)
    if missing.any():
        out[missing] = None
    return out.tolist()  # type: ignore[no-any-return]
