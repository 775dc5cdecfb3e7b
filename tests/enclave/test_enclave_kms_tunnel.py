"""The loopback -> transport tunnel boto3 uses to reach KMS through the parent."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from enclave_harness import short_tmpdir

from enclave.config import KMS_PROXY_PORT
from enclave.errors import KmsError
from enclave.kms import EnclaveKms, StaticCredentials
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


KMS_HOST = "kms.us-east-1.amazonaws.com"


def test_connect_proxy_mode_accepts_only_the_kms_host(rundir: Path) -> None:
    async def scenario() -> None:
        transport = UnixSocketTransport(rundir, local_cid=16)

        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.read())
            await writer.drain()
            writer.close()

        server = await transport.listen(UPSTREAM, echo)
        tunnel = KmsTunnel(transport, UPSTREAM, connect_target=(KMS_HOST, 443))
        port = await tunnel.start()

        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"CONNECT {KMS_HOST}:443 HTTP/1.1\r\nHost: {KMS_HOST}:443\r\n\r\n".encode())
        assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 200 Connection established\r\n\r\n"
        writer.write(b"\x16\x03\x01 opaque tls")
        writer.write_eof()
        assert await reader.read() == b"\x16\x03\x01 opaque tls"
        writer.close()

        for preamble in (
            b"CONNECT evil.example.com:443 HTTP/1.1\r\n\r\n",
            f"CONNECT {KMS_HOST}:80 HTTP/1.1\r\n\r\n".encode(),
            f"GET http://{KMS_HOST}/ HTTP/1.1\r\n\r\n".encode(),
        ):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(preamble)
            assert await reader.read() == b"HTTP/1.1 403 Forbidden\r\n\r\n"
            writer.close()
        await tunnel.close()
        server.close()
        await server.wait_closed()

    asyncio.run(scenario())


def test_boto3_tunnels_tls_to_the_real_kms_host_through_connect(rundir: Path) -> None:
    """What real mode does: botocore sends CONNECT for the KMS host, then a TLS ClientHello."""

    async def scenario() -> bytes:
        transport = UnixSocketTransport(rundir, local_cid=16)
        first_bytes: list[bytes] = []

        async def fake_kms(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            first_bytes.append(await reader.read(5))
            writer.close()  # no TLS server here: the handshake fails after the ClientHello

        server = await transport.listen(UPSTREAM, fake_kms)
        tunnel = KmsTunnel(transport, UPSTREAM, connect_target=(KMS_HOST, 443))
        port = await tunnel.start()
        kms = EnclaveKms(
            f"https://{KMS_HOST}",
            "us-east-1",
            StaticCredentials("AKIAEXAMPLE", "secret", ""),
            proxy_url=f"http://127.0.0.1:{port}",
            timeout=5,
        )
        with pytest.raises(KmsError):
            await asyncio.to_thread(kms.decrypt, "arn", "node-1", b"blob", b"document")
        await tunnel.close()
        server.close()
        await server.wait_closed()
        return first_bytes[0]

    record = asyncio.run(scenario())
    assert record[:1] == b"\x16"  # a TLS handshake record: TLS is end to end through the parent
