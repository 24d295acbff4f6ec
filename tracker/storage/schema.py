"""The schema history of each kind of file: one ordered tuple of SQL scripts per kind, applied
forward only at open, each in its own transaction (see tracker.storage.connection). A file's
`PRAGMA user_version` is how many of its scripts have run: append, never edit or reorder."""

from __future__ import annotations

# <data_dir>/accounts.sqlite
ACCOUNT_MIGRATIONS: tuple[str, ...] = (
    # v1
    """
    CREATE TABLE users (
        name TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        created_ns INTEGER NOT NULL
    );
    CREATE TABLE shares (
        owner TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        viewer TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        PRIMARY KEY (owner, viewer)
    ) WITHOUT ROWID;
    -- readable_by() looks shares up by viewer, and so does the cascade when a viewer is deleted.
    CREATE INDEX shares_by_viewer ON shares(viewer, owner);
    """,
    # v2. Tokens (links, sessions) are stored only as their SHA-256: a copy of this file lets nobody
    # watch or sign in. A link's label is unique among the owner's links that are not revoked, so
    # `link revoke NAME LABEL` names exactly one; revoked links stay listed (with their last use).
    """
    ALTER TABLE users ADD COLUMN public INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE links (
        id INTEGER PRIMARY KEY,
        owner TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        label TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        created_ns INTEGER NOT NULL,
        expires_ns INTEGER,
        last_used_ns INTEGER,
        revoked_ns INTEGER
    );
    CREATE UNIQUE INDEX links_active_label ON links(owner, label) WHERE revoked_ns IS NULL;
    CREATE INDEX links_by_owner ON links(owner);
    CREATE TABLE sessions (
        token_hash TEXT PRIMARY KEY,
        user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        csrf TEXT NOT NULL,
        created_ns INTEGER NOT NULL,
        expires_ns INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX sessions_by_user ON sessions(user);
    """,
    # v3. retention_ns: how long the user's samples are kept; NULL = the server's default, 0 = forever.
    """
    ALTER TABLE users ADD COLUMN retention_ns INTEGER CHECK (retention_ns IS NULL OR retention_ns >= 0);
    """,
    # v4. A token's label is unique among its owner's tokens that are not revoked (`token revoke NAME
    # LABEL` names exactly one); it is also the `device` tag of what the token writes. Revoked tokens
    # stay listed with their last use. last_used_ns / last_sample_ns are bookkeeping, flushed in batches.
    """
    CREATE TABLE device_tokens (
        id INTEGER PRIMARY KEY,
        owner TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        label TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        speed_unit TEXT NOT NULL,
        created_ns INTEGER NOT NULL,
        last_used_ns INTEGER,
        last_sample_ns INTEGER,
        revoked_ns INTEGER
    );
    CREATE UNIQUE INDEX device_tokens_active_label ON device_tokens(owner, label) WHERE revoked_ns IS NULL;
    CREATE INDEX device_tokens_by_owner ON device_tokens(owner);
    """,
    # v5. device '' = any device of the owner. fired_ns is set when the "quiet" notice went out and
    # cleared when data arrives again, so a restart neither repeats the notice nor forgets the "back".
    # The delivery_* columns describe the latest notice: kind (quiet/back), state (retrying, ok,
    # failed), the last HTTP status or error and how many attempts it took.
    """
    CREATE TABLE alerts (
        id INTEGER PRIMARY KEY,
        owner TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        device TEXT NOT NULL DEFAULT '',
        quiet_seconds REAL NOT NULL,
        webhook_url TEXT NOT NULL,
        created_ns INTEGER NOT NULL,
        fired_ns INTEGER,
        delivery_kind TEXT,
        delivery_ns INTEGER,
        delivery_state TEXT,
        delivery_status INTEGER,
        delivery_error TEXT,
        delivery_attempts INTEGER,
        UNIQUE (owner, device)
    );
    """,
    # v6. last_used_ns is bookkeeping, written at most once a minute per session; user_agent is what
    # the browser called itself at sign-in. Sessions from before stay valid, with both NULL.
    """
    ALTER TABLE sessions ADD COLUMN last_used_ns INTEGER;
    ALTER TABLE sessions ADD COLUMN user_agent TEXT;
    """,
    # v7. Invite codes for POST /register in invite mode, stored only as their SHA-256; a code makes
    # accounts until uses_left is 0 (a used-up code stays listed).
    """
    CREATE TABLE invites (
        id INTEGER PRIMARY KEY,
        code_hash TEXT NOT NULL UNIQUE,
        uses INTEGER NOT NULL CHECK (uses >= 1),
        uses_left INTEGER NOT NULL CHECK (uses_left >= 0),
        created_ns INTEGER NOT NULL
    );
    """,
    # v8. A link scoped to one activity of its owner (the id in the owner's sample file) opens only that
    # activity: its page and its data. NULL: a link to the live view, as before. An activity id is never
    # used again (AUTOINCREMENT), so the id alone says which activity the link opens.
    """
    ALTER TABLE links ADD COLUMN activity_id INTEGER;
    """,
)


# <data_dir>/users/<name>.sqlite
SAMPLE_MIGRATIONS: tuple[str, ...] = (
    # v1. A series is one distinct tag set; samples refer to it by a small integer instead of
    # repeating the tags in every row. `tags` is the canonical JSON of the sorted [key, value] pairs
    # ('[]' = no tags), so equal tag sets always map to one series.
    # samples is WITHOUT ROWID with PRIMARY KEY (time, series): rows are clustered by time, so a time
    # range read is one direct B-tree range scan, and the key is exactly InfluxDB's merge key (a point
    # with the same time and tag set as a stored one updates it). One REAL column per vocabulary
    # field (NULL = not set): fixed vocabulary, so no key/value table, and a row is one B-tree entry.
    # These columns are the vocabulary as of v1: a new vocabulary field needs a new migration.
    """
    CREATE TABLE series (
        id INTEGER PRIMARY KEY,
        tags TEXT NOT NULL UNIQUE
    );
    CREATE TABLE samples (
        time INTEGER NOT NULL,
        series INTEGER NOT NULL REFERENCES series(id),
        dur_s REAL, dist_km REAL, lat REAL, lng REAL, acc_m REAL, bearing REAL, battery REAL,
        gsm_signal REAL, temp_c REAL, spd_kph REAL, alt_m REAL, hr_bpm REAL, cad_rpm REAL,
        pwr_w REAL, pwr_w_l REAL, pwr_w_r REAL,
        PRIMARY KEY (time, series)
    ) WITHOUT ROWID;
    """,
)

# v2. Which hour-long blocks of samples changed after they were sealed, for the read path's cache of
# sealed blocks (tracker.storage.blocks): a write to a sample more than 10 minutes old (a late sample,
# a merge into an old point, a deletion) bumps the version of the hour it falls in. Live samples (the
# last 10 minutes) do not touch this table, so live ingest pays one comparison per row; the read path
# only caches blocks that ended over 15 minutes ago, so no write to a cached block goes unnoticed.
# The block number is floor(time / 1 hour) and the 600 s match blocks.py's BLOCK_NS and CHANGES_AFTER_NS.
SAMPLE_MIGRATIONS += (
    """
    CREATE TABLE sample_block_changes (
        block INTEGER PRIMARY KEY,
        version INTEGER NOT NULL
    );
    CREATE TRIGGER samples_insert_old AFTER INSERT ON samples
    WHEN NEW.time < (CAST(strftime('%s', 'now') AS INTEGER) - 600) * 1000000000
    BEGIN
        INSERT INTO sample_block_changes (block, version)
        VALUES (NEW.time / 3600000000000 - (NEW.time % 3600000000000 < 0), 1)
        ON CONFLICT (block) DO UPDATE SET version = version + 1;
    END;
    CREATE TRIGGER samples_update_old AFTER UPDATE ON samples
    WHEN min(OLD.time, NEW.time) < (CAST(strftime('%s', 'now') AS INTEGER) - 600) * 1000000000
    BEGIN
        INSERT INTO sample_block_changes (block, version)
        VALUES (OLD.time / 3600000000000 - (OLD.time % 3600000000000 < 0), 1),
               (NEW.time / 3600000000000 - (NEW.time % 3600000000000 < 0), 1)
        ON CONFLICT (block) DO UPDATE SET version = version + 1;
    END;
    CREATE TRIGGER samples_delete_old AFTER DELETE ON samples
    WHEN OLD.time < (CAST(strftime('%s', 'now') AS INTEGER) - 600) * 1000000000
    BEGIN
        INSERT INTO sample_block_changes (block, version)
        VALUES (OLD.time / 3600000000000 - (OLD.time % 3600000000000 < 0), 1)
        ON CONFLICT (block) DO UPDATE SET version = version + 1;
    END;
    """,
)

# v3. Inserts and merges no longer bump sample_block_changes by trigger: a trigger runs once per row
# (a 5,000-line batch of old samples paid ~3.6 ms in SQLite for it, about as much as the inserts), so
# the writer bumps each changed block once per batch instead (samples._Applier, the only code that
# inserts samples). Deletions keep their trigger: they are rare, and come from several places.
SAMPLE_MIGRATIONS += (
    """
    DROP TRIGGER samples_insert_old;
    DROP TRIGGER samples_update_old;
    """,
)

# v4. How many deletions (DELETE, DROP SERIES, DROP MEASUREMENT) the file has had: what a process
# keeps of the file (the writer's series ids, the field-keys memo of /query) stays valid only while it
# is unchanged, whichever process deleted. One row; writes never touch it.
SAMPLE_MIGRATIONS += (
    """
    CREATE TABLE sample_deletions (
        id INTEGER PRIMARY KEY CHECK (id = 0),
        generation INTEGER NOT NULL
    );
    INSERT INTO sample_deletions (id, generation) VALUES (0, 0);
    """,
)
# v5. Activities (tracker.storage.activities): a track is (device, sport) of the samples' tags; its
# samples split where two are more than the user's gap apart, or at an owner's cut, except inside an
# owner's join. summary is the cached JSON, NULL when stale; summary_state the summary fold's state
# (tracker.activities.summary.SummaryFold) for the samples it was computed from, kept while only later
# samples were appended so the next summary folds in those alone, NULL otherwise. activity_dirty: the time ranges written
# or deleted since the last refresh, one row per hour of their start (one upsert per write batch).
# activity_settings: the user's ActivitySettings, one JSON value per key. AUTOINCREMENT: an id is never
# used again, so a link or a bookmark to an activity that was deleted or merged away opens no other.
SAMPLE_MIGRATIONS += (
    """
    CREATE TABLE activities (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        device TEXT NOT NULL,
        sport TEXT NOT NULL,
        start_ns INTEGER NOT NULL,
        end_ns INTEGER NOT NULL,
        samples INTEGER NOT NULL,
        name TEXT,
        summary TEXT,
        summary_state TEXT
    );
    CREATE INDEX activities_by_track ON activities(device, sport, end_ns);
    CREATE INDEX activities_by_start ON activities(start_ns, id);
    CREATE TABLE activity_dirty (
        block INTEGER PRIMARY KEY,
        start_ns INTEGER NOT NULL,
        end_ns INTEGER NOT NULL
    );
    CREATE TABLE activity_cuts (
        device TEXT NOT NULL,
        sport TEXT NOT NULL,
        at_ns INTEGER NOT NULL,
        PRIMARY KEY (device, sport, at_ns)
    ) WITHOUT ROWID;
    CREATE TABLE activity_joins (
        device TEXT NOT NULL,
        sport TEXT NOT NULL,
        from_ns INTEGER NOT NULL,
        to_ns INTEGER NOT NULL,
        PRIMARY KEY (device, sport, from_ns, to_ns)
    ) WITHOUT ROWID;
    CREATE TABLE activity_settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    -- A file from before: all its samples are still to split.
    INSERT INTO activity_dirty (block, start_ns, end_ns)
    SELECT lo / 3600000000000 - (lo % 3600000000000 < 0), lo, hi
    FROM (SELECT min(time) AS lo, max(time) AS hi FROM samples) WHERE lo IS NOT NULL;
    """,
)

# v6. The user's planned routes (courses) and what each is shown on: target "now" (the live view of
# anyone who may watch) or "link:<link id>" (the viewers of one share link), one course per target.
# `points` is the JSON [[lat, lng, alt|null], ...] as the owner gave it: read whole, never queried into.
SAMPLE_MIGRATIONS += (
    """
    CREATE TABLE courses (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        created_ns INTEGER NOT NULL,
        point_count INTEGER NOT NULL,
        distance_m REAL NOT NULL,
        points TEXT NOT NULL
    );
    CREATE TABLE course_attachments (
        target TEXT PRIMARY KEY,
        course INTEGER NOT NULL REFERENCES courses(id) ON DELETE CASCADE
    ) WITHOUT ROWID;
    """,
)
# The blocks of the read cache (tracker.storage.blocks): floor(time / BLOCK_NS); a write to a sample
# more than CHANGES_AFTER_NS old bumps its block's version. v2's trigger spells the same two numbers.
BLOCK_NS = 3_600_000_000_000
CHANGES_AFTER_NS = 600_000_000_000

# <data_dir>/journal.sqlite
JOURNAL_MIGRATIONS: tuple[str, ...] = (
    # v1. entries: every committed write batch of every user, in commit order across all processes.
    # AUTOINCREMENT so that an id is never reused, even after the newest entries were deleted: the id
    # is the global commit sequence (and the live view's event id). `points` is the batch as the
    # writer stored it (marshal of (time, tags, fields) tuples); `writer` the process that wrote it.
    # writers: per writing process, the id up to which its entries are applied to user files that
    # are fsynced (durable without the journal). meta: one random `generation` per journal file, so
    # that an event id from a journal that was since replaced is recognised as foreign.
    """
    CREATE TABLE entries (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        user TEXT NOT NULL,
        writer TEXT NOT NULL,
        on_conflict TEXT NOT NULL,
        points BLOB NOT NULL,
        at_ns INTEGER NOT NULL
    );
    CREATE INDEX entries_by_user ON entries(user, id);
    CREATE INDEX entries_by_writer ON entries(writer, id);
    CREATE TABLE writers (
        writer_key TEXT PRIMARY KEY,
        durable_id INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    INSERT INTO meta (key, value) VALUES ('generation', lower(hex(randomblob(4))));
    """,
    # v2. mirrors: the journal is also the outbox of every --mirror (tracker/mirror.py). Per mirror
    # (its URL without credentials): the id up to which its entries are delivered, how old its
    # oldest undelivered entry may get before the checkpoint drops entries for it anyway
    # (max_lag_ns), and how many entries it has dropped so.
    """
    CREATE TABLE mirrors (
        mirror_key TEXT PRIMARY KEY,
        delivered_id INTEGER NOT NULL,
        max_lag_ns INTEGER NOT NULL,
        dropped_entries INTEGER NOT NULL DEFAULT 0
    );
    """,
)
