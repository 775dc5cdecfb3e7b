"""The loopback -> transport tunnel boto3 uses to reach KMS through the parent."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from enclave_harness import short_tmpdir

from enclave.config import KMS_PROXY_PORT
from enclave.kms_tunnel import KmsTunnel
from transport.address import PARENT_CID, VsockAddress
from transport.unix import UnixSocketTransport

UPSTREAM = VsockAddress(PARENT_CID, KMS_PROXY_PORT)


@pytest.fixture
def rundir() -> Iterator[Path]:
    with short_tmpdir() as path:
        yield path


def test_bytes_flow_both_ways_and_half_close_propagates(rundir: Path) -> None:
    async def scenario() -> None:
        transport = UnixSocketTransport(rundir, local_cid=16)
        received: list[bytes] = []

        async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            data = await reader.read()  # until the client's half-close arrives
            received.append(data)
            writer.write(data.upper())
            await writer.drain()
            writer.close()

        server = await transport.listen(UPSTREAM, upstream)
        tunnel = KmsTunnel(transport, UPSTREAM)
        port = await tunnel.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"post / http/1.1")
        writer.write_eof()
        assert await reader.read() == b"POST / HTTP/1.1"
        assert received == [b"post / http/1.1"]
        writer.close()
        await tunnel.close()
        server.close()
        await server.wait_closed()

    asyncio.run(scenario())


def test_no_upstream_closes_the_client(rundir: Path) -> None:
    async def scenario() -> None:
        tunnel = KmsTunnel(UnixSocketTransport(rundir, local_cid=16), UPSTREAM)
        port = await tunnel.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await reader.read() == b""
        writer.close()
        await tunnel.close()
        with pytest.raises(RuntimeError):
            _ = tunnel.port

    asyncio.run(scenario())
