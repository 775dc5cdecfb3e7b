"""Approval policies: the rules (``check_approvals``), their codecs, and their enforcement by
three in-process NodeService objects (real emulated NSMs, real sealed stores)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st
from test_service_requests import NODES, Cluster, OsRandom

from attestation.emulated_ca import EmulatedCa
from enclave.mpc.decryption.ecies import encrypt
from enclave.mpc.errors import MpcError, ProtocolAbort
from enclave.mpc.frost.ciphersuite import FROST_ED25519_SHA512
from enclave.mpc.frost.round1 import SigningCommitments
from enclave.mpc.frost.round2 import SigningPackage
from enclave.mpc.groups import ED25519
from enclave.mpc.identifiers import Identifier
from enclave.mpc.keys import PublicKeyPackage
from enclave.service.errors import (
    ApprovalExpiredError,
    ApprovalMismatchError,
    ApprovalSignatureError,
    ApprovalUnlistedError,
    MalformedMessageError,
    QuorumNotMetError,
    UnknownKeyError,
)
from enclave.service.identity import self_signed_certificate
from enclave.service.keystore import KeyStore
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
from enclave.service.policy import (
    CLOCK_SKEW,
    Approval,
    ApprovalPolicy,
    Operation,
    approval_statement,
    check_approvals,
    decryption_digest,
    message_digest,
)
from keyshard.client.approvals import (
    approval_from_json,
    approval_to_json,
    public_key_bytes,
    sign_approval,
)

APPROVERS = [Ed25519PrivateKey.generate() for _ in range(3)]
OUTSIDER = Ed25519PrivateKey.generate()
BOTH = frozenset(Operation)
POLICY = ApprovalPolicy(tuple(public_key_bytes(k) for k in APPROVERS), 2, BOTH)
GPK = bytes(range(32))
NOW = 1_800_000_000
DIGEST = message_digest(b"wire 5 to 42")


def approve(
    key: Ed25519PrivateKey,
    *,
    name: str = "treasury",
    gpk: bytes = GPK,
    op: Operation = Operation.SIGN,
    digest: bytes = DIGEST,
    not_after: int = NOW + 900,
) -> bytes:
    return sign_approval(
        key, key_name=name, group_public_key=gpk, operation=op, digest=digest, not_after=not_after
    ).encode()


def check(approvals: list[bytes], policy: ApprovalPolicy | None = POLICY, now: int = NOW) -> None:
    check_approvals(
        policy,
        approvals,
        key_name="treasury",
        group_public_key=GPK,
        operation=Operation.SIGN,
        digest=DIGEST,
        now=now,
    )


# -- the rules -------------------------------------------------------------------------------


def test_a_quorum_of_distinct_listed_approvers_passes() -> None:
    check([approve(APPROVERS[0]), approve(APPROVERS[2])])
    check([approve(k) for k in APPROVERS])


@pytest.mark.parametrize("count", [0, 1])
def test_fewer_than_quorum_is_refused(count: int) -> None:
    with pytest.raises(QuorumNotMetError) as caught:
        check([approve(k) for k in APPROVERS[:count]])
    assert (caught.value.have, caught.value.need, caught.value.rule) == (count, 2, "quorum")


def test_the_same_approver_twice_counts_once() -> None:
    with pytest.raises(QuorumNotMetError) as caught:
        check([approve(APPROVERS[1]), approve(APPROVERS[1], not_after=NOW + 1000)])
    assert caught.value.have == 1


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": "other"}, "key"),
        ({"gpk": bytes(32)}, "group_public_key"),
        ({"op": Operation.DECRYPT}, "operation"),
        ({"digest": message_digest(b"wire 5000 to 42")}, "digest"),
    ],
)
def test_an_approval_for_something_else_is_refused(changes: dict[str, object], field: str) -> None:
    with pytest.raises(ApprovalMismatchError) as caught:
        check([approve(APPROVERS[0]), approve(APPROVERS[1], **changes)])  # type: ignore[arg-type]
    assert (caught.value.index, caught.value.field) == (1, field)


def test_an_unlisted_approver_is_refused() -> None:
    with pytest.raises(ApprovalUnlistedError) as caught:
        check([approve(OUTSIDER), approve(APPROVERS[0]), approve(APPROVERS[1])])
    assert caught.value.index == 0


def test_expiry_allows_only_the_clock_skew() -> None:
    check([approve(APPROVERS[0]), approve(APPROVERS[1], not_after=NOW - CLOCK_SKEW)])
    with pytest.raises(ApprovalExpiredError) as caught:
        check([approve(APPROVERS[0]), approve(APPROVERS[1], not_after=NOW - CLOCK_SKEW - 1)])
    assert (caught.value.index, caught.value.not_after) == (1, NOW - CLOCK_SKEW - 1)


def test_a_forged_signature_is_refused() -> None:
    genuine = Approval.decode(approve(APPROVERS[1]))
    # the approver's name on another approver's signature
    forged = Approval(
        genuine.key_name,
        genuine.group_public_key,
        genuine.operation,
        genuine.digest,
        genuine.not_after,
        public_key_bytes(APPROVERS[2]),
        genuine.signature,
    )
    with pytest.raises(ApprovalSignatureError) as caught:
        check([approve(APPROVERS[0]), forged.encode()])
    assert caught.value.index == 1


def test_operations_outside_the_policy_and_keys_without_one_need_nothing() -> None:
    check([], policy=None)
    check([], policy=ApprovalPolicy(POLICY.approvers, 1, frozenset({Operation.DECRYPT})))


# -- codecs ------------------------------------------------------------------------------------


def test_policy_round_trips_canonically_and_refuses_bad_shapes() -> None:
    encoded = POLICY.encode()
    assert ApprovalPolicy.decode(encoded) == POLICY
    reordered = ApprovalPolicy(tuple(reversed(POLICY.approvers)), 2, BOTH)
    assert reordered.encode() == encoded  # one encoding per policy
    key = POLICY.approvers[0]
    with pytest.raises(MalformedMessageError, match="distinct"):
        ApprovalPolicy((key, key), 1, BOTH)
    with pytest.raises(MalformedMessageError, match="quorum"):
        ApprovalPolicy((key,), 2, BOTH)
    with pytest.raises(MalformedMessageError, match="quorum"):
        ApprovalPolicy((key,), 0, BOTH)
    with pytest.raises(MalformedMessageError, match="32 bytes"):
        ApprovalPolicy((key[:31],), 1, BOTH)
    with pytest.raises(MalformedMessageError, match="operations"):
        ApprovalPolicy((key,), 1, frozenset())
    with pytest.raises(MalformedMessageError):
        ApprovalPolicy.decode(encoded + b"\x00")


def test_approval_codecs_round_trip() -> None:
    encoded = approve(APPROVERS[0])
    approval = Approval.decode(encoded)
    assert approval.encode() == encoded
    assert approval_from_json(approval_to_json(approval)) == approval
    with pytest.raises(MalformedMessageError):
        Approval.decode(encoded[:-1])


def test_statement_snapshot() -> None:
    # A changed snapshot breaks every approval ever signed.
    statement = approval_statement("k", b"\x02" * 2, Operation.SIGN, b"\x01" * 32, 7)
    assert statement.hex() == (
        "00000014" + b"keyshard/approval/v1".hex() + "00000001" + b"k".hex() + "000000020202"
        "00000004" + b"sign".hex() + "00000020" + "01" * 32 + "00000008" + "0000000000000007"
    )


# -- enforcement by the nodes ------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> EmulatedCa:
    return EmulatedCa.ephemeral()


@pytest.fixture(scope="module")
def client_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return self_signed_certificate(key, "client", dt.datetime.now(dt.UTC)).public_bytes(
        serialization.Encoding.PEM
    )


def create(cluster: Cluster, name: str, policies: dict[str, bytes]) -> dict[str, object]:
    """Run a DKG where each node may be handed its own policy (a malicious coordinator).

    Returns each node's last reply, or the error that ended its creation."""
    documents = {n: node.document() for n, node in cluster.nodes.items()}
    session = os.urandom(32)

    async def run() -> dict[str, object]:
        replies: dict[str, object] = {
            n: await s.dispatch(KeyCreate(name, "ed25519", 1, session, documents, policies[n]))
            for n, s in cluster.services.items()
        }
        for _ in range(3):
            outboxes = {n: r.outbox for n, r in replies.items() if isinstance(r, DkgOutbox)}
            if len(outboxes) < len(NODES):
                break  # a node failed: the (honest) coordinator cannot go on
            for n, s in cluster.services.items():
                try:
                    replies[n] = await s.dispatch(
                        DkgStep(name, tuple(outboxes[o][n] for o in NODES if o != n))
                    )
                except MpcError as error:
                    replies[n] = error
        return replies

    return asyncio.run(run())


def test_nodes_given_different_policies_never_create_the_key(
    ca: EmulatedCa, client_pem: bytes
) -> None:
    cluster = Cluster(ca, client_pem)
    lenient = ApprovalPolicy(POLICY.approvers, 1, BOTH).encode()
    # node-3 alone is told of a weaker policy: every node aborts round one, naming who differs
    replies = create(
        cluster, "split", {"node-1": POLICY.encode(), "node-2": POLICY.encode(), "node-3": lenient}
    )
    culprits = {}
    for node_id, reply in replies.items():
        assert isinstance(reply, ProtocolAbort), node_id
        culprits[node_id] = sorted(int(c) for c in reply.culprits)
    assert culprits == {"node-1": [3], "node-2": [3], "node-3": [1, 2]}
    # a policy on one node and none on the others fails the same way
    replies = create(cluster, "split2", {"node-1": POLICY.encode(), "node-2": b"", "node-3": b""})
    assert all(isinstance(r, ProtocolAbort) for r in replies.values())

    async def absent() -> None:
        for service in cluster.services.values():
            for name in ("split", "split2"):
                with pytest.raises(UnknownKeyError):
                    await service.dispatch(KeyInfo(name))

    asyncio.run(absent())


def test_every_node_enforces_the_sealed_policy(ca: EmulatedCa, client_pem: bytes) -> None:
    cluster = Cluster(ca, client_pem)
    encoded = POLICY.encode()
    replies = create(cluster, "treasury", dict.fromkeys(NODES, encoded))
    assert all(isinstance(r, KeyCreated) for r in replies.values())
    public = PublicKeyPackage.from_bytes(replies["node-1"].public_key_package)  # type: ignore[attr-defined]
    gpk = public.group_public_key.to_bytes()
    now = int(time.time())
    good = [approve(k, gpk=gpk, not_after=now + 900) for k in APPROVERS[:2]]

    async def use() -> None:
        for node_id, service in cluster.services.items():
            info = await service.dispatch(KeyInfo("treasury"))
            assert isinstance(info, KeyInfoReply)
            assert info.policy == encoded
            # no approvals, or one short of the quorum: refused before any nonce is committed
            for approvals in ((), tuple(good[:1])):
                with pytest.raises(QuorumNotMetError):
                    await service.dispatch(
                        SignCommit("treasury", os.urandom(32), DIGEST, approvals)
                    )
            ct = encrypt(public.group_public_key, b"payroll", OsRandom(), b"ad").to_bytes()
            with pytest.raises(QuorumNotMetError):
                await service.dispatch(DecryptPartial("treasury", ct, os.urandom(32), b"ad", ()))
            digest = decryption_digest(ct, b"ad")
            approvals = tuple(
                approve(k, gpk=gpk, op=Operation.DECRYPT, digest=digest, not_after=now + 900)
                for k in APPROVERS[1:]
            )
            with pytest.raises(ApprovalMismatchError):  # approved for another context
                await service.dispatch(
                    DecryptPartial("treasury", ct, os.urandom(32), b"other", approvals)
                )
            reply = await service.dispatch(
                DecryptPartial("treasury", ct, os.urandom(32), b"ad", approvals)
            )
            assert isinstance(reply, Partial), node_id

        async def commit(session: bytes) -> dict[Identifier, SigningCommitments]:
            commitments = {}
            for node_id, index in (("node-1", 1), ("node-2", 2)):
                reply = await cluster.services[node_id].dispatch(
                    SignCommit("treasury", session, DIGEST, tuple(good))
                )
                assert isinstance(reply, Commitments)
                commitments[Identifier.from_int(ED25519, index)] = SigningCommitments.from_bytes(
                    reply.commitments
                )
            return commitments

        # approved for one message, a package for another: refused at sign_share
        session = os.urandom(32)
        package = SigningPackage(
            FROST_ED25519_SHA512, session, await commit(session), b"wire 5000 to 42"
        )
        with pytest.raises(ApprovalMismatchError) as caught:
            await cluster.services["node-1"].dispatch(
                SignShare(session, package.to_bytes(), tuple(good))
            )
        assert (caught.value.index, caught.value.field) == (None, "message")
        # the approved message signs
        session = os.urandom(32)
        package = SigningPackage(
            FROST_ED25519_SHA512, session, await commit(session), b"wire 5 to 42"
        )
        for node_id in ("node-1", "node-2"):
            reply = await cluster.services[node_id].dispatch(
                SignShare(session, package.to_bytes(), tuple(good))
            )
            assert isinstance(reply, SignatureShareReply)
        # the policy is sealed with the share: a fresh key store (a restart) reads it back
        restarted = KeyStore(cluster.stores["node-3"])
        assert await restarted.policy("treasury") == POLICY
        # a share sealed before policies existed (the bare share encoding) loads with no policy
        share = await restarted.load("treasury")
        await cluster.stores["node-3"].put("key-legacy", share.to_sealable_bytes())
        assert await restarted.policy("legacy") is None
        assert (await restarted.load("legacy")).public == share.public

    asyncio.run(use())


def test_sign_share_rechecks_the_approvals(ca: EmulatedCa, client_pem: bytes) -> None:
    cluster = Cluster(ca, client_pem)
    replies = create(cluster, "vault", dict.fromkeys(NODES, POLICY.encode()))
    public = PublicKeyPackage.from_bytes(replies["node-1"].public_key_package)  # type: ignore[attr-defined]
    gpk = public.group_public_key.to_bytes()
    good = tuple(
        approve(k, name="vault", gpk=gpk, not_after=int(time.time()) + 900) for k in APPROVERS[:2]
    )
    service = cluster.services["node-1"]

    async def attempt() -> None:
        session = os.urandom(32)
        reply = await service.dispatch(SignCommit("vault", session, DIGEST, good))
        assert isinstance(reply, Commitments)
        with pytest.raises(QuorumNotMetError):
            await service.dispatch(SignShare(session, b"package", good[:1]))

    asyncio.run(attempt())


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_escape_the_typed_error(data: bytes) -> None:
    for decode in (ApprovalPolicy.decode, Approval.decode):
        try:
            value = decode(data)
        except MalformedMessageError:
            continue
        assert value.encode() == data


@given(
    st.lists(
        st.sampled_from((*POLICY.approvers, public_key_bytes(OUTSIDER))),
        min_size=1,
        max_size=4,
        unique=True,
    ),
    st.integers(1, 4),
    st.sets(st.sampled_from(Operation), min_size=1),
)
def test_valid_policies_round_trip(
    approvers: list[bytes], quorum: int, ops: set[Operation]
) -> None:
    if quorum > len(approvers):
        with pytest.raises(MalformedMessageError, match="quorum"):
            ApprovalPolicy(tuple(approvers), quorum, frozenset(ops))
        return
    policy = ApprovalPolicy(tuple(approvers), quorum, frozenset(ops))
    assert ApprovalPolicy.decode(policy.encode()) == policy
