"""A witnessed checkpoint against a stored log: the log must CONTAIN the record (seq, hash) a peer
witnessed (it may have grown since); a log cut below it, or holding another record there, is
refused naming the seq and the witness."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from wire.audit import AuditChain, AuditVerificationError, SignedRecord
from wire.binding import IdentitySignatureError
from wire.checkpoints import AuditCheckpoint, WitnessedCheckpoint, require_checkpoint
from wire.errors import MalformedMessageError

#: Byte snapshots (Ed25519 is deterministic): node-1's checkpoint at seq 41 under the key of seed
#: 0..31, and node-2's record of it under the key of seed 1..32. A changed snapshot is a format
#: break: checkpoints are sealed in witness books and kept in auditors' files.
CHECKPOINT = bytes.fromhex(
    "a6617601637365711829637369675840b56d76cb77154397ba8ae19a190dbc8ee60724193dd95f44a37109"
    "9193c1a66dffa3ddfa2342a444d20132da70ce434e9cfd78998ac4f228f99f00bfd3bfc80464686561645820"
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f646e6f6465666e6f64652d31"
    "686964656e74697479582003a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
)
WITNESSED_PREFIX = bytes.fromhex(
    "a56176016373696758406009609049030b08db4ceaac807442a36169bba78e6bdfe4c1432464c5c7403c9a85"
    "ed6db1db2df0797c83d9435ce60ec447a826a6776265dbcf1c4c84cfba0d677769746e657373666e6f64652d"
    "32686964656e74697479582079b5562e8fe654f94078b112e8a98ba7901f853ae695bed7e0e3910bad049664"
    "6a636865636b706f696e74"
)


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


def _key(seed: bytes) -> tuple[Ed25519PrivateKey, bytes]:
    key = Ed25519PrivateKey.from_private_bytes(seed)
    return key, key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def test_snapshots_and_byte_exact_round_trips() -> None:
    (node, node_public), (peer, peer_public) = _key(bytes(range(32))), _key(bytes(range(1, 33)))
    checkpoint = AuditCheckpoint.make(
        "node-1", 41, bytes(range(32)), sign=node.sign, identity_public_key=node_public
    )
    witnessed = WitnessedCheckpoint.make(
        "node-2", checkpoint, sign=peer.sign, identity_public_key=peer_public
    )
    assert checkpoint.encode() == CHECKPOINT
    assert witnessed.encode() == WITNESSED_PREFIX + CHECKPOINT
    assert AuditCheckpoint.decode(CHECKPOINT).encode() == CHECKPOINT
    assert WitnessedCheckpoint.decode(witnessed.encode()) == witnessed


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (CHECKPOINT.replace(b"\x61\x76\x01", b"\x61\x76\x02"), "checkpoint"),  # version 2
        (CHECKPOINT.replace(b"\x18\x29", b"\x38\x29"), "seq"),  # seq -42
        (CHECKPOINT.replace(b"\x58\x20\x00\x01", b"\x58\x20\x00\x02"), None),  # altered head
        (CHECKPOINT + b"\x00", "checkpoint"),  # trailing bytes
    ],
)
def test_malformed_checkpoints_are_refused_and_an_altered_one_fails_its_signature(
    data: bytes, field: str | None
) -> None:
    _, public = _key(bytes(range(32)))
    if field is None:
        with pytest.raises(IdentitySignatureError):
            AuditCheckpoint.decode(data).verify(public)
        return
    with pytest.raises(MalformedMessageError) as caught:
        AuditCheckpoint.decode(data)
    assert caught.value.field == field
