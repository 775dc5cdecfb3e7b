"""An attested channel to one node: TLS 1.3 with a client certificate, bound by attestation,
carrying many requests at once.

The client does not trust the node's TLS certificate through any CA. Instead, after the handshake it
sends ``hello{nonce}`` and checks the node's answer, an attestation document:

1. the chain ends at the pinned root and the signature verifies (:class:`NodeTrust` verifier);
2. PCR0/1/2 are, as a whole set, one accepted release's (during a rolling upgrade the profile
   lists the old and the new release; a mix of both is refused), the document is not debug-mode
   and is fresh (max age);
3. it echoes this channel's fresh nonce (no replay of an older answer);
4. its binding (:func:`wire.binding.check_binding`, the same check the enclaves run on each
   other) names the expected node and the SHA-256 of the SubjectPublicKeyInfo of the certificate
   THIS TLS session was established with: a parent or network attacker terminating TLS with its
   own key cannot produce a document binding that key, so a man in the middle is refused.

Any failure closes the connection and raises :class:`~keyshard.client.errors.BindingError` (or
:class:`~keyshard.client.errors.ChannelError` for transport and TLS failures, e.g. a node that
does not list this client's certificate).

Multiplexing: each request gets a fresh id; one reader task matches replies to requests by id, in
any order; at most :data:`MAX_IN_FLIGHT` requests wait at once (more wait for a slot). When the
connection breaks, every waiting request fails with :class:`ChannelError` and the channel reports
itself :attr:`~NodeChannel.broken`, so its owner reconnects instead of reusing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import os
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from attestation.errors import AttestationError
from attestation.policy import AttestationPolicy
from attestation.verifier import AttestationVerifier
from keyshard.client.credentials import ClientCredentials
from keyshard.client.errors import (
    BindingError,
    ChannelError,
    CredentialsError,
    ProtocolError,
    RemoteError,
)
from keyshard.client.profile import ClusterProfile
from transport.errors import FramingError
from transport.framing import FramedStream
from wire.binding import BindingMismatchError, ChannelBinding, check_binding
from wire.errors import MalformedMessageError
from wire.messages import (
    MAX_FRAME,
    MAX_REQUEST_ID,
    REPLIES,
    ErrorReply,
    Hello,
    HelloReply,
    Reply,
    Request,
    decode_reply,
    encode,
)

__all__ = [
    "MAX_IN_FLIGHT",
    "NodeChannel",
    "NodeTrust",
    "check_reply",
    "client_context",
    "verify_document",
]

NONCE_SIZE = 32
#: Requests waiting for their reply on one channel at once (the node serves as many).
MAX_IN_FLIGHT = 64
MEASURED_PCRS = (0, 1, 2)


@dataclass(frozen=True, slots=True)
class NodeTrust:
    """What a client pins: the attestation root (in ``verifier``) and the accepted releases' PCRs.

    ``pcr_sets`` holds one whole {index: value} set per accepted release (at least PCR0/1/2 each).
    """

    verifier: AttestationVerifier
    pcr_sets: tuple[Mapping[int, bytes], ...]
    max_age: dt.timedelta = dt.timedelta(minutes=5)

    def __post_init__(self) -> None:
        if not self.pcr_sets:
            raise ValueError("trust needs at least one accepted release's PCRs")
        if any(i not in pcr_set for pcr_set in self.pcr_sets for i in MEASURED_PCRS):
            raise ValueError("trust needs the released PCR0, PCR1 and PCR2 in every set")
        frozen = tuple(MappingProxyType(dict(pcr_set)) for pcr_set in self.pcr_sets)
        object.__setattr__(self, "pcr_sets", frozen)

    @classmethod
    def from_profile(cls, profile: ClusterProfile) -> NodeTrust:
        return cls(profile.verifier(), profile.expected_pcrs)


def verify_document(
    document: bytes,
    *,
    trust: NodeTrust,
    node_id: str,
    nonce: bytes,
    peer_certificate_der: bytes,
    now: dt.datetime | None = None,
) -> ChannelBinding:
    """Steps 1-4 of the module docstring; raise :class:`BindingError` naming the failed check."""
    at = now or dt.datetime.now(dt.UTC)
    policy = AttestationPolicy(pcr_sets=trust.pcr_sets, nonce=nonce, max_age=trust.max_age)
    try:
        verified = trust.verifier.verify(document, at=at)
        policy.check(verified, now=at)
        return check_binding(
            verified.payload.user_data, node_id=node_id, tls_certificate_der=peer_certificate_der
        )
    except (AttestationError, MalformedMessageError) as error:
        raise BindingError(node_id, f"{type(error).__name__}: {error}") from None
    except BindingMismatchError as error:
        raise BindingError(node_id, error.reason) from None


def client_context(credentials: ClientCredentials) -> ssl.SSLContext:
    """TLS 1.3 only, presenting the client certificate. The server certificate is NOT checked
    against a CA or name: it is checked by :func:`verify_document` right after the handshake."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.maximum_version = ssl.TLSVersion.TLSv1_3
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        context.load_cert_chain(credentials.cert_path, credentials.key_path)
    except (OSError, ssl.SSLError) as error:
        raise CredentialsError(f"cannot load client credentials: {error}") from None
    return context


def check_reply(node_id: str, request: Request, reply: Reply) -> Reply:
    """``reply`` if it answers ``request`` as the wire table allows; :class:`RemoteError` for an
    ``error`` reply, :class:`ProtocolError` for any other type."""
    if isinstance(reply, ErrorReply):
        raise RemoteError(node_id, reply.code, reply.message)
    if not isinstance(reply, REPLIES[type(request)]):
        raise ProtocolError(f"{node_id} answered {request.OP} with {reply.OP}", culprit=node_id)
    return reply


_STREAM_FAILURES = (FramingError, OSError, ssl.SSLError, MalformedMessageError, EOFError)


class NodeChannel:
    """One verified connection to one node; :meth:`request` may be called concurrently."""

    def __init__(
        self, node_id: str, stream: FramedStream, document: bytes, binding: ChannelBinding
    ) -> None:
        self.node_id = node_id
        self.document = document
        self.binding = binding
        self.opened_at = time.monotonic()
        self._stream = stream
        self._ids = itertools.count(0)
        self._waiting: dict[int, asyncio.Future[Reply]] = {}
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._write = asyncio.Lock()
        self._failure: ChannelError | None = None
        self._retiring = False
        self._reader = asyncio.get_running_loop().create_task(self._read_replies())

    @property
    def broken(self) -> bool:
        """True once the connection failed or was closed: open a new channel instead."""
        return self._failure is not None

    @property
    def in_flight(self) -> int:
        return len(self._waiting)

    @classmethod
    async def open(
        cls,
        node_id: str,
        host: str,
        port: int,
        *,
        trust: NodeTrust,
        credentials: ClientCredentials,
        timeout: float = 30.0,
        nonce: bytes | None = None,
        context: ssl.SSLContext | None = None,
    ) -> NodeChannel:
        nonce = os.urandom(NONCE_SIZE) if nonce is None else nonce
        context = context or client_context(credentials)
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=context, server_hostname=""), timeout
            )
        except (OSError, ssl.SSLError, TimeoutError) as error:
            raise ChannelError(node_id, f"cannot connect: {type(error).__name__}") from None
        stream = FramedStream(reader, writer, MAX_FRAME)
        try:
            ssl_object = writer.get_extra_info("ssl_object")
            peer = None if ssl_object is None else ssl_object.getpeercert(binary_form=True)
            if not peer:
                raise ChannelError(node_id, "the node presented no TLS certificate")
            try:
                await asyncio.wait_for(stream.send(encode(Hello(nonce), 0)), timeout)
                _, reply = decode_reply(await asyncio.wait_for(stream.recv(), timeout))
            except (*_STREAM_FAILURES, TimeoutError) as error:
                raise ChannelError(
                    node_id, f"channel refused before hello was answered: {type(error).__name__}"
                ) from None
            if isinstance(reply, ErrorReply):
                raise RemoteError(node_id, reply.code, reply.message)
            if not isinstance(reply, HelloReply):
                raise ChannelError(node_id, f"unexpected answer to hello: {reply.OP}")
            binding = verify_document(
                reply.document,
                trust=trust,
                node_id=node_id,
                nonce=nonce,
                peer_certificate_der=peer,
            )
        except BaseException:
            with contextlib.suppress(Exception):
                await stream.close()
            raise
        return cls(node_id, stream, reply.document, binding)

    async def _read_replies(self) -> None:
        try:
            while True:
                request_id, reply = decode_reply(await self._stream.recv())
                waiter = self._waiting.pop(request_id, None)
                if waiter is None:
                    raise ChannelError(self.node_id, "a reply to no pending request")
                if not waiter.done():
                    waiter.set_result(reply)
                if self._retiring and not self._waiting:
                    raise ChannelError(self.node_id, "channel retired")
        except ChannelError as error:
            self._fail(error)
            if self._retiring:
                with contextlib.suppress(Exception):
                    await self._stream.close()
        except _STREAM_FAILURES as error:
            self._fail(ChannelError(self.node_id, f"channel broken: {type(error).__name__}"))
        except asyncio.CancelledError:
            self._fail(ChannelError(self.node_id, "channel closed"))
            raise

    def _fail(self, error: ChannelError) -> None:
        if self._failure is None:
            self._failure = error
        for waiter in self._waiting.values():
            if not waiter.done():
                waiter.set_exception(error)
        self._waiting.clear()

    async def request(self, message: Request, *, timeout: float = 60.0) -> Reply:
        """Send one request and await its reply (raising :class:`RemoteError` for an ``error``
        reply, :class:`ProtocolError` for a reply of the wrong type)."""
        async with self._slots:
            if self._failure is not None:
                raise self._failure
            if self._retiring:
                raise ChannelError(self.node_id, "channel retired")
            if self._stream.writer.is_closing():  # the node closed it; the reader may lag
                self._fail(ChannelError(self.node_id, "channel closed by the node"))
                raise self._failure  # type: ignore[misc]
            request_id = next(self._ids) % MAX_REQUEST_ID + 1  # 1..MAX; 0 is hello's
            waiter: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
            self._waiting[request_id] = waiter
            try:
                async with self._write:
                    await self._stream.send(encode(message, request_id))
                reply = await asyncio.wait_for(asyncio.shield(waiter), timeout)
            except (*_STREAM_FAILURES, AttributeError) as error:
                # AttributeError: CPython 3.11's SSL transport once the peer has gone
                self._waiting.pop(request_id, None)
                self._fail(ChannelError(self.node_id, f"channel broken: {type(error).__name__}"))
                raise self._failure from None  # type: ignore[misc]
            except TimeoutError:
                self._waiting.pop(request_id, None)
                raise ChannelError(
                    self.node_id, f"no answer to {message.OP} in {timeout} s"
                ) from None
        return check_reply(self.node_id, message, reply)

    async def retire(self) -> None:
        """Take no new requests; close once the ones in flight are answered (a newer channel
        replaces this one, e.g. because its attestation document grew old)."""
        self._retiring = True
        if not self._waiting:
            await self.close()

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader
        with contextlib.suppress(Exception):
            await self._stream.close()
