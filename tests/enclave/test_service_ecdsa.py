"""Threshold ECDSA through three in-process NodeService objects: DKG, batched presigning over
envelopes, batched signing, single use of presignatures, approvals (bound to the BIP-32 child
key that signs), and the one-key-one-scheme rule."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import time

import coincurve
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from service_fixtures import NODES, Cluster

from attestation.emulated_ca import EmulatedCa
from enclave.mpc.bip32 import derive_keyshard_path
from enclave.mpc.ecdsa import (
    EcdsaSignature,
    PresignatureInfo,
    SignatureShare,
    SigningRequest,
    combine,
)
from enclave.mpc.errors import InvalidParameters
from enclave.mpc.groups import SECP256K1
from enclave.mpc.identifiers import Identifier
from enclave.mpc.keys import KeyShare, PublicKeyPackage
from enclave.service import sessions
from enclave.service.errors import (
    ApprovalMismatchError,
    EnvelopeError,
    NonceUnknownError,
    QuorumNotMetError,
    SessionError,
)
from keyshard.client.approvals import public_key_bytes, sign_approval
from wire import cbor
from wire.approvals import ApprovalPolicy, Operation, message_digest
from wire.errors import ErrorCode
from wire.messages import (
    DecryptPartial,
    DkgOutbox,
    EcdsaSign,
    ErrorReply,
    FrostSign,
    KeyCreate,
    KeyInfo,
    KeyInfoReply,
    NonceCommit,
    Presigned,
    PresignStart,
    PresignStep,
    SignatureShares,
    presign_batch_session_id,
)

SUITE = "ecdsa-secp256k1"
PARTIES = tuple(Identifier.from_int(SECP256K1, i) for i in (1, 2, 3))


@pytest.fixture(scope="module")
def cluster(ca: EmulatedCa) -> Cluster:
    return Cluster(ca)


async def presign(
    cluster: Cluster, name: str, public: PublicKeyPackage, count: int = 1, client: bytes = b""
) -> list[PresignatureInfo]:
    """One presigning run of ``count`` among all three holders; the presignatures' descriptions
    (every node must report the same ids and nonce points)."""
    documents = cluster.documents()
    session = os.urandom(32)
    replies = {
        n: await s.dispatch(PresignStart(name, session, documents, count), client)
        for n, s in cluster.services.items()
    }
    for _ in range(3):
        outboxes = {n: r.outbox for n, r in replies.items()}  # type: ignore[attr-defined]
        replies = {
            n: await s.dispatch(
                PresignStep(name, session, tuple(outboxes[o][n] for o in NODES if o != n)),
                client,
            )
            for n, s in cluster.services.items()
        }
    results = set()
    for reply in replies.values():
        assert isinstance(reply, Presigned)
        results.add((reply.presignature_ids, reply.big_rs))
    assert len(results) == 1
    ids, big_rs = results.pop()
    assert len(ids) == count
    return [
        PresignatureInfo(
            public,
            PARTIES,
            presign_batch_session_id(session, k),
            ids[k],
            SECP256K1.decode_point(big_rs[k]),
        )
        for k in range(count)
    ]


ALICE, BOB = b"\xa1" * 32, b"\xb0" * 32  # two authenticated clients (certificate digests)


def ecdsa_sign(
    name: str,
    infos: list[PresignatureInfo],
    messages: list[bytes],
    approvals: list[tuple[bytes, ...]] | None = None,
    path: str = "",
) -> tuple[EcdsaSign, list[SigningRequest]]:
    """The batched request and, per item, what the combiner must agree on."""
    tweak = derive_keyshard_path(infos[0].group_public_key, path)[0]
    signing = [
        SigningRequest(info.presignature_id, message_digest(m), os.urandom(32), tweak)
        for info, m in zip(infos, messages, strict=True)
    ]
    request = EcdsaSign(
        name,
        tuple(info.presignature_id for info in infos),
        tuple(messages),
        tuple(s.entropy for s in signing),
        tuple(approvals or [()] * len(infos)),
        path,
    )
    return request, signing


async def sign(
    cluster: Cluster,
    name: str,
    infos: list[PresignatureInfo],
    messages: list[bytes],
    approvals: list[tuple[bytes, ...]] | None = None,
    path: str = "",
    client: bytes = b"",
) -> list[EcdsaSignature]:
    """Every holder signs the batch; each item's combined (and verified) signature."""
    request, signing = ecdsa_sign(name, infos, messages, approvals, path)
    by_item: list[dict[Identifier, SignatureShare]] = [{} for _ in infos]
    for party, node_id in zip(PARTIES, NODES, strict=True):
        reply = await cluster.services[node_id].dispatch(request, client)
        assert isinstance(reply, SignatureShares)
        assert len(reply.shares) == len(infos)
        for k, share in enumerate(reply.shares):
            by_item[k][party] = SignatureShare.from_bytes(share, SECP256K1)
    return [
        combine(info, s, shares)  # verifies with libsecp256k1 or raises
        for info, s, shares in zip(infos, signing, by_item, strict=True)
    ]


def verifies(public_key: bytes, signature: EcdsaSignature, message: bytes) -> bool:
    digest = hashlib.sha256(message).digest()
    return bool(coincurve.PublicKey(public_key).verify(signature.to_der(), digest, hasher=None))


def bip32_child(root: bytes, index: int) -> bytes:
    """CKDpub by hand (BIP-32), with Keyshard's chain code convention, checked by coincurve."""
    chain_code = hashlib.sha256(b"keyshard/bip32/chain-code/v1" + root).digest()
    digest = hmac.new(chain_code, root + index.to_bytes(4, "big"), hashlib.sha512).digest()
    return coincurve.PublicKey(root).add(digest[:32]).format()


def test_presign_sign_combine_verifies_and_recovers(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    async def run() -> None:
        public = await cluster.create_key("btc", SUITE)
        (info,) = await presign(cluster, "btc", public)
        (signature,) = await sign(cluster, "btc", [info], [b"tx 1"])
        key = public.group_public_key.to_bytes()
        assert verifies(key, signature, b"tx 1")
        recovered = coincurve.PublicKey.from_signature_and_message(
            signature.to_recoverable(), hashlib.sha256(b"tx 1").digest(), hasher=None
        )
        assert recovered.format() == key

        service = cluster.services["node-2"]
        info_reply = await service.dispatch(KeyInfo("btc"))
        assert isinstance(info_reply, KeyInfoReply)
        assert (info_reply.suite, info_reply.nodes) == (SUITE, NODES)
        # a presignature is used once: a second sign with its id is refused by every node
        again, _ = ecdsa_sign("btc", [info], [b"tx 2"])
        for node_id, node in cluster.services.items():
            reply = await cluster.refusal(node_id, again)
            assert reply.code is ErrorCode.NONCE_UNKNOWN
            with pytest.raises(NonceUnknownError):
                await node.dispatch(again)
        unknown = EcdsaSign("btc", (b"\x07" * 32,), (b"tx 2",), (bytes(32),), ((),))
        assert (await cluster.refusal("node-2", unknown)).code is ErrorCode.NONCE_UNKNOWN
        # one key, one scheme: no FROST signing, no threshold decryption with an ECDSA key
        for request in (
            NonceCommit("btc", 1),
            FrostSign("btc", (b"package",), ((),)),
            DecryptPartial("btc", b"ct", os.urandom(32)),
        ):
            reply = await cluster.refusal("node-2", request)
            assert reply.code is ErrorCode.WRONG_SCHEME, request.OP
            assert "ecdsa-secp256k1 key" in reply.message
        step = await cluster.refusal("node-2", PresignStep("btc", os.urandom(32), ()))
        assert step.code is ErrorCode.SESSION

        # the secrecy canary: no key share appears in any log line
        secrets_hex = []
        for store in cluster.stores.values():
            sealed = await store.get("key-btc")
            assert sealed is not None
            share = KeyShare.from_sealed_bytes(cbor.loads(sealed)["share"])
            secrets_hex.append(share.secret_share.to_bytes().hex())
        text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
        assert "presigned" in text
        for secret_hex in secrets_hex:
            assert secret_hex not in text

    asyncio.run(run())


def test_a_presign_batch_gives_distinct_presignatures_each_usable_once(cluster: Cluster) -> None:
    async def run() -> None:
        public = await cluster.create_key("batch", SUITE)
        infos = await presign(cluster, "batch", public, count=3)
        assert len({i.presignature_id for i in infos}) == 3
        assert len({i.big_r.to_bytes() for i in infos}) == 3
        messages = [b"tx a", b"tx b", b"tx c"]
        # one EcdsaSign per holder signs all three
        signatures = await sign(cluster, "batch", infos, messages)
        key = public.group_public_key.to_bytes()
        for signature, message in zip(signatures, messages, strict=True):
            assert verifies(key, signature, message)
        for info in infos:
            request, _ = ecdsa_sign("batch", [info], [b"tx d"])
            assert (await cluster.refusal("node-1", request)).code is ErrorCode.NONCE_UNKNOWN

    asyncio.run(run())


def test_a_batch_naming_one_presignature_twice_uses_it_up(cluster: Cluster) -> None:
    async def run() -> None:
        public = await cluster.create_key("twice", SUITE)
        first, second = await presign(cluster, "twice", public, count=2)
        request, _ = ecdsa_sign("twice", [first, first], [b"tx 1", b"tx 2"])
        assert (await cluster.refusal("node-1", request)).code is ErrorCode.NONCE_UNKNOWN
        # on node-1 the first presignature is gone for good; the request signed nothing
        alone, _ = ecdsa_sign("twice", [first], [b"tx 1"])
        assert (await cluster.refusal("node-1", alone)).code is ErrorCode.NONCE_UNKNOWN
        (signature,) = await sign(cluster, "twice", [second], [b"tx 2"])
        assert verifies(public.group_public_key.to_bytes(), signature, b"tx 2")

    asyncio.run(run())


def test_concurrent_requests_for_one_presignature_get_one_share(cluster: Cluster) -> None:
    async def run() -> None:
        public = await cluster.create_key("race", SUITE)
        (info,) = await presign(cluster, "race", public)
        requests = [ecdsa_sign("race", [info], [b"tx %d" % i])[0] for i in range(4)]
        service = cluster.services["node-1"]
        replies = await asyncio.gather(*(service.answer(r) for r in requests))
        assert sum(isinstance(r, SignatureShares) for r in replies) == 1
        refused = [r for r in replies if isinstance(r, ErrorReply)]
        assert [r.code for r in refused] == [ErrorCode.NONCE_UNKNOWN] * 3

    asyncio.run(run())


def test_presignatures_belong_to_one_key(cluster: Cluster) -> None:
    async def run() -> None:
        public = await cluster.create_key("mine", SUITE)
        await cluster.create_key("yours", SUITE)
        (info,) = await presign(cluster, "mine", public)
        request, _ = ecdsa_sign("yours", [info], [b"tx"])
        assert (await cluster.refusal("node-1", request)).code is ErrorCode.NONCE_UNKNOWN
        (signature,) = await sign(cluster, "mine", [info], [b"tx"])  # still good for its key
        assert verifies(public.group_public_key.to_bytes(), signature, b"tx")

    asyncio.run(run())


def test_a_tampered_presign_envelope_fails_the_run(cluster: Cluster) -> None:
    async def run() -> None:
        await cluster.create_key("eth", SUITE)
        documents = cluster.documents()
        session = os.urandom(32)
        outboxes = {}
        for n, s in cluster.services.items():
            reply = await s.dispatch(PresignStart("eth", session, documents, 2))
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
        # envelopes replayed into another presigning run are refused too
        other = os.urandom(32)
        for s in cluster.services.values():
            await s.dispatch(PresignStart("eth", other, documents, 2))
        replay = tuple(outboxes[o]["node-3"] for o in NODES if o != "node-3")
        replayed = await cluster.refusal("node-3", PresignStep("eth", other, replay))
        assert replayed.code is ErrorCode.ENVELOPE
        assert "another key or session" in replayed.message

    asyncio.run(run())


def test_ecdsa_signing_honours_the_approval_policy(cluster: Cluster) -> None:
    approvers = [Ed25519PrivateKey.generate() for _ in range(2)]
    policy = ApprovalPolicy(
        tuple(public_key_bytes(k) for k in approvers), 2, frozenset({Operation.SIGN})
    )

    def approve(public: PublicKeyPackage, message: bytes) -> tuple[bytes, ...]:
        return tuple(
            sign_approval(
                k,
                key_name="cold",
                group_public_key=public.group_public_key.to_bytes(),
                operation=Operation.SIGN,
                digest=message_digest(message),
                not_after=int(time.time()) + 60,
            ).encode()
            for k in approvers
        )

    async def run() -> None:
        public = await cluster.create_key("cold", SUITE, policy.encode())
        infos = await presign(cluster, "cold", public, count=2)
        for node_id in NODES:
            request, _ = ecdsa_sign("cold", infos[:1], [b"tx"])
            assert (await cluster.refusal(node_id, request)).code is ErrorCode.QUORUM_NOT_MET
            with pytest.raises(QuorumNotMetError):
                await cluster.services[node_id].dispatch(request)
            # one item of a batch unapproved: the whole batch is refused before any
            # presignature is touched
            partly, _ = ecdsa_sign("cold", infos, [b"tx", b"tx 2"], [approve(public, b"tx"), ()])
            assert (await cluster.refusal(node_id, partly)).code is ErrorCode.QUORUM_NOT_MET
            # approvals are per item: swapped, they are for another message
            swapped, _ = ecdsa_sign(
                "cold", infos, [b"tx", b"tx 2"], [approve(public, b"tx 2"), approve(public, b"tx")]
            )
            mismatch = await cluster.refusal(node_id, swapped)
            assert mismatch.code is ErrorCode.APPROVAL_MISMATCH
        # every refusal came before the presignatures were touched: both still sign
        approvals = [approve(public, b"tx"), approve(public, b"tx 2")]
        signatures = await sign(cluster, "cold", infos, [b"tx", b"tx 2"], approvals)
        assert verifies(public.group_public_key.to_bytes(), signatures[1], b"tx 2")

    asyncio.run(run())


def test_ecdsa_needs_an_honest_majority_of_holders(cluster: Cluster) -> None:
    """The suite registry's rule, checked by each node: threshold ECDSA needs n >= 2t+1."""

    async def run() -> None:
        two = cluster.documents(("node-1", "node-2"))
        service = cluster.services["node-1"]
        with pytest.raises(InvalidParameters, match="n >= 3"):
            await service.dispatch(KeyCreate("thin", SUITE, 1, os.urandom(32), two))
        # FROST: t+1 of n, so two holders are enough
        reply = await service.dispatch(KeyCreate("pair", "secp256k1", 1, os.urandom(32), two))
        assert isinstance(reply, DkgOutbox)

    asyncio.run(run())


def test_unused_presignatures_are_capped_per_client(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that keeps presigning reaches ITS quota; another client still presigns."""

    async def run() -> None:
        public = await cluster.create_key("capped", SUITE)
        monkeypatch.setattr(sessions, "MAX_PRESIGNATURES_PER_CLIENT", 2)
        await presign(cluster, "capped", public, count=2, client=ALICE)
        request = PresignStart("capped", os.urandom(32), cluster.documents())
        reply = await cluster.services["node-1"].answer(request, ALICE)
        assert isinstance(reply, ErrorReply)
        assert reply.code is ErrorCode.BUSY
        assert reply.code.retryable
        assert "unused presignatures" in reply.message
        assert await presign(cluster, "capped", public, count=2, client=BOB)

    asyncio.run(run())


def test_presigning_without_end_never_blocks_another_clients_signing(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 9 item 6: a client with no approvals used to fill a key's pool, after which an
    approved signature was refused until every node restarted. Now a full pool recycles the
    oldest presignature of the client holding the most: the flooder crowds out only itself, and
    a presignature signs only for the client that made it."""

    async def run() -> None:
        public = await cluster.create_key("flooded", SUITE)
        monkeypatch.setattr(sessions, "MAX_PRESIGNATURES", 4)
        flood = await presign(cluster, "flooded", public, count=4, client=ALICE)
        (honest,) = await presign(cluster, "flooded", public, count=1, client=BOB)
        (signature,) = await sign(cluster, "flooded", [honest], [b"payment"], client=BOB)
        assert verifies(public.group_public_key.to_bytes(), signature, b"payment")
        # the flooder's oldest was recycled for it; its presignatures are its own
        stolen, _ = ecdsa_sign("flooded", [flood[1]], [b"x"])
        reply = await cluster.services["node-1"].answer(stolen, BOB)
        assert isinstance(reply, ErrorReply)
        assert reply.code is ErrorCode.NONCE_UNKNOWN
        recycled, _ = ecdsa_sign("flooded", [flood[0]], [b"x"])
        reply = await cluster.services["node-1"].answer(recycled, ALICE)
        assert isinstance(reply, ErrorReply)
        assert reply.code is ErrorCode.NONCE_UNKNOWN

    asyncio.run(run())


def test_unused_presignatures_expire(cluster: Cluster) -> None:
    async def run() -> None:
        public = await cluster.create_key("aged", SUITE)
        (info,) = await presign(cluster, "aged", public, count=1, client=ALICE)
        for service in cluster.services.values():
            pools = service._pools  # the one table; its clock is the test's to move
            pools._clock = lambda: time.monotonic() + sessions.PRESIGNATURE_TTL + 1
        request, _ = ecdsa_sign("aged", [info], [b"late"])
        reply = await cluster.services["node-1"].answer(request, ALICE)
        assert isinstance(reply, ErrorReply)
        assert reply.code is ErrorCode.NONCE_UNKNOWN

    asyncio.run(run())


def test_signing_under_a_bip32_child_key(cluster: Cluster) -> None:
    approver = Ed25519PrivateKey.generate()
    policy = ApprovalPolicy((public_key_bytes(approver),), 1, frozenset({Operation.SIGN}))

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

    async def run() -> None:
        public = await cluster.create_key("hd", SUITE, policy.encode())
        root = public.group_public_key.to_bytes()
        child, sibling = bip32_child(root, 7), bip32_child(root, 8)
        (info,) = await presign(cluster, "hd", public)
        # an approval for the root key, or for another child, does not sign for child 7
        for wrong in (root, sibling):
            request, _ = ecdsa_sign("hd", [info], [b"child tx"], [approval(wrong)], "m/7")
            with pytest.raises(ApprovalMismatchError) as caught:
                await cluster.services["node-1"].dispatch(request)
            assert caught.value.field == "group_public_key"
        # a hardened or malformed path is refused before anything else
        for path in ("m/7'", "m/x"):
            request, _ = ecdsa_sign("hd", [info], [b"child tx"], [approval(child)])
            request = EcdsaSign(
                "hd",
                request.presignature_ids,
                request.messages,
                request.entropies,
                request.approvals,
                path,
            )
            assert (await cluster.refusal("node-1", request)).code is ErrorCode.MALFORMED
        (signature,) = await sign(cluster, "hd", [info], [b"child tx"], [approval(child)], "m/7")
        assert verifies(child, signature, b"child tx")
        assert not verifies(root, signature, b"child tx")

    asyncio.run(run())
