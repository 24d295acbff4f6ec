"""CSV: a header `time,time_ns,<vocabulary keys present>`, one row per sample; time is RFC 3339 UTC."""

from __future__ import annotations

import csv
import io

from tracker.formats.track import Track, rfc3339


def write(track: Track) -> bytes:
    keys = track.keys()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["time", "time_ns", *keys])
    for time_ns, fields in track.points:
        writer.writerow([rfc3339(time_ns), time_ns, *(repr(fields[k]) if k in fields else "" for k in keys)])
    return out.getvalue().encode("utf-8")
