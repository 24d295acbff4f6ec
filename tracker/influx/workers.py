"""Where a query's Python work runs: a few threads of their own, a bounded share of them per user.

What a query asks for after SQL (matching tag regexes against every series, building and filling
GROUP BY time buckets, encoding large answers) is work the request controls, so it never runs on the
event loop: the loop stays free for every other request. Each user may occupy at most `per_user` of
the threads at once; their further work waits its turn, and a query that cannot get a thread before
its deadline ends with the query timeout. So one user running hostile queries from many connections
takes a bounded share of the CPU and leaves threads for everybody else.

The work itself is bounded by the query's deadline: the functions run here call `check_deadline`
in their loops (SQLite statements are interrupted by storage at the same deadline).
"""

from __future__ import annotations

import asyncio
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

from tracker.storage import QueryTimeout

T = TypeVar("T")
# While query threads compute, a thread that wants the GIL gets it after this long instead of
# Python's 5 ms, so the event loop answers others' requests sooner (the fairness test's p99 went
# from ~300 to ~120 ms). Only then: the shorter interval costs writes ~7% when many threads write.
BUSY_SWITCH_INTERVAL = 0.001


def past(deadline: float | None) -> bool:
    """Whether `deadline` (time.monotonic(); None: no deadline) has passed."""
    return deadline is not None and time.monotonic() > deadline


def check_deadline(deadline: float | None) -> None:
    """Raise QueryTimeout once `deadline` has passed; called from loops every few hundred steps."""
    if past(deadline):
        raise QueryTimeout()


class QueryWorkers:
    def __init__(self, threads: int, per_user: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="query")
        self._per_user = per_user
        # A semaphore per user with work waiting or running, and how many such pieces of work:
        # the dict holds only users with work in flight, never every user ever seen.
        self._shares: dict[str, tuple[asyncio.Semaphore, int]] = {}
        self._running = 0  # pieces of work submitted and not yet done, all users together
        self._idle_switch_interval = sys.getswitchinterval()

    async def run(self, user: str, deadline: float | None, work: Callable[..., T], *args: Any) -> T:
        """`work(*args)` on a query thread, once `user` has a free share; QueryTimeout past `deadline`."""
        share, in_flight = self._shares.get(user, (None, 0))
        if share is None:
            share = asyncio.Semaphore(self._per_user)
        self._shares[user] = (share, in_flight + 1)
        try:
            async with asyncio.timeout(None if deadline is None else deadline - time.monotonic()):
                await share.acquire()
        except TimeoutError:
            self._done(user)
            raise QueryTimeout() from None
        except BaseException:  # cancelled while waiting: the client went away
            self._done(user)
            raise
        loop = asyncio.get_running_loop()

        def release(_: object) -> None:
            share.release()
            self._done(user)
            self._running -= 1
            if self._running == 0:
                sys.setswitchinterval(self._idle_switch_interval)

        if self._running == 0:
            sys.setswitchinterval(BUSY_SWITCH_INTERVAL)
        self._running += 1
        try:
            future = self._pool.submit(work, *args)
        except BaseException:
            release(None)
            raise
        # The share comes back when the thread is done, not when the caller stops waiting: a client
        # that hangs up cannot start more work than its share while abandoned work still runs.
        future.add_done_callback(lambda done: _call_soon(loop, release, done))
        return await asyncio.wrap_future(future)

    def _done(self, user: str) -> None:
        share, in_flight = self._shares[user]
        if in_flight == 1:
            del self._shares[user]
        else:
            self._shares[user] = (share, in_flight - 1)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[[Any], None], arg: Any) -> None:
    try:
        loop.call_soon_threadsafe(callback, arg)
    except RuntimeError:  # the server shut down while this work ran: nobody is left to tell
        pass
