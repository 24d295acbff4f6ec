"""The pure rules every part of Tracker shares: what a user name may be, how a duration and a time
are written and read. Imports nothing else from `tracker`, so any module may use it without pulling
in the InfluxQL parser, the storage or the web side."""

from __future__ import annotations

import datetime as _dt
import re
from decimal import Decimal

__all__ = [
    "USERNAME_RULE",
    "InvalidDuration",
    "is_username",
    "iso_time",
    "parse_duration",
    "parse_time_string",
]

# ---- user names

USERNAME_RULE = "1-64 characters from A-Z a-z 0-9 _ -, not starting with -"
# ASCII only and no dots: a name is also a file name (users/<name>.sqlite) and an InfluxDB database
# name, so '..', '/', NUL and Unicode look-alikes must never get through. \Z, not $, so "a\n" fails.
# No leading '-': the name is also typed as a CLI argument, where it would read as an option.
_USERNAME = re.compile(r"\A[A-Za-z0-9_][A-Za-z0-9_-]{0,63}\Z")


def is_username(name: object) -> bool:
    return isinstance(name, str) and _USERNAME.match(name) is not None


# ---- durations

_INT64_MAX = 2**63 - 1
_DURATION_UNITS_NS = {
    "ns": 1,
    "u": 1_000,
    "us": 1_000,
    "µ": 1_000,
    "µs": 1_000,
    "μ": 1_000,  # Greek mu, which people type for the micro sign
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
    "d": 86_400_000_000_000,
    "w": 604_800_000_000_000,
}
# Longer units first so "ms" is not read as "m" followed by a stray "s".
_DURATION_PART = re.compile(r"([0-9]+)(ns|us|µs|μs|ms|u|µ|μ|s|m|h|d|w)")
_DURATION_PART_FRACTION = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|μs|ms|u|µ|μ|s|m|h|d|w)")


class InvalidDuration(ValueError):
    """Not a duration; the message says why ("invalid duration 10x", "overflowed duration ...")."""


def parse_duration(text: str, *, fractions: bool = False) -> int:
    """A duration -> ns: InfluxQL's syntax (`10s`, `1h30m`, `100ms`, `5u`); with `fractions`, a part
    may also have decimals (`0.5s`, `1.5h`, as people write them). InvalidDuration if malformed or
    beyond int64."""
    part = _DURATION_PART_FRACTION if fractions else _DURATION_PART
    total, pos = 0, 0
    while pos < len(text):
        match = part.match(text, pos)
        if match is None:
            raise InvalidDuration(f"invalid duration {text}")
        unit = _DURATION_UNITS_NS[match[2]]
        total += int(Decimal(match[1]) * unit) if "." in match[1] else int(match[1]) * unit
        pos = match.end()
    if not text:
        raise InvalidDuration("invalid duration: empty")
    if total > _INT64_MAX:
        raise InvalidDuration(f"overflowed duration {text}")
    return total


# ---- times

_TIME_STRING = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:[T ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?(Z|[+-][0-9]{2}:[0-9]{2})?)?"
)
_EPOCH_ORDINAL = _dt.date(1970, 1, 1).toordinal()


def parse_time_string(text: str) -> int:
    """'2015-08-18T00:00:00Z', '...T00:00:00.5+02:00', '2015-08-18 00:00:00', '2015-08-18' -> ns (UTC)."""
    match = _TIME_STRING.fullmatch(text)
    if match is None:
        raise ValueError(f"invalid time string '{text}': use RFC3339 like '2015-08-18T00:00:00Z'")
    year, month, day, hour, minute, second = (int(g or 0) for g in match.groups()[:6])
    fraction, zone = match[7], match[8]
    try:  # datetime validates the calendar (month 13, Feb 30, hour 25 ...)
        _dt.datetime(year, month, day, hour, minute, second)
    except ValueError as exc:
        raise ValueError(f"invalid time string '{text}': {exc}") from None
    seconds = (_dt.date(year, month, day).toordinal() - _EPOCH_ORDINAL) * 86_400 + hour * 3600 + minute * 60 + second
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return seconds * 1_000_000_000 + int((fraction or "").ljust(9, "0"))


def iso_time(ns: int, timespec: str = "milliseconds", utc: str = "Z") -> str:
    """ns since the epoch as ISO 8601 in UTC: '2026-01-02T03:04:05.678Z'; `timespec` as datetime's
    isoformat takes it, `utc` the suffix that says UTC ('Z' or '+00:00')."""
    text = _dt.datetime.fromtimestamp(ns / 1e9, tz=_dt.timezone.utc).isoformat(timespec=timespec)
    return text.removesuffix("+00:00") + utc
