"""Settings: built once (from flags and TRACKER_* environment variables) and passed in."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

from tracker.retention import parse_retention

ENV_PREFIX = "TRACKER_"


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8086
    data_dir: Path = field(default_factory=lambda: Path("data"))
    max_body_size: int = 25_000_000  # bytes of request body as sent (InfluxDB's max-body-size)
    # A gzip body may not inflate past this: InfluxDB has no such cap, and a gzip bomb would eat memory.
    max_decompressed_size: int = 250_000_000
    log_level: str = "info"
    # How long a successful password check is remembered; a changed password still takes effect at once.
    auth_cache_seconds: float = 300.0
    # How long a bearer token from POST /auth stays valid.
    bearer_token_seconds: float = 7200.0
    # How often device tokens' last-used and last-sample times are written to the accounts file.
    token_use_flush_seconds: float = 5.0
    # SQLite `synchronous` for sample files: FULL survives power loss, NORMAL only a process crash.
    sqlite_synchronous: str = "FULL"
    # How long samples are kept unless a user has a retention of their own (InfluxDB durations: 8h,
    # 90m, 7d, 2w; "inf" or "0" = forever), and how often the background sweep looks for older ones.
    retention: str = "inf"
    retention_check_seconds: float = 60.0
    # POST /api/v1/samples: samples per request and bytes of body (as sent; gzip may inflate to
    # max_decompressed_size). Past either: 413.
    api_max_samples: int = 10_000
    api_max_body_size: int = 10_000_000
    # --- the live view (watch page, sessions, event streams)
    # Map tiles for the watch page; the page still draws the track and charts without them.
    tile_url: str = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    tile_attribution: str = "© OpenStreetMap contributors"
    # How share links are spelled for others (e.g. https://tracker.example.org); "" = http://HOST:PORT.
    public_url: str = ""
    # Behind a TLS-terminating reverse proxy: believe its X-Forwarded-Proto (Secure cookies).
    trust_proxy: bool = False
    session_seconds: float = 30 * 86400.0
    live_max_streams_per_user: int = 200  # open event streams watching one user
    live_max_streams: int = 2000  # open event streams in total
    live_buffer_events: int = 10_000  # per user, kept for reconnects (Last-Event-ID)
    live_buffer_seconds: float = 600.0
    live_queue_events: int = 1000  # per viewer; a viewer further behind gets a reset
    live_heartbeat_seconds: float = 15.0
    # How often an open stream re-checks that its viewer may still watch (revoked link, public off).
    live_recheck_seconds: float = 15.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        """Defaults, then TRACKER_<NAME> variables, then explicit overrides (None means 'not given')."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None and raw != "":
                values[f.name] = _convert(f.name, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be 1..65535, got {self.port}")
        if self.max_body_size <= 0:
            raise ValueError(f"max body size must be positive, got {self.max_body_size}")
        if self.max_decompressed_size < self.max_body_size:
            raise ValueError("max decompressed size must be at least the max body size")
        if self.log_level.lower() not in ("debug", "info", "warning", "error"):
            raise ValueError(f"log level must be debug, info, warning or error, got {self.log_level!r}")
        if self.sqlite_synchronous.upper() not in ("FULL", "NORMAL"):
            raise ValueError(f"sqlite synchronous must be FULL or NORMAL, got {self.sqlite_synchronous!r}")
        if self.public_url and not self.public_url.startswith(("http://", "https://")):
            raise ValueError(f"public url must start with http:// or https://, got {self.public_url!r}")
        for name in ("api_max_samples", "api_max_body_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name.replace('_', ' ')} must be at least 1")
        for name in ("live_max_streams_per_user", "live_max_streams", "live_buffer_events", "live_queue_events"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name.replace('_', ' ')} must be at least 1")
        parse_retention(self.retention)  # raises ValueError with the rule
        for name in (
            "session_seconds", "live_buffer_seconds", "live_heartbeat_seconds", "live_recheck_seconds",
            "retention_check_seconds", "bearer_token_seconds", "token_use_flush_seconds",
        ):  # fmt: skip
            if getattr(self, name) <= 0:
                raise ValueError(f"{name.replace('_', ' ')} must be positive")

    @property
    def retention_ns(self) -> int:
        """The default retention in ns; 0 = keep everything."""
        return parse_retention(self.retention)

    def with_(self, **changes: Any) -> "Settings":
        return replace(self, **changes)


def _convert(name: str, raw: str) -> Any:
    kind = {f.name: f.type for f in fields(Settings)}[name]
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "Path":
            return Path(raw)
        if kind == "bool":
            if raw.lower() not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                raise ValueError
            return raw.lower() in ("1", "true", "yes", "on")
    except ValueError:
        raise ValueError(f"{ENV_PREFIX}{name.upper()}: expected a {kind}, got {raw!r}") from None
    return raw
