"""Real-mode transport: ``AF_VSOCK`` stream sockets handed to asyncio.

The socket constructor is a parameter (``socket_factory``) — the system boundary. Production uses
``socket.socket``; tests inject a factory that records the family and the bind/connect addresses and
carries the bytes over a Unix socket, so the code path exercised is the one real mode runs (this
machine's vsock has no loopback). The socket is set non-blocking before asyncio sees it, and closed
on every failure so no descriptor leaks.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Iterator

from transport.address import VsockAddress
from transport.base import STREAM_LIMIT, ConnectionHandler, ProtocolFactory

SocketFactory = Callable[[int, int], socket.socket]
"""``(family, type) -> socket``; ``socket.socket`` in production."""

LISTEN_BACKLOG = 128


class VsockTransport:
    """The :class:`transport.base.Transport` of real mode (Nitro enclave and parent instance)."""

    def __init__(self, *, socket_factory: SocketFactory = socket.socket) -> None:
        self._socket_factory = socket_factory

    def _new_socket(self) -> socket.socket:
        return self._socket_factory(socket.AF_VSOCK, socket.SOCK_STREAM)

    async def connect(
        self, addr: VsockAddress
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        with _closed_on_failure(self._new_socket()) as sock:
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, (addr.cid, addr.port))
            return await asyncio.open_connection(sock=sock, limit=STREAM_LIMIT)

    async def listen(
        self, addr: VsockAddress, handler: ConnectionHandler
    ) -> asyncio.AbstractServer:
        with _closed_on_failure(self._new_socket()) as sock:
            sock.bind((addr.cid, addr.port))
            sock.setblocking(False)
            # asyncio calls listen(backlog) itself when the server starts serving.
            return await asyncio.start_server(
                handler, sock=sock, limit=STREAM_LIMIT, backlog=LISTEN_BACKLOG
            )

    async def connect_protocol(
        self, addr: VsockAddress, factory: ProtocolFactory
    ) -> tuple[asyncio.BaseTransport, asyncio.Protocol]:
        with _closed_on_failure(self._new_socket()) as sock:
            sock.setblocking(False)
            loop = asyncio.get_running_loop()
            await loop.sock_connect(sock, (addr.cid, addr.port))
            return await loop.create_connection(factory, sock=sock)

    async def listen_protocol(
        self, addr: VsockAddress, factory: ProtocolFactory
    ) -> asyncio.AbstractServer:
        with _closed_on_failure(self._new_socket()) as sock:
            sock.bind((addr.cid, addr.port))
            sock.setblocking(False)
            return await asyncio.get_running_loop().create_server(
                factory, sock=sock, backlog=LISTEN_BACKLOG
            )


@contextlib.contextmanager
def _closed_on_failure(sock: socket.socket) -> Iterator[socket.socket]:
    """Hand ``sock`` to the block; close it if the block fails (asyncio then never owned it)."""
    try:
        yield sock
    except BaseException:
        sock.close()
        raise
