"""Peers witness each other's sealed state (issue 9 item 5): a node handed older state, or no
state at all, by its parent refuses to serve keys, with a reason naming the witness.

Before this, deleting a node's sealed manifest (or handing back an older consistent snapshot of
its whole state) made it boot ``ready`` and serve from that state without a word.
"""

from __future__ import annotations

import asyncio

import pytest
from service_fixtures import Cluster

from attestation.emulated_ca import EmulatedCa
from enclave.node_state import NodeIdentity
from enclave.service.errors import WitnessError
from enclave.service.witness import StateStatement, WitnessBook, quorum
from wire.errors import ErrorCode
from wire.messages import (
    AuditHead,
    ErrorReply,
    KeyInfo,
    KeyInfoReply,
    KeyList,
    SignedCheckpoint,
    SignedState,
    StateQuery,
    WitnessCheck,
    WitnessRecord,
    WitnessRecorded,
    WitnessVerdict,
)


def _run(work: object) -> object:
    return asyncio.run(work)  # type: ignore[arg-type]


def test_a_booted_node_serves_no_key_until_shown_its_peers_reports(ca: EmulatedCa) -> None:
    cluster = Cluster(ca)
    _run(cluster.create_key("k"))

    async def work() -> None:
        await cluster.restart("node-1", witness=False)
        refusal = await cluster.refusal("node-1", KeyInfo("k"))
        assert refusal.code is ErrorCode.UNWITNESSED
        verdict = await cluster.witness("node-1")
        assert verdict == WitnessVerdict("witnessed", 2, 1)
        assert isinstance(await cluster.services["node-1"].answer(KeyInfo("k")), KeyInfoReply)

    _run(work())


def test_a_rolled_back_node_refuses_every_key_naming_the_witness(ca: EmulatedCa) -> None:
    """The parent keeps a consistent snapshot of node-1's whole state, lets a key be created and
    witnessed, then hands the old snapshot back at the next boot: node-1 refuses."""
    cluster = Cluster(ca)
    _run(cluster.create_key("old"))
    _run(cluster.record_witnesses())
    snapshot = dict(cluster.hosts["node-1"].blobs)
    _run(cluster.create_key("new"))
    _run(cluster.record_witnesses())
    cluster.hosts["node-1"].blobs = snapshot

    async def work() -> None:
        await cluster.restart("node-1", witness=False)
        verdict = await cluster.witness("node-1")
        assert isinstance(verdict, ErrorReply)
        assert verdict.code is ErrorCode.ROLLED_BACK
        assert "witnessed node-1 at sealed-state epoch" in verdict.message
        assert "rolled back" in verdict.message
        for request in (KeyInfo("old"), KeyList(), WitnessCheck({"n": b"d"}, {"n": b"e"})):
            assert (await cluster.refusal("node-1", request)).code is ErrorCode.ROLLED_BACK
        # the other holders still serve
        assert isinstance(await cluster.services["node-2"].answer(KeyInfo("new")), KeyInfoReply)

    _run(work())


def test_a_node_whose_state_was_deleted_is_refused_as_reset(ca: EmulatedCa) -> None:
    """Deleting every sealed blob makes the next boot look like a first one (a new identity):
    peers that witnessed the old identity make it refuse."""
    cluster = Cluster(ca)
    _run(cluster.create_key("k"))
    _run(cluster.record_witnesses())
    cluster.hosts["node-3"].blobs.clear()

    async def work() -> None:
        await cluster.restart("node-3", witness=False)
        verdict = await cluster.witness("node-3")
        assert isinstance(verdict, ErrorReply)
        assert verdict.code is ErrorCode.ROLLED_BACK
        assert "another identity" in verdict.message
        assert "deleted or replaced" in verdict.message

    _run(work())


def test_an_honest_restart_is_witnessed_and_serves(ca: EmulatedCa) -> None:
    cluster = Cluster(ca)
    _run(cluster.create_key("k"))
    _run(cluster.record_witnesses())

    async def work() -> None:
        await cluster.restart("node-2", witness=False)
        assert await cluster.witness("node-2") == WitnessVerdict("witnessed", 2, 1)
        assert isinstance(await cluster.services["node-2"].answer(KeyInfo("k")), KeyInfoReply)

    _run(work())


def test_a_forged_statement_is_refused_and_nothing_recorded(ca: EmulatedCa) -> None:
    """A client cannot plant a record: a statement must verify under the identity key the
    node's own document binds."""
    cluster = Cluster(ca)
    forged = StateStatement.make("node-2", 10**6, NodeIdentity.generate()).encode()
    genuine = _run(cluster.services["node-3"].dispatch(StateQuery()))
    assert isinstance(genuine, SignedState)
    documents = {n: cluster.nodes[n].document() for n in ("node-2", "node-3")}

    async def work() -> None:
        request = WitnessRecord(documents, {"node-2": forged, "node-3": genuine.statement})
        refusal = await cluster.refusal("node-1", request)
        assert refusal.code is ErrorCode.PROTOCOL
        assert "another identity key" in refusal.message
        # the genuine statement alone is recorded; a replay of it is not news
        honest = WitnessRecord({"node-3": documents["node-3"]}, {"node-3": genuine.statement})
        assert await cluster.services["node-1"].dispatch(honest) == WitnessRecorded(("node-3",))
        assert await cluster.services["node-1"].dispatch(honest) == WitnessRecorded(())

    _run(work())


def test_reports_sealed_by_the_client_or_for_another_boot_do_not_count(ca: EmulatedCa) -> None:
    cluster = Cluster(ca)

    async def work() -> None:
        await cluster.restart("node-1", witness=False)
        documents = {"node-2": cluster.nodes["node-2"].document()}
        verdict = await cluster.services["node-1"].answer(
            WitnessCheck(documents, {"node-2": b"not an envelope"})
        )
        assert verdict == WitnessVerdict("pending", 0, 1)
        assert (await cluster.refusal("node-1", KeyList())).code is ErrorCode.UNWITNESSED

    _run(work())


def test_a_node_is_not_its_own_witness(ca: EmulatedCa) -> None:
    cluster = Cluster(ca)
    statement = _run(cluster.services["node-1"].dispatch(StateQuery()))
    assert isinstance(statement, SignedState)
    request = WitnessRecord(
        {"node-1": cluster.nodes["node-1"].document()}, {"node-1": statement.statement}
    )
    refusal = _run(cluster.refusal("node-1", request))
    assert refusal.code is ErrorCode.PROTOCOL  # type: ignore[attr-defined]


@pytest.mark.parametrize(("n", "needed"), [(1, 0), (2, 1), (3, 1), (4, 2), (5, 2), (7, 3)])
def test_quorum_and_record_rounds_always_intersect(n: int, needed: int) -> None:
    """q reports read, n-q peers written: q + (n - q) > n - 1, so a read meets a write."""
    assert quorum(n) == needed
    assert needed + (n - needed) > n - 1


def test_the_book_keeps_the_highest_epoch_and_a_reset_cannot_lower_it() -> None:
    old, new = NodeIdentity.generate(), NodeIdentity.generate()
    book = WitnessBook()
    assert book.record(StateStatement.make("node-2", 5, old))
    assert not book.record(StateStatement.make("node-2", 4, old))
    assert not book.record(StateStatement.make("node-2", 1, new))  # a reset node's first boot
    held = book.get("node-2")
    assert held is not None
    assert held.epoch == 5
    assert WitnessBook.decode(book.encode()).get("node-2") == held
    with pytest.raises(WitnessError, match="bad signature"):
        StateStatement("node-2", 6, old.public_key, held.signature).verify(old.public_key)


def test_a_pending_boot_signs_no_audit_checkpoint(ca: EmulatedCa) -> None:
    """A checkpoint shown to a pending boot must be of an earlier boot (the gate weighs it
    against the sealed audit head): so a boot signs none until it is witnessed."""
    cluster = Cluster(ca)
    _run(cluster.create_key("k"))

    async def work() -> None:
        await cluster.restart("node-1", witness=False)
        assert (await cluster.refusal("node-1", AuditHead())).code is ErrorCode.UNWITNESSED
        await cluster.witness("node-1")
        assert isinstance(await cluster.services["node-1"].answer(AuditHead()), SignedCheckpoint)

    _run(work())
