"""The coordinator: drives key creation, signing and decryption across a cluster's nodes.

The coordinator is untrusted by the enclaves: it relays DKG envelopes it cannot open
(:mod:`enclave.service.envelope`), chooses signers and session ids, and combines what nodes return.
Everything it combines is verified: FROST aggregation checks every signature share and the final
signature (naming a cheating node), threshold decryption checks every partial's DLEQ proof, and a
key's public package is accepted only when every answering node (at least t+1) reports the same.

Party identifiers are positions 1..n of the sorted participant node ids (as the nodes derive them);
a node also reports its own identifier in ``key_info``.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from enclave.mpc.decryption.combine import combine
from enclave.mpc.decryption.ecies import Ciphertext, encrypt
from enclave.mpc.decryption.partial import PartialDecryption
from enclave.mpc.ecdsa import EcdsaSignature, PresignatureInfo, SigningRequest
from enclave.mpc.ecdsa import SignatureShare as EcdsaSignatureShare
from enclave.mpc.ecdsa import combine as combine_ecdsa
from enclave.mpc.frost.aggregate import aggregate
from enclave.mpc.frost.round1 import SigningCommitments
from enclave.mpc.frost.round2 import SignatureShare, SigningPackage
from enclave.mpc.identifiers import Identifier
from enclave.mpc.keys import PublicKeyPackage
from enclave.service.derivation import derive
from enclave.service.keystore import ECDSA_SUITE, FROST_SUITES, GROUPS
from enclave.service.messages import DkgOutbox, KeyCreated, Presigned
from enclave.service.policy import ApprovalPolicy, message_digest
from keyshard.client.channel import NodeChannel, NodeTrust
from keyshard.client.credentials import ClientCredentials
from keyshard.client.errors import ChannelError, ClientError, ProtocolError, RemoteError
from keyshard.client.node import NodeClient
from keyshard.dev.profile import ClusterProfile

__all__ = ["Coordinator", "KeyDescription", "NodeAddress"]

DKG_ROUNDS = 3
PRESIGN_ROUNDS = 3
#: Peers refuse documents older than their image's maximum age (300 s by default): channels older
#: than this are reopened before a key creation, so the relayed documents are fresh.
DOCUMENT_REFRESH_SECONDS = 60.0


class _OsRandom:
    def random_bytes(self, n: int) -> bytes:
        return os.urandom(n)


@dataclass(frozen=True, slots=True)
class NodeAddress:
    node_id: str
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class KeyDescription:
    """A key as the nodes agree on it; ``holders`` maps node id to party identifier."""

    name: str
    suite: str
    public: PublicKeyPackage
    holders: Mapping[str, int]
    policy: ApprovalPolicy | None = None

    @property
    def public_key(self) -> bytes:
        return self.public.group_public_key.to_bytes()


class Coordinator:
    """Use as ``async with Coordinator(...) as c:`` — channels are opened lazily and closed at exit."""

    def __init__(
        self,
        nodes: Sequence[NodeAddress],
        trust: NodeTrust,
        credentials: ClientCredentials,
    ) -> None:
        self._nodes = {node.node_id: node for node in nodes}
        self._trust = trust
        self._credentials = credentials
        self._clients: dict[str, NodeClient] = {}

    @classmethod
    def from_profile(cls, profile: ClusterProfile, credentials: ClientCredentials) -> Coordinator:
        nodes = []
        for entry in profile.nodes:
            if entry.service_port is None:
                raise ClientError(f"the profile names no service endpoint for {entry.node_id}")
            nodes.append(NodeAddress(entry.node_id, entry.host, entry.service_port))
        return cls(nodes, NodeTrust.from_profile(profile), credentials)

    async def __aenter__(self) -> Coordinator:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        clients, self._clients = self._clients, {}
        await asyncio.gather(*(client.close() for client in clients.values()))

    @property
    def node_ids(self) -> list[str]:
        return sorted(self._nodes)

    async def node(self, node_id: str) -> NodeClient:
        """The (verified) client for ``node_id``, connecting on first use."""
        client = self._clients.get(node_id)
        if client is None:
            address = self._nodes.get(node_id)
            if address is None:
                raise ClientError(f"unknown node {node_id!r}")
            channel = await NodeChannel.open(
                node_id,
                address.host,
                address.port,
                trust=self._trust,
                credentials=self._credentials,
            )
            client = self._clients[node_id] = NodeClient(channel)
        return client

    async def forget(self, node_id: str) -> None:
        """Drop a node's channel (e.g. after it restarted: the next use reconnects)."""
        client = self._clients.pop(node_id, None)
        if client is not None:
            await client.close()

    async def _reachable(self, node_ids: Iterable[str]) -> dict[str, NodeClient]:
        ids = list(node_ids)
        results = await asyncio.gather(*(self.node(i) for i in ids), return_exceptions=True)
        reachable = {}
        for node_id, result in zip(ids, results, strict=True):
            if isinstance(result, NodeClient):
                reachable[node_id] = result
            elif not isinstance(result, ChannelError):
                raise result
        return reachable

    async def _fresh(self, node_ids: Sequence[str]) -> dict[str, NodeClient]:
        """Clients whose channel documents are fresh enough to be relayed to peers."""
        for node_id in node_ids:
            client = self._clients.get(node_id)
            if client is not None and (
                time.monotonic() - client.channel.opened_at > DOCUMENT_REFRESH_SECONDS
            ):
                await self.forget(node_id)
        return {i: await self.node(i) for i in node_ids}

    # -- key creation -------------------------------------------------------------------

    async def create_key(
        self,
        name: str,
        *,
        suite: str = "ed25519",
        threshold: int | None = None,
        nodes: Sequence[str] | None = None,
        policy: ApprovalPolicy | None = None,
    ) -> KeyDescription:
        """Run a DKG among ``nodes`` (default: every node). ``threshold`` is the polynomial degree
        t (t+1 nodes sign); default: a majority signs (t = (n-1)//2). ``policy``: approvals the
        nodes will require, fixed for the key's life (bound into the DKG, sealed with each share).
        """
        encoded_policy = b"" if policy is None else policy.encode()
        participants = sorted(nodes or self._nodes)
        t = (len(participants) - 1) // 2 if threshold is None else threshold
        clients = await self._fresh(participants)
        documents = {i: client.channel.document for i, client in clients.items()}
        session_id = os.urandom(32)
        replies = await asyncio.gather(
            *(
                c.key_create(name, suite, t, session_id, documents, policy=encoded_policy)
                for c in clients.values()
            )
        )
        outboxes = {i: reply.outbox for i, reply in zip(clients, replies, strict=True)}
        for round_ in range(1, DKG_ROUNDS + 1):
            for sender, outbox in outboxes.items():
                if set(outbox) != set(participants) - {sender}:
                    raise ProtocolError(f"{sender}'s round-{round_} outbox is misaddressed")
            inboxes = {
                i: [outboxes[sender][i] for sender in participants if sender != i]
                for i in participants
            }
            answers = await asyncio.gather(
                *(clients[i].dkg_step(name, inboxes[i]) for i in participants)
            )
            if round_ < DKG_ROUNDS:
                outboxes = {}
                for i, answer in zip(participants, answers, strict=True):
                    if not isinstance(answer, DkgOutbox):
                        raise ProtocolError(f"{i} finished the DKG early")
                    outboxes[i] = answer.outbox
        packages = set()
        for i, answer in zip(participants, answers, strict=True):
            if not isinstance(answer, KeyCreated):
                raise ProtocolError(f"{i} did not finish the DKG")
            packages.add(answer.public_key_package)
        if len(packages) != 1:
            raise ProtocolError("the nodes finished with different public keys")
        public = PublicKeyPackage.from_bytes(packages.pop(), GROUPS[suite])
        return KeyDescription(
            name, suite, public, {i: n for n, i in enumerate(participants, start=1)}, policy
        )

    # -- key info -----------------------------------------------------------------------

    async def describe_key(self, name: str) -> KeyDescription:
        """The key as every reachable holder reports it; at least t+1 must answer, all agree."""
        clients = await self._reachable(self._nodes)
        results = await asyncio.gather(
            *(c.key_info(name) for c in clients.values()), return_exceptions=True
        )
        answers = {}
        for node_id, result in zip(clients, results, strict=True):
            if isinstance(result, RemoteError) and result.code == "UnknownKeyError":
                continue
            if isinstance(result, BaseException):
                raise result
            answers[node_id] = result
        if not answers:
            raise ClientError(f"no reachable node holds key {name!r}")
        if len({(a.suite, a.public_key_package, a.policy) for a in answers.values()}) != 1:
            raise ProtocolError(f"nodes disagree about key {name!r}")
        first = next(iter(answers.values()))
        public = PublicKeyPackage.from_bytes(first.public_key_package, GROUPS[first.suite])
        if len(answers) < public.threshold + 1:
            raise ClientError(
                f"only {len(answers)} node(s) answered for {name!r}; "
                f"{public.threshold + 1} must agree"
            )
        holders = {node_id: a.identifier for node_id, a in answers.items()}
        if len(set(holders.values())) != len(holders):
            raise ProtocolError(f"two nodes claim the same identifier for {name!r}")
        policy = ApprovalPolicy.decode(first.policy) if first.policy else None
        return KeyDescription(name, first.suite, public, holders, policy)

    def _pick(self, key: KeyDescription, chosen: Sequence[str] | None) -> list[str]:
        needed = key.public.threshold + 1
        if chosen is not None:
            unknown = [n for n in chosen if n not in key.holders]
            if unknown:
                raise ClientError(f"not holders of {key.name!r}: {', '.join(unknown)}")
            if len(set(chosen)) < needed:
                raise ClientError(f"{needed} distinct nodes are needed")
            return sorted(set(chosen))
        return sorted(key.holders)[:needed]

    # -- signing ------------------------------------------------------------------------

    async def sign(
        self,
        name: str,
        message: bytes,
        *,
        signers: Sequence[str] | None = None,
        approvals: Sequence[bytes] = (),
    ) -> bytes:
        """A FROST signature by t+1 holders; verified (and a cheater named) by ``aggregate``.

        ``approvals`` (encoded :class:`~enclave.service.policy.Approval`) go to every signer; each
        checks them against the key's policy before committing nonces.
        """
        digest = message_digest(message)
        key = await self.describe_key(name)
        suite = FROST_SUITES[key.suite]
        chosen = self._pick(key, signers)
        clients = {n: await self.node(n) for n in chosen}
        session_id = os.urandom(32)
        raw = await asyncio.gather(
            *(c.sign_commit(name, session_id, digest, approvals) for c in clients.values())
        )
        idents = {n: Identifier.from_int(suite.group, key.holders[n]) for n in chosen}
        commitments = {}
        for node_id, data in zip(chosen, raw, strict=True):
            commitment = SigningCommitments.from_bytes(data)
            if commitment.suite is not suite or commitment.session_id != session_id:
                raise ProtocolError(f"{node_id} committed for another suite or session")
            commitments[idents[node_id]] = commitment
        package = SigningPackage(suite, session_id, commitments, message)
        encoded = package.to_bytes()
        shares = await asyncio.gather(
            *(c.sign_share(session_id, encoded, approvals) for c in clients.values())
        )
        return aggregate(
            package,
            {idents[n]: SignatureShare.from_bytes(s) for n, s in zip(chosen, shares, strict=True)},
            key.public,
        )

    # -- threshold ECDSA ----------------------------------------------------------------

    async def presign(self, name: str, *, signers: Sequence[str] | None = None) -> PresignatureInfo:
        """Run DJNPO20 presigning among 2t+1 holders; the (public) presignature description.

        The presignature's secret halves stay in the signers' memory (single use, lost on
        restart); the same 2t+1 nodes must sign with it.
        """
        key = await self.describe_key(name)
        if key.suite != ECDSA_SUITE:
            raise ClientError(f"key {name!r} is {key.suite}, not {ECDSA_SUITE}")
        needed = 2 * key.public.threshold + 1
        chosen = sorted(key.holders)[:needed] if signers is None else self._pick(key, signers)
        if len(chosen) != needed:
            raise ClientError(f"exactly {needed} holders presign for {name!r}")
        clients = await self._fresh(chosen)
        documents = {i: client.channel.document for i, client in clients.items()}
        session_id = os.urandom(32)
        replies = await asyncio.gather(
            *(clients[i].presign_start(name, session_id, documents) for i in chosen)
        )
        outboxes = {i: reply.outbox for i, reply in zip(chosen, replies, strict=True)}
        finished = await self._relay_presign(name, session_id, clients, outboxes)
        results = {(answer.presignature_id, answer.big_r) for answer in finished}
        if len(results) != 1:
            raise ProtocolError("the presigners disagree about the presignature")
        presignature_id, big_r = results.pop()
        group = key.public.group
        return PresignatureInfo(
            key.public,
            tuple(sorted(Identifier.from_int(group, key.holders[n]) for n in chosen)),
            session_id,
            presignature_id,
            group.decode_point(big_r),
        )

    @staticmethod
    async def _relay_presign(
        name: str,
        session_id: bytes,
        clients: Mapping[str, NodeClient],
        outboxes: dict[str, Mapping[str, bytes]],
    ) -> list[Presigned]:
        """Relay the three presigning rounds' envelopes; every node's final answer."""
        chosen = sorted(clients)
        for round_ in range(1, PRESIGN_ROUNDS + 1):
            for sender, outbox in outboxes.items():
                if set(outbox) != set(chosen) - {sender}:
                    raise ProtocolError(f"{sender}'s presign round-{round_} outbox is misaddressed")
            answers = await asyncio.gather(
                *(
                    clients[i].presign_step(
                        name, session_id, [outboxes[s][i] for s in chosen if s != i]
                    )
                    for i in chosen
                )
            )
            outboxes = {
                i: a.outbox
                for i, a in zip(chosen, answers, strict=True)
                if isinstance(a, DkgOutbox)
            }
            if round_ < PRESIGN_ROUNDS and len(outboxes) != len(chosen):
                raise ProtocolError("a node finished presigning early")
        finished = [a for a in answers if isinstance(a, Presigned)]
        if len(finished) != len(chosen):
            raise ProtocolError("a node did not finish presigning")
        return finished

    async def sign_ecdsa(
        self,
        name: str,
        message: bytes,
        *,
        presignature: PresignatureInfo | None = None,
        approvals: Sequence[bytes] = (),
        path: str = "",
    ) -> EcdsaSignature:
        """ECDSA-sign SHA-256(``message``) with a presignature (a fresh one unless given).

        Every presigner checks the approvals, then takes the presignature out of its pool; the
        combined signature is verified (under the BIP-32 child of ``path`` when one is given),
        low-S normalised and carries its recovery id.
        """
        info = presignature if presignature is not None else await self.presign(name)
        key = await self.describe_key(name)
        names = {Identifier.from_int(key.public.group, i): n for n, i in key.holders.items()}
        unknown = [p for p in info.parties if p not in names]
        if unknown:
            raise ClientError("a presigner no longer reports the key")
        tweak, _ = derive(key.public.group_public_key, path)
        request = SigningRequest.create(info, message_digest(message), _OsRandom(), tweak)
        parties = list(info.parties)
        clients = [await self.node(names[p]) for p in parties]
        shares = await asyncio.gather(
            *(
                c.ecdsa_sign(
                    name,
                    info.presignature_id,
                    message,
                    request.entropy,
                    approvals=approvals,
                    path=path,
                )
                for c in clients
            )
        )
        return combine_ecdsa(
            info,
            request,
            {
                p: EcdsaSignatureShare.from_bytes(s, key.public.group)
                for p, s in zip(parties, shares, strict=True)
            },
        )

    # -- encryption ---------------------------------------------------------------------

    async def encrypt(self, name: str, plaintext: bytes, associated_data: bytes = b"") -> bytes:
        """Client-side encryption to the key's group public key (no node takes part)."""
        key = await self.describe_key(name)
        return encrypt(
            key.public.group_public_key, plaintext, _OsRandom(), associated_data
        ).to_bytes()

    async def decrypt(
        self,
        name: str,
        ciphertext: bytes,
        associated_data: bytes = b"",
        *,
        nodes: Sequence[str] | None = None,
        approvals: Sequence[bytes] = (),
    ) -> bytes:
        """Threshold decryption: t+1 partials, each checked by its DLEQ proof, then combined."""
        key = await self.describe_key(name)
        group = key.public.group
        parsed = Ciphertext.from_bytes(ciphertext, group)
        chosen = self._pick(key, nodes)
        session_id = os.urandom(32)
        clients = {n: await self.node(n) for n in chosen}
        partials = await asyncio.gather(
            *(
                c.decrypt_partial(name, ciphertext, session_id, associated_data, approvals)
                for c in clients.values()
            )
        )
        return combine(
            key.public,
            parsed,
            {
                Identifier.from_int(group, key.holders[n]): PartialDecryption.from_bytes(p, group)
                for n, p in zip(chosen, partials, strict=True)
            },
            session_id,
            associated_data,
        )
