"""A boot's witness gate weighs the peers' audit checkpoints too: a sealed state rolled back to
a snapshot of the same store epoch (no key changed since) passes the epoch check, but its sealed
audit head is older than records the peers witnessed. Sans-I/O: the gate and the report codec."""

from __future__ import annotations

import pytest

from enclave.node_state import NodeIdentity
from enclave.service.errors import RolledBackError, UnwitnessedError, WitnessError
from enclave.service.witness import (
    StateStatement,
    WitnessGate,
    WitnessState,
    decode_report,
    encode_report,
)
from wire import cbor
from wire.audit import GENESIS
from wire.checkpoints import AuditCheckpoint
from wire.errors import MalformedMessageError

ME = NodeIdentity.generate()
EPOCH = 4
#: This boot resumed its audit chain at seq 10, after the record whose hash is LAST.
LAST = bytes(range(32))
RESUMED = (10, LAST)


def _checkpoint(seq: int, head: bytes, identity: NodeIdentity = ME) -> AuditCheckpoint:
    return AuditCheckpoint.make(
        "node-1", seq, head, sign=identity.sign, identity_public_key=identity.public_key
    )


def _gate() -> WitnessGate:
    return WitnessGate("node-1", ME.public_key, cluster_size=3)  # one report needed


def _report(gate: WitnessGate, checkpoint: AuditCheckpoint | None) -> None:
    record = StateStatement.make("node-1", EPOCH, ME)
    gate.report("node-2", "node-1", record, EPOCH, checkpoint=checkpoint, audit_resumed=RESUMED)


@pytest.mark.parametrize(
    ("checkpoint", "why"),
    [
        (_checkpoint(10, b"\x01" * 32), "continues at seq 10"),  # a record after the resume point
        (_checkpoint(25, b"\x02" * 32), "continues at seq 10"),
        (_checkpoint(9, b"\x03" * 32), "another record before it"),  # the same seq, another record
        (_checkpoint(3, b"\x04" * 32, NodeIdentity.generate()), "another identity"),
    ],
)
def test_a_checkpoint_beyond_the_sealed_audit_head_ends_the_boot(
    checkpoint: AuditCheckpoint, why: str
) -> None:
    gate = _gate()
    _report(gate, checkpoint)
    assert gate.state is WitnessState.ROLLED_BACK
    assert why in gate.reason
    with pytest.raises(RolledBackError):
        gate.require_serving()


@pytest.mark.parametrize("checkpoint", [None, _checkpoint(9, LAST), _checkpoint(0, b"\x05" * 32)])
def test_a_checkpoint_the_sealed_head_covers_counts(checkpoint: AuditCheckpoint | None) -> None:
    gate = _gate()
    _report(gate, checkpoint)
    assert gate.state is WitnessState.WITNESSED
    gate.require_serving()


def test_a_forged_checkpoint_does_not_count_and_decides_nothing() -> None:
    genuine = _checkpoint(40, b"\x06" * 32)
    forged = AuditCheckpoint("node-1", 40, genuine.head, ME.public_key, bytes(64))
    gate = _gate()
    with pytest.raises(WitnessError, match="forged"):
        _report(gate, forged)
    assert gate.state is WitnessState.PENDING
    with pytest.raises(UnwitnessedError):
        gate.require_serving()


def test_another_nodes_checkpoint_is_refused() -> None:
    other = AuditCheckpoint.make(
        "node-3", 40, b"\x07" * 32, sign=ME.sign, identity_public_key=ME.public_key
    )
    gate = _gate()
    with pytest.raises(WitnessError, match="not this node's"):
        _report(gate, other)
    assert gate.state is WitnessState.PENDING


def test_once_witnessed_this_boots_own_checkpoints_are_not_weighed() -> None:
    """After the gate opened, the node signs checkpoints of this boot (seq >= the resume point):
    a late report carrying one must not end the boot."""
    gate = _gate()
    _report(gate, None)
    assert gate.state is WitnessState.WITNESSED
    _report(gate, _checkpoint(12, b"\x08" * 32))
    assert gate.state is WitnessState.WITNESSED


def test_a_first_boot_resumes_at_genesis_and_any_checkpoint_means_a_reset() -> None:
    gate = _gate()
    gate.report(
        "node-2",
        "node-1",
        None,
        0,
        checkpoint=_checkpoint(0, b"\x09" * 32),
        audit_resumed=(0, GENESIS),
    )
    assert gate.state is WitnessState.ROLLED_BACK


def test_reports_without_a_checkpoint_are_the_bytes_older_nodes_send_and_read() -> None:
    record = StateStatement.make("node-1", EPOCH, ME)
    plain = encode_report("node-1", record)
    assert set(cbor.loads_map(plain, what="report")) == {"v", "about", "record"}
    assert decode_report(plain) == ("node-1", record, None)
    checkpoint = _checkpoint(9, LAST)
    assert decode_report(encode_report("node-1", record, checkpoint)) == (
        "node-1",
        record,
        checkpoint,
    )
    extra = cbor.dumps({**cbor.loads_map(plain, what="report"), "more": 1})
    with pytest.raises(MalformedMessageError):
        decode_report(extra)
