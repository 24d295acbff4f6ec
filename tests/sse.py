"""A small Server-Sent Events reader and sign-in helpers for the live-view tests."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

import aiohttp
from aiohttp.test_utils import TestClient


@dataclass
class Block:
    """One SSE block (lines up to a blank line)."""

    id: str | None = None
    event: str | None = None
    data: str | None = None
    retry: str | None = None
    comments: list[str] = field(default_factory=list)

    @property
    def json(self) -> dict:
        assert self.data is not None
        return json.loads(self.data)


class EventStream:
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    async def block(self, timeout: float = 2.0) -> Block:
        """The next block (comment-only blocks included); raises EOFError at the stream's end."""
        block = Block()
        seen = False
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.response.content.readline()
                if not raw:
                    raise EOFError("the stream ended")
                line = raw.decode("utf-8").rstrip("\n")
                if line == "":
                    if seen:
                        return block
                    continue
                seen = True
                if line.startswith(":"):
                    block.comments.append(line[1:].strip())
                    continue
                name, _, value = line.partition(":")
                setattr(block, name, value[1:] if value.startswith(" ") else value)

    async def event(self, timeout: float = 2.0) -> Block:
        """The next block that is an event (skipping heartbeats and the opening id/retry block)."""
        async with asyncio.timeout(timeout):
            while True:
                block = await self.block(timeout)
                if block.event is not None:
                    return block

    async def end(self, timeout: float = 2.0) -> list[Block]:
        """Read until the server ends the stream; the blocks seen on the way."""
        blocks: list[Block] = []
        async with asyncio.timeout(timeout):
            while True:
                try:
                    blocks.append(await self.block(timeout))
                except EOFError:
                    return blocks


async def open_stream(client: TestClient, url: str, headers: dict[str, str] | None = None) -> EventStream:
    response = await client.get(url, headers=headers)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/event-stream")
    return EventStream(response)


def cookie(client: TestClient, name: str) -> str | None:
    for morsel in client.session.cookie_jar:
        if morsel.key == name:
            return morsel.value
    return None


async def sign_in(client: TestClient, name: str, password: str) -> str:
    """Sign in through the form; returns the session's CSRF token."""
    await client.get("/api/me")  # hands out the CSRF cookie
    csrf = cookie(client, "tracker_csrf")
    assert csrf
    response = await client.post(
        "/login", data={"username": name, "password": password, "csrf": csrf}, allow_redirects=False
    )
    assert response.status == 303, await response.text()
    assert response.headers["Location"] == "/"
    new_csrf = cookie(client, "tracker_csrf")
    assert new_csrf and new_csrf != csrf
    return new_csrf
