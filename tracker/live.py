"""Fan-out of committed samples to the watch page's event streams (Server-Sent Events).

The source is the journal (tracker.storage.journal), the global commit sequence of every worker
process on the data folder: a feed task per process (`JournalFeed`, tracker.livefeed) reads the
entries after the last one it saw and calls `LiveHub.publish_entry(id, user, points)`, so a viewer
sees every write, whichever worker took it. Each committed batch becomes ONE event with the id
`GEN-ID`: GEN names the journal (shared by all workers), ID is the batch's journal id, so a
`Last-Event-ID` means the same to every worker. Every watched user has a ring buffer of recent
events (bounded in samples and age); a viewer reconnecting with `Last-Event-ID` gets exactly the
events it missed, from that buffer or else from the journal (`subscribe_from`); when that is
impossible (another journal, or the events are gone from it too) it gets a `reset` instead and
refetches. Without a journal (`publish(user, points)`) the hub numbers events itself.

Each subscriber has a bounded queue: a viewer that cannot keep up is not allowed to grow memory,
it gets a `reset` (its queue dropped) and carries on from there.

Open streams are limited in total and per watched user. Viewers without sign-in (a public profile's,
a share link's) are limited further, so that none of them can shut out anyone else: per client
address, per share link, and `reserved_streams` places short of both limits above, which stay free
for the owner and the readers the owner shares with.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Awaitable, Callable, Hashable, Iterable, Mapping, Protocol, Sequence, TypeVar

import orjson

from tracker.storage.shared import SharedCounts, StreamCounts

log = logging.getLogger(__name__)
K = TypeVar("K", bound=Hashable)

class LivePoint(Protocol):
    """What a committed point must offer to be sent to viewers (read-only)."""

    @property
    def time(self) -> int: ...

    @property
    def fields(self) -> Mapping[str, float | int | str | bool]: ...


# What resuming from the journal reads: (user, after_id, upto_id) -> ([(id, points)...] with
# after_id < id <= upto_id, the oldest id the journal keeps, the newest id it has given).
ResumeReader = Callable[[str, int, int], Awaitable[tuple[list[tuple[int, Sequence[LivePoint]]], int, int]]]


class TooManyStreams(Exception):
    """A stream limit (in total, per watched user, per address, per link) is reached; the message says which."""


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who opens a stream, as far as the stream limits care."""

    # The owner, or a reader the owner shares with: may use the reserved places, not counted per address.
    signed_in: bool
    address: str = ""  # bans.address_key of the client address (an IPv6 /64 counts as one)
    link_id: int | None = None  # the share link it came with, if that is what lets it watch


SIGNED_IN = Viewer(signed_in=True)


class HubClosed(Exception):
    """The server is shutting down: streams end."""


@dataclass(frozen=True, slots=True)
class Event:
    id: str  # GEN-ID
    name: str  # "samples" or "reset"
    data: bytes  # JSON

    def encode(self) -> bytes:
        return b"id: " + self.id.encode() + b"\nevent: " + self.name.encode() + b"\ndata: " + self.data + b"\n\n"


@dataclass(slots=True)
class _Buffered:
    """A published event, encoded only once someone needs it: most writes have no watcher."""

    id: int  # the journal id
    at: float  # clock() when published
    points: Sequence[LivePoint]
    _data: bytes | None = None

    @property
    def data(self) -> bytes:
        if self._data is None:
            # Fields are already the vocabulary's (the write path checked them); the page wants time order.
            ordered = sorted(self.points, key=attrgetter("time"))
            self._data = orjson.dumps({"samples": [{"t": p.time, "f": p.fields} for p in ordered]})
        return self._data


@dataclass(slots=True)
class _Channel:
    """One watched user: recent events and current subscribers."""

    # Every event of the user with covered_after < id <= the hub's last_id is in `events`.
    covered_after: int = 0
    events: deque[_Buffered] = field(default_factory=deque)
    samples: int = 0  # points held by `events`: the replay buffer is bounded by these, not by events
    subscribers: set[Subscription] = field(default_factory=set)
    anonymous: int = 0  # subscribers without sign-in, who may not take the reserved places


class Subscription:
    """One open stream. Iterate with `next_events(timeout)`; always `close()` it (or use `with`)."""

    def __init__(self, hub: LiveHub, user: str, viewer: Viewer, max_queue: int) -> None:
        self.user = user
        self.viewer = viewer
        self._hub = hub
        self._max_queue = max_queue
        self._queue: deque[Event] = deque()
        self._wakeup = asyncio.Event()
        self._closed = False  # closed by its stream
        self._ended = False  # ended by the hub (shutdown)
        self.after = 0  # events up to this id are known to the viewer already (a resume from ahead)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def queued(self) -> int:
        return len(self._queue)

    def _deliver(self, event: Event, event_id: int = 0) -> None:
        if event_id and event_id <= self.after:
            return
        if len(self._queue) >= self._max_queue:
            # Too far behind: drop what is queued; the viewer refetches its window and goes on from here.
            self._queue.clear()
            event = Event(event.id, "reset", b"{}")
        self._queue.append(event)
        self._wakeup.set()

    def _end(self) -> None:
        self._ended = True
        self._wakeup.set()

    async def next_events(self, timeout: float) -> list[Event]:
        """The events queued (waiting up to `timeout` seconds for one); [] on timeout.

        Raises HubClosed when the server shuts down (after everything queued was taken).
        """
        if not self._queue and not self._ended:
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout)
            except asyncio.TimeoutError:
                pass
        if self._queue:
            events = list(self._queue)
            self._queue.clear()
            return events
        if self._ended:
            raise HubClosed()
        return []

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._hub._unsubscribe(self)


class LiveHub:
    def __init__(
        self,
        *,
        max_streams_per_user: int = 200,
        max_streams: int = 2000,
        reserved_streams: int = 20,
        max_streams_per_address: int = 32,
        max_streams_per_link: int = 50,
        buffer_samples: int = 2_000,
        buffer_seconds: float = 600.0,
        queue_events: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.boot = secrets.token_hex(4)
        self.max_streams_per_user = max_streams_per_user
        self.max_streams = max_streams
        self.reserved_streams = reserved_streams
        self.max_streams_per_address = max_streams_per_address
        self.max_streams_per_link = max_streams_per_link
        self.buffer_samples = buffer_samples
        self.buffer_seconds = buffer_seconds
        self.queue_events = queue_events
        self._clock = clock
        self._channels: dict[str, _Channel] = {}
        self._streams = 0
        self._anonymous = 0  # open streams without sign-in, all users
        self._per_address: dict[str, int] = {}  # open streams without sign-in, by address; no zeros kept
        self._per_link: dict[int, int] = {}  # open streams by share link; no zeros kept
        self._closed = False
        self.published = 0  # events published, all users (for tests and stats)
        self.last_id = 0  # the newest id published or passed over
        # The newest id known to be committed (>= last_id): a write of this process is answered before
        # the feed has read it back, so a stream opened then starts here, not at last_id.
        self.known_id = 0
        # Reads a user's entries from the journal, for resumes the buffers cannot serve (set by the app).
        self.resume_reader: ResumeReader | None = None

    @property
    def open_streams(self) -> int:
        return self._streams

    @property
    def counted_keys(self) -> int:
        """Addresses and links with open streams (what the per-address and per-link counts hold)."""
        return len(self._per_address) + len(self._per_link)

    def position(self, user: str) -> str:
        """The id of the latest event (`GEN-0` before the first): where a fresh stream starts."""
        return f"{self.boot}-{max(self.known_id, self.last_id)}"

    def committed(self, entry_id: int) -> None:
        """Entries up to entry_id are committed (the feed will read them): fresh streams start after."""
        self.known_id = max(self.known_id, entry_id)

    def publish(self, user: str, points: Sequence[LivePoint]) -> None:
        """One event for the committed points, numbered by the hub (no journal). Never raises."""
        self.publish_entry(self.last_id + 1, user, points)

    def publish_entry(self, entry_id: int, user: str, points: Sequence[LivePoint]) -> None:
        """The event of the journal entry `entry_id` (ids come in increasing order). Never raises:
        the write is already committed."""
        try:
            self._publish(entry_id, user, points)
        except Exception:
            log.exception("publishing live samples of %s failed", user)

    def passed_over(self, user: str | None, entry_id: int) -> None:
        """An entry of a user nobody here watches was not read (None: every entry up to entry_id,
        whoever's): the buffers concerned no longer cover everything, so resuming goes to the journal."""
        if entry_id <= self.last_id:
            return
        self.last_id = entry_id
        channels = self._channels.values() if user is None else filter(None, [self._channels.get(user)])
        for channel in channels:
            channel.events.clear()
            channel.samples = 0
            channel.covered_after = entry_id

    def watched(self) -> list[str]:
        """The users someone in this process is watching: the feed reads only their entries' points."""
        return [user for user, channel in self._channels.items() if channel.subscribers]

    def _channel(self, user: str) -> _Channel:
        channel = self._channels.get(user)
        if channel is None:
            channel = self._channels[user] = _Channel(covered_after=self.last_id)
        return channel

    def _publish(self, entry_id: int, user: str, points: Sequence[LivePoint]) -> None:
        if self._closed or entry_id <= self.last_id:
            return
        channel = self._channel(user)
        self.last_id = entry_id
        if not points:
            return
        now = self._clock()
        buffered = _Buffered(entry_id, now, points)
        channel.events.append(buffered)
        channel.samples += len(points)
        self._trim(channel, now)
        self.published += 1
        if channel.subscribers:
            event = Event(f"{self.boot}-{entry_id}", "samples", buffered.data)
            for subscriber in channel.subscribers:
                subscriber._deliver(event, entry_id)

    def _trim(self, channel: _Channel, now: float) -> None:
        # Counted in samples: one uploaded batch can carry 100,000 of them, and it must not pin its
        # points in memory for the buffer's whole age. A batch past the limit on its own is not kept
        # (a reconnect then gets a reset, and the page reloads its window).
        events = channel.events
        while events and (channel.samples > self.buffer_samples or now - events[0].at > self.buffer_seconds):
            gone = events.popleft()
            channel.samples -= len(gone.points)
            channel.covered_after = gone.id

    def subscribe(
        self, user: str, last_event_id: str | None = None, *, viewer: Viewer = SIGNED_IN
    ) -> tuple[Subscription, str]:
        """A new stream of the user's events for `viewer`, and the id it starts from.

        With `last_event_id`, the events after it are queued first (replay); if they cannot be
        replayed exactly, a `reset` is queued instead. Synchronous: nothing can be published
        between the replay and the registration, so there is no gap and no duplicate.
        """
        if self._closed:
            raise HubClosed()
        channel = self._channel(user)
        self._check_limits(user, channel, viewer)
        subscription = Subscription(self, user, viewer, self.queue_events)
        current = self.position(user)
        subscription.after = max(self.known_id, self.last_id)
        if last_event_id:
            self._trim(channel, self._clock())
            replay = self._replay(channel, last_event_id)
            if replay is None:
                subscription._queue.append(Event(current, "reset", b"{}"))
            else:
                subscription._queue.extend(replay)
                subscription.after = max(self.last_id, self._parse(last_event_id) or 0)
        channel.subscribers.add(subscription)
        self._count(channel, viewer, +1)
        return subscription, last_event_id or current

    def _check_limits(self, user: str, channel: _Channel, viewer: Viewer) -> None:
        link = self._per_link.get(viewer.link_id, 0) if viewer.link_id is not None else 0
        counts = StreamCounts(
            self._streams, len(channel.subscribers), self._anonymous, channel.anonymous,
            self._per_address.get(viewer.address, 0), link,
        )  # fmt: skip
        self.check_limits(counts, user, viewer)

    def check_limits(self, counts: StreamCounts, user: str, viewer: Viewer) -> None:
        """TooManyStreams naming the first limit a new stream would pass, given the open streams
        `counts` (this hub's own, or a whole group's: StreamPlaces)."""
        if counts.total >= self.max_streams:
            raise TooManyStreams(f"too many live streams on this server (limit {self.max_streams}); try again later")
        if counts.of_user >= self.max_streams_per_user:
            raise TooManyStreams(f"too many live viewers of {user} (limit {self.max_streams_per_user}); try again later")
        if viewer.signed_in:
            return
        if counts.anonymous >= self.max_streams - self.reserved_streams:
            raise TooManyStreams(
                f"too many live viewers without sign-in on this server (limit {self.max_streams - self.reserved_streams}; "
                f"{self.reserved_streams} more are kept for signed-in viewers); try again later"
            )
        if counts.anonymous_of_user >= self.max_streams_per_user - self.reserved_streams:
            raise TooManyStreams(
                f"too many live viewers of {user} without sign-in (limit {self.max_streams_per_user - self.reserved_streams}; "
                f"{self.reserved_streams} more are kept for {user} and signed-in readers); try again later"
            )
        if counts.of_address >= self.max_streams_per_address:
            raise TooManyStreams(
                f"too many live streams from this address (limit {self.max_streams_per_address}); "
                "close some and try again later"
            )
        if viewer.link_id is not None and counts.of_link >= self.max_streams_per_link:
            raise TooManyStreams(
                f"too many live streams on this share link (limit {self.max_streams_per_link}); try again later"
            )

    def _count(self, channel: _Channel, viewer: Viewer, step: int) -> None:
        """Add (+1) or remove (-1) one stream of `viewer` in every count it is limited by."""
        self._streams += step
        if viewer.signed_in:
            return
        self._anonymous += step
        channel.anonymous += step
        _add(self._per_address, viewer.address, step)
        if viewer.link_id is not None:
            _add(self._per_link, viewer.link_id, step)

    def _parse(self, last_event_id: str) -> int | None:
        """The journal id in one of our event ids; None if it is not ours (another journal, garbage)."""
        boot, _, id_text = last_event_id.strip().rpartition("-")
        if boot != self.boot or not id_text.isdigit():
            return None
        return int(id_text)

    def _replay(self, channel: _Channel, last_event_id: str) -> list[Event] | None:
        after = self._parse(last_event_id)
        if after is None or after > max(self.known_id, self.last_id):
            return None  # not ours, or from the future
        if after >= self.last_id:
            return []  # what comes after it, the feed has yet to publish
        if after < channel.covered_after:
            return None  # the missed events fell out of the buffer
        return [Event(f"{self.boot}-{e.id}", "samples", e.data) for e in channel.events if e.id > after]

    async def subscribe_from(
        self, user: str, last_event_id: str | None = None, *, viewer: Viewer = SIGNED_IN
    ) -> tuple[Subscription, str]:
        """`subscribe`, resuming from the journal when the user's buffer cannot: the user was not
        watched in this process, or the viewer comes from a worker that is ahead of this one."""
        after = self._parse(last_event_id) if last_event_id else None
        channel = self._channels.get(user)
        if (
            after is None
            or self.resume_reader is None
            or after >= self.last_id and after <= self.known_id
            or (after <= self.last_id and (after == self.last_id or (channel is not None and after >= channel.covered_after)))
        ):
            return self.subscribe(user, last_event_id, viewer=viewer)
        if self._closed:
            raise HubClosed()
        channel = self._channel(user)
        self._check_limits(user, channel, viewer)
        subscription = Subscription(self, user, viewer, self.queue_events)
        subscription.after = after  # what the feed delivers meanwhile is queued, minus what the viewer has
        channel.subscribers.add(subscription)
        self._count(channel, viewer, +1)
        upto = self.last_id
        replay: list[Event] | None = None
        try:
            entries, oldest, newest = await self.resume_reader(user, after, upto)
            if after >= oldest - 1 and after <= newest and len(entries) < self.queue_events:
                replay = [
                    Event(f"{self.boot}-{entry_id}", "samples", _Buffered(entry_id, 0.0, points).data)
                    for entry_id, points in entries
                    if points
                ]
        except Exception:
            log.exception("resuming the live stream of %s from the journal failed", user)
        if replay is None:  # gone from the journal too (or not ours): the page refetches its window
            subscription.after = max(self.known_id, self.last_id)
            subscription._queue.clear()
            subscription._queue.append(Event(self.position(user), "reset", b"{}"))
        else:
            subscription._queue.extendleft(reversed(replay))
        subscription._wakeup.set()
        return subscription, last_event_id or f"{self.boot}-{self.last_id}"

    def _unsubscribe(self, subscription: Subscription) -> None:
        channel = self._channels.get(subscription.user)
        if channel is not None and subscription in channel.subscribers:
            channel.subscribers.discard(subscription)
            self._count(channel, subscription.viewer, -1)

    def sweep(self) -> None:
        """Drop events older than the buffer's age from every user (those who stopped sending too)."""
        now = self._clock()
        for channel in self._channels.values():
            self._trim(channel, now)

    def close(self) -> None:
        """End every stream (server shutdown); later publishes are ignored."""
        self._closed = True
        for channel in self._channels.values():
            for subscriber in list(channel.subscribers):
                subscriber._end()

    def subscribers(self, user: str) -> Iterable[Subscription]:
        channel = self._channels.get(user)
        return tuple(channel.subscribers) if channel else ()


def _add(counts: dict[K, int], key: K, step: int) -> None:
    """counts[key] += step, dropping the key at zero: the counts hold only what is open."""
    value = counts.get(key, 0) + step
    if value > 0:
        counts[key] = value
    else:
        counts.pop(key, None)


class Place:
    """A stream's place in the group's counts; give it back (`release`, or `with`) when the stream ends."""

    def __init__(self, places: StreamPlaces | None = None, place_id: int | None = None) -> None:
        self._places = places
        self._id = place_id

    def __enter__(self) -> Place:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        places, place_id, self._places = self._places, self._id, None
        if places is not None and place_id is not None:
            places._give_back(place_id)


class StreamPlaces:
    """Stream limits counted across the workers of a group, before the hub's own (per-process) check.

    With one worker (`shared` None) a place is free: the hub's counts are the server's. With several,
    opening a stream counts the group's open streams and takes a place in one transaction of the
    shared file (a rare event, so it may cost a write); the place goes back when the stream ends, and a
    worker that died holds none once it is restarted (storage/shared.py).
    """

    def __init__(self, hub: LiveHub, shared: SharedCounts | None) -> None:
        self._hub = hub
        self._shared = shared
        self._giving_back: set[asyncio.Task[None]] = set()

    async def take(self, user: str, viewer: Viewer) -> Place:
        """A place for a new stream of `viewer` watching `user`; TooManyStreams past any limit."""
        if self._shared is None:
            return Place()
        place_id = await self._shared.count_and_take(
            user, viewer.signed_in, viewer.address, viewer.link_id,
            lambda counts: self._hub.check_limits(counts, user, viewer),
        )  # fmt: skip
        return Place(self, place_id)

    def _give_back(self, place_id: int) -> None:
        assert self._shared is not None
        task = asyncio.create_task(self._shared.give_back(place_id))
        self._giving_back.add(task)
        task.add_done_callback(self._gave_back)

    def _gave_back(self, task: asyncio.Task[None]) -> None:
        self._giving_back.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("giving back a live stream's place failed: %s", task.exception())

    async def close(self) -> None:
        """Wait for the places being given back (the shared file closes next)."""
        await asyncio.gather(*self._giving_back, return_exceptions=True)
