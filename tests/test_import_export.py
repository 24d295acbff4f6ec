"""Importing GPX, TCX and FIT files into a user's samples and exporting them again, over HTTP (a real
server: POST /api/import, GET /api/export, checked through /query) and from the CLI (tracker import,
tracker export)."""

from __future__ import annotations

import gzip
import time
from pathlib import Path
from typing import Any

import aiohttp
import gpxpy
import jsonschema
import pytest
from aiohttp.test_utils import TestClient
from garmin_fit_sdk import Decoder, Stream

from tests.cli_helpers import add_user as cli_add_user
from tests.cli_helpers import invoke, run_on_terminal
from tests.conftest import AddUser, basic, stored
from tests.sse import sign_in
from tests.test_formats import GARMIN_CONNECT_GPX, GARMIN_CONNECT_TCX, fit_tool_activity
from tracker import formats
from tracker.accounts import Accounts
from tracker.config import Settings
from tracker.formats import Track

PASSWORD = "password-1"
SECOND = 10**9
ALICE = basic("alice", PASSWORD)


async def count(client: TestClient, user: str, field: str = "hr_bpm") -> int:
    response = await client.get(
        "/query", params={"db": user, "q": f"SELECT count({field}) FROM samples"}, headers=basic(user, PASSWORD)
    )
    body = await response.json()
    series = body["results"][0].get("series")
    return series[0]["values"][0][1] if series else 0


async def import_body(client: TestClient, data: bytes, filename: str, headers: dict[str, str] = ALICE) -> Any:
    return await client.post("/api/import", data=data, headers={**headers, "X-Filename": filename})


async def test_import_gpx_is_stored_and_twice_changes_nothing(client: TestClient, add_user: AddUser, settings: Settings) -> None:
    await add_user("alice", PASSWORD)
    response = await import_body(client, GARMIN_CONNECT_GPX.encode(), "ride.gpx")
    assert response.status == 200, await response.text()
    summary = await response.json()
    assert summary["format"] == "gpx" and summary["points"] == 2 and summary["stored"] == 2
    assert summary["start"] == "2026-11-30T07:00:00Z" and summary["end"] == "2026-11-30T07:00:01Z"
    assert summary["unmapped"] == {"depth": 1}
    assert summary["tracks"][0]["device"] == "garmin-edge-530" and summary["tracks"][0]["sport"] == "cycling"
    document = await (await client.get("/api/v1/openapi.json")).json()
    jsonschema.validate(summary, document["components"]["schemas"]["ImportSummary"])
    assert {"/api/import", "/api/export"} <= set(document["paths"])
    response = await client.get(
        "/query",
        params={"db": "alice", "q": "SELECT hr_bpm, pwr_w, lat FROM samples WHERE device = 'garmin-edge-530' AND sport = 'cycling'", "epoch": "s"},
        headers=ALICE,
    )
    values = (await response.json())["results"][0]["series"][0]["values"]
    assert values == [[1796022000, 131, 212, 46.051234], [1796022001, 133, 0, 46.051299]]
    before = await stored(settings, "alice")
    again = await import_body(client, GARMIN_CONNECT_GPX.encode(), "ride.gpx")
    assert again.status == 200 and (await again.json())["stored"] == 2  # written again: merged, same samples
    assert await stored(settings, "alice") == before


async def test_import_fit_as_multipart_with_the_browser_session(client: TestClient, add_user: AddUser) -> None:
    await add_user("alice", PASSWORD)
    csrf = await sign_in(client, "alice", PASSWORD)
    form = aiohttp.FormData()
    form.add_field("file", fit_tool_activity(30), filename="ride.fit", content_type="application/octet-stream")
    refused = await client.post("/api/import", data=form)
    assert refused.status == 403  # a session's change needs the CSRF token
    form = aiohttp.FormData()
    form.add_field("file", fit_tool_activity(30), filename="ride.fit", content_type="application/octet-stream")
    response = await client.post("/api/import", data=form, headers={"X-CSRF-Token": csrf})
    assert response.status == 200, await response.text()
    assert (await response.json())["stored"] == 30
    assert await count(client, "alice") == 30


async def test_import_refusals(client: TestClient, add_user: AddUser, accounts: Accounts) -> None:
    await add_user("alice", PASSWORD)
    await add_user("bob", PASSWORD)
    broken = await import_body(client, fit_tool_activity()[:20], "ride.fit")
    assert broken.status == 400
    assert (await broken.json())["error"].startswith("ride.fit: FIT: ")
    broken = await import_body(client, b"<gpx><trk><trkseg><trkpt lat='1'", "bad.gpx")
    assert broken.status == 400 and (await broken.json())["error"].startswith("bad.gpx: GPX: ")
    unknown = await import_body(client, b"hello", "hello.txt")
    assert unknown.status == 400 and "hello.txt: not a GPX, TCX or FIT file" in (await unknown.json())["error"]
    await accounts.add_share("alice", "bob")  # a share reads, never writes
    other = await client.post("/api/import?user=alice", data=GARMIN_CONNECT_GPX.encode(), headers=basic("bob", PASSWORD))
    assert other.status == 403 and (await other.json())["error"].startswith("user: ")
    anonymous = await client.post("/api/import", data=GARMIN_CONNECT_GPX.encode())
    assert anonymous.status == 401
    assert await count(client, "alice") == 0


@pytest.mark.parametrize("settings", [{"max_body_size": 1000}], indirect=True)
async def test_import_size_is_bounded(client: TestClient, add_user: AddUser) -> None:
    await add_user("alice", PASSWORD)
    response = await import_body(client, GARMIN_CONNECT_GPX.encode() + b" " * 1000, "ride.gpx")
    assert response.status == 413


async def test_export_formats_and_readers(
    client: TestClient, add_user: AddUser, accounts: Accounts, settings: Settings
) -> None:
    await add_user("alice", PASSWORD)
    await add_user("bob", PASSWORD)
    await add_user("carol", PASSWORD)
    await accounts.add_share("alice", "bob")
    assert (await import_body(client, GARMIN_CONNECT_TCX.encode(), "ride.tcx")).status == 200
    params = {"user": "alice", "start": "2026-11-30T00:00:00Z", "end": "2026-12-01T00:00:00Z"}
    response = await client.get("/api/export", params={**params, "format": "gpx"}, headers=basic("bob", PASSWORD))
    assert response.status == 200, await response.text()
    assert response.headers["Content-Disposition"] == 'attachment; filename="alice-2026-11-30T07-00-00Z.gpx"'
    points = gpxpy.parse(await response.text()).tracks[0].segments[0].points
    assert [(p.latitude, p.longitude) for p in points] == [(46.05123, 14.506001)]  # GPX: positions only
    response = await client.get("/api/export", params={**params, "format": "fit", "sport": "cycling"}, headers=ALICE)
    exported = await response.read()
    messages, errors = Decoder(Stream.from_byte_array(bytearray(exported))).read()
    assert errors == [] and [m["heart_rate"] for m in messages["record_mesgs"]] == [131, 133]
    before = await stored(settings, "alice")
    assert (await (await import_body(client, exported, "export.fit")).json())["stored"] == 2
    after = await stored(settings, "alice")  # the same track (device, sport) and times: merged, not doubled
    assert [(s.time, s.tags) for s in after] == [(s.time, s.tags) for s in before]
    response = await client.get("/api/export", params={**params, "format": "csv"}, headers=ALICE)
    assert (await response.text()).splitlines()[0] == "time,time_ns,dist_km,lat,lng,spd_kph,alt_m,hr_bpm,cad_rpm,pwr_w"
    for query, status, message in [
        ({**params, "format": "gpx"}, 403, "user: carol may not read the samples of alice"),
    ]:
        answer = await client.get("/api/export", params=query, headers=basic("carol", PASSWORD))
        assert answer.status == status and (await answer.json())["error"] == message
    for query, message in [
        ({**params, "format": "kml"}, "format: must be one of gpx, tcx, fit, csv, geojson, got 'kml'"),
        ({**params, "format": "gpx", "start": "yesterday"}, "start: 'yesterday' is not a time"),
        ({**params, "format": "gpx", "end": "2026-01-01T00:00:00Z"}, "end: must be after start"),
    ]:
        answer = await client.get("/api/export", params=query, headers=ALICE)
        assert answer.status == 400 and (await answer.json())["error"].startswith(message)
    empty = await client.get("/api/export", params={**params, "format": "gpx", "device": "other"}, headers=ALICE)
    assert empty.status == 404


# ----- the CLI


def test_cli_import_and_export(data_dir: Path, tmp_path: Path) -> None:
    cli_add_user(data_dir, "alice")
    fit_file = tmp_path / "ride.fit"
    fit_file.write_bytes(fit_tool_activity(10))
    result = invoke(["import", "alice", str(fit_file), "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    assert "ride.fit (FIT): 10 of 10 points stored" in result.output
    assert "(device=garmin-edge_530, sport=cycling): 10 points, 2026-11-30T00:53:20Z to 2026-11-30T00:53:29Z" in result.output
    gzipped = tmp_path / "ride.fit.gz"  # as Strava's bulk export has them: the same file again
    gzipped.write_bytes(gzip.compress(fit_file.read_bytes()))
    again = invoke(["import", "alice", str(gzipped), "--data-dir", str(data_dir)])
    assert again.exit_code == 0, again.output
    assert "ride.fit.gz (FIT): 10 of 10 points stored" in again.output
    out = tmp_path / "out.gpx"
    result = invoke(["export", "alice", "--format", "gpx", "--device", "garmin-edge_530", "-o", str(out), "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    points = gpxpy.parse(out.read_text()).tracks[0].segments[0].points
    assert len(points) == 10  # imported twice, stored once
    assert int(points[3].time.timestamp()) == 1_796_000_003
    csv_out = invoke(["export", "alice", "--format", "csv", "--start", "2026-11-30T00:53:25Z", "--data-dir", str(data_dir)])
    assert csv_out.exit_code == 0 and len(csv_out.output.splitlines()) == 1 + 5


def test_cli_broken_file_is_one_line(data_dir: Path, tmp_path: Path) -> None:
    cli_add_user(data_dir, "alice")
    broken = tmp_path / "ride.gpx"
    broken.write_text("<?xml version='1.0'?><gpx><trk><trkseg><trkpt lat='x'")
    result = invoke(["import", "alice", str(broken), "--data-dir", str(data_dir)])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ride.gpx: GPX: not readable") and result.output.count("\n") == 1


# ----- speed: a 12-hour ride at 1 Hz


def ride(points: int) -> Track:
    start = (time.time_ns() // SECOND - points - 3600) * SECOND
    return Track(name="Long ride", sport="cycling", device="edge", points=[
        (start + i * SECOND, {"lat": 46.0 + i * 1e-5, "lng": 14.0 + i * 1e-5, "alt_m": 300.0 + i % 50,
                              "hr_bpm": 120.0 + i % 40, "cad_rpm": 85.0, "pwr_w": 200.0 + i % 100, "spd_kph": 30.0})
        for i in range(points)
    ])  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["fit", "gpx", "tcx"])
async def test_import_rate_of_a_12_hour_ride(client: TestClient, add_user: AddUser, fmt: str) -> None:
    """The rate is printed beside /write's for the same samples as line protocol (run with -s)."""
    await add_user("alice", PASSWORD)
    await add_user("bob", PASSWORD)
    track = ride(43_200)
    data = formats.write(fmt, track)
    started = time.perf_counter()
    response = await import_body(client, data, f"long.{fmt}")
    seconds = time.perf_counter() - started
    assert response.status == 200, await response.text()
    assert (await response.json())["stored"] == 43_200
    assert await count(client, "alice") == 43_200
    lines = [
        "samples,device=edge,sport=cycling " + ",".join(f"{k}={v!r}" for k, v in fields.items()) + f" {time_ns}"
        for time_ns, fields in track.points
    ]
    write_seconds = 0.0
    for first in range(0, len(lines), 10_000):  # /write's usual batches
        body = "\n".join(lines[first : first + 10_000]).encode()
        started = time.perf_counter()
        written = await client.post("/write?db=bob", data=body, headers=basic("bob", PASSWORD))
        write_seconds += time.perf_counter() - started
        assert written.status == 204, await written.text()
    print(
        f"\nimport of a 43,200-point {fmt.upper()} file ({len(data) / 1e6:.1f} MB): {seconds:.2f} s, "
        f"{43_200 / seconds:,.0f} points/s; /write of the same samples: {43_200 / write_seconds:,.0f} points/s"
    )


def test_cli_progress_bar_on_a_terminal_only(data_dir: Path, tmp_path: Path) -> None:
    cli_add_user(data_dir, "alice")
    fit_file = tmp_path / "ride.fit"
    fit_file.write_bytes(fit_tool_activity(50))
    shown, stdout = run_on_terminal("import", "alice", str(fit_file), "--data-dir", str(data_dir))
    assert "\rride.fit [" in shown and "100%" in shown and "50/50 points" in shown and "points/s" in shown
    assert "50 of 50 points stored" in stdout and "[" not in stdout
    piped = invoke(["import", "alice", str(fit_file), "--data-dir", str(data_dir)])  # not a terminal: no bar
    assert "[" not in piped.output.splitlines()[0] and "100%" not in piped.output


def test_cli_import_of_nothing_kept_is_status_1(data_dir: Path, tmp_path: Path) -> None:
    cli_add_user(data_dir, "alice")
    assert invoke(["user", "retention", "alice", "1h", "--data-dir", str(data_dir)]).exit_code == 0
    old = tmp_path / "old.gpx"
    old.write_text(GARMIN_CONNECT_GPX)  # 2026-11-30: beyond an hour's retention
    result = invoke(["import", "alice", str(old), "--data-dir", str(data_dir)])
    assert result.exit_code == 1, result.output
    assert "old.gpx (GPX): 0 of 2 points stored" in result.output and "not stored: 2 points:" in result.output


def test_cli_export_of_nothing_is_one_line(data_dir: Path) -> None:
    cli_add_user(data_dir, "alice")
    result = invoke(["export", "alice", "--format", "gpx", "--data-dir", str(data_dir)])
    assert result.exit_code == 1 and result.output == "Error: no samples in the range (start, end, device, sport)\n"
    result = invoke(["export", "alice", "--format", "gpx", "--start", "soon", "--data-dir", str(data_dir)])
    assert result.exit_code == 2 and "start: 'soon' is not a time" in result.output


async def test_import_held_to_retention(client: TestClient, add_user: AddUser, accounts: Accounts) -> None:
    await add_user("alice", PASSWORD)
    await accounts.set_retention("alice", 3600 * SECOND)
    recent = GARMIN_CONNECT_GPX.replace("2026-11-30T07:00:01Z", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60)))
    summary = await (await import_body(client, recent.encode(), "ride.gpx")).json()
    assert summary["points"] == 2 and summary["stored"] == 1
    [(reason, refused)] = summary["refused"].items()
    assert refused == 1 and "retention" in reason
    assert await count(client, "alice") == 1
