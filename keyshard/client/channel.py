"""An attested channel to one node: TLS 1.3 with a client certificate, bound by attestation.

The client does not trust the node's TLS certificate through any CA. Instead, after the handshake it
sends ``Hello{nonce}`` and checks the node's answer, an attestation document:

1. the chain ends at the pinned root and the signature verifies (:class:`NodeTrust` verifier);
2. PCR0/1/2 are, as a whole set, one accepted release's (during a rolling upgrade the profile lists
   the old and the new release; a mix of both is refused), the document is not debug-mode and is fresh (max age);
3. it echoes this channel's fresh nonce (no replay of an older answer);
4. its ``user_data`` binding names the expected node and ``tls_spki_sha256`` equals the SHA-256 of
   the SubjectPublicKeyInfo of the certificate THIS TLS session was established with
   (``getpeercert(binary_form=True)``): a parent or network attacker terminating TLS with its own
   key cannot produce a document binding that key, so a man in the middle is refused.

Any failure closes the connection and raises :class:`~keyshard.client.errors.BindingError` (or
:class:`~keyshard.client.errors.ChannelError` for transport and TLS failures, e.g. a node that
does not list this client's certificate).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hmac
import os
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from attestation.errors import AttestationError
from attestation.policy import AttestationPolicy
from attestation.verifier import AttestationVerifier
from enclave.service.binding import MEASURED_PCRS, ChannelBinding, spki_sha256
from enclave.service.errors import ServiceError
from enclave.service.messages import (
    MAX_FRAME,
    ErrorReply,
    Hello,
    HelloReply,
    Message,
    decode,
    encode,
)
from keyshard.client.credentials import ClientCredentials
from keyshard.client.errors import BindingError, ChannelError, RemoteError
from keyshard.dev.profile import ClusterProfile
from transport.errors import FramingError
from transport.framing import FramedStream

__all__ = ["NodeChannel", "NodeTrust", "client_context", "verify_binding"]

NONCE_SIZE = 32


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


def verify_binding(
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
        binding = ChannelBinding.decode(verified.payload.user_data)
    except (AttestationError, ServiceError) as error:
        raise BindingError(node_id, f"{type(error).__name__}: {error}") from None
    if binding.node_id != node_id:
        raise BindingError(node_id, f"the document names node {binding.node_id!r}")
    try:
        actual = spki_sha256(peer_certificate_der)
    except ValueError:
        raise BindingError(node_id, "the TLS peer certificate is malformed") from None
    if not hmac.compare_digest(actual, binding.tls_spki_sha256):
        raise BindingError(node_id, "the document binds another TLS key than this session's")
    return binding


def client_context(credentials: ClientCredentials) -> ssl.SSLContext:
    """TLS 1.3 only, presenting the client certificate. The server certificate is NOT checked
    against a CA or name: it is checked by :func:`verify_binding` right after the handshake."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.maximum_version = ssl.TLSVersion.TLSv1_3
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        context.load_cert_chain(credentials.cert_path, credentials.key_path)
    except (OSError, ssl.SSLError) as error:
        raise ChannelError("client", f"cannot load client credentials: {error}") from None
    return context


class NodeChannel:
    """One verified connection to one node; :meth:`request` sends one message, returns the reply."""

    def __init__(
        self, node_id: str, stream: FramedStream, document: bytes, binding: ChannelBinding
    ) -> None:
        self.node_id = node_id
        self.document = document
        self.binding = binding
        self._stream = stream
        self._lock = asyncio.Lock()
        self.opened_at = time.monotonic()

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
    ) -> NodeChannel:
        nonce = os.urandom(NONCE_SIZE) if nonce is None else nonce
        context = client_context(credentials)
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
                await asyncio.wait_for(stream.send(encode(Hello(nonce))), timeout)
                reply = decode(await asyncio.wait_for(stream.recv(), timeout))
            except (FramingError, OSError, ssl.SSLError, TimeoutError, ServiceError) as error:
                raise ChannelError(
                    node_id, f"channel refused before hello was answered: {type(error).__name__}"
                ) from None
            if not isinstance(reply, HelloReply):
                raise ChannelError(node_id, f"unexpected answer to hello: {reply.OP}")
            binding = verify_binding(
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

    async def request(self, message: Message, *, timeout: float = 60.0) -> Message:
        """Send one request; return the reply, raising :class:`RemoteError` for an ``error``."""
        async with self._lock:
            try:
                await self._stream.send(encode(message))
                reply = decode(await asyncio.wait_for(self._stream.recv(), timeout))
            except (FramingError, OSError, ssl.SSLError, TimeoutError, ServiceError) as error:
                raise ChannelError(
                    self.node_id, f"channel broken: {type(error).__name__}"
                ) from None
        if isinstance(reply, ErrorReply):
            raise RemoteError(self.node_id, reply.code, reply.message)
        return reply

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._stream.close()
