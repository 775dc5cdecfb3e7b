"""A key's state over the network (issue 10): disable, enable, scheduled deletion and its
cancellation, driven by the real Coordinator against real in-process nodes with sealed stores.

Every node checks on its own: a disabled or pending-deletion key refuses signing and decryption
with its own wire code; a key with an approval policy needs the quorum's ``delete`` approvals
(naming the key's epoch and the waiting days, spent on first use); when the date comes each node
erases its share (a tombstone sealed over the record) and the name reads as unknown.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from inprocess import InProcessCluster

from enclave.service.errors import UnknownKeyError
from enclave.service.keystore import KeyState, KeyStore
from keyshard.client.approvals import public_key_bytes, sign_approval
from keyshard.client.coordinator import Coordinator
from keyshard.client.errors import (
    InvalidInputError,
    KeyNotFoundError,
    RemoteError,
    UnavailableError,
)
from keyshard.client.keys import KeyDescription
from wire.approvals import ApprovalPolicy, Operation, lifecycle_digest
from wire.errors import ErrorCode

DAY = 86400


class Clock:
    """The nodes' enclave clock, moved by the test (no sleeping)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def drive(cluster: InProcessCluster, work: Callable[[Coordinator], Awaitable[object]]) -> object:
    async def main() -> object:
        async with cluster.coordinator() as coordinator:
            return await work(coordinator)

    return asyncio.run(main())


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cluster(clock: Clock) -> InProcessCluster:
    return InProcessCluster(clock=clock)


async def refused(work: Awaitable[object]) -> ErrorCode:
    with pytest.raises(RemoteError) as caught:
        await work
    return caught.value.error_code


def test_a_disabled_key_refuses_use_until_enabled(cluster: InProcessCluster) -> None:
    async def work(c: Coordinator) -> None:
        key = await c.create_key("k", threshold=1)
        ciphertext = await c.encrypt("k", b"payroll")
        disabled = await c.set_key_state("k", "disable")
        assert disabled.state == "disabled"
        assert disabled.delete_at is None
        assert await refused(c.sign("k", b"m")) is ErrorCode.KEY_DISABLED
        assert await refused(c.decrypt("k", ciphertext)) is ErrorCode.KEY_DISABLED
        assert await c.list_keys() == ["k"]  # listed and described, as AWS KMS does
        assert (await c.set_key_state("k", "disable")).state == "disabled"  # idempotent
        enabled = await c.set_key_state("k", "enable")
        assert enabled.state == "enabled"
        assert enabled.public_key == key.public_key
        Ed25519PublicKey.from_public_bytes(key.public_key).verify(await c.sign("k", b"m"), b"m")
        assert await c.decrypt("k", ciphertext) == b"payroll"

    drive(cluster, work)


def test_disabling_destroys_the_prepared_nonces_and_presignatures(
    cluster: InProcessCluster,
) -> None:
    async def work(c: Coordinator) -> None:
        await c.create_key("e", suite="ecdsa-secp256k1", threshold=1)
        await c.create_key("f", threshold=1)
        await c.stock_presignatures("e", 4)
        await c.sign("f", b"m")  # fetches a batch of preprocessed nonces
        for node_id in ("node-1", "node-2", "node-3"):
            assert cluster.services[node_id]._pools.held("e", b"") == 4
        await c.set_key_state("e", "disable")
        await c.set_key_state("f", "disable")
        for service in cluster.services.values():
            assert service._pools.held("e", b"") == 0
            assert service._nonces.available("f") == 0

    drive(cluster, work)


def test_scheduled_deletion_then_cancellation_leaves_the_key_disabled(
    cluster: InProcessCluster, clock: Clock
) -> None:
    async def work(c: Coordinator) -> None:
        await c.create_key("k", threshold=1)
        pending = await c.set_key_state("k", "schedule_deletion", days=7)
        assert pending.state == "pending_deletion"
        assert pending.delete_at == int(clock.now) + 7 * DAY
        assert await refused(c.sign("k", b"m")) is ErrorCode.KEY_PENDING_DELETION
        assert await refused(c.set_key_state("k", "enable")) is ErrorCode.KEY_STATE
        assert await refused(c.set_key_state("k", "disable")) is ErrorCode.KEY_STATE
        again = await c.set_key_state("k", "schedule_deletion", days=30)  # unchanged
        assert again.delete_at == pending.delete_at
        cancelled = await c.set_key_state("k", "cancel_deletion")
        assert cancelled.state == "disabled"
        assert cancelled.delete_at is None
        await c.set_key_state("k", "enable")
        await c.sign("k", b"m")

    drive(cluster, work)


def test_days_outside_the_waiting_period_are_refused_locally(cluster: InProcessCluster) -> None:
    async def work(c: Coordinator) -> None:
        await c.create_key("k", threshold=1)
        for days in (0, 6, 31):
            with pytest.raises(InvalidInputError):
                await c.set_key_state("k", "schedule_deletion", days=days)
        with pytest.raises(InvalidInputError):
            await c.set_key_state("k", "destroy")

    drive(cluster, work)


def test_when_the_date_comes_every_node_erases_its_share(
    cluster: InProcessCluster, clock: Clock
) -> None:
    async def work(c: Coordinator) -> KeyDescription:
        key = await c.create_key("k", threshold=1)
        await c.set_key_state("k", "schedule_deletion", days=7)
        clock.now += 7 * DAY - 10
        assert (await c.describe_key("k", refresh=True)).state == "pending_deletion"
        clock.now += 10
        with pytest.raises(KeyNotFoundError):
            await c.describe_key("k", refresh=True)
        assert await c.list_keys() == []
        return key

    key = drive(cluster, work)
    assert isinstance(key, KeyDescription)
    for node_id, host in cluster.hosts.items():
        # after a restart too: the sealed record is a tombstone without any share
        asyncio.run(cluster.restart(node_id))
        store = KeyStore(cluster.services[node_id]._keys._store)
        with pytest.raises(UnknownKeyError):
            asyncio.run(store.stored("k"))
        assert "key-k" in host.blobs

    async def recreate(c: Coordinator) -> KeyDescription:
        return await c.create_key("k", threshold=1)  # the name is free again: another key

    assert drive(cluster, recreate).public_key != key.public_key  # type: ignore[attr-defined]


def test_a_key_list_sweeps_keys_whose_date_came(cluster: InProcessCluster, clock: Clock) -> None:
    async def work(c: Coordinator) -> None:
        await c.create_key("a", threshold=1)
        await c.create_key("b", threshold=1)
        await c.set_key_state("a", "schedule_deletion", days=7)
        clock.now += 8 * DAY
        assert await c.list_keys() == ["b"]

    drive(cluster, work)
    for service in cluster.services.values():
        assert "a" in service._keys._deleted


def test_state_survives_a_restart(cluster: InProcessCluster) -> None:
    async def setup(c: Coordinator) -> None:
        await c.create_key("k", threshold=1)
        await c.set_key_state("k", "disable")

    drive(cluster, setup)
    for node_id in cluster.services:
        asyncio.run(cluster.restart(node_id))
        key = asyncio.run(cluster.services[node_id]._keys.stored("k"))
        assert key.state is KeyState.DISABLED

    async def check(c: Coordinator) -> str:
        return (await c.describe_key("k")).state

    assert drive(cluster, check) == "disabled"


def test_a_holder_out_of_reach_leaves_the_change_to_be_run_again(
    cluster: InProcessCluster,
) -> None:
    async def work(c: Coordinator) -> None:
        await c.create_key("k", threshold=1)
        cluster.stopped.add("node-3")
        for link in cluster.links:
            if link.node_id == "node-3":
                link.break_()
        with pytest.raises(UnavailableError):
            await c.set_key_state("k", "disable")
        cluster.stopped.clear()
        mixed = await c.describe_key("k", refresh=True)
        assert mixed.state == "mixed"
        assert mixed.states["node-3"] == ("enabled", 0)
        assert (await c.set_key_state("k", "disable")).state == "disabled"

    drive(cluster, work)


def _delete_approval(
    approver: Ed25519PrivateKey, key: KeyDescription, days: int, *, epoch: int | None = None
) -> bytes:
    return sign_approval(
        approver,
        key_name=key.name,
        group_public_key=key.public_key,
        operation=Operation.DELETE,
        digest=lifecycle_digest(
            Operation.DELETE, key.epoch if epoch is None else epoch, days.to_bytes(2, "big")
        ),
        not_after=int(time.time()) + 900,
    ).encode()


def test_deleting_a_key_with_a_policy_needs_its_quorum(cluster: InProcessCluster) -> None:
    alice, bob = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    # the policy lists sign only: delete is guarded by every policy all the same
    policy = ApprovalPolicy(
        (public_key_bytes(alice), public_key_bytes(bob)), 2, frozenset({Operation.SIGN})
    )

    async def work(c: Coordinator) -> None:
        key = await c.create_key("k", threshold=1, policy=policy)
        schedule = c.set_key_state
        assert await refused(schedule("k", "schedule_deletion", days=7)) is (
            ErrorCode.QUORUM_NOT_MET
        )
        one = [_delete_approval(alice, key, 7)]
        assert await refused(schedule("k", "schedule_deletion", days=7, approvals=one)) is (
            ErrorCode.QUORUM_NOT_MET
        )
        other_days = [_delete_approval(alice, key, 30), _delete_approval(bob, key, 30)]
        assert await refused(schedule("k", "schedule_deletion", days=7, approvals=other_days)) is (
            ErrorCode.APPROVAL_MISMATCH
        )
        other_epoch = [_delete_approval(a, key, 7, epoch=1) for a in (alice, bob)]
        assert await refused(schedule("k", "schedule_deletion", days=7, approvals=other_epoch)) is (
            ErrorCode.APPROVAL_MISMATCH
        )
        assert (await c.describe_key("k", refresh=True)).state == "enabled"  # nothing changed
        both = [_delete_approval(alice, key, 7), _delete_approval(bob, key, 7)]
        assert (await schedule("k", "schedule_deletion", days=7, approvals=both)).state == (
            "pending_deletion"
        )
        await schedule("k", "cancel_deletion")  # free: it keeps the key
        # the same approvals were spent on every node: scheduling again needs fresh ones
        assert await refused(schedule("k", "schedule_deletion", days=7, approvals=both)) is (
            ErrorCode.APPROVAL_REUSED
        )
        await schedule("k", "enable")  # free: signing still needs the sign quorum

    drive(cluster, work)


def test_the_sweep_erases_a_due_key_nobody_names(cluster: InProcessCluster, clock: Clock) -> None:
    async def work(c: Coordinator) -> None:
        await c.create_key("k", threshold=1)
        await c.sign("k", b"m")
        await c.set_key_state("k", "schedule_deletion", days=7)
        clock.now += 7 * DAY
        for service in cluster.services.values():
            assert await service.sweep_deletions() == ["k"]
            assert await service.sweep_deletions() == []  # once
            assert service._nonces.available("k") == 0

    drive(cluster, work)
