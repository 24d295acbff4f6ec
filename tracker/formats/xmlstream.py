"""Reading GPX and TCX: one streaming pass with the standard library's incremental XML parser.

`events(data)` yields ("start" | "end", element) as expat reads; a reader takes what it needs from a
point's element at its "end" and then drops it (`release`), so memory stays flat however long the file.
Elements are matched by local name, whatever namespace (or version of one) a file uses.

Entities: Python 3.11's expat (2.4 and later) refuses a document whose entities expand past 100 times
its size (billion laughs and quadratic blow-ups), and ElementTree resolves no external entity (an
undefined entity is a parse error), so a file cannot make the reader fetch anything or swell in memory.
"""

from __future__ import annotations

import datetime as _dt
import io
import xml.etree.ElementTree as ET
from collections.abc import Iterator

from tracker.formats.track import FormatError, ns_of


def local(tag: str) -> str:
    """`{namespace}name` -> `name`."""
    return tag.rpartition("}")[2]


class LocalNames(dict[str, str]):
    """`{namespace}name` -> `name`, worked out once per tag: a file repeats a few tags many times."""

    def __missing__(self, tag: str) -> str:
        name = self[tag] = local(tag)
        return name


def events(data: bytes) -> Iterator[tuple[str, ET.Element]]:
    """("start" | "end", element) in document order; FormatError with the parser's line and column."""
    try:
        yield from ET.iterparse(io.BytesIO(data), ("start", "end"))
    except ET.ParseError as exc:
        raise FormatError(f"not well-formed XML: {exc}") from None


def release(element: ET.Element, parent: ET.Element | None) -> None:
    """Drop an element that has been read: its content, and its place in its parent."""
    element.clear()
    if parent is not None:
        parent.remove(element)  # read elements leave as they come: the one to remove is near the front


def first_child(parent: ET.Element, name: str, names: LocalNames) -> ET.Element | None:
    """The parent's first child called `name` (local name), None without one."""
    for element in parent:
        if names[element.tag] == name:
            return element
    return None


def parse_time(text: str | None, what: str) -> int:
    """An ISO 8601 time (`Z` or an offset, any fraction; none is UTC) in ns since the epoch."""
    try:
        return ns_of(_dt.datetime.fromisoformat((text or "").strip()))
    except ValueError:
        raise FormatError(f"{what} {text!r} is not an ISO 8601 time") from None

