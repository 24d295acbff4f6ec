"""The differential comparison with a real InfluxDB 1.x: generated data, generated queries, answers compared.

Plain code, no pytest: `test_influx_differential.py` drives it. Everything is seeded (`random.Random(seed)`),
so one seed always gives the same samples, the same queries and the same report.

The data: two hours of 1 Hz samples (2023-11-14 22:00 to 24:00 UTC, across midnight in Berlin) from three
devices: `bike` (every field a bike computer sends, cadence included), `watch` (never cadence; its heart
rate often equals the bike's at the same second, so selectors meet ties across series) and `phone` (a
position every 5 s). Each has gaps. Positions stay within 1e-5 degrees of 52.5/13.4, where a variance
formula that is not numerically stable loses digits. Every value is written as a float, as Tracker stores.
"""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import math
import random
import re
import urllib.parse
import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Sequence

SECOND = 10**9
T0_S = 1_699_999_200  # 2023-11-14T22:00:00Z; Europe/Berlin's midnight is 23:00 UTC, an hour in
SPAN_S = 7200
T0 = T0_S * SECOND
DEVICES = ("bike", "watch", "phone")
DATABASE = "rider"
MEASUREMENT = "samples"
WRITE_BATCH = 5000

# ----- the data -----------------------------------------------------------------------------------------


def generate_lines(seed: int) -> list[str]:
    """The line protocol both servers get: one line per device and sample, in time order."""
    rng = random.Random(seed)
    lines: list[str] = []
    bike_hr, watch_hr, alt, dist, battery_watch, battery_phone = 120.0, 118.0, 34.0, 0.0, 80.0, 64.0
    for s in range(SPAN_S):
        ns = T0 + s * SECOND
        bike_hr = min(175.0, max(95.0, bike_hr + rng.choice((-1.0, 0.0, 0.0, 1.0))))
        alt += rng.choice((-0.5, 0.0, 0.0, 0.5))
        bike_here = not (1800 <= s < 2100) and rng.random() > 0.03
        if bike_here:
            dist += 0.008
            fields = {
                "hr_bpm": bike_hr,
                "pwr_w": round(rng.uniform(0, 400), 1),
                "cad_rpm": float(rng.randint(60, 100)),
                "spd_kph": round(rng.uniform(18, 36), 2),
                "alt_m": alt,
                "lat": round(52.5 + rng.uniform(0, 1e-5), 10),
                "lng": round(13.4 + rng.uniform(0, 1e-5), 10),
                "dist_km": round(dist, 3),
            }
            if rng.random() < 0.5:  # a power meter with both sides, half the time
                left = round(rng.uniform(0, 200), 1)
                fields.update(pwr_w_l=left, pwr_w_r=round(fields["pwr_w"] - left, 1))
            lines.append(line("bike", fields, ns))
        watch_hr = min(175.0, max(95.0, watch_hr + rng.choice((-1.0, 0.0, 1.0))))
        if not (3000 <= s < 3600) and rng.random() > 0.05:
            if s % 600 == 0:
                battery_watch -= 1.0
            hr = bike_hr if rng.random() < 0.4 else watch_hr  # ties with the bike at the same second
            fields = {
                "hr_bpm": hr,
                "lat": round(52.5 + rng.uniform(0, 1e-5), 10),
                "lng": round(13.4 + rng.uniform(0, 1e-5), 10),
                "alt_m": alt + rng.choice((0.0, 1.0)),
                "temp_c": round(rng.uniform(4, 9), 1),
                "battery": battery_watch,
            }
            if rng.random() < 0.1:
                del fields["lat"], fields["lng"]  # a heart-rate-only sample
            lines.append(line("watch", fields, ns))
        if s % 5 == 0 and not (5000 <= s < 5400) and rng.random() > 0.1:
            if s % 900 == 0:
                battery_phone -= 1.0
            fields = {
                "lat": round(52.5 + rng.uniform(0, 1e-5), 10),
                "lng": round(13.4 + rng.uniform(0, 1e-5), 10),
                "acc_m": float(rng.choice((3, 4, 5, 8, 12))),
                "bearing": round(rng.uniform(0, 359.9), 1),
                "battery": battery_phone,
                "gsm_signal": float(rng.randint(1, 4)),
                "spd_kph": round(rng.uniform(0, 36), 2),
            }
            lines.append(line("phone", fields, ns))
    return lines


def post_lines_to(url: str, user: str, password: str, lines: list[str]) -> None:
    """The same line protocol to either server's /write, into the user's own database."""
    for start in range(0, len(lines), WRITE_BATCH):
        body = "\n".join(lines[start : start + WRITE_BATCH]).encode()
        request = urllib.request.Request(f"{url}/write?db={user}", data=body, method="POST")
        request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
        with urllib.request.urlopen(request, timeout=120) as response:
            assert response.status == 204, response.read()


def line(device: str, fields: dict[str, float], ns: int) -> str:
    return f"{MEASUREMENT},device={device} " + ",".join(f"{k}={float(v)!r}" for k, v in fields.items()) + f" {ns}"


# ----- the queries --------------------------------------------------------------------------------------

FIELDS = ("hr_bpm", "pwr_w", "cad_rpm", "spd_kph", "alt_m", "lat", "lng", "temp_c", "battery", "dist_km",
          "acc_m", "bearing", "gsm_signal", "pwr_w_l", "pwr_w_r")  # fmt: skip
COMMON_FIELDS = ("hr_bpm", "pwr_w", "cad_rpm", "lat", "lng", "alt_m")
AGGREGATES = ("count", "mean", "median", "mode", "spread", "stddev", "sum", "integral", "distinct")
SELECTORS = ("first", "last", "max", "min", "percentile", "top", "bottom", "sample", "distinct")
TRANSFORMATIONS = ("derivative", "non_negative_derivative", "difference", "non_negative_difference",
                   "moving_average", "cumulative_sum", "elapsed")  # fmt: skip
MATH_FUNCTIONS = ("abs", "round", "floor", "ceil", "sqrt", "pow", "ln", "log", "log2", "log10", "exp",
                  "sin", "cos", "tan", "asin", "acos", "atan", "atan2")  # fmt: skip
INTERVALS = (("1s", 1), ("10s", 10), ("30s", 30), ("1m", 60), ("5m", 300), ("10m", 600), ("15m", 900), ("1h", 3600))
FILLS = ("", "", " fill(null)", " fill(none)", " fill(0)", " fill(-1.5)", " fill(previous)", " fill(linear)")
EPOCHS = (None, None, None, "ns", "u", "ms", "s", "m", "h")


@dataclass(slots=True)
class Case:
    """One request: its statements (joined with `;`), the query-string parameters, and what it covers."""

    statements: list[str]
    epoch: str | None = None
    method: str = "GET"
    chunked: bool = False
    chunk_size: int | None = None
    features: set[str] = field(default_factory=set)
    db: str = DATABASE

    @property
    def q(self) -> str:
        return "; ".join(self.statements)

    def params(self) -> dict[str, str]:
        params = {"db": self.db}
        if self.epoch:
            params["epoch"] = self.epoch
        if self.chunked:
            params["chunked"] = "true"
            if self.chunk_size is not None:
                params["chunk_size"] = str(self.chunk_size)
        return params

    def describe(self) -> str:
        extra = " ".join(f"{k}={v}" for k, v in self.params().items() if k != "db")
        return f"{self.method} {extra} q={self.q}".replace("  ", " ")


def rfc3339(seconds: float) -> str:
    """A time literal as people write them: whole seconds, or milliseconds when there is a fraction."""
    whole = math.floor(seconds)
    text = datetime.fromtimestamp(whole, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = round((seconds - whole) * 1000)
    return text + (f".{fraction:03d}Z" if fraction else "Z")


class QueryGenerator:
    """A seeded stream of requests covering the InfluxQL that dashboards and scripts send."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    # -- small pieces --

    def pick(self, options: Sequence[Any]) -> Any:
        return self.rng.choice(options)

    def field_name(self, common: float = 0.75) -> str:
        return self.pick(COMMON_FIELDS) if self.rng.random() < common else self.pick(FIELDS)

    def quoted(self, name: str) -> str:
        return f'"{name}"' if self.rng.random() < 0.3 else name

    def time_literal(self, seconds: float, features: set[str]) -> str:
        style = self.rng.randrange(4)
        if style == 0:
            features.add("where time rfc3339")
            return f"'{rfc3339(seconds)}'"
        if style == 1:
            return f"{round(seconds * 1000)}ms"
        if style == 2 and seconds == int(seconds):
            return f"{int(seconds)}s"
        return str(round(seconds * SECOND))

    def time_range(self, features: set[str], max_span: int, min_span: int = 1) -> tuple[str, int]:
        """`time >= a AND time < b` inside (and sometimes over the edges of) the data; its span in s."""
        span = self.rng.randint(min_span, max(min_span, max_span))
        start = self.rng.randint(-120, SPAN_S - min(span, SPAN_S) + 60)
        lower = T0_S + start + (0.5 if self.rng.random() < 0.1 else 0)
        upper = lower + span
        low_op = self.pick((">=", ">=", ">"))
        high_op = self.pick(("<", "<", "<="))
        features.add("where time")
        text = f"time {low_op} {self.time_literal(lower, features)} AND time {high_op} {self.time_literal(upper, features)}"
        return text, span

    def tag_condition(self, features: set[str]) -> str:
        features.add("where tag")
        device = self.pick(DEVICES)
        kind = self.rng.randrange(6)
        if kind == 0:
            return f"device = '{device}'"
        if kind == 1:
            return f"\"device\" != '{device}'"
        if kind == 2:
            features.add("where regex")
            return f"device =~ /^{device[:2]}/"
        if kind == 3:
            features.add("where regex")
            return f"device !~ /{device[-2:]}$/"
        if kind == 4:
            other = self.pick(DEVICES)
            return f"(device = '{device}' OR device = '{other}')"
        return "device = 'nosuchdevice'"

    def field_condition(self, features: set[str]) -> str:
        features.add("where field")
        name = self.pick(("hr_bpm", "pwr_w", "cad_rpm", "spd_kph"))
        op = self.pick((">", ">=", "<", "<=", "=", "!="))
        value = {"hr_bpm": self.rng.randint(100, 160), "pwr_w": self.rng.randint(50, 350),
                 "cad_rpm": self.rng.randint(60, 100), "spd_kph": self.rng.randint(15, 35)}[name]  # fmt: skip
        if self.rng.random() < 0.2:
            other = self.pick(("hr_bpm", "pwr_w"))
            return f"({name} {op} {value} OR {other} < {value})"
        return f"{name} {op} {value}"

    def where(self, features: set[str], max_span: int, *, tags: float = 0.3, fields: float = 0.15,
              min_span: int = 1, unbounded: float = 0.0) -> tuple[str, int]:  # fmt: skip
        """Time bounds (or, with chance `unbounded`, none: all of the data), maybe tag and field conditions."""
        parts = []
        span = SPAN_S
        if self.rng.random() < unbounded:
            features.add("no time bounds")
        else:
            time_text, span = self.time_range(features, max_span, min_span)
            parts.append(time_text)
        if self.rng.random() < tags:
            parts.append(self.tag_condition(features))
        if self.rng.random() < fields:
            parts.append(self.field_condition(features))
        self.rng.shuffle(parts)
        return (" WHERE " + " AND ".join(parts) if parts else ""), span

    def alias(self, text: str, features: set[str], name: str | None = None) -> str:
        if self.rng.random() < 0.2:
            features.add("alias")
            return f"{text} AS {name or self.pick(('v', 'x', 'value', 'hr'))}"
        return text

    def tail(self, features: set[str], *, series_limits: bool = True, desc: bool = True, limit: float = 0.3) -> str:
        text = ""
        if desc and self.rng.random() < 0.25:
            features.add("order by time desc")
            text += " ORDER BY time DESC"
        if self.rng.random() < limit:
            features.add("limit")
            text += f" LIMIT {self.rng.randint(1, 20)}"
            if self.rng.random() < 0.4:
                features.add("offset")
                text += f" OFFSET {self.rng.randint(1, 15)}"
        if series_limits and self.rng.random() < 0.12:
            features.add("slimit")
            text += f" SLIMIT {self.rng.randint(1, 3)}"
            if self.rng.random() < 0.5:
                features.add("soffset")
                text += f" SOFFSET {self.rng.randint(1, 2)}"
        return text

    def group_by_tags(self, features: set[str], chance: float = 0.35) -> str:
        if self.rng.random() >= chance:
            return ""
        features.add("group by tag")
        return self.pick((", device", ', "device"', ", *"))

    # -- calls --

    def aggregate_call(self, features: set[str], name: str | None = None, argument: str | None = None) -> str:
        # integral() only on its own and never grouped by tag: InfluxDB 1.6 answers the series of such a
        # statement in an order that changes from run to run (and splits them when it has other calls).
        name = name or self.pick(tuple(a for a in AGGREGATES if a != "integral") + ("first", "last", "max", "min", "percentile"))
        argument = argument or self.quoted(self.field_name())
        features.add(f"fn:{name}")
        if name == "integral":
            unit = self.pick(("", "", ", 1s", ", 1m", ", 1h"))
            return f"integral({argument}{unit})"
        if name == "distinct":
            features.add("fn:count(distinct)")
            return f"count(distinct({argument}))"
        if name == "percentile":
            return f"percentile({argument}, {self.pick((5, 50, 90, 95, 99, 99.9, 100, 0))})"
        return f"{name}({argument})"

    def selector_call(self, features: set[str], name: str | None = None) -> str:
        name = name or self.pick(SELECTORS)
        argument = self.quoted(self.field_name())
        features.add(f"fn:{name}")
        if name in ("top", "bottom"):
            if self.rng.random() < 0.25:
                features.add(f"fn:{name}(tag)")
                return f"{name}({argument}, device, {self.rng.randint(1, 3)})"
            return f"{name}({argument}, {self.rng.randint(1, 5)})"
        if name == "sample":
            return f"sample({argument}, {self.rng.randint(1, 4)})"
        if name == "percentile":
            return f"percentile({argument}, {self.pick((1, 25, 50, 95, 99))})"
        return f"{name}({argument})"

    def math_wrap(self, inner: str, features: set[str]) -> str:
        name = self.pick(MATH_FUNCTIONS)
        features.add(f"math:{name}")
        if name == "pow":
            return f"pow({inner}, {self.pick((2, 0.5, 3))})"
        if name == "log":
            return f"log({inner}, {self.pick((2, 10))})"
        if name == "atan2":
            return f"atan2({inner}, {self.pick(('1', '2.5'))})"
        return f"{name}({inner})"

    # -- statements --

    def raw_select(self, features: set[str]) -> str:
        features.add("raw")
        kind = self.rng.randrange(6)
        if kind == 0:
            features.add("select *")
            columns = "*"
        elif kind == 1:
            features.add("select regex field")
            columns = self.pick(("/^pwr/", "/_bpm$/", "/^l/"))
        elif kind == 2:
            features.add("math")
            a, b = self.field_name(), self.field_name()
            op = self.pick(("+", "-", "*", "/"))
            columns = self.alias(f"{self.quoted(a)} {op} {self.pick((b, '2', '0.5', '3'))}", features)
        elif kind == 3:
            features.add("select tag")
            columns = f"{self.field_name()}, device"
        else:
            names = self.rng.sample(FIELDS, self.rng.randint(1, 3))
            columns = ", ".join(self.alias(self.quoted(n), features, f"c_{n}") if i == 0 else self.quoted(n)
                                for i, n in enumerate(names))  # fmt: skip
        where, _ = self.where(features, 90, unbounded=0.05)
        group = ""
        if self.rng.random() < 0.3:
            features.add("group by tag")
            group = " GROUP BY " + self.pick(("device", "*"))
        tail = self.tail(features)
        if " time " not in where and " LIMIT " not in tail:
            tail += f" LIMIT {self.rng.randint(1, 10)}"  # all of the data is too much to compare
        return f"SELECT {columns} FROM {self.source()}{where}{group}{tail}"

    def source(self) -> str:
        return self.pick((MEASUREMENT, MEASUREMENT, MEASUREMENT, f'"{MEASUREMENT}"', f'"{DATABASE}"."autogen"."{MEASUREMENT}"'))

    def aggregate_select(self, features: set[str]) -> str:
        features.add("aggregate")
        calls = []
        if self.rng.random() < 0.1:
            calls.append(self.alias(self.aggregate_call(features, "integral"), features))
        for _ in range(0 if calls else self.rng.randint(1, 3)):
            call = self.aggregate_call(features)
            if self.rng.random() < 0.1:
                features.add("math on aggregate")
                call = f"{call} {self.pick(('*', '+', '-', '/'))} {self.pick(('2', '0.5', '10'))}"
            calls.append(self.alias(call, features, f"a{len(calls)}") if self.rng.random() < 0.5 else call)
        where, _ = self.where(features, SPAN_S + 300, unbounded=0.1)
        group = "" if calls[0].startswith("integral") else self.group_by_tags(features, 0.4).lstrip(", ")
        group_text = f" GROUP BY {group}" if group else ""
        return f"SELECT {', '.join(calls)} FROM {self.source()}{where}{group_text}{self.tail(features, desc=False, limit=0.1)}"

    def interval(self, features: set[str]) -> tuple[str, int, int]:
        """A GROUP BY time interval, its length in s, and a span that gives it 1..~120 buckets."""
        text, seconds = self.pick(INTERVALS)
        span = seconds * self.rng.randint(1, min(120, max(1, 2 * SPAN_S // seconds)))
        return text, seconds, min(span, SPAN_S + 600)

    def group_by_time(self, features: set[str], text: str, seconds: int) -> str:
        features.add("group by time")
        offset = ""
        if self.rng.random() < 0.2 and seconds > 1:
            features.add("group by time offset")
            offset = f", {self.pick(('1s', '15s', '-5s', '30s', '2m'))}"
        return f"time({text}{offset})"

    def fill(self, features: set[str]) -> str:
        fill = self.pick(FILLS)
        if fill:
            features.add(fill.strip())
        return fill

    def grouped_select(self, features: set[str]) -> str:
        text, seconds, span = self.interval(features)
        calls = []
        if self.rng.random() < 0.08:
            calls.append(self.alias(self.aggregate_call(features, "integral"), features))
        for _ in range(0 if calls else self.rng.randint(1, 2)):
            call = self.aggregate_call(features) if self.rng.random() < 0.8 else self.selector_call(
                features, self.pick(("first", "last", "max", "min", "percentile")))  # fmt: skip
            calls.append(self.alias(call, features))
        where, _ = self.where(features, span, min_span=span)
        group = self.group_by_time(features, text, seconds)
        if not calls[0].startswith("integral"):
            group += self.group_by_tags(features)
        return (f"SELECT {', '.join(calls)} FROM {self.source()}{where} GROUP BY {group}{self.fill(features)}"
                f"{self.tail(features)}")  # fmt: skip

    def selector_select(self, features: set[str]) -> str:
        features.add("selector")
        call = self.selector_call(features)
        columns = [call]
        if not call.startswith(("top", "bottom", "sample", "percentile", "distinct")) and self.rng.random() < 0.3:
            features.add("selector with fields")
            columns.append(self.pick(("pwr_w", "device", "hr_bpm, lat")))
        elif call.startswith("percentile") and self.rng.random() < 0.4:
            features.add("two percentiles")
            columns.append(self.selector_call(features, "percentile"))
        where, _ = self.where(features, SPAN_S + 300, unbounded=0.1)
        group = ""
        if self.rng.random() < 0.3:
            text, seconds, span = self.interval(features)
            where, _ = self.where(features, span, min_span=span)
            group = " GROUP BY " + self.group_by_time(features, text, seconds) + self.group_by_tags(features)
            group += self.fill(features)
        elif self.rng.random() < 0.4:
            features.add("group by tag")
            group = " GROUP BY " + self.pick(("device", "*"))
        return f"SELECT {', '.join(self.alias(c, features) for c in columns)} FROM {self.source()}{where}{group}{self.tail(features)}"

    def transformation_select(self, features: set[str]) -> str:
        name = self.pick(TRANSFORMATIONS)
        features.add(f"fn:{name}")
        features.add("transformation")
        def arguments(inner: str) -> str:
            if name in ("derivative", "non_negative_derivative"):
                unit = self.pick(("", "", ", 1s", ", 10s", ", 1m"))
                if unit:
                    features.add("derivative unit")
                return f"{name}({inner}{unit})"
            if name == "moving_average":
                return f"moving_average({inner}, {self.rng.randint(1, 5)})"
            if name == "elapsed":
                return f"elapsed({inner}{self.pick(('', ', 1s', ', 1ms'))})"
            return f"{name}({inner})"

        if self.rng.random() < 0.45 or name == "elapsed":
            features.add("transformation of raw")
            call = arguments(self.quoted(self.field_name()))
            where, _ = self.where(features, 120)
            group = " GROUP BY " + self.pick(("device", "*")) if self.rng.random() < 0.3 else ""
            if group:
                features.add("group by tag")
            return f"SELECT {self.alias(call, features)} FROM {self.source()}{where}{group}{self.tail(features)}"
        features.add("transformation of aggregate")
        inner = self.aggregate_call(features, self.pick(("mean", "max", "min", "sum", "count", "last", "first", "median")))
        text, seconds, span = self.interval(features)
        where, _ = self.where(features, span, min_span=span)
        group = self.group_by_time(features, text, seconds) + self.group_by_tags(features)
        return (f"SELECT {self.alias(arguments(inner), features)} FROM {self.source()}{where} GROUP BY {group}"
                f"{self.fill(features)}{self.tail(features)}")  # fmt: skip

    def math_select(self, features: set[str]) -> str:
        features.add("math function")
        if self.rng.random() < 0.5:
            features.add("math of raw")
            inner = self.quoted(self.field_name())
            if self.rng.random() < 0.2:
                inner = f"{inner} - 100"
            where, _ = self.where(features, 60)
            return f"SELECT {self.alias(self.math_wrap(inner, features), features)} FROM {self.source()}{where}{self.tail(features)}"
        features.add("math of aggregate")
        inner = self.aggregate_call(features, self.pick(("mean", "max", "min", "sum", "count", "spread", "stddev")))
        call = self.math_wrap(inner, features)
        if self.rng.random() < 0.5:
            text, seconds, span = self.interval(features)
            where, _ = self.where(features, span, min_span=span)
            group = " GROUP BY " + self.group_by_time(features, text, seconds) + self.group_by_tags(features) + self.fill(features)
        else:
            where, _ = self.where(features, SPAN_S)
            group = " GROUP BY device" if self.rng.random() < 0.3 else ""
        return f"SELECT {self.alias(call, features)} FROM {self.source()}{where}{group}{self.tail(features, limit=0.1)}"

    def wildcard_select(self, features: set[str]) -> str:
        features.add("wildcard aggregate")
        name = self.pick(("count", "mean", "max", "min", "sum", "first", "last", "spread", "median"))
        features.add(f"fn:{name}")
        argument = self.pick(("*", "*", "/^pwr/", "/^l/", "/_(bpm|rpm)$/"))
        if argument != "*":
            features.add("regex aggregate")
        where, span = self.where(features, SPAN_S)
        group = ""
        if self.rng.random() < 0.3:
            text, seconds, span = self.interval(features)
            where, _ = self.where(features, span, min_span=span)
            group = " GROUP BY " + self.group_by_time(features, text, seconds) + self.group_by_tags(features) + self.fill(features)
        elif self.rng.random() < 0.3:
            group = " GROUP BY device"
            features.add("group by tag")
        return f"SELECT {name}({argument}) FROM {self.source()}{where}{group}{self.tail(features, limit=0.1)}"

    def subquery_select(self, features: set[str]) -> str:
        features.add("subquery")
        text, seconds, span = self.interval(features)
        where, _ = self.where(features, span, min_span=span)
        inner_fn = self.pick(("mean", "max", "min", "sum", "count", "last"))
        features.add(f"fn:{inner_fn}")
        inner_group = self.group_by_time(features, text, seconds)
        tags = self.rng.random() < 0.4
        if tags:
            inner_group += ", device"
            features.add("group by tag")
        inner = f"SELECT {inner_fn}({self.field_name()}) AS v FROM {MEASUREMENT}{where} GROUP BY {inner_group}"
        outer_fn = self.pick(("max", "min", "mean", "sum", "count", "last", "stddev", "percentile"))
        features.add(f"fn:{outer_fn}")
        outer = "percentile(v, 95)" if outer_fn == "percentile" else f"{outer_fn}(v)"
        outer_group = ""
        if tags and self.rng.random() < 0.5:
            outer_group = " GROUP BY device"
        if self.rng.random() < 0.2:
            features.add("subquery raw outer")
            outer = "v" if self.rng.random() < 0.5 else "v * 2"
            outer_group = ""
        return f"SELECT {outer} FROM ({inner}){outer_group}{self.tail(features, series_limits=False, limit=0.15)}"

    def tz_select(self, features: set[str]) -> str:
        features.add("tz")
        zone = self.pick(("Europe/Berlin", "Europe/Berlin", "America/New_York", "UTC"))
        if self.rng.random() < 0.25:
            # Raw rows: tz() changes how RFC3339 times are written (with the zone's offset).
            features.add("tz raw")
            where, _ = self.where(features, 30)
            return f"SELECT {self.field_name()}, device FROM {MEASUREMENT}{where}{self.tail(features)} tz('{zone}')"
        interval = self.pick(("1d", "1h", "30m"))
        features.add("group by time")
        call = self.aggregate_call(features, self.pick(("mean", "max", "count", "sum", "last")))
        where, _ = self.where(features, SPAN_S + 600, min_span=1800)
        group = self.group_by_tags(features, 0.3)
        return f"SELECT {call} FROM {MEASUREMENT}{where} GROUP BY time({interval}){group}{self.fill(features)} tz('{zone}')"

    def show(self, features: set[str]) -> str:
        statement = self.pick((
            "SHOW DATABASES", "SHOW MEASUREMENTS", "SHOW FIELD KEYS", f"SHOW FIELD KEYS FROM {MEASUREMENT}",
            "SHOW TAG KEYS", f"SHOW TAG KEYS FROM {MEASUREMENT}", 'SHOW TAG VALUES WITH KEY = "device"',
            f'SHOW TAG VALUES FROM {MEASUREMENT} WITH KEY = "device"', 'SHOW TAG VALUES WITH KEY IN ("device")',
            "SHOW SERIES", f"SHOW SERIES FROM {MEASUREMENT}", "SHOW RETENTION POLICIES",
            f'SHOW RETENTION POLICIES ON "{DATABASE}"', "SHOW MEASUREMENTS LIMIT 1",
            "SHOW TAG VALUES WITH KEY = \"device\" WHERE device =~ /^b/", "SHOW SERIES WHERE device = 'watch'",
        ))  # fmt: skip
        features.add(" ".join(statement.split()[:3]).lower())
        return statement

    MISUSES = (
        "SELECT derivative(hr_bpm) FROM samples{where} GROUP BY time(1m)",
        "SELECT mean(hr_bpm), hr_bpm FROM samples{where}",
        "SELECT top(hr_bpm) FROM samples{where}",
        "SELECT hr_bpm FROM samples{where} GROUP BY time(1m)",
        "SELECT percentile(hr_bpm) FROM samples{where}",
        "SELECT moving_average(hr_bpm) FROM samples{where}",
        "SELECT nosuchfunction(hr_bpm) FROM samples{where}",
        "SELECT mean(hr_bpm) FROM samples{where} GROUP BY time(1m) fill(sideways)",
        "SELECT mean(*) FROM samples{where} GROUP BY time(0s)",
        "SELECT top(hr_bpm, 0) FROM samples{where}",
        "SELECT sample(hr_bpm, 0) FROM samples{where}",
        "SELECT max(hr_bpm), top(pwr_w, 2) FROM samples{where}",
        "SELECT derivative(mean(hr_bpm), -1s) FROM samples{where} GROUP BY time(1m)",
        "SELECT hr_bpm FROM samples{where} tz('Mars/Olympus')",
        "SELECT mean(hr_bpm) FROM samples{where} GROUP BY time(1m) LIMIT -1",
        "SELECT FROM samples",
    )

    def misuse(self, features: set[str]) -> str:
        """A statement InfluxDB refuses: the same refusal, InfluxDB's own words, in the same place (400 or result)."""
        features.add("misuse")
        where, _ = self.where(features, 600, tags=0, fields=0, min_span=600)
        template = self.pick(self.MISUSES)
        features.add("misuse: " + template.replace("{where}", " WHERE ..."))
        return template.format(where=where)

    KINDS: tuple[tuple[str, int], ...] = (
        ("raw_select", 14), ("aggregate_select", 16), ("grouped_select", 18), ("selector_select", 12),
        ("transformation_select", 12), ("math_select", 7), ("wildcard_select", 5), ("subquery_select", 6),
        ("tz_select", 4), ("show", 3), ("misuse", 3),
    )  # fmt: skip

    def statement(self, features: set[str]) -> str:
        names = [name for name, _ in self.KINDS]
        weights = [weight for _, weight in self.KINDS]
        return str(getattr(self, self.rng.choices(names, weights)[0])(features))

    def case(self) -> Case:
        features: set[str] = set()
        count = 1 if self.rng.random() < 0.88 else self.rng.randint(2, 3)
        if count > 1:
            features.add("several statements")
        statements = [self.statement(features) for _ in range(count)]
        case = Case(statements, features=features)
        case.epoch = self.pick(EPOCHS)
        features.add(f"epoch={case.epoch or 'rfc3339'}")
        case.method = self.pick(("GET", "POST"))
        features.add(case.method)
        if self.rng.random() < 0.12:
            case.chunked = True
            case.chunk_size = self.pick((None, 1, 2, 5, 100))
            features.add("chunked")
        return case

    def cases(self, count: int) -> list[Case]:
        return [self.case() for _ in range(count)]


# ----- sending and comparing ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: Any  # the parsed JSON; for chunked answers the list of the parsed lines; text when not JSON

    def short(self, limit: int = 700) -> str:
        text = f"{self.status} {json.dumps(self.body, separators=(',', ':'))}"
        return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


class Endpoint:
    """One server's /query, over a kept-alive connection, with Basic auth."""

    def __init__(self, host: str, port: int, authorization: str) -> None:
        self.host, self.port, self.authorization = host, port, authorization
        self.conn: http.client.HTTPConnection | None = None

    def send(self, case: Case) -> Answer:
        params = case.params()
        headers = {"Authorization": self.authorization, "Accept-Encoding": "gzip"}
        if case.method == "GET":
            url, body = "/query?" + urllib.parse.urlencode({**params, "q": case.q}), None
        else:
            url = "/query?" + urllib.parse.urlencode(params)
            body = urllib.parse.urlencode({"q": case.q}).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
            try:
                self.conn.request(case.method, url, body=body, headers=headers)
                response = self.conn.getresponse()
                raw = response.read()
                if response.getheader("Content-Encoding", "") == "gzip":
                    raw = gzip.decompress(raw)
                if response.getheader("Connection", "").lower() == "close":
                    self.close()
                return Answer(response.status, parse_body(raw, case.chunked))
            except (http.client.HTTPException, ConnectionError):
                self.close()  # a server may close an idle kept-alive connection: once more on a new one
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def parse_body(raw: bytes, chunked: bool) -> Any:
    text = raw.decode("utf-8", errors="replace")
    try:
        if chunked:
            return [json.loads(piece) for piece in text.splitlines() if piece.strip()]
        return json.loads(text)
    except ValueError:
        return text


def same(expected: Any, actual: Any, *, rel: float = 1e-12) -> bool:
    """Equal JSON, numbers to `rel` relative (InfluxDB writes 120.0 as 120: a number is a number)."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        if expected == actual:
            return True
        if math.isnan(expected) or math.isnan(actual) or math.isinf(expected) or math.isinf(actual):
            return False
        return math.isclose(expected, actual, rel_tol=rel, abs_tol=0.0)
    if isinstance(expected, dict) and isinstance(actual, dict):
        return expected.keys() == actual.keys() and all(same(expected[k], actual[k], rel=rel) for k in expected)
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(same(e, a, rel=rel) for e, a in zip(expected, actual))
    return type(expected) is type(actual) and expected == actual


def shape(body: Any) -> Any:
    """What sample() answers must share: everything but the values (InfluxDB picks them at random)."""
    if isinstance(body, dict):
        return {k: (len(v) if k == "values" else shape(v)) for k, v in body.items()}
    if isinstance(body, list):
        return [shape(item) for item in body]
    return body


def answers_agree(case: Case, reference: Answer, candidate: Answer) -> bool:
    if reference.status != candidate.status:
        return False
    if "sample(" in case.q:
        return same(shape(reference.body), shape(candidate.body))
    return same(reference.body, candidate.body)


def kind_of_difference(reference: Answer, candidate: Answer) -> str:
    """What differs first, in words (a refusal, an error text, column names, row order, precision, ...)."""
    if reference.status != candidate.status:
        refused = candidate.body.get("error", "") if isinstance(candidate.body, dict) else ""
        return f"HTTP {reference.status} vs {candidate.status}" + (f" ({refused[:80]})" if refused else "")
    found = first_difference(reference.body, candidate.body, ())
    if found is None:
        return "sample() shape"
    path, expected, actual = found
    where = path[-1] if path else ""
    if "error" in path:
        return "error text"
    if where == "error" or (isinstance(expected, dict) and isinstance(actual, dict) and "error" in (expected.keys() ^ actual.keys())):
        return "an error on one side only"
    if "columns" in path:
        return "column names"
    if "row order" in path or "row order at equal times" in path:
        return path[-1]
    if "values" in path:
        rows = path.index("values")
        if len(path) == rows + 1:
            return "number of rows"
        return diff_in_value(expected, actual)
    if where in ("series", "results") or isinstance(expected, list):
        return f"number of {where or 'items'}"
    if "tags" in path or where == "name":
        return "series (names, tags or order)"
    if isinstance(expected, dict) and isinstance(actual, dict):
        return f"keys ({', '.join(sorted(expected.keys() ^ actual.keys()))})"
    return f"{'.'.join(map(str, path))}"


def diff_in_value(expected: Any, actual: Any) -> str:
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        pairs = [(e, a) for e, a in zip(expected, actual) if not same(e, a)]
        if all(isinstance(e, (int, float)) and isinstance(a, (int, float)) for e, a in pairs):
            worst = max(abs(e - a) / max(abs(e), abs(a)) for e, a in pairs)
            return f"numbers, {worst:.0e} relative" if worst < 1e-3 else "values"
        if any(e is None or a is None for e, a in pairs):
            return "null vs a value"
        return "values (time or text)"
    return "row contents"


def first_difference(expected: Any, actual: Any, path: tuple[Any, ...]) -> tuple[tuple[Any, ...], Any, Any] | None:
    """The path to the first place two answers differ (a whole row when it is inside `values`)."""
    if same(expected, actual):
        return None
    if path and path[-1] == "values" and isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return path, expected, actual
        if sorted(map(json.dumps, expected)) == sorted(map(json.dumps, actual)):
            return path + ("row order",), expected, actual
        for index, (e, a) in enumerate(zip(expected, actual)):
            if not same(e, a):
                if isinstance(e, list) and isinstance(a, list) and e[:1] == a[:1] and a in expected:
                    return path + ("row order at equal times",), e, a  # InfluxDB has the row, elsewhere
                return path + (index,), e, a
    if isinstance(expected, dict) and isinstance(actual, dict) and expected.keys() == actual.keys():
        for key in expected:
            found = first_difference(expected[key], actual[key], path + (key,))
            if found:
                return found
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        for index, (e, a) in enumerate(zip(expected, actual)):
            found = first_difference(e, a, path + (index,))
            if found:
                return found
    return path, expected, actual


# ----- the report ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KnownDifference:
    """A deliberate difference: the requests it covers (a regex on the query text and, if given, one
    on InfluxDB's answer as text) and why."""

    name: str
    pattern: str
    reason: str
    influxdb_answer: str = ""

    def covers(self, case: Case, reference: Answer) -> bool:
        if re.search(self.pattern, case.q, flags=re.IGNORECASE) is None:
            return False
        answer_text = reference.body if isinstance(reference.body, str) else json.dumps(reference.body)
        return not self.influxdb_answer or re.search(self.influxdb_answer, answer_text) is not None


@dataclass(slots=True)
class Mismatch:
    case: Case
    reference: Answer
    candidate: Answer
    known: KnownDifference | None


@dataclass(slots=True)
class Comparison:
    total: int = 0
    identical: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    feature_counts: Counter[str] = field(default_factory=Counter)

    @property
    def agreement(self) -> float:
        return 100.0 * self.identical / self.total if self.total else 100.0

    @property
    def unexplained(self) -> list[Mismatch]:
        return [m for m in self.mismatches if m.known is None]

    def report(self, examples_per_construct: int = 3) -> str:
        """Agreement, then the differing requests grouped by the construct most to blame, with an example of
        each way it differs."""
        lines = [f"InfluxDB differential: {self.identical}/{self.total} requests identical ({self.agreement:.2f}%), "
                 f"{len(self.mismatches)} differ, {len(self.unexplained)} of them unexplained"]  # fmt: skip
        if not self.mismatches:
            return lines[0]
        failing: Counter[str] = Counter()
        for mismatch in self.mismatches:
            failing.update(mismatch.case.features)
        rate = {name: failing[name] / self.feature_counts[name] for name in failing}
        groups: dict[str, list[Mismatch]] = defaultdict(list)
        for mismatch in self.mismatches:
            # Blame the construct that fails most often wherever it appears (ties: the rarer one).
            blamed = max(mismatch.case.features, key=lambda n: (rate.get(n, 0.0), -self.feature_counts[n], n))
            groups[blamed].append(mismatch)
        kinds = Counter(kind_of_difference(m.reference, m.candidate).split(" (")[0].split(",")[0] for m in self.mismatches)
        lines.append("what differs first: " + ", ".join(f"{kind} {count}" for kind, count in kinds.most_common()))
        for name, members in sorted(groups.items(), key=lambda item: -len(item[1])):
            lines.append("")
            group_kinds = Counter(kind_of_difference(m.reference, m.candidate).split(" (")[0].split(",")[0] for m in members)
            lines.append(f"== {name}: {len(members)} differ ({failing[name]}/{self.feature_counts[name]} of the "
                         f"requests using it): " + ", ".join(f"{k} {n}" for k, n in group_kinds.most_common()))  # fmt: skip
            examples: dict[str, Mismatch] = {}
            for mismatch in members:  # one example of each way this construct differs
                examples.setdefault(kind_of_difference(mismatch.reference, mismatch.candidate).split(",")[0], mismatch)
            for mismatch in list(examples.values())[:examples_per_construct]:
                if mismatch.known:
                    lines.append(f"   known difference: {mismatch.known.name}: {mismatch.known.reason}")
                lines.append(f"   differs:  {kind_of_difference(mismatch.reference, mismatch.candidate)}")
                lines.append(f"   request:  {mismatch.case.describe()}")
                lines.append(f"   influxdb: {mismatch.reference.short()}")
                lines.append(f"   tracker:  {mismatch.candidate.short()}")
        return "\n".join(lines)


def compare(
    cases: Iterable[Case],
    reference: Callable[[Case], Answer],
    candidate: Callable[[Case], Answer],
    known_differences: Sequence[KnownDifference],
) -> Comparison:
    result = Comparison()
    for case in cases:
        result.total += 1
        result.feature_counts.update(case.features)
        expected, actual = reference(case), candidate(case)
        if answers_agree(case, expected, actual):
            result.identical += 1
            continue
        known = next((k for k in known_differences if k.covers(case, expected)), None)
        result.mismatches.append(Mismatch(case, expected, actual, known))
    return result
