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

from tracker.formats.track import (
    MPS_TO_KPH,
    Fields,
    FormatError,
    Track,
    datetime_of,
    device_name,
    ns_of,
    sport_name,
)

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
CONTAINERS = {"TrackPointExtension", "TrackPointExtensionv1", "TrackPointExtensionv2"}


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _extensions(elements: list[ET.Element], fields: Fields, track: Track) -> None:
    for element in elements:
        name = _local(element.tag)
        if name in CONTAINERS or len(element):
            _extensions(list(element), fields, track)
            continue
        mapping = EXTENSION_FIELDS.get(name)
        if name == "wtemp" and "temp_c" not in fields:
            mapping = ("temp_c", 1.0)  # water temperature, when the air's is not given
        try:
            value = float((element.text or "").strip())
        except ValueError:
            track.note_unmapped(name)
            continue
        if mapping is None:
            track.note_unmapped(name)
        else:
            key, factor = mapping
            fields[key] = value * factor


def read(data: bytes) -> list[Track]:
    try:
        document = gpxpy.parse(data.decode("utf-8-sig", "replace"))
    except gpxpy.gpx.GPXException as exc:
        raise FormatError(f"not readable: {exc}") from None
    device = device_name(document.creator)
    tracks: list[Track] = []
    for trk in document.tracks:
        points = [p for segment in trk.segments for p in segment.points]
        if not points:
            continue  # an empty trk (GPS units write them): nothing to import
        track = Track(name=trk.name or document.name or "", sport=sport_name(trk.type), device=device)
        if points and all(p.time is None for p in points):
            track.kind = "course"
            track.route = [(p.latitude, p.longitude, p.elevation) for p in points]
        else:
            for p in points:
                if p.time is None:
                    track.note_unmapped("trkpt without time")
                    continue
                fields: Fields = {"lat": p.latitude, "lng": p.longitude}
                if p.elevation is not None:
                    fields["alt_m"] = p.elevation
                if p.speed is not None:
                    fields["spd_kph"] = p.speed * MPS_TO_KPH  # GPX 1.0's <speed>, m/s
                _extensions(p.extensions, fields, track)
                track.points.append((ns_of(p.time), fields))
        tracks.append(track.finish())
    for rte in document.routes:
        tracks.append(Track(
            name=rte.name or document.name or "", device=device, kind="course",
            route=[(p.latitude, p.longitude, p.elevation) for p in rte.points],
        ))  # fmt: skip
    if not tracks:
        raise FormatError("no trk or rte in the file")
    return tracks


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
