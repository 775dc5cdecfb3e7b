"""Reshare over the network (issue 10), the real Coordinator against five real in-process nodes
with sealed stores: a key made 2-of-3 on node-1..3 moves to node-1, node-2, node-4, node-5 (or all
five) with a new threshold; the public key stays, the joining nodes sign, the leaving node's share
is erased and old shares do not combine with new ones.

Crash tests: a node is restarted (new boot, same sealed blobs — what a kill does) or the client
stops, right before or after each step (start/deal, stage, commit, retire). After each, the key
is served by ONE committee — the old one where no new member committed, the new one where any
did — and ``reshare_key`` then finishes the interrupted reshare (on a committed member's vouch) or
abandons it everywhere and reshares anew.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

import coincurve
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from inprocess import InProcessCluster

from enclave.mpc.identifiers import Identifier
from enclave.mpc.shamir import reconstruct
from enclave.service.errors import UnknownKeyError
from keyshard.client.approvals import public_key_bytes, sign_approval
from keyshard.client.coordinator import Coordinator
from keyshard.client.errors import (
    ChannelError,
    InvalidInputError,
    RemoteError,
    UnavailableError,
)
from keyshard.client.keys import KeyDescription
from wire.approvals import ApprovalPolicy, Operation, lifecycle_digest, reshare_detail
from wire.errors import ErrorCode
from wire.messages import (
    ErrorReply,
    RefreshAbandon,
    Request,
    ReshareCommit,
    ReshareStart,
    ReshareStep,
)

NODES = ("node-1", "node-2", "node-3", "node-4", "node-5")
OLD = ["node-1", "node-2", "node-3"]
NEW = ["node-1", "node-2", "node-4", "node-5"]


def drive(cluster: InProcessCluster, work: Callable[[Coordinator], Awaitable[object]]) -> object:
    async def main() -> object:
        async with cluster.coordinator() as coordinator:
            return await work(coordinator)

    return asyncio.run(main())


@pytest.fixture
def cluster() -> InProcessCluster:
    return InProcessCluster(NODES)


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


async def records(cluster: InProcessCluster, name: str) -> dict[str, str]:
    """What each node has sealed of ``name``: ``none``, ``e<epoch>`` (committed, with its
    committee size), ``staged`` or ``joining``."""
    out = {}
    for node_id, service in cluster.services.items():
        try:
            key = await service._keys.stored(name)
        except UnknownKeyError:
            out[node_id] = "none"
            continue
        if key.pending:
            out[node_id] = "joining"
        elif key.staged is not None:
            out[node_id] = "staged"
        else:
            out[node_id] = f"e{key.epoch}/{len(key.nodes)}"
    return out


async def signs(c: Coordinator, key: KeyDescription, signers: list[str] | None = None) -> None:
    """A signature verifies under the key made at creation (an independent verifier)."""
    message = b"pay %d" % time.monotonic_ns()
    signature = await c.sign(key.name, message, signers=signers)
    Ed25519PublicKey.from_public_bytes(key.public_key).verify(signature, message)


async def created(c: Coordinator, name: str = "k") -> KeyDescription:
    """A 2-of-3 key (t=1) on node-1..3 that has signed once."""
    key = await c.create_key(name, threshold=1, nodes=OLD)
    await signs(c, key)
    return key


def test_reshare_to_a_larger_committee_keeps_the_key_and_erases_the_leaver(
    cluster: InProcessCluster,
) -> None:
    async def work(c: Coordinator) -> None:
        key = await created(c)
        old_share = (await cluster.services["node-3"]._keys.stored("k")).share
        reshared = await c.reshare_key("k", nodes=NEW, threshold=2)
        assert reshared.public_key == key.public_key
        assert reshared.epoch == 1
        assert reshared.threshold == 2
        assert sorted(reshared.holders) == NEW
        assert await records(cluster, "k") == {
            "node-1": "e1/4",
            "node-2": "e1/4",
            "node-3": "none",  # the leaving holder's share is erased
            "node-4": "e1/4",
            "node-5": "e1/4",
        }
        for signers in (["node-1", "node-4", "node-5"], ["node-2", "node-4", "node-5"]):
            await signs(c, reshared, signers)
        with pytest.raises(Exception, match="not holders"):
            await signs(c, reshared, ["node-1", "node-3", "node-4"])
        ciphertext = await c.encrypt("k", b"payroll")
        assert await c.decrypt("k", ciphertext) == b"payroll"
        # old shares and new ones do not combine into the key
        group = key.public.group
        new = {n: (await cluster.services[n]._keys.stored("k")).share for n in NEW}
        y = key.public.group_public_key
        ids = {n: Identifier.from_int(group, i) for i, n in enumerate(NEW, 1)}
        honest = {ids[n]: new[n].secret_share for n in ("node-1", "node-4", "node-5")}
        assert group.generator() * reconstruct(group, honest) == y
        mixed = {ids[n]: new[n].secret_share for n in ("node-1", "node-4")}
        mixed[old_share.identifier] = old_share.secret_share  # old party 3, never a new id 3
        assert group.generator() * reconstruct(group, mixed) != y
        # and a second reshare, to all five, moves on again
        again = await c.reshare_key("k", nodes=list(NODES), threshold=2)
        assert again.epoch == 2
        assert sorted(again.holders) == list(NODES)
        await signs(c, again, ["node-3", "node-4", "node-5"])

    drive(cluster, work)


def test_a_threshold_ecdsa_key_reshares_to_five_and_signs_with_the_joiners(
    cluster: InProcessCluster,
) -> None:
    async def work(c: Coordinator) -> None:
        key = await c.create_key("e", suite="ecdsa-secp256k1", threshold=1, nodes=OLD)
        await c.stock_presignatures("e", 1)
        with pytest.raises(RemoteError) as refused:  # ECDSA needs n >= 2t+1: 4 < 5
            await c.reshare_key("e", nodes=NEW, threshold=2)
        assert refused.value.error_code is ErrorCode.MALFORMED
        reshared = await c.reshare_key("e", nodes=list(NODES), threshold=2)
        for service in cluster.services.values():
            assert service._pools.held("e", b"") == 0  # presignatures of the old shares died
        assert reshared.public_key == key.public_key
        message = b"to the joiners"
        [presignature] = await c.presign("e", signers=list(NODES))  # node-4 and node-5 sign
        signature = await c.sign_ecdsa("e", message, presignature=presignature)
        public = coincurve.PublicKey(key.public_key)
        assert public.verify(signature.to_der(), message)

    drive(cluster, work)


def test_a_joining_node_checks_every_old_holder_sent_the_same_record(
    cluster: InProcessCluster,
) -> None:
    async def work(c: Coordinator) -> None:
        await created(c)

        # node-3 deals to node-4 under another epoch's record: the joiner refuses to stage
        service = cluster.services["node-3"]
        original = service._reshare_start

        async def lying_start(request: ReshareStart) -> object:
            key = await service._keys.active("k")
            service._keys._cache["k"] = replace(key, delete_at=7)
            try:
                return await original(request)
            finally:
                service._keys._cache["k"] = key

        service._reshare_start = lying_start  # type: ignore[assignment,method-assign]
        with pytest.raises(RemoteError, match="different records"):
            await c.reshare_key("k", nodes=NEW, threshold=2)
        del service.__dict__["_reshare_start"]
        # nothing changed for the old committee; the leftovers are cleared by the next reshare
        assert (await c.describe_key("k", refresh=True)).epoch == 0
        reshared = await c.reshare_key("k", nodes=NEW, threshold=2)
        await signs(c, reshared, ["node-2", "node-4", "node-5"])

    drive(cluster, work)


def test_reshare_needs_the_policys_quorum_naming_the_committee(cluster: InProcessCluster) -> None:
    approvers = [Ed25519PrivateKey.generate() for _ in range(2)]
    policy = ApprovalPolicy(
        tuple(public_key_bytes(a) for a in approvers), 2, frozenset({Operation.SIGN})
    )  # reshare is guarded without being listed

    async def work(c: Coordinator) -> None:
        key = await c.create_key("p", threshold=1, nodes=OLD, policy=policy, exportable=True)
        with pytest.raises(RemoteError) as refused:
            await c.reshare_key("p", nodes=NEW, threshold=2)
        assert refused.value.error_code is ErrorCode.QUORUM_NOT_MET
        # were the old holders to deal without approvals, the joiners would still refuse
        for node_id in OLD:
            cluster.services[node_id]._approve = lambda *a, **k: None  # type: ignore[method-assign]
        with pytest.raises(RemoteError) as refused:
            await c.reshare_key("p", nodes=NEW, threshold=2)
        assert refused.value.error_code is ErrorCode.QUORUM_NOT_MET
        for node_id in OLD:
            del cluster.services[node_id].__dict__["_approve"]
        assert (await records(cluster, "p"))["node-4"] == "none"  # the joiner sealed nothing

        def approve(nodes: list[str], threshold: int) -> list[bytes]:
            digest = lifecycle_digest(Operation.RESHARE, 0, reshare_detail(nodes, threshold))
            return [
                sign_approval(
                    a,
                    key_name="p",
                    group_public_key=key.public_key,
                    operation=Operation.RESHARE,
                    digest=digest,
                    not_after=int(time.time()) + 600,
                ).encode()
                for a in approvers
            ]

        with pytest.raises(RemoteError):  # approvals of another committee
            await c.reshare_key("p", nodes=NEW, threshold=2, approvals=approve(NEW, 1))
        reshared = await c.reshare_key("p", nodes=NEW, threshold=2, approvals=approve(NEW, 2))
        assert reshared.policy == policy  # the joiners got the policy from the old holders
        joined = await cluster.services["node-4"]._keys.stored("p")
        assert (joined.exportable, joined.exported, joined.imported) == (True, False, False)
        assert await records(cluster, "p") == dict.fromkeys(NODES, "e1/4") | {"node-3": "none"}

    drive(cluster, work)


# -- crashes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("node_id", "kind", "after"),
    [
        ("node-3", ReshareStart, True),  # an old holder, after dealing
        ("node-4", ReshareStart, False),  # a joiner, before it started
        ("node-4", ReshareStep, True),  # a joiner, after staging
        ("node-1", ReshareStep, True),  # a staying holder, after staging
        ("node-2", ReshareStep, False),  # a staying holder, before staging
    ],
)
def test_a_crash_before_any_commit_leaves_the_old_committee(
    cluster: InProcessCluster, node_id: str, kind: type[Request], after: bool
) -> None:
    async def work(c: Coordinator) -> None:
        key = await created(c)
        crash(cluster, node_id, kind, after=after)
        with pytest.raises((ChannelError, UnavailableError)):
            await c.reshare_key("k", nodes=NEW, threshold=2)
        heal(cluster)
        described = await c.describe_key("k", refresh=True)
        assert described.epoch == 0
        assert sorted(described.holders) == OLD
        await signs(c, described, ["node-1", "node-3"])  # the old committee still signs
        reshared = await c.reshare_key("k", nodes=NEW, threshold=2)  # abandons, then anew
        assert reshared.public_key == key.public_key
        assert reshared.epoch == 1
        await signs(c, reshared, ["node-1", "node-4", "node-5"])
        assert (await records(cluster, "k"))["node-3"] == "none"

    drive(cluster, work)


@pytest.mark.parametrize(
    ("node_id", "after"),
    [
        ("node-1", True),  # a staying member committed, then died
        ("node-4", False),  # a joiner died before its commit (the others committed)
        ("node-2", False),  # a staying member died before its commit
    ],
)
def test_a_crash_during_the_commits_is_finished_on_a_vouch(
    cluster: InProcessCluster, node_id: str, after: bool
) -> None:
    async def work(c: Coordinator) -> None:
        key = await created(c)
        crash(cluster, node_id, ReshareCommit, after=after)
        with pytest.raises(ChannelError):
            await c.reshare_key("k", nodes=NEW, threshold=2)
        heal(cluster)
        state = await records(cluster, "k")
        assert state["node-3"] == "e0/3"  # the leaver erases only after every commit
        # the new committee serves (t+1 = 3 of it committed), never a mix with the old
        described = await c.describe_key("k", refresh=True)
        assert described.epoch == 1
        assert set(described.holders) <= set(NEW)
        reshared = await c.reshare_key("k", nodes=NEW, threshold=2)  # finishes it
        assert reshared.epoch == 1
        assert sorted(reshared.holders) == NEW
        assert reshared.public_key == key.public_key
        assert await records(cluster, "k") == dict.fromkeys(NODES, "e1/4") | {"node-3": "none"}
        await signs(c, reshared, ["node-2", "node-4", "node-5"])

    drive(cluster, work)


def test_the_client_stopping_before_the_leaver_retires(cluster: InProcessCluster) -> None:
    async def work(c: Coordinator) -> None:
        await created(c)
        lost(cluster, "node-3", ReshareCommit)
        with pytest.raises(ChannelError):
            await c.reshare_key("k", nodes=NEW, threshold=2)
        heal(cluster)
        assert (await records(cluster, "k"))["node-3"] == "e0/3"
        described = await c.describe_key("k", refresh=True)
        assert described.epoch == 1
        assert "node-3" not in described.holders
        assert described.other_epoch == ("node-3",)
        refreshed = await c.refresh_key("k")  # resolves the reshare first: the leaver erases
        assert refreshed.epoch == 2
        assert refreshed.other_epoch == ()
        assert (await records(cluster, "k"))["node-3"] == "none"

    drive(cluster, work)


def test_a_leaver_killed_after_it_retired(cluster: InProcessCluster) -> None:
    async def work(c: Coordinator) -> None:
        await created(c)
        crash(cluster, "node-3", ReshareCommit, after=True)
        with pytest.raises(ChannelError):
            await c.reshare_key("k", nodes=NEW, threshold=2)
        heal(cluster)
        assert (await records(cluster, "k"))["node-3"] == "none"
        described = await c.describe_key("k", refresh=True)
        assert described.epoch == 1
        await signs(c, described, ["node-1", "node-4", "node-5"])

    drive(cluster, work)


def test_refresh_never_discards_a_staged_reshare_and_finishes_it_first(
    cluster: InProcessCluster,
) -> None:
    async def work(c: Coordinator) -> None:
        await created(c)
        lost(cluster, "node-1", ReshareCommit)
        lost(cluster, "node-2", ReshareCommit)
        with pytest.raises(ChannelError):
            await c.reshare_key("k", nodes=NEW, threshold=2)
        heal(cluster)
        state = await records(cluster, "k")
        assert state["node-1"] == "staged"
        assert state["node-3"] == "e0/3"
        # node-4 and node-5 committed (every confirmation reached them), so the refresh
        # machinery must not discard node-1's staged share nor commit it as a refresh
        reply = await cluster.services["node-1"].answer(RefreshAbandon("k", 0, True))
        assert isinstance(reply, ErrorReply)
        assert "reshare" in reply.message
        refreshed = await c.refresh_key("k")  # finishes the reshare, then refreshes
        assert refreshed.epoch == 2
        assert sorted(refreshed.holders) == NEW
        assert await records(cluster, "k") == dict.fromkeys(NODES, "e2/4") | {"node-3": "none"}


def test_an_uncommitted_reshare_is_abandoned_only_with_every_node(
    cluster: InProcessCluster,
) -> None:
    async def work(c: Coordinator) -> None:
        await created(c)
        for node_id in NEW:
            lost(cluster, node_id, ReshareCommit)
        with pytest.raises(ChannelError):
            await c.reshare_key("k", nodes=NEW, threshold=2)
        heal(cluster)
        cluster.stopped.add("node-5")
        await c.forget("node-5")
        with pytest.raises(UnavailableError, match="every node"):
            await c.reshare_key("k", nodes=NEW, threshold=2)
        cluster.stopped.clear()
        reshared = await c.reshare_key("k", nodes=NEW, threshold=2)
        assert reshared.epoch == 1

    drive(cluster, work)


def test_refresh_of_a_reshared_key_and_its_abandon_refusal(cluster: InProcessCluster) -> None:
    async def work(c: Coordinator) -> None:
        await created(c)
        reshared = await c.reshare_key("k", nodes=NEW, threshold=2)
        refreshed = await c.refresh_key("k")
        assert refreshed.epoch == 2
        assert sorted(refreshed.holders) == NEW
        await signs(c, reshared, ["node-1", "node-2", "node-5"])
        reply = await cluster.services["node-1"].answer(RefreshAbandon("k", 2, True))
        assert reply.OP == "key_info_reply"  # nothing staged: nothing to refuse

    drive(cluster, work)


def test_nodes_and_client_refuse_what_would_break_a_reshare(cluster: InProcessCluster) -> None:
    async def work(c: Coordinator) -> None:
        key = await created(c)
        with pytest.raises(RemoteError) as refused:  # t must be below n
            await c.reshare_key("k", nodes=["node-4", "node-5"], threshold=2)
        assert refused.value.error_code is ErrorCode.MALFORMED
        with pytest.raises(InvalidInputError):
            await c.reshare_key("k", nodes=["node-1", "node-9"], threshold=1)
        cluster.stopped.add("node-3")  # every old holder deals: one down refuses it
        await c.forget("node-3")
        with pytest.raises(UnavailableError):
            await c.reshare_key("k", nodes=NEW, threshold=2)
        cluster.stopped.clear()
        cluster.stopped.add("node-5")  # every new member too
        await c.forget("node-5")
        with pytest.raises(UnavailableError):
            await c.reshare_key("k", nodes=NEW, threshold=2)
        cluster.stopped.clear()
        assert await records(cluster, "k") == dict.fromkeys(OLD, "e0/3") | {
            "node-4": "none",
            "node-5": "none",
        }
        # a reshare to a wholly new committee: every old holder leaves
        moved = await c.reshare_key("k", nodes=["node-4", "node-5"], threshold=1)
        assert moved.public_key == key.public_key
        assert await records(cluster, "k") == dict.fromkeys(OLD, "none") | {
            "node-4": "e1/2",
            "node-5": "e1/2",
        }
        await signs(c, moved, ["node-4", "node-5"])

    drive(cluster, work)
