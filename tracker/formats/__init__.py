"""Activity files: GPX, TCX, FIT, CSV and GeoJSON, read into tracks and written from them (pure: bytes
in, tracks out, and back; no storage).

`read(data, filename)` tells the format by the content (a FIT header, the XML root), not by the name;
`write(fmt, track)` writes one. Values are held in the vocabulary's keys and units (tracker.vocabulary):
speeds in km/h, distances in km, positions in degrees. What a file had that the vocabulary has no key
for is counted per source field in `Track.unmapped`.
"""

from __future__ import annotations

import zlib

from tracker.formats import csvfile, fit, geojson, gpx, tcx
from tracker.formats.track import GZIP_MAGIC, FormatError, Track, detect, device_name

READERS = {"gpx": gpx.read, "tcx": tcx.read, "fit": fit.read}
WRITERS = {"gpx": gpx.write, "tcx": tcx.write, "fit": fit.write, "csv": csvfile.write, "geojson": geojson.write}
EXPORT_FORMATS: tuple[str, ...] = tuple(WRITERS)
MEDIA_TYPES = {
    "gpx": "application/gpx+xml",
    "tcx": "application/vnd.garmin.tcx+xml",
    "fit": "application/vnd.ant.fit",
    "csv": "text/csv",
    "geojson": "application/geo+json",
}

__all__ = ["EXPORT_FORMATS", "FormatError", "MEDIA_TYPES", "Track", "detect", "device_name", "read", "write"]


def read(data: bytes, filename: str | None = None, *, max_inflated: int = 250_000_000) -> list[Track]:
    """The tracks of a GPX, TCX or FIT file, gzipped or not (Strava's bulk export gzips them); FormatError
    naming the file, the format and the fault. A gzipped file inflates to at most `max_inflated` bytes."""
    label = filename or "the file"
    if data[:2] == GZIP_MAGIC:
        data = _gunzip(data, max_inflated, label)
    fmt = detect(data)
    if fmt is None:
        raise FormatError(f"{label}: not a GPX, TCX or FIT file (told by its content, not its name)")
    try:
        tracks = READERS[fmt](data)
    except FormatError as exc:
        raise FormatError(f"{label}: {fmt.upper()}: {exc}") from None
    except (ValueError, TypeError, LookupError, AttributeError, OverflowError, EOFError, SyntaxError) as exc:
        # What a library raises on a damaged file it did not foresee: still the file's fault, and said so.
        raise FormatError(f"{label}: {fmt.upper()}: not readable: {type(exc).__name__}: {exc}") from None
    for track in tracks:
        track.format = fmt
    return tracks


def _gunzip(data: bytes, limit: int, label: str) -> bytes:
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        inflated = inflater.decompress(data, limit + 1)  # never more than the limit in memory, whatever the ratio
    except zlib.error as exc:
        raise FormatError(f"{label}: gzip: not readable: {exc}") from None
    if len(inflated) > limit:
        raise FormatError(f"{label}: gzip: inflates to more than {limit} bytes")
    if not inflater.eof:
        raise FormatError(f"{label}: gzip: not readable: the file ends early")
    return inflated


def write(fmt: str, track: Track) -> bytes:
    if fmt not in WRITERS:
        raise ValueError(f"format must be one of {', '.join(EXPORT_FORMATS)}, got {fmt!r}")
    return WRITERS[fmt](track)
