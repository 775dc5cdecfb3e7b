from __future__ import annotations

import asyncio
import os
import socket
import stat
from pathlib import Path

import pytest

from transport.address import ANY_CID, ANY_PORT, PARENT_CID, VsockAddress
from transport.errors import AddressError
from transport.unix import SUN_PATH_MAX, UnixSocketTransport


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(await reader.read())
    writer.close()
    await writer.wait_closed()


def test_path_mapping(short_dir: Path) -> None:
    t = UnixSocketTransport(short_dir, local_cid=PARENT_CID)
    assert t.path_for(VsockAddress(16, 5000)) == short_dir / "vsock" / "16-5000.sock"
    assert t.path_for(VsockAddress(ANY_CID, 9000)) == short_dir / "vsock" / "3-9000.sock"


def test_any_cid_without_local_cid_and_any_port_are_refused(short_dir: Path) -> None:
    t = UnixSocketTransport(short_dir)
    with pytest.raises(AddressError, match="no local_cid"):
        t.path_for(VsockAddress(ANY_CID, 1))
    with pytest.raises(AddressError, match="ANY_PORT"):
        t.path_for(VsockAddress(3, ANY_PORT))


def test_overlong_socket_path_gets_a_clear_error(short_dir: Path) -> None:
    deep = short_dir / ("d" * 100)
    t = UnixSocketTransport(deep)
    with pytest.raises(AddressError, match=f"over the {SUN_PATH_MAX}-byte sun_path limit"):
        t.path_for(VsockAddress(16, 5000))


def test_connect_listen_and_private_directory(short_dir: Path) -> None:
    t = UnixSocketTransport(short_dir)
    addr = VsockAddress(16, 5000)

    async def main() -> bytes:
        async with await t.listen(addr, _echo):
            reader, writer = await t.connect(addr)
            writer.write(b"hello")
            writer.write_eof()
            reply = await reader.read()
            writer.close()
            await writer.wait_closed()
            return reply

    assert asyncio.run(main()) == b"hello"
    assert stat.S_IMODE((short_dir / "vsock").stat().st_mode) == 0o700


def test_connect_to_nothing_is_connection_refused(short_dir: Path) -> None:
    t = UnixSocketTransport(short_dir)
    with pytest.raises(ConnectionRefusedError):
        asyncio.run(t.connect(VsockAddress(16, 1)))


def test_stale_socket_is_replaced_but_a_live_one_is_not_stolen(short_dir: Path) -> None:
    t = UnixSocketTransport(short_dir)
    addr = VsockAddress(16, 7)
    path = t.path_for(addr)
    path.parent.mkdir(mode=0o700)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(os.fspath(path))
    dead.close()  # leaves the file behind, as a crashed listener would

    async def main() -> None:
        async with await t.listen(addr, _echo):
            with pytest.raises(OSError, match="already listens"):
                await t.listen(addr, _echo)

    asyncio.run(main())


def test_non_socket_file_in_the_way_is_refused(short_dir: Path) -> None:
    t = UnixSocketTransport(short_dir)
    addr = VsockAddress(16, 8)
    path = t.path_for(addr)
    path.parent.mkdir(mode=0o700)
    path.write_bytes(b"")
    with pytest.raises(AddressError, match="not a socket"):
        asyncio.run(t.listen(addr, _echo))
