"""What the worker processes of one `tracker serve --workers N` share: who this worker is, the run
folder, the leader lease, and the channel of wake-ups between the workers.

With one worker (the default) none of this costs anything: `Worker.sole()`, a leadership that is
held from the start and a channel that sends nothing.

- The run folder `<data>/run/` holds what lives only as long as the group: the group lock (held by
  the supervisor: one group per data folder), the leader lock, and the shared limits file
  (storage/shared.py). The supervisor empties it before starting the workers.
- Leadership: background jobs that must run once (retention sweeps, gone-quiet alerts and their
  webhooks) run in the worker holding an exclusive `flock` on `run/leader.lock`. The kernel drops
  the lock when its process dies, however it dies; the other workers try again every
  LEADER_RETRY_SECONDS, so a new leader takes over within seconds.
- PeerChannel: one unix datagram socket per worker in the abstract namespace, named from the data
  folder. `notify(payload)` sends to every other worker without ever blocking or raising: a full
  queue or a worker not (yet) listening drops the datagram, so a message is only ever a hint and a
  receiver must also poll for what it says.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

log = logging.getLogger(__name__)

RUN_DIR = "run"  # inside the data folder: what lives only as long as the server
GROUP_LOCK = "group.lock"
LEADER_LOCK = "leader.lock"
LEADER_RETRY_SECONDS = 2.0
MAX_DATAGRAM = 4096  # a payload is a short hint (a journal id, a kind of change), never data


def run_dir(data_dir: Path) -> Path:
    return data_dir / RUN_DIR


@dataclass(frozen=True, slots=True)
class Worker:
    """This process's place in its group: worker `index` of `count` (0 of 1 when there is no group)."""

    data_dir: Path
    index: int = 0
    count: int = 1

    @classmethod
    def sole(cls, data_dir: Path) -> Worker:
        return cls(data_dir)

    @property
    def grouped(self) -> bool:
        """Part of a group of several workers (under a supervisor)."""
        return self.count > 1

    @property
    def run_dir(self) -> Path:
        return run_dir(self.data_dir)

    @property
    def name(self) -> str:
        return f"worker {self.index}"

    @property
    def journal_key(self) -> str:
        """This worker's name in the write journal: a restarted worker takes over its predecessor's."""
        return f"worker-{self.index}"


class Leadership:
    """Whether this worker runs the once-only jobs. Sole workers lead from the start."""

    def __init__(self, lock_path: Path | None, retry_seconds: float = LEADER_RETRY_SECONDS) -> None:
        self._lock_path = lock_path
        self._retry_seconds = retry_seconds
        self._fd: int | None = None
        self._led = asyncio.Event()
        if lock_path is None:
            self._led.set()

    @classmethod
    def of(cls, worker: Worker) -> Leadership:
        return cls(worker.run_dir / LEADER_LOCK if worker.grouped else None)

    @property
    def is_leader(self) -> bool:
        return self._led.is_set()

    async def acquired(self) -> None:
        """Returns once this worker leads (at once if it does); it then leads until it exits."""
        await self._led.wait()

    async def run(self) -> None:
        """Try for the lease until it is ours (then hold it until close)."""
        if self._lock_path is None:
            return
        while not self._led.is_set():
            try:
                locked = self._try_lock()
            except OSError as exc:  # e.g. the run folder unwritable: try again, never give up leading
                log.error("trying for the leader lock failed: %s", exc)
                locked = False
            if locked:
                log.info("leading: retention sweeps, gone-quiet alerts and webhooks run in this worker")
                self._led.set()
                return
            await asyncio.sleep(self._retry_seconds)

    def _try_lock(self) -> bool:
        assert self._lock_path is not None
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return False
            raise
        self._fd = fd
        return True

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor releases the flock
            self._fd = None


PeerCallback = Callable[[bytes], None]


class PeerChannel:
    """Datagrams to and from the other workers of the group; see the module's docstring."""

    def __init__(self, worker: Worker) -> None:
        self._worker = worker
        self._callbacks: list[PeerCallback] = []
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._peers = [_address(worker.data_dir, i) for i in range(worker.count) if i != worker.index]
        self.sent = self.dropped = self.received = 0  # for tests and logs

    def on_message(self, callback: PeerCallback) -> None:
        """Call `callback(payload)` on the event loop for every datagram a peer sends (never raises into it)."""
        self._callbacks.append(callback)

    def notify(self, payload: bytes) -> None:
        """Send `payload` to every other worker. Never blocks, never raises; may drop (see above)."""
        sock = self._sock
        if sock is None:
            return
        for address in self._peers:
            try:
                sock.sendto(payload, address)
                self.sent += 1
            except OSError:  # full queue (EAGAIN), a peer not listening (ECONNREFUSED), too big, ...
                self.dropped += 1

    def open(self) -> None:
        """Listen on this worker's address (a restarted worker takes its predecessor's name)."""
        if not self._worker.grouped:
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        sock.setblocking(False)
        sock.bind(_address(self._worker.data_dir, self._worker.index))
        self._sock = sock
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._read)

    def close(self) -> None:
        if self._sock is not None:
            if self._loop is not None:
                self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None

    def _read(self) -> None:
        assert self._sock is not None
        while True:
            try:
                payload = self._sock.recv(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("reading from the other workers failed: %s", exc)
                return
            self.received += 1
            for callback in self._callbacks:
                try:
                    callback(payload)
                except Exception:
                    log.exception("handling a message from another worker failed")


def _address(data_dir: Path, index: int) -> bytes:
    """An abstract-namespace name (no file to clean up, gone with its process), from the data folder."""
    folder = hashlib.sha256(os.fsencode(data_dir.resolve())).hexdigest()[:24]
    return f"\0tracker-{folder}-worker-{index}".encode()


@contextlib.contextmanager
def group_lock(data_dir: Path) -> Iterator[None]:
    """Held by the supervisor while its group runs: a second group on the same folder is refused."""
    folder = run_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(folder / GROUP_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise GroupRunning(f"another server runs on the data folder {data_dir}") from None
            raise
        yield
    finally:
        os.close(fd)


class GroupRunning(OSError):
    """Another supervisor holds the data folder's group lock."""
