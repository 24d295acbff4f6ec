"""GPX through gpxpy: trk/trkpt with times is an activity; rte/rtept, or a trk without times, a course.

Read: ele -> alt_m; Garmin's TrackPointExtension (v1 and v2: hr, cad, atemp, wtemp, speed, course) and
the `power` element Strava and Wahoo write (or `PowerInW`) -> the vocabulary. Written: a trk with the
TrackPointExtension v2 (atemp, hr, cad, speed, course) and `power`; GPX points need a position, so samples
without lat/lng are left out.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import gpxpy
import gpxpy.gpx

from tracker.formats.track import MPS_TO_KPH, Fields, FormatError, Track, datetime_of, device_name, sport_name
from tracker.formats.xmlstream import LocalNames, events, first_child, parse_time, release

TPX_V2 = "http://www.garmin.com/xmlschemas/TrackPointExtension/v2"
# Extension elements by local name (any namespace): (vocabulary key, factor to its unit).
EXTENSION_FIELDS: dict[str, tuple[str, float]] = {
    "hr": ("hr_bpm", 1.0),
    "cad": ("cad_rpm", 1.0),
    "atemp": ("temp_c", 1.0),
    "speed": ("spd_kph", MPS_TO_KPH),
    "course": ("bearing", 1.0),
    "power": ("pwr_w", 1.0),
    "PowerInW": ("pwr_w", 1.0),
}
TPX_V2_FIELDS = (
    ("atemp", "temp_c", 1.0), ("hr", "hr_bpm", 1.0), ("cad", "cad_rpm", 1.0),
    ("speed", "spd_kph", 1 / MPS_TO_KPH), ("course", "bearing", 1.0),
)  # fmt: skip
# Elements that hold extension values rather than being one.
CONTAINERS = {"extensions", "TrackPointExtension", "TrackPointExtensionv1", "TrackPointExtensionv2"}
# The elements the reading pass acts on; every other element is read through the point, trk or rte holding it.
STRUCTURE = {"gpx", "metadata", "wpt", "rte", "rtept", "trk", "trkseg", "trkpt"}


def _extensions(extensions: ET.Element, fields: Fields, track: Track, names: LocalNames) -> None:
    """The values anywhere under a point's <extensions>, in document order."""
    for element in extensions.iter():
        name = names[element.tag]
        if name in CONTAINERS or len(element):
            continue
        mapping = EXTENSION_FIELDS.get(name)
        if name == "wtemp" and "temp_c" not in fields:
            mapping = ("temp_c", 1.0)  # water temperature, when the air's is not given
        try:
            value = float(element.text or "")
        except ValueError:
            track.note_unmapped(name)
            continue
        if mapping is None:
            track.note_unmapped(name)
        else:
            key, factor = mapping
            fields[key] = value * factor


def _point(point: ET.Element, track: Track, names: LocalNames) -> tuple[int | None, Fields]:
    """A trkpt's or rtept's (time ns or None, values): its attributes and one walk over its children."""
    try:
        fields: Fields = {"lat": float(point.get("lat", "")), "lng": float(point.get("lon", ""))}
    except ValueError:
        raise FormatError(f"{names[point.tag]} lat={point.get('lat')!r} lon={point.get('lon')!r}: not a position") from None
    when: int | None = None
    for part in point:
        name = names[part.tag]
        if name == "time":
            if part.text and not part.text.isspace():  # an empty <time/> is no time, as gpxpy reads it
                when = parse_time(part.text, f"{names[point.tag]} time")
        elif name == "ele" or name == "speed":
            try:
                value = float(part.text or "")
            except ValueError:
                track.note_unmapped(name)
                continue
            if name == "ele":
                fields["alt_m"] = value
            else:
                fields["spd_kph"] = value * MPS_TO_KPH  # GPX 1.0's <speed>, m/s
        elif name == "extensions":
            _extensions(part, fields, track, names)
    return when, fields


def _text(parent: ET.Element, name: str, names: LocalNames) -> str:
    element = first_child(parent, name, names)
    return (element.text or "").strip() if element is not None else ""


def read(data: bytes) -> list[Track]:
    try:
        tracks = _read(data)
    except FormatError as exc:
        raise FormatError(f"not readable: {exc}") from None
    if not tracks:
        raise FormatError("no trk or rte in the file")
    return tracks


def _read(data: bytes) -> list[Track]:
    """One pass: each trkpt/rtept is read at its end and dropped; trk, rte and wpt leave the root once
    read. A trk's name and type precede its points, metadata precedes both, the creator is on the root."""
    # (track, whether it has a name of its own, else the document's, known by the end): trk then rte.
    from_trk: list[tuple[Track, bool]] = []
    from_rte: list[tuple[Track, bool]] = []
    root: ET.Element | None = None
    holder: ET.Element | None = None  # the trkseg or rte whose points are being read
    track = Track()
    points: list[tuple[int | None, Fields]] = []
    document_name = ""
    names = LocalNames()
    for event, element in events(data):
        name = names[element.tag]
        if name not in STRUCTURE:
            continue
        if event == "start":
            if name == "gpx" and root is None:
                root = element
            elif name == "trk" or name == "rte":
                track, points = Track(), []
            if name == "trkseg" or name == "rte":
                holder = element
            continue
        if name == "trkpt" or name == "rtept":
            points.append(_point(element, track, names))
            release(element, holder)
        elif name == "trk" or name == "rte":
            if name == "trk" and not points:
                release(element, root)
                continue  # an empty trk (GPS units write them): nothing to import
            track.name = _text(element, "name", names)
            if name == "trk":
                track.sport = sport_name(_text(element, "type", names))
            if name == "rte" or all(when is None for when, _ in points):
                track.kind = "course"
                track.unmapped.clear()  # a course's points are positions only
                track.route = [(f["lat"], f["lng"], f.get("alt_m")) for _, f in points]
            else:
                for when, fields in points:
                    if when is None:
                        track.note_unmapped("trkpt without time")
                    else:
                        track.points.append((when, fields))
                track.finish()
            (from_trk if name == "trk" else from_rte).append((track, bool(track.name)))
            release(element, root)
        elif name == "wpt":
            release(element, root)
        elif name == "metadata" or element is root:
            document_name = document_name or _text(element, "name", names)  # GPX 1.1 metadata/name, GPX 1.0 gpx/name
    device = device_name(root.get("creator") if root is not None else None)
    for track, has_name in from_trk + from_rte:
        track.device = device
        if not has_name:
            track.name = document_name
    return [track for track, _ in from_trk + from_rte]


def write(track: Track) -> bytes:
    document = gpxpy.gpx.GPX()
    document.creator = track.device or "Tracker"  # read back as the device: a re-import lands on the same track
    document.nsmap["gpxtpx"] = TPX_V2
    trk = gpxpy.gpx.GPXTrack(name=track.name or None)
    trk.type = track.sport or None  # type: ignore[assignment]  # gpxpy's stub says None; the field holds text
    segment = gpxpy.gpx.GPXTrackSegment()
    trk.segments.append(segment)
    document.tracks.append(trk)
    for time_ns, fields in track.points:
        if "lat" not in fields or "lng" not in fields:
            continue
        point = gpxpy.gpx.GPXTrackPoint(
            fields["lat"], fields["lng"], elevation=fields.get("alt_m"), time=datetime_of(time_ns)
        )
        tpx = ET.Element(f"{{{TPX_V2}}}TrackPointExtension")
        # In the order TrackPointExtension v2's schema (a sequence) has them.
        for name, key, factor in TPX_V2_FIELDS:
            if key in fields:
                child = ET.SubElement(tpx, f"{{{TPX_V2}}}{name}")
                value = fields[key] * factor
                child.text = str(round(value)) if name in ("hr", "cad") else repr(value)
        if "pwr_w" in fields:
            power = ET.Element("power")
            power.text = str(round(fields["pwr_w"]))
            point.extensions.append(power)
        if len(tpx):
            point.extensions.append(tpx)
        segment.points.append(point)
    return document.to_xml(version="1.1").encode("utf-8")
