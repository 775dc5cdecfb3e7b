"""Peers witness each other's audit checkpoints (issue 12 item 1: "truncation of the tail is
detected through checkpoints that clients and peers witness"): a node signs the head of what its
parent took, its peers keep the highest one they saw (sealed, in the witness book beside the
state statements) and sign it for an auditor. Real NodeService objects, real emulated NSMs and
real sealed stores; the test plays the untrusted client relaying (and forging) checkpoints."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st
from service_fixtures import Cluster

from attestation.emulated_ca import EmulatedCa
from enclave.node_state import NodeIdentity
from enclave.secretbytes import SecretBytes
from enclave.service.audit import AuditNote, AuditTrail
from enclave.service.witness import StateStatement, WitnessBook
from wire.audit import SignedRecord
from wire.binding import IdentitySignatureError
from wire.checkpoints import AuditCheckpoint, WitnessedCheckpoint
from wire.errors import ErrorCode, MalformedMessageError
from wire.messages import (
    AuditHead,
    CheckpointQuery,
    CheckpointRecord,
    KeyInfo,
    Reply,
    Request,
    SignedCheckpoint,
    WitnessedCheckpointReply,
    WitnessRecorded,
)

#: A witness book sealed by the code before checkpoints were witnessed (version 1, commit
#: cc232a3): node-2 at epoch 7 and node-3 at epoch 3, under the identities of seeds 0..31 and
#: 1..32 (Ed25519 is deterministic, so these bytes are fixed).
V1_BOOK = bytes.fromhex(
    "a2617601677265636f726473a2666e6f64652d32a463736967584039f758744b46bc517e0ed7b41bba8f68"
    "9882fe56142b4579bdf5a61699ac54e98d61228eb15f922555828c827b19909a151f414f1269f6cc26aa6f"
    "3ce0848906646e6f6465666e6f64652d326565706f636807686964656e74697479582003a107bff3ce10be"
    "1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8666e6f64652d33a46373696758406b9ec758cf"
    "22a9fc0d865975c265c0315a4b4c15d3ef65b895b1c77845a5b9210993b8a3e25f5f5af9e08b72777b8816"
    "1cca29a0c732e3c43be9c0ba9e73a10c646e6f6465666e6f64652d336565706f636803686964656e746974"
    "79582079b5562e8fe654f94078b112e8a98ba7901f853ae695bed7e0e3910bad049664"
)


def _run(work: object) -> object:
    return asyncio.run(work)  # type: ignore[arg-type]


def _checkpoint(node_id: str, seq: int, identity: NodeIdentity) -> AuditCheckpoint:
    head = bytes([seq % 256]) * 32
    return AuditCheckpoint.make(
        node_id, seq, head, sign=identity.sign, identity_public_key=identity.public_key
    )


async def _answer(cluster: Cluster, node_id: str, request: Request) -> Reply:
    return await cluster.services[node_id].answer(request)


async def _head(cluster: Cluster, node_id: str) -> AuditCheckpoint:
    reply = await _answer(cluster, node_id, AuditHead())
    assert isinstance(reply, SignedCheckpoint), reply
    return AuditCheckpoint.decode(reply.checkpoint)


async def _witnessed(cluster: Cluster, witness: str, node_id: str) -> WitnessedCheckpoint | None:
    reply = await _answer(cluster, witness, CheckpointQuery(node_id))
    assert isinstance(reply, WitnessedCheckpointReply), reply
    return WitnessedCheckpoint.decode(reply.record) if reply.record else None


def test_checkpoints_round_trip_byte_exact_and_verify_only_under_their_key() -> None:
    node, peer, other = (NodeIdentity.generate() for _ in range(3))
    checkpoint = _checkpoint("node-1", 41, node)
    assert AuditCheckpoint.decode(checkpoint.encode()) == checkpoint
    assert AuditCheckpoint.decode(checkpoint.encode()).encode() == checkpoint.encode()
    checkpoint.verify(node.public_key)
    with pytest.raises(IdentitySignatureError):
        checkpoint.verify(other.public_key)  # names another key
    forged = AuditCheckpoint("node-1", 42, checkpoint.head, node.public_key, checkpoint.signature)
    with pytest.raises(IdentitySignatureError):
        forged.verify(node.public_key)  # a higher seq under the old signature

    witnessed = WitnessedCheckpoint.make(
        "node-2", checkpoint, sign=peer.sign, identity_public_key=peer.public_key
    )
    assert WitnessedCheckpoint.decode(witnessed.encode()) == witnessed
    witnessed.verify(peer.public_key)
    with pytest.raises(IdentitySignatureError):
        witnessed.verify(node.public_key)
    relabelled = WitnessedCheckpoint(
        "node-3", checkpoint, peer.public_key, witnessed.signature
    )  # another witness's name on node-2's signature
    with pytest.raises(IdentitySignatureError):
        relabelled.verify(peer.public_key)
    with pytest.raises(MalformedMessageError, match="its own witness"):
        WitnessedCheckpoint("node-1", checkpoint, peer.public_key, witnessed.signature)


def test_the_book_keeps_the_highest_checkpoint_and_a_lower_one_never_replaces_it() -> None:
    node, reset = NodeIdentity.generate(), NodeIdentity.generate()
    book = WitnessBook()
    assert book.checkpoint("node-2") is None
    assert book.record_checkpoint(_checkpoint("node-2", 10, node))
    assert not book.record_checkpoint(_checkpoint("node-2", 9, node))
    assert not book.record_checkpoint(_checkpoint("node-2", 10, node))  # a replay: not news
    assert not book.record_checkpoint(_checkpoint("node-2", 0, reset))  # a reset node's first
    assert book.record_checkpoint(_checkpoint("node-2", 11, node))
    assert book.record(StateStatement.make("node-2", 4, node))
    held = book.checkpoint("node-2")
    assert held is not None
    assert held.seq == 11
    decoded = WitnessBook.decode(book.encode())
    assert decoded.checkpoint("node-2") == held
    assert decoded.get("node-2") == book.get("node-2")
    assert decoded.encode() == book.encode()


_IDENTITIES = [NodeIdentity(SecretBytes(bytes([i]) * 32)) for i in range(1, 4)]


@given(
    st.lists(
        st.tuples(st.sampled_from(["node-2", "node-3"]), st.integers(0, 50), st.integers(0, 2)),
        max_size=12,
    )
)
def test_whatever_order_checkpoints_come_in_the_book_holds_the_highest(
    seen: list[tuple[str, int, int]],
) -> None:
    book = WitnessBook()
    for node_id, seq, who in seen:
        book.record_checkpoint(_checkpoint(node_id, seq, _IDENTITIES[who]))
    for node_id in ("node-2", "node-3"):
        seqs = [seq for n, seq, _ in seen if n == node_id]
        held = book.checkpoint(node_id)
        assert (held.seq if held else None) == (max(seqs) if seqs else None)
    assert WitnessBook.decode(book.encode()).encode() == book.encode()


def test_a_book_sealed_before_checkpoints_still_decodes() -> None:
    book = WitnessBook.decode(V1_BOOK)
    node_2 = NodeIdentity(SecretBytes(bytes(range(32))))
    statement = book.get("node-2")
    assert statement is not None
    assert statement.epoch == 7
    statement.verify(node_2.public_key)
    held = book.get("node-3")
    assert held is not None
    assert held.epoch == 3
    assert book.checkpoint("node-2") is None
    # sealed again, it is a version 2 book holding the same records
    assert book.record_checkpoint(_checkpoint("node-2", 5, node_2))
    again = WitnessBook.decode(book.encode())
    assert again.get("node-3") == held
    assert again.checkpoint("node-2") == book.checkpoint("node-2")
    with pytest.raises(MalformedMessageError, match="unknown version"):
        WitnessBook.decode(V1_BOOK.replace(b"\x61\x76\x01", b"\x61\x76\x03"))
    with pytest.raises(MalformedMessageError, match="unknown version"):
        WitnessBook.decode(V1_BOOK.replace(b"\x61\x76\x01", b"\x61\x76\xf5"))  # v: true


def test_peers_keep_the_highest_checkpoint_sealed_and_sign_it_for_an_auditor(
    ca: EmulatedCa,
) -> None:
    cluster = Cluster(ca)
    _run(cluster.create_key("k"))
    node_1 = cluster.services["node-1"].identity.node_identity.public_key
    node_2 = cluster.services["node-2"].identity.node_identity.public_key

    async def work() -> None:
        assert (await _answer(cluster, "node-1", AuditHead())) == SignedCheckpoint(b"")
        await _answer(cluster, "node-1", KeyInfo("unknown"))  # a refusal: a record
        early = await _head(cluster, "node-1")
        early.verify(node_1)
        assert early.seq == cluster.services["node-1"].audit.seq - 1
        assert early.head == cluster.services["node-1"].audit.head
        assert await _witnessed(cluster, "node-2", "node-1") is None
        documents = {"node-1": cluster.nodes["node-1"].document()}
        record = CheckpointRecord(documents, {"node-1": early.encode()})
        assert await _answer(cluster, "node-2", record) == WitnessRecorded(("node-1",))

        await _answer(cluster, "node-1", KeyInfo("no-such-key"))  # a refusal: one record more
        late = await _head(cluster, "node-1")
        assert late.seq == early.seq + 1
        later = CheckpointRecord(documents, {"node-1": late.encode()})
        assert await _answer(cluster, "node-2", later) == WitnessRecorded(("node-1",))
        # the older checkpoint relayed again (a client or parent replaying it) changes nothing
        assert await _answer(cluster, "node-2", record) == WitnessRecorded(())

        # kept sealed: a restarted witness still signs the higher one for an auditor
        await cluster.restart("node-2")
        node_2_after = cluster.services["node-2"].identity.node_identity.public_key
        assert node_2_after == node_2  # the same long-term identity
        witnessed = await _witnessed(cluster, "node-2", "node-1")
        assert witnessed is not None
        witnessed.verify(node_2)
        witnessed.checkpoint.verify(node_1)
        assert witnessed.witness_id == "node-2"
        assert witnessed.checkpoint == late

    _run(work())


def test_a_forged_checkpoint_is_refused_and_nothing_recorded(ca: EmulatedCa) -> None:
    """A client (or parent) cannot plant a checkpoint: it must verify under the identity key
    the node's own document binds, and be filed under its own node."""
    cluster = Cluster(ca)

    async def work() -> None:
        await _answer(cluster, "node-3", KeyInfo("unknown"))  # a refusal: a record
        genuine = await _head(cluster, "node-3")
        forged = _checkpoint("node-1", 10**6, NodeIdentity.generate())
        documents = cluster.documents(["node-1", "node-3"])
        request = CheckpointRecord(
            documents, {"node-1": forged.encode(), "node-3": genuine.encode()}
        )
        refusal = await cluster.refusal("node-2", request)
        assert refusal.code is ErrorCode.PROTOCOL
        assert "audit checkpoint of node-1 is not signed" in refusal.message
        misfiled = CheckpointRecord(
            cluster.documents(["node-1"]), {"node-1": genuine.encode()}
        )  # node-3's checkpoint filed as node-1's
        refusal = await cluster.refusal("node-2", misfiled)
        assert "filed for node-1 is node-3's" in refusal.message
        assert await _witnessed(cluster, "node-2", "node-1") is None
        assert await _witnessed(cluster, "node-2", "node-3") is None
        own = CheckpointRecord(cluster.documents(["node-2"]), {"node-2": b"\xa0"})
        assert "not its own witness" in (await cluster.refusal("node-2", own)).message
        assert (
            "not its own witness"
            in (await cluster.refusal("node-2", CheckpointQuery("node-2"))).message
        )

    _run(work())


def test_a_checkpoint_vouches_only_for_records_the_parent_took() -> None:
    """Records still in memory are not vouched for (a crash could lose them, and the witnessed
    checkpoint would then accuse an honest parent); a batch the parent refuses keeps the older
    head."""
    identity = NodeIdentity.generate()
    taken: list[SignedRecord] = []
    refusing = False

    async def ship(batch: tuple[SignedRecord, ...]) -> None:
        if refusing:
            raise OSError("the parent does not take it")
        taken.extend(batch)

    trail = AuditTrail("node-1", identity.sign, ship=ship)

    def record() -> None:
        trail.append(
            client=b"", op="key_info", key="k", outcome="ok", result=b"", current=AuditNote()
        )

    def stored() -> tuple[int, bytes] | None:
        return trail.stored_head

    async def work() -> None:
        nonlocal refusing
        record()
        assert stored() is None
        assert await trail.flush()
        assert stored() == (0, taken[-1].hash)
        refusing = True
        record()
        assert not await trail.flush()
        assert stored() == (0, taken[-1].hash)
        refusing = False
        assert await trail.flush()
        assert stored() == (1, taken[-1].hash)
        assert [r.record().seq for r in taken] == [0, 1]  # never shipped twice

    _run(work())
    resumed = AuditTrail("node-1", identity.sign, ship=ship)
    resumed.resume(None)
    assert resumed.stored_head is None
