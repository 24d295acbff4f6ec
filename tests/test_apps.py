"""The phone apps' requests mapped onto the vocabulary: tables of exact request shapes, no I/O.

Where the shapes come from:
- OsmAnd protocol: Traccar's OsmAndProtocolDecoder (parameters id/deviceid, lat, lon, location,
  timestamp, speed in knots, bearing/heading, altitude, accuracy, hdop, batt) and traccar.org/osmand.
- OsmAnd's own live tracking: its LiveMonitoringHelper fills {0} lat, {1} lon, {2} time (ms),
  {3} accuracy (m), {4} altitude, {5} speed (m/s), {6} bearing into the URL template.
- Traccar Client 9: the JSON location template in its preferences.dart, posted as
  {"location": {...}, "device_id": id} by the background-geolocation plugin.
- OwnTracks: the booklet's docs/tech/json.md (`_type=location`) and docs/tech/http.md.
- GPSLogger: CustomUrlManager's placeholders, and the form body %ALL expands to.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest

from tracker import accounts, apps
from tracker.apps import AppInputError, AppSample

NOW = 1_750_000_000_000_000_000
S = 1_000_000_000


def q(text: str) -> dict[str, str]:
    """A query string or form body as the server sees it (later repeats win, as in a dict)."""
    return dict(parse_qsl(text, keep_blank_values=True))


# -- OsmAnd / Traccar Client, query or form ---------------------------------------------------------


@pytest.mark.parametrize(
    ("request_text", "speed_unit", "expected"),
    [
        # Traccar Client (Android, before version 9): speed in knots, battery in %.
        (
            (
                "id=123456&timestamp=1700000000&lat=52.5&lon=13.4&speed=10.0&bearing=90.0&altitude=34.0"
                "&accuracy=5.0&batt=80.0&charge=true"
            ),
            "knots",
            AppSample(1700000000 * S, {"lat": 52.5, "lng": 13.4, "spd_kph": 18.52, "bearing": 90.0,
                                       "alt_m": 34.0, "acc_m": 5.0, "battery": 80.0}),
        ),
        # OsmAnd's template lat={0}&lon={1}&timestamp={2}&hdop={3}&altitude={4}&speed={5}&bearing={6}:
        # time in ms, speed in m/s (the token's speed unit), {3} is the accuracy in metres.
        (
            "id=tok&lat=52.5&lon=13.4&timestamp=1700000000123&hdop=4.5&altitude=34.0&speed=5.0&bearing=271.0",
            "mps",
            AppSample(1700000000123 * 10**6, {"lat": 52.5, "lng": 13.4, "acc_m": 4.5, "alt_m": 34.0,
                                              "spd_kph": 18.0, "bearing": 271.0}),
        ),
        ("lat=1&lon=2&speed=10", "kph", AppSample(NOW, {"lat": 1.0, "lng": 2.0, "spd_kph": 10.0})),
        ("deviceid=7&location=48.85833,2.29513&heading=45", "knots",
         AppSample(NOW, {"lat": 48.85833, "lng": 2.29513, "bearing": 45.0})),
        # accuracy wins over hdop; empty values are absent; negative speed and bearing mean "not known".
        ("lat=1&lon=2&accuracy=3&hdop=9&altitude=&speed=-1&bearing=-1&batt=", "knots",
         AppSample(NOW, {"lat": 1.0, "lng": 2.0, "acc_m": 3.0})),
        # Sensor extras and vocabulary keys in their own units.
        ("lat=1&lon=2&hr=150&cadence=90&power=250&temp=21.5&odometer=1234&pwr_w_l=120&gsm_signal=70", "knots",
         AppSample(NOW, {"lat": 1.0, "lng": 2.0, "hr_bpm": 150.0, "cad_rpm": 90.0, "pwr_w": 250.0,
                         "temp_c": 21.5, "dist_km": 1.234, "pwr_w_l": 120.0, "gsm_signal": 70.0})),
        ("lat=1&lon=2&heartrate=140&hr_bpm=141&temperature=-3", "knots",
         AppSample(NOW, {"lat": 1.0, "lng": 2.0, "hr_bpm": 140.0, "temp_c": -3.0})),
        # Unknown parameters (Traccar keeps them as attributes) are not samples: ignored.
        ("lat=-90&lon=180&valid=true&driverUniqueId=42&cell=1,2,3,4&wifi=aa-bb,-50&foo=bar", "knots",
         AppSample(NOW, {"lat": -90.0, "lng": 180.0})),
    ],
)
def test_osmand_query(request_text: str, speed_unit: str, expected: AppSample) -> None:
    sample = apps.osmand_query(q(request_text), speed_unit=speed_unit, now_ns=NOW)
    assert sample.time_ns == expected.time_ns
    assert sample.fields == pytest.approx(expected.fields)
    assert sample.fields.keys() == expected.fields.keys()
    assert sample.device is None


@pytest.mark.parametrize(
    ("timestamp", "time_ns"),
    [
        ("1700000000", 1700000000 * S),  # epoch seconds
        (str(2**31 - 1), (2**31 - 1) * S),  # the last number read as seconds
        (str(2**31), 2**31 * 10**6),  # from 2^31 on: milliseconds
        ("1700000000123", 1700000000123 * 10**6),
        ("1700000000.25", 1700000000250000000),
        ("2023-11-14T22:13:20Z", 1700000000 * S),
        ("2023-11-14T22:13:20.123456789Z", 1700000000123456789),
        ("2023-11-14T23:13:20.5+01:00", 1700000000500000000),
        ("2023-11-14T23:13:20+0100", 1700000000 * S),
        ("2023-11-14T20:13:20-02", 1700000000 * S),
        ("2023-11-14 22:13:20", 1700000000 * S),  # yyyy-MM-dd HH:mm:ss, UTC
        ("2023-11-14T22:13", 1699999980 * S),
        ("2023-11-14", 1699920000 * S),
    ],
)
def test_osmand_timestamps(timestamp: str, time_ns: int) -> None:
    params = {"lat": "1", "lon": "2", "timestamp": timestamp}
    assert apps.osmand_query(params, now_ns=NOW).time_ns == time_ns


@pytest.mark.parametrize(
    ("request_text", "parameter", "rule"),
    [
        ("lon=2", "lat", "required (or location=lat,lon)"),
        ("lat=1", "lon", "required (or location=lat,lon)"),
        ("lat=95&lon=2", "lat", "95 is out of range -90..90 deg"),
        ("lat=1&lon=-180.5", "lon", "-180.5 is out of range -180..180 deg"),
        ("location=91,2", "location", "91 is out of range -90..90 deg"),
        ("location=52.5", "location", '"52.5" is not "latitude,longitude"'),
        ("location=52.5,x", "location", '"x" is not a number'),
        ("lat=abc&lon=2", "lat", '"abc" is not a number'),
        ("lat=nan&lon=2", "lat", '"nan" is not a number'),
        ("lat=1&lon=2&speed=1e999", "speed", "1e999 is too large"),
        ("lat=1&lon=2&hr=fast", "hr", '"fast" is not a number'),
        ("lat=1&lon=2&timestamp=yesterday", "timestamp", '"yesterday" is not a time: ' + apps.TIME_RULE),
        ("lat=1&lon=2&timestamp=2023-13-01T00:00:00Z", "timestamp",
         '"2023-13-01T00:00:00Z" is not a time: ' + apps.TIME_RULE),
        ("lat=1&lon=2&timestamp=99999999999999999999", "timestamp",
         "99999999999999999999 is outside the time range Tracker stores"),
    ],
)
def test_osmand_query_errors_name_the_parameter(request_text: str, parameter: str, rule: str) -> None:
    with pytest.raises(AppInputError) as caught:
        apps.osmand_query(q(request_text), now_ns=NOW)
    assert (caught.value.parameter, caught.value.rule) == (parameter, rule)
    assert str(caught.value) == f'parameter "{parameter}": {rule}'


# -- Traccar Client 9, JSON -----------------------------------------------------------------------


def traccar_client_9(**location_changes: object) -> dict[str, object]:
    """The body Traccar Client 9 posts: its location template filled in, plus device_id."""
    location: dict[str, object] = {
        "timestamp": "2025-06-01T10:00:00.123Z",
        "coords": {"latitude": 52.5, "longitude": 13.4, "accuracy": 4.2, "speed": 5.0, "heading": 90.0,
                   "altitude": 34.0},
        "is_moving": True,
        "odometer": 1500.0,
        "event": "motionchange",
        "battery": {"level": 0.85, "is_charging": False},
        "activity": {"type": "on_bicycle"},
        "extras": {},
        "_": "&id=4711&lat=52.5&lon=13.4&timestamp=2025-06-01T10:00:00.123Z&",
    }
    location.update(location_changes)
    return {"location": location, "device_id": "4711"}


def test_traccar_client_9_json() -> None:
    sample = apps.traccar_json(traccar_client_9(), now_ns=NOW)
    assert sample.time_ns == apps.iso_ns("2025-06-01T10:00:00.123Z") == 1748772000123000000
    assert sample.fields == pytest.approx(
        {"lat": 52.5, "lng": 13.4, "spd_kph": 18.0, "bearing": 90.0, "alt_m": 34.0, "acc_m": 4.2,
         "battery": 85.0, "dist_km": 1.5}
    )
    assert sample.device is None


def test_traccar_client_9_unknown_values_and_extras() -> None:
    body = traccar_client_9(
        coords={"latitude": 1.0, "longitude": 2.0, "accuracy": -1, "speed": -1, "heading": -1, "altitude": 0},
        battery={"level": -1, "is_charging": False},
        extras={"heartbeat": True, "hr": 150, "power": 230.5, "note": "x", "cad_rpm": 88},
    )
    sample = apps.traccar_json(body, now_ns=NOW)
    assert sample.fields == {
        "lat": 1.0, "lng": 2.0, "alt_m": 0.0, "dist_km": 1.5, "hr_bpm": 150.0, "pwr_w": 230.5, "cad_rpm": 88.0
    }


@pytest.mark.parametrize(
    ("body", "parameter", "rule"),
    [
        ([], "(body)", "must be a JSON object"),
        ({"device_id": "1"}, "location", "required: an object with timestamp and coords"),
        ({"location": [{}], "device_id": "1"}, "location", "must be one location (an object): one sample per request"),
        (traccar_client_9(coords=None), "location.coords", "required: an object with latitude and longitude"),
        (traccar_client_9(coords={"latitude": 1}), "location.coords.longitude", "required"),
        (traccar_client_9(coords={"latitude": "1", "longitude": 2}), "location.coords.latitude",
         "must be a number, got a string"),
        (traccar_client_9(coords={"latitude": 100, "longitude": 2}), "location.coords.latitude",
         "100 is out of range -90..90 deg"),
        (traccar_client_9(battery={"level": True}), "location.battery.level", "must be a number, got a boolean"),
        (traccar_client_9(timestamp=None), "location.timestamp", "required (ISO 8601)"),
        (traccar_client_9(timestamp="soon"), "location.timestamp", '"soon" is not a time: ' + apps.TIME_RULE),
    ],
)
def test_traccar_json_errors(body: object, parameter: str, rule: str) -> None:
    with pytest.raises(AppInputError) as caught:
        apps.traccar_json(body, now_ns=NOW)
    assert (caught.value.parameter, caught.value.rule) == (parameter, rule)


# -- OwnTracks ------------------------------------------------------------------------------------

# The booklet's location message, with the optional elements the apps add.
OWNTRACKS_LOCATION = {
    "_type": "location", "tid": "JJ", "lat": 48.85833, "lon": 2.29513, "tst": 1497476456, "acc": 5, "alt": 50,
    "batt": 41, "bs": 1, "cog": 271, "vel": 12, "vac": 3, "t": "u", "conn": "w", "topic": "owntracks/jane/phone",
    "inregions": [], "created_at": 1497476457,
}


def test_owntracks_location() -> None:
    sample = apps.owntracks(OWNTRACKS_LOCATION)
    assert sample == AppSample(
        1497476456 * S,
        # vel is km/h already, cog is the bearing
        {"lat": 48.85833, "lng": 2.29513, "spd_kph": 12.0, "bearing": 271.0, "alt_m": 50.0, "acc_m": 5.0,
         "battery": 41.0},
        "JJ",
    )
    # The X-Limit-D header names the device; without it and without tid there is none.
    assert apps.owntracks(OWNTRACKS_LOCATION, device="phone").device == "phone"  # type: ignore[union-attr]
    minimal = {"_type": "location", "lat": 1, "lon": 2, "tst": 1700000000}
    assert apps.owntracks(minimal) == AppSample(1700000000 * S, {"lat": 1.0, "lng": 2.0}, None)


@pytest.mark.parametrize("kind", ["transition", "waypoint", "card", "lwt", "encrypted", "status", None])
def test_owntracks_other_types_are_not_samples(kind: str | None) -> None:
    assert apps.owntracks({"_type": kind, "lat": 1, "lon": 2, "tst": 1}) is None


@pytest.mark.parametrize(
    ("body", "parameter", "rule"),
    [
        ("[]", "(body)", "must be a JSON object"),
        ({"_type": "location", "lon": 2, "tst": 1}, "lat", "required"),
        ({"_type": "location", "lat": 1, "lon": 2}, "tst", "required (epoch seconds)"),
        ({"_type": "location", "lat": 1, "lon": 2, "tst": "1700000000"}, "tst", "must be a number, got a string"),
        ({"_type": "location", "lat": 1, "lon": 200, "tst": 1}, "lon", "200 is out of range -180..180 deg"),
        ({"_type": "location", "lat": 1, "lon": 2, "tst": 1, "vel": [3]}, "vel", "must be a number, got a list"),
        ({"_type": "location", "lat": 1, "lon": 2, "tst": 1, "tid": 7}, "tid", "must be a string"),
    ],
)
def test_owntracks_errors(body: object, parameter: str, rule: str) -> None:
    with pytest.raises(AppInputError) as caught:
        apps.owntracks(body)
    assert (caught.value.parameter, caught.value.rule) == (parameter, rule)


# -- GPSLogger ------------------------------------------------------------------------------------

# What GPSLogger's %ALL expands to (a form body), as a current version sends it.
GPSLOGGER_ALL = (
    "lat=41.74108695983887&lon=-91.84490871429443&sat=0&desc=&alt=1387.0&acc=6.0&dir=170.8125&prov=gps"
    "&spd_kph=9.0&spd=2.5&timestamp=1736999691&timeoffset=2025-01-15T20:54:51.000-07:00"
    "&time=2025-01-16T03:54:51.000Z&starttimestamp=1737000139&date=2025-01-16&batt=27.0&ischarging=false"
    "&aid=4ca9e1da592aca9b&ser=4ca9e1da592aca9b&act=&filename=20250115&profile=Default+Profile"
    "&hdop=&vdop=&pdop=&dist=1250"
)


def test_gpslogger_all_body() -> None:
    sample = apps.gpslogger(q(GPSLOGGER_ALL), now_ns=NOW)
    assert sample.time_ns == 1736999691 * S
    assert sample.fields == pytest.approx(
        {"lat": 41.74108695983887, "lng": -91.84490871429443, "alt_m": 1387.0, "acc_m": 6.0, "bearing": 170.8125,
         "spd_kph": 9.0, "battery": 27.0, "dist_km": 1.25}
    )
    assert sample.device is None


@pytest.mark.parametrize(
    ("request_text", "expected"),
    [
        # The documented URL template, placeholders filled in by the app.
        ("lat=52.5&lon=13.4&time=2025-01-16T03:54:51.250Z&spd=5.0&alt=34.0&acc=4.0&dir=90.0&batt=55.0",
         AppSample(1736999691250000000, {"lat": 52.5, "lng": 13.4, "spd_kph": 18.0, "alt_m": 34.0, "acc_m": 4.0,
                                         "bearing": 90.0, "battery": 55.0})),
        ("lat=52.5&lon=13.4&timestamp=1736999691", AppSample(1736999691 * S, {"lat": 52.5, "lng": 13.4})),
        ("lat=52.5&lon=13.4&time=&timestamp=", AppSample(NOW, {"lat": 52.5, "lng": 13.4})),
    ],
)
def test_gpslogger_template(request_text: str, expected: AppSample) -> None:
    sample = apps.gpslogger(q(request_text), now_ns=NOW)
    assert sample.time_ns == expected.time_ns
    assert sample.fields == pytest.approx(expected.fields)


def test_gpslogger_errors() -> None:
    with pytest.raises(AppInputError, match='parameter "lat": "%LAT" is not a number'):
        apps.gpslogger({"lat": "%LAT", "lon": "1"}, now_ns=NOW)
    with pytest.raises(AppInputError, match='parameter "lon": required'):
        apps.gpslogger({"lat": "1"}, now_ns=NOW)
    with pytest.raises(AppInputError, match='parameter "time": "%TIME" is not a time'):
        apps.gpslogger({"lat": "1", "lon": "2", "time": "%TIME"}, now_ns=NOW)


# -- devices --------------------------------------------------------------------------------------


def test_device_names() -> None:
    assert apps.device_name("id", "  garmin phone ") == "garmin phone"
    for bad, rule in [("", "must not be empty"), ("x" * 257, "at most 256 characters"),
                      ("a\nb", "must not contain control characters")]:
        with pytest.raises(AppInputError) as caught:
            apps.device_name("id", bad)
        assert caught.value.rule == rule


def test_every_token_speed_unit_has_a_conversion() -> None:
    assert set(apps.SPEED_UNITS) == set(accounts.SPEED_UNITS)
    assert apps.SPEED_UNITS == {"knots": 1.852, "mps": 3.6, "kph": 1.0}


@pytest.mark.parametrize(("speed", "unit", "kph"), [("8.05", "mps", 28.98), ("15.6", "knots", 28.8912), ("0.1", "mps", 0.36)])
def test_converted_speeds_carry_no_float_noise(speed: str, unit: str, kph: float) -> None:
    # Exactly the decimal a person reads (8.05 * 3.6 is 28.980000000000004 in binary floating point).
    sample = apps.osmand_query(q(f"lat=1&lon=2&speed={speed}"), speed_unit=unit, now_ns=NOW)
    assert repr(sample.fields["spd_kph"]) == repr(kph)
