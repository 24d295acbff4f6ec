"""`tracker import` on files in the forms influx_inspect export and influx -import write, read back
through /query of a real server that runs meanwhile."""

from __future__ import annotations

import base64
import gzip
import json
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli_helpers import add_user, invoke, run_on_terminal
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


def summary_line(what: str, stored: int, lines: int, refused: int, users: str = "") -> str:
    """An import's summary line for a file, with the placeholders `summary_lines` puts for its time and rate."""
    return f"{what}: {stored} of {lines} lines stored in T s (R lines/s), {refused} refused{users}"


def summary_lines(stdout: str) -> list[str]:
    """The import's output lines, each time and rate (which vary from run to run) replaced by T and R."""
    return [re.sub(r" in [0-9.]+ s \([0-9,]+ ", " in T s (R ", line) for line in stdout.splitlines()]


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
    assert summary_line(f"{path}", 320, 320, 0, " (ann: 320)") in summary_lines(result.stdout)
    assert "imported 1 file(s): 320 of 320 lines stored" in result.stdout
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
    assert "imported 2 file(s): 80 of 80 lines stored" in result.stdout
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
    assert summary_line(f"{path}", 3, 6, 3, " (ann: 3)") in summary_lines(result.stdout)
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
    assert summary_line(f"{path} (resumed after line 10)", 97, 97, 0, " (ann: 97)") in summary_lines(result.stdout)
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
    assert summary_line(f"{path}", 10, 15, 5, " (ann: 10)") in summary_lines(without.stdout)
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
    shown, stdout = run_on_terminal("import", "ann", str(path), "--data-dir", str(data_dir))
    assert "\rexport.lp [" in shown and "100%" in shown and "lines/s" in shown and " MB" in shown
    assert "imported 1 file(s): 500 of 500 lines stored" in stdout and "[" not in stdout
