"""HTTP/1.1 over asyncio streams, with h11 doing the parsing (sans-I/O): bytes in, events out.

The gateway's endpoints are request/response APIs called by SDKs over keep-alive connections; this
module turns each request on a connection into a :class:`~keyshard.gateway.sigv4.SignedRequest`
for one handler and writes its :class:`Response`. It bounds what a caller can make the gateway
hold: a body larger than ``max_body`` is refused (413) before it is read, a connection idle for
``idle_timeout`` seconds is closed, and a malformed request gets a 400 and the connection closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import h11

from keyshard.gateway.sigv4 import SignedRequest

__all__ = ["Handler", "Response", "serve_connection"]

log = logging.getLogger(__name__)
_READ = 65536


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes = b""
    headers: Sequence[tuple[str, str]] = field(default_factory=tuple)


Handler = Callable[[SignedRequest], Awaitable[Response]]


class _ClosedError(Exception):
    """The peer went away, timed out, or broke the protocol; the connection ends."""


async def serve_connection(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    handler: Handler,
    *,
    max_body: int = 65536,
    idle_timeout: float = 60.0,
) -> None:
    """Serve requests on one connection until either side closes it."""
    connection = h11.Connection(h11.SERVER, max_incomplete_event_size=16384)
    try:
        while True:
            request = await _next_request(connection, reader, max_body, idle_timeout, writer)
            if request is None:
                return
            response = await handler(request)
            _send(connection, writer, response)
            await writer.drain()
            if connection.our_state is h11.MUST_CLOSE:
                return
            connection.start_next_cycle()
    except (_ClosedError, ConnectionError, h11.LocalProtocolError):
        return
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError, asyncio.CancelledError):
            await writer.wait_closed()


async def _event(
    connection: h11.Connection, reader: asyncio.StreamReader, idle_timeout: float
) -> object:
    while True:
        event = connection.next_event()
        if event is not h11.NEED_DATA:
            return event
        try:
            data = await asyncio.wait_for(reader.read(_READ), idle_timeout)
        except TimeoutError:
            raise _ClosedError from None
        connection.receive_data(data)


async def _next_request(
    connection: h11.Connection,
    reader: asyncio.StreamReader,
    max_body: int,
    idle_timeout: float,
    writer: asyncio.StreamWriter,
) -> SignedRequest | None:
    try:
        event = await _event(connection, reader, idle_timeout)
        if isinstance(event, h11.ConnectionClosed):
            return None
        if not isinstance(event, h11.Request):
            raise _ClosedError
        method, target = event.method.decode("ascii"), event.target.decode("ascii")
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers]
        length = next((v for k, v in headers if k.lower() == "content-length"), "0")
        if not length.isdigit() or int(length) > max_body:
            _refuse(connection, writer, 413, b"request body too large")
            raise _ClosedError
        body = bytearray()
        while True:
            event = await _event(connection, reader, idle_timeout)
            if isinstance(event, h11.Data):
                body += event.data
                if len(body) > max_body:
                    _refuse(connection, writer, 413, b"request body too large")
                    raise _ClosedError
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                raise _ClosedError
    except h11.RemoteProtocolError as error:
        log.info("malformed HTTP request", extra={"fields": {"event": "http_refused"}})
        _refuse(connection, writer, error.error_status_hint, b"malformed HTTP request")
        raise _ClosedError from None
    return SignedRequest(method, target, tuple(headers), bytes(body))


def _send(connection: h11.Connection, writer: asyncio.StreamWriter, response: Response) -> None:
    headers = [
        *response.headers,
        ("content-length", str(len(response.body))),
    ]
    writer.write(connection.send(h11.Response(status_code=response.status, headers=headers)))
    if response.body:
        writer.write(connection.send(h11.Data(data=response.body)))
    writer.write(connection.send(h11.EndOfMessage()))


def _refuse(
    connection: h11.Connection, writer: asyncio.StreamWriter, status: int, message: bytes
) -> None:
    with contextlib.suppress(h11.LocalProtocolError):
        _send(
            connection,
            writer,
            Response(status, message, (("content-type", "text/plain"), ("connection", "close"))),
        )
