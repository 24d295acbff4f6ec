"""Progress of a `tracker import` on a terminal: one line on stderr, rewritten in place (stdout carries
the summary, so a piped import's output stays clean)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TextIO

BYTES = "bytes"  # a bar over a file's bytes shows them in MB


@dataclass(slots=True)
class ProgressBar:
    """Rewritten at most every `interval` s: how far through (`done` of `total`, in `unit`) and how many
    `rate_unit` a second (line protocol: bytes read and lines; activity files: points and points)."""

    stream: TextIO
    label: str
    total: int
    unit: str
    rate_unit: str
    interval: float = 0.2
    width: int = 30
    started: float = field(default_factory=time.monotonic)
    _shown_at: float = 0.0
    _done: int = 0
    _counted: int = 0

    def update(self, done: int, counted: int, *, force: bool = False) -> None:
        self._done, self._counted = done, counted
        now = time.monotonic()
        if not force and now - self._shown_at < self.interval:
            return
        self._shown_at = now
        fraction = min(1.0, done / self.total) if self.total else 1.0
        filled = round(fraction * self.width)
        rate = counted / max(now - self.started, 1e-6)
        self.stream.write(
            f"\r{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {fraction:4.0%} "
            f"{self._amount(done)}/{self._amount(self.total)} {'MB' if self.unit == BYTES else self.unit} "
            f"{rate:,.0f} {self.rate_unit}/s"
        )
        self.stream.flush()

    def advance(self, count: int) -> None:
        """`count` more done, each one counted in the rate."""
        self.update(self._done + count, self._counted + count)

    def finish(self) -> None:
        self.update(self.total, self._counted, force=True)
        self.stream.write("\n")
        self.stream.flush()

    def _amount(self, amount: int) -> str:
        return f"{amount / 1e6:.1f}" if self.unit == BYTES else f"{amount:,}"
