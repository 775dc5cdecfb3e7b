"""Emulated transport: each ``(cid, port)`` is a Unix socket ``<runtime_dir>/vsock/<cid>-<port>.sock``.

The directory is created ``0700``, so only the cluster's own user can reach the sockets — the
emulation of "only the enclave's VM and its parent share this vsock bus". A Unix socket path must fit
``sun_path`` (108 bytes with the terminating NUL), so a long runtime directory is refused up front
with an :class:`AddressError` naming the path, rather than failing later with a bare ``OSError``.

Listening on :data:`ANY_CID` means "my own CID", exactly as with vsock; the transport therefore needs
to be told its ``local_cid`` for that (the parent is :data:`PARENT_CID`, an enclave its own CID).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

from transport.address import ANY_CID, ANY_PORT, VsockAddress
from transport.base import STREAM_LIMIT, ConnectionHandler, ProtocolFactory
from transport.errors import AddressError

SUN_PATH_MAX = 107
"""Bytes available for a Unix socket path on Linux (``sizeof(sun_path)`` minus the NUL)."""


class UnixSocketTransport:
    """The :class:`transport.base.Transport` of emulated mode."""

    def __init__(self, runtime_dir: Path, *, local_cid: int | None = None) -> None:
        self.runtime_dir = Path(runtime_dir)
        self.local_cid = local_cid

    def path_for(self, addr: VsockAddress) -> Path:
        """The socket path for ``addr``; refuses wildcards it cannot resolve and over-long paths."""
        cid = addr.cid
        if cid == ANY_CID:
            if self.local_cid is None:
                raise AddressError("cannot map ANY_CID: this transport was given no local_cid")
            cid = self.local_cid
        if addr.port == ANY_PORT:
            raise AddressError("ANY_PORT cannot be mapped to a socket path")
        path = self.runtime_dir / "vsock" / f"{cid}-{addr.port}.sock"
        length = len(os.fsencode(path))
        if length > SUN_PATH_MAX:
            raise AddressError(
                f"socket path {str(path)!r} is {length} bytes, over the {SUN_PATH_MAX}-byte "
                "sun_path limit; choose a shorter runtime directory"
            )
        return path

    def _listen_path(self, addr: VsockAddress) -> Path:
        """The socket path to bind for ``addr``: its directory made ``0700``, a stale socket gone."""
        path = self.path_for(addr)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _remove_stale_socket(path)
        return path

    async def connect(
        self, addr: VsockAddress
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        path = self.path_for(addr)
        with _refused_if_absent(addr):
            return await asyncio.open_unix_connection(path, limit=STREAM_LIMIT)

    async def listen(
        self, addr: VsockAddress, handler: ConnectionHandler
    ) -> asyncio.AbstractServer:
        path = self._listen_path(addr)
        return await asyncio.start_unix_server(handler, path=path, limit=STREAM_LIMIT)

    async def connect_protocol(
        self, addr: VsockAddress, factory: ProtocolFactory
    ) -> tuple[asyncio.BaseTransport, asyncio.Protocol]:
        path = self.path_for(addr)
        with _refused_if_absent(addr):
            return await asyncio.get_running_loop().create_unix_connection(factory, os.fspath(path))

    async def listen_protocol(
        self, addr: VsockAddress, factory: ProtocolFactory
    ) -> asyncio.AbstractServer:
        path = self._listen_path(addr)
        return await asyncio.get_running_loop().create_unix_server(factory, path)


@contextlib.contextmanager
def _refused_if_absent(addr: VsockAddress) -> Iterator[None]:
    """A missing socket file is what vsock reports as a refused connection: say the same."""
    try:
        yield
    except FileNotFoundError:
        raise ConnectionRefusedError(errno.ECONNREFUSED, f"nothing listens on {addr}") from None


def _remove_stale_socket(path: Path) -> None:
    """Unlink a socket left by a dead listener; refuse to steal one that is still served."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise AddressError(f"{str(path)!r} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.setblocking(False)  # a live listener with a full backlog answers EAGAIN, not a hang
    try:
        probe.connect(os.fspath(path))
    except ConnectionRefusedError:
        path.unlink(missing_ok=True)
        return
    except BlockingIOError:
        pass  # someone is listening, just busy
    finally:
        probe.close()
    raise OSError(errno.EADDRINUSE, f"another process already listens on {str(path)!r}")
