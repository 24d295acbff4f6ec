"""A user's activity settings: how samples split into activities and what the summary counts.

Kept in the user's own sample file (one JSON value per key), so they go wherever the user's data goes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Mapping

# Coggan's power zones as fractions of FTP (upper bounds of zones 1..6; zone 7 is open above).
POWER_ZONES_OF_FTP: tuple[float, ...] = (0.55, 0.75, 0.90, 1.05, 1.20, 1.50)
# Heart-rate zones as fractions of the maximum heart rate (upper bounds of zones 1..4; zone 5 above).
HR_ZONES_OF_MAX: tuple[float, ...] = (0.60, 0.70, 0.80, 0.90)


class InvalidActivitySettings(ValueError):
    """A setting out of its range; the message names the key and the rule."""


@dataclass(frozen=True, slots=True)
class ActivitySettings:
    gap_s: float = 1800.0  # a pause longer than this ends an activity
    moving_kph: float = 1.0  # at or above this speed a sample counts as moving
    hr_max_bpm: float | None = None  # heart-rate zones are fractions of it, unless hr_zones_bpm is set
    hr_zones_bpm: tuple[float, ...] | None = None  # explicit upper bounds of zones 1..n-1, rising
    ftp_w: float | None = None  # power zones and normalized power's intensity are relative to it
    pwr_zones_w: tuple[float, ...] | None = None  # explicit upper bounds, rising; else Coggan's from ftp_w

    def heart_rate_bounds(self) -> tuple[float, ...] | None:
        if self.hr_zones_bpm is not None:
            return self.hr_zones_bpm
        if self.hr_max_bpm is not None:
            return tuple(round(self.hr_max_bpm * f, 1) for f in HR_ZONES_OF_MAX)
        return None

    def power_bounds(self) -> tuple[float, ...] | None:
        if self.pwr_zones_w is not None:
            return self.pwr_zones_w
        if self.ftp_w is not None:
            return tuple(round(self.ftp_w * f, 1) for f in POWER_ZONES_OF_FTP)
        return None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("hr_zones_bpm", "pwr_zones_w"):
            if out[key] is not None:
                out[key] = list(out[key])
        return out

    def updated(self, changes: Mapping[str, Any]) -> ActivitySettings:
        """These settings with `changes` applied (JSON values; null clears an optional one)."""
        known = {f.name for f in fields(self)}
        for key in changes:
            if key not in known:
                raise InvalidActivitySettings(f"unknown activity setting {key!r}; known: {', '.join(sorted(known))}")
        values: dict[str, Any] = {}
        for key, value in changes.items():
            values[key] = _checked(key, value)
        return replace(self, **values)

    @classmethod
    def from_json(cls, stored: Mapping[str, Any]) -> ActivitySettings:
        return cls().updated(stored)


_POSITIVE = {"gap_s": (60.0, 7 * 86400.0), "moving_kph": (0.0, 100.0), "hr_max_bpm": (60.0, 260.0), "ftp_w": (20.0, 2000.0)}
_ZONES = {"hr_zones_bpm": (30.0, 260.0), "pwr_zones_w": (1.0, 3000.0)}


def _number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidActivitySettings(f"{key} must be a number, got {value!r}")
    return float(value)


def _checked(key: str, value: Any) -> Any:
    if value is None:
        if key in ("gap_s", "moving_kph"):
            raise InvalidActivitySettings(f"{key} cannot be null")
        return None
    if key in _POSITIVE:
        low, high = _POSITIVE[key]
        number = _number(key, value)
        if not low <= number <= high:
            raise InvalidActivitySettings(f"{key} must be between {low:g} and {high:g}, got {number:g}")
        return number
    low, high = _ZONES[key]
    if not isinstance(value, (list, tuple)) or not 1 <= len(value) <= 9:
        raise InvalidActivitySettings(f"{key} must be a list of 1 to 9 zone upper bounds, got {value!r}")
    bounds = tuple(_number(key, v) for v in value)
    if any(not low <= b <= high for b in bounds):
        raise InvalidActivitySettings(f"{key} bounds must be between {low:g} and {high:g}")
    if any(a >= b for a, b in zip(bounds, bounds[1:])):
        raise InvalidActivitySettings(f"{key} bounds must rise strictly, got {list(bounds)}")
    return bounds
