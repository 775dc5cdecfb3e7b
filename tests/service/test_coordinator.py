"""The real client Coordinator against real in-process nodes (tests/service/inprocess.py): every
operation end to end, what it costs in requests, and every way the nodes can fail or disagree."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from collections.abc import Awaitable, Callable

import coincurve
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from inprocess import InProcessCluster

from enclave.sealing import MANIFEST_NAME
from enclave.service.witness import WitnessState
from keyshard.client.approvals import public_key_bytes, sign_approval
from keyshard.client.coordinator import Coordinator
from keyshard.client.errors import (
    InvalidInputError,
    KeyNotFoundError,
    ProtocolError,
    RemoteError,
    UnavailableError,
)
from wire.approvals import ApprovalPolicy, Operation, message_digest
from wire.errors import ErrorCode
from wire.messages import (
    DkgOutbox,
    DkgStep,
    FrostSign,
    KeyCreate,
    KeyCreated,
    KeyInfo,
    KeyInfoReply,
    NonceCommit,
    Partial,
    Presigned,
    Reply,
    Request,
    SignatureShares,
)


def drive(cluster: InProcessCluster, work: Callable[[Coordinator], Awaitable[object]]) -> object:
    async def main() -> object:
        async with cluster.coordinator() as coordinator:
            return await work(coordinator)

    return asyncio.run(main())


NODE_IDS = ("node-1", "node-2", "node-3")


def requests_of(cluster: InProcessCluster, kind: type[Request]) -> Counter[str]:
    return Counter(link.node_id for link in cluster.links for r in link.requests if type(r) is kind)


@pytest.fixture
def cluster() -> InProcessCluster:
    return InProcessCluster()


def test_frost_keys_sign_verifiably_and_decrypt(cluster: InProcessCluster) -> None:
    async def work(c: Coordinator) -> None:
        key = await c.create_key("k", threshold=1)
        signature = await c.sign("k", b"pay 5")
        Ed25519PublicKey.from_public_bytes(key.public_key).verify(signature, b"pay 5")
        secp = await c.create_key("s", suite="secp256k1", threshold=1)
        assert len(await c.sign("s", b"m")) == 65
        assert len(secp.public_key) == 33
        ciphertext = await c.encrypt("k", b"payroll", b"q3")
        assert await c.decrypt("k", ciphertext, b"q3") == b"payroll"
        assert await c.list_keys() == ["k", "s"]

    drive(cluster, work)


def test_a_signature_is_one_request_per_signer_once_the_key_is_known(
    cluster: InProcessCluster,
) -> None:
    async def work(c: Coordinator) -> None:
        await c.create_key("k", threshold=1)
        await c.sign("k", b"warm up")  # fetches a batch of nonce commitments
        for link in cluster.links:
            link.requests.clear()
        for k in range(20):
            await c.sign("k", b"m%d" % k)

    drive(cluster, work)
    every = Counter(type(r).__name__ for link in cluster.links for r in link.requests)
    assert every["FrostSign"] == 40  # 2 signers x 20 signatures
    assert every["KeyInfo"] == 0  # the description is cached
    assert every["NonceCommit"] <= 3  # refills are batched (64 commitments each)
    signers = requests_of(cluster, FrostSign)
    assert set(signers) == {"node-1", "node-2", "node-3"}  # by load, not by sorted order


def test_a_batch_signs_many_messages_in_one_round_trip_per_signer(
    cluster: InProcessCluster,
) -> None:
    messages = [b"tx %d" % k for k in range(100)]

    async def work(c: Coordinator) -> list[bytes]:
        key = await c.create_key("k", threshold=1)
        signatures = await c.sign_many("k", messages)
        public = Ed25519PublicKey.from_public_bytes(key.public_key)
        for message, signature in zip(messages, signatures, strict=True):
            public.verify(signature, message)
        return signatures

    drive(cluster, work)
    assert sum(requests_of(cluster, FrostSign).values()) == 4  # 64 + 36, two signers each


def test_threshold_ecdsa_pooled_presignatures_and_batches(cluster: InProcessCluster) -> None:
    async def work(c: Coordinator) -> None:
        key = await c.create_key("e", suite="ecdsa-secp256k1", threshold=1)
        public = coincurve.PublicKey(key.public_key)
        signatures = await c.sign_ecdsa_many("e", [b"a", b"b", b"c"])
        for message, signature in zip([b"a", b"b", b"c"], signatures, strict=True):
            recovered = coincurve.PublicKey.from_signature_and_message(
                signature.to_recoverable(), message_digest(message), hasher=None
            )
            assert recovered.format() == public.format()
        child = await c.sign_ecdsa("e", b"child", path="m/0/7")
        assert child.s <= coincurve.utils.GROUP_ORDER_INT // 2  # low-S
        with pytest.raises(InvalidInputError, match="m/0'"):
            await c.sign_ecdsa("e", b"x", path="m/0'")

    drive(cluster, work)


def test_nodes_that_disagree_about_a_key_are_refused(cluster: InProcessCluster) -> None:
    drive(cluster, lambda c: c.create_key("k", threshold=1))

    other = ApprovalPolicy(
        (public_key_bytes(Ed25519PrivateKey.generate()),), 1, frozenset({Operation.SIGN})
    )

    def other_policy_view(request: Request, reply: Reply) -> Reply:
        if isinstance(reply, KeyInfoReply):
            return dataclasses.replace(reply, policy=other.encode())
        return reply

    cluster.tamper["node-2"] = other_policy_view
    with pytest.raises(ProtocolError, match="disagree"):
        drive(cluster, lambda c: c.describe_key("k"))


def test_a_node_claiming_another_position_is_named(cluster: InProcessCluster) -> None:
    drive(cluster, lambda c: c.create_key("k", threshold=1))

    def wrong_identifier(request: Request, reply: Reply) -> Reply:
        if isinstance(reply, KeyInfoReply):
            return dataclasses.replace(reply, identifier=3)
        return reply

    cluster.tamper["node-1"] = wrong_identifier
    with pytest.raises(ProtocolError, match="claims party 3") as refused:
        drive(cluster, lambda c: c.describe_key("k"))
    assert refused.value.culprit == "node-1"


def test_no_such_key_is_not_unreachable(cluster: InProcessCluster) -> None:
    with pytest.raises(KeyNotFoundError):
        drive(cluster, lambda c: c.describe_key("absent"))
    drive(cluster, lambda c: c.create_key("k", threshold=1))
    cluster.stopped |= {"node-1", "node-2"}
    with pytest.raises(UnavailableError) as refused:
        drive(cluster, lambda c: c.describe_key("k"))
    assert (refused.value.have, refused.value.need) == (1, 2)
    cluster.stopped = {"node-1", "node-2", "node-3"}
    with pytest.raises(UnavailableError, match="no node is reachable"):
        drive(cluster, lambda c: c.sign("k", b"m"))


def test_with_one_node_down_the_others_sign_and_decrypt(cluster: InProcessCluster) -> None:
    drive(cluster, lambda c: c.create_key("k", threshold=1))
    cluster.stopped.add("node-1")

    async def work(c: Coordinator) -> bytes:
        await c.sign("k", b"m")
        return await c.decrypt("k", await c.encrypt("k", b"x"), b"")

    assert drive(cluster, work) == b"x"
    assert "node-1" not in requests_of(cluster, FrostSign)


def test_a_cheating_signer_is_named(cluster: InProcessCluster) -> None:
    drive(cluster, lambda c: c.create_key("k", threshold=1))

    def bad_share(request: Request, reply: Reply) -> Reply:
        if isinstance(reply, SignatureShares):
            share = bytearray(reply.shares[0])
            share[-1] ^= 1
            return SignatureShares((bytes(share),))
        return reply

    cluster.tamper["node-2"] = bad_share
    with pytest.raises(ProtocolError, match="do not verify") as refused:
        drive(cluster, lambda c: c.sign("k", b"m", signers=["node-1", "node-2"]))
    assert refused.value.culprit == "node-2"


def test_a_cheating_decryptor_is_named_and_input_errors_are_local(
    cluster: InProcessCluster,
) -> None:
    async def setup(c: Coordinator) -> bytes:
        await c.create_key("k", threshold=1)
        return await c.encrypt("k", b"secret", b"ctx")

    ciphertext = drive(cluster, setup)
    assert isinstance(ciphertext, bytes)
    with pytest.raises(InvalidInputError, match="does not decrypt"):
        drive(cluster, lambda c: c.decrypt("k", ciphertext, b"other context"))
    with pytest.raises(InvalidInputError, match="not a ciphertext"):
        drive(cluster, lambda c: c.decrypt("k", ciphertext[:20], b"ctx"))

    def bad_partial(request: Request, reply: Reply) -> Reply:
        if isinstance(reply, Partial):
            partial = bytearray(reply.partial)
            partial[-1] ^= 1
            return Partial(bytes(partial))
        return reply

    cluster.tamper["node-3"] = bad_partial
    with pytest.raises(ProtocolError) as refused:
        drive(cluster, lambda c: c.decrypt("k", ciphertext, b"ctx", nodes=["node-1", "node-3"]))
    assert refused.value.culprit == "node-3"


def test_dkg_relay_refuses_misaddressed_early_and_diverging_answers(
    cluster: InProcessCluster,
) -> None:
    def misaddressed(request: Request, reply: Reply) -> Reply:
        if isinstance(reply, DkgOutbox) and isinstance(request, DkgStep):
            return DkgOutbox({k: v for k, v in reply.outbox.items() if k != "node-1"})
        return reply

    cluster.tamper["node-2"] = misaddressed
    with pytest.raises(ProtocolError, match="misaddressed") as refused:
        drive(cluster, lambda c: c.create_key("a", threshold=1))
    assert refused.value.culprit == "node-2"

    fresh = InProcessCluster()
    fresh.tamper["node-3"] = lambda request, reply: (
        KeyCreated(b"\x01" * 40, {}) if isinstance(request, DkgStep) else reply
    )
    with pytest.raises(ProtocolError, match="early") as refused:
        drive(fresh, lambda c: c.create_key("b", threshold=1))
    assert refused.value.culprit == "node-3"

    third = InProcessCluster()
    honest_key = drive(InProcessCluster(), lambda c: c.create_key("c", threshold=1))
    assert hasattr(honest_key, "public")

    def other_key(request: Request, reply: Reply) -> Reply:
        if isinstance(reply, KeyCreated):
            return dataclasses.replace(reply, public_key_package=honest_key.public.to_bytes())  # type: ignore[attr-defined]
        return reply

    third.tamper["node-1"] = other_key
    with pytest.raises(ProtocolError, match="different public keys"):
        drive(third, lambda c: c.create_key("c", threshold=1))


def test_presigners_that_disagree_are_refused(cluster: InProcessCluster) -> None:
    drive(cluster, lambda c: c.create_key("e", suite="ecdsa-secp256k1", threshold=1))

    def other_id(request: Request, reply: Reply) -> Reply:
        if isinstance(reply, Presigned):
            return Presigned((b"\x07" * 32,) * len(reply.big_rs), reply.big_rs)
        return reply

    cluster.tamper["node-2"] = other_id
    with pytest.raises(ProtocolError, match="disagree"):
        drive(cluster, lambda c: c.presign("e", count=2))


def test_a_wrong_reply_type_is_a_protocol_error(cluster: InProcessCluster) -> None:
    drive(cluster, lambda c: c.create_key("k", threshold=1))
    cluster.tamper["node-1"] = lambda request, reply: (
        Partial(b"\x00") if isinstance(request, KeyInfo) else reply
    )
    with pytest.raises(ProtocolError, match="answered key_info with partial"):
        drive(cluster, lambda c: c.describe_key("k"))


def test_a_restarted_node_is_reconnected_and_its_lost_nonces_replaced(
    cluster: InProcessCluster,
) -> None:
    async def work(c: Coordinator) -> None:
        key = await c.create_key("k", threshold=1)
        await c.sign("k", b"before", signers=["node-1", "node-2"])
        await cluster.restart("node-1")  # new boot: the nonces it committed are gone
        signature = await c.sign("k", b"after", signers=["node-1", "node-2"])
        Ed25519PublicKey.from_public_bytes(key.public_key).verify(signature, b"after")
        for link in cluster.links:
            link.break_()  # every channel drops between two requests
        await c.sign("k", b"again")
        ecdsa = await c.create_key("e", suite="ecdsa-secp256k1", threshold=1)
        await c.sign_ecdsa("e", b"pooled")
        await cluster.restart("node-2")  # its presignatures are gone too
        for link in cluster.links:
            link.break_()
        signature_e = await c.sign_ecdsa("e", b"after restart")
        assert signature_e.r > 0
        assert ecdsa.public_key

    drive(cluster, work)
    refused = [r for link in cluster.links if link.node_id == "node-1" for r in link.requests]
    assert any(isinstance(r, NonceCommit) for r in refused)


def test_refusals_carry_wire_codes_and_are_not_retried(cluster: InProcessCluster) -> None:
    drive(cluster, lambda c: c.create_key("k", threshold=1))
    for link in cluster.links:
        link.requests.clear()
    with pytest.raises(RemoteError) as refused:
        drive(cluster, lambda c: c.create_key("k", threshold=1))
    assert refused.value.error_code is ErrorCode.KEY_EXISTS
    assert requests_of(cluster, KeyCreate) == Counter(dict.fromkeys(NODE_IDS, 1))  # no retry
    assert not requests_of(cluster, DkgStep)  # and nothing after the refusal
    with pytest.raises(InvalidInputError, match="unknown key suite"):
        drive(cluster, lambda c: c.create_key("x", suite="rsa"))
    with pytest.raises(InvalidInputError, match="needs n >= 3"):
        drive(
            cluster,
            lambda c: c.create_key(
                "x", suite="ecdsa-secp256k1", nodes=["node-1", "node-2"], threshold=1
            ),
        )
    assert sum(requests_of(cluster, KeyCreate).values()) == 3  # refused here: no node asked


def test_ecdsa_keys_refuse_frost_and_decryption(cluster: InProcessCluster) -> None:
    drive(cluster, lambda c: c.create_key("e", suite="ecdsa-secp256k1", threshold=1))
    with pytest.raises(InvalidInputError, match="sign it with ECDSA"):
        drive(cluster, lambda c: c.sign("e", b"m"))
    with pytest.raises(InvalidInputError, match="does not decrypt"):
        drive(cluster, lambda c: c.encrypt("e", b"m"))


def test_concurrent_signatures_leave_as_one_batch_and_a_bad_approval_stays_its_own(
    cluster: InProcessCluster,
) -> None:
    approver = Ed25519PrivateKey.generate()
    policy = ApprovalPolicy((public_key_bytes(approver),), 1, frozenset({Operation.SIGN}))

    async def work(c: Coordinator) -> list[object]:
        key = await c.create_key("k", threshold=1, policy=policy)
        messages = [b"m%d" % i for i in range(10)]

        def approval(message: bytes) -> tuple[bytes, ...]:
            return (
                sign_approval(
                    approver,
                    key_name="k",
                    group_public_key=key.public_key,
                    operation=Operation.SIGN,
                    digest=message_digest(message),
                    not_after=int(time.time()) + 900,  # nodes refuse beyond the lifetime
                ).encode(),
            )

        approvals = [approval(m) for m in messages]
        approvals[4] = approval(b"something else")  # one caller's approval is for another message
        for link in cluster.links:
            link.requests.clear()
        return list(
            await asyncio.gather(
                *(c.sign("k", m, approvals=a) for m, a in zip(messages, approvals, strict=True)),
                return_exceptions=True,
            )
        )

    outcomes = drive(cluster, work)
    assert isinstance(outcomes, list)
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(refused) == 1
    assert isinstance(outcomes[4], RemoteError)
    assert outcomes[4].error_code is ErrorCode.APPROVAL_MISMATCH
    batches = [r for link in cluster.links for r in link.requests if isinstance(r, FrostSign)]
    assert max(len(b.packages) for b in batches) == 10  # the first attempt carried all ten
    assert sum(len(b.packages) == 10 for b in batches) == 2  # once to each of the two signers


def test_a_holder_that_lost_its_share_is_reported_and_skipped(cluster: InProcessCluster) -> None:
    """Issue 9 item 5 (the client's part): a node whose sealed share was deleted used to be
    skipped without a word. Now the key's description names it, and it is never chosen to sign."""
    drive(cluster, lambda c: c.create_key("k", threshold=1))
    # the parent deletes node-2's share and, to hide it, the sealed manifest too ...
    del cluster.hosts["node-2"].blobs["key-k"]
    del cluster.hosts["node-2"].blobs[MANIFEST_NAME]

    async def work(c: Coordinator) -> tuple[object, list[str]]:
        await cluster.restart("node-2")  # ... and node-2 comes back without it
        key = await c.describe_key("k")
        signers = []
        for k in range(6):
            await c.sign("k", b"m%d" % k)
        signers = sorted(requests_of(cluster, FrostSign))
        return key, signers

    key, signers = drive(cluster, work)  # type: ignore[misc]
    assert key.missing == ("node-2",)  # type: ignore[attr-defined]
    assert "node-2" not in key.holders  # type: ignore[attr-defined]
    assert signers == ["node-1", "node-3"]


def test_a_holder_whose_sealed_blob_is_gone_does_not_stop_the_others(
    cluster: InProcessCluster,
) -> None:
    """A node that cannot read its own share (the manifest lists a blob the parent deleted)
    refuses; the key is still described and used by the other holders, and the node named."""
    drive(cluster, lambda c: c.create_key("k", threshold=1))
    del cluster.hosts["node-3"].blobs["key-k"]

    async def work(c: Coordinator) -> object:
        await cluster.restart("node-3")
        key = await c.describe_key("k")
        await c.sign("k", b"still signs")
        return key

    key = drive(cluster, work)
    assert key.missing == ("node-3",)  # type: ignore[attr-defined]


def test_a_node_handed_an_older_snapshot_is_named_and_skipped(cluster: InProcessCluster) -> None:
    """Issue 9 item 5 (the node's part): the parent hands node-2 an older, consistent snapshot
    of its whole sealed state. node-2 used to boot and serve from it; now the coordinator shows
    it its peers' witness reports, it refuses every key, and the client names it."""
    drive(cluster, lambda c: c.create_key("a", threshold=1))
    snapshot = dict(cluster.hosts["node-2"].blobs)
    drive(cluster, lambda c: c.create_key("b", threshold=1))  # witnessed by node-1 and node-3
    cluster.hosts["node-2"].blobs = snapshot

    async def work(c: Coordinator) -> object:
        await cluster.restart("node-2")
        key = await c.describe_key("a")
        await c.sign("a", b"still signs")
        return key

    key = drive(cluster, work)
    assert key.missing == ("node-2",)  # type: ignore[attr-defined]
    gate = cluster.services["node-2"].witness_gate
    assert gate.state is WitnessState.ROLLED_BACK
    assert "rolled back" in gate.reason
