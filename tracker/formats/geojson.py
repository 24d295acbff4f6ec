"""GeoJSON: a FeatureCollection of one Feature, a LineString of [lng, lat, alt] (alt left out when the
sample has none), with the rest in per-point arrays under `properties` (see the README for the shape).
Samples without a position are left out: a LineString has only positions."""

from __future__ import annotations

from typing import Any

import orjson

from tracker.formats.track import Track, rfc3339


def write(track: Track) -> bytes:
    located = [(t, f) for t, f in track.points if "lat" in f and "lng" in f]
    keys = [k for k in track.keys() if k not in ("lat", "lng", "alt_m")]
    coordinates = [[f["lng"], f["lat"], f["alt_m"]] if "alt_m" in f else [f["lng"], f["lat"]] for _, f in located]
    properties: dict[str, Any] = {
        "name": track.name, "sport": track.sport, "device": track.device,
        "times": [rfc3339(t) for t, _ in located], "time_ns": [t for t, _ in located],
    }  # fmt: skip
    for key in keys:
        properties[key] = [f.get(key) for _, f in located]
    feature = {"type": "Feature", "geometry": {"type": "LineString", "coordinates": coordinates}, "properties": properties}
    return orjson.dumps({"type": "FeatureCollection", "features": [feature]})
