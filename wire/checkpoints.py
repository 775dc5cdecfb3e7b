"""Audit checkpoints peers witness: how far a node's signed audit log reached, in two signatures.

A stored audit log (``wire.audit``) cut at its tail is still one valid chain; only a checkpoint —
a ``(seq, hash)`` of a record someone saw the node vouch for — shows the cut. Clients hold
checkpoints as receipts; this module is the peers' kind:

:class:`AuditCheckpoint`
    The node's word, signed by its long-term identity key (the key every attestation document of
    the node binds, which also signs its records), that its log holds record ``seq`` with hash
    ``head`` and that the parent took it (the enclave signs the head of what its parent
    acknowledged storing, never records still in memory).
:class:`WitnessedCheckpoint`
    A peer's word, signed by *its* identity key, that the highest checkpoint of ``node_id`` it
    keeps is this one. An auditor collects these from the peers and checks them offline against
    the peers' attestation documents, as receipts are checked: neither the parent that stores
    the log nor the client that relays them can make one up.

:func:`require_checkpoint` refuses a log that does not *contain* record ``seq`` with that hash (the
log may have grown since: it need not end there). Verification raises
:class:`wire.binding.IdentitySignatureError`, never returns a bool.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from wire import cbor
from wire.audit import AuditVerificationError, SignedRecord
from wire.binding import IdentitySignatureError, check_identity_signature
from wire.checks import check_node_id
from wire.errors import MalformedMessageError
from wire.hashing import lp_join

__all__ = ["AuditCheckpoint", "WitnessedCheckpoint", "require_checkpoint"]

VERSION = 1
_CHECKPOINT_DOMAIN = b"keyshard/audit-checkpoint/v1"
_WITNESSED_DOMAIN = b"keyshard/witnessed-checkpoint/v1"
_MAX_SEQ = 2**63 - 1
_CHECKPOINT_FIELDS = frozenset({"v", "node", "seq", "head", "identity", "sig"})
_WITNESSED_FIELDS = frozenset({"v", "witness", "checkpoint", "identity", "sig"})


def _key_and_signature(identity: object, signature: object) -> None:
    if type(identity) is not bytes or len(identity) != 32:
        raise MalformedMessageError("identity", "an Ed25519 public key is 32 bytes")
    if type(signature) is not bytes or len(signature) != 64:
        raise MalformedMessageError("sig", "an Ed25519 signature is 64 bytes")


@dataclass(frozen=True, slots=True)
class AuditCheckpoint:
    """``node_id``'s identity-signed word that its log holds record ``seq`` with hash ``head``."""

    node_id: str
    seq: int
    head: bytes
    identity_public_key: bytes
    signature: bytes = field(repr=False)

    def __post_init__(self) -> None:
        check_node_id(self.node_id)
        if type(self.seq) is not int or not 0 <= self.seq <= _MAX_SEQ:
            raise MalformedMessageError("seq", "must be a record's sequence number")
        if type(self.head) is not bytes or len(self.head) != 32:
            raise MalformedMessageError("head", "must be a 32-byte record hash")
        _key_and_signature(self.identity_public_key, self.signature)

    @staticmethod
    def signed_bytes(node_id: str, seq: int, head: bytes) -> bytes:
        return lp_join((_CHECKPOINT_DOMAIN, node_id.encode("utf-8"), struct.pack(">Q", seq), head))

    @classmethod
    def make(
        cls,
        node_id: str,
        seq: int,
        head: bytes,
        *,
        sign: Callable[[bytes], bytes],
        identity_public_key: bytes,
    ) -> AuditCheckpoint:
        """Sign ``(node_id, seq, head)`` with the identity key (``sign`` is its Ed25519)."""
        return cls(
            node_id, seq, head, identity_public_key, sign(cls.signed_bytes(node_id, seq, head))
        )

    def verify(self, identity_public_key: bytes) -> None:
        """Raise :class:`~wire.binding.IdentitySignatureError` unless signed by ``identity_public_key`` (the key the
        node's attestation document binds; a checkpoint naming another key is refused too)."""
        if self.identity_public_key != identity_public_key:
            raise IdentitySignatureError("the checkpoint names another identity key")
        check_identity_signature(
            identity_public_key, self.signature, self.signed_bytes(*self.position())
        )

    def position(self) -> tuple[str, int, bytes]:
        return self.node_id, self.seq, self.head

    def to_dict(self) -> dict[str, object]:
        return {
            "v": VERSION,
            "node": self.node_id,
            "seq": self.seq,
            "head": self.head,
            "identity": self.identity_public_key,
            "sig": self.signature,
        }

    @classmethod
    def from_dict(cls, value: object) -> AuditCheckpoint:
        if not isinstance(value, dict) or set(value) != _CHECKPOINT_FIELDS:
            raise MalformedMessageError("checkpoint", "must be a map of v, node, seq, head, ...")
        if value["v"] != VERSION or type(value["v"]) is not int:
            raise MalformedMessageError("checkpoint", f"unknown version (expected {VERSION})")
        return cls(value["node"], value["seq"], value["head"], value["identity"], value["sig"])

    def encode(self) -> bytes:
        return cbor.dumps(self.to_dict())

    @classmethod
    def decode(cls, data: bytes) -> AuditCheckpoint:
        return cls.from_dict(cbor.loads_map(data, what="checkpoint"))


@dataclass(frozen=True, slots=True)
class WitnessedCheckpoint:
    """Peer ``witness_id``'s identity-signed word that ``checkpoint`` is the highest of its node
    it keeps (what an auditor collects; :meth:`verify` checks the peer's signature only — the
    checkpoint's own is checked against its node's key)."""

    witness_id: str
    checkpoint: AuditCheckpoint
    identity_public_key: bytes
    signature: bytes = field(repr=False)

    def __post_init__(self) -> None:
        check_node_id(self.witness_id, "witness")
        if not isinstance(self.checkpoint, AuditCheckpoint):
            raise MalformedMessageError("checkpoint", "must be an audit checkpoint")
        if self.witness_id == self.checkpoint.node_id:
            raise MalformedMessageError("witness", "a node is not its own witness")
        _key_and_signature(self.identity_public_key, self.signature)

    @staticmethod
    def signed_bytes(witness_id: str, checkpoint: AuditCheckpoint) -> bytes:
        return lp_join((_WITNESSED_DOMAIN, witness_id.encode("utf-8"), checkpoint.encode()))

    @classmethod
    def make(
        cls,
        witness_id: str,
        checkpoint: AuditCheckpoint,
        *,
        sign: Callable[[bytes], bytes],
        identity_public_key: bytes,
    ) -> WitnessedCheckpoint:
        signature = sign(cls.signed_bytes(witness_id, checkpoint))
        return cls(witness_id, checkpoint, identity_public_key, signature)

    def verify(self, witness_public_key: bytes) -> None:
        """Raise :class:`~wire.binding.IdentitySignatureError` unless the witness's identity key signed it."""
        if self.identity_public_key != witness_public_key:
            raise IdentitySignatureError("the witnessed checkpoint names another identity key")
        check_identity_signature(
            witness_public_key, self.signature, self.signed_bytes(self.witness_id, self.checkpoint)
        )

    def encode(self) -> bytes:
        return cbor.dumps(
            {
                "v": VERSION,
                "witness": self.witness_id,
                "checkpoint": self.checkpoint.to_dict(),
                "identity": self.identity_public_key,
                "sig": self.signature,
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> WitnessedCheckpoint:
        value = cbor.loads_map(
            data, what="witnessed checkpoint", fields=_WITNESSED_FIELDS, version=VERSION
        )
        checkpoint = AuditCheckpoint.from_dict(value["checkpoint"])
        return cls(value["witness"], checkpoint, value["identity"], value["sig"])


def require_checkpoint(
    records: Sequence[SignedRecord], seq: int, head: bytes, *, start_seq: int = 0, by: str
) -> None:
    """Refuse a log (verified, oldest first, starting at ``start_seq``) that does not hold
    record ``seq`` with hash ``head``; ``by`` names who witnessed it. Raises
    :class:`~wire.audit.AuditVerificationError` naming the seq."""
    position = seq - start_seq
    if position < 0:
        return  # before this log's start: checked against the log that holds it
    if position >= len(records):
        last = start_seq + len(records) - 1
        raise AuditVerificationError(
            len(records),
            seq,
            f"the log ends at seq {last}, below seq {seq} that {by} witnessed: its tail was cut "
            "(or is not stored yet)",
        )
    if records[position].hash != head:
        raise AuditVerificationError(
            position, seq, f"differs from the record {by} witnessed at this seq (a forked log)"
        )
