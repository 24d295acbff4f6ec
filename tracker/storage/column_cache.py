"""The cache of sealed blocks' columns (see blocks.py): one per SampleStore, bounded in bytes."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Protocol


class Sized(Protocol):
    @property
    def nbytes(self) -> int: ...


class BlockCache:
    """Sealed blocks' columns, least recently used first out past `max_bytes`; shared by the threads."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[int, int], tuple[int, Sized]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[int, int], version: int) -> Any:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] != version:
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def put(self, key: tuple[int, int], version: int, columns: Sized) -> None:
        size = columns.nbytes
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1].nbytes
            self._entries[key] = (version, columns)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, evicted) = self._entries.popitem(last=False)
                self._bytes -= evicted.nbytes

    @property
    def used_bytes(self) -> int:
        return self._bytes
