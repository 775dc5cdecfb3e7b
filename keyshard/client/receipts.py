"""Operation receipts: each node that took part vouches, with its attested identity key, for what
it did — and the offline check of receipts and whole audit logs against attestation documents.

A receipt is one record of the node's audit trail (``wire.audit``: operation, key, the digest of
the message or ciphertext, the approvers, the outcome, the key's epoch, the hash of the reply, and
the node's audit sequence number), its Ed25519 signature by the node's long-term identity key, and
the node's attestation document that binds that key (``ChannelBinding.identity_public_key``). It
is checked with nothing but the profile's pinned root and released PCRs (:func:`verify_receipt`):
the document chains to the root and measures a released image, it names the node, and the key it
binds signed the record. A receipt from another cluster fails the first check; one altered in
any byte fails the last.

A receipt is also a *checkpoint*: the node's signed head at that moment. A stored log that ends
before a receipt's sequence number, or holds another record there, was cut or forked
(:func:`check_checkpoints`) — the tail truncation that the chain alone cannot show.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from attestation.errors import AttestationError
from attestation.policy import AttestationPolicy
from keyshard.client.channel import NodeTrust
from keyshard.client.coordinator import Coordinator
from keyshard.client.errors import ChannelError, RemoteError
from wire.audit import AuditRecord, AuditVerificationError, SignedRecord, verify_log
from wire.binding import ChannelBinding
from wire.errors import MalformedMessageError
from wire.messages import MAX_AUDIT_RECEIPTS, AuditReceipts, AuditReceiptsReply

__all__ = [
    "RECEIPT_KIND",
    "Receipt",
    "ReceiptError",
    "check_checkpoints",
    "collect_receipts",
    "identity_key",
    "verify_receipt",
]

RECEIPT_KIND = "keyshard-receipt-v1"


class ReceiptError(Exception):
    """A receipt or document that does not verify; the message names the check."""


@dataclass(frozen=True, slots=True)
class Receipt:
    """One node's signed audit record of an operation, with the document binding its key."""

    node_id: str
    record: SignedRecord
    document: bytes

    def to_json(self) -> dict[str, object]:
        """One JSON line of a receipts file (``keyshard audit verify`` reads them)."""
        fields = self.record.to_json()
        return {
            "kind": RECEIPT_KIND,
            "node_id": self.node_id,
            "seq": fields["seq"],
            "op": fields["op"],
            "key": fields["key"],
            "digest": fields["digest"],
            "outcome": fields["outcome"],
            "body": fields["body"],
            "signature": fields["signature"],
            "document": base64.b64encode(self.document).decode(),
        }

    @classmethod
    def from_json(cls, entry: object) -> Receipt:
        if not isinstance(entry, dict) or entry.get("kind") != RECEIPT_KIND:
            raise ReceiptError("not a receipt")
        try:
            record = SignedRecord(bytes.fromhex(entry["body"]), bytes.fromhex(entry["signature"]))
            document = base64.b64decode(entry["document"], validate=True)
            return cls(str(entry["node_id"]), record, document)
        except (KeyError, TypeError, ValueError):
            raise ReceiptError("malformed receipt") from None

    @property
    def checkpoint(self) -> tuple[int, bytes]:
        """(seq, hash): the node's audit head this receipt witnessed."""
        return self.record.record().seq, self.record.hash


def identity_key(document: bytes, trust: NodeTrust, node_id: str | None = None) -> bytes:
    """The identity key ``document`` binds, once it chains to the pinned root (checked at the
    document's own time: stored documents outlive their leaf certificate), measures an accepted
    release and, if given, names ``node_id``."""
    try:
        verified = trust.verifier.verify(document, at="document")
        AttestationPolicy(pcr_sets=trust.pcr_sets).check(verified, now=verified.payload.timestamp)
        binding = ChannelBinding.decode(verified.payload.user_data)
    except (AttestationError, MalformedMessageError) as error:
        raise ReceiptError(
            f"attestation document refused: {type(error).__name__}: {error}"
        ) from None
    if node_id is not None and binding.node_id != node_id:
        raise ReceiptError(f"the document is {binding.node_id}'s, not {node_id}'s")
    return binding.identity_public_key


def verify_receipt(receipt: Receipt, trust: NodeTrust) -> AuditRecord:
    """The record a receipt vouches for, or :class:`ReceiptError` naming the failed check."""
    public = identity_key(receipt.document, trust, receipt.node_id)
    try:
        seq = receipt.record.record().seq
        prev = receipt.record.record().prev
        [record] = verify_log([receipt.record], public, node_id=receipt.node_id, start=(seq, prev))
    except (MalformedMessageError, AuditVerificationError) as error:
        raise ReceiptError(f"{receipt.node_id}: {error}") from None
    return record


def check_checkpoints(
    records: Sequence[SignedRecord], receipts: Iterable[Receipt], *, start_seq: int = 0
) -> None:
    """Refuse a log that lacks, or holds another record at, a sequence number a receipt of the
    same node witnessed (raises :class:`AuditVerificationError` naming the position)."""
    for receipt in receipts:
        seq, digest = receipt.checkpoint
        position = seq - start_seq
        if position >= len(records):
            raise AuditVerificationError(
                len(records),
                seq,
                f"the log ends before seq {seq}, which a receipt witnessed (cut, or not stored yet)",
            )
        if position >= 0 and records[position].hash != digest:
            raise AuditVerificationError(
                position, seq, "differs from the record a receipt witnessed at this seq"
            )


async def collect_receipts(
    coordinator: Coordinator, digests: Sequence[bytes], node_ids: Iterable[str] | None = None
) -> list[Receipt]:
    """This client's receipts for ``digests`` from every node (or those named); a node that is
    down or holds none gives none. Not checked here: :func:`verify_receipt` does that."""
    receipts: list[Receipt] = []
    wanted = tuple(dict.fromkeys(digests))[:MAX_AUDIT_RECEIPTS]
    for node_id in node_ids or coordinator.node_ids:
        try:
            link = await coordinator.link(node_id)
            reply = await link.request(AuditReceipts(wanted))
        except (ChannelError, RemoteError):
            continue
        if not isinstance(reply, AuditReceiptsReply):
            continue
        for body, signature in zip(reply.bodies, reply.signatures, strict=True):
            receipts.append(Receipt(node_id, SignedRecord(body, signature), link.document))
    return receipts


def dumps(receipts: Iterable[Receipt]) -> str:
    """Receipts as JSON lines."""
    return "".join(json.dumps(r.to_json(), sort_keys=True) + "\n" for r in receipts)
