"""The node service's connections: TLS 1.3 with client certificates, then multiplexed requests.

One connection: accept on the transport (the parent forwards TCP to vsock port
:data:`SERVICE_PORT`, seeing only TLS records), ``start_tls`` with the pinned-client context (an
unlisted client fails the handshake), then the client's first request must be ``hello``; the
answer is a fresh NSM document echoing its nonce and binding this boot's TLS key and box key
(:mod:`wire.binding`). After that the connection carries any number of requests, each answered
by exactly one reply carrying the request's id (:mod:`wire.messages`). Requests run concurrently,
at most :data:`MAX_IN_FLIGHT` per connection — past that the connection stops reading until one
finishes (backpressure, not refusal) — and replies go out as they finish, in any order. A refused
request gets an ``error`` reply with its wire code; a malformed frame closes the connection.

Every connection task is held by the listener until it ends: asyncio keeps only weak references
to tasks, and a task nothing else holds — an idle authenticated channel waiting to read — would
be garbage-collected mid-flight, silently dropping the channel. This module is the only part of
the node service that reads or writes bytes; what a request means is
:mod:`enclave.service.handlers`'s business.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Coroutine, Sequence
from typing import Any

from enclave.service.errors import UnexpectedMessageError
from enclave.service.handlers import NodeService, error_reply
from transport.errors import FramingError, StreamClosedError
from transport.framing import FramedStream
from wire.errors import MalformedMessageError
from wire.messages import MAX_FRAME, SERVICE_PORT, Hello, Reply, Request, decode_request, encode

__all__ = ["MAX_IN_FLIGHT", "SERVICE_PORT", "ServiceListener"]

log = logging.getLogger("enclave.service")

HANDSHAKE_TIMEOUT = 10.0
#: Requests served at once on one connection.
MAX_IN_FLIGHT = 64


class ServiceListener:
    """Accepts TLS connections for one :class:`NodeService` and keeps every one of them alive."""

    def __init__(self, service: NodeService, authorized_clients: Sequence[bytes]) -> None:
        self.service = service
        self._context = service.identity.server_context(authorized_clients)
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def connections(self) -> int:
        """Connections (and their in-flight requests) currently held."""
        return len(self._tasks)

    def protocol(self) -> asyncio.Protocol:
        """A protocol factory for ``Transport.listen_protocol``: one per accepted connection."""
        return _TlsAcceptor(self)

    def spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``work`` as a task this listener holds until it ends."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        """Cancel every connection (used at shutdown and by tests)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def accept(self, raw: asyncio.BaseTransport) -> None:
        """Upgrade an accepted connection (reading paused since accept) to TLS, then serve it.

        Reading must stay paused from the moment of accept: bytes of the client's ClientHello
        read into a plain stream before the upgrade would be lost to the TLS layer.
        """
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=MAX_FRAME + 4)
        protocol = asyncio.StreamReaderProtocol(reader)
        try:
            tls = await loop.start_tls(
                raw,  # type: ignore[arg-type]
                protocol,
                self._context,
                server_side=True,
                ssl_handshake_timeout=HANDSHAKE_TIMEOUT,
            )
        except (ssl.SSLError, OSError, TimeoutError, EOFError) as error:
            log.info(
                "handshake refused",
                extra={"fields": {"event": "tls_refused", "error": type(error).__name__}},
            )
            raw.close()
            return
        except Exception as error:  # process boundary of one connection: the type only
            log.error(
                "handshake failed",
                extra={"fields": {"event": "tls_failed", "error": type(error).__name__}},
            )
            raw.close()
            return
        if tls is None:  # pragma: no cover -- the peer vanished during the handshake
            raw.close()
            return
        protocol.connection_made(tls)
        await self.serve(reader, asyncio.StreamWriter(tls, protocol, reader, loop))

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve requests on an established TLS connection (``hello`` first)."""
        await _Connection(self, FramedStream(reader, writer, MAX_FRAME)).run()


class _Connection:
    """One authenticated connection: reads requests, answers each in its own task."""

    def __init__(self, listener: ServiceListener, stream: FramedStream) -> None:
        self._listener = listener
        self._service = listener.service
        self._stream = stream
        self._write = asyncio.Lock()
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)

    async def _send(self, request_id: int, reply: Reply) -> None:
        async with self._write:
            await self._stream.send(encode(reply, request_id))

    async def run(self) -> None:
        try:
            request_id, first = decode_request(await self._stream.recv())
            if not isinstance(first, Hello):
                error = UnexpectedMessageError("the first request must be hello")
                await self._send(request_id, error_reply(first, error))
                return
            await self._send(request_id, await self._service.hello(first))
            while True:
                try:
                    payload = await self._stream.recv()
                except StreamClosedError:
                    return
                request_id, request = decode_request(payload)  # malformed: closes
                await self._slots.acquire()
                self._listener.spawn(self._answer(request_id, request))
        except (FramingError, ConnectionError, ssl.SSLError, MalformedMessageError) as error:
            log.info(
                "connection closed",
                extra={"fields": {"event": "connection_error", "error": type(error).__name__}},
            )
        finally:
            # Requests already running finish (their replies are dropped): cancelling one
            # mid-way could leave a half-done step, e.g. a key sealed without its manifest.
            with contextlib.suppress(ConnectionError, ssl.SSLError, OSError):
                await self._stream.close()

    async def _answer(self, request_id: int, request: Request) -> None:
        try:
            if isinstance(request, Hello):
                reply: Reply = error_reply(request, UnexpectedMessageError("hello comes once"))
            else:
                reply = await self._service.answer(request)
            with contextlib.suppress(ConnectionError, ssl.SSLError, OSError, FramingError):
                await self._send(request_id, reply)
        finally:
            self._slots.release()


class _TlsAcceptor(asyncio.Protocol):
    """Pauses reading at accept and hands the raw transport to :meth:`ServiceListener.accept`,
    whose task the listener holds."""

    def __init__(self, listener: ServiceListener) -> None:
        self._listener = listener

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.pause_reading()  # type: ignore[attr-defined]
        self._listener.spawn(self._listener.accept(transport))
