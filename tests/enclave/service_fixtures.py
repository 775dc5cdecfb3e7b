"""Shared pieces for the node-service tests: emulated NSMs issuing real documents, and an
in-process cluster of real :class:`~enclave.service.handlers.NodeService` objects.

Documents come from the real emulated NSM (signed by an ephemeral emulated root), so every check
runs the real verifier. Each node seals its state with the real :class:`SealedStore` into a
:class:`DictHost` (the blobs the parent keeps, in a dict). The test plays the untrusted client:
it relays envelopes between nodes and may tamper with anything it relays. Nothing is mocked.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from nacl.public import PrivateKey

from attestation.emulated_ca import EmulatedCa
from attestation.nsm.client import NsmClient
from attestation.nsm.emulated import EmulatedNsm
from attestation.roots import TrustedRoots
from attestation.verifier import AttestationVerifier
from enclave.mpc.errors import MpcError
from enclave.mpc.keys import PublicKeyPackage
from enclave.node_state import STATE_BLOB, NodeIdentity
from enclave.sealing import SealedStore, Sealer
from enclave.secretbytes import SecretBytes
from enclave.service.binding import PeerVerifier
from enclave.service.errors import ServiceError
from enclave.service.handlers import NodeService
from enclave.service.identity import ServiceIdentity
from tests.support.blobs import DictHost
from wire.binding import ChannelBinding
from wire.messages import (
    DkgOutbox,
    DkgStep,
    ErrorReply,
    KeyCommit,
    KeyCommitted,
    KeyCreate,
    KeyCreated,
    Reply,
    Request,
    SignedState,
    StateQuery,
    WitnessCheck,
    WitnessEnvelope,
    WitnessQuery,
    WitnessRecord,
    WitnessRecorded,
)

NODES = ("node-1", "node-2", "node-3")


def pcrs(tag: bytes) -> dict[int, bytes]:
    """Boot PCR0..15 derived from ``tag`` (a different tag: a different image)."""
    return {i: hashlib.sha384(tag + bytes([i])).digest() for i in range(16)}


RELEASED = pcrs(b"released image")
OTHER = pcrs(b"another image")


@dataclass
class Node:
    """One emulated enclave boot: its NSM and its per-boot service identity."""

    node_id: str
    nsm: NsmClient
    identity: ServiceIdentity

    @property
    def box_key(self) -> PrivateKey:
        return self.identity.box_key

    def document(self, nonce: bytes | None = None, binding: ChannelBinding | None = None) -> bytes:
        payload = (binding or self.identity.binding()).encode()
        return self.nsm.get_attestation_document(payload, nonce, None)


def boot(
    ca: EmulatedCa,
    node_id: str,
    image_pcrs: Mapping[int, bytes] = RELEASED,
    node_identity: NodeIdentity | None = None,
) -> Node:
    """One boot: per-boot service keys around the node's long-term identity (a new one unless
    given, as a first boot makes)."""
    now = dt.datetime.now(dt.UTC)
    return Node(
        node_id,
        NsmClient(EmulatedNsm(ca, dict(image_pcrs))),
        ServiceIdentity.generate(node_id, now, node_identity or NodeIdentity.generate()),
    )


def verifier_for(ca: EmulatedCa) -> AttestationVerifier:
    return AttestationVerifier(TrustedRoots.of([ca.root_certificate]))


def peer_verifier(
    ca: EmulatedCa,
    *,
    verifier: AttestationVerifier | None = None,
    max_age: dt.timedelta = dt.timedelta(minutes=5),
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    peer_releases: tuple[Mapping[int, bytes], ...] = (),
) -> PeerVerifier:
    """A node's check of its peers, trusting ``ca`` and the :data:`RELEASED` image."""
    return PeerVerifier(verifier or verifier_for(ca), RELEASED, max_age, clock, peer_releases)


#: The outcome of one node's part in a protocol run: its last reply, or the error that ended it.
Outcome = Reply | ServiceError | MpcError


class Cluster:
    """Real node services with real emulated NSMs and real sealed stores, driven in process."""

    def __init__(self, ca: EmulatedCa, node_ids: Sequence[str] = NODES) -> None:
        self.ca = ca
        self.node_ids = tuple(node_ids)
        self.nodes: dict[str, Node] = {}
        self.hosts = {node_id: DictHost() for node_id in self.node_ids}
        self.stores: dict[str, SealedStore] = {}
        self.services: dict[str, NodeService] = {}
        self._data_keys = {node_id: SecretBytes(os.urandom(32)) for node_id in self.node_ids}
        self.clock: Callable[[], float] = time.time  # every node's clock; tests may move it
        for node_id in self.node_ids:
            asyncio.run(self.restart(node_id, witness=False))
        for node_id in self.node_ids:
            asyncio.run(self.witness(node_id))

    async def restart(self, node_id: str, *, witness: bool = True) -> NodeService:
        """A (new) boot of ``node_id``: fresh per-boot keys and memory, the same sealed blobs
        and identity; shown its peers' witness reports unless ``witness`` is false."""
        sealer = Sealer(self._data_keys[node_id], node_id)
        store = self.stores[node_id] = SealedStore(sealer, self.hosts[node_id])
        await store.load()
        # as the enclave's boot does: the sealed identity, or a new one on a (seemingly) first boot
        sealed = await store.get(STATE_BLOB)
        if sealed is None:
            identity = NodeIdentity.generate()
            await store.put(STATE_BLOB, identity.encode())
        else:
            identity = NodeIdentity.decode(sealed)
        node = self.nodes[node_id] = boot(self.ca, node_id, node_identity=identity)
        service = self.services[node_id] = NodeService(
            identity=node.identity,
            nsm=EmulatedNsm(self.ca, RELEASED),
            store=store,
            peers=peer_verifier(self.ca),
            cluster_size=len(self.node_ids),
            clock=lambda: self.clock(),  # noqa: PLW0108 -- late bound: tests move self.clock
        )
        if witness:
            await self.witness(node_id)
        return service

    async def witness(self, node_id: str) -> Reply:
        """Relay every peer's witness report on ``node_id`` to it (what a coordinator does when
        a node answers ``unwitnessed``); its answer."""
        document = self.nodes[node_id].document()
        envelopes = {}
        for peer in self.node_ids:
            if peer != node_id:
                reply = await self.services[peer].answer(WitnessQuery(node_id, document))
                if isinstance(reply, WitnessEnvelope):
                    envelopes[peer] = reply.envelope
        documents = {peer: self.nodes[peer].document() for peer in envelopes}
        return await self.services[node_id].answer(WitnessCheck(documents, envelopes))

    async def record_witnesses(self) -> None:
        """Relay every node's signed state statement to every other node."""
        statements = {}
        for node_id, service in self.services.items():
            reply = await service.dispatch(StateQuery())
            assert isinstance(reply, SignedState)
            statements[node_id] = reply.statement
        for witness in self.node_ids:
            others = [n for n in self.node_ids if n != witness]
            request = WitnessRecord(
                {n: self.nodes[n].document() for n in others}, {n: statements[n] for n in others}
            )
            assert isinstance(await self.services[witness].dispatch(request), WitnessRecorded)

    def documents(self, node_ids: Sequence[str] | None = None) -> dict[str, bytes]:
        """A fresh document of each node (all of them unless named), binding its box key."""
        return {n: self.nodes[n].document() for n in node_ids or self.node_ids}

    async def refusal(self, node_id: str, request: Request) -> ErrorReply:
        """The ``error`` reply ``node_id`` answers ``request`` with (fails if it serves it)."""
        reply = await self.services[node_id].answer(request)
        assert isinstance(reply, ErrorReply), reply
        return reply

    async def create(
        self,
        name: str,
        suite: str = "ed25519",
        *,
        threshold: int = 1,
        policies: Mapping[str, bytes] | None = None,
        commit: bool = True,
    ) -> dict[str, Outcome]:
        """Run a DKG among every node, each handed its own policy if ``policies`` says so (a
        malicious coordinator); each node's outcome. Stops relaying once a node fails. When
        every node sealed (``key_created``) and ``commit``, relays the acknowledgements so
        every node commits the key (the outcomes stay the ``key_created`` replies)."""
        documents = self.documents()
        session = os.urandom(32)
        outcomes: dict[str, Outcome] = {}
        for node_id, service in self.services.items():
            policy = b"" if policies is None else policies[node_id]
            request = KeyCreate(name, suite, threshold, session, documents, policy)
            outcomes[node_id] = await _outcome(service.dispatch(request))
        for _ in range(3):
            outboxes = {n: o.outbox for n, o in outcomes.items() if isinstance(o, DkgOutbox)}
            if len(outboxes) < len(self.node_ids):
                break  # a node failed: an honest coordinator cannot go on
            for node_id, service in self.services.items():
                inbox = tuple(outboxes[o][node_id] for o in self.node_ids if o != node_id)
                outcomes[node_id] = await _outcome(service.dispatch(DkgStep(name, inbox)))
        created = {n: o for n, o in outcomes.items() if isinstance(o, KeyCreated)}
        if commit and len(created) == len(self.node_ids):
            for node_id, service in self.services.items():
                inbox = tuple(created[o].outbox[node_id] for o in self.node_ids if o != node_id)
                assert isinstance(await service.dispatch(KeyCommit(name, inbox)), KeyCommitted)
        return outcomes

    async def create_key(
        self, name: str, suite: str = "ed25519", policy: bytes = b""
    ) -> PublicKeyPackage:
        """Create ``name`` on every node (all with ``policy``); its public key package."""
        outcomes = await self.create(name, suite, policies=dict.fromkeys(self.node_ids, policy))
        packages = set()
        for node_id, outcome in outcomes.items():
            assert isinstance(outcome, KeyCreated), (node_id, outcome)
            packages.add(outcome.public_key_package)
        assert len(packages) == 1  # every node holds a share of the same key
        return PublicKeyPackage.from_bytes(packages.pop())


async def _outcome(reply: Awaitable[Reply]) -> Outcome:
    try:
        return await reply
    except (ServiceError, MpcError) as error:
        return error
