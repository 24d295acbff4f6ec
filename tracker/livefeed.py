"""The live view's feed: the journal's new entries, published to this process's LiveHub.

One task per process (owned by the app's cleanup context) reads the entries after the last one it
saw, off the event loop, with the points of watched users only, and publishes them in id order.
It is woken right after a group commit of this process (`SampleStore.commit_listeners`), by
`wake()` (another worker process says it committed), and polls slowly besides, so that nothing
waits forever when a wake-up is lost.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Sequence

from tracker.live import LiveHub, LivePoint
from tracker.storage import JournalReader, decode_points

log = logging.getLogger(__name__)

# Entries read per query; more are read at once when there are more.
_BATCH = 1000


class JournalFeed:
    def __init__(self, hub: LiveHub, reader: JournalReader, *, poll_seconds: float = 0.25) -> None:
        self._hub = hub
        self._reader = reader
        self._poll_seconds = poll_seconds
        self._woken = asyncio.Event()

    async def start(self) -> None:
        """Name the hub's ids after the journal, and start at its newest entry."""
        self._hub.boot = await self._reader.generation()
        self._hub.passed_over(None, await self._reader.last_id())
        self._hub.resume_reader = self._resume

    def wake(self, newest_id: int = 0) -> None:
        """New entries are committed (by this process or another; up to newest_id if known): read them
        now. Loop thread only."""
        if newest_id:
            self._hub.committed(newest_id)
        self._woken.set()

    async def run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._woken.wait(), self._poll_seconds)
            except asyncio.TimeoutError:
                pass
            self._woken.clear()
            try:
                await self.catch_up()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reading the journal for the live view failed")
                await asyncio.sleep(self._poll_seconds)

    async def catch_up(self) -> None:
        """Publish every entry committed so far."""
        hub = self._hub
        if not hub.watched():
            # Nobody here watches anyone (most workers, most of the time): one look at the newest id
            # instead of a row per entry. Unless someone started watching meanwhile: then read as below.
            newest = await self._reader.last_id()
            if not hub.watched():
                hub.passed_over(None, newest)
                return
        while True:
            rows = await self._reader.entries_after(hub.last_id, hub.watched(), _BATCH)
            for entry_id, user, _, blob in rows:
                if blob is not None:
                    hub.publish_entry(entry_id, user, decode_points(blob))
                elif user in hub.watched():
                    break  # someone started watching during the read: read again, with the points
                else:
                    hub.passed_over(user, entry_id)
            else:
                if len(rows) < _BATCH:
                    return

    async def _resume(self, user: str, after_id: int, upto_id: int) -> tuple[list[tuple[int, Sequence[LivePoint]]], int, int]:
        entries, oldest, newest = await self._reader.user_entries(user, after_id, upto_id)
        return [(entry_id, decode_points(blob)) for entry_id, blob in entries], oldest, newest
