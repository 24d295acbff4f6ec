"""TCX (Garmin's Training Center XML) with the standard library's ElementTree: no maintained library
writes TCX. Read: Activities/Activity (Sport) and Courses/Course; Trackpoints' Time, Position,
AltitudeMeters, DistanceMeters (-> dist_km), HeartRateBpm, Cadence and the ActivityExtension's TPX Speed
and Watts; Author or Creator Name -> device."""

from __future__ import annotations

import datetime as _dt
import xml.etree.ElementTree as ET

from tracker.formats.track import (
    MPS_TO_KPH,
    Fields,
    FormatError,
    Track,
    device_name,
    ns_of,
    rfc3339,
    sport_name,
)

TCX = "http://www.garmin.com/xmlschemas/TrainingCenterDatabase/v2"
AX = "http://www.garmin.com/xmlschemas/ActivityExtension/v2"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
N = {"t": TCX, "x": AX}
# A Trackpoint's leaf elements by local name -> (vocabulary key, factor to its unit); HeartRateBpm's
# only child is Value, TPX (under Extensions) holds Speed, Watts and RunCadence.
TRACKPOINT_LEAVES: dict[str, tuple[str, float]] = {
    "LatitudeDegrees": ("lat", 1.0),
    "LongitudeDegrees": ("lng", 1.0),
    "AltitudeMeters": ("alt_m", 1.0),
    "DistanceMeters": ("dist_km", 0.001),
    "Value": ("hr_bpm", 1.0),
    "Cadence": ("cad_rpm", 1.0),
    "Speed": ("spd_kph", MPS_TO_KPH),
    "Watts": ("pwr_w", 1.0),
    "RunCadence": ("cad_rpm", 1.0),
}
NOT_VALUES = {"Trackpoint", "Time", "Position", "HeartRateBpm", "Extensions", "TPX", "SensorState"}
TCX_SPORTS_READ = {"Biking": "cycling", "Running": "running"}


def _time(text: str | None) -> int:
    try:
        return ns_of(_dt.datetime.fromisoformat((text or "").strip().replace("Z", "+00:00")))
    except ValueError:
        raise FormatError(f"Trackpoint Time {text!r} is not an ISO 8601 time") from None


def _trackpoint(point: ET.Element, track: Track) -> tuple[str | None, Fields]:
    """(the Time's text, the values): one walk over the Trackpoint's elements."""
    when: str | None = None
    fields: Fields = {}
    for element in point.iter():
        name = element.tag.rpartition("}")[2]
        mapping = TRACKPOINT_LEAVES.get(name)
        if mapping is not None:
            try:
                fields[mapping[0]] = float(element.text or "") * mapping[1]
            except ValueError:
                track.note_unmapped(name)
        elif name == "Time":
            when = element.text
        elif name not in NOT_VALUES:
            track.note_unmapped(name)
    if ("lat" in fields) != ("lng" in fields):  # half a position is none
        fields.pop("lat", None)
        fields.pop("lng", None)
    return when, fields


def read(data: bytes) -> list[Track]:
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise FormatError(f"not well-formed XML: {exc}") from None
    # The recording device's name, else the writing application's (a course has only an Author).
    device = device_name(
        root.findtext("t:Activities/t:Activity/t:Creator/t:Name", None, N) or root.findtext("t:Author/t:Name", None, N)
    )
    tracks: list[Track] = []
    for activity in root.findall("t:Activities/t:Activity", N):
        sport = activity.get("Sport") or ""
        track = Track(sport=TCX_SPORTS_READ.get(sport, "" if sport == "Other" else sport_name(sport)), device=device)
        name = activity.find("t:Id", N)
        track.name = (name.text or "") if name is not None else ""
        for point in activity.iter(f"{{{TCX}}}Trackpoint"):
            when, fields = _trackpoint(point, track)
            track.points.append((_time(when), fields))
        tracks.append(track.finish())
    for course in root.findall("t:Courses/t:Course", N):
        track = Track(name=course.findtext("t:Name", "", N), device=device, kind="course")
        for point in course.iter(f"{{{TCX}}}Trackpoint"):
            _, fields = _trackpoint(point, track)
            if "lat" in fields:
                track.route.append((fields["lat"], fields["lng"], fields.get("alt_m")))
        tracks.append(track)
    if not tracks:
        raise FormatError("no Activity or Course in the file")
    return tracks


TCX_SPORTS = {"running": "Running", "cycling": "Biking"}  # TCX knows these two sports and "Other"


def write(track: Track) -> bytes:
    # Written with Garmin Connect's prefixes (the default namespace, ns3 for the extension), declared by hand.
    root = ET.Element("TrainingCenterDatabase", {"xmlns": TCX, "xmlns:ns3": AX})
    activities = ET.SubElement(root, "Activities")
    activity = ET.SubElement(activities, "Activity", Sport=TCX_SPORTS.get(track.sport, "Other"))
    first = track.points[0][0] if track.points else 0
    ET.SubElement(activity, "Id").text = rfc3339(first)
    lap = ET.SubElement(activity, "Lap", StartTime=rfc3339(first))
    elapsed = (track.points[-1][0] - first) / 1e9 if track.points else 0.0
    ET.SubElement(lap, "TotalTimeSeconds").text = repr(elapsed)
    distances = [f["dist_km"] for _, f in track.points if "dist_km" in f]
    ET.SubElement(lap, "DistanceMeters").text = repr((distances[-1] - distances[0]) * 1000 if distances else 0.0)
    ET.SubElement(lap, "Calories").text = "0"
    ET.SubElement(lap, "Intensity").text = "Active"
    ET.SubElement(lap, "TriggerMethod").text = "Manual"
    trk = ET.SubElement(lap, "Track")

    def child(parent: ET.Element, name: str, text: str) -> ET.Element:
        element = ET.SubElement(parent, name)
        element.text = text
        return element

    for time_ns, fields in track.points:
        point = ET.SubElement(trk, "Trackpoint")
        child(point, "Time", rfc3339(time_ns))
        if "lat" in fields and "lng" in fields:
            position = ET.SubElement(point, "Position")
            child(position, "LatitudeDegrees", repr(fields["lat"]))
            child(position, "LongitudeDegrees", repr(fields["lng"]))
        if "alt_m" in fields:
            child(point, "AltitudeMeters", repr(fields["alt_m"]))
        if "dist_km" in fields:
            child(point, "DistanceMeters", repr(fields["dist_km"] * 1000))
        if "hr_bpm" in fields:
            child(ET.SubElement(point, "HeartRateBpm"), "Value", str(round(fields["hr_bpm"])))
        if "cad_rpm" in fields:
            child(point, "Cadence", str(round(fields["cad_rpm"])))
        if "spd_kph" in fields or "pwr_w" in fields:
            tpx = ET.SubElement(ET.SubElement(point, "Extensions"), "ns3:TPX")
            if "spd_kph" in fields:
                child(tpx, "ns3:Speed", repr(fields["spd_kph"] / MPS_TO_KPH))
            if "pwr_w" in fields:
                child(tpx, "ns3:Watts", str(round(fields["pwr_w"])))
    if track.device:
        creator = ET.SubElement(activity, "Creator", {"xsi:type": "Device_t", "xmlns:xsi": XSI})
        child(creator, "Name", track.device)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
