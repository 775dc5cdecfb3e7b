"""An in-process cluster: real NodeService objects (real emulated NSMs, real sealed stores with
blobs in a dict, as the parent keeps them) reached through :class:`MemoryLink`, which runs every
request and reply through the wire codec exactly as a TLS channel does — so the real client
:class:`~keyshard.client.coordinator.Coordinator` drives real nodes in milliseconds.

A test can break a link (:meth:`MemoryLink.break_`), restart a node (:meth:`InProcessCluster.
restart`: a new boot, new keys, same sealed blobs), stop one (connecting raises ChannelError),
or make a node misbehave by wrapping its service.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import time
from collections.abc import Awaitable, Callable, Sequence

from attestation.emulated_ca import EmulatedCa
from attestation.nsm.emulated import EmulatedNsm
from attestation.roots import TrustedRoots
from attestation.verifier import AttestationVerifier
from enclave.node_state import STATE_BLOB, NodeIdentity
from enclave.sealing import SealedStore, Sealer
from enclave.secretbytes import SecretBytes
from enclave.service.binding import PeerVerifier
from enclave.service.handlers import NodeService
from enclave.service.identity import ServiceIdentity
from keyshard.client.channel import NodeTrust, check_reply, verify_document
from keyshard.client.coordinator import Coordinator, Link
from keyshard.client.errors import ChannelError
from tests.support.blobs import DictHost
from wire.binding import ChannelBinding
from wire.messages import Hello, HelloReply, Reply, Request, decode_reply, decode_request, encode


def pcrs(tag: bytes) -> dict[int, bytes]:
    return {i: hashlib.sha384(tag + bytes([i])).digest() for i in range(16)}


RELEASED = pcrs(b"released image")

#: Replaces a node's answer to a request (for misbehaving-node tests): (request, honest) -> reply.
Tamper = Callable[[Request, Reply], Reply]


class MemoryLink:
    """A Link whose bytes never leave the process; see the module docstring."""

    def __init__(
        self,
        node_id: str,
        service: NodeService,
        document: bytes,
        binding: ChannelBinding,
        tamper: Tamper | None = None,
    ) -> None:
        self.node_id, self.document, self.binding = node_id, document, binding
        self.opened_at = time.monotonic()
        self.requests: list[Request] = []
        self._service = service
        self._tamper = tamper
        self._broken = False

    @property
    def broken(self) -> bool:
        return self._broken

    def break_(self) -> None:
        self._broken = True

    async def request(self, message: Request, *, timeout: float = 60.0) -> Reply:
        if self._broken:
            raise ChannelError(self.node_id, "channel broken: ConnectionResetError")
        _, request = decode_request(encode(message, 7))
        self.requests.append(request)
        reply = await self._service.answer(request)
        if self._tamper is not None:
            reply = self._tamper(request, reply)
        _, decoded = decode_reply(encode(reply, 7))
        return check_reply(self.node_id, message, decoded)

    async def retire(self) -> None:
        self._broken = True

    async def close(self) -> None:
        self._broken = True


class InProcessCluster:
    def __init__(
        self,
        node_ids: Sequence[str] = ("node-1", "node-2", "node-3"),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock  # every node's enclave clock (UTC seconds)
        self.ca = EmulatedCa.ephemeral()
        self.verifier = AttestationVerifier(TrustedRoots.of([self.ca.root_certificate]))
        self.trust = NodeTrust(self.verifier, (RELEASED,))
        self.hosts = {node_id: DictHost() for node_id in node_ids}
        self.data_keys = {node_id: SecretBytes(os.urandom(32)) for node_id in node_ids}
        self.services: dict[str, NodeService] = {}
        self.stopped: set[str] = set()
        self.tamper: dict[str, Tamper] = {}
        self.links: list[MemoryLink] = []
        for node_id in node_ids:
            self.services[node_id] = asyncio.run(self._boot(node_id))

    async def _boot(self, node_id: str) -> NodeService:
        store = SealedStore(Sealer(self.data_keys[node_id], node_id), self.hosts[node_id])
        await store.load()
        # as the enclave's boot does: the sealed identity, or a new one on a (seemingly) first boot
        sealed = await store.get(STATE_BLOB)
        if sealed is None:
            identity = NodeIdentity.generate()
            await store.put(STATE_BLOB, identity.encode())
        else:
            identity = NodeIdentity.decode(sealed)
        return NodeService(
            identity=ServiceIdentity.generate(node_id, dt.datetime.now(dt.UTC), identity),
            nsm=EmulatedNsm(self.ca, RELEASED),
            store=store,
            peers=PeerVerifier(
                self.verifier, RELEASED, dt.timedelta(minutes=5), lambda: dt.datetime.now(dt.UTC)
            ),
            cluster_size=len(self.hosts),
            clock=self.clock,
        )

    async def restart(self, node_id: str) -> None:
        """A new boot of ``node_id``: fresh identity and memory, the same sealed blobs."""
        self.services[node_id] = await self._boot(node_id)

    async def connect(self, node_id: str) -> Link:
        if node_id in self.stopped:
            raise ChannelError(node_id, "cannot connect: ConnectionRefusedError")
        service = self.services[node_id]
        nonce = os.urandom(32)
        reply = await service.hello(Hello(nonce))
        assert isinstance(reply, HelloReply)
        binding = verify_document(
            reply.document,
            trust=self.trust,
            node_id=node_id,
            nonce=nonce,
            peer_certificate_der=service.identity.certificate_der,
        )
        link = MemoryLink(node_id, service, reply.document, binding, self.tamper.get(node_id))
        self.links.append(link)
        return link

    def coordinator(self) -> Coordinator:
        return Coordinator(self.services, self.connect)


def run(work: Callable[[], Awaitable[object]]) -> object:
    return asyncio.run(work())  # type: ignore[arg-type]
