"""Builds the compiled line-protocol parser, tracker._lineprotocol, when it can.

Everything else about the package is in pyproject.toml.  The extension is optional: without a C
compiler or Python's headers the build prints a warning and Tracker runs its pure-Python parser
(same results, slower).  TRACKER_NO_EXTENSIONS=1 skips the build on purpose.
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def _warn(problem: object) -> None:
    print(
        f"WARNING: the compiled line-protocol parser was not built ({problem}); "
        "Tracker will use its pure-Python parser. Install a C compiler and the Python headers "
        "(Debian: gcc python3-dev) and reinstall for the faster one.",
        file=sys.stderr,
    )


class OptionalBuildExt(build_ext):
    """build_ext that warns instead of failing: the extension only makes parsing faster."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no compiler found, broken toolchain, ...
            _warn(exc)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            _warn(exc)


def _extensions() -> list[Extension]:
    if os.environ.get("TRACKER_NO_EXTENSIONS", "") not in ("", "0"):
        print("TRACKER_NO_EXTENSIONS is set: not building the compiled parser", file=sys.stderr)
        return []
    try:
        from Cython.Build import cythonize
    except ImportError as exc:
        _warn(exc)
        return []
    return cythonize(
        [Extension("tracker._lineprotocol", ["tracker/_lineprotocol.pyx"])],
        compiler_directives={"language_level": 3},
        quiet=True,
    )


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
