"""`tracker import` on files in the forms influx_inspect export and influx -import write, read back
through /query of a real server that runs meanwhile."""

from __future__ import annotations

import base64
import gzip
import json
import os
import pty
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli_helpers import add_user, invoke
from tests.tracker_process import PASSWORD, TrackerProcess, clean_env
from tracker import importer

SECOND = 10**9
# Recent enough for any retention, and in the past: every server keeps them.
BASE_NS = (time.time_ns() // SECOND - 3600) * SECOND


def inspect_export(databases: dict[str, list[str]], *, wal: dict[str, list[str]] | None = None) -> str:
    """A file as `influx_inspect export` writes it (cmd/influx_inspect/export): the export range, the DDL
    (CREATE DATABASE ... WITH NAME autogen), then per database and policy the context lines, the tsm
    section and the wal section; ns timestamps."""
    lines = ["# INFLUXDB EXPORT: 1677-09-21T00:12:43Z - 2262-04-11T23:47:16Z", "# DDL"]
    lines += [f"CREATE DATABASE {name} WITH NAME autogen" for name in databases]
    lines += ["# DML"]
    for name, data in databases.items():
        lines += [f"# CONTEXT-DATABASE:{name}", "# CONTEXT-RETENTION-POLICY:autogen", "# writing tsm data", *data]
        lines += ["# writing wal data", *(wal or {}).get(name, [])]
    return "\n".join(lines) + "\n"


def influx_import_file(database: str, data: list[str]) -> str:
    """The `influx -import` form, as its documentation shows it (a space after the colon, a blank line)."""
    return "\n".join([
        "# DDL", f"CREATE DATABASE {database}",
        f"CREATE RETENTION POLICY livetracking ON {database} DURATION 8h REPLICATION 1 DEFAULT", "",
        "# DML", f"# CONTEXT-DATABASE: {database}", "# CONTEXT-RETENTION-POLICY: livetracking", "", *data,
    ]) + "\n"  # fmt: skip


def samples(count: int, start: int = 0, device: str = "bike") -> list[str]:
    # Integer fields, as InfluxDB exports fields written as integers.
    return [
        f"samples,device={device} hr_bpm={120 + i % 50}i,pwr_w={200 + i % 300}i,cad_rpm={80 + i % 20}i "
        f"{BASE_NS + (start + i) * SECOND}"
        for i in range(count)
    ]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[TrackerProcess]:
    process = TrackerProcess(tmp_path / "data", tmp_path / "server.log")
    process.start()
    try:
        yield process
    finally:
        process.close()


def query(server: TrackerProcess, user: str, q: str) -> Any:
    url = f"{server.url}/query?" + urllib.parse.urlencode({"db": user, "q": q, "epoch": "ns"})
    request = urllib.request.Request(url)
    request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{PASSWORD}".encode()).decode())
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)


def rows(server: TrackerProcess, user: str) -> list[list[Any]]:
    result = query(server, user, 'SELECT hr_bpm, pwr_w, cad_rpm, device FROM samples')["results"][0]
    return result["series"][0]["values"] if "series" in result else []


def expected_rows(lines: list[str]) -> list[list[Any]]:
    out = []
    for line in lines:
        head, fields, stamp = line.split(" ")
        values = dict(kv.split("=") for kv in fields.split(","))
        out.append([int(stamp), *(float(values[k].rstrip("i")) for k in ("hr_bpm", "pwr_w", "cad_rpm")),
                    head.split("device=")[1]])  # fmt: skip
    return sorted(out)


def run_import(server: TrackerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tracker", "import", *args, "--data-dir", str(server.data_dir)],
        capture_output=True, text=True, timeout=120, env=clean_env(), check=False,
    )  # fmt: skip


@pytest.mark.parametrize("compressed", [False, True])
def test_an_influx_inspect_export_reads_back_identical_while_the_server_runs(
    server: TrackerProcess, tmp_path: Path, compressed: bool
) -> None:
    server.add_user("ann")
    tsm, wal = samples(300), samples(20, start=300)
    text = inspect_export({"ann": tsm}, wal={"ann": wal})
    path = tmp_path / ("export.lp.gz" if compressed else "export.lp")
    path.write_bytes(gzip.compress(text.encode()) if compressed else text.encode())

    result = run_import(server, "ann", str(path))

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # piped: no progress bar, nothing refused
    assert f"{path}: 320 lines, 320 stored, 0 refused" in result.stdout
    assert "imported 320 of 320 lines from 1 file(s)" in result.stdout
    assert rows(server, "ann") == expected_rows(tsm + wal)
    assert not list((server.data_dir / importer.PROGRESS_DIR).glob("*.json"))  # finished: nothing to resume

    again = run_import(server, "ann", str(path))  # merging: nothing twice
    assert again.returncode == 0, again.stderr
    assert rows(server, "ann") == expected_rows(tsm + wal)


def test_the_influx_import_form_and_plain_line_protocol(server: TrackerProcess, tmp_path: Path) -> None:
    server.add_user("bob")
    first, second = samples(50, device="phone"), samples(30, start=100, device="phone")
    (tmp_path / "import.txt").write_text(influx_import_file("bob", first))
    (tmp_path / "plain.lp").write_text("\n".join(second) + "\n")

    result = run_import(server, "bob", str(tmp_path / "import.txt"), str(tmp_path / "plain.lp"))

    assert result.returncode == 0, result.stderr
    assert "imported 80 of 80 lines from 2 file(s)" in result.stdout
    assert rows(server, "bob") == expected_rows(first + second)


def test_refused_lines_are_counted_and_named_by_their_line_in_the_file(server: TrackerProcess, tmp_path: Path) -> None:
    server.add_user("ann")
    good = samples(3)
    data = [good[0], "samples lat=95 " + str(BASE_NS), good[1], "weather temp=3 " + str(BASE_NS),
            "not line protocol", good[2]]  # fmt: skip
    text = inspect_export({"ann": data})
    path = tmp_path / "export.lp"
    path.write_text(text)
    line_of = {line: number for number, line in enumerate(text.splitlines(), start=1)}

    result = run_import(server, "ann", str(path))

    assert result.returncode == 0, result.stderr
    reported = result.stderr.splitlines()
    assert len(reported) == 3, result.stderr
    assert reported[0].startswith(f"{path}:{line_of[data[1]]}: ") and 'field "lat"' in reported[0]
    assert reported[1].startswith(f"{path}:{line_of[data[3]]}: ") and 'measurement "weather"' in reported[1]
    assert reported[2].startswith(f"{path}:{line_of[data[4]]}: ")
    assert f"{path}: 6 lines, 3 stored, 3 refused" in result.stdout
    assert rows(server, "ann") == expected_rows(good)


def test_an_interrupted_import_goes_on_from_its_last_committed_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    add_user(data_dir, "ann")
    lines = samples(100)
    path = tmp_path / "export.lp"
    path.write_text(inspect_export({"ann": lines}))
    # As an import stopped after committing the file's first 10 lines (7 header lines and 3 samples) leaves it.
    record = importer.progress_file(data_dir, path, "ann")
    importer.record_committed_line(record, 10)

    result = invoke(["import", "ann", str(path), "--data-dir", str(data_dir)])

    assert result.exit_code == 0, result.output
    assert f"{path} (resumed after line 10): 97 lines, 97 stored, 0 refused" in result.stdout
    assert not record.exists()


def test_by_database_imports_each_database_into_its_user_and_creates_users_only_when_asked(
    server: TrackerProcess, tmp_path: Path
) -> None:
    server.add_user("ann")
    ann, carl = samples(10), samples(5, device="watch")
    path = tmp_path / "all.lp"
    path.write_text(inspect_export({"ann": ann, "carl": carl}))

    without = run_import(server, "--by-database", str(path))
    assert without.returncode == 0, without.stderr
    assert "no user 'carl' (--create-users creates one)" in without.stderr
    assert f"{path}: 15 lines, 10 stored, 5 refused (ann: 10)" in without.stdout
    assert rows(server, "ann") == expected_rows(ann)

    created = run_import(server, "--by-database", "--create-users", str(path))
    assert created.returncode == 0, created.stderr
    assert "created user 'carl' with password " in created.stdout
    password = created.stdout.split("created user 'carl' with password ")[1].split()[0]
    server.cli("user", "passwd", "carl", "--password-stdin", stdin=PASSWORD + "\n")
    assert password
    assert rows(server, "carl") == expected_rows(carl)
    assert rows(server, "ann") == expected_rows(ann)


def test_an_unknown_user_is_one_line_before_anything_is_read(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    add_user(data_dir, "ann")
    path = tmp_path / "export.lp"
    path.write_text(inspect_export({"ann": samples(3)}))
    result = invoke(["import", "nobody", str(path), "--data-dir", str(data_dir)])
    assert result.exit_code == 1 and "unknown user 'nobody'" in result.stderr
    assert not (data_dir / importer.PROGRESS_DIR).exists()


def test_progress_bar_on_a_terminal_only(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    add_user(data_dir, "ann")
    path = tmp_path / "export.lp"
    path.write_text(inspect_export({"ann": samples(500)}))
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "tracker", "import", "ann", str(path), "--data-dir", str(data_dir)],
            stdout=subprocess.PIPE, stderr=terminal, env=clean_env(),
        )  # fmt: skip
        os.close(terminal)
        shown = b""
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the terminal's other side closed
                break
            if not chunk:
                break
            shown += chunk
        assert process.wait(timeout=60) == 0
    finally:
        os.close(controller)
    text = shown.decode()
    assert "\rexport.lp [" in text and "100%" in text and "lines/s" in text and " MB" in text
    assert "imported 500 of 500" in (process.stdout.read().decode() if process.stdout else "")
