"""Sharding by user: the shard map and the HAProxy configuration it drives.

Several Tracker instances, each with its own data folder, share nothing; a proxy in front sends every
request that names a user to the instance that holds that user. The map is a plain text file,
explicit on purpose: one look says where a user lives, moving a user is changing one line, and the
proxy and `tracker shard which` read the very same lines, so they can never disagree (a consistent
hash would have to be computed identically by HAProxy and by Tracker, and moving one user would
mean an exception list anyway). Users the map does not name go to the `default` shard.

    # shard NAME ADDRESS [DATA_DIR]: one line per Tracker instance, its host:port as the proxy reaches it,
    # and its data folder where this machine reaches it (for the account commands' --map and shard move)
    shard a 10.0.0.1:8086 /srv/tracker-a/data
    shard b 10.0.0.2:8086
    default a                   # users not listed below
    alice b                     # USER SHARD
    bob a
"""

from __future__ import annotations

import os
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tracker import storage
from tracker.accounts import validate_username
from tracker.storage import ACCOUNTS_FILE, USERS_DIR
from tracker.storage.moving import AccountExists, SamplesDigest, insert_account, read_account, samples_digest

_SHARD_NAME = re.compile(r"\A[a-z0-9][a-z0-9_-]{0,31}\Z")
_ADDRESS = re.compile(r"\A[A-Za-z0-9.\-\[\]:]+:[0-9]{1,5}\Z")
USERS_MAP = "users.map"  # beside haproxy.cfg: the user → backend lines HAProxy looks requests up in
ADMIN_SOCKET = "admin.sock"  # beside haproxy.cfg: HAProxy's runtime API, through which a move re-routes one user
ROUTE_COOKIE = "tracker_shard_user"  # set by the proxy at sign-in: which shard a signed-in browser's requests go to
HOLD_BACKEND = "shard_hold"  # answers 503 + Retry-After: a user being moved is held here for the final copy
RETRY_AFTER_SECONDS = 5  # what the proxy tells clients of a shard that is down


class InvalidShardMap(ValueError):
    """A map file that cannot be used; the message names the line and the rule."""


@dataclass(frozen=True, slots=True)
class ShardMap:
    shards: dict[str, str]  # shard name → address (host:port)
    default: str
    users: dict[str, str]  # user → shard name
    # shard name → its data folder, for the shards whose line gives one (the account commands' --map)
    data_dirs: dict[str, Path] = field(default_factory=dict)

    def shard_of(self, user: str) -> str:
        return self.users.get(user, self.default)

    def with_user(self, user: str, shard: str) -> ShardMap:
        if shard not in self.shards:
            raise InvalidShardMap(f"no shard {shard!r} in the map (shards: {', '.join(self.shards)})")
        return ShardMap(self.shards, self.default, {**self.users, validate_username(user): shard}, self.data_dirs)

    def text(self) -> str:
        lines = [
            f"shard {name} {address}" + (f" {self.data_dirs[name]}" if name in self.data_dirs else "")
            for name, address in self.shards.items()
        ]
        lines.append(f"default {self.default}")
        lines.extend(f"{user} {shard}" for user, shard in sorted(self.users.items()))
        return "\n".join(lines) + "\n"


def parse_map(text: str, source: str = "map") -> ShardMap:
    shards: dict[str, str] = {}
    default: str | None = None
    users: dict[str, str] = {}
    data_dirs: dict[str, Path] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        words = raw.split("#", 1)[0].split()
        where = f"{source} line {number}"
        if not words:
            continue
        if words[0] == "shard":
            if len(words) not in (3, 4):
                raise InvalidShardMap(f"{where}: a shard line is 'shard NAME HOST:PORT [DATA_DIR]'")
            name, address = words[1], words[2]
            if not _SHARD_NAME.match(name):
                raise InvalidShardMap(f"{where}: shard name {name!r} must be 1-32 of a-z 0-9 _ -, starting a-z 0-9")
            if not _ADDRESS.match(address):
                raise InvalidShardMap(f"{where}: shard address {address!r} must be HOST:PORT")
            if name in shards:
                raise InvalidShardMap(f"{where}: shard {name!r} is defined twice")
            shards[name] = address
            if len(words) == 4:
                if not os.path.isabs(words[3]):
                    raise InvalidShardMap(f"{where}: data folder {words[3]!r} must be an absolute path")
                data_dirs[name] = Path(words[3])
        elif words[0] == "default":
            if len(words) != 2 or default is not None:
                raise InvalidShardMap(f"{where}: one 'default SHARD' line is needed")
            default = words[1]
        else:
            if len(words) != 2:
                raise InvalidShardMap(f"{where}: a user line is 'USER SHARD'")
            try:
                user = validate_username(words[0])
            except ValueError as exc:
                raise InvalidShardMap(f"{where}: {exc}") from None
            if user in users:
                raise InvalidShardMap(f"{where}: user {user!r} is listed twice")
            users[user] = words[1]
    if not shards:
        raise InvalidShardMap(f"{source}: no 'shard NAME HOST:PORT' line")
    if default is None:
        raise InvalidShardMap(f"{source}: no 'default SHARD' line (where users not listed go)")
    for name in (default, *users.values()):
        if name not in shards:
            raise InvalidShardMap(f"{source}: shard {name!r} is used but has no 'shard' line")
    return ShardMap(shards, default, users, data_dirs)


def read_map(path: Path) -> ShardMap:
    try:
        return parse_map(path.read_text(), str(path))
    except OSError as exc:
        raise InvalidShardMap(f"cannot read the shard map {path}: {exc.strerror}") from None


def write_map(path: Path, shard_map: ShardMap) -> None:
    _replace_text(path, shard_map.text())


def _replace_text(path: Path, text: str) -> None:
    """Written aside, then renamed over `path`: a reader (HAProxy, another command) never sees half a file."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.replace(path)


def backend(shard: str) -> str:
    return f"shard_{shard}"


def haproxy_users_map(shard_map: ShardMap) -> str:
    return "".join(f"{user} {backend(shard)}\n" for user, shard in sorted(shard_map.users.items()))


def haproxy_config(shard_map: ShardMap, *, bind: str, users_map_path: Path, check_seconds: float = 1.0) -> str:
    """The whole haproxy.cfg for this map; the user → backend lines are in `users_map_path`
    (haproxy_users_map), so the runtime API can change one user without a reload."""
    interval = f"{max(100, int(check_seconds * 1000))}ms"
    everyone = "\n".join(
        f"    server {name} {address} check inter {interval} fall 1 rise 1" for name, address in shard_map.shards.items()
    )
    backends = "\n\n".join(
        f"""backend {backend(name)}
    option httpchk GET /ping
    http-check expect status 204
    server {name} {address} check inter {interval} fall 1 rise 1
    http-error status 503 content-type "application/json" hdr Retry-After {RETRY_AFTER_SECONDS} string "{{\\"error\\":\\"shard {name} is unavailable: retry in {RETRY_AFTER_SECONDS} s\\"}}"
"""
        for name, address in shard_map.shards.items()
    )
    return f"""# Made by `tracker shard haproxy-config` from the shard map: regenerate rather than edit.
global
    stats socket {users_map_path.parent / ADMIN_SOCKET} mode 600 level admin
    maxconn 4000            # each connection is 2 file descriptors: raise with the ulimit (nofile)

defaults
    mode http
    timeout connect 2s
    timeout client 1h
    timeout server 1h       # the watch page's event streams stay open
    timeout http-request 30s
    retries 1

frontend tracker
    bind {bind}
    # The user a request is about, first match wins: the path, then the query string, then the credentials.
    http-request set-var(txn.user) path,field(3,/) if {{ path_beg /watch/ }}
    http-request set-var(txn.user) path,field(4,/) if {{ path_beg /api/watch/ }}
    http-request set-var(txn.user) url_param(db) unless {{ var(txn.user) -m found }}
    http-request set-var(txn.user) url_param(bucket) unless {{ var(txn.user) -m found }}
    http-request set-var(txn.user) url_param(user) unless {{ var(txn.user) -m found }}
    http-request set-var(txn.user) url_param(u) unless {{ var(txn.user) -m found }}
    # A token names its owner: a device token trk_OWNER.SECRET, a bearer token trkb_OWNER.CLAIMS.SIGNATURE
    # (in id=, p=, Basic's password, Bearer or Token); bearer tokens of the earlier form, trkb_CLAIMS.SIGNATURE, do not.
    http-request set-var(txn.token) url_param(id) if {{ url_param(id) -m beg trk_ trkb_ }}
    http-request set-var(txn.token) url_param(p) if {{ url_param(p) -m beg trk_ trkb_ }} !{{ var(txn.token) -m found }}
    http-request set-var(txn.token) req.hdr(authorization),word(2,' ') if {{ req.hdr(authorization),word(2,' ') -m beg trk_ trkb_ }} !{{ var(txn.token) -m found }}
    http-request set-var(txn.token) req.hdr(authorization),word(2,' '),b64dec,field(2,:) if {{ req.hdr(authorization) -m beg "Basic " }} {{ req.hdr(authorization),word(2,' '),b64dec,field(2,:) -m beg trk_ trkb_ }} !{{ var(txn.token) -m found }}
    http-request set-var(txn.user) var(txn.token),field(1,.),regsub(^trkb?_,) if {{ var(txn.token) -m reg ^trk_[^.]+[.] ^trkb_[^.]+[.][^.]+[.] }} !{{ var(txn.user) -m found }}
    http-request set-var(txn.user) url_param(id) if {{ path /osmand /gpslogger }} !{{ url_param(id) -m beg trk_ trkb_ }} !{{ var(txn.user) -m found }}
    # Signing in: the form's or JSON's username, remembered in a cookie that routes the browser's later
    # requests (it only routes: the shard still checks the session).
    http-request wait-for-body time 2s if {{ path /login }} METH_POST
    http-request set-var(txn.login) req.body_param(username) if {{ path /login }} METH_POST {{ req.hdr(content-type) -m beg application/x-www-form-urlencoded }}
    http-request set-var(txn.login) req.body,json_query('$.username') if {{ path /login }} METH_POST {{ req.hdr(content-type) -m beg application/json }}
    http-request set-var(txn.user) var(txn.login) if {{ var(txn.login) -m found }} !{{ var(txn.user) -m found }}
    http-request set-var(txn.user) req.hdr(authorization),word(2,' '),b64dec,field(1,:) if {{ req.hdr(authorization) -m beg "Basic " }} !{{ var(txn.user) -m found }}
    http-request set-var(txn.user) req.hdr(authorization),word(2,' '),field(1,:) if {{ req.hdr(authorization) -m beg "Token " }} {{ req.hdr(authorization) -m sub : }} !{{ var(txn.user) -m found }}
    http-request set-var(txn.user) req.cook({ROUTE_COOKIE}) unless {{ var(txn.user) -m found }}
    http-response add-header Set-Cookie "{ROUTE_COOKIE}=%[var(txn.login)]; Path=/; SameSite=Lax" if {{ var(txn.login) -m found }} {{ status 200 303 }}
    use_backend %[var(txn.user),map({users_map_path},{backend(shard_map.default)})] if {{ var(txn.user) -m found }}
    default_backend any_shard   # pages and static files: every shard serves the same

backend any_shard
    balance roundrobin
    option httpchk GET /ping
    http-check expect status 204
{everyone}

{backends}
backend {HOLD_BACKEND}
    http-request return status 503 content-type "application/json" hdr Retry-After 1 string "{{\\"error\\":\\"this user is moving between shards: retry in 1 s\\"}}"
"""


class MoveError(Exception):
    """A move that cannot go ahead or did not complete; the message says why. Nothing is lost."""


class ProxyControl:
    """HAProxy's runtime API on the socket `tracker shard haproxy-config` puts beside users.map:
    re-routes one user at once, without a reload, and without touching anyone else's connections."""

    def __init__(self, proxy_dir: Path) -> None:
        self.socket_path = proxy_dir.resolve() / ADMIN_SOCKET
        self.users_map = proxy_dir.resolve() / USERS_MAP

    def _command(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(5)
            try:
                conn.connect(str(self.socket_path))
            except OSError as exc:
                raise MoveError(f"cannot reach HAProxy's runtime API at {self.socket_path}: {exc.strerror}") from None
            conn.sendall(line.encode() + b"\n")
            answer = b""
            while chunk := conn.recv(4096):
                answer += chunk
        return answer.decode(errors="replace").strip()

    def route(self, user: str, to_backend: str) -> None:
        answer = self._command(f"set map {self.users_map} {user} {to_backend}")
        if answer:  # the user was not listed (the default rule): add the line instead
            answer = self._command(f"add map {self.users_map} {user} {to_backend}")
        if answer:
            raise MoveError(f"HAProxy refused to route {user} to {to_backend}: {answer}")


def move_user(
    user: str,
    *,
    map_path: Path,
    to_shard: str,
    source_dir: Path,
    target_dir: Path,
    proxy: ProxyControl,
    drain_seconds: float = 2.0,
    say: Callable[[str], None] = lambda _: None,
) -> SamplesDigest:
    """Move the user's account and samples from the shard that holds them to `to_shard`; the source
    copy is left for the caller to remove once this returned. The proxy holds the user's requests
    (503 + Retry-After) from the start to the switch: no write is acknowledged by the source after
    the final copy, and none by the target before it, so every acknowledged sample is in the result."""
    shard_map = read_map(map_path)
    from_shard = shard_map.shard_of(validate_username(user))
    if to_shard not in shard_map.shards:
        raise MoveError(f"no shard {to_shard!r} in {map_path} (shards: {', '.join(shard_map.shards)})")
    if to_shard == from_shard:
        raise MoveError(f"{user} is already on shard {to_shard}")
    account = read_account(source_dir / ACCOUNTS_FILE, user) if (source_dir / ACCOUNTS_FILE).is_file() else None
    if account is None:
        raise MoveError(f"no user {user!r} in {source_dir}: is it shard {from_shard}'s data folder?")
    if not (target_dir / ACCOUNTS_FILE).is_file():
        raise MoveError(f"no {ACCOUNTS_FILE} in {target_dir}: is it shard {to_shard}'s data folder?")
    source_file = source_dir / USERS_DIR / f"{user}.sqlite"
    target_file = target_dir / USERS_DIR / f"{user}.sqlite"
    if target_file.exists():
        raise MoveError(f"{target_file} exists already: the target shard has data of {user}")
    partial = target_file.with_name(target_file.name + ".partial")
    account_moved = False
    say(f"holding {user}'s requests at the proxy (503, Retry-After)")
    proxy.route(user, HOLD_BACKEND)
    try:
        # Requests the proxy passed on before the hold finish within the drain time; a straggler past
        # it shows as a source that changed after the copy, and the copy is made again.
        time.sleep(drain_seconds)
        copied = SamplesDigest(0, "")
        if source_file.exists():
            target_file.parent.mkdir(parents=True, exist_ok=True)
            for _ in range(5):
                partial.unlink(missing_ok=True)
                storage.backup_file(source_file, partial)
                copied = samples_digest(partial)
                time.sleep(drain_seconds)
                if samples_digest(source_file) == copied:
                    break
                say("the source changed after the copy: copying again")
            else:
                raise MoveError(f"{source_file} kept changing while {user} was held: is something else writing it?")
            os.replace(partial, target_file)
            if samples_digest(target_file) != copied:  # verified in place, before anyone writes to it
                raise MoveError(f"{target_file} does not hold what was copied: the move is undone")
        say(f"copied {copied.samples} sample(s), sha256 {copied.sha256[:16]}")
        try:
            insert_account(target_dir / ACCOUNTS_FILE, account)
            account_moved = True
        except AccountExists:
            raise MoveError(f"shard {to_shard} has a user {user!r} already") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        if account_moved is False:
            target_file.unlink(missing_ok=True)
        proxy.route(user, backend(from_shard))
        raise
    moved_map = shard_map.with_user(user, to_shard)
    write_map(map_path, moved_map)
    _replace_text(proxy.users_map, haproxy_users_map(moved_map))
    proxy.route(user, backend(to_shard))
    say(f"{user} is now served by shard {to_shard}")
    return copied
