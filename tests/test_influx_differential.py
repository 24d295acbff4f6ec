"""The differential test: the same data and the same generated queries to Tracker and to a real InfluxDB 1.x.

Both servers get the same line protocol through their own /write (as user `rider`, Basic auth, database
`rider`), then a few thousand generated requests (tests/influx_compat.py: fields, `*`, math, aliases, every
aggregate, selector and transformation, math functions, nested calls, wildcard and regex aggregates, GROUP
BY time with offsets and tags, fill modes, WHERE on time, tags, fields and regexes, ORDER BY time DESC,
LIMIT/OFFSET/SLIMIT/SOFFSET, subqueries, tz(), SHOW statements, several statements in one request, every
epoch, chunked answers, GET and POST). Every answer must be the same JSON (numbers to 1e-12 relative;
sample() picks at random in InfluxDB, so only its shape is compared), and at least 99% of the requests
must agree; every request that differs must be covered by KNOWN_DIFFERENCES, each of which is a
deliberate difference documented in the README ("Where Tracker differs from InfluxDB 1.x, on purpose").

Seeded: COMPAT_SEED=N picks other data and queries (the seed is printed), COMPAT_QUERIES=N how many
requests. `make compat` runs this test alone and prints the report.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.influx_compat import (
    DATABASE,
    Endpoint,
    KnownDifference,
    QueryGenerator,
    compare,
    generate_lines,
    post_lines_to,
)
from tests.influxd import InfluxdProcess, basic_header
from tests.tracker_process import TrackerProcess

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("COMPAT_SEED", "20231114"))
QUERIES = int(os.environ.get("COMPAT_QUERIES", "3000"))
PASSWORD = "rider-pw-1"
AGREEMENT_REQUIRED = 99.0

# Deliberate differences only, each documented in the README; a request that differs and is not covered here
# fails the test.
KNOWN_DIFFERENCES: list[KnownDifference] = []


@pytest.fixture(scope="module")
def tracker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrackerProcess]:
    root = tmp_path_factory.mktemp("differential")
    server = TrackerProcess(root / "data", root / "server.log")
    server.add_user(DATABASE, PASSWORD)
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def loaded(influxd: InfluxdProcess, tracker: TrackerProcess) -> tuple[InfluxdProcess, TrackerProcess]:
    influxd.add_user(DATABASE, PASSWORD)
    lines = generate_lines(SEED)
    post_lines_to(influxd.url, DATABASE, PASSWORD, lines)
    post_lines_to(tracker.url, DATABASE, PASSWORD, lines)
    return influxd, tracker


def test_answers_match_influxdb(loaded: tuple[InfluxdProcess, TrackerProcess]) -> None:
    influxd, tracker = loaded
    authorization = basic_header(DATABASE, PASSWORD)
    reference = Endpoint(influxd.host, influxd.port, authorization)
    candidate = Endpoint(tracker.host, tracker.port, authorization)
    cases = QueryGenerator(SEED).cases(QUERIES)
    started = time.monotonic()
    try:
        result = compare(cases, reference.send, candidate.send, KNOWN_DIFFERENCES)
    finally:
        reference.close()
        candidate.close()
    report = result.report()
    print(f"\nseed {SEED}, {QUERIES} requests, {time.monotonic() - started:.1f} s (COMPAT_SEED={SEED} repeats it)")
    print(report)
    report_path = os.environ.get("COMPAT_REPORT")
    if report_path:
        Path(report_path).write_text(report + "\n")
    assert "Traceback" not in tracker.log(), f"Tracker logged an unhandled error:\n{tracker.log_tail()}"
    assert result.agreement >= AGREEMENT_REQUIRED, report
    assert not result.unexplained, report
