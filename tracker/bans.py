"""Failed password checks counted per client address, and the bans they lead to.

Every place that checks a password goes through `AuthBans.verify`: a banned address is refused at
once (`Banned`, no hashing), otherwise the check runs and its outcome is counted. `max_failures`
failures within `window_seconds` ban the address for `ban_seconds`; a success clears that user's
failures from the address's count (so a phone that had the old password recovers, while an attacker
holding an account of their own cannot reset the count for guesses at other users).

Checks in progress count as possible failures: an address never has more checks running than it
has failures left before a ban, so a flood of guesses arriving all at once still gets at most
`max_failures` of them hashed (the rest wait, then meet the ban), while many clients behind one
address, signing in at once with right passwords, are checked side by side.

IPv6 clients are counted per /64, the block one phone or one home usually has. All state is in
memory and bounded: at most `max_addresses` addresses counting failures and as many banned; past
that the oldest are forgotten.

Several workers (README "Workers") count together: each failure is also counted in the group's
shared file (storage/shared.py), which bans an address once the group's failures reach the limit;
the worker that banned tells the others (a BANS_CHANGED datagram), and every worker also reloads
the group's bans every few seconds in case a datagram was lost. A success costs nothing more unless
its address has failures counted; only then are that user's failures there cleared in the file too.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import math
import sqlite3
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Awaitable, Callable, TypeVar

if TYPE_CHECKING:
    from tracker.storage.shared import SharedCounts

log = logging.getLogger(__name__)

MAX_ADDRESSES = 10_000
BANS_CHANGED = b"bans"  # the datagram that tells the other workers to reload the group's bans
V = TypeVar("V")


class Banned(Exception):
    """The client's address is banned for `retry_after` more seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed sign-ins from this address: try again in {retry_after} seconds")
        self.retry_after = retry_after


@dataclass(slots=True)
class _Gate:
    """An address's checks in progress; `users` counts the requests running or waiting here."""

    running: int = 0
    users: int = 0
    waiters: list[asyncio.Future[None]] = field(default_factory=list)  # woken when a check ends


def address_key(address: str) -> str:
    """What failures are counted against: the IPv4 address, or the IPv6 /64."""
    if ":" not in address:
        return address  # IPv4, as the socket or the proxy middleware spells it: already canonical
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address  # not an address: counted as it is
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)


class AuthBans:
    def __init__(
        self,
        *,
        max_failures: int,
        window_seconds: float,
        ban_seconds: float,
        max_addresses: int = MAX_ADDRESSES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures  # 0: no bans
        self.window_seconds = window_seconds
        self.ban_seconds = ban_seconds
        self.max_addresses = max_addresses
        self._clock = clock
        # key -> (time, hash of the user name) of its failures within the window, oldest first
        self._failures: OrderedDict[str, deque[tuple[float, int]]] = OrderedDict()
        self._banned: OrderedDict[str, float] = OrderedDict()  # key -> ban end; oldest ban first
        self._gates: dict[str, _Gate] = {}
        # Counting with the other workers of a group (then `clock` must be time.monotonic, one clock
        # for every process): the shared file, how to tell the others, and the addresses with
        # failures counted anywhere in the group as of the last reload.
        self._shared: SharedCounts | None = None
        self._notify: Callable[[bytes], None] | None = None
        self._failing_in_group: set[str] = set()

    def count_with(self, shared: SharedCounts, notify: Callable[[bytes], None]) -> None:
        """Count with the other workers of a group: in `shared`, telling them through `notify`."""
        self._shared, self._notify = shared, notify

    def __len__(self) -> int:
        """Addresses remembered: counting failures or banned."""
        return len(self._failures) + len(self._banned)

    async def verify(self, address: str, user: str, check: Callable[[], Awaitable[bool]]) -> bool:
        """Runs `check` (a password check) for a request from `address`, and counts its outcome.

        Raises Banned, without running `check`, while the address is banned.
        """
        if self.max_failures <= 0:
            return await check()
        key = address_key(address)
        self._refuse_if_banned(key)
        gate = self._gates.get(key)
        if gate is None:
            gate = self._gates[key] = _Gate()
        gate.users += 1
        try:
            # No lock needed: between this test and `running += 1` nothing else runs.
            while not self._may_start(key, gate):
                waiter = asyncio.get_running_loop().create_future()
                gate.waiters.append(waiter)
                await waiter
            self._refuse_if_banned(key)  # the checks ahead of this one may have started a ban
            gate.running += 1
            ok: bool | None = None
            try:
                ok = await check()
                if self._shared is not None:
                    await self._count_in_group(key, user, ok)
                return ok
            finally:
                gate.running -= 1
                if ok is not None:  # a check that raised (or was cancelled) counts as nothing
                    (self._succeeded if ok else self._failed)(key, user)
                waiters, gate.waiters = gate.waiters, []
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(None)
        finally:
            gate.users -= 1
            if gate.users == 0:
                del self._gates[key]

    async def _count_in_group(self, key: str, user: str, ok: bool) -> None:
        assert self._shared is not None
        digest = hashlib.blake2b(user.encode(), digest_size=8).hexdigest()  # hash() differs per process
        try:
            if not ok:
                until = await self._shared.record_failure(
                    key, digest, self._clock(), self.window_seconds, self.max_failures, self.ban_seconds
                )
                self._failing_in_group.add(key)
                if until is not None:
                    self._ban_until(key, until)
                    log.warning("%s banned for %.0f s after %d failed sign-ins within %.0f s, counted over all workers",
                                key, self.ban_seconds, self.max_failures, self.window_seconds)  # fmt: skip
                if self._notify is not None:
                    self._notify(BANS_CHANGED)
            elif key in self._failing_in_group or key in self._failures:
                await self._shared.clear_failures(key, digest)
        except sqlite3.Error as exc:  # this worker's own count still holds
            log.error("counting a sign-in of %s with the other workers failed: %s", key, exc)

    async def reload_group_bans(self) -> None:
        """Take in the bans the other workers made, and which addresses have failures counted."""
        if self._shared is None:
            return
        banned, self._failing_in_group = await self._shared.bans(self._clock())
        for key, until in banned.items():
            self._ban_until(key, until)

    def _ban_until(self, key: str, until: float) -> None:
        if self._banned.get(key, 0.0) < until:
            self._banned.pop(key, None)
            self._banned[key] = until
            self._forget_oldest(self._banned)

    def retry_after(self, address: str) -> int | None:
        """Seconds left of the address's ban, or None if it is not banned."""
        return self._ban_left(address_key(address))

    def _ban_left(self, key: str) -> int | None:
        until = self._banned.get(key)
        if until is None:
            return None
        left = until - self._clock()
        if left <= 0:
            del self._banned[key]
            return None
        return max(1, math.ceil(left))

    def _may_start(self, key: str, gate: _Gate) -> bool:
        """Banned (to be refused at once), or room for one more check were all running ones to fail."""
        if self._banned and self._ban_left(key) is not None:
            return True
        failures = self._failures.get(key)
        if failures:
            self._drop_expired(failures, self._clock())
        return len(failures or ()) + gate.running < self.max_failures

    def _drop_expired(self, failures: deque[tuple[float, int]], now: float) -> None:
        while failures and failures[0][0] <= now - self.window_seconds:
            failures.popleft()

    def _refuse_if_banned(self, key: str) -> None:
        seconds = self._ban_left(key) if self._banned else None
        if seconds is not None:
            raise Banned(seconds)

    def _failed(self, key: str, user: str) -> None:
        now = self._clock()
        failures = self._failures.pop(key, None)
        if failures is None:
            failures = deque(maxlen=self.max_failures)
        self._drop_expired(failures, now)
        failures.append((now, hash(user)))
        if len(failures) < self.max_failures:
            self._failures[key] = failures  # (re)inserted last: the most recently active
            self._forget_oldest(self._failures)
            return
        self._banned.pop(key, None)
        self._banned[key] = now + self.ban_seconds
        self._forget_oldest(self._banned)
        log.warning(
            "%s banned for %.0f s after %d failed sign-ins within %.0f s",
            key,
            self.ban_seconds,
            self.max_failures,
            self.window_seconds,
        )

    def _succeeded(self, key: str, user: str) -> None:
        failures = self._failures.get(key)
        if failures is None:
            return
        user_hash = hash(user)
        kept = [failure for failure in failures if failure[1] != user_hash]
        if not kept:
            del self._failures[key]
        elif len(kept) < len(failures):
            self._failures[key] = deque(kept, maxlen=self.max_failures)

    def _forget_oldest(self, table: OrderedDict[str, V]) -> None:
        while len(table) > self.max_addresses:
            table.popitem(last=False)
