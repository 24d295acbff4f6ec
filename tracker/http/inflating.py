"""Inflating gzip bodies: in steps, off the event loop, within one server-wide budget of bytes.

A gzip body of a few hundred KB can inflate to the per-request limit (`max_decompressed_size`), so
a handful of them at once could take all the memory there is. Every inflating request therefore
takes its inflated bytes, step by step, from one `InflateBudget`; the bytes stay taken until the
request is done (the body is parsed and committed meanwhile) and are given back by the `InflateLease`
the app's middleware closes: never more than the budget in bodies at once.

A request that finds the budget spent before its first step waits a moment for others to finish,
then gets `BudgetSpent` (503, try again later). One that already holds some does not wait: it
fails at once and gives its share back. Were it to wait, requests that all hold part of the budget
could wait for each other until every one of them timed out.
"""

from __future__ import annotations

import asyncio
import zlib
from typing import Callable

STEP_BYTES = 1 << 20  # inflated per step: the budget's grain, and how long one thread step runs
ON_LOOP_BYTES = 64 * 1024  # the first step, inflated on the event loop: well under a millisecond
WAIT_SECONDS = 2.0  # how long a request waits for budget before it is told to retry
RETRY_AFTER_SECONDS = 5


class BudgetSpent(Exception):
    """No inflating budget came free in time."""


class GzipError(ValueError):
    """The body is not gzip, is cut short, or inflates past its limit (`too_large`)."""

    def __init__(self, message: str, *, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


class InflateBudget:
    """Bytes of inflated bodies the whole server may hold at once."""

    def __init__(self, total: int, wait_seconds: float = WAIT_SECONDS) -> None:
        self.total = total
        self.free = total
        self.wait_seconds = wait_seconds
        self._freed = asyncio.Condition()

    def lease(self) -> InflateLease:
        return InflateLease(self)

    async def _take(self, size: int, *, wait: bool) -> None:
        if self.free >= size:
            self.free -= size
            return
        if not wait:
            raise BudgetSpent()
        try:
            async with asyncio.timeout(self.wait_seconds):
                async with self._freed:
                    await self._freed.wait_for(lambda: self.free >= size)
                    self.free -= size
        except TimeoutError:
            raise BudgetSpent() from None

    def _give(self, size: int) -> None:
        self.free += size
        if size:
            asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._freed:
            self._freed.notify_all()


class InflateLease:
    """One request's share of the budget; `close()` gives all of it back (when the request is done)."""

    def __init__(self, budget: InflateBudget) -> None:
        self._budget = budget
        self.held = 0

    async def take(self, size: int) -> None:
        await self._budget._take(size, wait=self.held == 0)
        self.held += size

    def give_back(self, size: int) -> None:
        size = min(size, self.held)
        self.held -= size
        self._budget._give(size)

    def close(self) -> None:
        self.give_back(self.held)


class GzipInflater:
    """Inflates one or more concatenated gzip members, `step()` by `step()`, up to `limit` bytes."""

    def __init__(self, data: bytes, limit: int) -> None:
        if data[:2] != b"\x1f\x8b":
            raise GzipError("gzip: invalid header")
        self._data = data
        self._limit = limit
        self._member = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self.size = 0
        self.done = False

    @property
    def room(self) -> int:
        """Bytes it may still inflate."""
        return self._limit - self.size

    def step(self, most: int) -> bytes:
        """Up to `most` more inflated bytes (b"" and `done` at the end); GzipError on bad input.

        With no room left it looks for one byte more: finding one means the body is too large."""
        try:
            piece = self._member.decompress(self._data, min(most, self.room) or 1)
        except zlib.error:
            raise GzipError("gzip: invalid data") from None
        self.size += len(piece)
        if self.size > self._limit:
            raise GzipError(f"Request Entity Too Large: body exceeds {self._limit} bytes once decompressed", too_large=True)
        self._data = self._member.unconsumed_tail
        if self._member.eof:
            rest = self._member.unused_data
            if not rest:
                self.done = True
            elif rest[:2] != b"\x1f\x8b":
                raise GzipError("gzip: invalid header")
            else:  # the next member
                self._data, self._member = rest, zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif not self._data and not piece:
            raise GzipError("unexpected EOF")  # input ran out before the stream ended
        return piece


async def inflate(
    data: bytes, limit: int, lease: InflateLease, on_piece: Callable[[bytes], None] | None = None
) -> bytes:
    """`data` gunzipped, its bytes taken from `lease` as they come (BudgetSpent when none come free).

    Steps run in a worker thread, so a large body never stalls the event loop; `on_piece` sees each
    piece as it comes (to refuse a body early, e.g. on its line count).
    """
    inflater = GzipInflater(data, limit)
    pieces: list[bytes] = []
    while not inflater.done:
        # The first bytes inflate in place (a phone's or a small batch's body is all there is; a
        # thread would cost more than that), the rest in a worker thread.
        step = min(ON_LOOP_BYTES if not pieces else STEP_BYTES, inflater.room)
        await lease.take(step)
        piece = inflater.step(step) if not pieces else await asyncio.to_thread(inflater.step, step)
        lease.give_back(step - len(piece))
        if on_piece is not None:
            on_piece(piece)
        pieces.append(piece)
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)
