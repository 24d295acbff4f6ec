"""Storage: every SQL statement of Tracker lives in this package.

Layout of the data folder: `<data_dir>/accounts.sqlite` (users, password hashes, shares, links,
sessions, device tokens, alerts) and `<data_dir>/users/<name>.sqlite` (one file per user holding
that user's samples).

- `schema`: the schema history of each kind of file, one ordered tuple of migrations per kind.
- `connection`: opening a file (pragmas, migrations) and the file system's refusals.
- `accounts`: the AccountStore.
- `samples`: the SampleStore (writer threads with group commit, reads, the live window read).
- `query`: the SQL behind /query (InfluxQL SELECT and SHOW).
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
    LinkLabelTaken,
    LinkRecord,
    SessionRecord,
    TokenLabelTaken,
    UnknownUser,
    UserExists,
    UserRecord,
)
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
    EPOCH_NS,
    QueryColumn,
    QueryFilter,
    SeriesTags,
    arithmetic_sql,
    combine_filters,
    compare_sql,
    field_sql,
    number_sql,
    query_aggregates,
    query_field_keys,
    query_has_samples,
    query_raw,
    query_series,
    series_in,
    tag_sql,
)
from tracker.storage.samples import (
    DEVICE_TAG,
    ON_CONFLICT,
    ROWS_PER_STATEMENT,
    SamplePoint,
    SampleStore,
    StoredSample,
    Tags,
    device_last_seen,
    window_samples,
)
from tracker.storage.schema import ACCOUNT_MIGRATIONS, SAMPLE_MIGRATIONS

# The account operations are methods of AccountStore; `storage.add_link(store, ...)` is the same call
# as `store.add_link(...)`.
set_public = AccountStore.set_public
is_public = AccountStore.is_public
add_link = AccountStore.add_link
list_links = AccountStore.list_links
link_by_token_hash = AccountStore.link_by_token_hash
revoke_link = AccountStore.revoke_link
touch_link = AccountStore.touch_link
add_session = AccountStore.add_session
get_session = AccountStore.get_session
list_sessions = AccountStore.list_sessions
delete_session = AccountStore.delete_session
end_sessions = AccountStore.end_sessions
touch_session = AccountStore.touch_session
set_retention = AccountStore.set_retention
retention_overrides = AccountStore.retention_overrides
add_device_token = AccountStore.add_device_token
list_device_tokens = AccountStore.list_device_tokens
active_device_tokens = AccountStore.active_device_tokens
revoke_device_token = AccountStore.revoke_device_token
record_token_use = AccountStore.record_token_use
set_alert = AccountStore.set_alert
list_alerts = AccountStore.list_alerts
remove_alert = AccountStore.remove_alert
set_alert_fired = AccountStore.set_alert_fired
record_alert_delivery = AccountStore.record_alert_delivery

__all__ = [
    "ACCOUNTS_FILE", "ACCOUNT_MIGRATIONS", "BUSY_TIMEOUT_MS", "DEVICE_TAG", "EPOCH_NS", "ON_CONFLICT",
    "ROWS_PER_STATEMENT", "SAMPLE_MIGRATIONS", "SQLITE_HEADER", "SYNCHRONOUS_MODES", "USERS_DIR",
    "AccountStore", "AlertRecord", "DeviceTokenRecord", "FileCheck", "LinkLabelTaken", "LinkRecord",
    "QueryColumn", "QueryFilter", "QueryTimeout", "SamplePoint", "SampleStore", "SchemaTooNew", "SeriesTags",
    "SessionRecord", "StorageUnavailable", "StoredSample", "Tags", "TokenLabelTaken", "UnknownUser",
    "UserExists", "UserRecord",
    "active_device_tokens", "add_device_token", "add_link", "add_session", "arithmetic_sql", "backup_file",
    "check_file", "combine_filters", "compare_sql", "delete_session", "device_last_seen", "end_sessions",
    "field_sql", "get_session", "in_use", "is_public", "link_by_token_hash", "list_alerts",
    "list_device_tokens", "list_links", "list_sessions", "number_sql", "query_aggregates",
    "query_field_keys", "query_has_samples", "query_raw", "query_series", "record_alert_delivery",
    "record_token_use", "remove_alert", "retention_overrides", "revoke_device_token", "revoke_link",
    "series_in", "set_alert", "set_alert_fired", "set_public", "set_retention", "tag_sql", "touch_link",
    "touch_session", "window_samples",
]
