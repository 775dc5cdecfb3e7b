"""Peers as witnesses of each other's sealed state: a node never serves keys from state older
than its peers saw it hold.

A lone enclave cannot tell, after a restart, whether the parent handed it its latest sealed state
or an older consistent snapshot — or nothing at all (a deleted manifest looks like a first boot):
see :mod:`enclave.sealing`. The state lives at the parent; the *record* of how far it got must
live somewhere the parent does not control. Here it lives at the peers, and travels through the
client like every other enclave-to-enclave message.

Record (after a change of sealed state; the client drives it)
    Node X answers ``state_query`` with a :class:`StateStatement`: its node id and store epoch,
    signed by its long-term identity key (created at first boot, sealed, bound into every
    document X's boots produce). The client hands X's document and statement to each peer Y
    (``witness_record``); Y verifies the document, that the statement verifies under the identity
    key the document binds, and keeps — sealed in its own state — the highest epoch per node.

Check (after every boot; the client drives it when a node answers ``unwitnessed``)
    X serves no key until it has been shown :func:`quorum` reports. The client asks peers Y for
    their report on X (``witness_query``, with X's current document); Y seals its record for X
    (or "none") in a ``crypto_box`` envelope from its per-boot box key to X's. The client hands
    X the envelopes with the peers' documents (``witness_check``). X opens each — only attested Y
    could have sealed it, for this boot of X — and:

    * a record signed by X's identity with an epoch above X's current store epoch: X was rolled
      back. X refuses every key (``rolled_back``, naming the peer and both epochs) for this boot;
    * a record under another identity: X's state was deleted or replaced (a fresh identity was
      created at a "first" boot). Refused the same way;
    * otherwise the report counts; at :func:`quorum` counted reports X serves.

Quorum: ``q = ceil((n-1)/2)`` reports of the ``n-1`` peers; the client records every statement at
every reachable peer, and a record round counts as witnessed when ``n-q`` peers hold it. Any ``q``
reports then include at least one peer holding the latest witnessed record (``q + (n-q) > n-1``).

Audit checkpoints (issue 12; :mod:`wire.checkpoints`) ride the same relay and the same sealed
book: a node answers ``audit_head`` with the head of the audit records its parent took, signed
by its identity key; the client hands it to each peer (``checkpoint_record``), which keeps the
highest per node (never lowered, as epochs); an auditor asks a peer for its record of a node
(``checkpoint_query``) and gets it signed by the peer's identity key, to check offline that the
parent's stored log of that node still holds that record (tail truncation). They also close
what the epoch check leaves open: a sealed state rolled back to a snapshot of the SAME store
epoch (signatures change no key, so the epoch does not move) carries an older sealed audit head.
A peer's report on X therefore carries the highest checkpoint of X it holds; a pending boot of X
weighs it against the head it resumed from (every checkpoint of an earlier boot names a record
sealed before it was shipped, so below that head; a node signs checkpoints only once witnessed,
so none of this boot can be shown to it while pending) and refuses every key on one beyond it.
A report without a checkpoint is the exact body nodes before checkpoints sent; one with it is
refused by those nodes (a node of the older release, restarting mid-rollout, then waits for
reports it can read: denial of service, never a wrong verdict).

What this does not do: a state never witnessed (a change whose record round did not reach
``n-q`` peers) can still be rolled back to the last witnessed one; a compromised peer can refuse
to report, or report a record for a node reset on purpose — denial of service, never a forged
key or an older share served. A node replaced on purpose (a new instance, new identity) is
refused by its peers' records until it is repaired into its keys under a new node id.
"""

from __future__ import annotations

import enum
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass

from enclave.node_state import NodeIdentity
from enclave.service.errors import RolledBackError, UnwitnessedError, WitnessError
from wire import cbor
from wire.binding import IdentitySignatureError, check_identity_signature
from wire.checkpoints import AuditCheckpoint
from wire.checks import check_node_id
from wire.errors import MalformedMessageError
from wire.hashing import lp_join

__all__ = [
    "WITNESS_BLOB",
    "StateStatement",
    "WitnessBook",
    "WitnessGate",
    "WitnessState",
    "decode_report",
    "encode_report",
    "quorum",
]

#: The sealed blob holding the records this node keeps for its peers.
WITNESS_BLOB = "witnesses"
_VERSION = 1
#: The sealed book's version: 2 adds audit checkpoints (version 1 books still decode).
_BOOK_VERSION = 2
_DOMAIN = b"keyshard/state-statement/v1"
_MAX_EPOCH = 2**64 - 1


def quorum(cluster_size: int) -> int:
    """Peer reports a node of an ``cluster_size``-node cluster needs before it serves."""
    return math.ceil((cluster_size - 1) / 2)


@dataclass(frozen=True, slots=True)
class StateStatement:
    """``node_id``'s word, signed by its identity key, that its sealed state reached ``epoch``."""

    node_id: str
    epoch: int
    identity_public_key: bytes
    signature: bytes

    def __post_init__(self) -> None:
        check_node_id(self.node_id)
        if type(self.epoch) is not int or not 0 <= self.epoch <= _MAX_EPOCH:
            raise MalformedMessageError("epoch", "must be an integer in 0..2**64-1")
        for name in ("identity_public_key", "signature"):
            value = getattr(self, name)
            if type(value) is not bytes or len(value) != (32 if name[0] == "i" else 64):
                raise MalformedMessageError(name, "wrong length")

    @staticmethod
    def _signed(node_id: str, epoch: int) -> bytes:
        return lp_join((_DOMAIN, node_id.encode("utf-8"), struct.pack(">Q", epoch)))

    @classmethod
    def make(cls, node_id: str, epoch: int, identity: NodeIdentity) -> StateStatement:
        signature = identity.sign(cls._signed(node_id, epoch))
        return cls(node_id, epoch, identity.public_key, signature)

    def verify(self, identity_public_key: bytes) -> None:
        """Raise :class:`WitnessError` unless signed by ``identity_public_key``."""
        if self.identity_public_key != identity_public_key:
            raise WitnessError(f"the statement of {self.node_id} names another identity key")
        try:
            check_identity_signature(
                identity_public_key, self.signature, self._signed(self.node_id, self.epoch)
            )
        except IdentitySignatureError:
            raise WitnessError(f"the statement of {self.node_id} has a bad signature") from None

    def to_dict(self) -> dict[str, object]:
        return {
            "node": self.node_id,
            "epoch": self.epoch,
            "identity": self.identity_public_key,
            "sig": self.signature,
        }

    @classmethod
    def from_dict(cls, value: object) -> StateStatement:
        if not isinstance(value, dict) or set(value) != {"node", "epoch", "identity", "sig"}:
            raise MalformedMessageError("statement", "must be a map of node, epoch, identity, sig")
        return cls(value["node"], value["epoch"], value["identity"], value["sig"])

    def encode(self) -> bytes:
        return cbor.dumps({"v": _VERSION, **self.to_dict()})

    @classmethod
    def decode(cls, data: bytes) -> StateStatement:
        value = cbor.loads_map(
            data, what="statement", fields={"v", "node", "epoch", "identity", "sig"}, version=1
        )
        del value["v"]
        return cls.from_dict(value)


def encode_report(
    node_id: str, record: StateStatement | None, checkpoint: AuditCheckpoint | None = None
) -> bytes:
    """The body of a witness envelope: the record a peer keeps for ``node_id`` (or none) and,
    when it holds one, the highest audit checkpoint of ``node_id`` it witnessed. Without a
    checkpoint the body is exactly what nodes before checkpoints sent and can read."""
    body: dict[str, object] = {
        "v": _VERSION,
        "about": node_id,
        "record": None if record is None else record.to_dict(),
    }
    if checkpoint is not None:
        body["checkpoint"] = checkpoint.to_dict()
    return cbor.dumps(body)


def decode_report(body: bytes) -> tuple[str, StateStatement | None, AuditCheckpoint | None]:
    value = cbor.loads_map(body, what="report", version=_VERSION)
    if set(value) not in ({"v", "about", "record"}, {"v", "about", "record", "checkpoint"}):
        raise MalformedMessageError("report", "missing or unknown fields")
    about = value["about"]
    if type(about) is not str:
        raise MalformedMessageError("about", "must be a node id")
    record = value["record"]
    checkpoint = value.get("checkpoint")
    return (
        about,
        None if record is None else StateStatement.from_dict(record),
        None if checkpoint is None else AuditCheckpoint.from_dict(checkpoint),
    )


class WitnessBook:
    """The records this node keeps for its peers (sealed): the highest state statement per node
    and the highest audit checkpoint per node (:mod:`wire.checkpoints`).

    Sealed as :data:`WITNESS_BLOB`, version 2 (records and checkpoints); a version 1 book
    (records only, sealed before checkpoints were witnessed) still decodes, with none."""

    def __init__(
        self,
        records: Mapping[str, StateStatement] | None = None,
        checkpoints: Mapping[str, AuditCheckpoint] | None = None,
    ) -> None:
        self._records = dict(records or {})
        self._checkpoints = dict(checkpoints or {})

    def get(self, node_id: str) -> StateStatement | None:
        return self._records.get(node_id)

    def checkpoint(self, node_id: str) -> AuditCheckpoint | None:
        """The highest audit checkpoint of ``node_id`` this node witnessed."""
        return self._checkpoints.get(node_id)

    def record(self, statement: StateStatement) -> bool:
        """Keep ``statement`` (already verified) if it is news; ``True`` when the book changed.

        A statement under another identity than the one held replaces it only with a higher
        epoch: a reset node cannot erase what was witnessed for its predecessor by restarting
        at epoch 1."""
        held = self._records.get(statement.node_id)
        if held is not None and statement.epoch <= held.epoch:
            return False
        self._records[statement.node_id] = statement
        return True

    def record_checkpoint(self, checkpoint: AuditCheckpoint) -> bool:
        """Keep ``checkpoint`` (already verified) if it is higher than the one held; ``True``
        when the book changed. As for statements, a lower one never replaces a higher one (a
        node whose log was cut, or reset, cannot talk its witnesses down)."""
        held = self._checkpoints.get(checkpoint.node_id)
        if held is not None and checkpoint.seq <= held.seq:
            return False
        self._checkpoints[checkpoint.node_id] = checkpoint
        return True

    def encode(self) -> bytes:
        return cbor.dumps(
            {
                "v": _BOOK_VERSION,
                "records": {n: s.to_dict() for n, s in sorted(self._records.items())},
                "checkpoints": {n: c.to_dict() for n, c in sorted(self._checkpoints.items())},
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> WitnessBook:
        value = cbor.loads_map(data, what=WITNESS_BLOB)
        version = value.get("v") if type(value.get("v")) is int else None
        if version == _VERSION and set(value) == {"v", "records"}:
            value["checkpoints"] = {}  # a book sealed before checkpoints were witnessed
        elif version != _BOOK_VERSION or set(value) != {"v", "records", "checkpoints"}:
            raise MalformedMessageError(WITNESS_BLOB, "unknown version or fields")
        records, checkpoints = value["records"], value["checkpoints"]
        if not isinstance(records, dict) or not isinstance(checkpoints, dict):
            raise MalformedMessageError("records", "must be a map")
        book = {node_id: StateStatement.from_dict(item) for node_id, item in records.items()}
        if any(node_id != statement.node_id for node_id, statement in book.items()):
            raise MalformedMessageError("records", "a record filed under another node")
        held = {node_id: AuditCheckpoint.from_dict(item) for node_id, item in checkpoints.items()}
        if any(node_id != checkpoint.node_id for node_id, checkpoint in held.items()):
            raise MalformedMessageError("checkpoints", "a checkpoint filed under another node")
        return cls(book, held)


class WitnessState(enum.Enum):
    PENDING = "pending"  # booted; not yet shown enough reports
    WITNESSED = "witnessed"  # serves keys
    ROLLED_BACK = "rolled_back"  # peers saw newer state: serves no key for this boot


class WitnessGate:
    """This boot's verdict on its own sealed state, from its peers' reports. Sans-I/O: the
    caller opens the envelopes and hands over ``(peer, about, record)`` triples."""

    def __init__(self, node_id: str, identity_public_key: bytes, cluster_size: int) -> None:
        self._node_id = node_id
        self._identity = identity_public_key
        self.needed = quorum(cluster_size)
        self._counted: set[str] = set()
        self.reason = ""
        self.state = WitnessState.WITNESSED if self.needed == 0 else WitnessState.PENDING

    @property
    def counted(self) -> int:
        return len(self._counted)

    def require_serving(self) -> None:
        """Raise unless this node may serve keys now."""
        if self.state is WitnessState.ROLLED_BACK:
            raise RolledBackError(self.reason)
        if self.state is WitnessState.PENDING:
            raise UnwitnessedError(
                f"{self._node_id} has {len(self._counted)} of the {self.needed} peer witness "
                "reports it needs since it booted"
            )

    def report(
        self,
        peer: str,
        about: str,
        record: StateStatement | None,
        epoch: int,
        *,
        checkpoint: AuditCheckpoint | None = None,
        audit_resumed: tuple[int, bytes] | None = None,
    ) -> None:
        """Weigh one opened report from ``peer`` against this node's store ``epoch`` and, while
        this boot is pending, the audit checkpoint it carries against ``audit_resumed`` (the
        sealed audit head this boot resumed from: next seq, last hash)."""
        if self.state is WitnessState.ROLLED_BACK:
            return
        if about != self._node_id:
            raise WitnessError(f"the report of {peer} is about {about!r}, not this node")
        if (
            self.state is WitnessState.PENDING
            and checkpoint is not None
            and audit_resumed is not None
            and not self._checkpoint_holds(peer, checkpoint, audit_resumed)
        ):
            return
        if record is not None:
            if record.identity_public_key != self._identity:
                self._roll_back(
                    f"{peer} witnessed {self._node_id} at sealed-state epoch {record.epoch} under "
                    "another identity: this node's sealed state was deleted or replaced"
                )
                return
            record.verify(self._identity)  # a peer cannot invent epochs this node never had
            if record.epoch > epoch:
                self._roll_back(
                    f"{peer} witnessed {self._node_id} at sealed-state epoch {record.epoch}, but "
                    f"the parent gave it epoch {epoch}: the sealed state was rolled back"
                )
                return
        self._counted.add(peer)
        if len(self._counted) >= self.needed:
            self.state = WitnessState.WITNESSED

    def _checkpoint_holds(
        self, peer: str, checkpoint: AuditCheckpoint, resumed: tuple[int, bytes]
    ) -> bool:
        """A sealed state rolled back to a snapshot of the same store epoch (no key changed
        since) passes the epoch check, but its audit head is older than records its peers
        witnessed. A node signs checkpoints only once witnessed (a pending node refuses
        ``audit_head``), so while this boot is pending every checkpoint shown is of an earlier
        boot, and each of them was sealed before it was shipped: its ``seq`` is below the seq
        this boot resumed at, and the last sealed record is the one it names at ``seq - 1``.
        False once this boot is rolled back."""
        if checkpoint.node_id != self._node_id:
            raise WitnessError(f"the checkpoint in the report of {peer} is not this node's")
        if checkpoint.identity_public_key != self._identity:
            self._roll_back(
                f"{peer} witnessed an audit checkpoint of {self._node_id} under another identity: "
                "this node's sealed state was deleted or replaced"
            )
            return False
        try:
            checkpoint.verify(self._identity)  # a peer cannot invent records this node never had
        except IdentitySignatureError:
            raise WitnessError(f"the audit checkpoint in the report of {peer} is forged") from None
        next_seq, last_hash = resumed
        if checkpoint.seq >= next_seq or (
            checkpoint.seq == next_seq - 1 and checkpoint.head != last_hash
        ):
            self._roll_back(
                f"{peer} witnessed audit record {checkpoint.seq} of {self._node_id}, but the "
                f"parent gave it a sealed audit head that continues at seq {next_seq}"
                + (" with another record before it" if checkpoint.seq < next_seq else "")
                + ": the sealed state was rolled back"
            )
            return False
        return True

    def _roll_back(self, reason: str) -> None:
        self.state = WitnessState.ROLLED_BACK
        self.reason = reason
