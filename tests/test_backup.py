"""`tracker backup`, `tracker restore` and `tracker check` on real files, with a real server running."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http.client
import json
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tests.conftest import CHEAP_HASHING
from tests.tracker_process import HOST, TrackerProcess, clean_env
from tracker import backup as backups
from tracker.accounts import BEARER_SECRET_FILE, Accounts, load_bearer_secret
from tracker.cli import CliOptions, cli
from tracker.storage import ACCOUNT_MIGRATIONS, SAMPLE_MIGRATIONS, AccountStore, SampleStore

PASSWORDS = {"ann": "ann pass 1", "bob": "bob-pass-2"}
SECOND = 10**9


def invoke(args: list[str]) -> Result:
    return CliRunner().invoke(cli, args, env={"TRACKER_DATA_DIR": None}, obj=CliOptions(password_context=CHEAP_HASHING))


def add_users(data_dir: Path, passwords: dict[str, str] = PASSWORDS) -> None:
    async def add() -> None:
        store = await AccountStore.open(data_dir)
        try:
            accounts = Accounts(store, password_context=CHEAP_HASHING)
            for name, password in passwords.items():
                await accounts.add_user(name, password)
        finally:
            await store.close()

    asyncio.run(add())


class P:
    def __init__(self, t: int, hr: float, tags: tuple[tuple[str, str], ...] = ()) -> None:
        self.time, self.fields, self.tags = t, {"hr_bpm": hr}, tags


def write_samples(data_dir: Path, user: str, times: range) -> None:
    async def write() -> None:
        store = SampleStore(data_dir)
        try:
            await store.write(user, [P(t * SECOND, float(t % 200)) for t in times])
        finally:
            await store.close()

    asyncio.run(write())


def rows_of(path: Path) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute("SELECT time, series, hr_bpm FROM samples ORDER BY time, series").fetchall()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    add_users(data)
    write_samples(data, "ann", range(1000, 1500))
    write_samples(data, "bob", range(2000, 2100))
    return data


# ----- the server process -------------------------------------------------------------------------


def tracker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tracker", *args], capture_output=True, text=True, timeout=timeout, env=clean_env()
    )


class Server(TrackerProcess):
    """A running server on `data_dir`, started at once."""

    def __init__(self, data_dir: Path, log_path: Path) -> None:
        super().__init__(data_dir, log_path)
        self.start(timeout=10)

    def request(
        self, method: str, path: str, body: bytes | None = None, auth: tuple[str, str] | None = None
    ) -> tuple[int, bytes]:
        headers = {}
        if auth is not None:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        conn = http.client.HTTPConnection(HOST, self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        except OSError:
            return 0, b""
        finally:
            conn.close()

    def query(self, user: str, password: str, q: str) -> tuple[int, Any]:
        path = "/query?" + urllib.parse.urlencode({"db": user, "q": q, "epoch": "ns"})
        status, body = self.request("GET", path, auth=(user, password))
        return status, json.loads(body) if body else None

    def stop(self, timeout: float = 10) -> None:
        super().stop(timeout)
        assert "Traceback" not in self.log(), self.log()


class Writer(threading.Thread):
    """Posts numbered samples to one user, a few per request, and notes when each was acknowledged."""

    def __init__(self, server: Server, user: str, device: str, start_s: int) -> None:
        super().__init__(daemon=True)
        self.server, self.user, self.device, self.next_s = server, user, device, start_s
        self.acknowledged: list[tuple[float, list[tuple[int, float]]]] = []  # (monotonic time of the 204, samples)
        self.failures: list[tuple[int, bytes]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            batch = [(self.next_s + i, float(self.next_s % 1000 + i)) for i in range(20)]
            self.next_s += 20
            body = "\n".join(f"samples,device={self.device} hr_bpm={hr} {t}" for t, hr in batch).encode()
            status, answer = self.server.request(
                "POST", f"/write?db={self.user}&precision=s", body, (self.user, PASSWORDS[self.user])
            )
            if status == 204:
                self.acknowledged.append((time.monotonic(), batch))
            else:
                self.failures.append((status, answer))


def test_backup_while_writing_then_restore_and_compare(tmp_path: Path) -> None:
    data = tmp_path / "data"
    add_users(data)
    server = Server(data, tmp_path / "server.log")
    writers = [Writer(server, "ann", "watch", 1_700_000_000), Writer(server, "ann", "bike", 1_700_000_000),
               Writer(server, "bob", "phone", 1_700_500_000)]  # fmt: skip
    try:
        for writer in writers:
            writer.start()
        while sum(len(w.acknowledged) for w in writers) < 30:
            time.sleep(0.01)
        backup_began = time.monotonic()
        result = tracker("backup", str(tmp_path / "backup"), "--data-dir", str(data))
        assert result.returncode == 0, result.stderr
        time.sleep(0.2)  # writes go on after the backup too
    finally:
        for writer in writers:
            writer.stopping.set()
        for writer in writers:
            writer.join(timeout=30)
        server.stop()
    for writer in writers:
        assert writer.failures == []
    manifest = json.loads((tmp_path / "backup" / "manifest.json").read_text())
    assert [f["path"] for f in manifest["files"]] == ["accounts.sqlite", "users/ann.sqlite", "users/bob.sqlite"]
    assert [f["schema_version"] for f in manifest["files"]] == [len(ACCOUNT_MIGRATIONS)] + [len(SAMPLE_MIGRATIONS)] * 2
    assert all(len(f["sha256"]) == 64 and f["bytes"] > 0 for f in manifest["files"])

    restored = tmp_path / "restored"
    result = tracker("restore", str(tmp_path / "backup"), "--data-dir", str(restored))
    assert result.returncode == 0, result.stderr
    assert tracker("check", "--data-dir", str(restored)).returncode == 0

    server = Server(restored, tmp_path / "restored.log")
    try:
        for user in ("ann", "bob"):
            status, answer = server.query(user, PASSWORDS[user], "SELECT hr_bpm, device FROM samples")
            assert status == 200, answer
            series = answer["results"][0].get("series", [{"values": []}])[0]
            have = {(row[2], row[0] // SECOND, row[1]) for row in series["values"]}
            sent = {(w.device, t, hr) for w in writers if w.user == user
                    for _, batch in w.acknowledged for t, hr in batch}  # fmt: skip
            before = {(w.device, t, hr) for w in writers if w.user == user
                      for acked, batch in w.acknowledged if acked < backup_began for t, hr in batch}  # fmt: skip
            assert before and before <= have  # every sample acknowledged before the backup began
            assert have <= sent  # and nothing that was never acknowledged... or sent
            # The accounts came back too: the password works, a wrong one does not.
            assert server.query(user, PASSWORDS[user] + "x", "SHOW DATABASES")[0] == 401
    finally:
        server.stop()


# ----- backup -------------------------------------------------------------------------------------


def test_backup_copies_every_database_and_writes_a_manifest(data_dir: Path, tmp_path: Path) -> None:
    dest = tmp_path / "backup"
    result = invoke(["backup", str(dest), "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == [
        "accounts.sqlite", "manifest.json", "users/ann.sqlite", "users/bob.sqlite"
    ]  # fmt: skip: one self-contained file per database, no -wal beside them
    assert rows_of(dest / "users/ann.sqlite") == rows_of(data_dir / "users/ann.sqlite")
    assert len(rows_of(dest / "users/ann.sqlite")) == 500
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest["format"] == 1 and manifest["started"] <= manifest["finished"]
    assert "backed up 3 file(s)" in result.stdout


def test_backup_refuses_a_non_empty_destination_unless_forced(data_dir: Path, tmp_path: Path) -> None:
    dest = tmp_path / "backup"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine")
    result = invoke(["backup", str(dest), "--data-dir", str(data_dir)])
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"Error: {dest} is not empty: back up into a new or empty folder, or pass --force to write into it"
    )
    assert not (dest / "accounts.sqlite").exists()
    assert invoke(["backup", str(dest), "--force", "--data-dir", str(data_dir)]).exit_code == 0
    assert (dest / "manifest.json").exists() and (dest / "notes.txt").read_text() == "mine"

    result = invoke(["backup", str(data_dir / "inside"), "--data-dir", str(data_dir)])
    assert result.exit_code == 1 and "is inside the data folder" in result.stderr
    result = invoke(["backup", str(tmp_path / "b2"), "--data-dir", str(tmp_path / "nothing")])
    assert result.exit_code == 1 and "no accounts.sqlite in" in result.stderr


# ----- restore ------------------------------------------------------------------------------------


@pytest.fixture
def backup_dir(data_dir: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "backup"
    backups.backup(data_dir, dest)
    return dest


def test_restore_refuses_a_data_folder_with_data_unless_forced(backup_dir: Path, data_dir: Path) -> None:
    write_samples(data_dir, "ann", range(5000, 5010))  # changed since the backup
    result = invoke(["restore", str(backup_dir), "--data-dir", str(data_dir)])
    assert result.exit_code == 1
    assert "already holds 3 database(s)" in result.stderr and "--force" in result.stderr
    assert len(rows_of(data_dir / "users/ann.sqlite")) == 510

    write_samples(data_dir, "cy", range(1, 3))  # a user the backup does not know
    result = invoke(["restore", str(backup_dir), "--force", "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    assert rows_of(data_dir / "users/ann.sqlite") == rows_of(backup_dir / "users/ann.sqlite")
    assert "left in place (not in the backup): users/cy.sqlite" in result.stderr


def test_restore_drops_the_old_write_ahead_log(backup_dir: Path, data_dir: Path, tmp_path: Path) -> None:
    # A process that died with committed pages still in ann's -wal (nothing checkpointed them).
    script = (
        "import os, sqlite3, sys\n"
        "conn = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "conn.execute('PRAGMA wal_autocheckpoint = 0')\n"
        "conn.execute('DELETE FROM samples')\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(data_dir / "users/ann.sqlite")], check=True, timeout=30)
    assert (data_dir / "users/ann.sqlite-wal").stat().st_size > 0
    result = invoke(["restore", str(backup_dir), "--yes", "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    # Nothing of the old -wal leaks into the restored file (replayed, it would delete every sample).
    assert len(rows_of(data_dir / "users/ann.sqlite")) == 500
    assert invoke(["check", "--data-dir", str(data_dir)]).exit_code == 0


def test_restore_refuses_while_the_data_folder_is_in_use(backup_dir: Path, data_dir: Path) -> None:
    async def restore_beside_an_open_store() -> str:
        store = await AccountStore.open(data_dir)  # what a running server holds open
        try:
            args = ["restore", str(backup_dir), "--force", "--data-dir", str(data_dir)]
            result = await asyncio.to_thread(invoke, args)
            assert result.exit_code == 1
            return result.stderr
        finally:
            await store.close()

    error = asyncio.run(restore_beside_an_open_store())
    accounts_file = data_dir / "accounts.sqlite"
    assert error.strip() == f"Error: {accounts_file} is in use (is the server running?): stop it, then restore"
    assert invoke(["restore", str(backup_dir), "--force", "--data-dir", str(data_dir)]).exit_code == 0


def test_restore_verifies_the_backup_first(backup_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "fresh"

    def restore() -> str:
        result = invoke(["restore", str(backup_dir), "--data-dir", str(target)])
        assert result.exit_code == 1, result.output
        assert not (target / "accounts.sqlite").exists() and not (target / "users").exists()
        return result.stderr.strip()

    manifest_path = backup_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    ann = backup_dir / "users/ann.sqlite"
    original = ann.read_bytes()

    ann.write_bytes(original[:-1] + b"\x01")
    assert restore() == f"Error: {ann} changed since the backup was made (its SHA-256 differs)"

    # Damaged in a way the checksum cannot see (the manifest agrees): the integrity check does.
    corrupt_page(ann, page=2)
    entry = next(f for f in manifest["files"] if f["path"] == "users/ann.sqlite")
    entry["sha256"] = backups._sha256(ann)
    manifest_path.write_text(json.dumps(manifest))
    assert restore().startswith(f"Error: {ann}: ")

    ann.write_bytes(original)
    entry["sha256"] = backups._sha256(ann)
    entry["path"] = "../evil.sqlite"
    manifest_path.write_text(json.dumps(manifest))
    assert restore() == f"Error: {manifest_path}: unexpected file '../evil.sqlite'"

    manifest_path.unlink()
    assert restore() == f"Error: no manifest.json in {backup_dir}: not a Tracker backup, or an unfinished one"


# ----- check --------------------------------------------------------------------------------------


def corrupt_page(path: Path, page: int) -> None:
    """Overwrite the middle of one page (1-based) with garbage, as a bad disk sector would."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        assert conn.execute("PRAGMA page_count").fetchone()[0] > page
    with open(path, "r+b") as handle:
        handle.seek((page - 1) * page_size + 8)
        handle.write(b"\xff\x13" * (page_size // 4))


def check(data_dir: Path) -> tuple[int, list[str]]:
    result = invoke(["check", "--data-dir", str(data_dir)])
    return result.exit_code, result.stdout.splitlines()


def test_check_a_sound_data_folder(data_dir: Path) -> None:
    code, lines = check(data_dir)
    assert code == 0
    assert [line.split(":")[0] for line in lines] == [
        "ok       accounts.sqlite", "ok       users/ann.sqlite", "ok       users/bob.sqlite"
    ]  # fmt: skip
    assert lines[0].startswith(f"ok       accounts.sqlite: schema {len(ACCOUNT_MIGRATIONS)}, ")
    assert invoke(["check", "--quick", "--data-dir", str(data_dir)]).exit_code == 0


def test_check_knows_the_bearer_signing_key(data_dir: Path, tmp_path: Path) -> None:
    load_bearer_secret(data_dir)  # as every server start does
    code, lines = check(data_dir)
    assert code == 0, lines
    assert "ok       bearer-secret: the key that signs bearer tokens" in lines
    # Not a database, so not in a backup: a restored server makes a new one.
    assert invoke(["backup", str(tmp_path / "backup"), "--data-dir", str(data_dir)]).exit_code == 0
    assert not (tmp_path / "backup" / BEARER_SECRET_FILE).exists()

    (data_dir / BEARER_SECRET_FILE).write_text("not a key\n")
    code, lines = check(data_dir)
    assert code == 1
    assert (
        f"PROBLEM  bearer-secret: {data_dir / BEARER_SECRET_FILE} is not a Tracker key (64 hex digits): "
        "delete it and a new one is made at the next start"
    ) in lines


def test_check_finds_a_corrupted_page(data_dir: Path) -> None:
    corrupt_page(data_dir / "users/ann.sqlite", page=3)
    code, lines = check(data_dir)
    assert code == 1
    assert lines[0].startswith("ok       accounts.sqlite")
    assert lines[1].startswith("PROBLEM  users/ann.sqlite: integrity check")
    assert lines[2].startswith("ok       users/bob.sqlite")
    result = invoke(["check", "--data-dir", str(data_dir)])
    assert result.stderr.strip() == "Error: 1 of 3 file(s) have problems"


def test_check_finds_a_too_new_schema_and_unexpected_files(data_dir: Path) -> None:
    with contextlib.closing(sqlite3.connect(data_dir / "users/bob.sqlite")) as conn:
        conn.execute("PRAGMA user_version = 99")
    (data_dir / "users/notes.txt").write_text("hello")
    (data_dir / "users/bad name.sqlite").write_bytes(b"")
    (data_dir / "stray.sqlite").write_bytes(b"SQLite format 3\x00")
    (data_dir / "users/ann.sqlite").rename(data_dir / "users/ann.sqlite.bak")
    (data_dir / "users/zoe.sqlite").write_bytes(b"this is not a database at all")
    code, lines = check(data_dir)
    assert code == 1
    assert lines == [
        f"ok       accounts.sqlite: {lines[0].split(': ', 1)[1]}",
        f"PROBLEM  users/bob.sqlite: schema version 99 is newer than this Tracker knows ({len(SAMPLE_MIGRATIONS)}): "
        "written by a newer Tracker",
        "PROBLEM  users/zoe.sqlite: not an SQLite database",
        "PROBLEM  stray.sqlite: unexpected file",
        "PROBLEM  users/ann.sqlite.bak: unexpected file",
        "PROBLEM  users/bad name.sqlite: unexpected file",
        "PROBLEM  users/notes.txt: unexpected file",
    ]


def test_check_without_accounts_or_folder(tmp_path: Path) -> None:
    (tmp_path / "data" / "users").mkdir(parents=True)
    code, lines = check(tmp_path / "data")
    assert (code, lines) == (1, ["PROBLEM  accounts.sqlite: missing: no accounts file in this data folder"])
    result = invoke(["check", "--data-dir", str(tmp_path / "nowhere")])
    assert result.exit_code == 1 and result.stderr.strip() == f"Error: no data folder {tmp_path / 'nowhere'}"
    assert not (tmp_path / "nowhere").exists()
