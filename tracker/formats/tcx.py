"""TCX (Garmin's Training Center XML) with the standard library's ElementTree: no maintained library
writes TCX. Read in one streaming pass (tracker.formats.xmlstream, as GPX): Activities/Activity (Sport) and Courses/Course; Trackpoints' Time, Position,
AltitudeMeters, DistanceMeters (-> dist_km), HeartRateBpm, Cadence and the ActivityExtension's TPX Speed
and Watts; Author or Creator Name -> device."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from tracker.formats.track import MPS_TO_KPH, Fields, FormatError, Track, device_name, rfc3339, sport_name
from tracker.formats.xmlstream import LocalNames, events, first_child, parse_time, release

TCX = "http://www.garmin.com/xmlschemas/TrainingCenterDatabase/v2"
AX = "http://www.garmin.com/xmlschemas/ActivityExtension/v2"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
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


# The elements the reading pass acts on; every other element is read through the one holding it.
STRUCTURE = {"TrainingCenterDatabase", "Activities", "Activity", "Courses", "Course", "Track", "Trackpoint", "Author"}


def _trackpoint(point: ET.Element, track: Track, names: LocalNames) -> tuple[str | None, Fields]:
    """(the Time's text, the values): one walk over the Trackpoint's elements."""
    when: str | None = None
    fields: Fields = {}
    for element in point.iter():
        name = names[element.tag]
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


def _text(parent: ET.Element, path: tuple[str, ...], names: LocalNames) -> str | None:
    """The text down a path of children (local names); None when one is missing."""
    element: ET.Element | None = parent
    for step in path:
        element = first_child(element, step, names) if element is not None else None
    return (element.text or "") if element is not None else None


def read(data: bytes) -> list[Track]:
    """One pass: each Trackpoint is read at its end and dropped, each Activity and Course once read.
    The device is the first Activity's Creator, else the Author (which ends the file)."""
    tracks: list[Track] = []
    names = LocalNames()
    track = Track()
    holder: ET.Element | None = None  # the Track whose Trackpoints are being read
    parent: ET.Element | None = None  # the Activities or Courses being read
    creator: str | None = None
    author: str | None = None
    for event, element in events(data):
        name = names[element.tag]
        if name not in STRUCTURE:
            continue
        if event == "start":
            if name == "Activity":
                sport = element.get("Sport") or ""
                track = Track(sport=TCX_SPORTS_READ.get(sport, "" if sport == "Other" else sport_name(sport)))
            elif name == "Course":
                track = Track(kind="course")
            elif name == "Track":
                holder = element
            elif name == "Activities" or name == "Courses":
                parent = element
            continue
        if name == "Trackpoint":
            when, fields = _trackpoint(element, track, names)
            if track.kind == "activity":
                track.points.append((parse_time(when, "Trackpoint Time"), fields))
            elif "lat" in fields:
                track.route.append((fields["lat"], fields["lng"], fields.get("alt_m")))
            release(element, holder)
        elif name == "Activity":
            track.name = _text(element, ("Id",), names) or ""
            if creator is None:
                creator = _text(element, ("Creator", "Name"), names)
            tracks.append(track.finish())
            release(element, parent)
        elif name == "Course":
            track.name = _text(element, ("Name",), names) or ""
            tracks.append(track)
            release(element, parent)
        elif name == "Author":
            author = _text(element, ("Name",), names)
    if not tracks:
        raise FormatError("no Activity or Course in the file")
    device = device_name(creator or author)
    for track in tracks:
        track.device = device
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
