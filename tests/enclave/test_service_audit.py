"""The node's audit trail, driven through real NodeService objects (real emulated NSMs, real
sealed stores) and the parent's real append-only store: every operation and every refusal is a
signed, chained record with what the handler computed (digest, accepted approvers, epoch, reply
hash); the chain continues across a restart from its sealed head; receipts are a client's own."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from service_fixtures import Cluster

from attestation.emulated_ca import EmulatedCa
from enclave.mpc.decryption.ecies import encrypt
from enclave.service.audit import HEAD_BLOB, AuditTrail
from enclave.service.handlers import NodeService, OsRandom
from keyshard.client.approvals import public_key_bytes, sign_approval
from keyshard.client.channel import NodeTrust
from keyshard.client.receipts import Receipt, ReceiptError, check_checkpoints, verify_receipt
from parent.auditstore import AuditStore, read_log
from parent.blobstore import LocalDirBlobStore
from wire.approvals import ApprovalPolicy, Operation, decryption_digest
from wire.audit import AuditVerificationError, SignedRecord, parse_json_lines, verify_log
from wire.messages import (
    AuditReceipts,
    AuditReceiptsReply,
    DecryptPartial,
    ErrorReply,
    KeyInfo,
    Partial,
    encode,
)

CLIENT = hashlib.sha256(b"client certificate").digest()
OTHER_CLIENT = hashlib.sha256(b"another client").digest()
APPROVERS = [Ed25519PrivateKey.generate() for _ in range(3)]
POLICY = ApprovalPolicy(
    tuple(public_key_bytes(k) for k in APPROVERS), 2, frozenset({Operation.DECRYPT})
)


def _trail(cluster: Cluster, node_id: str, parent: AuditStore) -> AuditTrail:
    """The trail a boot gives its service: head sealed in the node's store, batches to the
    parent's store (as ``PutAudit`` would)."""
    service = cluster.services[node_id]
    store = cluster.stores[node_id]

    async def seal(head: bytes) -> None:
        await store.put(HEAD_BLOB, head)

    async def ship(batch: tuple[SignedRecord, ...]) -> None:
        parent.append([r.body for r in batch], [r.signature for r in batch], b"")

    trail = AuditTrail(node_id, service.identity.node_identity.sign, seal=seal, ship=ship)
    return trail


async def _boot_trail(cluster: Cluster, node_id: str, parent: AuditStore) -> NodeService:
    service = cluster.services[node_id]
    trail = _trail(cluster, node_id, parent)
    trail.resume(await cluster.stores[node_id].get(HEAD_BLOB))
    service.audit = trail
    return service


def test_operations_and_refusals_become_chained_records_and_survive_a_restart(
    ca: EmulatedCa, tmp_path: Path
) -> None:
    cluster = Cluster(ca)
    parent = AuditStore(LocalDirBlobStore(tmp_path / "node-1"))
    identity = cluster.services["node-1"].identity.node_identity.public_key

    async def scenario() -> None:
        public = await cluster.create_key("payroll", policy=POLICY.encode())
        gpk = public.group_public_key.to_bytes()
        service = await _boot_trail(cluster, "node-1", parent)
        ct = encrypt(public.group_public_key, b"salaries", OsRandom(), b"q3").to_bytes()
        digest = decryption_digest(ct, b"q3")
        approvals = tuple(
            sign_approval(
                k,
                key_name="payroll",
                group_public_key=gpk,
                operation=Operation.DECRYPT,
                digest=digest,
                not_after=int(time.time()) + 900,
            ).encode()
            for k in APPROVERS[:2]
        )
        ok = await service.answer(
            DecryptPartial("payroll", ct, os.urandom(32), b"q3", approvals), CLIENT
        )
        assert isinstance(ok, Partial)
        refused = await service.answer(
            DecryptPartial("payroll", ct, os.urandom(32), b"q3", ()), CLIENT
        )
        assert isinstance(refused, ErrorReply)
        assert not isinstance(await service.answer(KeyInfo("payroll"), CLIENT), ErrorReply)
        unknown = await service.answer(KeyInfo("nothing"), CLIENT)
        assert isinstance(unknown, ErrorReply)
        assert await service.audit.flush()

        # receipts: the client's own successful record for the digest, nobody else's
        mine = await service.answer(AuditReceipts((digest,)), CLIENT)
        theirs = await service.answer(AuditReceipts((digest,)), OTHER_CLIENT)
        assert isinstance(mine, AuditReceiptsReply)
        assert isinstance(theirs, AuditReceiptsReply)
        assert len(mine.bodies) == 1
        assert theirs.bodies == ()

        lines, _ = read_log(parent._store)  # what the parent stored
        records = verify_log(parse_json_lines(lines), identity, node_id="node-1")
        assert [(r.op, r.outcome) for r in records] == [
            ("decrypt_partial", "ok"),
            ("decrypt_partial", "quorum_not_met"),
            ("key_info", "unknown_key"),
        ]
        first = records[0]
        assert (first.client, first.key, first.digest) == (CLIENT, "payroll", digest)
        assert set(first.approvers) == {public_key_bytes(k) for k in APPROVERS[:2]}
        assert first.result == hashlib.sha256(encode(ok, 0)).digest()
        assert records[1].digest == digest
        assert records[1].result == b""
        assert mine.bodies[0] == parse_json_lines(lines)[0].body

        # a restart: the chain continues from the sealed head, no sequence number reused
        await cluster.restart("node-1")
        service = await _boot_trail(cluster, "node-1", parent)
        assert service.audit.seq == 3
        assert isinstance(await service.answer(KeyInfo("nothing"), CLIENT), ErrorReply)
        assert await service.audit.flush()
        lines, _ = read_log(parent._store)
        records = verify_log(parse_json_lines(lines), identity, node_id="node-1")
        assert [r.seq for r in records] == [0, 1, 2, 3]

    asyncio.run(scenario())


def test_a_parent_that_does_not_take_a_batch_gets_it_again_and_nothing_is_lost(
    ca: EmulatedCa,
) -> None:
    cluster = Cluster(ca)
    taken: list[SignedRecord] = []
    refuse = [True]

    async def ship(batch: tuple[SignedRecord, ...]) -> None:
        if refuse[0]:
            raise ConnectionError("parent restarting")
        taken.extend(batch)

    async def scenario() -> None:
        service = cluster.services["node-2"]
        service.audit = AuditTrail("node-2", service.identity.node_identity.sign, ship=ship)
        for _ in range(3):
            await service.answer(KeyInfo("nothing"), CLIENT)
        assert not await service.audit.flush()
        refuse[0] = False
        assert await service.audit.flush()

    asyncio.run(scenario())
    public = cluster.services["node-2"].identity.node_identity.public_key
    assert [r.seq for r in verify_log(taken, public)] == [0, 1, 2]


def test_receipts_verify_against_the_document_and_catch_a_cut_log(
    ca: EmulatedCa, trust: NodeTrust
) -> None:
    """A receipt verifies with the pinned root and releases only: another root's document, a
    document of another node, an altered record are refused; a log cut before a receipt's seq
    is named."""
    cluster = Cluster(ca)
    service = cluster.services["node-3"]
    for _ in range(3):
        asyncio.run(service.answer(KeyInfo("nothing"), CLIENT))
    records = list(service.audit.history)
    receipt = Receipt("node-3", records[1], cluster.nodes["node-3"].document())
    assert verify_receipt(receipt, trust).seq == 1
    assert Receipt.from_json(json.loads(json.dumps(receipt.to_json()))) == receipt

    elsewhere = Cluster(EmulatedCa.ephemeral())  # another cluster: its own root
    foreign = Receipt("node-3", records[1], elsewhere.nodes["node-3"].document())
    with pytest.raises(ReceiptError, match="attestation document refused"):
        verify_receipt(foreign, trust)
    with pytest.raises(ReceiptError, match="node-1's, not node-3's"):
        verify_receipt(Receipt("node-3", records[1], cluster.nodes["node-1"].document()), trust)
    altered = SignedRecord(records[1].body.replace(CLIENT, OTHER_CLIENT), records[1].signature)
    with pytest.raises(ReceiptError, match="signature does not verify"):
        verify_receipt(Receipt("node-3", altered, receipt.document), trust)

    check_checkpoints(records, [receipt])
    with pytest.raises(AuditVerificationError, match="ends before seq 1"):
        check_checkpoints(records[:1], [receipt])
