"""GET /metrics: Prometheus text read back by prometheus_client's own parser, counters against what
the test sent, with one worker and with two, and who may read it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import AddUser, basic
from tests.test_workers import AUTH, fresh_session, running_group, slow, wait_for, write
from tracker.accounts import Accounts
from tracker.config import Settings
from tracker.group import Worker
from tracker.metrics import Publisher, Registry, ServerMetrics, merge, render

T0 = 1_700_000_000_000_000_000
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of the exposition, by name and sorted labels (the parser fails on bad text)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def lines(count: int, first: int) -> str:
    return "\n".join(f"samples,device=bike hr_bpm={first + i} {T0 + (first + i) * 10**9}" for i in range(count))


async def scrape(client: TestClient, headers: dict[str, str] | None = None) -> Samples:
    response = await client.get("/metrics", headers=headers)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return parse(await response.text())


def test_histogram_and_labels_render_as_prometheus_reads_them() -> None:
    registry = Registry()
    histogram = registry.histogram("h_seconds", "A histogram.", (0.001, 0.01), ("route",))
    for seconds in (0.001, 0.003, 0.003, 20.0):  # 0.001 is on a bound: le is inclusive
        histogram.observe(seconds, ("/write",))
    counter = registry.counter("c_total", 'Quotes " and \\ backslashes.', ("route",))
    counter.inc(('/a"b\\c\nd',), 2)
    samples = parse(render(registry.snapshot()))
    route = {"route": "/write"}
    assert value(samples, "h_seconds_bucket", **route, le="0.001") == 1
    assert value(samples, "h_seconds_bucket", **route, le="0.01") == 3
    assert value(samples, "h_seconds_bucket", **route, le="+Inf") == 4
    assert value(samples, "h_seconds_count", **route) == 4
    assert value(samples, "h_seconds_sum", **route) == pytest.approx(20.007)
    assert value(samples, "c_total", route='/a"b\\c\nd') == 2


def test_workers_snapshots_add_up_and_gauges_merge_as_they_say() -> None:
    def worker(requests: float, uptime: float, streams: float) -> dict:
        registry = Registry()
        registry.counter("r_total", "Requests.", ("code",)).inc(("204",), requests)
        registry.gauge("up_seconds", "Uptime.", merge="max").set(uptime)
        registry.gauge("streams", "Streams.").set(streams)
        registry.histogram("h", "H.", (1.0,)).observe(0.5)
        return registry.snapshot()

    samples = parse(render(merge([worker(3, 10.0, 2), worker(4, 12.5, 5)])))
    assert value(samples, "r_total", code="204") == 7
    assert value(samples, "up_seconds") == 12.5
    assert value(samples, "streams") == 7
    assert value(samples, "h_count") == 2
    assert value(samples, "h_bucket", le="1.0") == 2


async def test_counters_move_by_exactly_what_was_sent(client: TestClient, add_user: AddUser) -> None:
    await add_user("alice", "pw")
    auth = basic("alice", "pw")
    before = await scrape(client)
    writes, per_write = 7, 3
    for n in range(writes):
        response = await client.post("/write?db=alice", data=lines(per_write, n * per_write), headers=auth)
        assert response.status == 204, await response.text()
    bad = await client.post("/write?db=alice", data="samples hr_bpm=", headers=auth)
    assert bad.status == 400
    assert (await client.get("/no/such/page/secret-token-123")).status == 404
    assert (await client.get("/ping")).status == 204
    after = await scrape(client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("tracker_http_requests_total", route="/write", method="POST", code="204") == writes
    assert moved("tracker_http_requests_total", route="/write", method="POST", code="400") == 1
    assert moved("tracker_http_requests_total", route="unmatched", method="GET", code="404") == 1
    assert moved("tracker_http_requests_total", route="/ping", method="GET", code="204") == 1
    assert moved("tracker_samples_written_total") == writes * per_write
    assert moved("tracker_write_duration_seconds_count", route="/write") == writes  # the 400 is no write
    assert moved("tracker_write_duration_seconds_sum", route="/write") > 0
    commits = moved("tracker_sqlite_commit_duration_seconds_count")
    assert 1 <= commits <= writes  # group commit: at most one per write here, one at least
    assert value(after, "tracker_uptime_seconds") > 0
    assert value(after, "process_resident_memory_bytes") > 10_000_000  # a Python server is never smaller
    assert value(after, "tracker_workers") == 1
    # Bounded labels: no raw URL, user or database name ever becomes a label value.
    label_values = {v for (_, labels) in after for (_, v) in labels}
    assert not any("secret" in v or "alice" in v or "?" in v for v in label_values), label_values


async def test_a_route_with_a_parameter_is_counted_by_its_pattern(client: TestClient) -> None:
    await client.get("/watch/somebody")
    await client.get("/watch/someone-else")
    samples = await scrape(client)
    counted = {labels for (name, labels) in samples if name == "tracker_http_requests_total"}
    routes = {dict(labels)["route"] for labels in counted}
    assert "/watch/{user}" in routes
    assert not any("somebody" in r or "someone" in r for r in routes), routes
    assert sum(value(samples, "tracker_http_requests_total", **dict(labels)) for labels in counted
               if dict(labels)["route"] == "/watch/{user}") == 2  # fmt: skip


@pytest.mark.parametrize("settings", [{"trusted_proxies": ("127.0.0.1",)}], indirect=True)
async def test_by_default_only_this_machine_may_read(client: TestClient, settings: Settings) -> None:
    assert settings.metrics == "local"
    await scrape(client)  # the test client is on loopback
    await scrape(client, {"X-Forwarded-For": "127.0.0.1"})  # a client on this machine behind the proxy
    refused = await client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.7"})
    assert refused.status == 403
    assert "--metrics" in (await refused.json())["error"]


@pytest.mark.parametrize("settings", [{"trusted_proxies": ("127.0.0.1",), "metrics": "open"}], indirect=True)
async def test_open_metrics_answer_anyone(client: TestClient) -> None:
    await scrape(client, {"X-Forwarded-For": "203.0.113.7"})


@pytest.mark.parametrize("settings", [{"metrics": "off"}], indirect=True)
async def test_metrics_off_is_no_route(client: TestClient) -> None:
    assert (await client.get("/metrics")).status == 404


def test_the_setting_names_its_choices() -> None:
    with pytest.raises(ValueError, match="metrics must be local, token, open or off"):
        Settings(metrics="public").validate()
    with pytest.raises(ValueError, match="metrics token must be at least 16"):
        Settings(metrics="token", metrics_token="short").validate()


SCRAPE_TOKEN = "s3cret-scrape-token-0123"


@pytest.mark.parametrize(
    "settings", [{"trusted_proxies": ("127.0.0.1",), "metrics": "token", "metrics_token": SCRAPE_TOKEN}], indirect=True
)
async def test_token_metrics_answer_this_machine_and_the_token(client: TestClient) -> None:
    away = {"X-Forwarded-For": "203.0.113.7"}
    await scrape(client)  # this machine needs no token
    await scrape(client, {**away, "Authorization": f"Bearer {SCRAPE_TOKEN}"})
    for wrong in ("", f"Bearer {SCRAPE_TOKEN}x", f"Bearer {SCRAPE_TOKEN[:-1]}", f"Basic {SCRAPE_TOKEN}"):
        refused = await client.get("/metrics", headers={**away, "Authorization": wrong})
        assert refused.status == 403, wrong
        assert "TRACKER_METRICS_TOKEN" in (await refused.json())["error"]


@pytest.mark.parametrize("settings", [{"live_heartbeat_seconds": 0.1}], indirect=True)
async def test_open_streams_gauge_follows_the_streams(client: TestClient, add_user: AddUser, accounts: Accounts) -> None:
    await add_user("alice", "pw")
    await accounts.set_public("alice", True)
    streams = [await client.get("/api/watch/alice/events") for _ in range(3)]
    assert [s.status for s in streams] == [200] * 3
    assert value(await scrape(client), "tracker_live_streams") == 3
    for stream in streams:
        stream.close()

    async def none_open() -> bool:
        return value(await scrape(client), "tracker_live_streams") == 0

    await wait_for(none_open, "the streams' gauge back at 0")


async def scrape_url(session: aiohttp.ClientSession, url: str) -> Samples:
    async with session.get(f"{url}/metrics") as response:
        assert response.status == 200, await response.text()
        return parse(await response.text())


@slow
async def test_two_workers_answer_for_the_whole_server(tmp_path: Path) -> None:
    async with running_group(tmp_path) as group, fresh_session() as session:
        before = await scrape_url(session, group.url)
        writes, per_write = 40, 2
        statuses = await asyncio.gather(*(write(session, group.url, lines(per_write, n * per_write)) for n in range(writes)))
        assert statuses == [204] * writes

        def moved(now: Samples, name: str, **labels: str) -> float:
            return value(now, name, **labels) - value(before, name, **labels)

        async def whole_server_counted() -> bool:
            # Every scrape, whichever worker answers (a new connection each), holds both workers' numbers.
            for _ in range(4):
                now = await scrape_url(session, group.url)
                if (
                    moved(now, "tracker_http_requests_total", route="/write", method="POST", code="204") != writes
                    or moved(now, "tracker_samples_written_total") != writes * per_write
                    or moved(now, "tracker_write_duration_seconds_count", route="/write") != writes
                    or value(now, "tracker_workers") != 2
                ):
                    return False
            return True

        await wait_for(whole_server_counted, "every scrape counting both workers' writes")
        # Both workers took some of the writes (else this would test one worker twice).
        assert len(group.worker_pids()) == 2
        log = group.log()
        assert "worker 0 tracker.access" in log and "worker 1 tracker.access" in log


def test_a_restarted_worker_continues_its_predecessors_counts(tmp_path: Path) -> None:
    worker = Worker(tmp_path, index=1, count=2)
    worker.run_dir.mkdir()
    before = ServerMetrics(Registry())
    before.samples_written.inc(amount=41)
    before.write_seconds.observe(0.003, ("/write",))
    Publisher(before.registry, worker).publish(before.registry.snapshot())

    after = ServerMetrics(Registry())  # the same worker's place, started again
    Publisher(after.registry, worker).resume()
    after.samples_written.inc()
    samples = parse(render(after.registry.snapshot()))
    assert value(samples, "tracker_samples_written_total") == 42
    assert value(samples, "tracker_write_duration_seconds_bucket", route="/write", le="0.005") == 1
    # and worker 0, answering a scrape, reads worker 1's published numbers
    other = Publisher(Registry(), Worker(tmp_path, index=0, count=2)).others()
    assert value(parse(render(merge(other))), "tracker_samples_written_total") == 41
