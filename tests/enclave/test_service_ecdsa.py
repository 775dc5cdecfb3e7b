"""Threshold ECDSA through three in-process NodeService objects: DKG, presigning over envelopes,
signing, single use of presignatures, approvals, and the one-key-one-scheme rule."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import os
import time

import coincurve
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from test_service_requests import NODES, Cluster

from attestation.emulated_ca import EmulatedCa
from enclave.mpc.ecdsa import PresignatureInfo, SignatureShare, SigningRequest, combine
from enclave.mpc.errors import InvalidParameters, PresignatureReuse
from enclave.mpc.groups import SECP256K1
from enclave.mpc.identifiers import Identifier
from enclave.mpc.keys import PublicKeyPackage
from enclave.service import server
from enclave.service.derivation import derive
from enclave.service.errors import (
    ApprovalMismatchError,
    EnvelopeError,
    MalformedMessageError,
    QuorumNotMetError,
    SessionError,
)
from enclave.service.identity import self_signed_certificate
from enclave.service.messages import (
    DecryptPartial,
    DkgOutbox,
    DkgStep,
    EcdsaSign,
    KeyCreate,
    KeyCreated,
    KeyInfo,
    KeyInfoReply,
    Presigned,
    PresignStart,
    PresignStep,
    SignatureShareReply,
    SignCommit,
)
from enclave.service.policy import ApprovalPolicy, Operation, message_digest
from keyshard.client.approvals import public_key_bytes, sign_approval

SUITE = "ecdsa-secp256k1"


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = self_signed_certificate(key, "client", dt.datetime.now(dt.UTC)).public_bytes(
        serialization.Encoding.PEM
    )
    return Cluster(EmulatedCa.ephemeral(), pem)


def create(cluster: Cluster, name: str, policy: bytes = b"") -> PublicKeyPackage:
    documents = {n: node.document() for n, node in cluster.nodes.items()}
    session = os.urandom(32)

    async def run() -> dict[str, object]:
        replies: dict[str, object] = {
            n: await s.dispatch(KeyCreate(name, SUITE, 1, session, documents, policy))
            for n, s in cluster.services.items()
        }
        for _ in range(3):
            outboxes = {n: r.outbox for n, r in replies.items()}  # type: ignore[attr-defined]
            replies = {
                n: await s.dispatch(DkgStep(name, tuple(outboxes[o][n] for o in NODES if o != n)))
                for n, s in cluster.services.items()
            }
        return replies

    replies = asyncio.run(run())
    assert all(isinstance(r, KeyCreated) for r in replies.values())
    return PublicKeyPackage.from_bytes(replies["node-1"].public_key_package)  # type: ignore[attr-defined]


def presign(cluster: Cluster, name: str, public: PublicKeyPackage) -> PresignatureInfo:
    documents = {n: node.document() for n, node in cluster.nodes.items()}
    session = os.urandom(32)

    async def run() -> dict[str, object]:
        replies: dict[str, object] = {
            n: await s.dispatch(PresignStart(name, session, documents))
            for n, s in cluster.services.items()
        }
        for _ in range(3):
            outboxes = {n: r.outbox for n, r in replies.items()}  # type: ignore[attr-defined]
            replies = {
                n: await s.dispatch(
                    PresignStep(name, session, tuple(outboxes[o][n] for o in NODES if o != n))
                )
                for n, s in cluster.services.items()
            }
        return replies

    replies = asyncio.run(run())
    assert all(isinstance(r, Presigned) for r in replies.values())
    assert len({(r.presignature_id, r.big_r) for r in replies.values()}) == 1  # type: ignore[attr-defined]
    first = replies["node-1"]
    assert isinstance(first, Presigned)
    return PresignatureInfo(
        public,
        tuple(Identifier.from_int(SECP256K1, i) for i in (1, 2, 3)),
        session,
        first.presignature_id,
        SECP256K1.decode_point(first.big_r),
    )


def sign(
    cluster: Cluster,
    name: str,
    info: PresignatureInfo,
    message: bytes,
    approvals: tuple[bytes, ...] = (),
    path: str = "",
) -> tuple[SigningRequest, dict[Identifier, SignatureShare]]:
    tweak = derive(info.group_public_key, path)[0]
    request = SigningRequest(info.presignature_id, message_digest(message), os.urandom(32), tweak)

    async def run() -> dict[Identifier, SignatureShare]:
        shares = {}
        for index, node_id in enumerate(NODES, 1):
            reply = await cluster.services[node_id].dispatch(
                EcdsaSign(name, info.presignature_id, message, request.entropy, approvals, path)
            )
            assert isinstance(reply, SignatureShareReply)
            shares[Identifier.from_int(SECP256K1, index)] = SignatureShare.from_bytes(
                reply.share, SECP256K1
            )
        return shares

    return request, asyncio.run(run())


def bip32_child(root: bytes, index: int) -> bytes:
    """CKDpub by hand (BIP-32), with Keyshard's chain code convention, checked by coincurve."""
    chain_code = hashlib.sha256(b"keyshard/bip32/chain-code/v1" + root).digest()
    digest = hmac.new(chain_code, root + index.to_bytes(4, "big"), hashlib.sha512).digest()
    return coincurve.PublicKey(root).add(digest[:32]).format()


def test_presign_sign_combine_verifies_and_recovers(cluster: Cluster) -> None:
    public = create(cluster, "btc")
    info = presign(cluster, "btc", public)
    request, shares = sign(cluster, "btc", info, b"tx 1")
    signature = combine(info, request, shares)
    key = coincurve.PublicKey(public.group_public_key.to_bytes())
    digest = hashlib.sha256(b"tx 1").digest()
    assert key.verify(signature.to_der(), digest, hasher=None)
    recovered = coincurve.PublicKey.from_signature_and_message(
        signature.to_recoverable(), digest, hasher=None
    )
    assert recovered.format() == key.format()

    async def refusals() -> None:
        service = cluster.services["node-2"]
        info_reply = await service.dispatch(KeyInfo("btc"))
        assert isinstance(info_reply, KeyInfoReply)
        assert info_reply.suite == SUITE
        # a presignature is used once: a second sign with its id is refused by every node
        for node in cluster.services.values():
            with pytest.raises(PresignatureReuse):
                await node.dispatch(EcdsaSign("btc", info.presignature_id, b"tx 2", bytes(32)))
        with pytest.raises(InvalidParameters, match="no such presignature"):
            await service.dispatch(EcdsaSign("btc", b"\x07" * 32, b"tx 2", bytes(32)))
        # one key, one scheme: no FROST signing, no threshold decryption with an ECDSA key
        with pytest.raises(SessionError, match="ECDSA only"):
            await service.dispatch(SignCommit("btc", os.urandom(32), bytes(32)))
        with pytest.raises(SessionError, match="ECDSA only"):
            await service.dispatch(DecryptPartial("btc", b"ct", os.urandom(32)))
        with pytest.raises(SessionError, match="no pending presigning"):
            await service.dispatch(PresignStep("btc", os.urandom(32), ()))

    asyncio.run(refusals())


def test_a_tampered_presign_envelope_fails_the_run(cluster: Cluster) -> None:
    create(cluster, "eth")
    documents = {n: node.document() for n, node in cluster.nodes.items()}
    session = os.urandom(32)

    async def run() -> None:
        outboxes = {}
        for n, s in cluster.services.items():
            reply = await s.dispatch(PresignStart("eth", session, documents))
            assert isinstance(reply, DkgOutbox)
            outboxes[n] = dict(reply.outbox)
        envelope = bytearray(outboxes["node-1"]["node-2"])
        envelope[-1] ^= 1
        outboxes["node-1"]["node-2"] = bytes(envelope)
        inbox = tuple(outboxes[o]["node-2"] for o in NODES if o != "node-2")
        with pytest.raises(EnvelopeError):
            await cluster.services["node-2"].dispatch(PresignStep("eth", session, inbox))
        with pytest.raises(SessionError, match="no pending presigning"):  # failed for good
            await cluster.services["node-2"].dispatch(PresignStep("eth", session, inbox))

    asyncio.run(run())


def test_ecdsa_signing_honours_the_approval_policy(cluster: Cluster) -> None:
    approvers = [Ed25519PrivateKey.generate() for _ in range(2)]
    policy = ApprovalPolicy(
        tuple(public_key_bytes(k) for k in approvers), 2, frozenset({Operation.SIGN})
    )
    public = create(cluster, "cold", policy.encode())
    info = presign(cluster, "cold", public)

    async def refused() -> None:
        for node in cluster.services.values():
            with pytest.raises(QuorumNotMetError):
                await node.dispatch(EcdsaSign("cold", info.presignature_id, b"tx", bytes(32)))

    asyncio.run(refused())  # refused before the presignature is touched: it still signs
    approvals = tuple(
        sign_approval(
            k,
            key_name="cold",
            group_public_key=public.group_public_key.to_bytes(),
            operation=Operation.SIGN,
            digest=message_digest(b"tx"),
            not_after=int(time.time()) + 60,
        ).encode()
        for k in approvers
    )
    request, shares = sign(cluster, "cold", info, b"tx", approvals)
    combine(info, request, shares)  # verifies with libsecp256k1 or raises


def test_ecdsa_needs_an_honest_majority_of_holders() -> None:
    with pytest.raises(MalformedMessageError, match="2t\\+1"):
        KeyCreate("k", SUITE, 1, b"s" * 32, {"a": b"1", "b": b"2"})
    KeyCreate("k", "secp256k1", 1, b"s" * 32, {"a": b"1", "b": b"2"})  # FROST: t+1 of n


def test_unused_presignatures_per_key_are_capped(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    public = create(cluster, "capped")
    monkeypatch.setattr(server, "MAX_PRESIGNATURES", 1)
    presign(cluster, "capped", public)
    documents = {n: node.document() for n, node in cluster.nodes.items()}

    async def attempt() -> None:
        with pytest.raises(SessionError, match="unused presignatures"):
            await cluster.services["node-1"].dispatch(
                PresignStart("capped", os.urandom(32), documents)
            )

    asyncio.run(attempt())


def test_signing_under_a_bip32_child_key(cluster: Cluster) -> None:
    approver = Ed25519PrivateKey.generate()
    policy = ApprovalPolicy((public_key_bytes(approver),), 1, frozenset({Operation.SIGN}))
    public = create(cluster, "hd", policy.encode())
    root = public.group_public_key.to_bytes()
    child = bip32_child(root, 7)

    def approval(group_public_key: bytes) -> tuple[bytes, ...]:
        return (
            sign_approval(
                approver,
                key_name="hd",
                group_public_key=group_public_key,
                operation=Operation.SIGN,
                digest=message_digest(b"child tx"),
                not_after=int(time.time()) + 60,
            ).encode(),
        )

    info = presign(cluster, "hd", public)

    async def refused() -> None:  # an approval for the root key does not sign for a child
        with pytest.raises(ApprovalMismatchError) as caught:
            await cluster.services["node-1"].dispatch(
                EcdsaSign("hd", info.presignature_id, b"child tx", bytes(32), approval(root), "m/7")
            )
        assert caught.value.field == "group_public_key"

    asyncio.run(refused())
    request, shares = sign(cluster, "hd", info, b"child tx", approval(child), "m/7")
    signature = combine(info, request, shares)
    digest = hashlib.sha256(b"child tx").digest()
    assert coincurve.PublicKey(child).verify(signature.to_der(), digest, hasher=None)
    assert not coincurve.PublicKey(root).verify(signature.to_der(), digest, hasher=None)
