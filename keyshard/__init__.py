"""Keyshard client: the SDK and the ``keyshard`` command line.

``keyshard.__version__`` is the installed distribution's version, read from its metadata on first
use (not at import: ``import keyshard`` must stay cheap for the command line). From a source tree
that was never installed it is ``0+unknown``, a valid PEP 440 version that sorts before releases.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["__version__"]

__version__: str  # provided by __getattr__ below, on first use

_UNKNOWN_VERSION = "0+unknown"

if not TYPE_CHECKING:  # hidden from mypy, so that only __version__ type-checks, not every name

    def __getattr__(name: str) -> str:
        if name == "__version__":
            return _installed_version()
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415 -- see docstring

    try:
        return version("keyshard")
    except PackageNotFoundError:
        return _UNKNOWN_VERSION
