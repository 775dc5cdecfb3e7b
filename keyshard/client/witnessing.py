"""The client's part in the nodes' state witnesses: relaying statements and reports.

Nodes keep records of each other's sealed-state epochs so that a node whose parent hands it
older (or no) state refuses to serve keys (:mod:`enclave.service.witness` explains the protocol
and its quorum). The enclaves never talk to each other directly; the client relays, as it does
for key creation, and cannot forge anything it relays: statements are signed by the nodes'
identity keys and reports are sealed between enclaves.

* :meth:`WitnessRelay.record` — after a change of sealed state (a key created): each node's
  signed statement goes to every other reachable node.
* :meth:`WitnessRelay.checkpoints` — whenever asked (``keyshard audit witness``): each node's
  signed audit checkpoint goes to every other reachable node, so that a parent that cuts the
  tail of a stored audit log is caught even on a cluster whose keys do not change
  (:mod:`wire.checkpoints`); :meth:`WitnessRelay.record` hands them over too.
* :meth:`WitnessRelay.check` — when a node answers ``unwitnessed`` (it booted since it was last
  shown its peers' reports): the reachable peers' reports on it go to it. A node that peers saw
  at newer state answers ``rolled_back``, which reaches the caller as a
  :class:`~keyshard.client.errors.RemoteError` naming the node and the epochs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

from keyshard.client.errors import ChannelError, RemoteError, UnavailableError
from wire.messages import (
    AuditHead,
    CheckpointRecord,
    Reply,
    Request,
    SignedCheckpoint,
    SignedState,
    StateQuery,
    WitnessCheck,
    WitnessEnvelope,
    WitnessQuery,
    WitnessRecord,
    WitnessRecorded,
    WitnessVerdict,
)

__all__ = ["WitnessRelay"]

_R = TypeVar("_R", bound=Reply)


class _Documented(Protocol):
    @property
    def document(self) -> bytes: ...


class _Call(Protocol):
    def __call__(self, node_id: str, request: Request, expected: type[_R]) -> Awaitable[_R]: ...


class WitnessRelay:
    """Relays witness statements and reports among ``node_ids`` through the coordinator's
    ``call`` (one request to one node) and ``link`` (a node's channel, for its document)."""

    def __init__(
        self,
        node_ids: Sequence[str],
        call: _Call,
        link: Callable[[str], Awaitable[_Documented]],
    ) -> None:
        self._node_ids = list(node_ids)
        self._call = call
        self._link = link
        self._checking: dict[str, asyncio.Lock] = {}

    async def _documents(self, node_ids: Sequence[str]) -> dict[str, bytes]:
        """The current documents of the nodes a channel opens to (the others are skipped)."""
        results = await asyncio.gather(*(self._link(i) for i in node_ids), return_exceptions=True)
        documents = {}
        for node_id, result in zip(node_ids, results, strict=True):
            if isinstance(result, ChannelError):
                continue
            if isinstance(result, BaseException):
                raise result
            documents[node_id] = result.document
        return documents

    async def check(self, node_id: str) -> None:
        """Show ``node_id`` its reachable peers' reports until it serves (one run at a time per
        node). Raises :class:`UnavailableError` when too few peers answer, and the node's
        :class:`RemoteError` (``rolled_back``) when peers witnessed newer state."""
        async with self._checking.setdefault(node_id, asyncio.Lock()):
            document = (await self._link(node_id)).document
            peers = await self._documents([i for i in self._node_ids if i != node_id])
            query = WitnessQuery(node_id, document)
            results = await asyncio.gather(
                *(self._call(p, query, WitnessEnvelope) for p in peers), return_exceptions=True
            )
            envelopes = {}
            for peer, result in zip(peers, results, strict=True):
                if isinstance(result, ChannelError | RemoteError):
                    continue  # that peer cannot vouch now; the quorum decides
                if isinstance(result, BaseException):
                    raise result
                envelopes[peer] = result.envelope
            if not envelopes:
                raise UnavailableError(
                    f"{node_id} must be shown its peers' witness reports, and no peer answered",
                    have=0,
                    need=1,
                )
            documents = {p: peers[p] for p in envelopes}
            verdict = await self._call(node_id, WitnessCheck(documents, envelopes), WitnessVerdict)
            if verdict.state != "witnessed":
                raise UnavailableError(
                    f"{node_id} has {verdict.counted} of the {verdict.needed} peer witness "
                    "reports it needs before it serves; too few peers are reachable",
                    have=verdict.counted,
                    need=verdict.needed,
                )

    async def record(self, node_ids: Sequence[str]) -> int:
        """Hand each node's signed state statement, and its signed audit checkpoint, to every
        other reachable node; the number of (node, witness) statement records that are now
        held (best effort: an unreachable witness is skipped, and the state it missed is
        protected by the others). The checkpoints ride along in parallel: after a change of
        sealed state the nodes' audit tails are protected too, at no extra round trip."""
        documents = await self._documents(list(node_ids))
        held, _ = await asyncio.gather(
            self._relay(documents, StateQuery(), SignedState, WitnessRecord),
            self._relay(documents, AuditHead(), SignedCheckpoint, CheckpointRecord),
        )
        return held

    async def checkpoints(self, node_ids: Sequence[str] | None = None) -> int:
        """Have each node's current audit checkpoint (the head of what its parent stored)
        witnessed by its reachable peers, however quiet the cluster: two requests per node, no
        change of key state. The number of (node, witness) checkpoint records now held (0 when
        no node has stored an audit record yet); :class:`UnavailableError` when no node answers."""
        documents = await self._documents(list(node_ids or self._node_ids))
        if not documents:
            raise UnavailableError(
                "no node answered to have its audit checkpoint witnessed", have=0, need=1
            )
        return await self._relay(documents, AuditHead(), SignedCheckpoint, CheckpointRecord)

    async def _relay(
        self,
        documents: dict[str, bytes],
        query: Request,
        signed: type[SignedState | SignedCheckpoint],
        record: Callable[[dict[str, bytes], dict[str, bytes]], Request],
    ) -> int:
        """Ask each documented node for its signed item (``query``), hand each to every other
        reachable node (``record``); the number of (node, witness) items handed over."""
        results = await asyncio.gather(
            *(self._call(i, query, signed) for i in documents), return_exceptions=True
        )
        items = {}
        for node_id, result in zip(documents, results, strict=True):
            if isinstance(result, BaseException):
                if isinstance(result, ChannelError | RemoteError):
                    continue
                raise result
            item = result.statement if isinstance(result, SignedState) else result.checkpoint
            if item:  # a node whose parent stored no audit record yet has no checkpoint
                items[node_id] = item
        witnesses = await self._documents(self._node_ids)
        requests = {
            w: (
                record(
                    {n: documents[n] for n in items if n != w},
                    {n: s for n, s in items.items() if n != w},
                ),
                len(set(items) - {w}),
            )
            for w in witnesses
            if set(items) - {w}
        }
        answers = await asyncio.gather(
            *(self._call(w, r, WitnessRecorded) for w, (r, _) in requests.items()),
            return_exceptions=True,
        )
        held = 0
        for (_, count), answer in zip(requests.values(), answers, strict=True):
            if isinstance(answer, BaseException):
                if isinstance(answer, ChannelError | RemoteError):
                    continue
                raise answer
            held += count
        return held
