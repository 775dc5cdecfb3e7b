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

Anyone who can reach the port (through the parent) may open connections, so what an
unauthenticated one costs is bounded (:class:`ConnectionLimits`). A connection is *silent* from
accept to its first byte: it costs a socket and a wait for readability — TLS starts only once the
peer speaks, because ``start_tls`` allocates ~300 KB of buffers per connection (1,000 silent
connections used to hold ~300 MB). It is in *handshake* from its first byte until its ``hello`` is
read (TLS authenticates the client's certificate on the way), then *open*. Silent and handshake
phases have deadlines; the listener holds at most ``max_connections`` (a newcomer evicts the
oldest silent connection, else the oldest in handshake, else the oldest idle open one; with none,
it is refused) and at most ``max_handshakes`` in handshake (the oldest is evicted). So a flood of
silent or slow connections only ever evicts its own kind, and a legitimate client, which sends its
ClientHello at once and finishes in milliseconds, gets through during the flood.

Every way a connection ends is one log line with its ``event``, the ``phase`` it was in and, for
errors, the error's type: ``INFO`` for anything a peer can cause (``tls_refused``,
``connection_error``, ``connection_timeout``, ``connection_evicted``, ``connection_refused``),
``DEBUG`` for a clean close, ``ERROR`` only for a failure of the node's own code. A connection's
task never ends with an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import logging
import os
import socket
import ssl
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from attestation.errors import AttestationError
from enclave.errors import EnclaveError
from enclave.service.errors import ServiceError, UnexpectedMessageError
from enclave.service.handlers import NodeService, error_reply
from transport.errors import FramingError, StreamClosedError
from transport.framing import FramedStream
from wire.errors import MalformedMessageError, WireError
from wire.messages import MAX_FRAME, SERVICE_PORT, Hello, Reply, Request, decode_request, encode

__all__ = [
    "MAX_IN_FLIGHT",
    "SERVICE_PORT",
    "ConnectionLimits",
    "ListenerStats",
    "ServiceListener",
]

log = logging.getLogger("enclave.service")

#: Requests served at once on one connection.
MAX_IN_FLIGHT = 64
#: Failures a peer can cause (``ssl.SSLError`` and resets are ``OSError``s): one INFO line each.
_PEER_FAILURES = (FramingError, MalformedMessageError, OSError, EOFError)
#: Refusals of a ``hello`` (the node's attestation failed): answered, then the connection ends.
_HELLO_REFUSALS = (AttestationError, EnclaveError, ServiceError, WireError)
_MESSAGES = {
    "tls_refused": "handshake refused",
    "connection_error": "connection closed",
    "connection_timeout": "connection deadline missed",
    "connection_evicted": "connection evicted",
    "connection_refused": "connection refused",
    "connection_closed": "connection ended",
}


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """What one listener holds, and how long a connection may stay unauthenticated.

    The deadlines are generous for a client that is what it claims (it sends its ClientHello at
    once, and TLS and ``hello`` take a few round trips) and short for one that is not. An open
    (authenticated) channel has no deadline: clients keep idle channels for later requests.
    """

    max_connections: int = 512
    """Connections held at once, in any phase (each costs a socket at least)."""
    max_handshakes: int = 32
    """Connections in handshake at once (each holds TLS buffers, ~300 KB)."""
    first_byte_timeout: float = 5.0
    """Seconds from accept to the peer's first byte."""
    handshake_timeout: float = 5.0
    """Seconds from the first byte to a read ``hello``: the TLS handshake and the request."""

    def __post_init__(self) -> None:
        if not 1 <= self.max_handshakes <= self.max_connections:
            raise ValueError("limits need 1 <= max_handshakes <= max_connections")
        if self.first_byte_timeout <= 0 or self.handshake_timeout <= 0:
            raise ValueError("deadlines must be positive")


@dataclass(slots=True)
class ListenerStats:
    """Connections held now, by phase, and counters since the listener started (public)."""

    silent: int = 0
    handshake: int = 0
    open: int = 0
    evicted: int = 0
    refused: int = 0
    timed_out: int = 0


class _Phase(enum.Enum):
    SILENT = "silent"  # accepted, no byte yet
    HANDSHAKE = "handshake"  # TLS and hello under way
    OPEN = "open"  # hello answered: an authenticated channel


@dataclass(eq=False, slots=True)
class _Held:
    """One connection as its listener holds it."""

    raw: asyncio.Transport
    phase: _Phase = _Phase.SILENT
    task: asyncio.Task[None] | None = None
    tls: asyncio.Transport | None = None
    in_flight: int = 0
    evicted: bool = False


class ServiceListener:
    """Accepts TLS connections for one :class:`NodeService` and keeps every one of them alive."""

    def __init__(
        self,
        service: NodeService,
        authorized_clients: Sequence[bytes],
        limits: ConnectionLimits | None = None,
    ) -> None:
        self.service = service
        self.limits = limits or ConnectionLimits()
        self.stats = ListenerStats()
        self._context = service.identity.server_context(authorized_clients)
        self._tasks: set[asyncio.Task[None]] = set()
        self._held: dict[_Held, None] = {}  # oldest first

    @property
    def connections(self) -> int:
        """Connections currently held, in any phase."""
        return len(self._held)

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

    def admit(self, raw: asyncio.Transport) -> None:
        """Hold an accepted connection (reading paused) and serve it, evicting to make room."""
        if len(self._held) >= self.limits.max_connections:
            victim = self._oldest(_Phase.SILENT, _Phase.HANDSHAKE, _Phase.OPEN)
            if victim is None:  # every connection is open and busy
                self.stats.refused += 1
                _log("connection_refused", None, None)
                raw.abort()
                return
            self._evict(victim)
        held = _Held(raw)
        self._held[held] = None
        self.stats.silent += 1
        held.task = self.spawn(self._serve(held))

    def _oldest(self, *phases: _Phase) -> _Held | None:
        """The oldest connection in the first of ``phases`` that has one (open: idle only)."""
        for phase in phases:
            for held in self._held:
                if held.phase is phase and not held.in_flight:
                    return held
        return None

    def _evict(self, held: _Held) -> None:
        self._forget(held)
        held.evicted = True
        self.stats.evicted += 1
        if held.task is not None:
            held.task.cancel()

    def _forget(self, held: _Held) -> None:
        if held in self._held:
            del self._held[held]
            _count(self.stats, held.phase, -1)

    def _enter(self, held: _Held, phase: _Phase) -> None:
        if held not in self._held:
            return
        _count(self.stats, held.phase, -1)
        held.phase = phase
        _count(self.stats, phase, +1)
        if phase is _Phase.HANDSHAKE and self.stats.handshake > self.limits.max_handshakes:
            oldest = self._oldest(_Phase.HANDSHAKE)
            if oldest is not None:
                self._evict(oldest)

    async def _serve(self, held: _Held) -> None:
        """One connection from accept to end; it ends in exactly one log line, never raising."""
        stream: FramedStream | None = None
        graceful = False
        try:
            async with asyncio.timeout(self.limits.first_byte_timeout):
                await _first_byte(held.raw)
            self._enter(held, _Phase.HANDSHAKE)
            async with asyncio.timeout(self.limits.handshake_timeout):
                stream = await self._start_tls(held)
                graceful = True
                request_id, first = decode_request(await stream.recv())
            await self._hello(held, stream, request_id, first)
            await _Connection(self, held, stream, _client_id(stream)).run()
            _log("connection_closed", held, None, level=logging.DEBUG)
        except asyncio.CancelledError:
            if not held.evicted:
                raise  # the listener is closing
            task = asyncio.current_task()
            assert task is not None  # this coroutine runs as a task
            task.uncancel()  # the eviction's cancel ends here, by design
            graceful = False
            _log("connection_evicted", held, None)
        except TimeoutError:
            graceful = False
            self.stats.timed_out += 1
            _log("connection_timeout", held, None)
        except (*_PEER_FAILURES, UnexpectedMessageError, *_HELLO_REFUSALS) as error:
            event = "tls_refused" if stream is None and held.phase is _Phase.HANDSHAKE else None
            _log(event or "connection_error", held, error)
        except Exception as error:  # process boundary of one connection: the type only
            graceful = False
            log.error(
                "connection failed",
                extra={"fields": {"event": "connection_failed", "error": type(error).__name__}},
            )
        finally:
            self._forget(held)
            await self._end(held, stream if graceful else None)

    async def _start_tls(self, held: _Held) -> FramedStream:
        """Upgrade the accepted connection (reading paused since accept) to TLS.

        Reading must stay paused until then: bytes of the client's ClientHello read into a plain
        stream before the upgrade would be lost to the TLS layer.
        """
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=MAX_FRAME + 4)
        protocol = asyncio.StreamReaderProtocol(reader)
        tls = await loop.start_tls(
            held.raw,
            protocol,
            self._context,
            server_side=True,
            ssl_handshake_timeout=self.limits.handshake_timeout,
        )
        if tls is None:  # pragma: no cover -- the peer vanished during the handshake
            raise ConnectionResetError("the peer left during the TLS handshake")
        held.tls = tls
        protocol.connection_made(tls)
        return FramedStream(reader, asyncio.StreamWriter(tls, protocol, reader, loop), MAX_FRAME)

    async def _hello(
        self, held: _Held, stream: FramedStream, request_id: int, first: Request
    ) -> None:
        """Answer the first request, which must be ``hello``; a refusal is answered, then raised.

        The connection is open (authenticated: TLS verified a listed client certificate) from
        here, and busy while its document is made, so no flood of handshakes can evict it.
        """
        try:
            if not isinstance(first, Hello):
                raise UnexpectedMessageError("the first request must be hello")
            self._enter(held, _Phase.OPEN)
            held.in_flight += 1
            try:
                reply: Reply = await self.service.hello(first)
            finally:
                held.in_flight -= 1
        except _HELLO_REFUSALS as error:
            await stream.send(encode(error_reply(first, error), request_id))
            raise
        await stream.send(encode(reply, request_id))

    async def _end(self, held: _Held, stream: FramedStream | None) -> None:
        """Release the connection: a clean TLS close when there may be replies to deliver
        (bounded), an abort otherwise; either way its buffers go with it."""
        try:
            if stream is not None:
                with contextlib.suppress(OSError, TimeoutError):
                    async with asyncio.timeout(self.limits.handshake_timeout):
                        await stream.close()
        finally:
            for transport in (held.tls, held.raw):
                if transport is not None:
                    transport.abort()


def _count(stats: ListenerStats, phase: _Phase, step: int) -> None:
    setattr(stats, phase.value, getattr(stats, phase.value) + step)


def _log(
    event: str, held: _Held | None, error: BaseException | None, *, level: int = logging.INFO
) -> None:
    fields: dict[str, object] = {"event": event, "listener": "service"}
    if held is not None:
        fields["phase"] = held.phase.value
    if error is not None:
        fields["error"] = type(error).__name__
    log.log(level, _MESSAGES[event], extra={"fields": fields})


async def _first_byte(raw: asyncio.BaseTransport) -> None:
    """Return once the peer has sent something, without reading it (TLS must see every byte).

    The transport's own reading is paused, so readability is watched on a duplicate of its
    socket, which also peeks at the first byte to tell data from an end of stream: a peer that
    closes first raises :class:`StreamClosedError`, a reset ``OSError``.
    """
    sock = raw.get_extra_info("socket")
    if sock is None:  # pragma: no cover -- every transport a listener accepts is a socket
        return
    loop = asyncio.get_running_loop()
    with socket.socket(fileno=os.dup(sock.fileno())) as probe:
        readable: asyncio.Future[None] = loop.create_future()
        loop.add_reader(probe.fileno(), _settle, readable)
        try:
            await readable
        finally:
            loop.remove_reader(probe.fileno())
        try:
            if not probe.recv(1, socket.MSG_PEEK):
                raise StreamClosedError
        except BlockingIOError:  # pragma: no cover -- readable, yet nothing: TLS will wait
            pass


def _client_id(stream: FramedStream) -> bytes:
    """The authenticated client: SHA-256 of the certificate it presented (TLS required one
    listed in the measured image, so this names one authorised client)."""
    ssl_object = stream.writer.get_extra_info("ssl_object")
    certificate = None if ssl_object is None else ssl_object.getpeercert(binary_form=True)
    return hashlib.sha256(certificate or b"").digest()


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _Connection:
    """One authenticated connection: reads requests, answers each in its own task."""

    def __init__(
        self, listener: ServiceListener, held: _Held, stream: FramedStream, client: bytes
    ) -> None:
        self._listener = listener
        self._client = client
        self._service = listener.service
        self._held = held
        self._stream = stream
        self._write = asyncio.Lock()
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)

    async def _send(self, request_id: int, reply: Reply) -> None:
        async with self._write:
            await self._stream.send(encode(reply, request_id))

    async def run(self) -> None:
        """Serve requests until the peer closes at a frame boundary; a peer's failure raises.

        Requests already running when the connection ends finish (their replies are dropped):
        cancelling one mid-way could leave a half-done step, e.g. a key sealed without its
        manifest.
        """
        while True:
            try:
                payload = await self._stream.recv()
            except StreamClosedError:
                return
            request_id, request = decode_request(payload)  # malformed: raises, ends the connection
            await self._slots.acquire()
            self._held.in_flight += 1
            self._listener.spawn(self._answer(request_id, request))

    async def _answer(self, request_id: int, request: Request) -> None:
        try:
            if isinstance(request, Hello):
                reply: Reply = error_reply(request, UnexpectedMessageError("hello comes once"))
            else:
                reply = await self._service.answer(request, self._client)
            with contextlib.suppress(ConnectionError, ssl.SSLError, OSError, FramingError):
                await self._send(request_id, reply)
        finally:
            self._held.in_flight -= 1
            self._slots.release()


class _TlsAcceptor(asyncio.Protocol):
    """Pauses reading at accept and hands the raw transport to :meth:`ServiceListener.admit`,
    whose task the listener holds."""

    def __init__(self, listener: ServiceListener) -> None:
        self._listener = listener

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # stream sockets only
        transport.pause_reading()
        self._listener.admit(transport)
