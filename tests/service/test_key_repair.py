"""Repair over the network (issue 10): a holder whose sealed share is gone — blob deleted or
corrupt — gets the same share back from t+1 helpers (the core's repairable threshold scheme, with
the Zcash Foundation's vectors in tests/mpc/test_repair.py), driven by the real Coordinator
against real in-process nodes; then it signs again under the key made at creation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from inprocess import InProcessCluster

from keyshard.client.approvals import public_key_bytes, sign_approval
from keyshard.client.coordinator import Coordinator
from keyshard.client.errors import InvalidInputError, RemoteError
from keyshard.client.keys import KeyDescription
from wire.approvals import ApprovalPolicy, Operation, lifecycle_digest
from wire.errors import ErrorCode
from wire.messages import DkgOutbox, RepairStart, RepairSum, Reply, Request


def drive(cluster: InProcessCluster, work: Callable[[Coordinator], Awaitable[object]]) -> object:
    async def main() -> object:
        async with cluster.coordinator() as coordinator:
            return await work(coordinator)

    return asyncio.run(main())


@pytest.fixture
def cluster() -> InProcessCluster:
    return InProcessCluster()


async def signs(c: Coordinator, key: KeyDescription, signers: list[str]) -> None:
    message = b"pay %d" % time.monotonic_ns()
    signature = await c.sign(key.name, message, signers=signers)
    Ed25519PublicKey.from_public_bytes(key.public_key).verify(signature, message)


def _lose(cluster: InProcessCluster, node_id: str, how: str) -> None:
    host = cluster.hosts[node_id]
    if how == "deleted":
        del host.blobs["key-k"]
    else:
        blob = bytearray(host.blobs["key-k"])
        blob[-1] ^= 1
        host.blobs["key-k"] = bytes(blob)
    asyncio.run(cluster.restart(node_id))


@pytest.mark.parametrize("how", ["deleted", "corrupt"])
def test_a_lost_share_is_repaired_and_signs_again(cluster: InProcessCluster, how: str) -> None:
    key = drive(cluster, lambda c: c.create_key("k", threshold=1))
    assert isinstance(key, KeyDescription)
    before = asyncio.run(cluster.services["node-3"]._keys.stored("k")).share
    _lose(cluster, "node-3", how)

    async def work(c: Coordinator) -> None:
        lost = await c.describe_key("k", refresh=True)
        assert lost.missing == ("node-3",)
        with pytest.raises(InvalidInputError):
            await c.sign("k", b"m", signers=["node-1", "node-3"])
        repaired = await c.repair_key("k", "node-3")
        assert repaired.missing == ()
        assert repaired.public.to_bytes() == key.public.to_bytes()
        await signs(c, key, ["node-1", "node-3"])
        await signs(c, key, ["node-2", "node-3"])

    drive(cluster, work)
    after = asyncio.run(cluster.services["node-3"]._keys.stored("k")).share
    assert after.secret_share == before.secret_share  # the same share, at the same position
    asyncio.run(cluster.restart("node-3"))  # and sealed: it survives a restart
    restored = asyncio.run(cluster.services["node-3"]._keys.stored("k")).share
    assert restored.secret_share == after.secret_share


def test_a_repair_after_a_refresh_restores_the_new_epoch(cluster: InProcessCluster) -> None:
    async def setup(c: Coordinator) -> KeyDescription:
        key = await c.create_key("k", threshold=1)
        await c.set_key_state("k", "disable")
        await c.refresh_key("k")
        return key

    key = drive(cluster, setup)
    assert isinstance(key, KeyDescription)
    _lose(cluster, "node-1", "deleted")

    async def work(c: Coordinator) -> None:
        repaired = await c.repair_key("k", "node-1", helpers=["node-2", "node-3"])
        assert (repaired.epoch, repaired.state) == (1, "disabled")  # the helpers' record
        await c.set_key_state("k", "enable")
        await signs(c, key, ["node-1", "node-2"])

    drive(cluster, work)


def test_a_node_that_holds_its_share_is_not_overwritten(cluster: InProcessCluster) -> None:
    async def work(c: Coordinator) -> None:
        await c.create_key("k", threshold=1)
        with pytest.raises(RemoteError) as caught:
            await c.repair_key("k", "node-3")
        assert caught.value.error_code is ErrorCode.KEY_EXISTS
        with pytest.raises(InvalidInputError):
            await c.repair_key("k", "node-3", helpers=["node-1", "node-3"])
        with pytest.raises(InvalidInputError):
            await c.repair_key("k", "node-3", helpers=["node-1"])  # t+1 = 2 needed
        with pytest.raises(InvalidInputError):
            await c.repair_key("k", "node-9")

    drive(cluster, work)


def test_a_helper_refuses_too_few_helpers_or_a_target_among_them(
    cluster: InProcessCluster,
) -> None:
    async def work(c: Coordinator) -> None:
        await c.create_key("k", threshold=1)
        documents = {n: (await c.link(n)).document for n in ("node-1", "node-2", "node-3")}
        node = cluster.services["node-1"]
        session = b"r" * 32
        alone = {n: documents[n] for n in ("node-1", "node-3")}
        one = await node.answer(RepairStart("k", session, 0, "node-3", alone))
        assert one.code is ErrorCode.SESSION  # type: ignore[attr-defined]
        wrong_epoch = await node.answer(RepairStart("k", session, 4, "node-3", documents))
        assert wrong_epoch.code is ErrorCode.EPOCH_MISMATCH  # type: ignore[attr-defined]
        itself = await node.answer(RepairStart("k", session, 0, "node-1", documents))
        assert itself.code is ErrorCode.SESSION  # type: ignore[attr-defined]

    drive(cluster, work)


def test_a_sum_altered_in_relay_plants_nothing(cluster: InProcessCluster) -> None:
    drive(cluster, lambda c: c.create_key("k", threshold=1))
    _lose(cluster, "node-3", "deleted")

    def swap(request: Request, reply: Reply) -> Reply:
        if isinstance(request, RepairSum) and isinstance(reply, DkgOutbox):
            return DkgOutbox({"node-3": reply.outbox["node-3"][:-1] + b"\x00"})
        return reply

    cluster.tamper["node-2"] = swap

    async def work(c: Coordinator) -> None:
        with pytest.raises(RemoteError) as caught:
            await c.repair_key("k", "node-3", helpers=["node-1", "node-2"])
        assert caught.value.error_code is ErrorCode.ENVELOPE
        cluster.tamper.clear()
        assert (await c.describe_key("k", refresh=True)).missing == ("node-3",)

    drive(cluster, work)


def test_a_policy_that_lists_repair_needs_its_quorum(cluster: InProcessCluster) -> None:
    alice = Ed25519PrivateKey.generate()
    policy = ApprovalPolicy((public_key_bytes(alice),), 1, frozenset({Operation.REPAIR}))
    key = drive(cluster, lambda c: c.create_key("k", threshold=1, policy=policy))
    assert isinstance(key, KeyDescription)
    _lose(cluster, "node-3", "deleted")

    async def work(c: Coordinator) -> None:
        with pytest.raises(RemoteError) as caught:
            await c.repair_key("k", "node-3")
        assert caught.value.error_code is ErrorCode.QUORUM_NOT_MET
        approval = sign_approval(
            alice,
            key_name="k",
            group_public_key=key.public_key,
            operation=Operation.REPAIR,
            digest=lifecycle_digest(Operation.REPAIR, 0, b"node-3"),
            not_after=int(time.time()) + 600,
        ).encode()
        assert (await c.repair_key("k", "node-3", approvals=[approval])).missing == ()

    drive(cluster, work)
