"""Fairness: one user's hostile queries never make the server slow or unusable for another user.

A real `tracker serve` runs with a short query timeout. One user ("mallory") stores a long tag value
and about 2,000 samples, then sends the queries a security review found to freeze the server, in a
loop from several connections: a catastrophic regex on the long tag, GROUP BY time buckets of 10 ms
and 100 ms with fill over two hours (per series, too), a huge LIMIT and a deeply nested condition.
Meanwhile another user ("alice") pings, writes and runs a small query in a loop, and every one of her
requests must be answered within OTHER_USER_BOUND seconds. Mallory's queries must each end by the
query timeout (plus a little for the answer to travel) with an answer in InfluxDB's form.

The attack runs in a process of its own, so reading mallory's answers never delays the timing of
alice's requests. The latencies are printed (pytest -s) for the closing note.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import time
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import basic
from tests.tracker_process import PASSWORD, TrackerProcess

QUERY_TIMEOUT = 3.0  # the server's --query-timeout for this test
ATTACK_SECONDS = 12.0
ATTACK_CONNECTIONS = 4
# Every request of the other user is answered within this; the issue asks for well under a second.
OTHER_USER_BOUND = 0.75
# A hostile query ends by the timeout, plus this for its last bytes to arrive at a busy client.
ANSWER_GRACE = 2.0
S = 10**9

HOSTILE_QUERIES = [
    # ReDoS: Python's backtracking `re` takes seconds per extra `a`; RE2 is linear.
    "SELECT hr_bpm FROM samples WHERE device =~ /(a+)+$/",
    "SELECT hr_bpm FROM samples WHERE device =~ /^(a|aa)+$/ OR device =~ /(a*)*b/",
    "SHOW TAG VALUES WITH KEY =~ /(d+)+x/ WHERE device =~ /(a+)+$/",
    # Tiny buckets with fill over two hours: 720,000 buckets; per series, 72,000 each.
    "SELECT count(hr_bpm) FROM samples WHERE time > now() - 2h GROUP BY time(10ms) fill(0)",
    "SELECT count(hr_bpm) FROM samples WHERE time > now() - 2h GROUP BY time(100ms),* fill(0)",
    "SELECT mean(hr_bpm) FROM samples WHERE time > now() - 2h GROUP BY time(10ms) fill(linear)",
    "SELECT * FROM samples LIMIT 1000000000",
    "SELECT hr_bpm FROM samples WHERE " + "(" * 90 + "hr_bpm > 0" + ")" * 90,
]


def _mallory_lines(now_ns: int) -> str:
    # Two hours of 1 sample every 3.6 s (2,000), on two series, one with the ReDoS tag value.
    lines = []
    for i in range(2000):
        device = "a" * 27 + "!" if i % 2 else "phone"
        lines.append(f"samples,device={device} hr_bpm={100 + i % 50} {now_ns - 7200 * S + i * 3_600_000_000}")
    return "\n".join(lines)


class Attack:
    """Mallory's loop, run in a process of its own; records each query's duration and answer."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.durations: list[tuple[float, str]] = []
        self.errors: list[str] = []
        self.statuses: list[int] = []

    def run(self, results: "multiprocessing.Queue[tuple[list[tuple[float, str]], list[str], list[int]]]") -> None:
        asyncio.run(self._run())
        results.put((self.durations, self.errors, self.statuses))

    async def _run(self) -> None:
        stop_at = time.monotonic() + ATTACK_SECONDS
        timeout = aiohttp.ClientTimeout(total=QUERY_TIMEOUT + 30)
        async with aiohttp.ClientSession(timeout=timeout, headers=basic("mallory", PASSWORD)) as session:
            await asyncio.gather(*(self._connection(session, n, stop_at) for n in range(ATTACK_CONNECTIONS)))

    async def _connection(self, session: aiohttp.ClientSession, n: int, stop_at: float) -> None:
        i = n
        while time.monotonic() < stop_at:
            q = HOSTILE_QUERIES[i % len(HOSTILE_QUERIES)]
            i += 1
            started = time.monotonic()
            async with session.post(f"{self.url}/query", data={"q": q, "db": "mallory"}) as response:
                size, head, tail = 0, b"", b""
                async for chunk in response.content.iter_chunked(1 << 16):
                    size += len(chunk)
                    head = head or chunk[:400]
                    tail = (tail + chunk)[-400:]
                self.statuses.append(response.status)
            self.durations.append((time.monotonic() - started, q))
            if b'"error"' in tail:
                self.errors.append(json.loads(tail[tail.rindex(b'"error"') + 8 :].split(b"}")[0]))


async def _timed(session: aiohttp.ClientSession, method: str, url: str, **kwargs: object) -> tuple[float, int]:
    started = time.monotonic()
    async with session.request(method, url, **kwargs) as response:  # type: ignore[arg-type]
        await response.read()
        return time.monotonic() - started, response.status


@pytest.mark.slow
async def test_hostile_queries_never_slow_down_another_user(tmp_path: Path) -> None:
    server = TrackerProcess(tmp_path / "data", tmp_path / "server.log", serve_args=["--query-timeout", str(QUERY_TIMEOUT)])
    server.add_user("mallory")
    server.add_user("alice")
    server.start()
    try:
        async with aiohttp.ClientSession(headers=basic("mallory", PASSWORD)) as session:
            async with session.post(f"{server.url}/write?db=mallory", data=_mallory_lines(time.time_ns())) as response:
                assert response.status == 204, await response.text()

        attack = Attack(server.url)
        spawn = multiprocessing.get_context("spawn")
        results = spawn.Queue()
        attacker = spawn.Process(target=attack.run, args=(results,), daemon=True)
        attacker.start()
        await asyncio.sleep(1.5)  # the attacker has started and its first hostile queries are running
        latencies: dict[str, list[float]] = {"ping": [], "write": [], "query": []}
        async with aiohttp.ClientSession(headers=basic("alice", PASSWORD)) as session:
            n = 0
            while attacker.is_alive() and results.empty():
                n += 1
                for kind, method, url, kwargs in (
                    ("ping", "GET", f"{server.url}/ping", {}),
                    ("write", "POST", f"{server.url}/write?db=alice", {"data": f"samples hr_bpm={n} {time.time_ns()}"}),
                    ("query", "GET", f"{server.url}/query", {"params": {"db": "alice", "q": "SELECT last(hr_bpm) FROM samples"}}),
                ):
                    took, status = await _timed(session, method, url, **kwargs)
                    assert status in (200, 204), (kind, status)
                    latencies[kind].append(took)
                await asyncio.sleep(0.05)
            # Her last write is there: nothing she sent was dropped while the server was under attack.
            took, status = await _timed(session, "GET", f"{server.url}/query",
                                        params={"db": "alice", "q": "SELECT count(hr_bpm) FROM samples"})  # fmt: skip
            assert status == 200
        attack.durations, attack.errors, attack.statuses = await asyncio.to_thread(results.get, timeout=60)
        attacker.join()

        every = sorted(t for kind in latencies.values() for t in kind)
        p99 = every[int(len(every) * 0.99)]
        print(
            f"\nother user under attack: {len(every)} requests, p50 {every[len(every) // 2] * 1000:.1f} ms, "
            f"p99 {p99 * 1000:.1f} ms, max {every[-1] * 1000:.1f} ms; "
            + ", ".join(f"{kind} max {max(values) * 1000:.1f} ms" for kind, values in latencies.items())
            + f"; hostile queries answered: {len(attack.durations)}, slowest {max(d for d, _ in attack.durations):.2f} s"
        )
        assert attack.durations, "no hostile query was answered"
        assert len(every) >= 20, f"the other user got only {len(every)} answers in {ATTACK_SECONDS} s"
        slow = [(round(took, 3), kind) for kind, values in latencies.items() for took in values if took > OTHER_USER_BOUND]
        assert not slow, f"the other user waited longer than {OTHER_USER_BOUND} s: {slow}"
        assert set(attack.statuses) == {200}, attack.statuses
        late = [(round(took, 2), q) for took, q in attack.durations if took > QUERY_TIMEOUT + ANSWER_GRACE]
        assert not late, f"hostile queries ran past the query timeout: {late}"
        # The ones that did not finish in time end with InfluxDB's words; the bucket and point limits with theirs.
        assert attack.errors, "no hostile query was stopped"
        allowed = ("query-timeout limit exceeded", "max-select-buckets limit exceeded", "max-select-point limit exceeed")
        assert all(error.startswith(allowed) for error in attack.errors), set(attack.errors)
    finally:
        server.close()
