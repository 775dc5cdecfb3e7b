"""The batch form of a partial decryption (``decrypt_partials``), on real NodeService objects
(real emulated NSMs, real sealed stores): every item is checked as a single ``decrypt_partial``
is — the encryptor's proof under the item's own context, approvals, the key's state — and the
batch is answered all or none, each refusal the code the single request gets for that item, with
nothing spent; every item is its own audit record (its decryption digest)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from service_fixtures import Cluster

from attestation.emulated_ca import EmulatedCa
from enclave.mpc.decryption.combine import combine
from enclave.mpc.decryption.ecies import Ciphertext, encrypt
from enclave.mpc.decryption.partial import PartialDecryption
from enclave.mpc.identifiers import Identifier
from enclave.mpc.keys import PublicKeyPackage
from enclave.service.handlers import NodeService, OsRandom
from keyshard.client.approvals import public_key_bytes, sign_approval
from wire.approvals import ApprovalPolicy, Operation, decryption_digest
from wire.errors import ErrorCode
from wire.messages import (
    DecryptPartial,
    DecryptPartials,
    ErrorReply,
    KeySetState,
    Partial,
    Partials,
    Reply,
    Request,
)

APPROVERS = [Ed25519PrivateKey.generate() for _ in range(2)]
POLICY = ApprovalPolicy(
    tuple(public_key_bytes(k) for k in APPROVERS), 2, frozenset({Operation.DECRYPT})
)
CONTEXTS = (b"q1", b"q2", b"q3")
SIGNERS = ("node-1", "node-2")  # t + 1 for t = 1


@pytest.fixture(scope="module")
def cluster(ca: EmulatedCa) -> Cluster:
    """One cluster for the module: key ``k`` (no policy), ``p`` (2 approvals to decrypt)."""
    cluster = Cluster(ca)
    asyncio.run(cluster.create_key("k"))
    asyncio.run(cluster.create_key("p", policy=POLICY.encode()))
    return cluster


def _public(cluster: Cluster, name: str) -> PublicKeyPackage:
    return asyncio.run(cluster.services["node-1"]._keys.usable(name)).share.public


def _identifier(cluster: Cluster, node_id: str) -> Identifier:
    return asyncio.run(cluster.services[node_id]._keys.usable("k")).share.identifier


def _encrypt(public: PublicKeyPackage, plaintext: bytes, context: bytes) -> bytes:
    return encrypt(public.group_public_key, plaintext, OsRandom(), context).to_bytes()


def _approvals(
    public: PublicKeyPackage, name: str, ciphertext: bytes, context: bytes
) -> tuple[bytes, ...]:
    return tuple(
        sign_approval(
            k,
            key_name=name,
            group_public_key=public.group_public_key.to_bytes(),
            operation=Operation.DECRYPT,
            digest=decryption_digest(ciphertext, context),
            not_after=int(time.time()) + 900,
        ).encode()
        for k in APPROVERS
    )


def _batch(
    name: str,
    ciphertexts: list[bytes],
    contexts: list[bytes],
    approvals: list[tuple[bytes, ...]] | None = None,
) -> DecryptPartials:
    return DecryptPartials(
        name,
        tuple(os.urandom(32) for _ in ciphertexts),
        tuple(ciphertexts),
        tuple(contexts),
        tuple(approvals or [()] * len(ciphertexts)),
    )


def _answer(service: NodeService, request: Request) -> Reply:
    return asyncio.run(service.answer(request))


def _records(service: NodeService, since: int) -> list[tuple[str, str, bytes]]:
    """(op, outcome, digest) of the audit records ``service`` made after the first ``since``."""
    return [
        (r.record().op, r.record().outcome, r.record().digest)
        for r in list(service.audit.history)[since:]
    ]


def test_a_batch_answers_one_partial_per_item_that_combine_opens(cluster: Cluster) -> None:
    """Each item's partial is proven under its own session id and combines with another node's
    into that item's plaintext; one audit record per item, each naming its digest."""
    public = _public(cluster, "k")
    plaintexts = [b"first", b"second", b"third"]
    ciphertexts = [_encrypt(public, p, c) for p, c in zip(plaintexts, CONTEXTS, strict=True)]
    request = _batch("k", ciphertexts, list(CONTEXTS))
    replies = {}
    for node_id in SIGNERS:
        service = cluster.services[node_id]
        before = len(service.audit.history)
        reply = _answer(service, request)
        assert isinstance(reply, Partials)
        assert len(reply.partials) == 3
        replies[node_id] = reply
        assert _records(service, before) == [
            ("decrypt_partials", "ok", decryption_digest(ct, c))
            for ct, c in zip(ciphertexts, CONTEXTS, strict=True)
        ]
    for i, (ciphertext, context) in enumerate(zip(ciphertexts, CONTEXTS, strict=True)):
        parsed = Ciphertext.from_bytes(ciphertext, public.group)
        partials = {
            _identifier(cluster, node_id): PartialDecryption.from_bytes(
                replies[node_id].partials[i], public.group
            )
            for node_id in SIGNERS
        }
        assert combine(public, parsed, partials, request.session_ids[i], context) == plaintexts[i]


def _crafted(public: PublicKeyPackage, victim: bytes) -> bytes:
    """``C' = (E + r·G, other body)``: a ciphertext whose ephemeral exponent nobody knows."""
    group = public.group
    target = Ciphertext.from_bytes(victim, group)
    moved = target.ephemeral + group.base_mul(group.scalar(0x5EED))
    return dataclasses.replace(target, ephemeral=moved, sealed=b"any body at all!" * 2).to_bytes()


def _single_code(service: NodeService, name: str, ciphertext: bytes, context: bytes) -> ErrorCode:
    reply = _answer(service, DecryptPartial(name, ciphertext, os.urandom(32), context))
    assert isinstance(reply, ErrorReply), reply
    return reply.code


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("bad proof", ErrorCode.PROTOCOL),
        ("wrong context", ErrorCode.PROTOCOL),
        ("not a ciphertext", ErrorCode.MALFORMED),
    ],
)
def test_one_bad_item_refuses_the_batch_with_the_single_requests_code(
    cluster: Cluster, case: str, code: ErrorCode
) -> None:
    """A bad item among good ones: the batch is refused with the code a single request for that
    item gets, no partial leaves, and each item noted so far is a refusal record of its own."""
    public = _public(cluster, "k")
    good = [_encrypt(public, b"fine", c) for c in CONTEXTS[:2]]
    contexts = list(CONTEXTS)
    if case == "bad proof":
        bad = _crafted(public, good[0])
    elif case == "wrong context":
        bad = _encrypt(public, b"fine", b"another context")
    else:
        bad = b"\x00not a ciphertext"
    service = cluster.services["node-1"]
    assert _single_code(service, "k", bad, contexts[2]) is code
    before = len(service.audit.history)
    reply = _answer(service, _batch("k", [*good, bad], contexts))
    assert isinstance(reply, ErrorReply)
    assert reply.code is code
    digests = [decryption_digest(ct, c) for ct, c in zip([*good, bad], contexts, strict=True)]
    records = _records(service, before)
    assert [r[:2] for r in records] == [("decrypt_partials", code.value)] * len(records)
    assert [r[2] for r in records] == digests[: len(records)]
    assert len(records) == 3
    # the good items alone are served: nothing of the refused batch was held against them
    assert isinstance(_answer(service, _batch("k", good, contexts[:2])), Partials)


def test_a_disabled_or_unknown_key_refuses_the_batch_as_it_refuses_one(cluster: Cluster) -> None:
    public = _public(cluster, "k")
    ciphertext = _encrypt(public, b"x", b"q1")
    service = cluster.services["node-3"]
    unknown = _answer(service, _batch("nothing", [ciphertext], [b"q1"]))
    assert isinstance(unknown, ErrorReply)
    assert unknown.code is ErrorCode.UNKNOWN_KEY
    assert unknown.code is _single_code(service, "nothing", ciphertext, b"q1")
    epoch = asyncio.run(service._keys.usable("k")).epoch
    assert not isinstance(_answer(service, KeySetState("k", "disable", epoch)), ErrorReply)
    try:
        disabled = _answer(service, _batch("k", [ciphertext], [b"q1"]))
        assert isinstance(disabled, ErrorReply)
        assert disabled.code is _single_code(service, "k", ciphertext, b"q1")
        assert disabled.code is not ErrorCode.INTERNAL
    finally:
        assert not isinstance(_answer(service, KeySetState("k", "enable", epoch)), ErrorReply)
    assert isinstance(_answer(service, _batch("k", [ciphertext], [b"q1"])), Partials)


def test_approvals_are_checked_per_item_and_spent_all_or_none(cluster: Cluster) -> None:
    """A key whose policy wants 2 approvals to decrypt: an item short of its quorum refuses the
    batch and spends nothing (the other items' approvals still open them); a served batch spends
    every item's approvals (each then refused as reused); one approval named by two items is
    refused before anything is spent."""
    public = _public(cluster, "p")
    ciphertexts = [_encrypt(public, b"pay", c) for c in CONTEXTS]
    approvals = [
        _approvals(public, "p", ct, c) for ct, c in zip(ciphertexts, CONTEXTS, strict=True)
    ]
    service = cluster.services["node-2"]

    short = _answer(service, _batch("p", ciphertexts, list(CONTEXTS), [*approvals[:2], ()]))
    assert isinstance(short, ErrorReply)
    assert short.code is ErrorCode.QUORUM_NOT_MET

    twice = _batch("p", [ciphertexts[0]] * 2, [CONTEXTS[0]] * 2, [approvals[0]] * 2)
    reused = _answer(service, twice)
    assert isinstance(reused, ErrorReply)
    assert reused.code is ErrorCode.APPROVAL_REUSED

    served = _answer(service, _batch("p", ciphertexts[:2], list(CONTEXTS[:2]), approvals[:2]))
    assert isinstance(served, Partials)
    for ciphertext, context, spent in zip(
        ciphertexts[:2], CONTEXTS[:2], approvals[:2], strict=True
    ):
        again = _answer(service, DecryptPartial("p", ciphertext, os.urandom(32), context, spent))
        assert isinstance(again, ErrorReply)
        assert again.code is ErrorCode.APPROVAL_REUSED
    single = DecryptPartial("p", ciphertexts[2], os.urandom(32), CONTEXTS[2], approvals[2])
    assert isinstance(_answer(service, single), Partial)


def test_a_key_with_mandatory_participants_is_decrypted_one_request_at_a_time(
    cluster: Cluster,
) -> None:
    """Endorsements are per request: the batch refuses such a key outright (no partial)."""
    policy = ApprovalPolicy(
        (public_key_bytes(APPROVERS[0]),),
        1,
        frozenset({Operation.SIGN}),
        mandatory_nodes=("node-3",),
    )
    public = asyncio.run(cluster.create_key("m", policy=policy.encode()))
    ciphertext = _encrypt(public, b"held", b"q1")
    other = _encrypt(public, b"held too", b"q2")
    for node_id in cluster.node_ids:
        service = cluster.services[node_id]
        before = len(service.audit.history)
        reply = _answer(service, _batch("m", [ciphertext, other], [b"q1", b"q2"]))
        assert isinstance(reply, ErrorReply)
        assert reply.code is ErrorCode.MANDATORY_PARTICIPANT
        refused = ErrorCode.MANDATORY_PARTICIPANT.value
        assert _records(service, before) == [  # a refusal record for each item
            ("decrypt_partials", refused, decryption_digest(ciphertext, b"q1")),
            ("decrypt_partials", refused, decryption_digest(other, b"q2")),
        ]
