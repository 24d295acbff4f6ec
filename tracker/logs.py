"""Logging for `tracker serve`: one format, and an access log that writes in bulk.

Writing each access line as it happens costs a system call per request on the event loop's thread,
which hands the GIL to other threads and waits to get it back (measured at 45-110 us a request under
load). The access lines are held in memory instead and written together: when 256 have gathered, at
least twice a second, and at exit.
"""

from __future__ import annotations

import logging
import logging.handlers
import threading

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
ACCESS_LOGGER = "tracker.access"


class BufferedHandler(logging.handlers.MemoryHandler):
    """A MemoryHandler that also writes out what it holds every `interval` seconds, so a quiet
    server's lines do not wait for the next 255 requests."""

    def __init__(self, target: logging.Handler, *, capacity: int = 256, interval: float = 0.5) -> None:
        super().__init__(capacity, flushLevel=logging.WARNING, target=target, flushOnClose=True)
        self._stopped = threading.Event()
        self._interval = interval
        threading.Thread(target=self._flush_now_and_then, name="tracker log writer", daemon=True).start()

    def _flush_now_and_then(self) -> None:
        while not self._stopped.wait(self._interval):
            self.flush()

    def close(self) -> None:
        self._stopped.set()
        super().close()


def configure(level: str, who: str = "") -> None:
    """Log to stderr at `level` (debug, info, warning, error); access lines go out in bulk. In a group
    of workers each line says who wrote it (`who`: "supervisor", "worker 1")."""
    logging.basicConfig(level=level.upper(), format=FORMAT.replace("%(name)s", f"{who} %(name)s") if who else FORMAT)
    root_handlers = logging.getLogger().handlers
    if not root_handlers:
        return
    access = logging.getLogger(ACCESS_LOGGER)
    access.addHandler(BufferedHandler(root_handlers[0]))
    access.propagate = False
