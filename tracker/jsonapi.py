"""POST /api/v1/samples: the JSON document checked against the vocabulary (pure: no I/O).

The body is one sample, `{"time": ..., "device": ..., "fields": {...}}`, or a batch,
`{"samples": [sample, ...]}`. Every bad item is reported, each problem as {index, path, message}:
`index` is the sample's position in the batch (0 for a single sample) and `path` a JSON Pointer
(RFC 6901) into the request document.

`time` is an ISO 8601 string (no zone = UTC) or an epoch number whose unit is read from its size
(below 10^11 seconds, below 10^14 milliseconds, below 10^17 microseconds, else nanoseconds), unless
the request names the unit with `?precision=s|ms|us|ns`. A fraction counts as written, to the
nanosecond (a JSON number holds about 16 significant digits: microseconds for seconds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from tracker import apps
from tracker.lineprotocol import MAX_NANO_TIME, MIN_NANO_TIME
from tracker.retention import Cutoff
from tracker.vocabulary import ALIASES, BY_KEY, FIELD_KEYS

PRECISIONS: dict[str, int] = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
SAMPLE_KEYS = ("time", "device", "fields")
# Epoch numbers below each bound are in that unit; the bounds sit between today's values in each
# unit (1.7e9 s, 1.7e12 ms, 1.7e15 us, 1.7e18 ns) and 10^11 s is the year 5138.
EPOCH_BOUNDS: tuple[tuple[float, int], ...] = ((1e11, 10**9), (1e14, 10**6), (1e17, 10**3))
ALLOWED_FIELDS = ", ".join(FIELD_KEYS) + " (lon = lng)"


@dataclass(frozen=True, slots=True)
class ItemError:
    index: int
    path: str  # JSON Pointer into the request document
    message: str

    def as_json(self) -> dict[str, Any]:
        return {"index": self.index, "path": self.path, "message": self.message}


@dataclass(frozen=True, slots=True)
class ApiSample:
    index: int  # position in the request
    time_ns: int
    fields: dict[str, float]
    device: str | None  # None: the sender's default (a device token's label) applies


@dataclass(frozen=True, slots=True)
class Checked:
    samples: list[ApiSample]  # the valid ones, in request order
    errors: list[ItemError]
    count: int  # samples in the request


class DocumentError(ValueError):
    """The request as a whole cannot be read: status 400, or 413 for too many samples."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def parse_body(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise DocumentError(400, f"the body is not valid JSON: {exc}") from None


def check_document(
    document: Any, *, precision: str | None = None, max_samples: int, cutoff: Cutoff | None = None
) -> Checked:
    """Every sample of the document checked; DocumentError when its shape is wrong or too large.

    A sample `cutoff` does not keep (older than the user's retention, too far ahead of the server's
    clock) is an invalid item.
    """
    if precision is not None and precision not in PRECISIONS:
        raise DocumentError(400, f'invalid precision "{precision}" (use s, ms, us or ns)')
    if not isinstance(document, dict):
        raise DocumentError(400, 'the body must be a JSON object: one sample, or {"samples": [...]}')
    if "samples" in document:
        extra = sorted(set(document) - {"samples"})
        if extra:
            raise DocumentError(400, f'a batch has only "samples"; unexpected: {", ".join(extra)}')
        items = document["samples"]
        if not isinstance(items, list):
            raise DocumentError(400, '"samples" must be a list of samples')
        if len(items) > max_samples:
            raise DocumentError(413, f"a batch holds at most {max_samples} samples; this one has {len(items)}")
        prefix = "/samples/"
    else:
        items, prefix = [document], "/"
    samples: list[ApiSample] = []
    errors: list[ItemError] = []
    for index, item in enumerate(items):
        base = f"{prefix}{index}" if prefix != "/" else ""
        found = _check_sample(index, base, item, precision, cutoff)
        if isinstance(found, ApiSample):
            samples.append(found)
        else:
            errors.extend(found)
    return Checked(samples, errors, len(items))


def _check_sample(
    index: int, base: str, item: Any, precision: str | None, cutoff: Cutoff | None
) -> ApiSample | list[ItemError]:
    errors: list[ItemError] = []

    def bad(path: str, message: str) -> None:
        errors.append(ItemError(index, base + path, message))

    if not isinstance(item, dict):
        bad("", "a sample must be an object with time, fields and optionally device")
        return errors
    for key in item:
        if key not in SAMPLE_KEYS:
            bad(f"/{_pointer(key)}", "unknown key; a sample has time, device and fields")
    time_ns = None
    if "time" not in item:
        bad("/time", "required: an ISO 8601 string or an epoch number")
    else:
        try:
            time_ns = time_value(item["time"], precision)
        except ValueError as exc:
            bad("/time", str(exc))
        refusal = cutoff.refusal(time_ns) if time_ns is not None and cutoff is not None else None
        if refusal is not None:
            bad("/time", refusal)
            time_ns = None
    device = item.get("device")
    if device is not None:
        if not isinstance(device, str):
            bad("/device", "must be a string")
            device = None
        else:
            try:
                device = apps.device_name("device", device)
            except apps.AppInputError as exc:
                bad("/device", exc.rule)
    fields = _check_fields(item.get("fields"), bad)
    if errors or time_ns is None or fields is None:
        return errors
    return ApiSample(index, time_ns, fields, device)


def _check_fields(raw: Any, bad: Any) -> dict[str, float] | None:
    if raw is None:
        bad("/fields", 'required: an object of vocabulary fields, e.g. {"hr_bpm": 150}')
        return None
    if not isinstance(raw, dict):
        bad("/fields", 'must be an object of vocabulary fields, e.g. {"hr_bpm": 150}')
        return None
    if not raw:
        bad("/fields", "must hold at least one field")
        return None
    fields: dict[str, float] = {}
    ok = True
    for key, value in raw.items():
        path = f"/fields/{_pointer(key)}"
        canonical = ALIASES[key] if key in ALIASES else key
        spec = BY_KEY.get(canonical)
        if spec is None:
            bad(path, f"unknown field; allowed: {ALLOWED_FIELDS}")
        elif canonical in fields or (canonical != key and canonical in raw):
            bad(path, f'the same field as "{canonical}"')
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            bad(path, f"must be a number, got {apps.kind_of(value)}")
        elif not spec.low <= value <= spec.high or not math.isfinite(value):
            bad(path, f"{value:g} is out of range {spec.low:g}..{spec.high:g} {spec.unit}")
        else:
            fields[canonical] = float(value)
            continue
        ok = False
    return fields if ok else None


def time_value(value: Any, precision: str | None = None) -> int:
    """A sample's time as ns since the epoch; ValueError with the rule otherwise."""
    if isinstance(value, str):
        try:
            return apps.iso_ns(value)
        except ValueError:
            raise ValueError(f'"{value[:40]}" is not an ISO 8601 time (e.g. 2025-06-01T10:00:00.5Z)') from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"must be an ISO 8601 string or an epoch number, got {apps.kind_of(value)}")
    unit_ns = PRECISIONS[precision] if precision else epoch_unit_ns(value)
    number = Decimal(value) if isinstance(value, int) else Decimal(repr(value))
    ns = int((number * unit_ns).to_integral_value())
    if not MIN_NANO_TIME <= ns <= MAX_NANO_TIME:
        raise ValueError(f"{value} is outside the time range Tracker stores")
    return ns


def epoch_unit_ns(value: float) -> int:
    """Nanoseconds per unit of an epoch number, read from its size."""
    size = abs(value)
    for bound, unit_ns in EPOCH_BOUNDS:
        if size < bound:
            return unit_ns
    return 1


def _pointer(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")
