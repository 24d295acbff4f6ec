"""The shared JSON answers: InfluxDB's form for devices and scripts, the private form for browsers."""

from __future__ import annotations

from tracker.http.responses import error_response, json_response, private_json_response


def test_json_response_ends_in_a_newline_and_may_be_indented() -> None:
    response = json_response({"a": 1}, status=201)
    assert response.status == 201 and response.body == b'{"a":1}\n'
    assert response.content_type == "application/json"
    assert "Cache-Control" not in response.headers
    assert json_response({"a": 1}, pretty=True).body == b'{\n  "a": 1\n}\n'


def test_private_json_response_is_never_cached_or_sniffed() -> None:
    response = private_json_response({"user": "alice"}, 409, {"Retry-After": "3"})
    assert response.status == 409 and response.body == b'{"user":"alice"}'
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Retry-After"] == "3"


def test_error_response_is_influxdbs_form() -> None:
    response = error_response(400, "bad\nline")
    assert response.body == b'{"error":"bad\\nline"}\n'
    assert response.headers["X-Influxdb-Error"] == "bad line"
    assert error_response(401, "no").headers["WWW-Authenticate"] == 'Basic realm="InfluxDB"'
