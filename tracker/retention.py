"""Retention: how long samples are kept (InfluxDB's duration syntax and display), and the
background sweep that removes older samples.

The sweep runs every `retention_check_seconds`. Each cycle looks at no more than FILES_PER_CYCLE
users' files, least recently checked first, and skips a file outright (without opening it) while
nothing can have expired in it: same retention, no write since the last look, and its oldest
sample not yet due. A file is emptied of expired samples in batches of ROWS_PER_BATCH, each its own
short transaction through the user's writer, with a yield to the event loop in between, so writes
keep flowing while it runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Hashable

from tracker.rules import parse_duration

# Each database has one retention policy, InfluxDB's autogen. livetracking.io named its databases'
# one policy "livetracking", and its clients still send that name: the same policy, by another name
# (SHOW RETENTION POLICIES lists autogen only, what InfluxDB's own tools expect).
DEFAULT_RETENTION_POLICY = "autogen"
RETENTION_POLICY_NAMES = frozenset({"", DEFAULT_RETENTION_POLICY, "livetracking"})

if TYPE_CHECKING:
    from tracker.accounts import Accounts
    from tracker.storage import SampleStore

log = logging.getLogger(__name__)

SECOND_NS = 10**9
HOUR_NS = 3600 * SECOND_NS
DAY_NS = 24 * HOUR_NS
MIN_RETENTION_NS = HOUR_NS  # InfluxDB's minimum duration of a retention policy
FOREVER = ("inf", "0")
RETENTION_RULE = "a duration such as 8h, 90m, 7d or 2w (at least 1h), or inf to keep everything"

ROWS_PER_BATCH = 2000
FILES_PER_CYCLE = 32


def parse_retention(text: str) -> int:
    """'8h', '90m', '1h30m', '7d', '2w' -> ns; 'inf', '0' or '0s' -> 0 (keep everything).

    InfluxQL's duration syntax and InfluxDB's rule that a retention policy lasts at least an hour.
    """
    text = text.strip()
    if text.lower() in FOREVER:
        return 0
    try:
        ns = parse_duration(text)
    except ValueError:
        raise ValueError(f"invalid retention {text!r}: use {RETENTION_RULE}") from None
    if 0 < ns < MIN_RETENTION_NS:
        raise ValueError(f"retention {text!r} is too short: use {RETENTION_RULE}")
    return ns


def format_duration(ns: int) -> str:
    """A duration as Go's time.Duration prints it, as InfluxDB shows durations: 8h0m0s, 1h30m0s, 45s, 0s."""
    if ns == 0:
        return "0s"
    sign, ns = ("-", -ns) if ns < 0 else ("", ns)
    if ns < SECOND_NS:
        for unit, size in (("ms", 10**6), ("µs", 10**3)):
            if ns >= size:
                return sign + _decimal(ns, size) + unit
        return f"{sign}{ns}ns"
    hours, rest = divmod(ns, HOUR_NS)
    minutes, rest = divmod(rest, 60 * SECOND_NS)
    text = f"{hours}h{minutes}m" if hours else (f"{minutes}m" if minutes else "")
    return sign + text + _decimal(rest, SECOND_NS) + "s"


def _decimal(value: int, unit: int) -> str:
    whole, fraction = divmod(value, unit)
    if not fraction:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}." + f"{fraction:0{digits}d}".rstrip("0")


def shard_group_duration(retention_ns: int) -> int:
    """The shard group duration InfluxDB picks for a retention policy of this duration."""
    if retention_ns == 0 or retention_ns >= 180 * DAY_NS:
        return 7 * DAY_NS
    if retention_ns >= 2 * DAY_NS:
        return DAY_NS
    return HOUR_NS


# Go's zero time, 0001-01-01, in ns before 1970: InfluxDB's shard groups start where Time.Truncate puts
# them, whole shard durations counted from there (so a week's shard groups start on Mondays).
GO_ZERO_TIME_NS = 719_162 * DAY_NS


def shard_window(start_ns: int, end_ns: int, shard_ns: int) -> tuple[int, int]:
    """[start, end) widened to the edges of the shard groups of this duration it falls in, within the
    int64 range (`shard_window(t, t + 1, d)` is the shard group holding t)."""
    shift = GO_ZERO_TIME_NS % shard_ns
    lo = (start_ns + shift) // shard_ns * shard_ns - shift
    hi = -((-(end_ns + shift)) // shard_ns) * shard_ns - shift
    return max(lo, -(2**63)), min(hi, 2**63 - 1)


def describe(retention_ns: int | None) -> str:
    """For people: 'default' (None), 'inf' (0) or InfluxDB's duration text."""
    if retention_ns is None:
        return "default"
    return "inf" if retention_ns == 0 else format_duration(retention_ns)


@dataclass(frozen=True, slots=True)
class Cutoff:
    """The times an incoming sample is held to: not older than `oldest_ns` (beyond the retention) and
    not newer than `newest_ns` (further ahead of the server's clock than the tolerance).

    InfluxDB drops a written point older than now minus its retention policy's duration; every way
    samples come in refuses such a sample (tracker.ingest.cutoff) rather than storing it for the
    sweep to remove. A sample from a clock that runs ahead is refused the same way, so that nothing
    stored makes a tracker look live, or seen, in the future.
    """

    retention_ns: int  # 0: keep everything
    oldest_ns: int  # the oldest time still kept (meaningless when retention_ns is 0)
    ahead_ns: int  # how far ahead of the server's clock a sample may be
    newest_ns: int  # the newest time taken: now + ahead_ns

    @classmethod
    def at(cls, retention_ns: int, now_ns: int, ahead_ns: int) -> Cutoff:
        return cls(retention_ns, now_ns - retention_ns, ahead_ns, now_ns + ahead_ns)

    def beyond_retention(self, time_ns: int) -> bool:
        return bool(self.retention_ns) and time_ns < self.oldest_ns

    def ahead(self, time_ns: int) -> bool:
        return time_ns > self.newest_ns

    def keeps(self, time_ns: int) -> bool:
        return not self.beyond_retention(time_ns) and not self.ahead(time_ns)

    def refusal(self, time_ns: int) -> str | None:
        """Why a sample at `time_ns` is refused, for people (None: it is kept)."""
        if self.beyond_retention(time_ns):
            return self.retention_rule
        if self.ahead(time_ns):
            return self.ahead_rule
        return None

    @property
    def retention_rule(self) -> str:
        """Names the policy and its duration."""
        return f"beyond retention policy: samples are kept for {format_duration(self.retention_ns)}"

    @property
    def ahead_rule(self) -> str:
        """Names the tolerance and the likely cause."""
        return (
            f"ahead of the server's clock: a sample may be at most {format_duration(self.ahead_ns)} in the future "
            "(check the device's clock and time zone)"
        )


@dataclass(slots=True)
class _Seen:
    """What the last look at a user's file found."""

    retention_ns: int
    writes: Hashable  # the sweeper's `writes_to(user)` at that look
    due_ns: int | None  # when the oldest sample left expires; None: no samples left
    checked_at: int  # sweep number of that look, for least-recently-checked order


@dataclass(frozen=True, slots=True)
class Removal:
    user: str
    removed: int
    batches: int  # transactions that removed samples


class RetentionSweeper:
    def __init__(
        self,
        samples: SampleStore,
        accounts: Accounts,
        *,
        rows_per_batch: int = ROWS_PER_BATCH,
        files_per_cycle: int = FILES_PER_CYCLE,
        clock: Callable[[], int] = time.time_ns,
        writes_to: Callable[[str], Hashable] | None = None,
    ) -> None:
        self._samples = samples
        # What changes whenever a user's file is written: this process's write count; in a group of
        # workers also the file's own signature, as the others write it too (see app._retention).
        self._writes_to = writes_to if writes_to is not None else samples.writes_to
        self._accounts = accounts
        self.rows_per_batch = rows_per_batch
        self.files_per_cycle = files_per_cycle
        self._clock = clock
        self._seen: dict[str, _Seen] = {}
        self._sweeps = 0

    async def run(self, interval_seconds: float) -> None:
        """Sweep every `interval_seconds` until cancelled; a failed sweep is logged, never fatal."""
        while True:
            await asyncio.sleep(interval_seconds)
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("retention: the sweep failed; trying again in %ss", interval_seconds)

    async def sweep(self) -> list[Removal]:
        """One cycle: remove expired samples from up to `files_per_cycle` users' files."""
        self._sweeps += 1
        retention = await self._accounts.retention_by_user()
        for gone in self._seen.keys() - retention.keys():
            del self._seen[gone]
        now = self._clock()
        candidates = [
            user for user, retention_ns in retention.items()
            if retention_ns > 0 and self._may_have_expired(user, retention_ns, now)
        ]  # fmt: skip
        candidates.sort(key=lambda user: (self._seen[user].checked_at if user in self._seen else 0, user))
        removals: list[Removal] = []
        for user in candidates[: self.files_per_cycle]:
            try:
                removal = await self.sweep_user(user, retention[user])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one bad file (e.g. a newer schema) must not stop the others
                log.warning("retention: could not remove old samples of %s: %s", user, exc)
                # Due again at once, but behind every file not tried as recently.
                self._seen[user] = _Seen(retention[user], self._writes_to(user), now, self._sweeps)
                continue
            if removal.removed:
                removals.append(removal)
        return removals

    def _may_have_expired(self, user: str, retention_ns: int, now: int) -> bool:
        seen = self._seen.get(user)
        if seen is None or seen.retention_ns != retention_ns or seen.writes != self._writes_to(user):
            return True
        return seen.due_ns is not None and seen.due_ns <= now

    async def sweep_user(self, user: str, retention_ns: int) -> Removal:
        """Remove every sample of `user` older than now - retention, a batch per transaction."""
        writes = self._writes_to(user)  # before the first batch: a write during the sweep counts as new
        cutoff = self._clock() - retention_ns
        removed = batches = 0
        while True:
            count, oldest = await self._samples.delete_before(user, cutoff, self.rows_per_batch)
            removed += count
            batches += 1 if count else 0
            if oldest is None or oldest >= cutoff or not count:
                break
            await asyncio.sleep(0)  # let waiting requests run between batches
        due = None if oldest is None else oldest + retention_ns
        self._seen[user] = _Seen(retention_ns, writes, due, self._sweeps)
        if removed:
            log.info(
                "retention: removed %d samples of %s older than %s, in %d batches",
                removed, user, format_duration(retention_ns), batches,
            )  # fmt: skip
        return Removal(user, removed, batches)
