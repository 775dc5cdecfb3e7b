"""The node service's request handling, in process: three NodeService objects with real emulated
NSMs and real sealed stores (blobs in a dict, as the parent's host services keep them), driven
through ``dispatch`` the way the TLS connection handler does. Also the secrecy canary: with DEBUG
logging on, no key share and no DKG payload in clear appears in any log record or error message.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import os

import cbor2
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from service_fixtures import RELEASED, Node, boot, verifier_for

from attestation.emulated_ca import EmulatedCa
from attestation.nsm.emulated import EmulatedNsm
from enclave.mpc.decryption.combine import combine
from enclave.mpc.decryption.ecies import encrypt
from enclave.mpc.decryption.partial import PartialDecryption
from enclave.mpc.frost.aggregate import aggregate
from enclave.mpc.frost.ciphersuite import FROST_ED25519_SHA512
from enclave.mpc.frost.round1 import SigningCommitments
from enclave.mpc.frost.round2 import SignatureShare, SigningPackage
from enclave.mpc.groups import ED25519
from enclave.mpc.identifiers import Identifier
from enclave.mpc.keys import KeyShare, PublicKeyPackage
from enclave.sealing import SealedStore, Sealer
from enclave.secretbytes import SecretBytes
from enclave.service.binding import PeerVerifier
from enclave.service.errors import (
    KeyExistsError,
    PeerRefusedError,
    SessionError,
    UnknownKeyError,
)
from enclave.service.identity import self_signed_certificate
from enclave.service.messages import (
    Commitments,
    DecryptPartial,
    DkgOutbox,
    DkgStep,
    KeyCreate,
    KeyCreated,
    KeyInfo,
    KeyInfoReply,
    Partial,
    SignatureShareReply,
    SignCommit,
    SignShare,
)
from enclave.service.server import NodeService

NODES = ("node-1", "node-2", "node-3")


class DictHost:
    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    async def put_blob(self, name: str, data: bytes) -> None:
        self.blobs[name] = data

    async def get_blob(self, name: str) -> bytes | None:
        return self.blobs.get(name)


class Cluster:
    def __init__(self, ca: EmulatedCa, client_pem: bytes) -> None:
        self.nodes: dict[str, Node] = {}
        self.stores: dict[str, SealedStore] = {}
        self.hosts: dict[str, DictHost] = {}
        self.services: dict[str, NodeService] = {}
        for node_id in NODES:
            node = boot(ca, node_id)
            host = self.hosts[node_id] = DictHost()
            store = SealedStore(Sealer(SecretBytes(os.urandom(32)), node_id), host)
            asyncio.run(store.load())
            self.nodes[node_id], self.stores[node_id] = node, store
            self.services[node_id] = NodeService(
                identity=node.identity,
                authorized_clients=[client_pem],
                nsm=EmulatedNsm(ca, RELEASED),
                store=store,
                peers=PeerVerifier(
                    verifier_for(ca),
                    RELEASED,
                    dt.timedelta(minutes=5),
                    lambda: dt.datetime.now(dt.UTC),
                ),
            )

    def create(self, name: str) -> dict[str, object]:
        documents = {n: node.document() for n, node in self.nodes.items()}
        session = os.urandom(32)

        async def run() -> dict[str, object]:
            replies: dict[str, object] = {
                n: await s.dispatch(KeyCreate(name, "ed25519", 1, session, documents))
                for n, s in self.services.items()
            }
            for _ in range(3):
                outboxes = {n: r.outbox for n, r in replies.items()}  # type: ignore[attr-defined]
                replies = {
                    n: await s.dispatch(
                        DkgStep(name, tuple(outboxes[o][n] for o in NODES if o != n))
                    )
                    for n, s in self.services.items()
                }
            return replies

        return asyncio.run(run())


@pytest.fixture(scope="module")
def ca() -> EmulatedCa:
    return EmulatedCa.ephemeral()


@pytest.fixture(scope="module")
def client_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return self_signed_certificate(key, "client", dt.datetime.now(dt.UTC)).public_bytes(
        serialization.Encoding.PEM
    )


def test_create_sign_decrypt_and_no_secret_in_logs(
    ca: EmulatedCa, client_pem: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    cluster = Cluster(ca, client_pem)
    replies = cluster.create("canary")
    assert all(isinstance(r, KeyCreated) for r in replies.values())
    assert len({r.public_key_package for r in replies.values()}) == 1  # type: ignore[attr-defined]
    public = PublicKeyPackage.from_bytes(replies["node-1"].public_key_package)  # type: ignore[attr-defined]

    async def use() -> tuple[bytes, bytes]:
        s1, s3 = cluster.services["node-1"], cluster.services["node-3"]
        info = await s3.dispatch(KeyInfo("canary"))
        assert isinstance(info, KeyInfoReply)
        assert (info.suite, info.identifier) == ("ed25519", 3)
        session = os.urandom(32)
        commitments = {}
        for node_id, index in (("node-1", 1), ("node-3", 3)):
            reply = await cluster.services[node_id].dispatch(
                SignCommit("canary", session, hashlib.sha256(b"msg").digest())
            )
            assert isinstance(reply, Commitments)
            commitments[Identifier.from_int(ED25519, index)] = SigningCommitments.from_bytes(
                reply.commitments
            )
        package = SigningPackage(FROST_ED25519_SHA512, session, commitments, b"msg")
        shares = {}
        for node_id, index in (("node-1", 1), ("node-3", 3)):
            reply = await cluster.services[node_id].dispatch(SignShare(session, package.to_bytes()))
            assert isinstance(reply, SignatureShareReply)
            shares[Identifier.from_int(ED25519, index)] = SignatureShare.from_bytes(reply.share)
        # the nonces are single use: a second SignShare for the session is refused
        with pytest.raises(SessionError, match="no pending signing session"):
            await s1.dispatch(SignShare(session, package.to_bytes()))
        signature = aggregate(package, shares, public)

        ciphertext = encrypt(public.group_public_key, b"payroll", OsRandom(), b"ad")
        session = os.urandom(32)
        partials = {}
        for node_id, index in (("node-1", 1), ("node-3", 3)):
            reply = await cluster.services[node_id].dispatch(
                DecryptPartial("canary", ciphertext.to_bytes(), session)
            )
            assert isinstance(reply, Partial)
            partials[Identifier.from_int(ED25519, index)] = PartialDecryption.from_bytes(
                reply.partial, ED25519
            )
        return signature, combine(public, ciphertext, partials, session, b"ad")

    signature, plaintext = asyncio.run(use())
    Ed25519PublicKey.from_public_bytes(public.group_public_key.to_bytes()).verify(signature, b"msg")
    assert plaintext == b"payroll"

    secrets_hex = []
    for node_id, store in cluster.stores.items():
        sealed = asyncio.run(store.get("key-canary"))
        assert sealed is not None, node_id
        share = KeyShare.from_sealed_bytes(cbor2.loads(sealed)["share"])
        secrets_hex.append(share.secret_share.to_bytes().hex())
        # what the parent stores is sealed: the share never appears in it
        assert share.secret_share.to_bytes() not in b"".join(cluster.hosts[node_id].blobs.values())
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert caplog.records  # the service did log its events
    for secret in secrets_hex:
        assert secret not in text


def test_refusals(ca: EmulatedCa, client_pem: bytes) -> None:
    cluster = Cluster(ca, client_pem)
    cluster.create("taken")
    service = cluster.services["node-2"]

    async def attempts() -> None:
        documents = {n: node.document() for n, node in cluster.nodes.items()}
        with pytest.raises(KeyExistsError):
            await service.dispatch(KeyCreate("taken", "ed25519", 1, b"s" * 32, documents))
        with pytest.raises(UnknownKeyError):
            await service.dispatch(KeyInfo("absent"))
        with pytest.raises(SessionError, match="no key creation"):
            await service.dispatch(DkgStep("absent", ()))
        # a document from another boot of this node id: the box key is not this service's
        stale = dict(documents, **{"node-2": boot(ca, "node-2").document()})
        with pytest.raises(PeerRefusedError, match="another boot"):
            await service.dispatch(KeyCreate("fresh", "ed25519", 1, b"s" * 32, stale))
        reply = await service.dispatch(KeyCreate("fresh", "ed25519", 1, b"s" * 32, documents))
        assert isinstance(reply, DkgOutbox)
        with pytest.raises(SessionError, match="already running"):
            await service.dispatch(KeyCreate("fresh", "ed25519", 1, b"s" * 32, documents))

    asyncio.run(attempts())


class OsRandom:
    def random_bytes(self, n: int) -> bytes:
        return os.urandom(n)
