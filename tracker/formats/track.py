"""The track every format reads into and writes from, and telling a file's format by its content."""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass, field

from tracker import vocabulary

EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
SEMICIRCLE_DEG = 180.0 / 2**31  # FIT positions are 32-bit "semicircles"
MPS_TO_KPH = 3.6
GZIP_MAGIC = b"\x1f\x8b"


class FormatError(ValueError):
    """A file that cannot be read: the message names the file, the format and what is wrong."""


Fields = dict[str, float]


@dataclass(slots=True)
class Track:
    name: str = ""
    sport: str = ""  # lowercased: cycling, running, ... or "" when the file names none
    device: str = ""  # the file's device or creator, lowercased, spaces to '-'
    kind: str = "activity"  # "activity" (timed points) or "course" (a route to follow)
    points: list[tuple[int, Fields]] = field(default_factory=list)  # (time ns, vocabulary fields), time order
    route: list[tuple[float, float, float | None]] = field(default_factory=list)  # courses: (lat, lng, alt)
    unmapped: dict[str, int] = field(default_factory=dict)  # source field -> values the vocabulary has no key for
    format: str = ""  # set by read(): gpx, tcx or fit

    def note_unmapped(self, source_field: str) -> None:
        self.unmapped[source_field] = self.unmapped.get(source_field, 0) + 1

    def keys(self) -> list[str]:
        """The vocabulary keys any point has, in the vocabulary's order."""
        present: set[str] = set()
        for _, fields in self.points:
            present.update(fields)
        return [key for key in vocabulary.FIELD_KEYS if key in present]

    def finish(self) -> Track:
        """Points in time order, one per time (a repeated time merges, later values win), values held
        to the vocabulary's ranges (an out-of-range value is dropped and counted as unmapped)."""
        merged: dict[int, Fields] = {}
        for time_ns, fields in self.points:
            kept: Fields = {}
            for key, value in fields.items():
                spec = vocabulary.BY_KEY[key]
                if math.isfinite(value) and spec.low <= value <= spec.high:
                    kept[key] = value
                else:
                    self.note_unmapped(f"{key} (out of range)")
            if kept:
                merged.setdefault(time_ns, {}).update(kept)
        self.points = sorted(merged.items())
        return self


def device_name(text: str | None) -> str:
    """A file's device or creator as a `device` tag: lowercased, spaces to '-'."""
    return "-".join((text or "").lower().split())


def sport_name(text: str | None) -> str:
    return "_".join((text or "").strip().lower().split())


def ns_of(moment: _dt.datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.timezone.utc)  # GPX and TCX times without a zone are UTC
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000


def datetime_of(time_ns: int) -> _dt.datetime:
    return EPOCH + _dt.timedelta(microseconds=time_ns // 1000)


def rfc3339(time_ns: int) -> str:
    """Nanoseconds as RFC 3339 UTC, with as many fraction digits as the time needs (none for whole seconds)."""
    seconds, fraction = divmod(time_ns, 10**9)
    text = (EPOCH + _dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")
    if fraction:
        text += "." + f"{fraction:09d}".rstrip("0")
    return text + "Z"


def detect(data: bytes) -> str | None:
    """gpx, tcx or fit by the content (already inflated); None for anything else (line protocol, for one)."""
    if len(data) >= 12 and data[8:12] == b".FIT":
        return "fit"
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head.startswith(b"<"):
        return None
    if b"<gpx" in head:
        return "gpx"
    if b"TrainingCenterDatabase" in head:
        return "tcx"
    return None
