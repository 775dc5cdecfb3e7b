"""The node's audit trail: every operation and every refusal it answers becomes a signed record.

:class:`AuditTrail` keeps this node's chain (:class:`wire.audit.AuditChain`): each record is
hash-linked to the previous one and signed by the node's long-term identity key — the key every
attestation document of this node binds (``ChannelBinding.identity_public_key``), so anyone holding
a document can check the records offline. Records leave the enclave through the untrusted parent
(``PutAudit`` over host services), which stores them append-only; it can lose or withhold them but
not forge, alter, reorder or drop one in the middle without :func:`wire.audit.verify_log` naming it.

What a handler knew (digests, accepted approvers, the key's epoch) reaches the record through an
:class:`AuditNote` held in a context variable for the duration of one request (:func:`note`), so
handlers report facts they computed anyway instead of the trail re-parsing requests.

Continuity across restarts: the chain head (next ``seq``, last hash) is sealed as the small blob
:data:`HEAD_BLOB` once per batch handed to the parent — sealed *before* the batch leaves, so a
restart never reuses a sequence number that reached the parent. A crash can lose the records of
the batch not yet flushed; a client's receipt naming one of them shows the gap (tail truncation
is detected only against such witnessed heads, see ``wire.audit``; the head a peer-witnessed
checkpoint names is :attr:`AuditTrail.stored_head`, what the parent acknowledged, so a crash
never makes a witnessed checkpoint accuse an honest parent). Sealing per batch rather than
per record: a seal is an AES-GCM blob and a manifest written through the parent (two host round
trips, each fsync'd), 7-19 ms per record here against about 0.12 ms per record in batches of
:data:`BATCH` (``bench/bench_audit.py``) — more than a signature itself costs.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

from enclave.errors import EnclaveError
from transport.errors import TransportError
from transport.hostclient import HostClient
from wire import cbor
from wire.audit import GENESIS, AuditChain, SignedRecord
from wire.errors import MalformedMessageError

__all__ = ["HEAD_BLOB", "AuditNote", "AuditTrail", "HostShipper", "current_note", "note"]

#: The sealed blob holding the chain head (next seq, hash of the last record).
HEAD_BLOB = "audit-head"
_HEAD_VERSION = 1
#: Records kept in memory for receipts (the most recent ones, any client).
RECENT = 4096
#: Records handed to the parent in one ``PutAudit``.
BATCH = 256
#: Records kept while the parent does not take them (oldest dropped, and logged).
BUFFER = 65536
RETRY_SECONDS = 1.0
#: How long the trail lets records gather before it seals their head and ships them: under light
#: load each operation would otherwise cost a sealed write and a host round trip of its own
#: (measured: 7-19 ms per record, against 0.12 ms batched), and records are only lost on a crash
#: until shipped either way (receipts are served from memory at once). 250 ms rather than 50: each
#: batch is six fsync'd writes at the parent (segment, sealed head, manifest, each with its
#: directory), which at one operation in flight cost the parents ~4 ms of CPU per operation at
#: 50 ms and ~1.9 ms at 250 ms (bench_cluster_load, FROST N=1), for at most a quarter second
#: more of records a crash can lose.
LINGER_SECONDS = 0.25

log = logging.getLogger("enclave.service.audit")


@dataclass(slots=True)
class AuditNote:
    """What the handler of one request reports for its record(s): each digest it computed (one
    record per digest), the approvers it accepted, the key's epoch."""

    digests: list[bytes] = field(default_factory=list)
    approvers: list[bytes] = field(default_factory=list)
    epoch: int = 0


_current: contextvars.ContextVar[AuditNote | None] = contextvars.ContextVar(
    "audit_note", default=None
)


def current_note() -> AuditNote | None:
    """The note of the request being served (None outside :meth:`AuditTrail.noting`)."""
    return _current.get()


def note(*, digest: bytes | None = None, approvers: tuple[bytes, ...] = (), epoch: int = 0) -> None:
    """Report facts for the current request's record; a no-op when nothing is being audited."""
    current = _current.get()
    if current is None:
        return
    if digest is not None and digest not in current.digests:
        current.digests.append(digest)
    current.approvers.extend(a for a in approvers if a not in current.approvers)
    current.epoch = max(current.epoch, epoch)


class SealedHead:
    """The sealed form of the chain head."""

    @staticmethod
    def encode(seq: int, head: bytes) -> bytes:
        return cbor.dumps({"v": _HEAD_VERSION, "seq": seq, "head": head})

    @staticmethod
    def decode(plaintext: bytes) -> tuple[int, bytes]:
        value = cbor.loads_map(
            plaintext, what=HEAD_BLOB, fields={"v", "seq", "head"}, version=_HEAD_VERSION
        )
        seq, head = value["seq"], value["head"]
        if type(seq) is not int or seq < 0 or type(head) is not bytes or len(head) != 32:
            raise MalformedMessageError(HEAD_BLOB, "seq and a 32-byte head")
        return seq, head


class AuditTrail:
    """This node's chain, its in-memory recent records and the batches for the parent.

    ``sign`` is the identity key's Ed25519 signature; ``load``/``seal`` read and seal the head
    blob; ``ship(records)`` hands a batch to the parent (raises ``OSError`` or a transport error
    when it does not take it). All of these are seams, so the trail is tested in memory.
    """

    def __init__(
        self,
        node_id: str,
        sign: Callable[[bytes], bytes],
        *,
        seal: Callable[[bytes], Awaitable[object]] | None = None,
        ship: Callable[[tuple[SignedRecord, ...]], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.node_id = node_id
        self._chain = AuditChain(node_id, sign)
        self._seal = seal
        self._ship = ship
        self._clock = clock
        self._pending: collections.deque[SignedRecord] = collections.deque()
        # (client, digest, record) of successful records only: what receipts are made of
        self._recent: collections.deque[tuple[bytes, bytes, SignedRecord]] = collections.deque(
            maxlen=RECENT
        )
        #: The newest records, whatever became of them (for inspection; bounded).
        self.history: collections.deque[SignedRecord] = collections.deque(maxlen=RECENT)
        self._keeps = seal is not None or ship is not None  # else nothing would ever take them
        self._sealed_seq = 0
        #: (next seq, last hash) of the sealed head this boot resumed from, which the peers'
        #: witness reports are weighed against (:class:`enclave.service.witness.WitnessGate`);
        #: None for a trail that seals no head (in-process tests): it has no continuity to check.
        self.resumed_at: tuple[int, bytes] | None = None
        #: (seq, hash) of the newest record the parent took: what a checkpoint may vouch for.
        self._stored: tuple[int, bytes] | None = None
        self._flushing = asyncio.Lock()  # one batch in flight: a second flush never re-ships it
        self._wake: asyncio.Event | None = None
        self.dropped = 0

    @property
    def seq(self) -> int:
        """The next record's sequence number."""
        return self._chain.seq

    @property
    def head(self) -> bytes:
        return self._chain.head

    @property
    def stored_head(self) -> tuple[int, bytes] | None:
        """``(seq, hash)`` of the newest record the parent acknowledged storing (None before
        the first): the head a checkpoint vouches for, so that a witnessed checkpoint never
        names a record a crash could still lose. A trail that ships nowhere (in-memory tests)
        keeps every record it makes."""
        return self._stored

    def resume(self, sealed: bytes | None) -> None:
        """Continue the chain from a sealed head (None: this node's first record is seq 0)."""
        seq, head = (0, GENESIS) if sealed is None else SealedHead.decode(sealed)
        if self._seal is not None:
            self.resumed_at = (seq, head)
        self._chain.seq, self._chain.head = seq, head
        self._sealed_seq = seq
        self._stored = (seq - 1, head) if seq else None

    @contextlib.contextmanager
    def noting(self) -> Iterator[AuditNote]:
        """A fresh note for the request served inside this block."""
        current = AuditNote()
        token = _current.set(current)
        try:
            yield current
        finally:
            _current.reset(token)

    def append(
        self,
        *,
        client: bytes,
        op: str,
        key: str,
        outcome: str,
        result: bytes,
        current: AuditNote,
    ) -> list[SignedRecord]:
        """Record one answered request: one record per digest the handler noted (one with an
        empty digest when it noted none). Never awaits, so records follow the order of answers."""
        time_ms = int(self._clock() * 1000)
        records = [
            self._chain.append(
                time_ms=time_ms,
                client=client,
                op=op,
                key=key,
                digest=digest,
                approvers=tuple(current.approvers),
                outcome=outcome,
                epoch=current.epoch,
                result=result,
            )
            for digest in (current.digests or [b""])
        ]
        for digest, record in zip(current.digests or [b""], records, strict=True):
            if outcome == "ok" and digest:
                self._recent.append((client, digest, record))
            self.history.append(record)
            if not self._keeps:
                self._stored = (record.record().seq, record.hash)
                continue
            if len(self._pending) >= BUFFER:  # the parent has not taken records for long
                self._pending.popleft()
                self.dropped += 1
                if self.dropped % 1000 == 1:
                    log.warning(
                        "audit records dropped",
                        extra={"fields": {"event": "audit_dropped", "total": self.dropped}},
                    )
            self._pending.append(record)
        if self._wake is not None:
            self._wake.set()
        return records

    def receipts(self, client: bytes, digests: tuple[bytes, ...]) -> list[SignedRecord]:
        """This client's recent successful records for ``digests``, newest last."""
        wanted = set(digests)
        return [r for owner, d, r in self._recent if owner == client and d in wanted]

    async def flush(self) -> bool:
        """Seal the head of what is pending, then hand it to the parent; False if the parent
        did not take a batch (it stays pending). One flush at a time (the run loop and a
        checkpoint request may both ask)."""
        async with self._flushing:
            return await self._flush()

    async def _flush(self) -> bool:
        while self._pending:
            batch = tuple(self._pending)[:BATCH]
            head = batch[-1].record().seq + 1
            try:
                if self._seal is not None and head > self._sealed_seq:
                    await self._seal(SealedHead.encode(head, batch[-1].hash))
                    self._sealed_seq = head
                if self._ship is not None:
                    await self._ship(batch)
            except (TransportError, EnclaveError, OSError, EOFError) as error:
                log.debug(
                    "audit batch not taken",
                    extra={"fields": {"event": "audit_ship_failed", "error": type(error).__name__}},
                )
                return False
            for _ in batch:
                self._pending.popleft()
            self._stored = (head - 1, batch[-1].hash)
        return True

    async def run(self, retry: float = RETRY_SECONDS, linger: float = LINGER_SECONDS) -> None:
        """Flush as records come, for the life of the boot, letting them gather for ``linger``
        seconds first (one sealed head and one batch for all that came meanwhile)."""
        self._wake = asyncio.Event()
        if self._pending:
            self._wake.set()
        while True:
            await self._wake.wait()
            await asyncio.sleep(linger)
            self._wake.clear()
            while not await self.flush():
                await asyncio.sleep(retry)


class HostShipper:
    """Hands batches to the parent (``PutAudit``); the boot's first batch that the parent takes
    carries an attestation document binding the identity key (``document()``, made once)."""

    def __init__(self, host: HostClient, document: Callable[[], Awaitable[bytes]]) -> None:
        self._host = host
        self._document = document
        self._sent_document = False

    async def __call__(self, batch: tuple[SignedRecord, ...]) -> None:
        document = b"" if self._sent_document else await self._document()
        await self._host.put_audit(
            tuple(r.body for r in batch), tuple(r.signature for r in batch), document
        )
        self._sent_document = True


def reply_digest(encoded: bytes) -> bytes:
    """The ``result`` of a record: SHA-256 of the reply's canonical frame body."""
    return hashlib.sha256(encoded).digest()
