"""VsockTransport through a fake at the socket-constructor boundary.

This machine's vsock has no loopback, so the fake factory records what real mode asks of the kernel
(family, type, bind/connect addresses, listen) and carries the bytes over a Unix socket. Everything
above the constructor — non-blocking setup, ``loop.sock_connect``, handing the socket to asyncio —
is the production code path.
"""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path
from typing import Any

import pytest

from transport.address import ANY_CID, PARENT_CID, VsockAddress
from transport.vsock import LISTEN_BACKLOG, VsockTransport


class _Recorder:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.calls: list[tuple[Any, ...]] = []

    def path(self, address: tuple[int, int]) -> str:
        cid, port = address
        # A listener bound to ANY_CID is reached through the parent's CID, as on a real host.
        cid = PARENT_CID if cid == ANY_CID else cid
        return os.fspath(self.root / f"{cid}-{port}")

    def factory(self, family: int, type_: int) -> socket.socket:
        recorder = self
        recorder.calls.append(("socket", family, type_))

        class FakeVsock(socket.socket):
            def bind(self, address: Any) -> None:
                recorder.calls.append(("bind", address))
                super().bind(recorder.path(address))

            def listen(self, backlog: int = 0) -> None:
                recorder.calls.append(("listen", backlog))
                super().listen(backlog)

            def connect(self, address: Any) -> None:
                recorder.calls.append(("connect", address))
                super().connect(recorder.path(address))

        return FakeVsock(socket.AF_UNIX, type_)


def test_real_mode_asks_the_kernel_for_vsock_and_moves_bytes(tmp_path: Path) -> None:
    rec = _Recorder(tmp_path)
    transport = VsockTransport(socket_factory=rec.factory)

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.read())
        writer.close()

    async def main() -> bytes:
        async with await transport.listen(VsockAddress(ANY_CID, 9000), echo):
            reader, writer = await transport.connect(VsockAddress(PARENT_CID, 9000))
            writer.write(b"ping")
            writer.write_eof()
            data = await reader.read()
            writer.close()
            await writer.wait_closed()
            return data

    assert asyncio.run(main()) == b"ping"
    assert rec.calls == [
        ("socket", socket.AF_VSOCK, socket.SOCK_STREAM),
        ("bind", (ANY_CID, 9000)),
        ("listen", LISTEN_BACKLOG),
        ("socket", socket.AF_VSOCK, socket.SOCK_STREAM),
        ("connect", (PARENT_CID, 9000)),
    ]


def test_failed_connect_closes_the_socket(tmp_path: Path) -> None:
    made: list[socket.socket] = []
    rec = _Recorder(tmp_path)

    def factory(family: int, type_: int) -> socket.socket:
        made.append(rec.factory(family, type_))
        return made[-1]

    transport = VsockTransport(socket_factory=factory)
    with pytest.raises((ConnectionRefusedError, FileNotFoundError)):
        asyncio.run(transport.connect(VsockAddress(16, 1)))
    assert made[0].fileno() == -1


def test_failed_bind_closes_the_socket(tmp_path: Path) -> None:
    made: list[socket.socket] = []
    rec = _Recorder(tmp_path / "missing-dir")

    def factory(family: int, type_: int) -> socket.socket:
        made.append(rec.factory(family, type_))
        return made[-1]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    with pytest.raises(FileNotFoundError):
        asyncio.run(VsockTransport(socket_factory=factory).listen(VsockAddress(16, 1), handler))
    assert made[0].fileno() == -1


def test_default_factory_creates_a_real_vsock_socket() -> None:
    """The production constructor really yields AF_VSOCK here (bind only: there is no loopback)."""
    sock = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    try:
        sock.bind((ANY_CID, 0xFFFFFFFF))  # any port: the kernel picks one
        assert sock.family == socket.AF_VSOCK
    finally:
        sock.close()


def test_protocol_api_takes_the_same_real_mode_path(tmp_path: Path) -> None:
    rec = _Recorder(tmp_path)
    transport = VsockTransport(socket_factory=rec.factory)
    received: asyncio.Queue[bytes] = asyncio.Queue()

    class Sink(asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            received.put_nowait(data)

    async def main() -> bytes:
        server = await transport.listen_protocol(VsockAddress(ANY_CID, 8443), Sink)
        async with server:
            sender, _ = await transport.connect_protocol(
                VsockAddress(PARENT_CID, 8443), asyncio.Protocol
            )
            assert isinstance(sender, asyncio.WriteTransport)
            sender.write(b"relay")
            data = await received.get()
            sender.close()
            return data

    assert asyncio.run(main()) == b"relay"
    assert rec.calls == [
        ("socket", socket.AF_VSOCK, socket.SOCK_STREAM),
        ("bind", (ANY_CID, 8443)),
        ("listen", LISTEN_BACKLOG),
        ("socket", socket.AF_VSOCK, socket.SOCK_STREAM),
        ("connect", (PARENT_CID, 8443)),
    ]
