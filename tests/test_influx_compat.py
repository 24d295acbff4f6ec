"""The differential test's own parts: the comparison, the generated data and the generated queries."""

from __future__ import annotations

import re

from tests.influx_compat import (
    DEVICES,
    SPAN_S,
    T0,
    Answer,
    Case,
    QueryGenerator,
    answers_agree,
    generate_lines,
    kind_of_difference,
    same,
)


def test_numbers_compare_to_1e12_relative_and_everything_else_exactly() -> None:
    assert same(120, 120.0)  # InfluxDB writes the float 120.0 as 120
    assert same(52.5, 52.5 * (1 + 5e-13))
    assert not same(52.5, 52.5 * (1 + 5e-12))
    assert not same(3.02782e-05, 3.02765e-05)
    assert not same(None, 0) and not same(0, None)
    assert not same(True, 1) and not same(1, True)
    assert not same("1", 1)
    assert same({"a": 1, "b": [1, None]}, {"b": [1.0, None], "a": 1.0})
    assert not same([1, 2], [2, 1]) and not same([1], [1, 1])
    assert not same({"a": 1}, {"a": 1, "partial": True})


def test_sample_is_compared_by_shape_only() -> None:
    def answer(values: list[list[object]]) -> Answer:
        series = {"name": "samples", "columns": ["time", "sample"], "values": values}
        return Answer(200, {"results": [{"statement_id": 0, "series": [series]}]})

    case = Case(["SELECT sample(hr_bpm, 2) FROM samples"])
    assert answers_agree(case, answer([[1, 100], [2, 101]]), answer([[3, 120], [4, 90]]))
    assert not answers_agree(case, answer([[1, 100], [2, 101]]), answer([[3, 120]]))
    other = Case(["SELECT max(hr_bpm) FROM samples"])
    assert not answers_agree(other, answer([[1, 100]]), answer([[3, 120]]))


def test_kind_of_difference_names_what_differs_first() -> None:
    def rows(*values: list[object]) -> Answer:
        series = {"name": "samples", "columns": ["time", "v"], "values": list(values)}
        return Answer(200, {"results": [{"statement_id": 0, "series": [series]}]})

    assert kind_of_difference(rows([1, 2], [1, 3]), rows([1, 3], [1, 2])) == "row order"
    assert kind_of_difference(rows([1, 2], [1, 3], [2, 4]), rows([1, 3], [1, 2], [2, 5])) == "row order at equal times"
    assert kind_of_difference(rows([1, None]), rows([1, 0])) == "null vs a value"
    assert kind_of_difference(rows([1, 1.0]), rows([1, 1.0 + 1e-7])).startswith("numbers, 1e-07")
    assert kind_of_difference(rows([1, 2]), rows([1, 2], [2, 3])) == "number of rows"
    assert kind_of_difference(rows([1, 2]), Answer(400, {"error": "nope"})) == "HTTP 200 vs 400 (nope)"


def test_the_data_is_seeded_and_as_described() -> None:
    lines = generate_lines(7)
    assert lines == generate_lines(7) and lines != generate_lines(8)
    by_device = {device: [line for line in lines if line.startswith(f"samples,device={device} ")] for device in DEVICES}
    assert sum(map(len, by_device.values())) == len(lines)
    assert not any("cad_rpm=" in line for line in by_device["watch"])  # one device never sends cadence
    assert all("cad_rpm=" in line for line in by_device["bike"])
    times = [int(line.rsplit(" ", 1)[1]) for line in lines]
    assert T0 <= min(times) and max(times) < T0 + SPAN_S * 10**9
    assert len(set(times)) < len(times)  # samples of several devices at the same second
    bike_seconds = {(int(line.rsplit(" ", 1)[1]) - T0) // 10**9 for line in by_device["bike"]}
    assert not bike_seconds & set(range(1800, 2100))  # a gap of five minutes
    fields = [dict(pair.split("=") for pair in line.split(" ")[1].split(",")) for line in lines]
    lats = [float(f["lat"]) for f in fields if "lat" in f]
    assert lats and 52.5 <= min(lats) and max(lats) <= 52.5 + 1e-5
    # every value written as a float (a decimal point), as Tracker stores them
    assert all(re.fullmatch(r"-?[0-9]+\.[0-9]+(e-?[0-9]+)?", v) for f in fields for v in f.values())


def test_the_queries_are_seeded_and_cover_the_grammar() -> None:
    cases = QueryGenerator(3).cases(2000)
    assert [c.describe() for c in cases] == [c.describe() for c in QueryGenerator(3).cases(2000)]
    assert [c.q for c in cases] != [c.q for c in QueryGenerator(4).cases(2000)]
    covered = set().union(*(c.features for c in cases))
    expected = {
        "raw", "select *", "math", "alias", "group by time", "group by time offset", "group by tag", "fill(null)",
        "fill(none)", "fill(previous)", "fill(linear)", "fill(0)", "where tag", "where field", "where regex",
        "order by time desc", "limit", "offset", "slimit", "soffset", "subquery", "tz", "wildcard aggregate",
        "regex aggregate", "several statements", "chunked", "GET", "POST", "misuse", "no time bounds",
        "show databases", "show field keys", "show tag values", "show series", "show retention policies",
    }  # fmt: skip
    expected |= {f"fn:{name}" for name in (
        "count", "mean", "median", "mode", "spread", "stddev", "sum", "integral", "distinct", "first", "last", "max",
        "min", "percentile", "top", "bottom", "sample", "derivative", "non_negative_derivative", "difference",
        "non_negative_difference", "moving_average", "cumulative_sum", "elapsed",
    )}  # fmt: skip
    expected |= {f"epoch={epoch}" for epoch in ("rfc3339", "ns", "u", "ms", "s", "m", "h")}
    expected |= {f"math:{name}" for name in ("abs", "round", "floor", "ceil", "sqrt", "pow", "ln", "log")}
    assert expected <= covered, sorted(expected - covered)
