"""A witnessed checkpoint against a stored log: the log must CONTAIN the record (seq, hash) a peer
witnessed (it may have grown since); a log cut below it, or holding another record there, is
refused naming the seq and the witness."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from wire.audit import AuditChain, AuditVerificationError, SignedRecord
from wire.checkpoints import require_checkpoint


def _log(key: Ed25519PrivateKey, count: int, op: str = "frost_sign") -> list[SignedRecord]:
    chain = AuditChain("node-1", key.sign)
    return [
        chain.append(
            time_ms=1_700_000_000_000 + seq,
            client=b"",
            op=op,
            key="k",
            digest=b"",
            approvers=(),
            outcome="ok",
            epoch=0,
        )
        for seq in range(count)
    ]


def test_a_log_holding_the_witnessed_record_passes_even_when_it_grew_since() -> None:
    log = _log(Ed25519PrivateKey.generate(), 6)
    require_checkpoint(log, 3, log[3].hash, by="node-2")
    require_checkpoint(log, 5, log[5].hash, by="node-2")
    require_checkpoint(log[2:], 1, b"x" * 32, start_seq=2, by="node-2")  # before this segment


def test_a_log_cut_below_the_witnessed_record_is_refused_naming_the_seq() -> None:
    log = _log(Ed25519PrivateKey.generate(), 6)
    with pytest.raises(AuditVerificationError) as caught:
        require_checkpoint(log[:4], 5, log[5].hash, by="node-3")
    assert caught.value.seq == 5
    assert caught.value.position == 4
    assert "ends at seq 3, below seq 5 that node-3 witnessed" in str(caught.value)


def test_a_forked_log_is_refused_at_the_witnessed_seq() -> None:
    key = Ed25519PrivateKey.generate()
    log, fork = _log(key, 6), _log(key, 6, op="decrypt_partial")
    with pytest.raises(AuditVerificationError) as caught:
        require_checkpoint(fork, 4, log[4].hash, by="node-2")
    assert caught.value.seq == 4
    assert "differs from the record node-2 witnessed" in str(caught.value)
