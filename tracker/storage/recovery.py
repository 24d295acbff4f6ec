"""Bringing user files up to the journal after a crash or power loss, before serving.

User files commit at synchronous=NORMAL: what a power loss takes from them is in the journal
(fsynced per group). Two entry points:

- `recover(data_dir)`: once, when no writer runs on the data folder (`tracker serve` at start; a
  multi-worker supervisor before it starts its workers). Re-applies, in id order, every entry past the
  durable watermark, whichever process wrote it (so two writers' writes to one key keep their order),
  to the user files that exist; fsyncs them; marks everything durable.
- `settle_writer(data_dir, writer_key)`: a single worker restarting while the others go on. It must
  not re-apply its old entries (that could revert another worker's newer value of the same key): a
  process crash loses nothing the OS had, so it fsyncs the files its non-durable entries name and
  marks them durable.

Deletions (DELETE, DROP SERIES) are journaled and replayed in their place among the writes, so
samples deleted stay deleted. Retention removals are not journaled: a replay can bring back samples removed since the last
checkpoint; the next retention sweep removes them again.
"""

from __future__ import annotations

import logging
from pathlib import Path

from tracker.storage.connection import USERS_DIR, _refused_as_unavailable, fsync_path
from tracker.storage.journal import (
    DELETE_ENTRY, decode_deletion, decode_points, durable_watermark, entries_to_replay, fsync_sample_file, journal_path,
    mark_all_durable, mark_writer_durable, open_journal, pending_users_of,
)
from tracker.storage.samples import SampleStore, _Applier, _load_series, _open_sample_file, apply_deletion

_log = logging.getLogger(__name__)


def _sample_path(files: SampleStore, user: str) -> Path | None:
    """The user's file if it exists and is not empty (a deleted user, or a write never acknowledged),
    where the server would look for it (a file that leads outside the users folder is none)."""
    try:
        path = files.path_for(user)
    except ValueError:
        return None
    try:
        return path if path.stat().st_size > 0 else None
    except FileNotFoundError:
        return None


def recover(data_dir: Path, synchronous: str = "FULL") -> int:
    """Re-apply the journal past the durable watermark to the user files; the entries re-applied.
    A full or read-only disk is StorageUnavailable naming the journal, in one line."""
    path = journal_path(data_dir)
    if not path.exists():
        return 0
    with _refused_as_unavailable(path, f"cannot open {path}"):
        return _recover(data_dir, synchronous)


def _recover(data_dir: Path, synchronous: str) -> int:
    journal = open_journal(data_dir, synchronous)
    try:
        entries = entries_to_replay(journal, durable_watermark(journal))
        by_user: dict[str, list[tuple[str, bytes]]] = {}
        for _, user, on_conflict, blob in entries:  # id order, kept within each user
            by_user.setdefault(user, []).append((on_conflict, blob))
        applier = _Applier()
        applied = 0
        files = SampleStore(data_dir)  # path_for only: opens nothing
        for user, batches in by_user.items():
            path = _sample_path(files, user)
            if path is None:
                continue
            conn, series = _open_sample_file(path)
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for on_conflict, blob in batches:
                        if on_conflict == DELETE_ENTRY:  # in its place among the writes, so they stay deleted
                            _, gone = apply_deletion(conn, *decode_deletion(blob))
                            if gone:
                                series = _load_series(conn)
                            continue
                        points = decode_points(blob)
                        series.update(applier.add_series(conn, series, points))
                        applier.apply(conn, series, points, on_conflict)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            finally:
                conn.close()
            fsync_sample_file(path)
            applied += len(batches)
        fsync_path(Path(data_dir) / USERS_DIR)
        mark_all_durable(journal)
        if applied:
            _log.info("recovery: re-applied %d journal entries to %d user files", applied, len(by_user))
        return applied
    finally:
        journal.close()


def settle_writer(data_dir: Path, writer_key: str, synchronous: str = "FULL") -> int:
    """For one restarting worker: fsync the user files its non-durable entries name and mark them
    durable, without re-applying anything. Returns the number of files fsynced."""
    if not journal_path(data_dir).exists():
        return 0
    journal = open_journal(data_dir, synchronous)
    try:
        users, newest = pending_users_of(journal, writer_key)
        synced = 0
        files = SampleStore(data_dir)  # path_for only: opens nothing
        for user in users:
            path = _sample_path(files, user)
            if path is not None:
                fsync_sample_file(path)
                synced += 1
        fsync_path(Path(data_dir) / USERS_DIR)
        if newest:
            mark_writer_durable(journal, writer_key, newest)
        return synced
    finally:
        journal.close()


__all__ = ["recover", "settle_writer"]
