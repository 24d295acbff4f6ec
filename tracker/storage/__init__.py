"""Storage: every SQL statement of Tracker lives in this package.

Layout of the data folder: `<data_dir>/accounts.sqlite` (users, password hashes, shares, links,
sessions, device tokens, alerts) and `<data_dir>/users/<name>.sqlite` (one file per user holding
that user's samples).

- `schema`: the schema history of each kind of file, one ordered tuple of migrations per kind.
- `connection`: opening a file (pragmas, migrations) and the file system's refusals.
- `accounts`: the AccountStore.
- `samples`: the SampleStore (one writer thread with group commit, reads, the live window read).
- `journal`: <data_dir>/journal.sqlite, the write-ahead log of all users' writes (one fsync per
  group); `recovery`: re-applying it to the user files after a crash, before serving.
- `query`: the SQL behind /query (InfluxQL SELECT and SHOW).
- `blocks`: samples as numpy columns per hour, sealed hours cached (the day-long reads' path).
- `files`: the SQL behind `tracker backup`, `tracker restore` and `tracker check`.

Every file runs in WAL mode (readers never block the writer), with a busy timeout (a CLI process
working on the same files waits instead of failing with "database is locked"), foreign keys on, and
`PRAGMA user_version` holding its schema version.
"""

from __future__ import annotations

from tracker.storage.accounts import (
    AccountStore,
    AlertRecord,
    DeviceTokenRecord,
    InviteRecord,
    LinkLabelTaken,
    LinkRecord,
    SessionRecord,
    TokenLabelTaken,
    UnknownUser,
    UserExists,
    UserRecord,
)
from tracker.storage.blocks import Columns, query_columns
from tracker.storage.column_cache import BlockCache
from tracker.storage.connection import (
    ACCOUNTS_FILE,
    BUSY_TIMEOUT_MS,
    SYNCHRONOUS_MODES,
    USERS_DIR,
    QueryTimeout,
    SchemaTooNew,
    StorageUnavailable,
)
from tracker.storage.files import SQLITE_HEADER, FileCheck, backup_file, check_file, in_use
from tracker.storage.query import (
    EdgeReads,
    EPOCH_NS,
    KEEP_ALL,
    KEEP_NONE,
    QueryColumn,
    QueryFilter,
    SeriesTags,
    arithmetic_sql,
    column_source,
    combine_filters,
    compare_sql,
    field_sql,
    number_sql,
    query_aggregates,
    query_field_keys,
    query_has_samples,
    query_raw,
    query_series,
    query_series_between,
    query_time_span,
    series_in,
    series_sql,
    tag_sql,
    time_ranges,
)
from tracker.storage.samples import (
    DEVICE_TAG,
    ON_CONFLICT,
    ROWS_PER_STATEMENT,
    SamplePoint,
    SampleStore,
    StoredSample,
    Tags,
    Written,
    device_last_seen,
    window_samples,
)
from tracker.storage.journal import (
    DELETE_ENTRY, JOURNAL_FILE, JournalPoint, JournalReader, MirrorOutbox, decode_point_tuples, decode_points,
)  # fmt: skip
from tracker.storage.recovery import recover, settle_writer
from tracker.storage.schema import ACCOUNT_MIGRATIONS, JOURNAL_MIGRATIONS, SAMPLE_MIGRATIONS

__all__ = [
    "EdgeReads",
    "ACCOUNTS_FILE", "ACCOUNT_MIGRATIONS", "JOURNAL_FILE", "JOURNAL_MIGRATIONS", "JournalPoint", "JournalReader", "MirrorOutbox",
    "Written", "DELETE_ENTRY", "decode_points", "decode_point_tuples", "recover", "settle_writer", "BUSY_TIMEOUT_MS", "DEVICE_TAG", "EPOCH_NS", "KEEP_ALL",
    "KEEP_NONE", "ON_CONFLICT",
    "ROWS_PER_STATEMENT", "SAMPLE_MIGRATIONS", "SQLITE_HEADER", "SYNCHRONOUS_MODES", "USERS_DIR",
    "AccountStore", "AlertRecord", "DeviceTokenRecord", "FileCheck", "InviteRecord", "LinkLabelTaken", "LinkRecord",
    "QueryColumn", "QueryFilter", "QueryTimeout", "SamplePoint", "SampleStore", "SchemaTooNew", "SeriesTags",
    "SessionRecord", "StorageUnavailable", "StoredSample", "Tags", "TokenLabelTaken", "UnknownUser",
    "UserExists", "UserRecord",
    "BlockCache", "Columns", "query_columns",
    "arithmetic_sql", "backup_file", "check_file", "column_source", "combine_filters", "compare_sql", "device_last_seen",
    "field_sql", "in_use", "number_sql", "query_aggregates", "query_field_keys", "query_has_samples",
    "query_raw", "query_series", "query_series_between", "query_time_span", "series_in", "series_sql",
    "tag_sql", "time_ranges", "window_samples",
]
