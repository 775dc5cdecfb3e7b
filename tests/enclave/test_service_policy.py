"""Approval policies: the rules (``check_approvals``), their codecs, and their enforcement by
three in-process NodeService objects (real emulated NSMs, real sealed stores)."""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st
from service_fixtures import NODES, Cluster

from attestation.emulated_ca import EmulatedCa
from enclave.mpc.decryption.ecies import encrypt
from enclave.mpc.errors import ProtocolAbort
from enclave.mpc.frost.ciphersuite import FROST_ED25519_SHA512
from enclave.mpc.frost.round1 import PREPROCESSED_SESSION_ID, SigningCommitments
from enclave.mpc.frost.round2 import SigningPackage
from enclave.mpc.groups import ED25519
from enclave.mpc.identifiers import Identifier
from enclave.service.errors import (
    ApprovalExpiredError,
    ApprovalMismatchError,
    ApprovalSignatureError,
    ApprovalUnlistedError,
    BusyError,
    QuorumNotMetError,
    UnknownKeyError,
)
from enclave.service.handlers import OsRandom
from enclave.service.keystore import KeyStore
from enclave.service.policy import (
    ApprovalLifetimeError,
    ApprovalReusedError,
    SpentApprovals,
    check_approvals,
)
from keyshard.client.approvals import (
    approval_from_json,
    approval_to_json,
    public_key_bytes,
    sign_approval,
)
from wire import cbor
from wire.approvals import (
    CLOCK_SKEW,
    DEFAULT_APPROVAL_LIFETIME,
    Approval,
    ApprovalPolicy,
    Operation,
    approval_statement,
    decryption_digest,
    message_digest,
)
from wire.errors import ErrorCode, MalformedMessageError
from wire.messages import (
    DecryptPartial,
    FrostSign,
    KeyInfo,
    KeyInfoReply,
    NonceCommit,
    NonceCommitments,
    Partial,
    SignatureShares,
)

APPROVERS = [Ed25519PrivateKey.generate() for _ in range(3)]
OUTSIDER = Ed25519PrivateKey.generate()
BOTH = frozenset({Operation.SIGN, Operation.DECRYPT})
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


def test_nodes_given_different_policies_never_create_the_key(ca: EmulatedCa) -> None:
    cluster = Cluster(ca)
    lenient = ApprovalPolicy(POLICY.approvers, 1, BOTH).encode()

    async def run() -> None:
        # node-3 alone is told of a weaker policy: every node aborts round one, naming who differs
        outcomes = await cluster.create(
            "split",
            policies={"node-1": POLICY.encode(), "node-2": POLICY.encode(), "node-3": lenient},
        )
        culprits = {}
        for node_id, outcome in outcomes.items():
            assert isinstance(outcome, ProtocolAbort), node_id
            culprits[node_id] = sorted(int(c) for c in outcome.culprits)
        assert culprits == {"node-1": [3], "node-2": [3], "node-3": [1, 2]}
        # a policy on one node and none on the others fails the same way
        outcomes = await cluster.create(
            "split2", policies={"node-1": POLICY.encode(), "node-2": b"", "node-3": b""}
        )
        assert all(isinstance(o, ProtocolAbort) for o in outcomes.values())
        for service in cluster.services.values():
            for name in ("split", "split2"):
                with pytest.raises(UnknownKeyError):
                    await service.dispatch(KeyInfo(name))

    asyncio.run(run())


async def committed(
    cluster: Cluster, key: str, signers: tuple[str, ...]
) -> dict[Identifier, SigningCommitments]:
    """One fresh preprocessed commitment of each signer, by party identifier."""
    commitments = {}
    for node_id in signers:
        reply = await cluster.services[node_id].dispatch(NonceCommit(key, 1))
        assert isinstance(reply, NonceCommitments)
        ident = Identifier.from_int(ED25519, NODES.index(node_id) + 1)
        commitments[ident] = SigningCommitments.from_bytes(reply.commitments[0])
    return commitments


def frost_package(commitments: dict[Identifier, SigningCommitments], message: bytes) -> bytes:
    return SigningPackage(
        FROST_ED25519_SHA512, PREPROCESSED_SESSION_ID, commitments, message
    ).to_bytes()


def test_every_node_enforces_the_sealed_policy(ca: EmulatedCa) -> None:
    cluster = Cluster(ca)
    encoded = POLICY.encode()

    async def use() -> None:
        public = await cluster.create_key("treasury", "ed25519", encoded)
        gpk = public.group_public_key.to_bytes()
        now = int(time.time())
        good = tuple(approve(k, gpk=gpk, not_after=now + 900) for k in APPROVERS[:2])
        signers = ("node-1", "node-2")
        for node_id, service in cluster.services.items():
            info = await service.dispatch(KeyInfo("treasury"))
            assert isinstance(info, KeyInfoReply)
            assert info.policy == encoded
            # no approvals, or one short of the quorum: refused (by code, and by type)
            if node_id in signers:
                for approvals in ((), good[:1]):
                    commitments = await committed(cluster, "treasury", signers)
                    package = frost_package(commitments, b"wire 5 to 42")
                    request = FrostSign("treasury", (package,), (approvals,))
                    reply = await cluster.refusal(node_id, request)
                    assert reply.code is ErrorCode.QUORUM_NOT_MET
                    commitments = await committed(cluster, "treasury", signers)
                    package = frost_package(commitments, b"wire 5 to 42")
                    with pytest.raises(QuorumNotMetError):
                        await service.dispatch(FrostSign("treasury", (package,), (approvals,)))
            ct = encrypt(public.group_public_key, b"payroll", OsRandom(), b"ad").to_bytes()
            with pytest.raises(QuorumNotMetError):
                await service.dispatch(DecryptPartial("treasury", ct, os.urandom(32), b"ad", ()))
            digest = decryption_digest(ct, b"ad")
            approvals = tuple(
                approve(k, gpk=gpk, op=Operation.DECRYPT, digest=digest, not_after=now + 900)
                for k in APPROVERS[1:]
            )
            other_context = DecryptPartial("treasury", ct, os.urandom(32), b"other", approvals)
            mismatch = await cluster.refusal(node_id, other_context)  # approved for "ad"
            assert mismatch.code is ErrorCode.APPROVAL_MISMATCH
            sign_approvals = DecryptPartial("treasury", ct, os.urandom(32), b"ad", good)
            assert (await cluster.refusal(node_id, sign_approvals)).code is (
                ErrorCode.APPROVAL_MISMATCH  # approvals to sign do not decrypt
            )
            partial = await service.dispatch(
                DecryptPartial("treasury", ct, os.urandom(32), b"ad", approvals)
            )
            assert isinstance(partial, Partial), node_id

        # approved for one message, a package for another: refused, checked against the
        # package's own message
        commitments = await committed(cluster, "treasury", signers)
        other = frost_package(commitments, b"wire 5000 to 42")
        with pytest.raises(ApprovalMismatchError) as caught:
            await cluster.services["node-1"].dispatch(FrostSign("treasury", (other,), (good,)))
        assert (caught.value.index, caught.value.field) == (0, "digest")
        # the refusal used up node-1's nonce all the same: the approved message cannot reuse it
        approved = frost_package(commitments, b"wire 5 to 42")
        reuse = await cluster.refusal("node-1", FrostSign("treasury", (approved,), (good,)))
        assert reuse.code is ErrorCode.NONCE_UNKNOWN
        # the approved message signs
        approved = frost_package(await committed(cluster, "treasury", signers), b"wire 5 to 42")
        for node_id in signers:
            shares = await cluster.services[node_id].dispatch(
                FrostSign("treasury", (approved,), (good,))
            )
            assert isinstance(shares, SignatureShares)

        # the policy is sealed with the share: a fresh key store (a restart) reads it back
        restarted = KeyStore(cluster.stores["node-3"])
        stored = await restarted.stored("treasury")
        assert stored.policy == POLICY
        # a share sealed before policies existed (the bare share encoding) loads with no policy
        await cluster.stores["node-3"].put("key-legacy", stored.share.to_sealable_bytes())
        legacy = await KeyStore(cluster.stores["node-3"]).stored("legacy")
        assert legacy.policy is None
        assert legacy.suite.name == "ed25519"
        assert legacy.share.public == stored.share.public

    asyncio.run(use())


def test_frost_sign_checks_each_items_approvals_against_its_package(ca: EmulatedCa) -> None:
    cluster = Cluster(ca)

    async def attempt() -> None:
        public = await cluster.create_key("vault", "ed25519", POLICY.encode())
        gpk = public.group_public_key.to_bytes()
        not_after = int(time.time()) + 900

        def approvals(message: bytes) -> tuple[bytes, ...]:
            digest = message_digest(message)
            return tuple(
                approve(k, name="vault", gpk=gpk, digest=digest, not_after=not_after)
                for k in APPROVERS[:2]
            )

        signers = ("node-1", "node-2")
        messages = [b"pay 1", b"pay 2"]
        for given_approvals, code in (
            ((approvals(b"pay 1"), ()), ErrorCode.QUORUM_NOT_MET),
            ((approvals(b"pay 1"), approvals(b"pay 1")), ErrorCode.APPROVAL_MISMATCH),
            ((approvals(b"pay 2"), approvals(b"pay 1")), ErrorCode.APPROVAL_MISMATCH),
        ):
            packages = tuple(
                [frost_package(await committed(cluster, "vault", signers), m) for m in messages]
            )
            reply = await cluster.refusal("node-1", FrostSign("vault", packages, given_approvals))
            assert reply.code is code
        packages = tuple(
            [frost_package(await committed(cluster, "vault", signers), m) for m in messages]
        )
        request = FrostSign("vault", packages, tuple(approvals(m) for m in messages))
        for node_id in signers:
            shares = await cluster.services[node_id].dispatch(request)
            assert isinstance(shares, SignatureShares)
            assert len(shares.shares) == 2

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


_values = st.recursive(
    st.none() | st.booleans() | st.integers(-1, 3) | st.binary(max_size=33) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3),
    max_leaves=6,
)


@given(
    st.fixed_dictionaries(
        {"v": st.just(1) | _values, "approvers": _values, "quorum": _values, "operations": _values}
    ),
    st.sampled_from(["sign", "decrypt"]),
)
def test_policy_maps_with_any_field_values_never_escape_the_typed_error(
    value: dict[str, object], operation: str
) -> None:
    """Each field any value of the data model (mixed-type operation lists included): the decoder
    raises MalformedMessageError, never a TypeError from comparing or hashing them."""
    for operations in (value["operations"], [operation, value["operations"]]):
        data = cbor.dumps({**value, "operations": operations})
        try:
            policy = ApprovalPolicy.decode(data)
        except MalformedMessageError:
            continue
        assert policy.encode() == data


# -- approval lifetimes and single-use decrypt approvals (issue 9 item 8) ----------------------


def test_an_approval_living_longer_than_the_policy_allows_is_refused() -> None:
    """Item 8: a node refuses an approval whose not_after lies more than the policy's lifetime
    (the default when the policy names none; CLOCK_SKEW of grace) after its clock."""
    latest = NOW + DEFAULT_APPROVAL_LIFETIME + CLOCK_SKEW
    check([approve(APPROVERS[0]), approve(APPROVERS[1], not_after=latest)])
    for not_after in (latest + 1, 2**40 - 1):  # 2**40 - 1 was accepted
        with pytest.raises(ApprovalLifetimeError) as caught:
            check([approve(APPROVERS[0]), approve(APPROVERS[1], not_after=not_after)])
        error = caught.value
        assert (error.index, error.not_after, error.limit) == (1, not_after, 7 * 24 * 3600)
        assert (error.code, error.rule) == (ErrorCode.APPROVAL_EXPIRED, "lifetime")
        assert f"more than {DEFAULT_APPROVAL_LIFETIME} s" in str(error)
    short = ApprovalPolicy(POLICY.approvers, 2, BOTH, 600)
    check([approve(k, not_after=NOW + 600 + CLOCK_SKEW) for k in APPROVERS[:2]], policy=short)
    with pytest.raises(ApprovalLifetimeError) as caught:
        check([approve(k, not_after=NOW + 601 + CLOCK_SKEW) for k in APPROVERS[:2]], policy=short)
    assert caught.value.index == 0


def test_spent_approvals_are_remembered_until_they_expire_and_bounded() -> None:
    """Item 8: the table of spent decrypt approvals refuses a second use, forgets an approval
    only once it could no longer be accepted anyway, and refuses (BUSY, spending nothing) when
    full rather than forget one early."""
    spent = SpentApprovals(capacity=2)
    first = [Approval.decode(approve(k, not_after=NOW + 10)) for k in APPROVERS[:2]]
    spent.spend(first, now=NOW)
    assert len(spent) == 2
    with pytest.raises(ApprovalReusedError) as caught:
        spent.spend([first[1]], now=NOW)
    assert (caught.value.index, caught.value.code) == (0, ErrorCode.APPROVAL_REUSED)
    later = [Approval.decode(approve(APPROVERS[2], not_after=NOW + 900))]
    with pytest.raises(BusyError):
        spent.spend(later, now=NOW + 10 + CLOCK_SKEW)  # the first two are still acceptable
    with pytest.raises(ApprovalReusedError):
        spent.spend([first[0]], now=NOW + 10 + CLOCK_SKEW)
    spent.spend(later, now=NOW + 11 + CLOCK_SKEW)  # they expired: forgotten, room made
    assert len(spent) == 1
    # a request naming one spent approval among fresh ones spends none of them
    fresh = Approval.decode(approve(APPROVERS[0], not_after=NOW + 900))
    with pytest.raises(ApprovalReusedError) as caught:
        spent.spend([fresh, later[0]], now=NOW + 100)
    assert caught.value.index == 1
    spent.spend([fresh], now=NOW + 100)


def test_a_decrypt_approval_is_single_use_on_each_node(ca: EmulatedCa) -> None:
    """Item 8: a decrypt approval was a reusable decryption capability until it expired; each
    node now gives at most one partial decryption per approval (signing approvals are not
    affected), and forgets what it spent when it restarts (the documented limit)."""
    cluster = Cluster(ca)

    async def use() -> None:
        public = await cluster.create_key("payroll", "ed25519", POLICY.encode())
        gpk = public.group_public_key.to_bytes()
        now = int(time.time())
        ct = encrypt(public.group_public_key, b"salaries", OsRandom(), b"q3").to_bytes()
        digest = decryption_digest(ct, b"q3")
        approvals = tuple(
            approve(
                k, name="payroll", gpk=gpk, op=Operation.DECRYPT, digest=digest, not_after=now + 900
            )
            for k in APPROVERS[:2]
        )

        def request(given: tuple[bytes, ...]) -> DecryptPartial:
            return DecryptPartial("payroll", ct, os.urandom(32), b"q3", given)

        service = cluster.services["node-1"]
        # a refused request spends nothing
        short = await cluster.refusal("node-1", request(approvals[:1]))
        assert short.code is ErrorCode.QUORUM_NOT_MET
        assert isinstance(await service.dispatch(request(approvals)), Partial)
        reused = await cluster.refusal("node-1", request(approvals))
        assert reused.code is ErrorCode.APPROVAL_REUSED
        with pytest.raises(ApprovalReusedError) as caught:
            await service.dispatch(request(approvals))
        assert caught.value.index == 0
        # one spent approval among fresh ones: refused all the same
        third = approve(
            APPROVERS[2], name="payroll", gpk=gpk, op=Operation.DECRYPT, digest=digest,
            not_after=now + 900,
        )  # fmt: skip
        mixed = await cluster.refusal("node-1", request((third, approvals[1])))
        assert mixed.code is ErrorCode.APPROVAL_REUSED
        # each node keeps its own table: node-2 has not spent them
        assert isinstance(await cluster.services["node-2"].dispatch(request(approvals)), Partial)
        # a restart forgets (memory only): until it expires, the approval decrypts once more
        restarted = await cluster.restart("node-1")
        assert isinstance(await restarted.dispatch(request(approvals)), Partial)
        assert (await cluster.refusal("node-1", request(approvals))).code is (
            ErrorCode.APPROVAL_REUSED
        )
        # an approval living longer than the policy allows is refused by the node
        too_long = tuple(
            approve(
                k, name="payroll", gpk=gpk, op=Operation.DECRYPT, digest=digest,
                not_after=now + DEFAULT_APPROVAL_LIFETIME + CLOCK_SKEW + 3600,
            )
            for k in APPROVERS[:2]
        )  # fmt: skip
        refused = await cluster.refusal("node-3", request(too_long))
        assert refused.code is ErrorCode.APPROVAL_EXPIRED
        assert "lifetime" in refused.message
        # signing approvals stay usable for more than one signature of the same message
        sign = tuple(
            approve(k, name="payroll", gpk=gpk, not_after=now + 900) for k in APPROVERS[:2]
        )
        signers = ("node-1", "node-2")
        for _ in range(2):
            package = frost_package(await committed(cluster, "payroll", signers), b"wire 5 to 42")
            for node_id in signers:
                shares = await cluster.services[node_id].dispatch(
                    FrostSign("payroll", (package,), (sign,))
                )
                assert isinstance(shares, SignatureShares)

    asyncio.run(use())
