"""The one transport seam: connect to and listen on ``(cid, port)`` addresses.

Two implementations exist — :class:`transport.vsock.VsockTransport` (real ``AF_VSOCK``) and
:class:`transport.unix.UnixSocketTransport` (emulation over Unix sockets). Both hand back ordinary
asyncio streams and servers (or, for the proxy's hot path, drive ``asyncio.Protocol`` objects), so
nothing above this seam knows which one is in use (architecture invariant 5: the transport is one of
the four seams where the modes differ).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

from transport.address import VsockAddress

ProtocolFactory = Callable[[], asyncio.Protocol]
"""Builds the protocol of one connection (the low-level API, used by the proxy's relay)."""

ConnectionHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
"""Called once per accepted connection with its streams (as ``asyncio.start_server`` does)."""

STREAM_LIMIT = 256 * 1024
"""StreamReader buffer limit: reading pauses when about twice this is buffered (back-pressure)."""


class Transport(Protocol):
    """Connect and listen on vsock-style addresses."""

    async def connect(
        self, addr: VsockAddress
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Open a stream to ``addr``; raises ``ConnectionRefusedError`` if nothing listens there."""
        ...

    async def listen(
        self, addr: VsockAddress, handler: ConnectionHandler
    ) -> asyncio.AbstractServer:
        """Accept connections on ``addr``, calling ``handler`` for each; the server is serving."""
        ...

    async def connect_protocol(
        self, addr: VsockAddress, factory: ProtocolFactory
    ) -> tuple[asyncio.BaseTransport, asyncio.Protocol]:
        """Like :meth:`connect`, but drives an ``asyncio.Protocol`` instead of streams."""
        ...

    async def listen_protocol(
        self, addr: VsockAddress, factory: ProtocolFactory
    ) -> asyncio.AbstractServer:
        """Like :meth:`listen`, but each connection gets a protocol from ``factory``."""
        ...
