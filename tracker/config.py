"""Settings: built once (from flags and TRACKER_* environment variables) and passed in."""

from __future__ import annotations

import functools
import ipaddress
import os
import socket
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping, get_type_hints

from tracker.http.cors import check_origin
from tracker.mirror import MirrorTarget
from tracker.retention import parse_retention

ENV_PREFIX = "TRACKER_"
MAX_WORKERS = 64
# In the data folder: the URL the server last started with (external_url), so that the CLI prints
# share links as the running server is reached, whatever flags or environment it was started with.
SERVER_URL_FILE = "server-url"
MAX_FUTURE_SECONDS = 365 * 86400  # times stay far inside SQLite's 64-bit integers


REGISTRATION_MODES = ("closed", "open", "invite")
METRICS_ACCESS = ("local", "token", "open", "off")  # who may read GET /metrics
MIN_METRICS_TOKEN = 16  # characters of the scrape token


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8086
    data_dir: Path = field(default_factory=lambda: Path("data"))
    max_body_size: int = 25_000_000  # bytes of request body as sent (InfluxDB's max-body-size)
    # A gzip body may not inflate past this: InfluxDB has no such cap, and a gzip bomb would eat memory.
    max_decompressed_size: int = 250_000_000
    # Inflated bytes all requests together may hold at once (each until it is done): twice the above,
    # so that two bodies at the limit (a backfill, say) go side by side while bombs wait or get 503.
    max_inflight_decompressed: int = 500_000_000
    log_level: str = "info"
    # Worker processes serving one port (SO_REUSEPORT) and one data folder: a number, or "auto" for
    # the CPUs this process may use. 1: one process, no supervisor (README "Workers").
    workers: str = "1"
    # How long a successful password check is remembered; a changed password still takes effect at once.
    auth_cache_seconds: float = 300.0
    # How long a bearer token from POST /auth stays valid.
    bearer_token_seconds: float = 7200.0
    # How often device tokens' last-used and last-sample times are written to the accounts file.
    token_use_flush_seconds: float = 5.0
    # SQLite `synchronous` of the write journal, which carries every write's durability: FULL survives
    # power loss, NORMAL only a process crash. User files always run at NORMAL behind the journal.
    sqlite_synchronous: str = "FULL"
    # How often the user files written to are fsynced and the journal told so (then trimmed), and how
    # long durable entries stay in the journal (the live view resumes from them).
    journal_checkpoint_seconds: float = 1.0
    journal_keep_seconds: float = 60.0
    # Time-series databases every committed sample is copied to (tracker/mirror.py; README "Mirror to
    # a time-series database"): write URLs. Past max lag undelivered entries are dropped for a mirror.
    mirror: tuple[str, ...] = ()
    mirror_max_lag_seconds: float = 86400.0
    mirror_retry_max_seconds: float = 60.0
    mirror_timeout_seconds: float = 10.0
    # How long samples are kept unless a user has a retention of their own (InfluxDB durations: 8h,
    # 90m, 7d, 2w; "inf" or "0" = forever), and how often the background sweep looks for older ones.
    retention: str = "inf"
    retention_check_seconds: float = 60.0
    # POST /api/v1/samples: samples per request and bytes of body (as sent; gzip may inflate to
    # max_decompressed_size). Past either: 413.
    api_max_samples: int = 10_000
    api_max_body_size: int = 10_000_000
    # How far ahead of this server's clock a sample's time may be (a phone's clock runs ahead, or its
    # time zone is wrong): every way in refuses samples further ahead, so "live" is never in the future.
    max_future_seconds: float = 300.0
    # --- the live view (watch page, sessions, event streams)
    # A tracker (and a device, and a value on the watch page) is "live" while its newest sample is at
    # most this old: the one definition /api/me, the watch page's config and the devices answer use.
    live_within_seconds: float = 60.0
    # A watcher of a planned route sees "off route" once the latest position is farther than this from it.
    off_route_m: float = 50.0
    # Map tiles for the watch page; the page still draws the track and charts without them.
    tile_url: str = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    tile_attribution: str = "© OpenStreetMap contributors"
    # How share links are spelled for others (e.g. https://tracker.example.org); "" = http://HOST:PORT.
    public_url: str = ""
    # Reverse proxies (addresses or networks) whose X-Forwarded-For and X-Forwarded-Proto are believed:
    # the client address for failed-sign-in bans, https for Secure cookies. Empty: believe no one.
    trusted_proxies: tuple[str, ...] = ()
    # The realm of the 401 challenge. Some HTTP clients (Perl's LWP, some Android stacks) send stored
    # credentials only to the realm they were given for: livetracking.io's clients expect "Protected".
    realm: str = "InfluxDB"
    # Origins whose pages may call /query, /write and /ping (CORS); "*": any page, reading what anonymous
    # callers may (public users). Empty: no CORS header at all.
    cors_origins: tuple[str, ...] = ()
    # Failed password checks per client address: this many within the window bans the address
    # (429 with Retry-After, no hashing) for the ban time. 0 turns bans off.
    max_auth_failures: int = 10
    auth_failure_window_seconds: float = 600.0
    auth_ban_seconds: float = 600.0
    session_seconds: float = 30 * 86400.0
    live_max_streams_per_user: int = 200  # open event streams watching one user
    live_max_streams: int = 2000  # open event streams in total
    # Viewers without sign-in (a public profile's, a share link's) stop this many places short of both
    # limits above, so the owner and the readers they share with can always open a stream.
    live_reserved_streams: int = 20
    # Open streams of viewers without sign-in from one client address (IPv6: one /64) and on one share
    # link, so that one of them cannot take every place of a user.
    live_max_streams_per_address: int = 32
    live_max_streams_per_link: int = 50
    live_buffer_samples: int = 2_000  # per user, the newest samples kept for reconnects (Last-Event-ID)
    live_buffer_seconds: float = 600.0
    live_queue_events: int = 1000  # per viewer; a viewer further behind gets a reset
    live_heartbeat_seconds: float = 15.0
    # How often an open stream re-checks that its viewer may still watch (revoked link, public off).
    live_recheck_seconds: float = 15.0
    # --- gone-quiet alerts (webhooks)
    # The shortest quiet time an alert may be set to; tests lower it to fractions of a second.
    alert_min_quiet_seconds: float = 60.0
    # How often alert settings changed by another process (the CLI) are picked up.
    alert_check_seconds: float = 5.0
    alert_attempts: int = 6  # tries per notice, the first included
    alert_retry_seconds: float = 2.0  # the first retry's delay; it doubles on every further retry
    alert_retry_max_seconds: float = 300.0  # no retry waits longer than this
    alert_timeout_seconds: float = 10.0  # one attempt, connecting included
    # Webhooks may reach only public addresses; on, also loopback, the LAN and every other
    # non-public address (a Home Assistant beside the server). Checked at set time and on connecting.
    webhook_allow_private: bool = False
    # POST /register (livetracking.io's account API): "closed" refuses it, "open" lets anyone make an
    # account, "invite" only those with an invite code (`tracker invite create`).
    registration: str = "closed"
    # GET /metrics (Prometheus text): "local" answers only clients on this machine (loopback; behind a
    # trusted proxy, the client it saw), "token" also anyone sending `Authorization: Bearer
    # <metrics_token>`, "open" anyone, "off" nobody (404). The numbers carry no user.
    metrics: str = "local"
    metrics_token: str = field(default="", repr=False)  # only from the environment: a flag would show in `ps`
    # --- limits on what one request may ask (README "Limits")
    max_line_length: int = 65_536  # bytes in one line of line protocol; a longer line is refused (partial write)
    max_lines_per_request: int = 100_000  # lines in one write body, blank ones included; then 413
    max_query_length: int = 262_144  # characters of InfluxQL in one /query; then 400
    max_select_points: int = 10_000_000  # rows one SELECT statement may return (0: no limit); InfluxDB's max-select-point
    # GROUP BY time buckets one SELECT may make, every series' counted (0: no limit); InfluxDB's max-select-buckets
    max_select_buckets: int = 1_000_000
    query_timeout: float = 60.0  # seconds one /query may run (0: no limit); SQLite is interrupted then
    # Threads for a query's Python work (tag matching, buckets, encoding), and how many one user may hold at once.
    query_workers: int = 4
    query_workers_per_user: int = 2
    # Memory for sealed hours of samples held as columns (long reads), per worker process; 0: none kept.
    column_cache_mb: int = 64
    # Seconds a client gets to send a request's head (from connecting, or from its previous answer:
    # also how long an idle connection stays open) and again to send its body; then cut off.
    read_timeout: float = 60.0
    max_url_length: int = 65_536  # bytes in a request URL (path and query string, where GET /query has q=); then 400
    max_header_size: int = 8190  # bytes in one request header (name and value); then 400

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        """Defaults, then TRACKER_<NAME> variables, then explicit overrides (None means 'not given')."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(env_name(f.name))
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
        if self.max_inflight_decompressed < self.max_decompressed_size:
            raise ValueError("max inflight decompressed must be at least the max decompressed size")
        self.worker_count  # raises ValueError with the rule
        if self.log_level.lower() not in ("debug", "info", "warning", "error"):
            raise ValueError(f"log level must be debug, info, warning or error, got {self.log_level!r}")
        if self.registration not in REGISTRATION_MODES:
            raise ValueError(f"registration must be open, closed or invite, got {self.registration!r}")
        if self.metrics not in METRICS_ACCESS:
            raise ValueError(f"metrics must be local, token, open or off, got {self.metrics!r}")
        if self.metrics == "token" and (len(self.metrics_token) < MIN_METRICS_TOKEN or not self.metrics_token.isprintable()):
            raise ValueError(
                f"metrics token must be at least {MIN_METRICS_TOKEN} printable characters with --metrics token "
                "(TRACKER_METRICS_TOKEN)"
            )
        if self.sqlite_synchronous.upper() not in ("FULL", "NORMAL"):
            raise ValueError(f"sqlite synchronous must be FULL or NORMAL, got {self.sqlite_synchronous!r}")
        if self.journal_checkpoint_seconds <= 0:
            raise ValueError(f"journal checkpoint must be positive, got {self.journal_checkpoint_seconds:g}")
        if self.journal_keep_seconds < 0:
            raise ValueError(f"journal keep must be 0 or more, got {self.journal_keep_seconds:g}")
        if self.column_cache_mb < 0:
            raise ValueError(f"column cache mb must be 0 (keep none) or more, got {self.column_cache_mb}")
        if self.public_url and not self.public_url.startswith(("http://", "https://")):
            raise ValueError(f"public url must start with http:// or https://, got {self.public_url!r}")
        for name in (
            "api_max_samples", "api_max_body_size", "live_max_streams_per_user", "live_max_streams",
            "live_buffer_samples", "live_queue_events", "max_line_length", "max_lines_per_request",
            "max_query_length", "max_url_length", "max_header_size", "query_workers", "query_workers_per_user",
            "live_max_streams_per_address", "live_max_streams_per_link",
        ):  # fmt: skip
            if getattr(self, name) < 1:
                raise ValueError(f"{name.replace('_', ' ')} must be at least 1")
        if not 0 <= self.live_reserved_streams < min(self.live_max_streams_per_user, self.live_max_streams):
            raise ValueError(
                f"live reserved streams must be 0 or more and less than max streams per user and max streams "
                f"(else nobody without sign-in could watch), got {self.live_reserved_streams}"
            )
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(f"trusted proxy must be an IP address or network, got {proxy!r}") from None
        if not self.realm or any(c in self.realm for c in '"\\') or not self.realm.isprintable():
            raise ValueError(f"realm must be printable, without quotes or backslashes, got {self.realm!r}")
        for origin in self.cors_origins:
            check_origin(origin)  # raises ValueError with the rule
        self.mirror_targets  # raises ValueError with the rule
        for name in ("mirror_max_lag_seconds", "mirror_retry_max_seconds", "mirror_timeout_seconds"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name.removesuffix('_seconds').replace('_', ' ')} must be positive, got {getattr(self, name):g}")
        if self.max_auth_failures < 0:
            raise ValueError("max auth failures must be 0 (no bans) or more")
        if self.auth_failure_window_seconds <= 0 or self.auth_ban_seconds <= 0:
            raise ValueError("auth failure window and auth ban seconds must be positive")
        parse_retention(self.retention)  # raises ValueError with the rule
        for name in (
            "session_seconds", "live_buffer_seconds", "live_heartbeat_seconds", "live_recheck_seconds",
            "retention_check_seconds", "bearer_token_seconds", "token_use_flush_seconds",
            "alert_min_quiet_seconds", "alert_check_seconds", "alert_retry_seconds", "alert_retry_max_seconds",
            "alert_timeout_seconds", "read_timeout", "live_within_seconds", "off_route_m",
        ):  # fmt: skip
            if getattr(self, name) <= 0:
                raise ValueError(f"{name.replace('_', ' ')} must be positive")
        for name in ("max_select_points", "max_select_buckets", "query_timeout"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name.replace('_', ' ')} must be 0 (no limit) or more")
        if not 0 <= self.max_future_seconds <= MAX_FUTURE_SECONDS:
            raise ValueError(f"max future seconds must be 0..{MAX_FUTURE_SECONDS} (a year), got {self.max_future_seconds:g}")
        if not 1 <= self.alert_attempts <= 20:
            raise ValueError(f"alert attempts must be 1..20, got {self.alert_attempts}")

    def external_url(self) -> str:
        """How others reach this server: the public URL, else http://HOST:PORT as `serve` listens."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = self.host
        if self.listens_everywhere:  # others reach this machine's own address
            host = _this_machine()
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def listens_everywhere(self) -> bool:
        """Whether `serve` listens on every address of this machine (so others may reach it)."""
        return self.host in ("", "0.0.0.0", "::")

    @property
    def worker_count(self) -> int:
        """How many worker processes `workers` asks for ("auto": the CPUs this process may run on)."""
        text = self.workers.strip().lower()
        if text == "auto":
            return max(1, len(os.sched_getaffinity(0)))
        if not text.isdigit() or not 1 <= int(text) <= MAX_WORKERS:
            raise ValueError(f"workers must be auto or 1..{MAX_WORKERS}, got {self.workers!r}")
        return int(text)

    @property
    def mirror_targets(self) -> tuple[MirrorTarget, ...]:
        """The --mirror URLs parsed (ValueError naming the rule one breaks); the same URL once."""
        targets = {target.key: target for target in map(MirrorTarget.parse, self.mirror)}
        return tuple(targets.values())

    @property
    def max_future_ns(self) -> int:
        return round(self.max_future_seconds * 1e9)

    @property
    def live_within_ns(self) -> int:
        return round(self.live_within_seconds * 1e9)

    @property
    def retention_ns(self) -> int:
        """The default retention in ns; 0 = keep everything."""
        return parse_retention(self.retention)

    def with_(self, **changes: Any) -> "Settings":
        return replace(self, **changes)


@functools.cache  # once per process: alert notices ask again and again
def _this_machine() -> str:
    """This machine's address on its network (the one its default route leaves from), else its name."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # a UDP connect sends nothing: it only picks the route
            return str(probe.getsockname()[0])
    except OSError:  # no route at all: the name is still better than localhost for someone else
        return socket.gethostname()


def record_server_url(settings: Settings) -> None:
    """Write settings.external_url() to the data folder's SERVER_URL_FILE (replaced whole, never half-written)."""
    path = settings.data_dir / SERVER_URL_FILE
    partial = path.with_name(path.name + ".partial")
    partial.write_text(settings.external_url() + "\n", encoding="utf-8")
    os.replace(partial, path)


def recorded_server_url(data_dir: Path) -> str | None:
    """The URL the server last started with on this data folder, if it left a sound one."""
    try:
        url = (data_dir / SERVER_URL_FILE).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return url if url.startswith(("http://", "https://")) and url.isprintable() and " " not in url else None


# The settings `tracker serve` takes as flags: (setting, flag, help, options). Each also comes from
# TRACKER_<SETTING>; a setting not listed here comes only from the environment. Options: "metavar",
# "choices" (case-insensitive), "repeatable" (a tuple setting: the flag may be given again and again;
# its variable is comma-separated), "default" (how the default is shown, if not as the value itself).
SERVE_FLAGS: tuple[tuple[str, str, str, Mapping[str, Any]], ...] = (
    ("host", "--host", "Address to listen on.", {}),
    ("port", "--port", "TCP port.", {}),
    ("data_dir", "--data-dir", "Data folder.", {}),
    ("max_body_size", "--max-body-size", "Largest accepted request body in bytes.", {}),
    ("log_level", "--log-level", "Logging level.", {"choices": ("debug", "info", "warning", "error")}),
    (
        "workers", "--workers", "Worker processes sharing the port and data folder; auto: one per CPU.",
        {"metavar": "N|auto"},
    ),
    ("tile_url", "--tile-url", "Map tile URL template.", {}),
    ("tile_attribution", "--tile-attribution", "Credit shown on the map.", {}),
    ("public_url", "--public-url", "How others reach this server, for share links.", {"default": "http://HOST:PORT"}),
    (
        "trusted_proxies", "--trusted-proxy", "A reverse proxy whose X-Forwarded-For/-Proto are believed; repeatable.",
        {"metavar": "ADDRESS|NETWORK", "repeatable": True, "default": "none"},
    ),
    ("realm", "--realm", "The realm of the 401 challenge (livetracking.io's clients: Protected).", {}),
    (
        "cors_origins", "--cors-origin", "An origin whose pages may call /query, /write, /ping; *: any, read only; repeatable.",
        {"metavar": "ORIGIN|*", "repeatable": True, "default": "none"},
    ),
    ("max_auth_failures", "--max-auth-failures", "Failed password checks from one address that ban it; 0: no bans.", {}),
    (
        "auth_failure_window_seconds", "--auth-failure-window", "The window in which those failures count.",
        {"metavar": "SECONDS"},
    ),
    ("auth_ban_seconds", "--auth-ban", "How long a ban lasts.", {"metavar": "SECONDS"}),
    ("live_max_streams", "--max-streams", "Open live streams in total.", {}),
    ("live_max_streams_per_user", "--max-streams-per-user", "Open live streams watching one user.", {}),
    (
        "live_max_streams_per_address", "--max-streams-per-address",
        "Open live streams of viewers without sign-in from one client address, an IPv6 /64 as one.", {},
    ),
    ("live_max_streams_per_link", "--max-streams-per-link", "Open live streams on one share link.", {}),
    (
        "live_reserved_streams", "--reserved-streams",
        "Places of --max-streams-per-user and --max-streams kept for the owner and signed-in readers.", {},
    ),
    (
        "retention", "--retention",
        "Keep samples this long unless a user has a retention of their own: 8h, 90m, 7d, 2w, or inf.",
        {"metavar": "DURATION", "default": "inf, keep everything"},
    ),
    ("bearer_token_seconds", "--bearer-token-seconds", "Lifetime of a bearer token from POST /auth.", {}),
    ("alert_attempts", "--alert-attempts", "Tries per alert webhook notice.", {}),
    ("alert_timeout_seconds", "--alert-timeout", "Seconds one webhook attempt may take.", {}),
    (
        "webhook_allow_private", "--webhook-allow-private",
        "Let alert webhooks reach loopback, LAN and other non-public addresses, e.g. a Home Assistant on the LAN.",
        {"default": "public addresses only"},
    ),
    (
        "registration", "--registration", "Who may create an account with POST /register (livetracking.io's API); invite: with a code.",
        {"choices": REGISTRATION_MODES},
    ),
    (
        "metrics", "--metrics", "Who may read GET /metrics (Prometheus): local: this machine; token: also Bearer TRACKER_METRICS_TOKEN; open: anyone; off: nobody.",
        {"choices": METRICS_ACCESS},
    ),
    ("api_max_samples", "--api-max-samples", "Samples per POST /api/v1/samples.", {}),
    ("api_max_body_size", "--api-max-body-size", "Body bytes per POST /api/v1/samples.", {}),
    (
        "max_future_seconds", "--max-future",
        "Seconds a sample's time may be ahead of this server's clock; later samples are refused.",
        {"metavar": "SECONDS"},
    ),
    (
        "live_within_seconds", "--live-within",
        "A tracker is live while its newest sample is at most this many seconds old.", {"metavar": "SECONDS"},
    ),
    (
        "off_route_m", "--off-route",
        "Metres from a planned route beyond which watchers see the position as off route.", {"metavar": "METRES"},
    ),
    # The limits (README "Limits").
    ("max_decompressed_size", "--max-decompressed-size", "Bytes a gzip body may inflate to; then 413.", {}),
    (
        "max_inflight_decompressed", "--max-inflight-decompressed",
        "Bytes all gzip bodies being handled may inflate to together; then 503.", {},
    ),
    ("max_line_length", "--max-line-length", "Bytes in one line of line protocol; a longer line is refused.", {}),
    ("max_lines_per_request", "--max-lines-per-request", "Lines in one write body; then 413.", {}),
    ("max_query_length", "--max-query-length", "Characters of InfluxQL in one query; then 400.", {}),
    (
        "max_select_points", "--max-select-points",
        "Rows one SELECT may return, 0 for no limit; then an error in the result.", {},
    ),
    (
        "max_select_buckets", "--max-select-buckets",
        "GROUP BY time buckets one SELECT may make, 0 for no limit; then an error in the result.", {},
    ),
    ("query_timeout", "--query-timeout", "Seconds one query may run, 0 for no limit; then an error in the result.", {}),
    ("query_workers", "--query-workers", "Threads for the Python side of queries (tag matching, buckets, encoding).", {}),
    (
        "query_workers_per_user", "--query-workers-per-user",
        "Query threads one user may hold at once; their other queries wait.", {},
    ),
    (
        "column_cache_mb", "--column-cache-mb",
        "MB per worker process for sealed hours of samples kept as columns, for long reads; 0 keeps none.", {},
    ),
    (
        "read_timeout", "--read-timeout",
        "Seconds a client gets to send a request's head, and again its body; also the idle timeout.", {},
    ),
    ("max_url_length", "--max-url-length", "Bytes in a request URL (path and query string); then 400.", {}),
    ("max_header_size", "--max-header-size", "Bytes in one request header (name and value); then 400.", {}),
    (
        "journal_checkpoint_seconds", "--journal-checkpoint",
        "Seconds between fsyncs of the user files written to (the journal holds the writes until then).",
        {"metavar": "SECONDS"},
    ),
    (
        "journal_keep_seconds", "--journal-keep",
        "Seconds durable writes stay in the journal, for live viewers resuming after a reconnect.",
        {"metavar": "SECONDS"},
    ),
    (
        "mirror", "--mirror",
        "Also write every committed sample to this InfluxDB 1.x/2.x or VictoriaMetrics write URL; repeatable.",
        {"metavar": "URL", "repeatable": True, "default": "none"},
    ),
    (
        "mirror_max_lag_seconds", "--mirror-max-lag",
        "Seconds a mirror's undelivered samples wait in the journal; older ones are dropped for it, loudly.",
        {"metavar": "SECONDS"},
    ),
    ("mirror_retry_max_seconds", "--mirror-retry-max", "Longest wait between a mirror's retries.", {"metavar": "SECONDS"}),
    ("mirror_timeout_seconds", "--mirror-timeout", "Seconds one mirror request may take.", {"metavar": "SECONDS"}),
)  # fmt: skip

# The defaults, built once.
DEFAULTS = Settings()
# Each setting's type (int, float, str, bool, Path, tuple[str, ...]).
FIELD_TYPES: dict[str, Any] = get_type_hints(Settings)


def env_name(setting: str) -> str:
    """The environment variable a setting comes from: TRACKER_<SETTING>."""
    return ENV_PREFIX + setting.upper()


def _check_serve_flags() -> None:
    names = {f.name for f in fields(Settings)}
    seen_flags: set[str] = set()
    for setting, flag, _, _ in SERVE_FLAGS:
        if setting not in names:
            raise AssertionError(f"SERVE_FLAGS names {setting!r}, which is no setting")
        if flag in seen_flags:
            raise AssertionError(f"SERVE_FLAGS gives {flag} twice")
        seen_flags.add(flag)
    if len({setting for setting, *_ in SERVE_FLAGS}) != len(SERVE_FLAGS):
        raise AssertionError("SERVE_FLAGS names a setting twice")


_check_serve_flags()


def _convert(name: str, raw: str) -> Any:
    kind = {f.name: f.type for f in fields(Settings)}[name]
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "Path":
            return Path(raw)
        if kind == "tuple[str, ...]":  # a comma-separated list
            return tuple(item.strip() for item in raw.split(",") if item.strip())
        if kind == "bool":
            if raw.lower() not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                raise ValueError
            return raw.lower() in ("1", "true", "yes", "on")
    except ValueError:
        raise ValueError(f"{env_name(name)}: expected a {kind}, got {raw!r}") from None
    return raw
