"""The audit log's records: a hash chain signed by the node's identity key, and its offline check.

Each record says what a node did with one request: when (the enclave's UTC milliseconds), for whom
(the SHA-256 of the client's TLS certificate), which key and operation, the SHA-256 digest of what
was signed or decrypted, the approvers whose approvals were presented, the outcome (``ok`` or the
wire error code), the key's epoch and the SHA-256 of the reply (``result``). Its body is canonical CBOR (:mod:`wire.cbor`), so a record
has one encoding; its hash is SHA-256 over a domain tag and the body, and the next record carries
that hash as ``prev``. Each record is signed (Ed25519) by the node's identity key over its hash.

So whoever stores the log (the untrusted parent) can neither alter a record (its signature fails),
drop one from the middle (the next one's ``seq`` and ``prev`` no longer follow), nor reorder two;
:func:`verify_log` names the first record that does not hold. Dropping records from the *end*
leaves a shorter valid log: that is caught only against a checkpoint (a head ``seq`` and hash)
someone witnessed — a client's receipt, or a checkpoint the node's peers witnessed
(:mod:`wire.checkpoints`, whose :func:`~wire.checkpoints.require_checkpoint` asks that the log
*contain* it) — or, for a log that must end there, :func:`verify_log`'s ``expect_head``.

Sans-I/O: :class:`AuditChain` builds records (the caller signs), :func:`verify_log` checks them.
The export format is JSON lines, one :meth:`SignedRecord.to_json` object per line.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from wire import cbor
from wire.errors import MalformedMessageError

__all__ = [
    "GENESIS",
    "AuditChain",
    "AuditRecord",
    "AuditVerificationError",
    "SignedRecord",
    "parse_json_lines",
    "verify_log",
]

VERSION = 1
_DOMAIN = b"keyshard-audit-record-v1\x00"
#: ``prev`` of a node's first record.
GENESIS = bytes(32)
_FIELDS = frozenset(
    {
        "v",
        "seq",
        "prev",
        "time_ms",
        "node_id",
        "client",
        "op",
        "key",
        "digest",
        "approvers",
        "outcome",
        "epoch",
        "result",
    }
)
_MAX_TEXT = 256
_MAX_APPROVERS = 64


class AuditVerificationError(Exception):
    """A log that does not verify; ``position`` (0-based line) and ``seq`` name the record."""

    def __init__(self, position: int, seq: int | None, reason: str) -> None:
        where = f"record {position}" + (f" (seq {seq})" if seq is not None else "")
        super().__init__(f"{where}: {reason}")
        self.position = position
        self.seq = seq
        self.reason = reason


def _text(value: object, name: str) -> str:
    if type(value) is not str or len(value) > _MAX_TEXT:
        raise MalformedMessageError(name, f"must be text of at most {_MAX_TEXT} characters")
    return value


def _hash32(value: object, name: str, *, empty: bool = False) -> bytes:
    if type(value) is not bytes or not (len(value) == 32 or (empty and not value)):
        raise MalformedMessageError(name, "must be 32 bytes" + (" or empty" if empty else ""))
    return value


def _count(value: object, name: str) -> int:
    if type(value) is not int or value < 0:
        raise MalformedMessageError(name, "must be a non-negative integer")
    return value


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One request a node answered (every field public; no secret is ever recorded)."""

    seq: int
    prev: bytes
    time_ms: int
    node_id: str
    client: bytes
    op: str
    key: str
    digest: bytes
    approvers: tuple[bytes, ...]
    outcome: str
    epoch: int
    #: SHA-256 of the reply's canonical body (what the node answered), empty for a refusal.
    result: bytes = b""

    def __post_init__(self) -> None:
        _count(self.seq, "seq")
        _hash32(self.prev, "prev")
        _count(self.time_ms, "time_ms")
        _text(self.node_id, "node_id")
        _hash32(self.client, "client", empty=True)
        _text(self.op, "op")
        _text(self.key, "key")
        _hash32(self.digest, "digest", empty=True)
        if type(self.approvers) is not tuple or len(self.approvers) > _MAX_APPROVERS:
            raise MalformedMessageError("approvers", f"at most {_MAX_APPROVERS} keys")
        for approver in self.approvers:
            _hash32(approver, "approvers")
        _text(self.outcome, "outcome")
        _count(self.epoch, "epoch")
        _hash32(self.result, "result", empty=True)

    def body(self) -> bytes:
        """The canonical encoding the hash and the signature cover."""
        return cbor.dumps(
            {
                "v": VERSION,
                "seq": self.seq,
                "prev": self.prev,
                "time_ms": self.time_ms,
                "node_id": self.node_id,
                "client": self.client,
                "op": self.op,
                "key": self.key,
                "digest": self.digest,
                "approvers": list(self.approvers),
                "outcome": self.outcome,
                "epoch": self.epoch,
                "result": self.result,
            }
        )

    @classmethod
    def from_body(cls, body: bytes) -> AuditRecord:
        value = cbor.loads_map(body, what="audit record", fields=_FIELDS, version=VERSION)
        approvers = value["approvers"]
        if type(approvers) is not list:
            raise MalformedMessageError("approvers", "must be an array")
        return cls(
            seq=value["seq"],
            prev=value["prev"],
            time_ms=value["time_ms"],
            node_id=value["node_id"],
            client=value["client"],
            op=value["op"],
            key=value["key"],
            digest=value["digest"],
            approvers=tuple(approvers),
            outcome=value["outcome"],
            epoch=value["epoch"],
            result=value["result"],
        )


def record_hash(body: bytes) -> bytes:
    return hashlib.sha256(_DOMAIN + body).digest()


@dataclass(frozen=True, slots=True)
class SignedRecord:
    """A record's canonical body and the node's Ed25519 signature over its hash."""

    body: bytes
    signature: bytes = field(repr=False)

    @property
    def hash(self) -> bytes:
        return record_hash(self.body)

    def record(self) -> AuditRecord:
        return AuditRecord.from_body(self.body)

    def to_json(self) -> dict[str, object]:
        """One export line: the signed bytes (hex) and, for people, the fields they encode."""
        record = self.record()
        return {
            "seq": record.seq,
            "time_ms": record.time_ms,
            "node_id": record.node_id,
            "op": record.op,
            "key": record.key,
            "outcome": record.outcome,
            "epoch": record.epoch,
            "client": record.client.hex(),
            "digest": record.digest.hex(),
            "approvers": [a.hex() for a in record.approvers],
            "result": record.result.hex(),
            "hash": self.hash.hex(),
            "body": self.body.hex(),
            "signature": self.signature.hex(),
        }


class AuditChain:
    """Builds one node's chain: numbers records, links each to the previous one, has it signed."""

    def __init__(
        self,
        node_id: str,
        sign: Callable[[bytes], bytes],
        *,
        seq: int = 0,
        head: bytes = GENESIS,
    ) -> None:
        """``sign(hash)`` is the identity key's Ed25519 signature; ``seq``/``head`` continue a
        chain (the next record's number and the hash of the last one)."""
        self._node_id = node_id
        self._sign = sign
        self.seq = seq
        self.head = head

    def append(
        self,
        *,
        time_ms: int,
        client: bytes,
        op: str,
        key: str,
        digest: bytes,
        approvers: Iterable[bytes],
        outcome: str,
        epoch: int,
        result: bytes = b"",
    ) -> SignedRecord:
        record = AuditRecord(
            self.seq,
            self.head,
            time_ms,
            self._node_id,
            client,
            op,
            key,
            digest,
            tuple(approvers),
            outcome,
            epoch,
            result,
        )
        body = record.body()
        signed = SignedRecord(body, self._sign(record_hash(body)))
        self.seq += 1
        self.head = signed.hash
        return signed


def parse_json_lines(lines: Iterable[str]) -> list[SignedRecord]:
    """The signed records of an export (``body`` and ``signature`` only: the rest is derived);
    raises :class:`AuditVerificationError` naming a line that is not one."""
    records = []
    for position, line in enumerate(line for line in lines if line.strip()):
        try:
            entry = json.loads(line)
            records.append(
                SignedRecord(bytes.fromhex(entry["body"]), bytes.fromhex(entry["signature"]))
            )
        except (ValueError, KeyError, TypeError):
            raise AuditVerificationError(position, None, "not an audit record line") from None
    return records


def verify_log(
    records: Sequence[SignedRecord],
    public_key: bytes,
    *,
    node_id: str | None = None,
    start: tuple[int, bytes] = (0, GENESIS),
    expect_head: tuple[int, bytes] | None = None,
) -> list[AuditRecord]:
    """Check a node's log, oldest first; return its records or raise naming the first bad one.

    ``start`` is the (seq, prev) the first record must have (a node's genesis by default, or a
    witnessed checkpoint when the log was cut); ``expect_head`` a witnessed (seq, hash) the last
    record must match, which is what catches records dropped from the end."""
    verifier = Ed25519PublicKey.from_public_bytes(public_key)
    expected_seq, expected_prev = start
    checked: list[AuditRecord] = []
    for position, signed in enumerate(records):
        try:
            record = signed.record()
        except MalformedMessageError as error:
            raise AuditVerificationError(position, None, f"malformed: {error}") from None
        try:
            verifier.verify(signed.signature, signed.hash)
        except InvalidSignature:
            raise AuditVerificationError(
                position, record.seq, "signature does not verify (altered, or not this node's)"
            ) from None
        if node_id is not None and record.node_id != node_id:
            raise AuditVerificationError(position, record.seq, f"names node {record.node_id!r}")
        if record.seq != expected_seq:
            raise AuditVerificationError(
                position,
                record.seq,
                f"expected seq {expected_seq}: records are missing or out of order",
            )
        if record.prev != expected_prev:
            raise AuditVerificationError(
                position, record.seq, "does not follow the previous record (prev hash differs)"
            )
        checked.append(record)
        expected_seq, expected_prev = record.seq + 1, signed.hash
    if expect_head is not None and (expected_seq - 1, expected_prev) != expect_head:
        raise AuditVerificationError(
            len(records),
            expect_head[0],
            f"the log ends at seq {expected_seq - 1}, not at the witnessed head {expect_head[0]}",
        )
    return checked
