"""The access log writes in bulk (one system call per many requests) yet loses and delays nothing
for long: lines go out when 256 have gathered, on a warning, every interval, and at close."""

from __future__ import annotations

import logging
import time

from tracker.logs import BufferedHandler


class Collected(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def logger_into(handler: logging.Handler, name: str) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def test_lines_wait_for_a_full_buffer_or_a_warning() -> None:
    target = Collected()
    buffered = BufferedHandler(target, capacity=4, interval=3600)
    logger = logger_into(buffered, "tracker.test.bulk")
    try:
        for n in range(3):
            logger.info("request %d", n)
        assert target.messages == []  # held: no write per line
        logger.info("request 3")
        assert target.messages == [f"request {n}" for n in range(4)]
        logger.info("request 4")
        logger.warning("something went wrong")
        assert target.messages[-2:] == ["request 4", "something went wrong"]
    finally:
        buffered.close()


def test_a_quiet_server_still_writes_its_lines_soon_and_at_close() -> None:
    target = Collected()
    buffered = BufferedHandler(target, capacity=256, interval=0.05)
    logger = logger_into(buffered, "tracker.test.quiet")
    logger.info("the only request")
    deadline = time.monotonic() + 10
    while not target.messages and time.monotonic() < deadline:
        time.sleep(0.01)
    assert target.messages == ["the only request"]
    logger.info("the last request")
    buffered.close()
    assert target.messages == ["the only request", "the last request"]
