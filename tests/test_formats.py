"""tracker.formats on files other software wrote (gpxpy's own test files, FIT files written by fit_tool,
TCX as Garmin Connect writes it), and round trips of our exports through independent readers
(gpxpy, Garmin's FIT SDK, fitdecode, tcxreader, the standard library's csv and json)."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import time
import tracemalloc
from pathlib import Path

import fitdecode
import gpxpy
import pytest
from fit_tool.fit_file_builder import FitFileBuilder
from fit_tool.profile.messages.course_message import CourseMessage
from fit_tool.profile.messages.file_id_message import FileIdMessage
from fit_tool.profile.messages.record_message import RecordMessage
from fit_tool.profile.messages.session_message import SessionMessage
from fit_tool.profile.profile_type import FileType, GarminProduct, Manufacturer, Sport
from garmin_fit_sdk import Decoder, Stream
from tcxreader.tcxreader import TCXReader

from tracker import formats
from tracker.formats import FormatError, Track

FIXTURES = Path(__file__).parent / "fixtures-cache" / "gpxpy"
SECOND = 10**9
T0 = 1_796_000_000 * SECOND  # 2026-11-30, whole seconds


def fixture(name: str) -> bytes:
    path = FIXTURES / name
    if not path.is_file():
        pytest.fail(f"{path} is missing: `make fixtures` downloads gpxpy's test files (make test runs it)")
    return path.read_bytes()


def ns(text: str) -> int:
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return round(moment.timestamp()) * SECOND if moment.microsecond == 0 else int(moment.timestamp() * 1e6) * 1000


# ----- GPX files gpxpy ships (written by GPSBabel, a Garmin eTrex, NikePlus, Runkeeper)


def test_gpsbabel_track_matches_gpxpy_and_the_xml() -> None:
    data = fixture("cerknicko-jezero.gpx")
    tracks = formats.read(data, "cerknicko-jezero.gpx")
    reference = [p for t in gpxpy.parse(data.decode()).tracks for s in t.segments for p in s.points]
    # Eight trk, the first empty: seven tracks, every trkpt in one.
    assert [t.name for t in tracks] == [f"ACTIVE LOG #{n}" for n in range(2, 9)]
    assert sum(len(t.points) for t in tracks) == len(reference) == 296
    track = tracks[0]
    assert track.kind == "activity" and track.format == "gpx"
    assert track.device == "gpsbabel---http://www.gpsbabel.org"  # creator="GPSBabel - http://www.gpsbabel.org"
    # The first trkpt, read by hand from the XML.
    time_ns, fields = track.points[0]
    assert time_ns == ns("2010-08-05T14:23:59Z")
    assert fields == {"lat": 45.772175035, "lng": 14.357659249, "alt_m": 542.320923}
    last = reference[-1]
    assert tracks[-1].points[-1][1]["lat"] == last.latitude and tracks[-1].points[-1][1]["alt_m"] == last.elevation


def test_garmin_etrex_track_names_the_device() -> None:
    [track] = formats.read(fixture("around-visnjan-with-car.gpx"), "around-visnjan-with-car.gpx")
    assert track.device == "etrex-20x" and track.name == "2020-12-18 07:24:29"
    assert len(track.points) == 104
    assert track.points[0] == (ns("2020-12-18T06:15:50Z"), {"lat": 45.273518851, "lng": 13.7142099626, "alt_m": 211.15})


def test_sub_second_times_with_a_zone_and_the_sport() -> None:
    [track] = formats.read(fixture("track-with-less-sec-time.gpx"), "t.gpx")
    assert track.sport == "run" and track.device == "nikeplus-gpx-bridge"
    # 2015-12-11T15:43:13.994+01:00
    assert track.points[1][0] == ns("2015-12-11T14:43:13Z") + 994_000_000


def test_gpx_1_0_speed_is_km_per_hour() -> None:
    [track] = formats.read(fixture("track_with_speed.gpx"), "track_with_speed.gpx")
    assert [round(f["spd_kph"], 9) for _, f in track.points] == [round(1.2 * 3.6, 9), round(2.2 * 3.6, 9), round(3.2 * 3.6, 9)]


def test_track_without_times_is_a_course() -> None:
    tracks = formats.read(fixture("cerknicko-without-times.gpx"), "c.gpx")
    # The file's times were taken out except in its last trk (5 of its 21 trkpt still have one).
    assert [t.kind for t in tracks] == ["course"] * 6 + ["activity"]
    assert sum(len(t.route) for t in tracks[:6]) == 296 - 21
    assert len(tracks[6].points) == 5 and tracks[6].unmapped == {"trkpt without time": 16}
    assert tracks[0].route[0] == (45.772175035, 14.357659249, 542.320923)


def test_route_is_a_course() -> None:
    data = fixture("route.gpx")
    tracks = formats.read(data, "route.gpx")
    reference = gpxpy.parse(data.decode()).routes[0].points
    assert [t.kind for t in tracks] == ["course"]
    assert len(tracks[0].route) == len(reference)
    assert tracks[0].route[0] == (45.2787641494, 13.726695478, None)


def test_a_file_of_waypoints_only_is_refused_by_name() -> None:
    with pytest.raises(FormatError, match=r"^gpx_with_garmin_extension\.gpx: GPX: no trk or rte"):
        formats.read(fixture("gpx_with_garmin_extension.gpx"), "gpx_with_garmin_extension.gpx")


GARMIN_CONNECT_GPX = """<?xml version="1.0" encoding="UTF-8"?>
<gpx creator="Garmin Edge 530" version="1.1" xmlns="http://www.topografix.com/GPX/1/1"
     xmlns:gpxtpx="http://www.garmin.com/xmlschemas/TrackPointExtension/v1">
 <trk><name>Morning Ride</name><type>cycling</type><trkseg>
  <trkpt lat="46.0512340" lon="14.5060010"><ele>295.4</ele><time>2026-11-30T07:00:00Z</time>
   <extensions><power>212</power><gpxtpx:TrackPointExtension><gpxtpx:atemp>4</gpxtpx:atemp>
   <gpxtpx:hr>131</gpxtpx:hr><gpxtpx:cad>88</gpxtpx:cad><gpxtpx:depth>3</gpxtpx:depth></gpxtpx:TrackPointExtension></extensions></trkpt>
  <trkpt lat="46.0512990" lon="14.5061270"><ele>295.8</ele><time>2026-11-30T07:00:01Z</time>
   <extensions><power>0</power><gpxtpx:TrackPointExtension><gpxtpx:hr>133</gpxtpx:hr></gpxtpx:TrackPointExtension></extensions></trkpt>
 </trkseg></trk>
</gpx>"""


def test_garmin_extension_and_power() -> None:
    [track] = formats.read(GARMIN_CONNECT_GPX.encode(), "ride.gpx")
    assert (track.name, track.sport, track.device) == ("Morning Ride", "cycling", "garmin-edge-530")
    assert track.points[0] == (
        ns("2026-11-30T07:00:00Z"),
        {"lat": 46.051234, "lng": 14.506001, "alt_m": 295.4, "pwr_w": 212.0, "temp_c": 4.0, "hr_bpm": 131.0, "cad_rpm": 88.0},
    )
    assert track.points[1][1]["pwr_w"] == 0.0
    assert track.unmapped == {"depth": 1}


# ----- TCX as Garmin Connect writes it (no independent TCX writer exists)

GARMIN_CONNECT_TCX = """<?xml version="1.0" encoding="UTF-8"?>
<TrainingCenterDatabase xmlns="http://www.garmin.com/xmlschemas/TrainingCenterDatabase/v2"
  xmlns:ns3="http://www.garmin.com/xmlschemas/ActivityExtension/v2">
 <Activities><Activity Sport="Biking"><Id>2026-11-30T07:00:00.000Z</Id>
  <Lap StartTime="2026-11-30T07:00:00.000Z"><TotalTimeSeconds>2.0</TotalTimeSeconds><Track>
   <Trackpoint><Time>2026-11-30T07:00:00.000Z</Time>
    <Position><LatitudeDegrees>46.05123</LatitudeDegrees><LongitudeDegrees>14.506001</LongitudeDegrees></Position>
    <AltitudeMeters>295.399994</AltitudeMeters><DistanceMeters>0.0</DistanceMeters>
    <HeartRateBpm><Value>131</Value></HeartRateBpm><Cadence>88</Cadence>
    <Extensions><ns3:TPX><ns3:Speed>8.5</ns3:Speed><ns3:Watts>212</ns3:Watts></ns3:TPX></Extensions></Trackpoint>
   <Trackpoint><Time>2026-11-30T07:00:01.000Z</Time><DistanceMeters>8.5</DistanceMeters>
    <HeartRateBpm><Value>133</Value></HeartRateBpm></Trackpoint>
  </Track></Lap>
  <Creator xsi:type="Device_t" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><Name>Edge 530</Name></Creator>
 </Activity></Activities>
</TrainingCenterDatabase>"""


def test_garmin_connect_tcx() -> None:
    [track] = formats.read(GARMIN_CONNECT_TCX.encode(), "ride.tcx")
    assert (track.sport, track.device, track.format) == ("cycling", "edge-530", "tcx")
    start = ns("2026-11-30T07:00:00Z")
    assert track.points == [
        (start, {"lat": 46.05123, "lng": 14.506001, "alt_m": 295.399994, "dist_km": 0.0, "hr_bpm": 131.0,
                 "cad_rpm": 88.0, "spd_kph": 8.5 * 3.6, "pwr_w": 212.0}),
        (start + SECOND, {"dist_km": 0.0085, "hr_bpm": 133.0}),
    ]  # fmt: skip


GARMIN_COURSE_TCX = """<?xml version="1.0" encoding="UTF-8"?>
<TrainingCenterDatabase xmlns="http://www.garmin.com/xmlschemas/TrainingCenterDatabase/v2">
 <Courses><Course><Name>Vrhnika loop</Name><Track>
  <Trackpoint><Time>2026-11-30T07:00:00Z</Time><Position><LatitudeDegrees>45.96</LatitudeDegrees>
   <LongitudeDegrees>14.29</LongitudeDegrees></Position><AltitudeMeters>293.0</AltitudeMeters></Trackpoint>
  <Trackpoint><Time>2026-11-30T07:00:10Z</Time><Position><LatitudeDegrees>45.961</LatitudeDegrees>
   <LongitudeDegrees>14.291</LongitudeDegrees></Position></Trackpoint>
 </Track></Course></Courses>
 <Author xsi:type="Application_t" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><Name>Garmin Connect</Name></Author>
</TrainingCenterDatabase>"""


def test_tcx_course() -> None:
    [track] = formats.read(GARMIN_COURSE_TCX.encode(), "loop.tcx")
    assert (track.kind, track.name, track.device) == ("course", "Vrhnika loop", "garmin-connect")
    assert track.route == [(45.96, 14.29, 293.0), (45.961, 14.291, None)] and not track.points


# ----- FIT files written by fit_tool, an independent library

FIT_START_MS = 1_796_000_000_000


def fit_tool_course(name: str = "Loop") -> bytes:
    """A FIT course file as fit_tool writes it: 0.001° north at a time from 45° N 13° E, three points."""
    builder = FitFileBuilder(auto_define=True, min_string_size=50)
    file_id = FileIdMessage()
    file_id.type = FileType.COURSE
    file_id.manufacturer = Manufacturer.DEVELOPMENT.value
    file_id.product = 0
    builder.add(file_id)
    course = CourseMessage()
    course.course_name = name
    course.sport = Sport.CYCLING
    builder.add(course)
    for i in range(3):
        record = RecordMessage()
        record.timestamp = FIT_START_MS + i * 10_000
        record.position_lat = 45.0 + i * 0.001
        record.position_long = 13.0
        builder.add(record)
    return builder.build().to_bytes()


def fit_tool_activity(count: int = 5) -> bytes:
    builder = FitFileBuilder(auto_define=True)
    file_id = FileIdMessage()
    file_id.type = FileType.ACTIVITY
    file_id.manufacturer = Manufacturer.GARMIN.value
    file_id.garmin_product = GarminProduct.EDGE_530.value
    file_id.time_created = FIT_START_MS
    file_id.serial_number = 0x12345678
    builder.add(file_id)
    for i in range(count):
        record = RecordMessage()
        record.timestamp = FIT_START_MS + i * 1000
        record.position_lat = 46.05 + i * 0.0001
        record.position_long = 14.5 + i * 0.0001
        record.altitude = 300.0 + i
        record.speed = 8.0
        record.distance = 8.0 * i
        record.heart_rate = 120 + i
        record.cadence = 85
        record.power = 200 + i
        record.temperature = 5
        record.grade = 1.5  # no vocabulary key: reported as unmapped
        builder.add(record)
    session = SessionMessage()
    session.timestamp = FIT_START_MS + count * 1000
    session.start_time = FIT_START_MS
    session.sport = Sport.CYCLING
    builder.add(session)
    return builder.build().to_bytes()


def test_fit_activity_from_fit_tool() -> None:
    [track] = formats.read(fit_tool_activity(), "ride.fit")
    assert (track.kind, track.sport, track.device, track.format) == ("activity", "cycling", "garmin-edge_530", "fit")  # the SDK names the product edge_530
    assert len(track.points) == 5
    time_ns, fields = track.points[2]
    assert time_ns == FIT_START_MS * 10**6 + 2 * SECOND
    assert fields["lat"] == pytest.approx(46.0502, abs=1e-7)  # semicircles: 8.4e-8 degrees
    assert fields["lng"] == pytest.approx(14.5002, abs=1e-7)
    assert fields["alt_m"] == pytest.approx(302.0, abs=0.2)  # FIT altitude: 1/5 m
    assert fields["spd_kph"] == pytest.approx(8.0 * 3.6, abs=0.001 * 3.6)
    assert fields["dist_km"] == pytest.approx(0.016, abs=1e-5)
    assert (fields["hr_bpm"], fields["cad_rpm"], fields["pwr_w"], fields["temp_c"]) == (122.0, 85.0, 202.0, 5.0)
    assert track.unmapped == {"grade": 5}


def test_fit_course_from_fit_tool() -> None:
    [track] = formats.read(fit_tool_course(), "loop.fit")
    assert track.kind == "course" and track.name == "Loop" and not track.points
    assert [(round(lat, 6), round(lng, 6)) for lat, lng, _ in track.route] == [(45.0, 13.0), (45.001, 13.0), (45.002, 13.0)]


def test_broken_fit_names_the_file_and_format() -> None:
    data = fit_tool_activity()
    with pytest.raises(FormatError, match=r"^ride\.fit: FIT: "):
        formats.read(data[:14] + b"\x00" * 3, "ride.fit")


def test_damaged_files_are_read_or_refused_never_crash() -> None:
    """Every truncation and a spread of flipped bytes: tracks, or a FormatError naming file and format."""
    for name, data in [("ride.fit", fit_tool_activity()), ("ride.gpx", GARMIN_CONNECT_GPX.encode()), ("ride.tcx", GARMIN_CONNECT_TCX.encode())]:
        damaged = [data[:cut] for cut in range(0, len(data), 7)]
        damaged += [data[:at] + bytes([data[at] ^ 0x5A]) + data[at + 1 :] for at in range(0, len(data), 11)]
        for variant in damaged:
            try:
                formats.read(variant, name)
            except FormatError as exc:
                assert str(exc).startswith(f"{name}: "), exc


def test_gzipped_files_and_their_bound() -> None:
    [track] = formats.read(gzip.compress(GARMIN_CONNECT_GPX.encode()), "ride.gpx.gz")
    assert track.format == "gpx" and len(track.points) == 2
    with pytest.raises(FormatError, match=r"^bomb\.gpx\.gz: gzip: inflates to more than 1000 bytes$"):
        formats.read(gzip.compress(b" " * 10**6), "bomb.gpx.gz", max_inflated=1000)
    with pytest.raises(FormatError, match=r"^bad\.gz: gzip: not readable"):
        formats.read(b"\x1f\x8b\x08\x00garbage", "bad.gz")


def test_broken_gpx_and_unknown_files() -> None:
    with pytest.raises(FormatError, match=r"^bad\.gpx: GPX: not readable"):
        formats.read(b"<?xml version='1.0'?><gpx><trk><trkseg><trkpt lat='x'", "bad.gpx")
    with pytest.raises(FormatError, match=r"^bad\.tcx: TCX: not well-formed XML"):
        formats.read(b"<TrainingCenterDatabase><Activities>", "bad.tcx")
    with pytest.raises(FormatError, match=r"^notes\.gpx: not a GPX, TCX or FIT file"):
        formats.read(b"hello", "notes.gpx")


def test_broken_xml_names_line_and_column() -> None:
    data = b"<?xml version='1.0'?>\n<gpx creator='x'>\n<trk><trkseg>\n<trkpt lat='1' lon='2'></trkseg>"
    # The fourth line's `</trkseg>` (at column 23, from 0) closes a trkpt: expat points past its `</`.
    with pytest.raises(FormatError, match=r"^bad\.gpx: GPX: not readable: not well-formed XML: mismatched tag: line 4, column 25$"):
        formats.read(data, "bad.gpx")
    with pytest.raises(FormatError, match=r"^cut\.gpx: GPX: not readable: not well-formed XML: unclosed token: line 8, column 2$"):
        formats.read(GARMIN_CONNECT_GPX.encode()[:600], "cut.gpx")


def entity_bomb(root: str) -> bytes:
    """Billion laughs: ten levels of ten references each, 10**9 'lol's from under a kilobyte."""
    levels = '<!ENTITY lol0 "lol">' + "".join(f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, 10))
    return f'<?xml version="1.0"?><!DOCTYPE {root} [{levels}]><{root}><trk><name>&lol9;</name></trk></{root}>'.encode()


@pytest.mark.parametrize(("name", "data"), [
    ("bomb.gpx", entity_bomb("gpx")),
    ("bomb.tcx", entity_bomb("TrainingCenterDatabase")),
])  # fmt: skip
def test_entity_expansion_is_refused_quickly(name: str, data: bytes) -> None:
    began = time.monotonic()
    with pytest.raises(FormatError, match=rf"^{name.replace('.', '[.]')}: .*limit on input amplification factor"):
        formats.read(data, name)
    assert time.monotonic() - began < 5  # refused within the first few megabytes, not after a gigabyte


def test_external_entities_are_not_fetched(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("Morning Ride")
    data = (f'<?xml version="1.0"?><!DOCTYPE gpx [<!ENTITY x SYSTEM "{secret.as_uri()}">]>'
            '<gpx><trk><name>&x;</name><trkseg><trkpt lat="1" lon="2"><time>2026-11-30T07:00:00Z</time></trkpt>'
            "</trkseg></trk></gpx>").encode()  # fmt: skip
    with pytest.raises(FormatError, match=r"^x\.gpx: GPX: not readable: not well-formed XML: undefined entity &x;"):
        formats.read(data, "x.gpx")


def long_file(fmt: str, points: int, padding: str) -> bytes:
    """A file whose every point carries `padding` in an element no reader keeps."""
    def time(i: int) -> str:
        return f"2026-11-30T07:{i // 60:02d}:{i % 60:02d}Z"

    if fmt == "gpx":
        body = "".join(f'<trkpt lat="46.{i:04d}" lon="14.5"><time>{time(i)}</time><desc>{padding}</desc></trkpt>' for i in range(points))
        return f'<gpx creator="x"><trk><trkseg>{body}</trkseg></trk></gpx>'.encode()
    body = "".join(
        f"<Trackpoint><Time>{time(i)}</Time><Position><LatitudeDegrees>46.{i:04d}</LatitudeDegrees>"
        f"<LongitudeDegrees>14.5</LongitudeDegrees></Position><Notes>{padding}</Notes></Trackpoint>"
        for i in range(points)
    )
    return (f'<TrainingCenterDatabase xmlns="http://www.garmin.com/xmlschemas/TrainingCenterDatabase/v2"><Activities>'
            f'<Activity Sport="Biking"><Id>{time(0)}</Id><Lap><Track>{body}</Track></Lap></Activity>'
            "</Activities></TrainingCenterDatabase>").encode()  # fmt: skip


@pytest.mark.parametrize("fmt", ["gpx", "tcx"])
def test_read_drops_each_point_once_read(fmt: str) -> None:
    """5 MB of padding over 500 points: a reader that kept the document would hold all of it."""
    data = long_file(fmt, 500, "d" * 10_000)
    tracemalloc.start()
    try:
        [track] = formats.read(data, f"long.{fmt}")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(track.points) == 500 and track.points[499][1] == {"lat": 46.0499, "lng": 14.5}
    assert peak < 1_500_000, peak


def test_gpx_names_times_and_zones() -> None:
    """GPX 1.0 (the name on the root, <speed>), times with offsets, nine-digit fractions and no zone;
    tracks before routes, as gpxpy lists them."""
    data = b"""<?xml version="1.0"?>
<gpx version="1.0" creator="Phone  App" xmlns="http://www.topografix.com/GPX/1/0">
 <name>Lunch walk</name>
 <wpt lat="1" lon="2"><name>not this one</name></wpt>
 <rte><rtept lat="45" lon="13"><ele>100</ele></rtept><rtept lat="45.5" lon="13.5"/></rte>
 <trk><type> Hiking </type><trkseg>
  <trkpt lat="46.5" lon="14.25"><name>nor this</name><time>2026-11-30T08:00:00.123456789+01:00</time></trkpt>
  <trkpt lat="46.6" lon="14.35"><time>2026-11-30T07:00:01</time><speed>2</speed></trkpt>
  <trkpt lat="46.7" lon="14.45"><time>2026-11-30T02:00:02-05:00</time><ele>-3.5</ele></trkpt>
 </trkseg></trk>
</gpx>"""
    walk, route = formats.read(data, "walk.gpx")
    assert (walk.name, walk.sport, walk.device, walk.kind) == ("Lunch walk", "hiking", "phone-app", "activity")
    assert walk.points == [
        (ns("2026-11-30T07:00:00Z") + 123_456_000, {"lat": 46.5, "lng": 14.25}),  # to the microsecond
        (ns("2026-11-30T07:00:01Z"), {"lat": 46.6, "lng": 14.35, "spd_kph": 7.2}),
        (ns("2026-11-30T07:00:02Z"), {"lat": 46.7, "lng": 14.45, "alt_m": -3.5}),
    ]
    assert (route.name, route.kind, route.route) == ("Lunch walk", "course", [(45.0, 13.0, 100.0), (45.5, 13.5, None)])
    [walk] = formats.read(data.replace(b"<time>2026-11-30T07:00:01</time>", b"<time> </time>"), "e.gpx")[:1]
    assert len(walk.points) == 2 and walk.unmapped == {"trkpt without time": 1}
    with pytest.raises(FormatError, match=r"^t\.gpx: GPX: not readable: trkpt time 'yesterday' is not an ISO 8601 time$"):
        formats.read(data.replace(b"2026-11-30T07:00:01", b"yesterday"), "t.gpx")
    with pytest.raises(FormatError, match=r"^p\.gpx: GPX: not readable: trkpt lat='north' lon='14.35': not a position$"):
        formats.read(data.replace(b'"46.6"', b'"north"'), "p.gpx")


# ----- our exports, read by independent libraries

POINTS = [
    (T0 + i * SECOND, {
        "lat": 46.05 + i * 1.23456e-5, "lng": 14.5 - i * 2.3456e-5, "alt_m": 300.0 + i * 0.4,
        "hr_bpm": 120.0 + i, "cad_rpm": 80.0 + i, "pwr_w": 150.0 + 10 * i, "spd_kph": 18.0 + i,
        "temp_c": 6.0, "dist_km": 0.005 * i, "bearing": 45.0 + i,
    })
    for i in range(20)
]  # fmt: skip
TRACK = Track(name="Ride", sport="cycling", device="phone", points=POINTS)


def test_gpx_export_read_by_gpxpy() -> None:
    document = gpxpy.parse(formats.write("gpx", TRACK).decode())
    points = document.tracks[0].segments[0].points
    assert document.tracks[0].type == "cycling" and len(points) == len(POINTS)
    for point, (time_ns, fields) in zip(points, POINTS):
        assert int(point.time.timestamp()) * SECOND == time_ns
        assert (point.latitude, point.longitude, point.elevation) == (fields["lat"], fields["lng"], fields["alt_m"])
        values = {el.tag.rpartition("}")[2]: float(el.text) for ext in point.extensions for el in [ext, *ext] if not len(el)}
        assert values["hr"] == fields["hr_bpm"] and values["cad"] == fields["cad_rpm"] and values["power"] == fields["pwr_w"]
        assert values["atemp"] == fields["temp_c"] and values["speed"] == pytest.approx(fields["spd_kph"] / 3.6)
        assert values["course"] == fields["bearing"]
        assert point.extensions[-1].tag == "{http://www.garmin.com/xmlschemas/TrackPointExtension/v2}TrackPointExtension"


def test_fit_export_read_by_garmin_sdk_and_fitdecode() -> None:
    data = formats.write("fit", TRACK)
    messages, errors = Decoder(Stream.from_byte_array(bytearray(data))).read()
    assert errors == []
    assert messages["file_id_mesgs"][0]["type"] == "activity" and messages["session_mesgs"][0]["sport"] == "cycling"
    assert len(messages["lap_mesgs"]) == 1 and len(messages["activity_mesgs"]) == 1
    records = messages["record_mesgs"]
    with fitdecode.FitReader(io.BytesIO(data)) as reader:
        decoded = [f for f in reader if isinstance(f, fitdecode.FitDataMessage) and f.name == "record"]
    assert len(records) == len(decoded) == len(POINTS)
    for record, other, (time_ns, fields) in zip(records, decoded, POINTS):
        for message in (record, {f.name: f.value for f in other.fields}):
            assert int(message["timestamp"].timestamp()) * SECOND == time_ns
            assert message["position_lat"] * 180 / 2**31 == pytest.approx(fields["lat"], abs=1e-7)
            assert message["position_long"] * 180 / 2**31 == pytest.approx(fields["lng"], abs=1e-7)
            assert (message["heart_rate"], message["cadence"], message["power"]) == (fields["hr_bpm"], fields["cad_rpm"], fields["pwr_w"])
            assert message["enhanced_altitude"] == pytest.approx(fields["alt_m"], abs=0.2)
            assert message["enhanced_speed"] == pytest.approx(fields["spd_kph"] / 3.6, abs=0.001)
            assert message["distance"] == pytest.approx(fields["dist_km"] * 1000, abs=0.01)


def test_tcx_export_read_by_tcxreader(tmp_path: Path) -> None:
    path = tmp_path / "ride.tcx"
    path.write_bytes(formats.write("tcx", TRACK))
    exercise = TCXReader().read(str(path))
    assert exercise.activity_type == "Biking" and len(exercise.trackpoints) == len(POINTS)
    for point, (time_ns, fields) in zip(exercise.trackpoints, POINTS):
        assert int(point.time.replace(tzinfo=dt.timezone.utc).timestamp()) * SECOND == time_ns
        assert (point.latitude, point.longitude, point.elevation) == (fields["lat"], fields["lng"], fields["alt_m"])
        assert (point.hr_value, point.cadence) == (fields["hr_bpm"], fields["cad_rpm"])
        assert point.distance == pytest.approx(fields["dist_km"] * 1000)
        assert point.tpx_ext["Watts"] == fields["pwr_w"] and point.tpx_ext["Speed"] == pytest.approx(fields["spd_kph"] / 3.6)


def test_csv_export() -> None:
    rows = list(csv.DictReader(io.StringIO(formats.write("csv", TRACK).decode())))
    assert list(rows[0])[:2] == ["time", "time_ns"]
    assert rows[1]["time"] == "2026-11-30T00:53:21Z" and int(rows[1]["time_ns"]) == POINTS[1][0]
    for row, (_, fields) in zip(rows, POINTS):
        assert {key: float(row[key]) for key in fields} == fields


def test_geojson_export() -> None:
    document = json.loads(formats.write("geojson", TRACK))
    [feature] = document["features"]
    assert document["type"] == "FeatureCollection" and feature["geometry"]["type"] == "LineString"
    assert feature["geometry"]["coordinates"][3] == [POINTS[3][1]["lng"], POINTS[3][1]["lat"], POINTS[3][1]["alt_m"]]
    properties = feature["properties"]
    assert properties["time_ns"] == [t for t, _ in POINTS] and properties["times"][0] == "2026-11-30T00:53:20Z"
    assert properties["hr_bpm"] == [f["hr_bpm"] for _, f in POINTS] and properties["sport"] == "cycling"


@pytest.mark.parametrize("fmt", ["gpx", "tcx", "fit"])
def test_round_trip_through_our_reader(fmt: str) -> None:
    [track] = formats.read(formats.write(fmt, TRACK), f"ride.{fmt}")
    assert track.sport == "cycling" and [t for t, _ in track.points] == [t for t, _ in POINTS]
    assert track.device == "phone"  # a re-import lands on the same track
    for (_, got), (_, want) in zip(track.points, POINTS):
        assert got["hr_bpm"] == want["hr_bpm"] and got["pwr_w"] == want["pwr_w"] and got["cad_rpm"] == want["cad_rpm"]
        assert got["lat"] == pytest.approx(want["lat"], abs=1e-7) and got["lng"] == pytest.approx(want["lng"], abs=1e-7)
        assert got["alt_m"] == pytest.approx(want["alt_m"], abs=0.2)
