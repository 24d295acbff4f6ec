"""`tracker import`: line-protocol files into users' sample stores, through the store's own write path.

Reads what `influx_inspect export` writes (`# DDL` / `# DML` sections, `# CONTEXT-DATABASE:` and
`# CONTEXT-RETENTION-POLICY:` lines, tsm and wal sections, ns timestamps), the `influx -import`
format (the same headers), and plain line protocol; gzipped or not (told by the first bytes).

Every data line is held to the vocabulary, the user's retention and the clock like a /write; a line
that is not stored is counted and reported by its line number. Writes merge (InfluxDB's rule: the
same time and series again is the same sample), so importing a file twice stores nothing twice; the
last committed line of an unfinished import is kept in the data folder, and a re-run goes on from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import json
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from tracker import lineprotocol, vocabulary
from tracker.lineprotocol import Point
from tracker.progress import ProgressBar
from tracker.retention import Cutoff

GZIP_MAGIC = b"\x1f\x8b"
PROGRESS_DIR = "imports"  # in the data folder: one small JSON file per unfinished import
LINES_PER_BATCH = 20_000  # one journal entry and one user file transaction each


@dataclass(slots=True)
class Batch:
    """Data lines of one database, parsed and held to the vocabulary (not yet to retention or clock)."""

    database: str | None  # the file's CONTEXT-DATABASE for these lines (None: no context given)
    points: list[Point]  # line_no: the line in the file
    refusals: list[tuple[int, str]]  # (line in the file, why it is not stored)
    data_lines: int
    last_line: int  # the file's last line read into this batch
    position: int  # bytes of the file read so far (compressed bytes for a gzipped file)


@dataclass(slots=True)
class _Section:
    """Where the reader is in the file's header structure."""

    in_ddl: bool = False
    database: str | None = None
    retention_policy: str | None = None


class ExportReader:
    """Reads one file batch by batch (call next_batch off the event loop: it reads and parses)."""

    def __init__(
        self, path: Path, *, precision: str, max_line_length: int, skip_through_line: int = 0,
        lines_per_batch: int = LINES_PER_BATCH,
    ) -> None:
        self.path = path
        self.size = path.stat().st_size
        self.precision = precision
        self.max_line_length = max_line_length
        self.skip_through_line = skip_through_line  # resuming: data lines up to here were committed
        self.lines_per_batch = lines_per_batch
        self._raw: BinaryIO = open(path, "rb")  # noqa: SIM115  # closed by close(): it outlives this call
        magic = self._raw.read(2)
        self._raw.seek(0)
        self._lines: BinaryIO = gzip.GzipFile(fileobj=self._raw) if magic == GZIP_MAGIC else self._raw  # type: ignore[assignment]
        self._section = _Section()
        self._line_no = 0
        self._pending: tuple[int, bytes] | None = None  # a data line of the next database, read ahead

    def close(self) -> None:
        self._raw.close()

    @property
    def position(self) -> int:
        return self._raw.tell()

    def next_batch(self) -> Batch | None:
        """The next lines of one database, or None at the end of the file."""
        texts: list[bytes] = []
        line_numbers: list[int] = []
        database = self._section.database
        if self._pending is not None:
            line_numbers.append(self._pending[0])
            texts.append(self._pending[1])
            self._pending = None
        for raw in self._lines:
            self._line_no += 1
            text = raw.rstrip(b"\r\n")
            if not text.strip():
                continue
            if text.startswith(b"#"):
                self._header(text)
                continue
            if self._section.in_ddl:
                continue  # CREATE DATABASE / RETENTION POLICY: Tracker has one database per user
            if self._line_no <= self.skip_through_line:
                continue
            if self._section.database != database:
                if texts:  # a batch holds one database's lines: keep this one for the next
                    self._pending = (self._line_no, text)
                    break
                database = self._section.database
            texts.append(text)
            line_numbers.append(self._line_no)
            if len(texts) >= self.lines_per_batch:
                break
        if not texts:
            return None
        points, refusals = check_lines(texts, line_numbers, self.precision, self.max_line_length)
        last_line = self._pending[0] - 1 if self._pending is not None else self._line_no
        return Batch(database, points, refusals, len(texts), last_line, self.position)

    def _header(self, text: bytes) -> None:
        comment = text[1:].strip().decode("utf-8", "replace")
        upper = comment.upper()
        if upper == "DDL":
            self._section.in_ddl = True
        elif upper == "DML":
            self._section.in_ddl = False
        elif upper.startswith("CONTEXT-DATABASE:"):
            self._section.database = comment.split(":", 1)[1].strip()
            self._section.in_ddl = False
        elif upper.startswith("CONTEXT-RETENTION-POLICY:"):
            # Tracker keeps one policy per user: every policy's points go to it.
            self._section.retention_policy = comment.split(":", 1)[1].strip()


def check_lines(
    texts: list[bytes], line_numbers: list[int], precision: str, max_line_length: int
) -> tuple[list[Point], list[tuple[int, str]]]:
    """Parse data lines and hold them to the vocabulary in /write's own pass (compiled when built);
    line numbers are the file's."""
    body = b"\n".join(texts)
    checked = lineprotocol.parse_samples(body, precision, time.time_ns(), max_line_length)
    refusals = [(line_numbers[error.line_no - 1], error.reason) for error in checked.errors]
    for point in checked.points:
        point.line_no = line_numbers[point.line_no - 1]
    if checked.refused:
        # The messages name the batch's lines: parse again for the reasons by the file's line numbers.
        refusals += _vocabulary_refusals(body, line_numbers, precision, max_line_length)
    refusals.sort()
    return checked.points, refusals


def _vocabulary_refusals(
    body: bytes, line_numbers: list[int], precision: str, max_line_length: int
) -> list[tuple[int, str]]:
    """The rare batch with refused lines: which, and why, by the file's line numbers."""
    parsed = lineprotocol.parse(body, precision, time.time_ns(), max_line_length)
    refusals = []
    for point in parsed.points:
        _, reason = vocabulary.normalize_fields(point.measurement, point.fields)
        if reason is not None:
            refusals.append((line_numbers[point.line_no - 1], reason))
    return refusals


# ----- resuming -----


def progress_file(data_dir: Path, path: Path, target: str) -> Path:
    """Where an unfinished import of `path` into `target` records its last committed line. The key
    names the file by path, size and modification time: a changed file starts over."""
    stat = path.stat()
    key = f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\0{target}"
    return data_dir / PROGRESS_DIR / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".json")


def committed_line(progress: Path) -> int:
    try:
        return int(json.loads(progress.read_text())["line"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def record_committed_line(progress: Path, line_no: int) -> None:
    progress.parent.mkdir(parents=True, exist_ok=True)
    temporary = progress.with_suffix(".tmp")
    temporary.write_text(json.dumps({"line": line_no}))
    os.replace(temporary, progress)  # whole or not at all


# ----- the import -----

SHOWN_REFUSALS = 100  # per file, on stderr; all are counted in the summary


@dataclass(slots=True)
class FileSummary:
    path: Path
    resumed_after_line: int = 0
    data_lines: int = 0
    stored: int = 0
    refused: int = 0
    by_database: dict[str, int] = field(default_factory=dict)  # points stored per target user
    seconds: float = 0.0


async def import_file(
    path: Path,
    *,
    data_dir: Path,
    target: Callable[[str | None], Awaitable[tuple[str | None, str | None]]],
    write: Callable[[str, list[Point]], Awaitable[None]],
    cutoff: Callable[[str], Awaitable[Cutoff]],
    precision: str,
    max_line_length: int,
    report: Callable[[str], None],
    progress: ProgressBar | None,
    progress_key: str,
) -> FileSummary:
    """Import one file. `target(database)` is (user, None) or (None, why its lines are not stored);
    `write` stores points through the sample store. Parsing the next batch overlaps the write of this one."""
    record = progress_file(data_dir, path, progress_key)
    summary = FileSummary(path, resumed_after_line=committed_line(record))
    reader = ExportReader(
        path, precision=precision, max_line_length=max_line_length, skip_through_line=summary.resumed_after_line
    )
    started = time.monotonic()
    shown = 0

    def refuse(line_no: int, reason: str) -> None:
        nonlocal shown
        summary.refused += 1
        shown += 1
        if shown <= SHOWN_REFUSALS:
            report(f"{path}:{line_no}: {reason}")
        elif shown == SHOWN_REFUSALS + 1:
            report(f"{path}: more refused lines follow; only the first {SHOWN_REFUSALS} are shown, all are counted")

    try:
        batch = await asyncio.to_thread(reader.next_batch)
        while batch is not None:
            following = asyncio.ensure_future(asyncio.to_thread(reader.next_batch))
            try:
                summary.data_lines += batch.data_lines
                user, why_not = await target(batch.database)
                kept: list[Point] = []
                refusals = list(batch.refusals)
                if user is None:
                    refusals += [(point.line_no, why_not or "") for point in batch.points]
                else:
                    held = await cutoff(user)
                    for point in batch.points:
                        reason = held.refusal(point.time)
                        if reason is None:
                            kept.append(point)
                        else:
                            refusals.append((point.line_no, reason))
                for line_no, reason in sorted(refusals):
                    refuse(line_no, reason)
                if user is not None and kept:
                    await write(user, kept)
                    summary.stored += len(kept)
                    summary.by_database[user] = summary.by_database.get(user, 0) + len(kept)
                record_committed_line(record, batch.last_line)
                if progress is not None:
                    progress.update(batch.position, summary.data_lines)
            except BaseException:
                following.cancel()
                with contextlib.suppress(BaseException):
                    await following
                raise
            batch = await following
    finally:
        await asyncio.to_thread(reader.close)
    if progress is not None:
        progress.finish()
    record.unlink(missing_ok=True)  # finished: a re-run imports the file again (merging, so nothing twice)
    summary.seconds = time.monotonic() - started
    return summary
