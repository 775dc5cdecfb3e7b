"""Audit checkpoints the peers witnessed, for an auditor: collect them, check them offline, and
require a stored log to reach them (issue 12: tail truncation caught through peers' checkpoints).

Each node signs the head of the audit records its parent took (``wire.checkpoints``); its peers
keep the highest they were handed (:meth:`WitnessRelay.checkpoints`, and after every change of
sealed state). :func:`collect_checkpoints` asks every node for its record of every peer: each
answer is signed by the *witness's* identity key and travels with the witness's attestation
document, so a checkpoints file is evidence an auditor keeps and checks later with nothing but
the profile's pinned root and released PCRs, as receipts are (:func:`verify_witnessed`). Then
:func:`check_witnessed` refuses a node's log unless it holds every record its peers witnessed —
a parent that cut the log's tail (or forked it) is named with the node and the seq.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from keyshard.client.channel import NodeTrust
from keyshard.client.coordinator import Coordinator
from keyshard.client.errors import ChannelError, RemoteError
from keyshard.client.receipts import ReceiptError, identity_key
from wire.audit import SignedRecord
from wire.binding import IdentitySignatureError
from wire.checkpoints import AuditCheckpoint, WitnessedCheckpoint, require_checkpoint
from wire.errors import MalformedMessageError
from wire.messages import CheckpointQuery, WitnessedCheckpointReply

__all__ = [
    "CHECKPOINT_KIND",
    "Witnessed",
    "check_witnessed",
    "collect_checkpoints",
    "dumps",
    "verify_witnessed",
]

CHECKPOINT_KIND = "keyshard-witnessed-checkpoint-v1"


@dataclass(frozen=True, slots=True)
class Witnessed:
    """One peer's signed record of a node's audit checkpoint, with the peer's document."""

    record: WitnessedCheckpoint
    document: bytes

    @property
    def witness_id(self) -> str:
        return self.record.witness_id

    @property
    def checkpoint(self) -> AuditCheckpoint:
        return self.record.checkpoint

    def to_json(self) -> dict[str, object]:
        """One line of a checkpoints file (``keyshard audit verify --witnessed`` reads them)."""
        return {
            "kind": CHECKPOINT_KIND,
            "witness": self.witness_id,
            "node_id": self.checkpoint.node_id,
            "seq": self.checkpoint.seq,
            "head": self.checkpoint.head.hex(),
            "record": self.record.encode().hex(),
            "document": base64.b64encode(self.document).decode(),
        }

    @classmethod
    def from_json(cls, entry: object) -> Witnessed:
        """The signed fields only (``record``, ``document``): the rest is for people."""
        if not isinstance(entry, dict) or entry.get("kind") != CHECKPOINT_KIND:
            raise ReceiptError("not a witnessed checkpoint")
        try:
            record = WitnessedCheckpoint.decode(bytes.fromhex(entry["record"]))
            return cls(record, base64.b64decode(entry["document"], validate=True))
        except (KeyError, TypeError, ValueError, MalformedMessageError):
            raise ReceiptError("malformed witnessed checkpoint") from None


def loads(text: str) -> list[Witnessed]:
    """The entries of a checkpoints file (JSON lines); raises :class:`ReceiptError` naming the
    line that is not one."""
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            found.append(Witnessed.from_json(json.loads(line)))
        except (ValueError, ReceiptError) as error:
            raise ReceiptError(f"line {number}: {error}") from None
    return found


def dumps(entries: Iterable[Witnessed]) -> str:
    """Witnessed checkpoints as JSON lines."""
    return "".join(json.dumps(e.to_json(), sort_keys=True) + "\n" for e in entries)


async def collect_checkpoints(
    coordinator: Coordinator, node_ids: Iterable[str] | None = None
) -> list[Witnessed]:
    """Every reachable node's signed record of each peer's (or each named node's) highest
    audit checkpoint; a witness that is down or keeps none gives none. Not checked here:
    :func:`verify_witnessed` does that."""
    about = list(node_ids or coordinator.node_ids)

    async def ask(witness: str) -> list[Witnessed]:
        try:
            link = await coordinator.link(witness)
            replies = [(await link.request(CheckpointQuery(n)), n) for n in about if n != witness]
        except (ChannelError, RemoteError):
            return []
        return [
            Witnessed(WitnessedCheckpoint.decode(reply.record), link.document)
            for reply, _ in replies
            if isinstance(reply, WitnessedCheckpointReply) and reply.record
        ]

    found = await asyncio.gather(*(ask(w) for w in coordinator.node_ids))
    return [entry for entries in found for entry in entries]


def verify_witnessed(entry: Witnessed, trust: NodeTrust) -> AuditCheckpoint:
    """The checkpoint a witness vouches for, once the witness's document chains to the pinned
    root, measures a release and names the witness, and the key it binds signed the record
    (:class:`ReceiptError` names the failed check). The checkpoint's own signature is checked
    against its node's log document by :func:`check_witnessed`."""
    public = identity_key(entry.document, trust, entry.witness_id)
    try:
        entry.record.verify(public)
    except IdentitySignatureError:
        raise ReceiptError(
            f"{entry.witness_id}'s record of {entry.checkpoint.node_id}'s audit checkpoint: "
            "the signature does not verify under the identity key its document binds"
        ) from None
    return entry.checkpoint


def check_witnessed(
    records: Sequence[SignedRecord],
    identity_public_key: bytes,
    node_id: str,
    entries: Iterable[Witnessed],
) -> list[Witnessed]:
    """Refuse ``node_id``'s verified log (oldest first, from seq 0) unless it holds every
    record its peers witnessed (checked entries only); the entries about it. Raises
    :class:`ReceiptError` for a checkpoint its node did not sign with the log's identity key,
    and :class:`~wire.audit.AuditVerificationError` naming the seq for a cut or forked log."""
    about = [e for e in entries if e.checkpoint.node_id == node_id]
    for entry in sorted(about, key=lambda e: -e.checkpoint.seq):
        try:
            entry.checkpoint.verify(identity_public_key)
        except IdentitySignatureError:
            raise ReceiptError(
                f"the checkpoint {entry.witness_id} witnessed for {node_id} (seq "
                f"{entry.checkpoint.seq}) is not signed by the identity key of this log's "
                "document (the node's state was replaced, or the checkpoint forged)"
            ) from None
        require_checkpoint(
            records, entry.checkpoint.seq, entry.checkpoint.head, by=entry.witness_id
        )
    return about
