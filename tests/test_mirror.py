"""--mirror: every committed sample copied to a time-series database through the journal's outbox.

The end-to-end tests run a real Tracker process and a real target (VictoriaMetrics, InfluxDB 1.x),
take the target away and bring it back, SIGKILL Tracker in between, and compare what the target holds
with what was acknowledged, value for value. The figures they print (lag, write latency with a target
that never answers) are reported, not asserted.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import statistics
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import CHEAP_HASHING, basic
from tests.influxd import ADMIN_PASSWORD, ADMIN_USER, InfluxdProcess, influxd_binary
from tests.tracker_process import HOST, PASSWORD, TrackerProcess, alive, children_of
from tests.victoria import VictoriaMetricsProcess
from tracker.accounts import Accounts
from tracker.app import create_app
from tracker.appkeys import MIRRORS
from tracker.cli import cli
from tracker.config import Settings
from tracker.mirror import MirrorTarget, encode_batch, encode_lines
from tracker.storage import AccountStore
from tracker.storage.journal import (
    DELETE_ENTRY, JournalPoint, append, checkpointed, encode_deletion, encode_points, last_id, mark_mirror_delivered, mirror_backlog, mirror_cursor, mirror_entries,
    open_journal, register_mirrors,
)  # fmt: skip

SECOND_NS = 1_000_000_000
MS_NS = 1_000_000


# --------------------------------------------------------------------------------------------------
# Settings and line protocol


def test_mirror_urls_by_kind() -> None:
    v1 = MirrorTarget.parse("http://me:secret@127.0.0.1:8086/write?db=fleet&precision=s")
    assert (v1.kind, v1.url, v1.key) == ("influxdb-v1", "http://127.0.0.1:8086/write?db=fleet", "http://127.0.0.1:8086/write?db=fleet")
    assert v1.headers == (("Authorization", "Basic bWU6c2VjcmV0"),)  # base64("me:secret")
    v2 = MirrorTarget.parse("https://:tok3n@influx.example/api/v2/write?org=club&bucket=rides")
    assert (v2.kind, v2.headers) == ("influxdb-v2", (("Authorization", "Token tok3n"),))
    assert "tok3n" not in v2.key
    vm = MirrorTarget.parse("http://vm:8428/influx/write")
    assert (vm.kind, vm.headers) == ("influxdb-v1", ())


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("ftp://host/write", "must be an http:// or https:// URL with a host"),
        ("http:///write", "must be an http:// or https:// URL with a host"),
        ("http://host/api/v1/import", "the path must end in /write"),
        ("http://host/api/v2/write?bucket=b", "needs bucket= and org="),
    ],
)
def test_a_bad_mirror_url_is_refused_with_the_rule(url: str, rule: str) -> None:
    with pytest.raises(ValueError, match="mirror") as refused:
        Settings(mirror=(url,)).validate()
    assert rule in str(refused.value)


def test_mirrors_from_the_environment_and_flags() -> None:
    settings = Settings.from_env({"TRACKER_MIRROR": "http://a:8428/write, http://u:p@b:8086/write?db=x"})
    assert [t.key for t in settings.mirror_targets] == ["http://a:8428/write", "http://b:8086/write?db=x"]



def test_serve_refuses_a_bad_mirror_naming_it(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["serve", "--data-dir", str(tmp_path), "--mirror", "http://a/write", "--mirror", "gopher://b/write"]
    )
    assert result.exit_code != 0
    assert "mirror 'gopher://b/write': must be an http:// or https:// URL with a host" in result.output


def test_mirror_timings_must_be_positive() -> None:
    with pytest.raises(ValueError, match="mirror max lag must be positive"):
        Settings(mirror_max_lag_seconds=0).validate()


def test_points_become_line_protocol_with_the_user_as_a_tag() -> None:
    points = [
        JournalPoint(1_700_000_000_123_456_789, (("device", "my phone"), ("trip", "a,b=c")),
                     {"lat": 51.5, "hr": 140, "moving": True, "note": 'say "hi" \\o/', "bad": float("nan")}),
        JournalPoint(5, (), {"bad": float("inf")}),  # nothing InfluxDB takes: left out
        JournalPoint(6, (("user", "mallory"),), {"x": -0.25}),  # the user tag is always the owner
    ]  # fmt: skip
    assert encode_lines("alice", [(p.time, p.tags, p.fields) for p in points]) == [
        'samples,device=my\\ phone,trip=a\\,b\\=c,user=alice lat=51.5,hr=140i,moving=true,note="say \\"hi\\" \\\\o/" '
        "1700000000123456789",
        "samples,user=alice x=-0.25 6",
    ]


def test_deletions_are_not_mirrored() -> None:
    write = encode_points([JournalPoint(7, (("device", "a"),), {"lat": 1.5})])
    deletion = encode_deletion(["device=a"], 0, 100, [])
    body, points = encode_batch([(1, "bob", "merge", write, 0), (2, "bob", DELETE_ENTRY, deletion, 0)])
    assert (body, points) == (b"samples,device=a,user=bob lat=1.5 7\n", 1)
    assert encode_batch([(2, "bob", DELETE_ENTRY, deletion, 0)]) == (b"", 0)


# --------------------------------------------------------------------------------------------------
# The outbox in the journal


def _entry(conn: Any, user: str, n: int) -> list[int]:
    return append(conn, "w", [(user, "merge", encode_points([JournalPoint(n, (), {"v": float(n)})]))])


def test_the_checkpoint_keeps_what_a_mirror_has_not_delivered(tmp_path: Path) -> None:
    conn = open_journal(tmp_path)
    _entry(conn, "alice", 0)  # before the mirror existed: not its business
    register_mirrors(conn, {"m": 3600 * SECOND_NS})
    assert mirror_cursor(conn, "m") == (1, 0)
    ids = [_entry(conn, "alice" if n % 2 else "bob", n)[0] for n in range(1, 6)]
    assert ids == [2, 3, 4, 5, 6]
    # All durable, keep time 0: without the mirror everything would go; entry 1 (delivered by definition) does.
    assert checkpointed(conn, "w", 6, keep_ns=0) == 1
    assert [row[0] for row in mirror_entries(conn, 1, 100)] == [2, 3, 4, 5, 6]
    assert mirror_backlog(conn, 1)[0] == 5
    mark_mirror_delivered(conn, "m", 4)
    assert checkpointed(conn, "w", 6, keep_ns=0) == 3  # 2, 3, 4
    assert [row[0] for row in mirror_entries(conn, 4, 100)] == [5, 6]
    mark_mirror_delivered(conn, "m", 3)  # a cursor never moves back
    assert mirror_cursor(conn, "m") == (4, 0)


def test_entries_not_durable_are_not_delivered(tmp_path: Path) -> None:
    conn = open_journal(tmp_path)
    register_mirrors(conn, {"m": 3600 * SECOND_NS})
    for n in range(3):
        _entry(conn, "alice", n)
    checkpointed(conn, "w", 2, keep_ns=3600 * SECOND_NS)  # the writer's entry 3 is not in durable files yet
    assert [row[0] for row in mirror_entries(conn, 0, 100)] == [1, 2]


def test_past_the_max_lag_entries_are_dropped_and_counted(tmp_path: Path) -> None:
    conn = open_journal(tmp_path)
    register_mirrors(conn, {"slow": 3600 * SECOND_NS, "gone": 1})
    for n in range(4):
        _entry(conn, "alice", n)
    time.sleep(0.01)
    assert checkpointed(conn, "w", 4, keep_ns=0) == 0  # "slow" still needs all four
    assert mirror_cursor(conn, "gone") == (4, 4)
    assert mirror_cursor(conn, "slow") == (0, 0)
    # A mirror no longer configured is forgotten: it holds nothing back.
    register_mirrors(conn, {"gone": 1})
    assert checkpointed(conn, "w", 4, keep_ns=0) == 4
    assert last_id(conn) == 4


def test_only_the_overdue_part_of_a_long_backlog_is_dropped(tmp_path: Path) -> None:
    conn = open_journal(tmp_path)
    register_mirrors(conn, {"m": 60 * SECOND_NS})
    for n in range(100):
        _entry(conn, "alice", n)
    now_ns = time.time_ns()
    # Entry i written (100 - i) s ago: 1..40 are more than 60 s old.
    conn.executemany("UPDATE entries SET at_ns = ? WHERE id = ?", [(now_ns - (100 - i) * SECOND_NS, i) for i in range(1, 101)])
    mark_mirror_delivered(conn, "m", 10)
    checkpointed(conn, "w", 100, keep_ns=3600 * SECOND_NS)
    assert mirror_cursor(conn, "m") == (40, 30)


def test_a_batch_is_bounded_in_bytes_but_never_empty(tmp_path: Path) -> None:
    conn = open_journal(tmp_path)
    register_mirrors(conn, {"m": 3600 * SECOND_NS})
    for n in range(10):
        _entry(conn, "alice", n)
    checkpointed(conn, "w", 10, keep_ns=3600 * SECOND_NS)
    size = len(encode_points([JournalPoint(0, (), {"v": 0.0})]))
    assert [row[0] for row in mirror_entries(conn, 0, 100, max_bytes=3 * size)] == [1, 2, 3]
    assert [row[0] for row in mirror_entries(conn, 0, 100, max_bytes=1)] == [1]
    assert [row[0] for row in mirror_entries(conn, 8, 100, max_bytes=100 * size)] == [9, 10]


# --------------------------------------------------------------------------------------------------
# End to end


class Writes:
    """Writes through Tracker's /write; remembers every acknowledged sample and each write's latency."""

    def __init__(self, tracker: TrackerProcess, users: list[str], first_ns: int) -> None:
        self.tracker = tracker
        self.users = users
        self.next_ns = first_ns
        self.acknowledged: dict[tuple[str, str, str, int], float] = {}  # (user, device, field, ns) -> value
        self.latencies: list[float] = []

    async def batches(self, count: int, points_per_batch: int = 3) -> None:
        async with aiohttp.ClientSession() as session:
            for b in range(count):
                user = self.users[b % len(self.users)]
                lines, fields = [], {}
                for p in range(points_per_batch):
                    t = self.next_ns
                    self.next_ns += 7 * MS_NS  # whole milliseconds: VictoriaMetrics keeps ms
                    device = "ab"[p % 2]
                    # Six decimals at most: VictoriaMetrics keeps 12 significant digits of a float.
                    values = {"lat": round(45 + (t % 10_007) / 1e4, 6), "lng": round(-(t % 997) / 7.0, 6), "hr_bpm": int(t // MS_NS % 200)}
                    lines.append(f"samples,device={device} lat={values['lat']!r},lng={values['lng']!r},hr_bpm={values['hr_bpm']}i {t}")
                    # As stored: Tracker keeps every vocabulary field as a float, integers too.
                    fields.update({(user, device, k, t): float(v) for k, v in values.items()})
                started = time.perf_counter()
                async with session.post(
                    f"{self.tracker.url}/write", params={"db": user}, data="\n".join(lines),
                    headers=basic(user, PASSWORD),
                ) as response:  # fmt: skip
                    assert response.status == 204, await response.text()
                self.latencies.append(time.perf_counter() - started)
                self.acknowledged.update(fields)


def victoria_holds(vm: VictoriaMetricsProcess) -> dict[tuple[str, str, str, int], float]:
    held: dict[tuple[str, str, str, int], float] = {}
    for series in vm.export():
        labels = series["metric"]
        field = labels["__name__"].removeprefix("samples_")
        for ms, value in zip(series["timestamps"], series["values"], strict=True):
            key = (labels["user"], labels.get("device", ""), field, ms * MS_NS)
            assert key not in held, f"two values for {key}"
            held[key] = value
    return held


async def wait_for(check: Any, timeout: float, what: str) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what} within {timeout}s")
        await asyncio.sleep(0.1)
    return time.monotonic() - started


def start_tracker(tmp_path: Path, mirror: str, *extra: str, workers: int = 1) -> TrackerProcess:
    tracker = TrackerProcess(
        tmp_path / "data", tmp_path / "tracker.log", workers=workers,
        serve_args=["--mirror", mirror, "--journal-checkpoint", "0.2", "--mirror-retry-max", "1", "--mirror-timeout", "2", *extra],
    )  # fmt: skip
    for user in ("alice", "bob"):
        tracker.add_user(user)
    tracker.start()
    return tracker


@pytest.mark.slow
async def test_victoria_metrics_gets_every_acknowledged_sample_across_its_restart_and_a_sigkill(tmp_path: Path) -> None:
    vm = VictoriaMetricsProcess(tmp_path / "vm")
    vm.start()
    tracker = start_tracker(tmp_path, vm.write_url)
    writes = Writes(tracker, ["alice", "bob"], (time.time_ns() // SECOND_NS - 3600) * SECOND_NS)
    try:
        await writes.batches(40)
        up_count = len(writes.acknowledged)
        await wait_for(lambda: len(victoria_holds(vm)) == up_count, 30, "the first samples did not arrive")
        vm.stop()
        await writes.batches(40)  # the target is down: acknowledged all the same
        tracker.kill()  # SIGKILL: the outbox and its cursor are all there is
        tracker.start()
        await writes.batches(40)
        vm.start()
        restarted = time.monotonic()
        await writes.batches(40)
        caught_up = await wait_for(
            lambda: len(victoria_holds(vm)) >= len(writes.acknowledged), 60, "the mirror did not catch up"
        )
        # With the target up: from one write's acknowledgement until the target has it.
        await writes.batches(1, points_per_batch=1)
        acked = time.monotonic()
        await wait_for(lambda: len(victoria_holds(vm)) >= len(writes.acknowledged), 30, "the last sample did not arrive")
        lag = time.monotonic() - acked
        held = victoria_holds(vm)
        assert held.keys() == writes.acknowledged.keys()
        differing = {k: (v, held[k]) for k, v in writes.acknowledged.items() if float(v) != held[k]}
        assert not differing, list(differing.items())[:5]
        print(f"\nvictoria-metrics: {len(held)} values; caught up {caught_up:.2f}s after its restart "
              f"({time.monotonic() - restarted:.2f}s ago); one sample's lag with the target up: {lag:.2f}s")  # fmt: skip
        assert "mirror http://" in tracker.log()  # the outage was logged
    finally:
        tracker.close()
        vm.stop()


class WithholdingRelay:
    """Between Tracker and the target: passes each batch on, then, once told to, withholds the target's
    answer, the way a connection lost after the target took the points would."""

    def __init__(self, target_url: str) -> None:
        self.target_url = target_url
        self.withhold = False
        self.withheld = asyncio.Event()  # a batch reached the target and its answer was kept back
        self.released = asyncio.Event()  # the answer may go (to a Tracker that is no longer there)
        self.app = web.Application()
        self.app.router.add_post("/{path:.*}", self.relay)
        self.runner = web.AppRunner(self.app)
        self.port = 0

    async def start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, HOST, 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def relay(self, request: web.Request) -> web.Response:
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{self.target_url}/{request.match_info['path']}", params=request.query,
                                    data=await request.read(), headers={"Content-Type": "text/plain"}) as answer:  # fmt: skip
                status, body = answer.status, await answer.read()
        if self.withhold and status // 100 == 2:
            self.withheld.set()
            await self.released.wait()
        return web.Response(status=status, body=body)


@pytest.mark.slow
async def test_a_batch_delivered_again_after_a_sigkill_is_kept_once(tmp_path: Path) -> None:
    """At least once: Tracker is SIGKILLed after the target took a batch but before the answer came
    back, so its cursor never moved and the batch goes out again; the target keeps each point once."""
    vm = VictoriaMetricsProcess(tmp_path / "vm")
    vm.start()
    relay = WithholdingRelay(vm.url)
    await relay.start()
    tracker = start_tracker(tmp_path, f"http://{HOST}:{relay.port}/write")
    writes = Writes(tracker, ["alice", "bob"], (time.time_ns() // SECOND_NS - 3600) * SECOND_NS)
    try:
        await writes.batches(10)
        await wait_for(lambda: len(victoria_holds(vm)) == len(writes.acknowledged), 30, "the first samples did not arrive")
        relay.withhold = True
        await writes.batches(10)
        await asyncio.wait_for(relay.withheld.wait(), 30)
        tracker.kill()
        relay.withhold = False
        relay.released.set()
        taken_before_restart = vm.rows_inserted()
        tracker.start()
        await wait_for(lambda: vm.rows_inserted() > taken_before_restart, 30, "nothing was delivered after the restart")
        await wait_for(lambda: len(victoria_holds(vm)) >= len(writes.acknowledged), 30, "the mirror did not catch up")
        await asyncio.sleep(0.5)  # anything still to come, comes
        redelivered = vm.rows_inserted() - len(writes.acknowledged)
        assert redelivered > 0, "no point was sent twice: the test did not test redelivery"
        held = victoria_holds(vm)  # raises on two values for one point
        assert held == writes.acknowledged
        print(f"\nvictoria-metrics: {len(held)} values kept once, {redelivered:.0f} of them were delivered twice")
    finally:
        tracker.close()
        relay.released.set()
        await relay.runner.cleanup()
        vm.stop()


@pytest.mark.slow
async def test_the_influxdb_v2_write_path_reaches_a_target_that_speaks_it(tmp_path: Path) -> None:
    """An /api/v2/write mirror (org, bucket, a token) against VictoriaMetrics' own /api/v2/write.
    Debian carries no InfluxDB 2.x; this proves the URL, the path and the request a v2 target gets."""
    vm = VictoriaMetricsProcess(tmp_path / "vm")
    vm.start()
    tracker = start_tracker(tmp_path, f"http://:secret-token@{HOST}:{vm.port}/api/v2/write?org=club&bucket=fleet")
    writes = Writes(tracker, ["alice", "bob"], (time.time_ns() // SECOND_NS - 3600) * SECOND_NS)
    try:
        await writes.batches(10)
        await wait_for(lambda: len(victoria_holds(vm)) >= len(writes.acknowledged), 30, "the samples did not arrive")
        assert victoria_holds(vm) == writes.acknowledged
    finally:
        tracker.close()
        vm.stop()


@pytest.mark.slow
async def test_the_encoder_process_ends_with_a_sigkilled_server(tmp_path: Path) -> None:
    """Batches are encoded in a process of the server's own; a SIGKILL of the server runs no shutdown,
    and that process must not outlive it (a restart would start another each time)."""
    vm = VictoriaMetricsProcess(tmp_path / "vm")
    vm.start()
    tracker = start_tracker(tmp_path, vm.write_url)
    try:
        writes = Writes(tracker, ["alice"], (time.time_ns() // SECOND_NS - 3600) * SECOND_NS)
        await writes.batches(3)
        await wait_for(lambda: len(victoria_holds(vm)) == len(writes.acknowledged), 30, "the samples did not arrive")
        assert tracker.process is not None
        helpers = children_of(tracker.process.pid)
        assert helpers, "no encoder process: the batches were encoded in the server"
        tracker.kill(workers_too=False)
        await wait_for(lambda: not any(alive(pid) for pid in helpers), 10, "the encoder process outlived the server")
    finally:
        tracker.close()
        vm.stop()


@pytest.mark.slow
async def test_one_worker_of_a_group_delivers(tmp_path: Path) -> None:
    """With two workers every sample reaches the target once: the target counts the rows it took in."""
    vm = VictoriaMetricsProcess(tmp_path / "vm")
    vm.start()
    tracker = start_tracker(tmp_path, vm.write_url, workers=2)
    writes = Writes(tracker, ["alice", "bob"], (time.time_ns() // SECOND_NS - 3600) * SECOND_NS)
    try:
        await writes.batches(30)
        await wait_for(lambda: len(victoria_holds(vm)) == len(writes.acknowledged), 30, "the samples did not arrive")
        await asyncio.sleep(1.0)  # a second deliverer, if there were one, would have sent them by now too
        assert vm.rows_inserted() == len(writes.acknowledged)  # one row per field value, each sent once
    finally:
        tracker.close()
        vm.stop()


def influx_holds(influxd: InfluxdProcess, db: str) -> dict[tuple[str, str, str, int], float | int]:
    status, body = influxd.request("SELECT * FROM samples GROUP BY *", db=db, epoch="ns")
    assert status == 200, body
    held: dict[tuple[str, str, str, int], float | int] = {}
    for series in body["results"][0].get("series", []):
        tags = series.get("tags", {})
        columns = series["columns"]
        for row in series["values"]:
            for column, value in zip(columns[1:], row[1:]):
                if value is not None:
                    held[(tags["user"], tags.get("device", ""), column, row[0])] = value
    return held


@pytest.mark.slow
async def test_influxdb_gets_every_acknowledged_sample_across_a_stop_a_hang_and_a_sigkill(tmp_path: Path) -> None:
    influxd = InfluxdProcess(tmp_path / "influxd", influxd_binary())
    influxd.start()
    influxd.create_database("fleet")
    mirror = f"http://{ADMIN_USER}:{ADMIN_PASSWORD}@{HOST}:{influxd.port}/write?db=fleet"
    tracker = start_tracker(tmp_path, mirror)
    writes = Writes(tracker, ["alice", "bob"], (time.time_ns() // SECOND_NS - 3600) * SECOND_NS)
    hung = False
    try:
        await writes.batches(30)
        influxd.close()  # stopped: connections refused
        await writes.batches(30)
        tracker.kill()  # SIGKILL while the target is away
        tracker.start()
        await writes.batches(30)
        influxd.start()  # the same data folder and port
        restarted = time.monotonic()
        await writes.batches(20)
        assert influxd.process is not None
        os.kill(influxd.process.pid, signal.SIGSTOP)  # hung: requests time out
        hung = True
        await writes.batches(20)
        os.kill(influxd.process.pid, signal.SIGCONT)
        hung = False
        caught_up = await wait_for(
            lambda: len(influx_holds(influxd, "fleet")) >= len(writes.acknowledged), 60, "the mirror did not catch up"
        )
        # With the target up: from one write's acknowledgement until the target has it.
        await writes.batches(1, points_per_batch=1)
        acked = time.monotonic()
        await wait_for(lambda: len(influx_holds(influxd, "fleet")) >= len(writes.acknowledged), 30, "the last sample did not arrive")
        lag = time.monotonic() - acked
        held = influx_holds(influxd, "fleet")
        # Exactly as stored: the same values, every field a float (as Tracker keeps them, hr_bpm=140i too).
        assert held == writes.acknowledged
        field_keys = influxd.query("SHOW FIELD KEYS FROM samples", db="fleet")["results"][0]["series"][0]["values"]
        assert sorted(field_keys) == [["hr_bpm", "float"], ["lat", "float"], ["lng", "float"]]
        print(f"\ninfluxd: {len(held)} values, caught up {caught_up:.2f}s after the hang "
              f"({time.monotonic() - restarted:.2f}s since its restart); one sample's lag with the target up: {lag:.2f}s")  # fmt: skip
    finally:
        if hung and influxd.process is not None:
            os.kill(influxd.process.pid, signal.SIGCONT)
        tracker.close()
        influxd.close()


@pytest.mark.slow
async def test_a_target_that_never_answers_does_not_slow_writes(tmp_path: Path) -> None:
    """Acknowledged-write latency with no mirror and with one whose target takes connections and never
    answers. Reported, not asserted: timing on a shared machine."""
    blackhole = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blackhole.bind((HOST, 0))
    blackhole.listen(1)
    figures = {}
    try:
        for name, args in (("no mirror", []), ("blackholed mirror", ["--mirror", f"http://{HOST}:{blackhole.getsockname()[1]}/write"])):
            tracker = TrackerProcess(tmp_path / name / "data", tmp_path / name / "tracker.log", serve_args=args)
            tracker.add_user("alice")
            tracker.start()
            try:
                writes = Writes(tracker, ["alice"], (time.time_ns() // SECOND_NS - 3600) * SECOND_NS)
                await writes.batches(20)  # warm up
                writes.latencies.clear()
                await writes.batches(300, points_per_batch=1)
                ordered = sorted(writes.latencies)
                figures[name] = (statistics.median(ordered) * 1e3, ordered[int(len(ordered) * 0.99)] * 1e3)
            finally:
                tracker.close()
    finally:
        blackhole.close()
    print("\n" + "; ".join(f"{name}: median {p50:.2f} ms, p99 {p99:.2f} ms per acknowledged write" for name, (p50, p99) in figures.items()))


# --------------------------------------------------------------------------------------------------
# The state the metrics endpoint reads


class Target:
    """A write endpoint that answers 503 while `up` is False, and keeps the bodies it takes."""

    def __init__(self) -> None:
        self.up = False
        self.bodies: list[str] = []
        self.app = web.Application()
        self.app.router.add_post("/write", self.write)

    async def write(self, request: web.Request) -> web.Response:
        if not self.up:
            return web.Response(status=503, text="down for maintenance")
        self.bodies.append(await request.text())
        return web.Response(status=204)

    def lines(self) -> list[str]:
        return [line for body in self.bodies for line in body.splitlines()]


async def serve_with_mirror(aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path, target: Target, **settings: Any) -> Any:
    server = await aiohttp_server(target.app)
    config = Settings(
        data_dir=tmp_path / "data", mirror=(f"http://{HOST}:{server.port}/write?db=fleet",),
        journal_checkpoint_seconds=0.1, mirror_retry_max_seconds=0.4, **settings,
    )  # fmt: skip
    config.data_dir.mkdir(parents=True)
    store = await AccountStore.open(config.data_dir)
    await Accounts(store, password_context=CHEAP_HASHING).add_user("alice", PASSWORD)
    await store.close()
    return await aiohttp_client(create_app(config, password_context=CHEAP_HASHING))


async def write_lat(client: Any, values_and_times: list[tuple[float, int]]) -> None:
    for value, t in values_and_times:
        response = await client.post("/write?db=alice", data=f"samples lat={value!r} {t}", headers=basic("alice", PASSWORD))
        assert response.status == 204, await response.text()


async def scrape_metrics(client: Any) -> dict[tuple[str, ...], float]:
    """GET /metrics read by Prometheus' own parser: each sample by its name and label values."""
    response = await client.get("/metrics")
    assert response.status == 200, await response.text()
    return {
        (sample.name, *sample.labels.values()): sample.value
        for family in text_string_to_metric_families(await response.text())
        for sample in family.samples
    }


async def test_the_state_shows_an_outage_and_its_end(aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path) -> None:
    """A target that answers 503 until told otherwise: the state shows the backlog, the lag and the
    error; then everything arrives, in commit order, and the state is clear again."""
    target = Target()
    client = await serve_with_mirror(aiohttp_client, aiohttp_server, tmp_path, target)
    first_ns = (time.time_ns() // SECOND_NS - 60) * SECOND_NS
    await write_lat(client, [(n + 0.5, first_ns + n * SECOND_NS) for n in range(5)])
    [state] = client.app[MIRRORS].states()
    await wait_for(lambda: state.last_error is not None and state.queue_depth == 5, 10, "no error and backlog shown")
    assert state.last_error == "HTTP 503: down for maintenance"
    assert state.lag_seconds > 0 and state.delivered_points == 0 and state.delivering
    mirror = state.target
    down = await scrape_metrics(client)
    assert down[("tracker_mirror_queue_entries", mirror)] == 5
    assert 0 < down[("tracker_mirror_lag_seconds", mirror)] < 120  # the oldest entry is seconds old
    assert down[("tracker_mirror_last_error_info", mirror, "HTTP 503: down for maintenance")] == 1
    assert down[("tracker_mirror_delivered_points_total", mirror)] == 0
    assert ("tracker_mirror_last_delivery_timestamp_seconds", mirror) not in down
    target.up = True
    await wait_for(lambda: state.delivered_points == 5 and state.queue_depth == 0, 10, "the backlog was not delivered")
    assert target.lines() == [f"samples,user=alice lat={n}.5 {first_ns + n * SECOND_NS}" for n in range(5)]
    assert state.lag_seconds == 0 and state.alarm is None and state.dropped_entries == 0
    up = await scrape_metrics(client)
    assert up[("tracker_mirror_queue_entries", mirror)] == 0 and up[("tracker_mirror_lag_seconds", mirror)] == 0
    assert up[("tracker_mirror_delivered_points_total", mirror)] == 5
    assert abs(up[("tracker_mirror_last_delivery_timestamp_seconds", mirror)] - time.time()) < 60
    assert up[("tracker_mirror_alarm", mirror)] == 0


async def test_past_the_max_lag_the_alarm_goes_up_and_delivery_goes_on(
    aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path
) -> None:
    target = Target()
    client = await serve_with_mirror(aiohttp_client, aiohttp_server, tmp_path, target, mirror_max_lag_seconds=0.5)
    first_ns = (time.time_ns() // SECOND_NS - 60) * SECOND_NS
    await write_lat(client, [(1.25, first_ns), (2.25, first_ns + SECOND_NS), (3.25, first_ns + 2 * SECOND_NS)])
    [state] = client.app[MIRRORS].states()
    await wait_for(lambda: state.dropped_entries == 3, 10, "the overdue entries were not dropped")
    assert state.alarm is not None and "3 journal entries were dropped undelivered" in state.alarm
    alarmed = await scrape_metrics(client)
    assert alarmed[("tracker_mirror_alarm", state.target)] == 1
    assert alarmed[("tracker_mirror_dropped_entries", state.target)] == 3
    target.up = True
    await write_lat(client, [(4.25, first_ns + 3 * SECOND_NS)])
    await wait_for(lambda: state.delivered_points == 1 and state.queue_depth == 0, 10, "the new sample was not delivered")
    assert target.lines() == [f"samples,user=alice lat=4.25 {first_ns + 3 * SECOND_NS}"]
    await wait_for(lambda: state.alarm is None, 5, "the alarm stayed up after catching up")
    # Tracker's own store kept everything.
    response = await client.get("/query", params={"db": "alice", "q": "SELECT count(lat) FROM samples"}, headers=basic("alice", PASSWORD))
    assert (await response.json())["results"][0]["series"][0]["values"][0][1] == 4
