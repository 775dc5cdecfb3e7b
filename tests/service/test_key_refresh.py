"""Proactive refresh over the network (issue 10), the real Coordinator against real in-process
nodes with sealed stores: the same public key, new shares on every holder, the next epoch, and
everything made with the old shares destroyed.

Crash tests: a node is restarted (new boot, same sealed blobs — what a kill does) or the client
stops, right before or after each step (deal, stage, commit). After each, signing works with one
epoch — the old one where no holder committed, the new one where any did — and never with a mix
of the two; ``refresh_key`` then finishes the refresh (on a committed holder's vouch) or abandons
it everywhere and refreshes anew. That a share from before a refresh combined with shares after
it signs and decrypts nothing is the core's test (tests/mpc/test_refresh.py::
test_new_shares_sign_and_old_new_mixes_sign_nothing and ::test_mixed_old_and_new_shares_cannot_
decrypt).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import coincurve
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from inprocess import InProcessCluster

from keyshard.client.approvals import public_key_bytes, sign_approval
from keyshard.client.coordinator import Coordinator
from keyshard.client.errors import ChannelError, RemoteError, UnavailableError
from keyshard.client.keys import KeyDescription
from wire.approvals import ApprovalPolicy, Operation, lifecycle_digest
from wire.errors import ErrorCode
from wire.messages import (
    KeyRefresh,
    RefreshAbandon,
    RefreshCommit,
    RefreshFinish,
    RefreshStep,
    Request,
)

NODES = ("node-1", "node-2", "node-3")


def drive(cluster: InProcessCluster, work: Callable[[Coordinator], Awaitable[object]]) -> object:
    async def main() -> object:
        async with cluster.coordinator() as coordinator:
            return await work(coordinator)

    return asyncio.run(main())


@pytest.fixture
def cluster() -> InProcessCluster:
    return InProcessCluster()


def crash(cluster: InProcessCluster, node_id: str, kind: type[Request], *, after: bool) -> None:
    """The next ``kind`` request kills ``node_id`` (restart: new boot, same sealed blobs) — after
    it served the request, or before it did; the client sees a broken channel either way."""
    service = cluster.services[node_id]
    original = service.answer

    async def answer(request: Request, client: bytes = b"") -> object:
        if type(request) is not kind:
            return await original(request, client)
        if after:
            await original(request, client)
        await cluster.restart(node_id)
        raise ChannelError(node_id, "the node crashed")

    service.answer = answer  # type: ignore[assignment,method-assign]


def lost(cluster: InProcessCluster, node_id: str, kind: type[Request]) -> None:
    """The client gives up before sending ``kind`` to ``node_id`` (which keeps running)."""
    service = cluster.services[node_id]
    original = service.answer

    async def answer(request: Request, client: bytes = b"") -> object:
        if type(request) is kind:
            raise ChannelError(node_id, "the client stopped")
        return await original(request, client)

    service.answer = answer  # type: ignore[assignment,method-assign]


def heal(cluster: InProcessCluster) -> None:
    for service in cluster.services.values():
        service.__dict__.pop("answer", None)


async def sealed_epochs(cluster: InProcessCluster, name: str) -> dict[str, tuple[int, bool]]:
    """Each node's sealed epoch and whether a refresh is staged (read as after a restart)."""
    out = {}
    for node_id, service in cluster.services.items():
        key = await service._keys.stored(name)
        out[node_id] = (key.epoch, key.staged is not None)
    return out


async def signs(c: Coordinator, key: KeyDescription, signers: list[str] | None = None) -> None:
    """A signature by the current epoch's holders verifies under the key made at creation."""
    message = b"pay %d" % time.monotonic_ns()
    signature = await c.sign(key.name, message, signers=signers)
    Ed25519PublicKey.from_public_bytes(key.public_key).verify(signature, message)


def test_refresh_keeps_the_public_key_and_renews_every_share(cluster: InProcessCluster) -> None:
    async def work(c: Coordinator) -> None:
        key = await c.create_key("k", threshold=1)
        await signs(c, key)
        old = {n: (await s._keys.stored("k")).share for n, s in cluster.services.items()}
        refreshed = await c.refresh_key("k")
        assert refreshed.epoch == 1
        assert refreshed.public_key == key.public_key
        assert refreshed.public.verifying_shares != key.public.verifying_shares
        for node_id, service in cluster.services.items():
            stored = await service._keys.stored("k")
            assert stored.epoch == 1
            assert stored.staged is None
            assert stored.share.secret_share != old[node_id].secret_share
            assert service._nonces.available("k") == 0  # the old epoch's nonces are gone
        for signers in (["node-1", "node-2"], ["node-2", "node-3"], ["node-1", "node-3"]):
            await signs(c, key, signers)
        ciphertext = await c.encrypt("k", b"payroll")
        assert await c.decrypt("k", ciphertext) == b"payroll"
        assert (await c.refresh_key("k")).epoch == 2

    drive(cluster, work)


def test_a_threshold_ecdsa_key_refreshes_and_its_presignatures_die(
    cluster: InProcessCluster,
) -> None:
    async def work(c: Coordinator) -> None:
        key = await c.create_key("e", suite="ecdsa-secp256k1", threshold=1)
        await c.stock_presignatures("e", 2)
        await c.refresh_key("e")
        for service in cluster.services.values():
            assert service._pools.held("e", b"") == 0
        signature = await c.sign_ecdsa("e", b"tx")
        assert coincurve.PublicKey(key.public_key).verify(signature.to_der(), b"tx")

    drive(cluster, work)


def test_a_refresh_left_by_another_client_is_seen_by_this_one(cluster: InProcessCluster) -> None:
    async def work() -> None:
        async with cluster.coordinator() as a, cluster.coordinator() as b:
            key = await a.create_key("k", threshold=1)
            await signs(b, key)  # b caches the epoch-0 description and nonces
            await a.refresh_key("k")
            await signs(b, key)  # spent nonces: b describes the key again, at epoch 1

    asyncio.run(work())


def test_a_node_killed_after_dealing(cluster: InProcessCluster) -> None:
    async def work(c: Coordinator) -> None:
        key = await c.create_key("k", threshold=1)
        crash(cluster, "node-3", KeyRefresh, after=True)
        with pytest.raises((ChannelError, RemoteError, UnavailableError)):
            await c.refresh_key("k")
        heal(cluster)
        epochs = await sealed_epochs(cluster, "k")
        assert {e for e, _ in epochs.values()} == {0}  # nobody committed
        await signs(c, key)  # the old epoch signs
        refreshed = await c.refresh_key("k")  # abandoned everywhere, then refreshed anew
        assert refreshed.epoch == 1
        assert await sealed_epochs(cluster, "k") == dict.fromkeys(NODES, (1, False))
        await signs(c, key, ["node-1", "node-3"])

    drive(cluster, work)


def test_a_node_killed_after_staging(cluster: InProcessCluster) -> None:
    async def work(c: Coordinator) -> None:
        key = await c.create_key("k", threshold=1)
        crash(cluster, "node-3", RefreshStep, after=True)
        with pytest.raises(ChannelError):
            await c.refresh_key("k")
        heal(cluster)
        # every node staged, none committed: the old epoch is the only one, and it signs
        assert await sealed_epochs(cluster, "k") == dict.fromkeys(NODES, (0, True))
        for signers in (["node-1", "node-3"], ["node-2", "node-3"]):
            await signs(c, key, signers)
        # a new refresh is refused on a node with a staged share until it is resolved
        assert (await c.refresh_key("k")).epoch == 1
        assert await sealed_epochs(cluster, "k") == dict.fromkeys(NODES, (1, False))
        await signs(c, key, ["node-2", "node-3"])

    drive(cluster, work)


def test_a_node_killed_before_its_commit_is_finished_on_a_vouch(
    cluster: InProcessCluster,
) -> None:
    async def work(c: Coordinator) -> None:
        key = await c.create_key("k", threshold=1)
        crash(cluster, "node-3", RefreshCommit, after=False)
        with pytest.raises(ChannelError):
            await c.refresh_key("k")
        heal(cluster)
        epochs = await sealed_epochs(cluster, "k")
        assert epochs == {"node-1": (1, False), "node-2": (1, False), "node-3": (0, True)}
        # the new epoch has t+1 holders and signs; node-3 lags and is never chosen
        described = await c.describe_key("k", refresh=True)
        assert (described.epoch, described.other_epoch) == (1, ("node-3",))
        await signs(c, key)
        with pytest.raises(Exception, match="not holders"):
            await c.sign("k", b"m", signers=["node-1", "node-3"])
        # a state change waits for the refresh to finish (node-3 would miss it)
        with pytest.raises(UnavailableError, match="finish its refresh"):
            await c.set_key_state("k", "disable")
        # refresh_key finishes it (node-2 vouches); it counts as the refresh asked for
        assert (await c.refresh_key("k")).epoch == 1
        assert await sealed_epochs(cluster, "k") == dict.fromkeys(NODES, (1, False))
        await signs(c, key, ["node-1", "node-3"])

    drive(cluster, work)


def test_the_client_stopping_after_one_commit(cluster: InProcessCluster) -> None:
    async def work(c: Coordinator) -> None:
        key = await c.create_key("k", threshold=1)
        lost(cluster, "node-2", RefreshCommit)
        lost(cluster, "node-3", RefreshCommit)
        with pytest.raises(ChannelError):
            await c.refresh_key("k")
        heal(cluster)
        epochs = await sealed_epochs(cluster, "k")
        assert epochs == {"node-1": (1, False), "node-2": (0, True), "node-3": (0, True)}
        # one holder at epoch 1 is not t+1: the old epoch (nodes 2 and 3, staged, still holding
        # their old shares) is the one used; node-1's new share is never mixed with old ones
        described = await c.describe_key("k", refresh=True)
        assert (described.epoch, described.other_epoch) == (0, ("node-1",))
        await signs(c, key)
        with pytest.raises(Exception, match="not holders"):
            await c.sign("k", b"m", signers=["node-1", "node-2"])
        assert (await c.refresh_key("k")).epoch == 1
        await signs(c, key, ["node-2", "node-3"])

    drive(cluster, work)


def test_a_node_killed_after_its_commit(cluster: InProcessCluster) -> None:
    async def work(c: Coordinator) -> None:
        key = await c.create_key("k", threshold=1)
        crash(cluster, "node-1", RefreshCommit, after=True)
        with pytest.raises(ChannelError):
            await c.refresh_key("k")
        heal(cluster)
        assert await sealed_epochs(cluster, "k") == dict.fromkeys(NODES, (1, False))
        await signs(c, key, ["node-1", "node-2"])

    drive(cluster, work)


def test_every_node_killed_after_staging_loses_no_key(cluster: InProcessCluster) -> None:
    async def work(c: Coordinator) -> None:
        key = await c.create_key("k", threshold=1)
        lost(cluster, "node-1", RefreshCommit)
        lost(cluster, "node-2", RefreshCommit)
        lost(cluster, "node-3", RefreshCommit)
        with pytest.raises(ChannelError):
            await c.refresh_key("k")
        for node_id in NODES:
            await cluster.restart(node_id)
        await c.close()
        return key

    key = drive(cluster, work)
    assert isinstance(key, KeyDescription)

    async def after(c: Coordinator) -> None:
        assert await sealed_epochs(cluster, "k") == dict.fromkeys(NODES, (0, True))
        await signs(c, key)
        assert (await c.refresh_key("k")).epoch == 1
        await signs(c, key)

    drive(cluster, after)


def test_abandoning_needs_every_holder(cluster: InProcessCluster) -> None:
    async def work(c: Coordinator) -> None:
        await c.create_key("k", threshold=1)
        crash(cluster, "node-3", RefreshStep, after=True)
        with pytest.raises(ChannelError):
            await c.refresh_key("k")
        heal(cluster)
        cluster.stopped.add("node-3")
        for link in cluster.links:
            if link.node_id == "node-3":
                link.break_()
        with pytest.raises(UnavailableError, match="every holder"):
            await c.refresh_key("k")
        assert await sealed_epochs(cluster, "k") == dict.fromkeys(NODES, (0, True))

    drive(cluster, work)


def test_nodes_refuse_what_would_break_a_refresh(cluster: InProcessCluster) -> None:
    async def work(c: Coordinator) -> None:
        await c.create_key("k", threshold=1)
        node = cluster.services["node-1"]
        documents = {n: (await c.link(n)).document for n in NODES}
        session = b"s" * 32
        wrong_epoch = await node.answer(KeyRefresh("k", session, 5, documents))
        assert wrong_epoch.code is ErrorCode.EPOCH_MISMATCH  # type: ignore[attr-defined]
        two = {n: documents[n] for n in ("node-1", "node-2")}
        partial = await node.answer(KeyRefresh("k", session, 0, two))
        assert partial.code is ErrorCode.SESSION  # type: ignore[attr-defined]
        unknown = await node.answer(RefreshStep("k", session, (b"x",)))
        assert unknown.code is ErrorCode.SESSION  # type: ignore[attr-defined]
        nothing = await node.answer(RefreshFinish("k", 1, two, (b"x",)))
        assert nothing.code is ErrorCode.SESSION  # type: ignore[attr-defined]
        kept = await node.answer(RefreshAbandon("k", 0, True))  # nothing staged: a no-op
        assert kept.epoch == 0  # type: ignore[attr-defined]
        await c.set_key_state("k", "schedule_deletion", days=7)
        pending = await node.answer(KeyRefresh("k", session, 0, documents))
        assert pending.code is ErrorCode.KEY_STATE  # type: ignore[attr-defined]

    drive(cluster, work)


def test_a_policy_that_lists_refresh_needs_its_quorum(cluster: InProcessCluster) -> None:
    alice = Ed25519PrivateKey.generate()
    policy = ApprovalPolicy((public_key_bytes(alice),), 1, frozenset({Operation.REFRESH}))

    async def work(c: Coordinator) -> None:
        key = await c.create_key("k", threshold=1, policy=policy)
        with pytest.raises(RemoteError) as caught:
            await c.refresh_key("k")
        assert caught.value.error_code is ErrorCode.QUORUM_NOT_MET
        approval = sign_approval(
            alice,
            key_name="k",
            group_public_key=key.public_key,
            operation=Operation.REFRESH,
            digest=lifecycle_digest(Operation.REFRESH, 0),
            not_after=int(time.time()) + 600,
        ).encode()
        assert (await c.refresh_key("k", approvals=[approval])).epoch == 1
        with pytest.raises(RemoteError) as caught:  # it named epoch 0: not good twice
            await c.refresh_key("k", approvals=[approval])
        assert caught.value.error_code is ErrorCode.APPROVAL_MISMATCH

    drive(cluster, work)


def test_a_refresh_with_a_holder_down_is_refused_and_changes_nothing(
    cluster: InProcessCluster,
) -> None:
    async def work(c: Coordinator) -> None:
        key = await c.create_key("k", threshold=1)
        cluster.stopped.add("node-3")
        for link in cluster.links:
            if link.node_id == "node-3":
                link.break_()
        with pytest.raises(UnavailableError, match="every holder"):
            await c.refresh_key("k")
        assert await sealed_epochs(cluster, "k") == dict.fromkeys(NODES, (0, False))
        await signs(c, key)

    drive(cluster, work)


def test_an_abandon_racing_a_commit_on_one_node_sees_the_commit(
    cluster: InProcessCluster,
) -> None:
    """A second client resolving the key while a commit's reseal is in flight on node-1: node-1
    answers the abandon only after the commit (one record change at a time per key), so the
    resolver learns node-1 moved on and never discards the others' staged shares."""
    host = cluster.hosts["node-1"]
    original = host.put_blob
    puts: list[str] = []
    parked = asyncio.Event()
    release = asyncio.Event()

    async def put_blob(name: str, data: bytes) -> None:
        if name == "key-k":
            puts.append(name)
        if name == "key-k" and len(puts) == 4:  # the refresh's commit: parked
            parked.set()
            await release.wait()
        await original(name, data)

    host.put_blob = put_blob  # type: ignore[method-assign]

    async def work(c: Coordinator) -> None:
        await c.create_key("k", threshold=1)
        assert len(puts) == 2  # sealed pending, then committed
        lost(cluster, "node-2", RefreshCommit)
        lost(cluster, "node-3", RefreshCommit)
        refresh = asyncio.create_task(c.refresh_key("k"))
        await asyncio.wait_for(parked.wait(), 60)
        abandon = asyncio.create_task(cluster.services["node-1"].answer(RefreshAbandon("k", 0)))
        for _ in range(50):
            await asyncio.sleep(0)
        assert not abandon.done()  # it waits for the commit's reseal
        release.set()
        reply = await abandon
        assert reply.epoch == 1  # type: ignore[attr-defined]
        with pytest.raises(ChannelError):
            await refresh

    drive(cluster, work)


def test_key_info_names_the_holders_an_interrupted_refresh_left_behind(
    cluster: InProcessCluster,
) -> None:
    from keyshard.cli.key_cmd import _key_record, _key_text  # noqa: PLC0415 -- rendering only

    async def work(c: Coordinator) -> KeyDescription:
        await c.create_key("k", threshold=1)
        crash(cluster, "node-3", RefreshCommit, after=False)
        with pytest.raises(ChannelError):
            await c.refresh_key("k")
        heal(cluster)
        return await c.describe_key("k", refresh=True)

    key = drive(cluster, work)
    assert isinstance(key, KeyDescription)
    record = _key_record(key)
    assert record["other_epoch"] == ["node-3"]
    assert record["committee"] == list(NODES)
    assert record["epoch"] == 1
    text = _key_text(record)
    assert "OTHER EPOCH   node-3: an interrupted refresh" in text
