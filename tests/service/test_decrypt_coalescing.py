"""Concurrent decryptions of one key leave as one ``decrypt_partials`` per node: the real client
Coordinator against real in-process nodes (tests/service/inprocess.py). Each caller gets its own
plaintext or its own error; every partial is still checked by its DLEQ proof; keys with mandatory
participants, named nodes and approvals keep the single request."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from inprocess import InProcessCluster

from keyshard.client.approvals import public_key_bytes, sign_approval
from keyshard.client.coordinator import Coordinator
from keyshard.client.errors import ChannelError, InvalidInputError, ProtocolError, RemoteError
from wire.approvals import ApprovalPolicy, Operation, decryption_digest
from wire.errors import ErrorCode
from wire.messages import (
    DecryptPartial,
    DecryptPartials,
    ErrorReply,
    Partials,
    Reply,
    Request,
)

PLAINTEXTS = [b"payslip %d" % k for k in range(10)]
CONTEXTS = [b"employee %d" % k for k in range(10)]


def drive(cluster: InProcessCluster, work: Callable[[Coordinator], Awaitable[object]]) -> object:
    async def main() -> object:
        async with cluster.coordinator() as coordinator:
            return await work(coordinator)

    return asyncio.run(main())


def sent(cluster: InProcessCluster, kind: type[Request]) -> list[tuple[str, Request]]:
    return [(link.node_id, r) for link in cluster.links for r in link.requests if type(r) is kind]


@pytest.fixture
def cluster() -> InProcessCluster:
    return InProcessCluster()


async def _encrypted(c: Coordinator, name: str = "k") -> list[bytes]:
    await c.create_key(name, threshold=1)
    return [await c.encrypt(name, p, ctx) for p, ctx in zip(PLAINTEXTS, CONTEXTS, strict=True)]


async def _decrypt_all(
    cluster: InProcessCluster, c: Coordinator, ciphertexts: list[bytes], contexts: list[bytes]
) -> list[object]:
    for link in cluster.links:
        link.requests.clear()
    return list(
        await asyncio.gather(
            *(c.decrypt("k", ct, ctx) for ct, ctx in zip(ciphertexts, contexts, strict=True)),
            return_exceptions=True,
        )
    )


def test_concurrent_decryptions_are_one_batch_per_node_each_caller_its_plaintext(
    cluster: InProcessCluster,
) -> None:
    async def work(c: Coordinator) -> list[object]:
        ciphertexts = await _encrypted(c)
        return await _decrypt_all(cluster, c, ciphertexts, CONTEXTS)

    assert drive(cluster, work) == PLAINTEXTS  # each caller its own, in its own order
    batches = sent(cluster, DecryptPartials)
    assert sorted(Counter(node for node, _ in batches).values()) == [1, 1]  # t+1 nodes, once
    for _, batch in batches:
        assert isinstance(batch, DecryptPartials)
        assert list(batch.contexts) == CONTEXTS
        assert len(set(batch.session_ids)) == len(PLAINTEXTS)  # one session per item
    assert sent(cluster, DecryptPartial) == []


def test_a_bad_ciphertext_fails_its_caller_alone_and_never_leaves(
    cluster: InProcessCluster,
) -> None:
    """A wrong context is found by the client's own check of the encryptor's proof: that caller
    gets :class:`InvalidInputError`, the batch carries the nine others, which all decrypt."""
    contexts = list(CONTEXTS)
    contexts[3] = b"somebody else's context"

    async def work(c: Coordinator) -> list[object]:
        ciphertexts = await _encrypted(c)
        return await _decrypt_all(cluster, c, ciphertexts, contexts)

    outcomes = drive(cluster, work)
    assert isinstance(outcomes, list)
    assert isinstance(outcomes[3], InvalidInputError)
    assert [o for k, o in enumerate(outcomes) if k != 3] == PLAINTEXTS[:3] + PLAINTEXTS[4:]
    for _, batch in sent(cluster, DecryptPartials):
        assert isinstance(batch, DecryptPartials)
        assert len(batch.ciphertexts) == 9


def test_a_bad_partial_fails_its_item_alone_and_names_the_node(cluster: InProcessCluster) -> None:
    """node-x answers item 3 with item 4's partial: its DLEQ proof does not verify for item 3,
    so that caller's error names the node; every other item is combined and opened."""

    def swap(request: Request, reply: Reply) -> Reply:
        if isinstance(reply, Partials) and len(reply.partials) > 4:
            partials = list(reply.partials)
            partials[3] = partials[4]
            return Partials(tuple(partials))
        return reply

    def work(c: Coordinator) -> Awaitable[list[object]]:
        async def inner() -> list[object]:
            ciphertexts = await _encrypted(c)
            await c.decrypt("k", ciphertexts[0], CONTEXTS[0])  # links open, load settles
            cluster.tamper["node-1"] = cluster.tamper["node-2"] = cluster.tamper["node-3"] = swap
            for link in cluster.links:
                link._tamper = swap  # the links already open
            return await _decrypt_all(cluster, c, ciphertexts, CONTEXTS)

        return inner()

    outcomes = drive(cluster, work)
    assert isinstance(outcomes, list)
    assert isinstance(outcomes[3], ProtocolError)
    batches = sent(cluster, DecryptPartials)
    assert outcomes[3].culprit == ", ".join(sorted(node for node, _ in batches))
    assert [o for k, o in enumerate(outcomes) if k != 3] == PLAINTEXTS[:3] + PLAINTEXTS[4:]


def test_a_batch_a_node_refuses_is_retried_item_by_item(cluster: InProcessCluster) -> None:
    """A node refusing the batch for a reason that may be one item's (here a refused proof):
    each item is asked alone, so only the item it refuses alone fails."""
    refused_item: list[bytes] = []

    def refuse(request: Request, reply: Reply) -> Reply:
        if isinstance(request, DecryptPartials) and refused_item[0] in request.ciphertexts:
            return ErrorReply(ErrorCode.PROTOCOL, "the ciphertext's proof does not verify")
        return reply

    async def work(c: Coordinator) -> list[object]:
        ciphertexts = await _encrypted(c)
        refused_item.append(ciphertexts[6])
        for link in cluster.links:
            link._tamper = refuse
        cluster.tamper.update(dict.fromkeys(("node-1", "node-2", "node-3"), refuse))
        return await _decrypt_all(cluster, c, ciphertexts, CONTEXTS)

    outcomes = drive(cluster, work)
    assert isinstance(outcomes, list)
    assert isinstance(outcomes[6], RemoteError)
    assert outcomes[6].error_code is ErrorCode.PROTOCOL
    assert [o for k, o in enumerate(outcomes) if k != 6] == PLAINTEXTS[:6] + PLAINTEXTS[7:]
    sizes = sorted({len(b.ciphertexts) for _, b in sent(cluster, DecryptPartials)})  # type: ignore[attr-defined]
    assert sizes == [1, 10]  # the whole batch once, then each item alone


def test_mandatory_participants_nodes_and_approvals_keep_the_single_request(
    cluster: InProcessCluster,
) -> None:
    approver = Ed25519PrivateKey.generate()
    mandatory = ApprovalPolicy(
        (public_key_bytes(approver),), 1, frozenset({Operation.SIGN}), mandatory_nodes=("node-3",)
    )
    approved = ApprovalPolicy((public_key_bytes(approver),), 1, frozenset({Operation.DECRYPT}))

    async def work(c: Coordinator) -> None:
        await c.create_key("m", threshold=1, policy=mandatory)
        await c.create_key("a", threshold=1, policy=approved)
        await c.create_key("k", threshold=1)
        held = [await c.encrypt("m", b"held %d" % k) for k in range(3)]
        assert await asyncio.gather(*(c.decrypt("m", ct) for ct in held)) == [
            b"held %d" % k for k in range(3)
        ]
        key = await c.describe_key("a")
        ciphertext = await c.encrypt("a", b"approved")
        approval = sign_approval(
            approver,
            key_name="a",
            group_public_key=key.public_key,
            operation=Operation.DECRYPT,
            digest=decryption_digest(ciphertext, b""),
            not_after=int(time.time()) + 900,
        ).encode()
        assert await c.decrypt("a", ciphertext, approvals=[approval]) == b"approved"
        plain = await c.encrypt("k", b"named")
        assert await c.decrypt("k", plain, nodes=["node-1", "node-3"]) == b"named"

    drive(cluster, work)
    assert sent(cluster, DecryptPartials) == []
    assert {r.key_name for _, r in sent(cluster, DecryptPartial)} == {"m", "a", "k"}  # type: ignore[attr-defined]


def test_a_node_of_an_earlier_release_is_served_by_the_single_request(
    cluster: InProcessCluster,
) -> None:
    """A node that does not know ``decrypt_partials`` closes the channel on it (as on any op it
    does not know: a rolling upgrade): the batch is tried once more, then every item takes the
    single request, so decryption works across both releases."""

    def earlier_release(request: Request, reply: Reply) -> Reply:
        if isinstance(request, DecryptPartials):
            raise ChannelError("node-1", "channel broken: IncompleteReadError")
        return reply

    cluster.tamper["node-1"] = earlier_release

    async def work(c: Coordinator) -> list[object]:
        ciphertexts = await _encrypted(c)
        cluster.stopped.add("node-3")  # so node-1 is among the t+1 nodes asked
        await c.forget("node-3")
        return await _decrypt_all(cluster, c, ciphertexts, CONTEXTS)

    assert drive(cluster, work) == PLAINTEXTS
    assert [node for node, _ in sent(cluster, DecryptPartials)].count("node-1") == 2  # and again
    singles = sent(cluster, DecryptPartial)
    assert {node for node, _ in singles} == {"node-1", "node-2"}
    assert len(singles) == 2 * len(PLAINTEXTS)
