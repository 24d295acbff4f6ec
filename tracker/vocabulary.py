"""The sample vocabulary: the one measurement, its field keys, units, aliases and ranges."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

MEASUREMENT = "samples"


@dataclass(frozen=True, slots=True)
class FieldSpec:
    key: str
    meaning: str
    unit: str
    low: float = -math.inf
    high: float = math.inf


FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("dur_s", "elapsed duration", "s"),
    FieldSpec("dist_km", "distance", "km"),
    FieldSpec("lat", "latitude", "deg", -90.0, 90.0),
    FieldSpec("lng", "longitude", "deg", -180.0, 180.0),
    FieldSpec("acc_m", "GPS accuracy", "m"),
    FieldSpec("bearing", "bearing", "deg"),
    FieldSpec("battery", "battery charge", "%"),
    FieldSpec("gsm_signal", "GSM radio signal", "%"),
    FieldSpec("temp_c", "temperature", "°C"),
    FieldSpec("spd_kph", "speed", "km/h"),
    FieldSpec("alt_m", "altitude / elevation", "m"),
    FieldSpec("hr_bpm", "heart rate", "beats/min"),
    FieldSpec("cad_rpm", "cadence", "rev/min"),
    FieldSpec("pwr_w", "power", "W"),
    FieldSpec("pwr_w_l", "power, left leg", "W"),
    FieldSpec("pwr_w_r", "power, right leg", "W"),
)
FIELD_KEYS: tuple[str, ...] = tuple(f.key for f in FIELDS)
BY_KEY: dict[str, FieldSpec] = {f.key: f for f in FIELDS}
ALIASES: dict[str, str] = {"lon": "lng"}
_ALLOWED = ", ".join(FIELD_KEYS) + " (lon = lng)"


def normalize_fields(
    measurement: str, fields: dict[str, float | int | str | bool]
) -> tuple[dict[str, float], None] | tuple[None, str]:
    """Check one point against the vocabulary.

    Returns (fields keyed by canonical name as floats, None), or (None, reason) where the reason names
    the key and the rule. Integers are stored as floats: every vocabulary field is one numeric series.
    """
    if measurement != MEASUREMENT:
        return None, f'measurement "{measurement}" is not allowed: the only measurement is "{MEASUREMENT}"'
    if _plainly_valid(fields):
        return fields, None  # type: ignore[return-value]  # all canonical floats: nothing to change
    out: dict[str, float] = {}
    for key, value in fields.items():
        canonical = ALIASES.get(key, key)
        spec = BY_KEY.get(canonical)
        if spec is None:
            return None, f'field "{key}": unknown field key; allowed: {_ALLOWED}'
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            kind = "boolean" if isinstance(value, bool) else "string"
            return None, f'field "{key}": value must be a number (float, or integer with i), got a {kind}'
        number = float(value)
        if not math.isfinite(number):
            return None, f'field "{key}": value must be a finite number'
        if not spec.low <= number <= spec.high:
            return None, f'field "{key}": {value} is out of range {spec.low:g}..{spec.high:g} {spec.unit}'
        out[canonical] = number
    return out, None


class _ParsedPoint(Protocol):
    measurement: str
    fields: Any  # dict[str, FieldValue] as parsed; dict[str, float] once checked
    line_no: int


def check_points(points: Sequence[_ParsedPoint], body: bytes) -> tuple[list[Any], list[str]]:
    """Hold parsed points to the vocabulary: (the accepted points, their fields now canonical
    floats; a message for each refused one, naming its line, key and rule)."""
    accepted: list[Any] = []
    refusals: list[tuple[int, str]] = []
    for point in points:
        fields, reason = normalize_fields(point.measurement, point.fields)
        if fields is None:
            refusals.append((point.line_no, reason or ""))
            continue
        point.fields = fields  # numbers only, now
        accepted.append(point)
    return accepted, refusal_messages(body, refusals) if refusals else []


def refusal_messages(body: bytes, refusals: Sequence[tuple[int, str]]) -> list[str]:
    """InfluxDB-style messages for lines of `body` the vocabulary refused, as (line_no, reason)."""
    lines = body.split(b"\n")
    texts = [lines[line_no - 1].rstrip(b"\r").decode("utf-8", "replace") for line_no, _ in refusals]
    return [f"unable to parse '{text}': line {line_no}: {reason}" for text, (line_no, reason) in zip(texts, refusals)]


_CANONICAL = frozenset(FIELD_KEYS)
_FLOAT_ONLY = {float}
_BOUNDED = tuple((f.key, f.low, f.high) for f in FIELDS if math.isfinite(f.low) or math.isfinite(f.high))


def _plainly_valid(fields: dict[str, float | int | str | bool]) -> bool:
    """The usual point, recognised in a few C-level calls: canonical keys, floats only, finite, in range.

    Checking costs about as much as parsing the line, so nearly every point skips the loop below;
    anything else takes the loop, which has the final word and the messages.
    """
    values = fields.values()
    # A NaN or infinity makes the sum non-finite (so may a huge sum of finite values: those take the loop).
    if not fields.keys() <= _CANONICAL or set(map(type, values)) != _FLOAT_ONLY or not math.isfinite(sum(values)):  # type: ignore[arg-type]
        return False
    return all(low <= fields.get(key, low) <= high for key, low, high in _BOUNDED)  # type: ignore[operator]


# --------------------------------------------------------------------------------------------------
# The `device` tag, as apps, the JSON API and alerts name a device: one rule for all of them.

DEVICE_MAX_LENGTH = 256


def device_problem(name: str) -> str | None:
    """What is wrong with `name` as a device name (1-256 characters, no control characters), or None."""
    if not name:
        return "must not be empty"
    if len(name) > DEVICE_MAX_LENGTH:
        return f"at most {DEVICE_MAX_LENGTH} characters"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "must not contain control characters"
    return None
