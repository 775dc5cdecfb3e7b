"""Store the node's audit trail (``PutAudit``) append-only in the parent's blob store.

Each batch becomes a new blob named ``audit-log.<first seq>.jsonl`` (JSON lines, one
:meth:`wire.audit.SignedRecord.to_json` object each) that is never replaced by another batch: the
log is the batches in sequence order (:func:`read_log`). The latest attestation document the node
sent, which binds the identity key that signs the records, is kept as ``audit-attestation.cbor``.

The parent is untrusted for the log's integrity: it stores what the enclave signed and can lose
or withhold it, but anything it alters, drops from the middle or reorders is named by
:func:`wire.audit.verify_log`. It still protects itself: a batch whose records do not decode is
refused (``bad_request``) and nothing of it is stored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from parent.blobstore import BlobStore
from wire.audit import SignedRecord
from wire.errors import MalformedMessageError

__all__ = [
    "DOCUMENT_BLOB",
    "SEGMENT_PREFIX",
    "AuditBatchError",
    "AuditStore",
    "read_log",
    "segment_name",
]

SEGMENT_PREFIX = "audit-log."
SEGMENT_SUFFIX = ".jsonl"
DOCUMENT_BLOB = "audit-attestation.cbor"


class AuditBatchError(Exception):
    """A batch whose records do not decode (nothing of it is stored)."""


def segment_name(first_seq: int) -> str:
    return f"{SEGMENT_PREFIX}{first_seq:012d}{SEGMENT_SUFFIX}"


class AuditStore:
    """Append-only audit segments in a blob store (local directory or S3)."""

    def __init__(self, store: BlobStore) -> None:
        self._store = store
        self.stored = 0

    def append(self, bodies: Iterable[bytes], signatures: Iterable[bytes], document: bytes) -> None:
        """Store one batch (blocking: call from a worker thread)."""
        records = [SignedRecord(b, s) for b, s in zip(bodies, signatures, strict=True)]
        if not records:
            lines: list[str] = []
        else:
            try:
                lines = [json.dumps(r.to_json(), sort_keys=True) for r in records]
                first = records[0].record().seq
            except MalformedMessageError as error:
                raise AuditBatchError(str(error)) from None
            self._store.put(segment_name(first), ("\n".join(lines) + "\n").encode())
        if document:
            self._store.put(DOCUMENT_BLOB, document)
        self.stored += len(lines)


def read_log(store: BlobStore) -> tuple[list[str], bytes | None]:
    """The stored log's JSON lines in sequence order (segments by name) and the latest document.

    Lines come back as stored: whatever the parent (or anyone with the store) did to them is for
    :func:`wire.audit.verify_log` to find."""
    lines: list[str] = []
    for name in sorted(n for n in store.names() if n.startswith(SEGMENT_PREFIX)):
        data = store.get(name) or b""
        lines.extend(line for line in data.decode("utf-8", "replace").splitlines() if line.strip())
    return lines, store.get(DOCUMENT_BLOB)
