"""FIT through Garmin's official SDK (garmin_fit_sdk): its Decoder reads, its Encoder writes.

Read: record messages (timestamp, position in semicircles, enhanced_/altitude, enhanced_/speed in m/s,
distance in m, heart_rate, cadence, power, temperature) -> the vocabulary; session or sport -> sport;
file_id manufacturer and product -> device. A course file (file_id type course), or records without
timestamps, is a course. Written: file_id, records, one lap, one session and the activity message.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from garmin_fit_sdk import Decoder, Encoder, Profile, Stream

from tracker.formats.track import (
    MPS_TO_KPH,
    SEMICIRCLE_DEG,
    Fields,
    FormatError,
    Track,
    datetime_of,
    device_name,
    ns_of,
    sport_name,
)

MESG = Profile["mesg_num"]
FIT_SPORTS = frozenset(Profile["types"]["sport"].values())
# Record fields -> (vocabulary key, factor to its unit); the SDK has applied the profile's scale.
RECORD_FIELDS: dict[str, tuple[str, float]] = {
    "enhanced_altitude": ("alt_m", 1.0),
    "enhanced_speed": ("spd_kph", MPS_TO_KPH),
    "distance": ("dist_km", 0.001),
    "heart_rate": ("hr_bpm", 1.0),
    "cadence": ("cad_rpm", 1.0),
    "power": ("pwr_w", 1.0),
    "temperature": ("temp_c", 1.0),
}
# Read but not values of their own: the time and position, and the SDK's copies of the enhanced fields.
STRUCTURAL = frozenset({"timestamp", "position_lat", "position_long", "altitude", "speed"})


def _position(record: dict[str, Any]) -> tuple[float, float] | None:
    lat, lng = record.get("position_lat"), record.get("position_long")
    if isinstance(lat, int) and isinstance(lng, int):
        return lat * SEMICIRCLE_DEG, lng * SEMICIRCLE_DEG
    return None


def read(data: bytes) -> list[Track]:
    decoder = Decoder(Stream.from_byte_array(bytearray(data)))
    if not decoder.is_fit():
        raise FormatError("no FIT header")
    messages, errors = decoder.read()
    records: list[dict[str, Any]] = list(messages.get("record_mesgs", []))  # type: ignore[arg-type]  # TypedDicts, read as dicts
    if errors and not records:
        raise FormatError(f"not readable: {errors[0]}")
    # A device that stopped mid-file leaves a damaged end: the records before it are kept, and the
    # damage is reported with what was not mapped.
    damage = [f"damaged: {error}" for error in errors[:1]]
    file_id = (messages.get("file_id_mesgs") or [{}])[0]
    sessions = messages.get("session_mesgs") or messages.get("sport_mesgs") or [{}]
    product = file_id.get("garmin_product") or file_id.get("product_name") or file_id.get("product")
    if file_id.get("manufacturer") == "development" and file_id.get("product_name"):
        device = device_name(str(file_id["product_name"]))  # software names itself (our exports do)
    else:
        device = device_name(" ".join(str(part) for part in (file_id.get("manufacturer"), product) if part not in (None, "")))
    sport = sessions[0].get("sport")
    track = Track(sport=sport_name(sport) if isinstance(sport, str) and sport != "generic" else "", device=device)
    for note in damage:
        track.note_unmapped(note)
    course_name = (messages.get("course_mesgs") or [{}])[0].get("name")
    track.name = str(course_name or "")
    if file_id.get("type") == "course" or (records and all("timestamp" not in r for r in records)):
        track.kind = "course"
        for record in records:
            position = _position(record)
            if position is not None:
                alt = record.get("enhanced_altitude", record.get("altitude"))
                track.route.append((*position, alt if isinstance(alt, (int, float)) else None))
        return [track]
    for record in records:
        if not isinstance(record.get("timestamp"), datetime):
            track.note_unmapped("record without timestamp")
            continue
        fields: Fields = {}
        position = _position(record)
        if position is not None:
            fields["lat"], fields["lng"] = position
        for name, value in record.items():
            mapping = RECORD_FIELDS.get(name)
            if mapping is not None and isinstance(value, (int, float)):
                fields[mapping[0]] = value * mapping[1]
            elif name not in STRUCTURAL:
                track.note_unmapped(str(name))
        for name, key, factor in (("altitude", "alt_m", 1.0), ("speed", "spd_kph", MPS_TO_KPH)):
            if key not in fields and isinstance(record.get(name), (int, float)):
                fields[key] = record[name] * factor
        track.points.append((ns_of(record["timestamp"]), fields))
    return [track.finish()]


def _semicircles(degrees: float) -> int:
    return round(degrees / SEMICIRCLE_DEG)


def write(track: Track) -> bytes:
    encoder = Encoder()
    first_ns = track.points[0][0] if track.points else 0
    last_ns = track.points[-1][0] if track.points else 0
    start, end = datetime_of(first_ns), datetime_of(last_ns)
    elapsed = (last_ns - first_ns) / 1e9
    encoder.write_mesg({
        "mesg_num": MESG["FILE_ID"], "type": "activity", "manufacturer": "development", "product": 0,
        "serial_number": 1, "time_created": start, **({"product_name": track.device} if track.device else {}),
    })  # fmt: skip
    encoder.write_mesg({"mesg_num": MESG["EVENT"], "timestamp": start, "event": "timer", "event_type": "start"})
    for time_ns, fields in track.points:
        record: dict[str, Any] = {"mesg_num": MESG["RECORD"], "timestamp": datetime_of(time_ns)}
        if "lat" in fields and "lng" in fields:
            record["position_lat"] = _semicircles(fields["lat"])
            record["position_long"] = _semicircles(fields["lng"])
        for name, (key, factor) in RECORD_FIELDS.items():
            if key in fields:
                value = fields[key] / factor
                record[name] = round(value) if name in ("heart_rate", "cadence", "power", "temperature") else value
        encoder.write_mesg(record)
    encoder.write_mesg({"mesg_num": MESG["EVENT"], "timestamp": end, "event": "timer", "event_type": "stop_all"})
    distances = [f["dist_km"] for _, f in track.points if "dist_km" in f]
    totals: dict[str, Any] = {"start_time": start, "total_elapsed_time": elapsed, "total_timer_time": elapsed}
    if distances:
        totals["total_distance"] = (distances[-1] - distances[0]) * 1000
    sport = track.sport if track.sport in FIT_SPORTS else "generic"
    encoder.write_mesg({"mesg_num": MESG["LAP"], "timestamp": end, "event": "lap", "event_type": "stop", "sport": sport, **totals})
    encoder.write_mesg({
        "mesg_num": MESG["SESSION"], "timestamp": end, "event": "session", "event_type": "stop", "sport": sport,
        "first_lap_index": 0, "num_laps": 1, **totals,
    })  # fmt: skip
    encoder.write_mesg({
        "mesg_num": MESG["ACTIVITY"], "timestamp": end, "num_sessions": 1, "total_timer_time": elapsed,
        "type": "manual", "event": "activity", "event_type": "stop",
    })  # fmt: skip
    return bytes(encoder.close())
