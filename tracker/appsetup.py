"""What to enter in each phone app or client Tracker speaks with, for one new device token, and the QR
code each app can scan: built once, from the token's creation answer, so the token is never fetched again.

Pure: strings in, settings out (the QR codes are computed, nothing is read or written).
"""

from __future__ import annotations

import base64
import json
import re
import urllib.parse
from dataclasses import dataclass

import segno

from tracker.vocabulary import FIELD_KEYS, MEASUREMENT

# What each app scans, if anything: its own settings format, or only a plain address to paste.
QR_CONFIG = "config"  # the app reads its settings from the code
QR_PLAIN = "plain"  # the app has no settings code: scan with the camera, copy the text into the app


@dataclass(frozen=True, slots=True)
class Setting:
    name: str  # as the app labels the field
    value: str
    copy: bool = True  # a value to copy, not a choice to make in a list


@dataclass(frozen=True, slots=True)
class AppSetup:
    app: str  # a stable id: osmand, traccar, owntracks, gpslogger, ipbike, influxdb
    name: str
    where: str  # where in the app the settings are
    settings: tuple[Setting, ...]
    sends: str  # what arrives, in the vocabulary's fields
    speed: str  # the speed unit the app sends, and whether this token reads it right
    speed_ok: bool
    qr_text: str | None = None
    qr_kind: str | None = None
    note: str = ""

    def as_json(self, qr_svg: str | None) -> dict[str, object]:
        return {
            "app": self.app,
            "name": self.name,
            "where": self.where,
            "settings": [{"name": s.name, "value": s.value, "copy": s.copy} for s in self.settings],
            "sends": self.sends,
            "speed": self.speed,
            "speed_ok": self.speed_ok,
            "qr_text": self.qr_text,
            "qr_kind": self.qr_kind,
            "qr_svg": qr_svg,
            "note": self.note,
        }


_UNIT_NAMES = {"knots": "knots", "mps": "m/s", "kph": "km/h"}


def owntracks_device_id(label: str) -> str:
    """The label as OwnTracks' Device ID, which travels in an HTTP header: ASCII only."""
    ascii_label = re.sub(r"[^\x20-\x7e]+", "", label).strip()
    return ascii_label or "phone"


def owntracks_tid(label: str) -> str:
    """OwnTracks' two-character tracker ID, shown on its map: the label's first two letters or digits."""
    letters = re.sub(r"[^A-Za-z0-9]+", "", label)
    return (letters[:2] or "TR").upper()


def owntracks_config(base: str, user: str, token: str, label: str) -> dict[str, object]:
    """OwnTracks' configuration message: HTTP mode (3), the URL, Basic auth with the token."""
    return {
        "_type": "configuration",
        "mode": 3,
        "url": f"{base}/owntracks",
        "auth": True,
        "username": user,
        "password": token,
        "deviceId": owntracks_device_id(label),
        "tid": owntracks_tid(label),
    }


def owntracks_config_link(config: dict[str, object]) -> str:
    """The link OwnTracks imports settings from (its camera scan or a tap opens the app): the JSON in
    base64, percent-encoded so that no query parser turns '+' into a space."""
    inline = base64.b64encode(json.dumps(config, separators=(",", ":")).encode()).decode()
    return "owntracks:///config?inline=" + urllib.parse.quote(inline, safe="")


def device_setup(base: str, user: str, token: str, label: str, speed_unit: str) -> tuple[AppSetup, ...]:
    """Every app's settings for this token. `base` is how the phone reaches the server (no trailing /)."""
    base = base.rstrip("/")
    unit = _UNIT_NAMES.get(speed_unit, speed_unit)
    osmand_url = (
        f"{base}/osmand?id={token}&lat={{0}}&lon={{1}}&timestamp={{2}}&hdop={{3}}&altitude={{4}}"
        f"&speed={{5}}&bearing={{6}}"
    )
    gpslogger_url = (
        f"{base}/gpslogger?id={token}&lat=%LAT&lon=%LON&time=%TIME&spd=%SPD&alt=%ALT&acc=%ACC&dir=%DIR&batt=%BATT"
    )
    write_url = f"{base}/write?db={user}&precision=s"
    example_line = f"{MEASUREMENT} hr_bpm=150,pwr_w=230"
    position = "lat, lng, spd_kph, alt_m, bearing, acc_m"
    return (
        AppSetup(
            app="osmand",
            name="OsmAnd",
            where="Plugins → Trip recording → Online tracking → Web address",
            settings=(Setting("Web address", osmand_url),),
            sends=position,
            speed=(
                "OsmAnd sends m/s; this token reads m/s: speeds are right."
                if speed_unit == "mps"
                else f"OsmAnd sends m/s, but this token reads {unit}: make a token with m/s for OsmAnd."
            ),
            speed_ok=speed_unit == "mps",
            qr_text=osmand_url,
            qr_kind=QR_PLAIN,
        ),
        AppSetup(
            app="traccar",
            name="Traccar Client",
            where="Settings: Server URL and Device identifier (version 9: or scan the code from its settings)",
            settings=(Setting("Server URL", f"{base}/osmand"), Setting("Device identifier", token)),
            sends=position + ", battery",
            speed=(
                "Version 9 sends m/s in its own JSON: right with any token. Versions before 9 send knots"
                + ("; this token reads knots: right." if speed_unit == "knots" else f"; this token reads {unit}.")
            ),
            speed_ok=True,
            qr_text=f"{base}/osmand?id={token}",
            qr_kind=QR_CONFIG,
        ),
        AppSetup(
            app="owntracks",
            name="OwnTracks",
            where="Preferences → Connection (or scan the code with the phone's camera: OwnTracks imports it)",
            settings=(
                Setting("Mode", "HTTP", copy=False),
                Setting("URL", f"{base}/owntracks"),
                Setting("Username", user),
                Setting("Password", token),
                Setting("Device ID", owntracks_device_id(label)),
                Setting("Tracker ID", owntracks_tid(label)),
            ),
            sends=position + ", battery",
            speed="OwnTracks sends km/h: right with any token.",
            speed_ok=True,
            qr_text=owntracks_config_link(owntracks_config(base, user, token, label)),
            qr_kind=QR_CONFIG,
            note="Leave encryption off.",
        ),
        AppSetup(
            app="gpslogger",
            name="GPSLogger",
            where="Logging details → Log to custom URL",
            settings=(Setting("URL", gpslogger_url), Setting("HTTP method", "GET", copy=False)),
            sends=position + ", battery",
            speed="GPSLogger sends m/s (%SPD): right with any token.",
            speed_ok=True,
            qr_text=gpslogger_url,
            qr_kind=QR_PLAIN,
        ),
        AppSetup(
            app="ipbike",
            name="IpBike",
            where="Live tracking to an InfluxDB server",
            settings=(
                Setting("Server", base),
                Setting("Database", user),
                Setting("User", user),
                Setting("Password", token),
            ),
            sends="the vocabulary's fields, e.g. hr_bpm, pwr_w, cad_rpm, spd_kph, lat, lng",
            speed="spd_kph is km/h: right with any token.",
            speed_ok=True,
        ),
        AppSetup(
            app="influxdb",
            name="InfluxDB client or script",
            where="Any InfluxDB 1.x client (or /api/v2/write with the token as its token)",
            settings=(
                Setting("URL", base),
                Setting("Database", user),
                Setting("Username", user),
                Setting("Password", token),
                Setting("Example", f'curl -u "{user}:{token}" "{write_url}" --data-binary "{example_line}"'),
            ),
            sends=f"measurement {MEASUREMENT}; fields " + ", ".join(FIELD_KEYS),
            speed="spd_kph is km/h: right with any token.",
            speed_ok=True,
        ),
    )


def qr_svg(text: str) -> str | None:
    """The QR code of `text` as an SVG data URI, or None when the text is too long for one."""
    try:
        code = segno.make(text, error="m", micro=False)
    except segno.DataOverflowError:
        return None
    return code.svg_data_uri(scale=4, border=4)


def setup_json(base: str, user: str, token: str, label: str, speed_unit: str) -> list[dict[str, object]]:
    """device_setup with each QR code drawn: CPU work of a few milliseconds per code, for a thread."""
    apps = device_setup(base, user, token, label, speed_unit)
    return [app.as_json(qr_svg(app.qr_text) if app.qr_text else None) for app in apps]
