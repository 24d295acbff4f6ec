"""Both line-protocol parsers under the same tests.

A test module that says `pytestmark = pytest.mark.usefixtures("each_parser")` (and imports
`each_parser`) runs every test twice: with tracker.lineprotocol's parse() and parse_samples() on
the pure-Python parser, then on the compiled one.  Where the compiled one was not built its runs are
skipped, saying why; with CI set in the environment they fail instead, so a CI machine with a
compiler never passes without testing it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.tools import missing
from tracker import lineprotocol


def require_compiled() -> None:
    """Skip (fail under CI) when the compiled parser is not importable."""
    if lineprotocol.COMPILED is None:
        missing(f"{lineprotocol.COMPILED_MISSING}; `pip install -e .` with a C compiler builds it")


@pytest.fixture(scope="module", params=["python", "compiled"])
def each_parser(request: pytest.FixtureRequest) -> Iterator[str]:
    name: str = request.param
    if name == "compiled":
        require_compiled()
    active = lineprotocol.IMPLEMENTATION
    lineprotocol.use_implementation(name)
    try:
        yield name
    finally:
        lineprotocol.use_implementation(active)
