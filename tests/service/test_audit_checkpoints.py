"""The SDK's part in peer-witnessed audit checkpoints (issue 12 item 1), against real in-process
nodes: a change of key state has every node's checkpoint witnessed by its peers; a quiet cluster
is protected by one cheap call; an auditor collects the peers' signed records, checks them
against the profile's root and holds each node's log to them — a log cut below a witnessed
checkpoint is refused naming the node's seq and the witness. Signing costs no extra request."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable

import pytest
from inprocess import InProcessCluster

from keyshard.client.checkpoints import (
    Witnessed,
    check_witnessed,
    collect_checkpoints,
    dumps,
    loads,
    verify_witnessed,
)
from keyshard.client.coordinator import Coordinator
from keyshard.client.errors import UnavailableError
from keyshard.client.receipts import ReceiptError
from wire.audit import AuditVerificationError
from wire.messages import AuditHead, CheckpointRecord

NODE_IDS = ("node-1", "node-2", "node-3")


def drive(cluster: InProcessCluster, work: Callable[[Coordinator], Awaitable[object]]) -> object:
    async def main() -> object:
        async with cluster.coordinator() as coordinator:
            return await work(coordinator)

    return asyncio.run(main())


def _collect(cluster: InProcessCluster) -> list[Witnessed]:
    found = drive(cluster, collect_checkpoints)
    assert isinstance(found, list)
    for entry in found:
        verify_witnessed(entry, cluster.trust)
    return found


def _highest(entries: list[Witnessed], node_id: str) -> int:
    return max(e.checkpoint.seq for e in entries if e.checkpoint.node_id == node_id)


def test_a_change_of_key_state_has_every_checkpoint_witnessed_by_the_peers() -> None:
    cluster = InProcessCluster()
    drive(cluster, lambda c: c.create_key("k", threshold=1))
    entries = _collect(cluster)
    assert sorted((e.witness_id, e.checkpoint.node_id) for e in entries) == sorted(
        (w, n) for w in NODE_IDS for n in NODE_IDS if w != n
    )
    for node_id, service in cluster.services.items():
        records = list(service.audit.history)
        assert _highest(entries, node_id) == len(records) - 1  # the whole log, as stored
        public = service.identity.node_identity.public_key
        assert len(check_witnessed(records, public, node_id, entries)) == 2
    assert loads(dumps(entries)) == entries


def test_a_log_cut_below_a_witnessed_checkpoint_is_refused_naming_seq_and_witness() -> None:
    cluster = InProcessCluster()
    drive(cluster, lambda c: c.create_key("k", threshold=1))
    entries = _collect(cluster)
    service = cluster.services["node-2"]
    records = list(service.audit.history)
    public = service.identity.node_identity.public_key
    with pytest.raises(AuditVerificationError) as caught:
        check_witnessed(records[:-1], public, "node-2", entries)
    assert caught.value.seq == len(records) - 1
    assert "that node-1 witnessed" in str(caught.value) or "that node-3 witnessed" in str(
        caught.value
    )
    # a checkpoint the log's own identity did not sign (a replaced node, or a forgery)
    other = cluster.services["node-1"].identity.node_identity.public_key
    with pytest.raises(ReceiptError, match="not signed by the identity key of this log"):
        check_witnessed(records, other, "node-2", entries)


def test_a_witness_record_altered_or_from_another_cluster_is_refused() -> None:
    cluster = InProcessCluster()
    drive(cluster, lambda c: c.create_key("k", threshold=1))
    entry = _collect(cluster)[0]
    checkpoint = dataclasses.replace(entry.checkpoint, seq=entry.checkpoint.seq + 100)
    altered = Witnessed(dataclasses.replace(entry.record, checkpoint=checkpoint), entry.document)
    with pytest.raises(ReceiptError, match="signature does not verify"):
        verify_witnessed(altered, cluster.trust)
    elsewhere = InProcessCluster()
    with pytest.raises(ReceiptError, match="attestation document refused"):
        verify_witnessed(entry, elsewhere.trust)
    with pytest.raises(ReceiptError, match="line 1: malformed"):
        loads(dumps([entry]).replace('"record": "', '"record": "00'))


def test_a_quiet_cluster_is_protected_by_one_cheap_call_and_signing_asks_no_checkpoint() -> None:
    cluster = InProcessCluster()
    drive(cluster, lambda c: c.create_key("k", threshold=1))
    before = _collect(cluster)
    cluster.links.clear()
    drive(cluster, lambda c: c.sign("k", b"a message"))  # records, no change of key state
    assert not [r for link in cluster.links for r in link.requests if isinstance(r, AuditHead)]
    signers = [
        n for n, s in cluster.services.items() if len(s.audit.history) - 1 > _highest(before, n)
    ]
    assert signers
    held = drive(cluster, lambda c: c.witness_audit_checkpoints())
    assert held == 6
    after = _collect(cluster)
    for node_id in signers:
        assert _highest(after, node_id) == len(cluster.services[node_id].audit.history) - 1
    kept = [r for link in cluster.links for r in link.requests if isinstance(r, CheckpointRecord)]
    assert len(kept) == 3


def test_witnessing_with_no_node_reachable_says_so() -> None:
    cluster = InProcessCluster()
    cluster.stopped.update(NODE_IDS)
    with pytest.raises(UnavailableError, match="no node answered") as caught:
        drive(cluster, lambda c: c.witness_audit_checkpoints())
    assert caught.value.have == 0
