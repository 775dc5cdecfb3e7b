"""Keyshard client: the SDK and the ``keyshard`` command line.

Start here::

    import keyshard

    with keyshard.Client.from_profile("cluster/profile.json") as client:
        signature = client.sign("treasury", b"wire 5 to 42")

``Client``/``AsyncClient`` (:mod:`keyshard.client.sdk`) and the error tree
(:mod:`keyshard.client.errors`, every error a :class:`ClientError` with a ``code``) are loaded on
first use, not at import: ``import keyshard`` must stay cheap for the command line.

``keyshard.__version__`` is the installed distribution's version, read from its metadata on first
use. From a source tree that was never installed it is ``0+unknown``, a valid PEP 440 version
that sorts before releases.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from keyshard.client.errors import (
        ChannelError,
        ClientError,
        InvalidInputError,
        KeyNotFoundError,
        ProtocolError,
        RemoteError,
        UnavailableError,
    )
    from keyshard.client.keys import KeyDescription
    from keyshard.client.sdk import AsyncClient, Client

__all__ = [
    "AsyncClient",
    "ChannelError",
    "Client",
    "ClientError",
    "InvalidInputError",
    "KeyDescription",
    "KeyNotFoundError",
    "ProtocolError",
    "RemoteError",
    "UnavailableError",
    "__version__",
]

__version__: str  # provided by __getattr__ below, on first use

_UNKNOWN_VERSION = "0+unknown"
_LAZY = {
    "AsyncClient": "keyshard.client.sdk",
    "Client": "keyshard.client.sdk",
    "KeyDescription": "keyshard.client.keys",
    **dict.fromkeys(
        (
            "ChannelError",
            "ClientError",
            "InvalidInputError",
            "KeyNotFoundError",
            "ProtocolError",
            "RemoteError",
            "UnavailableError",
        ),
        "keyshard.client.errors",
    ),
}

if not TYPE_CHECKING:  # hidden from mypy, which sees the imports above instead

    def __getattr__(name: str) -> Any:
        if name == "__version__":
            return _installed_version()
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        from importlib import import_module  # noqa: PLC0415 -- loaded on first use, see above

        return getattr(import_module(module), name)


def _installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415 -- see docstring

    try:
        return version("keyshard")
    except PackageNotFoundError:
        return _UNKNOWN_VERSION
