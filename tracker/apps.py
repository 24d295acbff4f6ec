"""The phone apps' own requests mapped onto the sample vocabulary (pure: no I/O).

Each function takes what one app sends and gives one `AppSample`, or raises `AppInputError` naming
the parameter and the rule. The shapes follow the apps and their servers:

* OsmAnd / Traccar Client: Traccar's OsmAnd protocol (`id`, `lat`, `lon`, `timestamp`, `speed` in
  knots, ... as a query string or a form body; Traccar Client 9 posts JSON to the same URL) and
  OsmAnd's live-tracking URL template (`{0}` lat, `{1}` lon, `{2}` time in ms, `{3}` accuracy in m,
  which OsmAnd calls hdop, `{4}` altitude, `{5}` speed in m/s, `{6}` bearing).
* OwnTracks, HTTP mode: the JSON `_type: location` message (`tst` in epoch seconds, `vel` in km/h).
* GPSLogger, "Log to custom URL": its placeholders as parameters, or its `%ALL` form body.

Conventions shared by all of them: an empty parameter is an absent one (GPSLogger leaves `hdop=`
empty when unknown); a negative speed, bearing, accuracy or battery level means "not known" where an
app uses -1 for that; when two parameters give the same field, the first one in the table wins.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

from tracker.rules import parse_time_string
from tracker.lineprotocol import MAX_NANO_TIME, MIN_NANO_TIME
from tracker import vocabulary
from tracker.vocabulary import BY_KEY, FIELD_KEYS

KNOTS_KPH = 1.852
MPS_KPH = 3.6
# The unit of OsmAnd-protocol `speed` parameters, per sender: Traccar's protocol says knots, the
# OsmAnd app itself sends m/s.
SPEED_UNITS: dict[str, float] = {"knots": KNOTS_KPH, "mps": MPS_KPH, "kph": 1.0}
# Epoch numbers below this are seconds, from it on milliseconds (Traccar's rule: Integer.MAX_VALUE).
EPOCH_MS_FROM = 2**31


@dataclass(frozen=True, slots=True)
class AppSample:
    time_ns: int
    fields: dict[str, float]  # vocabulary keys, values converted and within the vocabulary's ranges
    device: str | None = None  # the device the request names; None: the sender's default applies


class AppInputError(ValueError):
    """A request the app's protocol does not allow, named by parameter and rule."""

    def __init__(self, parameter: str, rule: str) -> None:
        super().__init__(f'parameter "{parameter}": {rule}')
        self.parameter = parameter
        self.rule = rule


@dataclass(frozen=True, slots=True)
class Param:
    """One app parameter and the vocabulary field it fills."""

    name: str
    field: str
    scale: float = 1.0  # multiply by this to get the field's unit
    negative_unknown: bool = False  # the app sends -1 (or another negative value) for "not known"
    unit: str = ""  # the unit the app sends, for the documentation; "" = the field's own


# Sensor values an OsmAnd-protocol sender may add as extra parameters (Traccar keeps any extra as an
# attribute); also read from Traccar Client 9's `location.extras`.
SENSOR_EXTRAS: tuple[Param, ...] = (
    Param("hr", "hr_bpm"),
    Param("heartrate", "hr_bpm"),
    Param("heart_rate", "hr_bpm"),
    Param("cadence", "cad_rpm"),
    Param("power", "pwr_w"),
    Param("temp", "temp_c"),
    Param("temperature", "temp_c"),
    Param("odometer", "dist_km", 0.001, unit="m"),
)
# Every vocabulary key is also accepted as itself, in its own unit, after the app's own names.
VOCABULARY_PARAMS: tuple[Param, ...] = tuple(Param(key, key) for key in FIELD_KEYS)


def _table(*params: Param) -> tuple[Param, ...]:
    """The parameters in order, each name once: an app's own meaning of a name (e.g. `bearing` with
    -1 for "not known") shadows the same name among the vocabulary keys."""
    by_name: dict[str, Param] = {}
    for param in params:
        by_name.setdefault(param.name, param)
    return tuple(by_name.values())


def _osmand_params(speed_unit: str) -> tuple[Param, ...]:
    return _table(
        Param("lat", "lat"),
        Param("lon", "lng"),
        Param("speed", "spd_kph", SPEED_UNITS[speed_unit], negative_unknown=True, unit=speed_unit),
        Param("bearing", "bearing", negative_unknown=True),
        Param("heading", "bearing", negative_unknown=True),
        Param("altitude", "alt_m"),
        Param("accuracy", "acc_m", negative_unknown=True),
        # OsmAnd's {3}, named hdop in its documentation, is the fix's accuracy in metres.
        Param("hdop", "acc_m", negative_unknown=True),
        Param("batt", "battery", negative_unknown=True),
        *SENSOR_EXTRAS,
        *VOCABULARY_PARAMS,
    )


OSMAND_PARAMS: dict[str, tuple[Param, ...]] = {unit: _osmand_params(unit) for unit in SPEED_UNITS}

# Traccar Client 9's JSON (the flutter background-geolocation location template), by path.
TRACCAR_JSON_PARAMS: tuple[Param, ...] = (
    Param("location.coords.latitude", "lat"),
    Param("location.coords.longitude", "lng"),
    Param("location.coords.speed", "spd_kph", MPS_KPH, negative_unknown=True, unit="m/s"),
    Param("location.coords.heading", "bearing", negative_unknown=True),
    Param("location.coords.altitude", "alt_m"),
    Param("location.coords.accuracy", "acc_m", negative_unknown=True),
    Param("location.battery.level", "battery", 100.0, negative_unknown=True, unit="0..1"),
    Param("location.odometer", "dist_km", 0.001, unit="m"),
)

OWNTRACKS_PARAMS: tuple[Param, ...] = (
    Param("lat", "lat"),
    Param("lon", "lng"),
    Param("vel", "spd_kph", negative_unknown=True),
    Param("cog", "bearing", negative_unknown=True),
    Param("alt", "alt_m"),
    Param("acc", "acc_m", negative_unknown=True),
    Param("batt", "battery", negative_unknown=True),
)

GPSLOGGER_PARAMS: tuple[Param, ...] = _table(
    Param("lat", "lat"),
    Param("lon", "lng"),
    Param("spd", "spd_kph", MPS_KPH, negative_unknown=True, unit="m/s"),
    Param("dir", "bearing", negative_unknown=True),
    Param("alt", "alt_m"),
    Param("acc", "acc_m", negative_unknown=True),
    Param("batt", "battery", negative_unknown=True),
    Param("dist", "dist_km", 0.001, unit="m"),
    *VOCABULARY_PARAMS,
)


# --------------------------------------------------------------------------------------------------
# The apps


def osmand_query(params: Mapping[str, str], *, speed_unit: str = "knots", now_ns: int) -> AppSample:
    """OsmAnd / Traccar Client's query-string or form request (its `id` is read by the caller)."""
    fields: dict[str, float] = {}
    for param in OSMAND_PARAMS[speed_unit]:
        _put(fields, param, _text_value(param.name, params.get(param.name)))
    if "lat" not in fields and "lng" not in fields and params.get("location"):
        latitude, sep, longitude = params["location"].partition(",")
        if not sep:
            raise AppInputError("location", f'"{_short(params["location"])}" is not "latitude,longitude"')
        _put(fields, Param("location", "lat"), _number_text("location", latitude))
        _put(fields, Param("location", "lng"), _number_text("location", longitude))
    _require(fields, "lat", "lat", " (or location=lat,lon)")
    _require(fields, "lng", "lon", " (or location=lat,lon)")
    return AppSample(_time_param(params, ("timestamp",), now_ns), fields)


def traccar_json(document: Any, *, now_ns: int) -> AppSample:
    """Traccar Client 9's JSON body: `{"location": {"timestamp", "coords": {...}, ...}, "device_id"}`."""
    if not isinstance(document, dict):
        raise AppInputError("(body)", "must be a JSON object")
    location = document.get("location")
    if isinstance(location, list):
        raise AppInputError("location", "must be one location (an object): one sample per request")
    if not isinstance(location, dict):
        raise AppInputError("location", "required: an object with timestamp and coords")
    if not isinstance(location.get("coords"), dict):
        raise AppInputError("location.coords", "required: an object with latitude and longitude")
    fields: dict[str, float] = {}
    for param in TRACCAR_JSON_PARAMS:
        _put(fields, param, _json_value(param.name, _at(document, param.name)))
    extras = location.get("extras")
    if isinstance(extras, dict):
        # Extras are free-form (Traccar Client puts {"heartbeat": true} there): only numbers under a
        # sensor or vocabulary name are read, anything else is not ours to judge.
        for param in (*SENSOR_EXTRAS, *VOCABULARY_PARAMS):
            value = extras.get(param.name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                _put(fields, Param(f"location.extras.{param.name}", param.field, param.scale), float(value))
    _require(fields, "lat", "location.coords.latitude")
    _require(fields, "lng", "location.coords.longitude")
    timestamp = location.get("timestamp")
    if timestamp is None:
        raise AppInputError("location.timestamp", "required (ISO 8601)")
    return AppSample(_time_value("location.timestamp", timestamp), fields)


def owntracks(document: Any, *, device: str | None = None) -> AppSample | None:
    """An OwnTracks HTTP-mode message: a sample for `_type: location`, None for any other type.

    `device` is the device the app names in its X-Limit-D header (checked by the caller with
    `device_name`); without it, the message's `tid`.
    """
    if not isinstance(document, dict):
        raise AppInputError("(body)", "must be a JSON object")
    if document.get("_type") != "location":
        return None
    fields: dict[str, float] = {}
    for param in OWNTRACKS_PARAMS:
        _put(fields, param, _json_value(param.name, document.get(param.name)))
    _require(fields, "lat", "lat")
    _require(fields, "lng", "lon")
    if document.get("tst") is None:
        raise AppInputError("tst", "required (epoch seconds)")
    tst = _json_value("tst", document["tst"])
    time_ns = _epoch_ns("tst", Decimal(repr(tst)), 10**9)
    if not device:
        tid = document.get("tid")
        if tid is not None and not isinstance(tid, str):
            raise AppInputError("tid", "must be a string")
        device = device_name("tid", tid) if tid else None
    return AppSample(time_ns, fields, device)


def gpslogger(params: Mapping[str, str], *, now_ns: int) -> AppSample:
    """GPSLogger's custom-URL request: its placeholders as parameters, or its `%ALL` form body."""
    fields: dict[str, float] = {}
    for param in GPSLOGGER_PARAMS:
        _put(fields, param, _text_value(param.name, params.get(param.name)))
    _require(fields, "lat", "lat")
    _require(fields, "lng", "lon")
    # %TIME is ISO 8601 with milliseconds; %TIMESTAMP only whole seconds.
    return AppSample(_time_param(params, ("time", "timestamp"), now_ns), fields)


def device_name(parameter: str, text: str) -> str:
    """A device tag value as an app names it: 1 to 256 characters, no control characters."""
    name = text.strip()
    problem = vocabulary.device_problem(name)
    if problem is not None:
        raise AppInputError(parameter, problem)
    return name


# --------------------------------------------------------------------------------------------------
# Times


_EPOCH = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)")
_ISO = re.compile(
    r"(\d{4}-\d{2}-\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9})\d*)?)?\s*(?:([Zz])|([+-])(\d{2})(?::?(\d{2}))?)?)?"
)
TIME_RULE = 'use epoch seconds (milliseconds from 2^31 on), ISO 8601 or "yyyy-MM-dd HH:mm:ss" (UTC)'


def parse_time(parameter: str, text: str) -> int:
    """An app's time as ns since the epoch: epoch seconds, or milliseconds when the number is at
    least 2^31 (Traccar's rule), ISO 8601, or `yyyy-MM-dd HH:mm:ss`; without a zone, UTC."""
    text = text.strip()
    if _EPOCH.fullmatch(text):
        value = Decimal(text)
        return _epoch_ns(parameter, value, 10**9 if abs(value) < EPOCH_MS_FROM else 10**6)
    try:
        return iso_ns(text)
    except ValueError:
        raise AppInputError(parameter, f'"{_short(text)}" is not a time: {TIME_RULE}') from None


def iso_ns(text: str) -> int:
    """ISO 8601 (`2025-06-01T10:00:00.123Z`, `...+02:00`, `+0200`, `+02`, a space for the T, no seconds,
    no zone = UTC) as ns since the epoch; ValueError otherwise."""
    match = _ISO.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not an ISO 8601 time: {text!r}")
    date, hour, minute, second, fraction, utc, sign, zone_hours, zone_minutes = match.groups()
    if hour is None:
        return _checked_ns(parse_time_string(date))
    canonical = f"{date}T{hour}:{minute}:{second or '00'}" + (f".{fraction}" if fraction else "")
    if sign:
        canonical += f"{sign}{zone_hours}:{zone_minutes or '00'}"
    elif utc:
        canonical += "Z"
    return _checked_ns(parse_time_string(canonical))


def _epoch_ns(parameter: str, value: Decimal, unit_ns: int) -> int:
    try:
        return _checked_ns(int(value * unit_ns))
    except (ValueError, InvalidOperation):
        raise AppInputError(parameter, f"{value} is outside the time range Tracker stores") from None


def _checked_ns(ns: int) -> int:
    if not MIN_NANO_TIME <= ns <= MAX_NANO_TIME:
        raise ValueError("time out of range")
    return ns


def _time_param(params: Mapping[str, str], names: tuple[str, ...], now_ns: int) -> int:
    """The first of `names` that is given, parsed; the server's time when none is."""
    for name in names:
        text = params.get(name, "").strip()
        if text:
            return parse_time(name, text)
    return now_ns


def _time_value(parameter: str, value: Any) -> int:
    if isinstance(value, str):
        return parse_time(parameter, value)
    number = _json_value(parameter, value)
    if number is None:
        raise AppInputError(parameter, "required")
    return _epoch_ns(parameter, Decimal(repr(number)), 10**9 if abs(number) < EPOCH_MS_FROM else 10**6)


# --------------------------------------------------------------------------------------------------
# Values


_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def _text_value(parameter: str, text: str | None) -> float | None:
    if text is None or not text.strip():
        return None
    return _number_text(parameter, text)


def _number_text(parameter: str, text: str) -> float:
    text = text.strip()
    if not _NUMBER.fullmatch(text):
        raise AppInputError(parameter, f'"{_short(text)}" is not a number')
    value = float(text)
    if not math.isfinite(value):
        raise AppInputError(parameter, f"{text} is too large")
    return value


def _json_value(parameter: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise AppInputError(parameter, f"must be a number, got {kind_of(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise AppInputError(parameter, "must be a finite number")
    return number


def _at(document: dict[str, Any], path: str) -> Any:
    node: Any = document
    for key in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _put(fields: dict[str, float], param: Param, value: float | None) -> None:
    """Set the field from this parameter unless an earlier parameter did; check the field's range."""
    if value is None or param.field in fields or (param.negative_unknown and value < 0):
        return
    # A unit's factor leaves binary noise (8.05 m/s * 3.6 = 28.980000000000004): 12 significant digits
    # keep every digit a sender measures and drop the noise, so answers and pages read 28.98.
    converted = float(f"{value * param.scale:.12g}") if param.scale != 1.0 else value
    spec = BY_KEY[param.field]
    if not spec.low <= converted <= spec.high:
        raise AppInputError(param.name, f"{value:g} is out of range {spec.low:g}..{spec.high:g} {spec.unit}")
    fields[param.field] = converted


def _require(fields: dict[str, float], field: str, parameter: str, alternative: str = "") -> None:
    if field not in fields:
        raise AppInputError(parameter, "required" + alternative)


def kind_of(value: Any) -> str:
    """A JSON value's kind as an error message names it: null, a boolean, a string, a list, an object."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return _KINDS.get(type(value), type(value).__name__)


_KINDS: dict[type, str] = {str: "a string", list: "a list", dict: "an object"}


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
