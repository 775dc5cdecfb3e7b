"""The audit log's hash chain: a log verifies as written; flipping a byte of a stored record,
deleting a middle record, reordering two or cutting the tail (against a witnessed head) fails and
names the record; another node's key is refused."""

from __future__ import annotations

import hashlib
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from wire.audit import (
    AuditChain,
    AuditVerificationError,
    SignedRecord,
    parse_json_lines,
    verify_log,
)
from wire.errors import MalformedMessageError

CLIENT = hashlib.sha256(b"client certificate").digest()


def _public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _log(key: Ed25519PrivateKey, count: int = 4) -> list[SignedRecord]:
    chain = AuditChain("node-1", key.sign)
    outcomes = ["ok", "ok", "quorum_not_met", "ok", "unknown_key", "ok"]
    ops = ["frost_sign", "decrypt_partial", "frost_sign", "ecdsa_sign", "key_info", "frost_sign"]
    return [
        chain.append(
            time_ms=1_764_766_800_000 + n,
            client=CLIENT,
            op=ops[n % len(ops)],
            key="treasury",
            digest=hashlib.sha256(b"message %d" % n).digest(),
            approvers=(bytes([n + 1]) * 32,) if n == 2 else (),
            outcome=outcomes[n % len(outcomes)],
            epoch=0,
        )
        for n in range(count)
    ]


def _error(records: list[SignedRecord], public: bytes, **kw: object) -> AuditVerificationError:
    with pytest.raises(AuditVerificationError) as caught:
        verify_log(records, public, **kw)  # type: ignore[arg-type]
    return caught.value


def test_a_log_verifies_as_written_and_round_trips_through_json_lines() -> None:
    key = Ed25519PrivateKey.generate()
    log = _log(key)
    records = verify_log(log, _public(key), node_id="node-1")
    assert [r.seq for r in records] == [0, 1, 2, 3]
    assert [r.outcome for r in records] == ["ok", "ok", "quorum_not_met", "ok"]
    lines = [json.dumps(signed.to_json()) for signed in log]
    assert parse_json_lines(lines) == log
    assert json.loads(lines[2])["approvers"] == ["03" * 32]
    last = log[-1]
    assert verify_log(log, _public(key), expect_head=(3, last.hash))


@pytest.mark.parametrize("offset", [0, 5, -70, -1])
def test_a_flipped_byte_in_a_stored_record_is_named(offset: int) -> None:
    key = Ed25519PrivateKey.generate()
    log = _log(key)
    body = bytearray(log[1].body)
    body[offset] ^= 0x01
    log[1] = SignedRecord(bytes(body), log[1].signature)
    error = _error(log, _public(key))
    assert error.position == 1


def test_a_flipped_signature_byte_is_named() -> None:
    key = Ed25519PrivateKey.generate()
    log = _log(key)
    signature = bytearray(log[2].signature)
    signature[10] ^= 0x80
    log[2] = SignedRecord(log[2].body, bytes(signature))
    error = _error(log, _public(key))
    assert (error.position, error.seq) == (2, 2)
    assert "signature" in str(error)


def test_a_deleted_middle_record_is_named() -> None:
    key = Ed25519PrivateKey.generate()
    log = _log(key)
    del log[1]
    error = _error(log, _public(key))
    assert (error.position, error.seq) == (1, 2)
    assert "expected seq 1" in str(error)


def test_two_reordered_records_are_named() -> None:
    key = Ed25519PrivateKey.generate()
    log = _log(key)
    log[1], log[2] = log[2], log[1]
    error = _error(log, _public(key))
    assert (error.position, error.seq) == (1, 2)


def test_a_cut_tail_is_caught_only_against_a_witnessed_head() -> None:
    key = Ed25519PrivateKey.generate()
    log = _log(key)
    witnessed = (3, log[3].hash)
    assert verify_log(log[:3], _public(key))  # alone, a shorter log is a valid log
    error = _error(log[:3], _public(key), expect_head=witnessed)
    assert "witnessed head 3" in str(error)


def test_another_nodes_key_or_name_is_refused() -> None:
    key = Ed25519PrivateKey.generate()
    log = _log(key)
    assert _error(log, _public(Ed25519PrivateKey.generate())).position == 0
    assert "names node" in str(_error(log, _public(key), node_id="node-2"))


def test_records_refuse_malformed_fields() -> None:
    chain = AuditChain("node-1", Ed25519PrivateKey.generate().sign)
    with pytest.raises(MalformedMessageError):
        chain.append(
            time_ms=1,
            client=b"short",
            op="frost_sign",
            key="k",
            digest=b"",
            approvers=(),
            outcome="ok",
            epoch=0,
        )
    with pytest.raises(AuditVerificationError) as caught:
        parse_json_lines(["{}", "not json"])
    assert caught.value.position == 0
