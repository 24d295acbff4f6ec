"""POST /api/v1/samples: the document checks (pure), then the endpoint over HTTP against real files."""

from __future__ import annotations

import gzip

import orjson
import pytest
from aiohttp.test_utils import TestClient
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.conftest import AddUser, TokenMaker, basic, stored
from tracker import jsonapi
from tracker.app import create_app
from tracker.appkeys import LIVE
from tracker.config import Settings
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


# -- POST /api/v1/samples over HTTP ---------------------------------------------------------------

PASSWORD = basic("coder", "coder-pass-1")


@pytest.fixture
async def coder(add_user: AddUser) -> None:
    await add_user("coder", "coder-pass-1")


async def post(client: TestClient, body: object, query: str = "", headers: dict[str, str] | None = None):
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    resp = await client.post(f"/api/v1/samples{query}", data=data, headers=PASSWORD if headers is None else headers)
    return resp.status, await resp.json()


def rows_of(samples: list) -> list[tuple[int, dict[str, str], dict[str, float]]]:
    return [(r.time, r.tags, r.fields) for r in samples]


@pytest.mark.usefixtures("coder")
async def test_one_sample_then_a_batch(client: TestClient, settings: Settings, make_token: TokenMaker) -> None:
    assert await post(client, {"time": "2025-06-01T10:00:00Z", "device": "garmin", "fields": {"hr_bpm": 150}}) == (
        201, {"stored": 1, "skipped": []},
    )
    token = await make_token("coder", "script")
    status, body = await post(
        client,
        {"samples": [{"time": 1748772001000, "fields": {"pwr_w": 250}}, {"time": 1748772002, "fields": {"cad_rpm": 90}}]},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert (status, body) == (201, {"stored": 2, "skipped": []})
    assert rows_of(await stored(settings, "coder")) == [
        (1748772000 * S, {"device": "garmin"}, {"hr_bpm": 150.0}),
        (1748772001 * S, {"device": "script"}, {"pwr_w": 250.0}),  # the token's label
        (1748772002 * S, {"device": "script"}, {"cad_rpm": 90.0}),
    ]


@pytest.mark.usefixtures("coder")
async def test_an_invalid_batch_stores_nothing_unless_partial(client: TestClient, settings: Settings) -> None:
    batch = {
        "samples": [
            {"time": 1748772000, "fields": {"hr_bpm": 150}},
            {"time": 1748772001, "fields": {"heart": 150}},
            {"time": 1748772002, "fields": {"hr_bpm": 151}},
            {"fields": {"lat": 95}},
        ]
    }
    status, body = await post(client, batch)
    assert status == 400
    assert body == {
        "error": "2 of 4 samples are invalid; nothing was stored",
        "errors": [
            {"index": 1, "path": "/samples/1/fields/heart", "message": f"unknown field; allowed: {jsonapi.ALLOWED_FIELDS}"},
            {"index": 3, "path": "/samples/3/time", "message": "required: an ISO 8601 string or an epoch number"},
            {"index": 3, "path": "/samples/3/fields/lat", "message": "95 is out of range -90..90 deg"},
        ],
    }
    assert await stored(settings, "coder") == []
    status, partial = await post(client, batch, "?partial=true")
    assert (status, partial["stored"], partial["skipped"]) == (207, 2, [])
    assert partial["errors"] == body["errors"]
    assert [r.time for r in await stored(settings, "coder")] == [1748772000 * S, 1748772002 * S]
    # Nothing valid at all: 400 even with partial=true.
    assert (await post(client, {"samples": [batch["samples"][1]]}, "?partial=true"))[0] == 400


@pytest.mark.usefixtures("coder")
async def test_on_conflict_merge_skip_overwrite(client: TestClient, settings: Settings) -> None:
    first = {"samples": [{"time": 1, "device": "w", "fields": {"hr_bpm": 100, "lat": 1}},
                         {"time": 2, "device": "w", "fields": {"hr_bpm": 101}}]}
    assert await post(client, first, "?precision=s") == (201, {"stored": 2, "skipped": []})
    # Default: merge, as /write does (per field, newest wins).
    assert await post(client, {"time": 1, "device": "w", "fields": {"hr_bpm": 110}}, "?precision=s") == (
        201, {"stored": 1, "skipped": []},
    )
    # skip: a re-sent batch is harmless; new samples in it are stored, the others listed.
    resend = {"samples": [{"time": 1, "device": "w", "fields": {"hr_bpm": 999}},
                          {"time": 3, "device": "w", "fields": {"hr_bpm": 103}},
                          {"time": 2, "device": "w", "fields": {"hr_bpm": 999}},
                          {"time": 2, "device": "other", "fields": {"hr_bpm": 5}}]}
    assert await post(client, resend, "?precision=s&on_conflict=skip") == (201, {"stored": 2, "skipped": [0, 2]})
    # overwrite: the whole stored sample is replaced.
    assert await post(client, {"time": 1, "device": "w", "fields": {"pwr_w": 300}}, "?precision=s&on_conflict=overwrite") == (
        201, {"stored": 1, "skipped": []},
    )
    assert rows_of(await stored(settings, "coder")) == [
        (1 * S, {"device": "w"}, {"pwr_w": 300.0}),
        (2 * S, {"device": "w"}, {"hr_bpm": 101.0}),
        (2 * S, {"device": "other"}, {"hr_bpm": 5.0}),
        (3 * S, {"device": "w"}, {"hr_bpm": 103.0}),
    ]
    # skip with partial: skipped indices and invalid ones are both the request's own indices.
    status, body = await post(
        client,
        {"samples": [{"time": "x", "fields": {"hr_bpm": 1}}, {"time": 3, "device": "w", "fields": {"hr_bpm": 1}},
                     {"time": 4, "device": "w", "fields": {"hr_bpm": 104}}]},
        "?precision=s&on_conflict=skip&partial=1",
    )
    assert (status, body["stored"], body["skipped"], [e["index"] for e in body["errors"]]) == (207, 1, [1], [0])


@pytest.mark.usefixtures("coder")
async def test_watchers_get_what_was_stored_and_not_what_was_skipped(client: TestClient) -> None:
    assert await post(client, {"time": 1748772000, "fields": {"hr_bpm": 150}}) == (201, {"stored": 1, "skipped": []})
    subscription, _ = client.server.app[LIVE].subscribe("coder")
    with subscription:
        batch = {"samples": [{"time": 1748772000, "fields": {"hr_bpm": 1}}, {"time": 1748772001, "fields": {"hr_bpm": 151}}]}
        assert await post(client, batch, "?on_conflict=skip") == (201, {"stored": 1, "skipped": [0]})
        events = await subscription.next_events(timeout=5)
    assert [orjson.loads(event.data) for event in events] == [
        {"samples": [{"t": 1748772001 * S, "f": {"hr_bpm": 151.0}}]}
    ]


@pytest.mark.usefixtures("coder")
async def test_refusals(client: TestClient, settings: Settings, make_token: TokenMaker, revoke_token) -> None:
    one = {"time": 1748772000, "fields": {"hr_bpm": 150}}
    assert (await post(client, one, headers={}))[0] == 401
    assert (await post(client, one, headers=basic("coder", "wrong")))[0] == 401
    token = await make_token("coder", "old")
    await revoke_token("coder", "old")
    assert (await post(client, one, headers=basic("coder", token)))[0] == 401
    assert await post(client, one, "?partial=maybe") == (400, {"error": 'invalid partial "maybe" (use true or false)'})
    assert await post(client, one, "?on_conflict=replace") == (
        400, {"error": 'invalid on_conflict "replace" (use merge, skip, overwrite)'},
    )
    assert await post(client, one, "?precision=h") == (400, {"error": 'invalid precision "h" (use s, ms, us or ns)'})
    status, body = await post(client, b'{"time": ')
    assert status == 400 and body["error"].startswith("the body is not valid JSON")
    assert await post(client, [one]) == (400, {"error": 'the body must be a JSON object: one sample, or {"samples": [...]}'})
    assert await stored(settings, "coder") == []


@pytest.mark.usefixtures("coder")
async def test_limits_and_gzip(aiohttp_client, settings: Settings) -> None:
    small = settings.with_(api_max_samples=3, api_max_body_size=2000)
    client = await aiohttp_client(create_app(small))
    samples = [{"time": 1748772000 + i, "fields": {"hr_bpm": 100 + i}} for i in range(4)]
    assert await post(client, {"samples": samples}) == (413, {"error": "a batch holds at most 3 samples; this one has 4"})
    padded = {"time": 1748772000, "device": "x" * 200, "fields": {"hr_bpm": 1}}
    assert await post(client, {"samples": [padded] * 3}) == (201, {"stored": 3, "skipped": []})
    big = orjson.dumps({"samples": [{**padded, "device": "y" * 256}] * 3}) + b" " * 1500
    assert (await post(client, big))[0] == 413
    compressed = gzip.compress(orjson.dumps({"samples": samples[:3]}))
    resp = await client.post(
        "/api/v1/samples", data=compressed, headers={**PASSWORD, "Content-Encoding": "gzip", "Content-Type": "application/json"}
    )
    assert (resp.status, await resp.json()) == (201, {"stored": 3, "skipped": []})
    assert len(await stored(settings, "coder")) == 4  # the padded sample (one device, one time) and three


# -- the OpenAPI document -------------------------------------------------------------------------


@pytest.mark.usefixtures("coder")
async def test_openapi_document_is_valid_and_its_examples_get_the_documented_answers(
    client: TestClient, settings: Settings
) -> None:
    resp = await client.get("/api/v1/openapi.json")  # no credentials needed
    assert resp.status == 200
    document = await resp.json()
    validate(document)  # OpenAPI 3.1, by openapi-spec-validator
    registry = Registry().with_resource("urn:tracker", Resource.from_contents(document, default_specification=DRAFT202012))

    def schema_validator(ref: str) -> Draft202012Validator:
        return Draft202012Validator({"$ref": f"urn:tracker{ref}"}, registry=registry)

    operation = document["paths"]["/api/v1/samples"]["post"]
    body_validator = schema_validator("#/components/schemas/Sample"), schema_validator("#/components/schemas/Batch")
    examples = operation["requestBody"]["content"]["application/json"]["examples"]
    assert len(examples) >= 4
    seen_statuses = set()
    for name, example in examples.items():
        # The schema and the server agree: a body the schema refuses has samples the server refuses.
        valid_by_schema = any(v.is_valid(example["value"]) for v in body_validator)
        query = f"?{example['x-query']}" if "x-query" in example else ""
        status, body = await post(client, example["value"], query)
        assert status == example["x-status"], (name, body)
        assert valid_by_schema == (status == 201), name
        response_schema = operation["responses"][str(status)]["content"]["application/json"]["schema"]["$ref"]
        errors = list(schema_validator(response_schema).iter_errors(body))
        assert errors == [], (name, body, errors)
        seen_statuses.add(status)
    assert seen_statuses == {201, 207, 400}
    # The examples ran against the live store: one sample, a batch of two, the re-sent batch skipped,
    # nothing from the invalid batch, one from the partial one.
    assert len(await stored(settings, "coder")) == 4
    # The other documented answers have schemas the live server matches too.
    for status, (sent, headers) in {401: ({}, {}), 413: (b"x" * (settings.api_max_body_size + 1), PASSWORD)}.items():
        got, body = await post(client, sent, headers=headers)
        assert got == status
        ref = operation["responses"][str(status)]["content"]["application/json"]["schema"]["$ref"]
        assert list(schema_validator(ref).iter_errors(body)) == []
