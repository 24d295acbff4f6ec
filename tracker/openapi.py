"""The OpenAPI 3.1 description of the JSON API and the phone-app endpoints, built from the code's
own tables (vocabulary, app parameters, limits) so that it cannot drift from what the server does.

Served at GET /api/v1/openapi.json. The request examples of POST /api/v1/samples carry the answer
they get, in order, against an empty database (`x-status`, and `x-query` for the query string):
the test suite posts them and checks the answers against the response schemas.
"""

from __future__ import annotations

from typing import Any

from tracker import apps, courses, formats, jsonapi
from tracker.activities.summary import SUMMARY_KEYS
from tracker.browser import activities as api
from tracker.config import Settings
from tracker.storage import ON_CONFLICT
from tracker import vocabulary
from tracker.vocabulary import BY_KEY, FIELDS

JSON = "application/json"
_ERROR_REF = {"$ref": "#/components/schemas/Error"}


def document(settings: Settings) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Tracker",
            "version": "1",
            "summary": "Samples in from scripts (JSON) and phone apps (their own protocols).",
            "description": (
                "Every write is answered only after its samples are committed. Credentials: the account "
                "password or a device token, as HTTP Basic (user name and password or token), "
                "`Authorization: Token user:secret`, `Authorization: Bearer <token>` or `?u=&p=`. "
                "A device token can only write to its owner's database; samples written with it carry "
                "its label as the `device` tag unless the request names a device."
            ),
        },
        "paths": {
            "/api/v1/samples": {"post": _post_samples(settings)},
            "/api/v1/openapi.json": {
                "get": {
                    "summary": "This document",
                    "security": [],
                    "responses": {"200": {"description": "The OpenAPI document", "content": {JSON: {"schema": {"type": "object"}}}}},
                }
            },
            "/api/import": {"post": _import(settings)},
            "/api/export": {"get": _export()},
            "/osmand": _osmand(),
            "/owntracks": {"post": _owntracks()},
            "/gpslogger": _gpslogger(),
            **_activities(),
            **_course_paths(settings),
        },
        "components": {"schemas": _schemas(settings), "securitySchemes": _security_schemes()},
        "security": [{"basic": []}, {"bearer": []}, {"token": []}],
    }


# --------------------------------------------------------------------------------------------------
# POST /api/v1/samples


def _post_samples(settings: Settings) -> dict[str, Any]:
    return {
        "summary": "Store one sample or a batch",
        "description": (
            "A batch is all or nothing: if any sample is invalid nothing is stored and every problem "
            "is listed (400), unless `partial=true`, which stores the valid samples and lists the "
            f"invalid ones (207). At most {settings.api_max_samples} samples and "
            f"{settings.api_max_body_size} bytes of body per request (413 past either; gzip accepted). "
            "Samples with the same device and time as a stored one merge by default (per field, "
            "newest wins, as /write does); `on_conflict=skip` keeps the stored sample and lists the "
            "skipped indices, so a batch re-sent after a lost answer is harmless; "
            "`on_conflict=overwrite` replaces the stored sample whole."
        ),
        "parameters": [
            {
                "name": "partial",
                "in": "query",
                "description": "Store the valid samples of a batch that has invalid ones (answer 207).",
                "schema": {"type": "boolean", "default": False},
            },
            {
                "name": "on_conflict",
                "in": "query",
                "description": "What a sample with the time and device of a stored one does.",
                "schema": {"type": "string", "enum": list(ON_CONFLICT), "default": "merge"},
            },
            {
                "name": "precision",
                "in": "query",
                "description": (
                    "The unit of epoch-number times. Without it the unit is read from the size: "
                    "below 10^11 seconds, below 10^14 milliseconds, below 10^17 microseconds, else "
                    "nanoseconds."
                ),
                "schema": {"type": "string", "enum": list(jsonapi.PRECISIONS)},
            },
        ],
        "requestBody": {
            "required": True,
            "content": {
                JSON: {
                    "schema": {"oneOf": [{"$ref": "#/components/schemas/Sample"}, {"$ref": "#/components/schemas/Batch"}]},
                    "examples": _examples(),
                }
            },
        },
        "responses": {
            "201": _response("Stored: how many, and the indices `on_conflict=skip` left out", "Stored"),
            "207": _response("Some stored (`partial=true`): the invalid samples are listed", "Partial"),
            "400": _response("Nothing stored: the body or some samples are invalid (each listed)", "Error"),
            "401": _response("No credentials, or wrong ones", "Error"),
            "413": _response("Too many samples, or too large a body", "Error"),
        },
    }


# --------------------------------------------------------------------------------------------------
# Activity files: POST /api/import, GET /api/export

_USER_PARAM = {
    "name": "user", "in": "query", "description": "Whose samples; default the caller.", "schema": {"type": "string"},
}  # fmt: skip


def _import(settings: Settings) -> dict[str, Any]:
    return {
        "summary": "Import a GPX, TCX or FIT file into your samples",
        "description": (
            "The owner only (a share cannot import). The format is told by the content. Each track's points "
            "are stored tagged `device` (the file's device or creator) and `sport`; writes merge, so "
            f"importing a file twice changes nothing. At most {settings.max_body_size} bytes (413 past it). "
            "Also with the browser session and its CSRF token (`X-CSRF-Token`)."
        ),
        "parameters": [_USER_PARAM, {
            "name": "X-Filename", "in": "header", "description": "The file's name, for messages (a raw body).",
            "schema": {"type": "string"},
        }],  # fmt: skip
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                "multipart/form-data": {"schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}},
            },
        },
        "responses": {
            "200": _response("What was read and stored", "ImportSummary"),
            "400": _response("Not a GPX, TCX or FIT file, or a broken one (the message names the file and format)", "Error"),
            "401": _response("No credentials, or wrong ones", "Error"),
            "403": _response("Another user's samples", "Error"),
            "413": _response("Too large a file", "Error"),
        },
    }


def _export() -> dict[str, Any]:
    time_schema = {"type": "string", "description": "RFC 3339, or ns since the epoch"}
    return {
        "summary": "Export samples as GPX, TCX, FIT, CSV or GeoJSON",
        "description": (
            "The samples of start <= time < end (default: all), of one track when `device` and/or `sport` "
            "are given (an empty value: samples without that tag), as a file (Content-Disposition: attachment). "
            "Readers as /query: the owner and the users it shares with."
        ),
        "parameters": [
            _USER_PARAM,
            {"name": "format", "in": "query", "required": True, "schema": {"type": "string", "enum": list(formats.EXPORT_FORMATS)}},
            {"name": "start", "in": "query", "schema": time_schema},
            {"name": "end", "in": "query", "schema": time_schema},
            {"name": "device", "in": "query", "schema": {"type": "string"}},
            {"name": "sport", "in": "query", "schema": {"type": "string"}},
        ],
        "responses": {
            "200": {
                "description": "The file",
                "content": {media: {"schema": {"type": "string", "format": "binary"}} for media in formats.MEDIA_TYPES.values()},
            },
            "400": _response("A parameter is wrong (the message names it)", "Error"),
            "401": _response("No credentials, or wrong ones", "Error"),
            "403": _response("Not a reader of that user's samples", "Error"),
            "404": _response("No samples in the range", "Error"),
            "413": _response("Too many samples for one export", "Error"),
        },
    }


def _examples() -> dict[str, Any]:
    """Posted in this order by the tests, against an empty database."""
    batch = {
        "samples": [
            {"time": 1748772001, "fields": {"lat": 52.52, "lng": 13.405, "spd_kph": 28.4}},
            {"time": 1748772002, "fields": {"lat": 52.5201, "lng": 13.4051, "spd_kph": 28.9}},
        ]
    }
    with_a_bad_sample = {
        "samples": [
            {"time": 1748772003000, "fields": {"hr_bpm": 151}},
            {"time": "yesterday", "fields": {"heart": 150}},
        ]
    }
    return {
        "one": {
            "summary": "One sample",
            "value": {"time": "2025-06-01T10:00:00Z", "device": "garmin", "fields": {"hr_bpm": 150, "pwr_w": 230}},
            "x-status": 201,
        },
        "batch": {"summary": "A batch with epoch-second times", "value": batch, "x-status": 201},
        "resend": {
            "summary": "The same batch again, keeping what is stored",
            "value": batch,
            "x-query": "on_conflict=skip",
            "x-status": 201,
        },
        "invalid": {
            "summary": "A batch with a bad sample: nothing is stored",
            "value": with_a_bad_sample,
            "x-status": 400,
        },
        "partial": {
            "summary": "The same with partial=true: the good sample is stored",
            "value": with_a_bad_sample,
            "x-query": "partial=true",
            "x-status": 207,
        },
    }


def _response(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


def _import_summary_schema() -> dict[str, Any]:
    when = {"type": ["string", "null"], "description": "RFC 3339"}
    return {
        "type": "object",
        "required": ["file", "format", "tracks", "points", "stored", "refused", "unmapped", "start", "end", "activities"],
        "properties": {
            "file": {"type": "string"},
            "format": {"type": "string", "enum": ["gpx", "tcx", "fit"]},
            "tracks": {"type": "array", "items": {"type": "object", "properties": {
                "kind": {"type": "string", "enum": ["activity", "course"]}, "name": {"type": "string"},
                "device": {"type": "string"}, "sport": {"type": "string"}, "points": {"type": "integer"},
                "start": when, "end": when,
            }}},  # fmt: skip
            "points": {"type": "integer", "description": "Timed points read"},
            "stored": {"type": "integer"},
            "refused": {"type": "object", "additionalProperties": {"type": "integer"}, "description": "Why -> points not stored"},
            "unmapped": {"type": "object", "additionalProperties": {"type": "integer"}, "description": "Source field -> values the vocabulary has no key for"},
            "start": when,
            "end": when,
            "activities": {"type": "array", "description": "The activities the file's samples fall in (after the import), oldest first",
                           "items": {"type": "object", "required": ["id", "name", "start", "end"], "properties": {
                               "id": {"type": "integer"}, "name": {"type": "string"},
                               "start": {"type": "string"}, "end": {"type": "string"}}}},
        },
    }


def _schemas(settings: Settings) -> dict[str, Any]:
    field_properties: dict[str, Any] = {}
    for spec in FIELDS:
        prop: dict[str, Any] = {"type": "number", "description": f"{spec.meaning} ({spec.unit})"}
        if spec.low > float("-inf"):
            prop["minimum"] = spec.low
        if spec.high < float("inf"):
            prop["maximum"] = spec.high
        field_properties[spec.key] = prop
    field_properties["lon"] = {**field_properties["lng"], "description": "the same as lng"}
    item_error = {
        "type": "object",
        "required": ["index", "path", "message"],
        "properties": {
            "index": {"type": "integer", "minimum": 0, "description": "position of the sample in the request"},
            "path": {"type": "string", "description": "JSON Pointer (RFC 6901) into the request body"},
            "message": {"type": "string"},
        },
        "additionalProperties": False,
    }
    indices = {"type": "array", "items": {"type": "integer", "minimum": 0}}
    return {
        "Sample": {
            "type": "object",
            "required": ["time", "fields"],
            "properties": {
                "time": {
                    "oneOf": [
                        {"type": "string", "description": "ISO 8601; without a zone, UTC"},
                        {"type": "number", "description": "epoch: unit from ?precision or the number's size"},
                    ],
                    "description": (
                        "not older than the user's retention, nor more than "
                        f"{settings.max_future_seconds:g} s ahead of the server's clock (an invalid sample otherwise)"
                    ),
                },
                "device": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": vocabulary.DEVICE_MAX_LENGTH,
                    "description": "the device tag; default: the device token's label, else none",
                },
                "fields": {
                    "type": "object",
                    "minProperties": 1,
                    "properties": field_properties,
                    "additionalProperties": False,
                },
            },
            "additionalProperties": False,
        },
        "Batch": {
            "type": "object",
            "required": ["samples"],
            "properties": {
                "samples": {
                    "type": "array",
                    "maxItems": settings.api_max_samples,
                    "items": {"$ref": "#/components/schemas/Sample"},
                }
            },
            "additionalProperties": False,
        },
        "ItemError": item_error,
        "Stored": {
            "type": "object",
            "required": ["stored", "skipped"],
            "properties": {
                "stored": {"type": "integer", "minimum": 0, "description": "samples written (merged or new)"},
                "skipped": {**indices, "description": "indices that on_conflict=skip left out"},
            },
            "additionalProperties": False,
        },
        "Partial": {
            "type": "object",
            "required": ["stored", "skipped", "errors"],
            "properties": {
                "stored": {"type": "integer", "minimum": 0},
                "skipped": indices,
                "errors": {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/ItemError"}},
            },
            "additionalProperties": False,
        },
        "Activity": _activity_schema(),
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {"type": "string"},
                "errors": {"type": "array", "items": {"$ref": "#/components/schemas/ItemError"}},
            },
            "additionalProperties": False,
        },
        "ImportSummary": _import_summary_schema(),
    }


def _security_schemes() -> dict[str, Any]:
    return {
        "basic": {"type": "http", "scheme": "basic", "description": "user name, and password or device token"},
        "bearer": {"type": "http", "scheme": "bearer", "description": "a device token, or a bearer token from POST /auth"},
        "token": {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token user:secret`, InfluxDB's form; the secret is the password or a device token",
        },
    }


# --------------------------------------------------------------------------------------------------
# Courses: planned routes on the live map (tracker.browser.courses)


def _course_paths(settings: Settings) -> dict[str, Any]:
    user = {"name": "user", "in": "query", "required": False, "schema": {"type": "string"},
            "description": "whose courses; default the caller. Others' only to list, with a share."}  # fmt: skip
    course_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
    summary = {
        "type": "object",
        "properties": {
            "id": {"type": "integer"}, "name": {"type": "string"}, "created_ns": {"type": "integer"},
            "points": {"type": "integer", "description": "how many points"}, "distance_m": {"type": "number"},
        },
    }  # fmt: skip
    point = {"type": "array", "minItems": 2, "maxItems": 3, "items": {"type": ["number", "null"]}}
    new_course = {
        "oneOf": [
            {
                "type": "object",
                "required": ["name", "points"],
                "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": courses.MAX_NAME},
                    "points": {"type": "array", "minItems": 2, "maxItems": courses.MAX_POINTS, "items": point,
                               "description": "[lat, lng] or [lat, lng, alt_m]"},
                },
            },
            {"type": "object", "required": ["type"], "description": "GeoJSON: a LineString, or a Feature of one "
             "(coordinates [lng, lat(, alt)]; the name from `name` or properties.name)"},
            {"type": "object", "required": ["activity"], "description": "The route of one of the owner's activities, "
             f"thinned to at most {courses.MAX_THINNED} points; named as the activity unless `name` is given",
             "properties": {"activity": {"type": "integer", "minimum": 1}, "name": {"type": "string", "minLength": 1}}},
        ]
    }  # fmt: skip
    course_file = {"type": "string", "format": "binary", "description": "A GPX (rte, or trk without times), TCX or "
                   "FIT course file, gzipped or not; a recorded activity file gives its route, thinned"}  # fmt: skip
    errors = {
        "400": _response("Invalid input: the message names the field and the rule", "Error"),
        "401": _response("No credentials, or wrong ones", "Error"),
        "403": _response("Not the owner (changes), or not allowed to watch", "Error"),
        "404": _response("No such course, link or attachment", "Error"),
    }
    ok = {"description": "Done", "content": {JSON: {"schema": {"type": "object"}}}}
    target = {"name": "target", "in": "path", "required": True, "schema": {"type": "string"},
              "description": '"now" or "link:<link id>"'}  # fmt: skip
    return {
        "/api/courses": {
            "get": {
                "summary": "The user's courses (without points) and what each is attached to",
                "parameters": [user],
                "responses": {"200": {"description": "Courses", "content": {JSON: {"schema": {
                    "type": "object", "properties": {"courses": {"type": "array", "items": summary},
                    "attachments": {"type": "array", "items": {"type": "object"}}}}}}}, **errors},
            },  # fmt: skip
            "post": {
                "summary": f"Add a course (owner; at most {courses.MAX_COURSES} per user)",
                "parameters": [user, {"name": "name", "in": "query", "schema": {"type": "string", "minLength": 1},
                               "description": "The course's name (default: the one in the body or file, else the file's name)"}],
                "requestBody": {"required": True, "content": {
                    JSON: {"schema": new_course},
                    "application/octet-stream": {"schema": course_file},
                    "multipart/form-data": {"schema": {"type": "object", "properties": {"file": course_file}}},
                }},
                "responses": {"201": {"description": "Stored", "content": {JSON: {"schema": summary}}},
                              "409": _response("The user has the most courses there may be", "Error"),
                              "413": _response("Too large a body", "Error"), **errors},
            },  # fmt: skip
        },
        "/api/courses/{id}": {
            "delete": {"summary": "Delete a course and its attachments (owner)", "parameters": [course_id, user],
                       "responses": {"200": ok, **errors}},
        },  # fmt: skip
        "/api/courses/{id}/attach": {
            "put": {
                "summary": "Show the course on the live view of everyone (\"now\") or of one active share link",
                "parameters": [course_id, user],
                "requestBody": {"required": True, "content": {JSON: {"schema": {"type": "object", "required": ["target"],
                    "properties": {"target": {"type": "string", "description": '"now" or "link:<link id>"'}}}}}},
                "responses": {"200": ok, **errors},
            },  # fmt: skip
        },
        "/api/courses/attach/{target}": {
            "delete": {"summary": "Show no course there any more (owner)", "parameters": [target, user],
                       "responses": {"200": ok, **errors}},
        },  # fmt: skip
        "/api/watch/{user}/course": {
            "get": {
                "summary": "The course a watcher sees: their share link's, else the one on \"now\", else null",
                "parameters": [{"name": "user", "in": "path", "required": True, "schema": {"type": "string"}},
                               {"name": "token", "in": "query", "required": False, "schema": {"type": "string"},
                                "description": "a share link's token"}],
                "responses": {"200": {"description": "The course and the off-route threshold", "content": {JSON: {
                    "schema": {"type": "object", "properties": {
                        "course": {"type": ["object", "null"]},
                        "off_route_m": {"type": "number", "description": f"default {settings.off_route_m:g}"}}}}}},
                    "304": {"description": "Unchanged since the ETag sent in If-None-Match"}, **errors},
            },  # fmt: skip
        },
    }


# --------------------------------------------------------------------------------------------------
# The phone apps (their parameters straight from the mapping tables)


def _param_rows(params: tuple[apps.Param, ...]) -> list[dict[str, Any]]:
    """The app's own parameter names; the vocabulary keys, also accepted, are described in prose."""
    rows = []
    for param in params:
        if any(param is key for key in apps.VOCABULARY_PARAMS):
            continue
        unit = param.unit or BY_KEY[param.field].unit
        rows.append(
            {
                "name": param.name,
                "in": "query",
                "description": f"-> {param.field} ({unit}" + (", negative = not known)" if param.negative_unknown else ")"),
                "schema": {"type": "number"},
            }
        )
    return rows


_APP_RESPONSES = {
    "400": {
        "description": "A parameter breaks the protocol, or the sample is older than the user's retention or too "
        "far ahead of the server's clock; the message names the parameter",
        "content": {JSON: {"schema": _ERROR_REF}},
    },
    "401": {"description": "Unknown or revoked device token, or wrong credentials", "content": {JSON: {"schema": _ERROR_REF}}},
}


def _osmand() -> dict[str, Any]:
    parameters = [
        {
            "name": "id",
            "in": "query",
            "description": "a device token (no other credentials needed), or with credentials the device's name "
            "(`deviceid` is the same; a token names no device)",
            "schema": {"type": "string"},
        },
        {"name": "timestamp", "in": "query", "description": apps.TIME_RULE, "schema": {"type": "string"}},
        {"name": "location", "in": "query", "description": "lat,lon in one parameter", "schema": {"type": "string"}},
        *_param_rows(apps.OSMAND_PARAMS["knots"]),
    ]
    operation = {
        "summary": "OsmAnd / Traccar Client: one position per request",
        "description": (
            "The OsmAnd protocol as Traccar serves it: parameters in the query string or a form body; "
            "`speed` in the sender's speed unit (a device token's setting: knots by default, m/s for "
            "the OsmAnd app). Any vocabulary key (hr_bpm, pwr_w, ...) is accepted too, in its own unit. "
            "A POST with a JSON body is Traccar Client 9's form: "
            '`{"location": {"timestamp", "coords": {latitude, longitude, accuracy, speed (m/s), heading, '
            'altitude}, "battery": {"level": 0..1}, "odometer" (m)}, "device_id"}`.'
        ),
        "parameters": parameters,
        "security": [{}, {"basic": []}, {"bearer": []}, {"token": []}],
        "responses": {"200": {"description": "Stored (an empty body, as Traccar answers)"}, **_APP_RESPONSES},
    }
    return {"get": operation, "post": operation}


def _owntracks() -> dict[str, Any]:
    return {
        "summary": "OwnTracks in HTTP mode",
        "description": (
            "The app's JSON messages; `_type: location` is stored (lat, lon, tst in epoch seconds, acc, "
            "alt, vel in km/h, cog, batt), any other type is accepted and ignored. The device is the "
            "app's X-Limit-D header, else `tid`."
        ),
        "parameters": [{"name": "X-Limit-D", "in": "header", "description": "the device name", "schema": {"type": "string"}}],
        "requestBody": {"required": True, "content": {JSON: {"schema": {"type": "object", "required": ["_type"]}}}},
        "security": [{"basic": []}],
        "responses": {
            "200": {"description": "Accepted: an empty list, as the app expects", "content": {JSON: {"schema": {"type": "array", "maxItems": 0}}}},
            **_APP_RESPONSES,
        },
    }


def _gpslogger() -> dict[str, Any]:
    operation = {
        "summary": "GPSLogger's custom URL",
        "description": (
            "GPSLogger's placeholders as parameters (query string, or a form body such as `%ALL`): "
            "`time` (%TIME, ISO 8601) or `timestamp` (%TIMESTAMP, epoch seconds), `id` as for /osmand; "
            "any vocabulary key is accepted too, in its own unit."
        ),
        "parameters": [
            {"name": "id", "in": "query", "description": "a device token, or with credentials the device's name", "schema": {"type": "string"}},
            {"name": "time", "in": "query", "description": "ISO 8601 (%TIME)", "schema": {"type": "string"}},
            {"name": "timestamp", "in": "query", "description": "epoch seconds (%TIMESTAMP)", "schema": {"type": "string"}},
            *_param_rows(apps.GPSLOGGER_PARAMS),
        ],
        "security": [{}, {"basic": []}, {"bearer": []}, {"token": []}],
        "responses": {"200": {"description": "Stored (an empty body)"}, **_APP_RESPONSES},
    }
    return {"get": operation, "post": operation}


# --------------------------------------------------------------------------------------------------
# Activities (tracker.browser.activities)

_USER_PARAM = {
    "name": "user", "in": "query", "required": False, "schema": {"type": "string"},
    "description": "whose activities (default the caller's): the owner, or a user the owner shares with (read only)",
}  # fmt: skip
_ID_PARAM = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
_TOKEN_PARAM = {
    "name": "token", "in": "query", "required": False, "schema": {"type": "string"},
    "description": "an activity link's token, instead of credentials: reads this one activity only",
}  # fmt: skip
_TIME = {"oneOf": [{"type": "integer", "description": "ns since the epoch"}, {"type": "string", "format": "date-time"}]}
_ACTIVITY_REF = {"$ref": "#/components/schemas/Activity"}
_ACTIVITY_TAGS = ["activities"]


def _query_param(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _json_answer(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _refusals(*statuses: str) -> dict[str, Any]:
    reasons = {
        "400": "a parameter or the body breaks a rule (the message names it)",
        "401": "no or wrong credentials",
        "403": "not the owner (changes), or no share from the owner (reads); or a missing CSRF token",
        "404": "no such activity",
    }
    return {status: _response(reasons[status], "Error") for status in statuses}


def _operation(summary: str, params: list[dict[str, Any]], answer: dict[str, Any], refusals: tuple[str, ...],
               body: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    operation: dict[str, Any] = {
        "summary": summary, "tags": _ACTIVITY_TAGS, "parameters": params,
        "responses": {"200": answer, **_refusals(*refusals)},
    }  # fmt: skip
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {JSON: {"schema": body}}}
    return operation


def _activity_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": (
            "Samples of one track (device and sport tags) with no pause longer than the user's gap_s, "
            "unless the owner split or merged it"
        ),
        "required": ["id", "user", "device", "sport", "name", "named", "start", "end", "start_ns", "end_ns", "samples", "summary"],
        "properties": {
            "id": {"type": "integer"},
            "user": {"type": "string"},
            "device": {"type": "string", "description": "the samples' device tag, '' without one"},
            "sport": {"type": "string", "description": "the samples' sport tag, '' without one"},
            "name": {"type": "string", "description": "the owner's name, else an automatic one (sport and start, UTC)"},
            "named": {"type": "boolean"},
            "start": {"type": "string", "format": "date-time"},
            "end": {"type": "string", "format": "date-time"},
            "start_ns": {"type": "integer"},
            "end_ns": {"type": "integer"},
            "samples": {"type": "integer", "minimum": 1},
            "summary": {"type": "object", "required": list(SUMMARY_KEYS), "properties": {k: {} for k in SUMMARY_KEYS}},
        },
    }


def _activities() -> dict[str, Any]:
    page = {
        "type": "object", "required": ["activities", "next"],
        "properties": {"activities": {"type": "array", "items": _ACTIVITY_REF}, "next": {"type": ["string", "null"]}},
    }  # fmt: skip
    samples = {
        "type": "object", "required": ["columns", "values", "downsampled"],
        "properties": {
            "columns": {"type": "array", "items": {"type": "string"}, "description": "time, then the vocabulary keys present"},
            "values": {"type": "array", "items": {"type": "array"}},
            "downsampled": {
                "type": "boolean",
                "description": "more samples than points: two rows per bucket, each field's minimum then maximum",
            },
        },
    }  # fmt: skip
    settings = {"type": "object", "description": "gap_s, moving_kph, hr_max_bpm, hr_zones_bpm, ftp_w, pwr_zones_w"}
    read = ("400", "401", "403", "404")
    page_config = {
        "type": "object", "required": ["user", "activity_id", "can_change", "tile_url", "tile_attribution", "fields"],
        "properties": {
            "user": {"type": "string"}, "activity_id": {"type": "integer"}, "can_change": {"type": "boolean"},
            "tile_url": {"type": "string"}, "tile_attribution": {"type": "string"},
            "fields": {"type": "array", "items": {"type": "object", "properties": {"key": {}, "unit": {}, "meaning": {}}}},
        },
    }  # fmt: skip
    link_create = _operation(
        "A share link for this activity only (owner only): read-only, its page and data, never the live view",
        [_ID_PARAM],
        _json_answer("The link; its token and url are shown only here", {
            "type": "object", "required": ["id", "label", "activity_id", "token", "url"],
            "properties": {
                "id": {"type": "integer"}, "label": {"type": "string"}, "activity_id": {"type": "integer"},
                "expires_ns": {"type": ["integer", "null"]}, "token": {"type": "string"},
                "url": {"type": "string", "description": "/activity/ID?token=..."},
            },
        }),
        ("400", "401", "403", "404"),
        {"type": "object", "properties": {
            "label": {"type": ["string", "null"], "maxLength": 100},
            "expires_in": {"oneOf": [{"type": "number", "exclusiveMinimum": 0, "maximum": api.MAX_LINK_SECONDS},
                                     {"type": "string", "description": "a duration: 90s, 30m, 2h, 7d, 1w"}, {"type": "null"}]},
        }},
    )  # fmt: skip
    link_create["responses"]["201"] = link_create["responses"].pop("200")
    link_create["responses"]["409"] = _response("the owner has an active link with that label", "Error")
    return {
        "/api/activities": {
            "get": _operation(
                "A user's activities, newest first, with their summaries",
                [
                    _USER_PARAM,
                    _query_param("limit", "page size", {"type": "integer", "minimum": 1, "maximum": api.MAX_LIMIT, "default": api.DEFAULT_LIMIT}),
                    _query_param("before", "the previous page's next", {"type": "string"}),
                    _query_param("from", "only activities ending at or after (ns or RFC 3339)", {"type": "string"}),
                    _query_param("to", "only activities starting at or before (ns or RFC 3339)", {"type": "string"}),
                ],
                _json_answer("One page", page), ("400", "401", "403"),
            ),
        },
        "/api/activities/{id}": {
            "get": _operation("One activity", [_ID_PARAM, _USER_PARAM, _TOKEN_PARAM], _json_answer("The activity", _ACTIVITY_REF), read),
            "patch": _operation(
                "Rename (owner only); null restores the automatic name", [_ID_PARAM], _json_answer("The activity", _ACTIVITY_REF),
                read, {"type": "object", "required": ["name"], "properties": {"name": {"type": ["string", "null"], "maxLength": api.MAX_NAME}}},
            ),
            "delete": _operation(
                "Delete the activity and its samples (owner only)",
                [_ID_PARAM, {"name": "confirm", "in": "query", "required": True, "schema": {"type": "integer"}, "description": "the id again"}],
                _json_answer("Deleted", {"type": "object", "properties": {"deleted": {"type": "integer"}, "samples_removed": {"type": "integer"}}}),
                read,
            ),
        },
        "/api/activities/{id}/samples": {
            "get": _operation(
                "The activity's samples, at most `points` rows (full resolution when the range holds that few)",
                [
                    _ID_PARAM, _USER_PARAM, _TOKEN_PARAM,
                    _query_param("points", "most rows", {"type": "integer", "minimum": 2, "maximum": api.MAX_POINTS, "default": api.DEFAULT_POINTS}),
                    _query_param("start", "a sub-range's start (ns or RFC 3339)", {"type": "string"}),
                    _query_param("end", "a sub-range's end, inclusive", {"type": "string"}),
                ],
                _json_answer("Columns and rows", samples), read,
            ),
        },
        "/api/activities/{id}/laps": {
            "get": _operation(
                "Laps of every_m metres along the activity",
                [_ID_PARAM, _USER_PARAM, _TOKEN_PARAM, _query_param("every_m", "lap length", {"type": "integer", "minimum": 10, "default": 1000})],
                _json_answer("The laps", {"type": "object", "properties": {"laps": {"type": "array", "items": {"type": "object"}}}}), read,
            ),
        },
        "/api/activities/{id}/config": {
            "get": _operation(
                "What the activity page needs: map tiles, the fields and their units, and whether the caller may change it",
                [_ID_PARAM, _USER_PARAM, _TOKEN_PARAM], _json_answer("The page's settings", page_config), read,
            ),
        },
        "/api/activities/{id}/links": {"post": link_create},
        "/api/activities/{id}/export": {
            "get": {
                "summary": "The activity as a file: its track (device and sport) over its span, as GET /api/export writes it",
                "tags": _ACTIVITY_TAGS,
                "parameters": [
                    _ID_PARAM, _USER_PARAM, _TOKEN_PARAM,
                    {"name": "format", "in": "query", "required": True, "schema": {"type": "string", "enum": list(formats.EXPORT_FORMATS)}},
                ],
                "responses": {
                    "200": {
                        "description": "The file (Content-Disposition: attachment)",
                        "content": {media: {"schema": {"type": "string", "format": "binary"}} for media in formats.MEDIA_TYPES.values()},
                    },
                    **_refusals(*read),
                    "413": _response("Too many samples for one export", "Error"),
                },
            },
        },
        "/api/activities/{id}/split": {
            "post": _operation(
                "Split at a time (owner only): samples before it, and from it on",
                [_ID_PARAM],
                _json_answer("The two activities", {"type": "object", "properties": {"activities": {"type": "array", "items": _ACTIVITY_REF}}}),
                read, {"type": "object", "required": ["at"], "properties": {"at": _TIME}},
            ),
        },
        "/api/activities/merge": {
            "post": _operation(
                "Merge consecutive activities of one track (owner only)", [], _json_answer("The merged activity", _ACTIVITY_REF), read,
                {"type": "object", "required": ["ids"], "properties": {"ids": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": api.MAX_MERGE}}},
            ),
        },
        "/api/activity-settings": {
            "get": _operation("The activity settings", [_USER_PARAM], _json_answer("The settings", settings), ("401", "403")),
            "put": _operation(
                "Change activity settings (owner only; null clears an optional one)", [], _json_answer("The settings", settings),
                ("400", "401", "403"), settings,
            ),
        },
    }
