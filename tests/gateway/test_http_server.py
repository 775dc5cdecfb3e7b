"""The gateway's HTTP/1.1 layer over real sockets: keep-alive, bounds, malformed input, TLS."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from keyshard.gateway.http_server import Response
from keyshard.gateway.server import Listener, ServerError, parse_listen, serve
from keyshard.gateway.sigv4 import SignedRequest


async def _echo(request: SignedRequest) -> Response:
    body = f"{request.method} {request.target} {len(request.body)}".encode()
    return Response(200, body, (("content-type", "text/plain"),))


async def _start(listener: Listener) -> tuple[str, asyncio.Event, asyncio.Task[None]]:
    stop = asyncio.Event()
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve(listener, _echo, ready.set_result, stop))
    return await ready, stop, task


async def _exchange(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    answer = await reader.read()  # until the server closes
    writer.close()
    return answer


def _with_server(data: bytes) -> bytes:
    """Send ``data`` to a fresh loopback server and return everything it answered."""

    async def run() -> bytes:
        url, stop, task = await _start(Listener("127.0.0.1", 0))
        try:
            return await _exchange(int(url.rsplit(":", 1)[1]), data)
        finally:
            stop.set()
            await task

    return asyncio.run(run())


def _request(target: str, body: bytes = b"", extra: str = "") -> bytes:
    head = f"POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


def test_keep_alive_serves_several_requests_on_one_connection() -> None:
    pipelined = _request("/a", b"12") + _request("/b?q=1", b"", "Connection: close\r\n")
    answer = _with_server(pipelined)
    assert answer.count(b"HTTP/1.1 200") == 2
    assert b"POST /a 2" in answer
    assert b"POST /b?q=1 0" in answer


def test_a_body_over_the_bound_is_refused_before_it_is_read() -> None:
    huge = _request("/").replace(b"Content-Length: 0", b"Content-Length: 9999999")
    answer = _with_server(huge)
    assert answer.startswith(b"HTTP/1.1 413")


def test_malformed_requests_get_400_and_the_connection_closes() -> None:
    assert _with_server(b"NOT HTTP AT ALL\r\n\r\n").startswith(b"HTTP/1.1 400")


def test_plain_http_only_on_loopback() -> None:
    Listener("127.0.0.1", 0)
    Listener("::1", 0)
    Listener("localhost", 0)
    with pytest.raises(ServerError, match="loopback"):
        Listener("0.0.0.0", 0)
    with pytest.raises(ServerError, match="both"):
        Listener("0.0.0.0", 0, Path("cert.pem"), None)
    assert parse_listen("[::1]:8443") == ("::1", 8443)
    with pytest.raises(ServerError):
        parse_listen("8443")


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert, key_file = directory / "cert.pem", directory / "key.pem"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert, key_file


def test_tls_with_the_gateways_own_certificate(tmp_path: Path) -> None:
    asyncio.run(_tls(*_self_signed(tmp_path)))


async def _tls(cert: Path, key: Path) -> None:
    url, stop, task = await _start(Listener("0.0.0.0", 0, cert, key))
    assert url.startswith("https://")
    port = int(url.rsplit(":", 1)[1])
    context = ssl.create_default_context(cafile=str(cert))
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="localhost"
    )
    writer.write(_request("/tls", b"x", "Connection: close\r\n"))
    answer = await reader.read()
    writer.close()
    assert b"POST /tls 1" in answer
    plain_reader, plain_writer = await asyncio.open_connection("127.0.0.1", port)
    plain_writer.write(_request("/", b"", "Connection: close\r\n"))  # no TLS: no HTTP answer
    assert b"HTTP/1.1 200" not in await plain_reader.read()
    plain_writer.close()
    stop.set()
    await task


def test_connections_past_the_cap_are_closed_at_once() -> None:
    async def run() -> None:
        stop = asyncio.Event()
        ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(
            serve(Listener("127.0.0.1", 0), _echo, ready.set_result, stop, max_connections=1)
        )
        port = int((await ready).rsplit(":", 1)[1])
        _, holder = await asyncio.open_connection("127.0.0.1", port)  # holds the only slot
        holder.write(b"POST / HTTP/1.1\r\n")  # an unfinished request keeps it busy
        await holder.drain()
        await asyncio.sleep(0)
        try:  # closed unanswered: an empty read, or a reset since the request went unread
            answer = await _exchange(port, _request("/", b"", "Connection: close\r\n"))
        except ConnectionResetError:
            answer = b""
        assert answer == b""
        stop.set()
        await task

    asyncio.run(run())
