"""POST /api/v1/samples: the document checks (pure), then the endpoint over HTTP against real files."""

from __future__ import annotations

import pytest

from tracker import jsonapi
from tracker.jsonapi import ApiSample, DocumentError, ItemError

S = 1_000_000_000


def check(document: object, **kw: object) -> jsonapi.Checked:
    return jsonapi.check_document(document, max_samples=kw.pop("max_samples", 100), **kw)  # type: ignore[arg-type]


# -- the document, without a server ---------------------------------------------------------------


def test_one_sample_and_a_batch() -> None:
    one = check({"time": "2025-06-01T10:00:00Z", "device": "watch", "fields": {"hr_bpm": 150, "lon": 13.4}})
    assert one.samples == [ApiSample(0, 1748772000 * S, {"hr_bpm": 150.0, "lng": 13.4}, "watch")]
    assert (one.errors, one.count) == ([], 1)
    batch = check({"samples": [{"time": 1748772000, "fields": {"pwr_w": 250}},
                               {"time": 1748772001.5, "fields": {"cad_rpm": 90.5}}]})
    assert batch.samples == [
        ApiSample(0, 1748772000 * S, {"pwr_w": 250.0}, None),
        ApiSample(1, 1748772001500000000, {"cad_rpm": 90.5}, None),
    ]
    assert check({"samples": []}).count == 0


@pytest.mark.parametrize(
    ("time", "precision", "time_ns"),
    [
        (1748772000, None, 1748772000 * S),  # seconds
        (1748772000123, None, 1748772000123 * 10**6),  # milliseconds, read from the size
        (1748772000123456, None, 1748772000123456 * 10**3),  # microseconds
        (1748772000123456789, None, 1748772000123456789),  # nanoseconds
        (9_000_000_000, None, 9_000_000_000 * S),  # the year 2255: still seconds
        (100_000_000_000, None, 100_000_000_000 * 10**6),  # 10^11: milliseconds
        (1748772000.123456, None, 1748772000123456000),  # as written (a double holds ~16 digits)
        (1748772000123.5, None, 1748772000123500000),
        (0, None, 0),
        (-86400, None, -86400 * S),
        (5, "ms", 5_000_000),  # ?precision= names the unit, whatever the size
        (1748772000, "ns", 1748772000),
        ("2025-06-01T12:00:00.000000001+02:00", None, 1748772000 * S + 1),
        ("2025-06-01 10:00:00", None, 1748772000 * S),
    ],
)
def test_times(time: object, precision: str | None, time_ns: int) -> None:
    assert check({"time": time, "fields": {"hr_bpm": 1}}, precision=precision).samples[0].time_ns == time_ns


def test_every_bad_item_is_reported_with_index_and_path() -> None:
    result = check(
        {
            "samples": [
                {"time": 1748772000, "fields": {"hr_bpm": 150}},  # good
                {"fields": {"hr_bpm": 150}},
                {"time": "yesterday", "fields": {"foo": 1, "hr_bpm": "150", "lat": 91, "lon": 1, "lng": 2}},
                "a string",
                {"time": True, "device": "", "fields": {}, "extra": 1},
                {"time": 1748772000, "device": 7, "fields": [1]},
                {"time": 1e300, "fields": {"a/b~c": 1, "hr_bpm": None}},
                {"time": 1748772002, "device": "bike", "fields": {"pwr_w": 300}},  # good
            ]
        }
    )
    assert [s.index for s in result.samples] == [0, 7]
    assert [e.as_json() for e in result.errors] == [
        {"index": 1, "path": "/samples/1/time", "message": "required: an ISO 8601 string or an epoch number"},
        {"index": 2, "path": "/samples/2/time",
         "message": '"yesterday" is not an ISO 8601 time (e.g. 2025-06-01T10:00:00.5Z)'},
        {"index": 2, "path": "/samples/2/fields/foo", "message": f"unknown field; allowed: {jsonapi.ALLOWED_FIELDS}"},
        {"index": 2, "path": "/samples/2/fields/hr_bpm", "message": "must be a number, got a string"},
        {"index": 2, "path": "/samples/2/fields/lat", "message": "91 is out of range -90..90 deg"},
        {"index": 2, "path": "/samples/2/fields/lon", "message": 'the same field as "lng"'},
        {"index": 3, "path": "/samples/3", "message": "a sample must be an object with time, fields and optionally device"},
        {"index": 4, "path": "/samples/4/extra", "message": "unknown key; a sample has time, device and fields"},
        {"index": 4, "path": "/samples/4/time", "message": "must be an ISO 8601 string or an epoch number, got a boolean"},
        {"index": 4, "path": "/samples/4/device", "message": "must not be empty"},
        {"index": 4, "path": "/samples/4/fields", "message": "must hold at least one field"},
        {"index": 5, "path": "/samples/5/device", "message": "must be a string"},
        {"index": 5, "path": "/samples/5/fields",
         "message": 'must be an object of vocabulary fields, e.g. {"hr_bpm": 150}'},
        {"index": 6, "path": "/samples/6/time", "message": "1e+300 is outside the time range Tracker stores"},
        {"index": 6, "path": "/samples/6/fields/a~1b~0c", "message": f"unknown field; allowed: {jsonapi.ALLOWED_FIELDS}"},
        {"index": 6, "path": "/samples/6/fields/hr_bpm", "message": "must be a number, got null"},
    ]


def test_a_single_sample_reports_paths_from_the_root() -> None:
    result = check({"time": "2025-06-01T10:00:00Z", "fields": {"hr_bpm": "x"}})
    assert result.errors == [ItemError(0, "/fields/hr_bpm", "must be a number, got a string")]
    assert check({"time": 1, "fields": None}).errors == [
        ItemError(0, "/fields", 'required: an object of vocabulary fields, e.g. {"hr_bpm": 150}')
    ]


@pytest.mark.parametrize(
    ("document", "kw", "status", "message"),
    [
        ([], {}, 400, 'the body must be a JSON object: one sample, or {"samples": [...]}'),
        ({"samples": {}}, {}, 400, '"samples" must be a list of samples'),
        ({"samples": [], "device": "x"}, {}, 400, 'a batch has only "samples"; unexpected: device'),
        ({"samples": [{}] * 4}, {"max_samples": 3}, 413, "a batch holds at most 3 samples; this one has 4"),
        ({"time": 1, "fields": {"hr_bpm": 1}}, {"precision": "h"}, 400, 'invalid precision "h" (use s, ms, us or ns)'),
    ],
)
def test_document_errors(document: object, kw: dict[str, object], status: int, message: str) -> None:
    with pytest.raises(DocumentError) as caught:
        check(document, **kw)
    assert (caught.value.status, caught.value.message) == (status, message)


def test_invalid_json() -> None:
    with pytest.raises(DocumentError, match="the body is not valid JSON: unexpected end of data"):
        jsonapi.parse_body(b'{"time": 1')
