"""Governance (issue 11) on real in-process nodes driven by the real coordinator: approver
groups, mandatory participants, and policy updates that only the current policy can approve."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from inprocess import InProcessCluster

from keyshard.client.approvals import public_key_bytes, sign_approval
from keyshard.client.coordinator import Coordinator
from keyshard.client.errors import InvalidInputError, RemoteError
from keyshard.client.governance import policy_from_json, policy_to_json
from wire.approvals import (
    ApprovalPolicy,
    Operation,
    message_digest,
    policy_update_digest,
)
from wire.errors import ErrorCode
from wire.messages import EcdsaSign, FrostSign, PolicyHistory, PolicyShow, Request

TREASURY = [Ed25519PrivateKey.generate() for _ in range(3)]
COMPLIANCE = [Ed25519PrivateKey.generate()]


def _hex(keys: list[Ed25519PrivateKey]) -> list[str]:
    return [public_key_bytes(k).hex() for k in keys]


def _policy(**extra: object) -> ApprovalPolicy:
    return policy_from_json(
        json.dumps(
            {
                "groups": {
                    "treasury": {"approvers": _hex(TREASURY), "quorum": 2},
                    "compliance": {"approvers": _hex(COMPLIANCE), "quorum": 1},
                },
                "require": ["sign"],
                **extra,
            }
        )
    )


def _approve(
    keys: list[Ed25519PrivateKey], name: str, public_key: bytes, op: Operation, digest: bytes
) -> tuple[bytes, ...]:
    not_after = int(time.time()) + 600
    return tuple(
        sign_approval(
            k,
            key_name=name,
            group_public_key=public_key,
            operation=op,
            digest=digest,
            not_after=not_after,
        ).encode()
        for k in keys
    )


def drive(cluster: InProcessCluster, work: Callable[[Coordinator], Awaitable[object]]) -> object:
    async def main() -> object:
        async with cluster.coordinator() as coordinator:
            return await work(coordinator)

    return asyncio.run(main())


def nodes_sent(cluster: InProcessCluster, kind: type[Request]) -> set[str]:
    return {link.node_id for link in cluster.links for r in link.requests if type(r) is kind}


@pytest.fixture
def cluster() -> InProcessCluster:
    return InProcessCluster()


def test_a_policy_file_reads_groups_and_defaults_the_quorum_to_their_sum() -> None:
    policy = _policy()
    assert policy.quorum == 3
    assert len(policy.approvers) == 4
    assert [g.name for g in policy.groups] == ["compliance", "treasury"]
    record = policy_to_json(policy)
    assert record is not None
    del record["summary"]  # for people; the rest is the file format
    assert policy_from_json(json.dumps(record)) == policy
    assert ApprovalPolicy.decode(policy.encode()) == policy
    for bad in ('{"groups": {"t": {"approvers": []}}}', '{"quorom": 2}', "[]", "{"):
        with pytest.raises(InvalidInputError):
            policy_from_json(bad)


def test_every_group_must_reach_its_own_quorum(cluster: InProcessCluster) -> None:
    """3 treasury approvals (quorum 3 reached overall) are refused: compliance gave none.
    2 treasury + 1 compliance sign."""
    message = b"pay 100 to alice"

    async def work(c: Coordinator) -> bytes:
        key = await c.create_key("vault", threshold=1, policy=_policy())
        digest = message_digest(message)
        only_treasury = _approve(TREASURY, "vault", key.public_key, Operation.SIGN, digest)
        with pytest.raises(RemoteError) as refused:
            await c.sign("vault", message, approvals=only_treasury)
        assert refused.value.error_code is ErrorCode.QUORUM_NOT_MET
        assert "group 'compliance'" in str(refused.value)
        both = _approve(TREASURY[:2] + COMPLIANCE, "vault", key.public_key, Operation.SIGN, digest)
        return await c.sign("vault", message, approvals=both)

    signature = drive(cluster, work)
    assert isinstance(signature, bytes)
    assert len(signature) == 64


def test_a_mandatory_participant_is_in_every_signing_set(cluster: InProcessCluster) -> None:
    policy = ApprovalPolicy(
        (public_key_bytes(COMPLIANCE[0]),),
        1,
        frozenset({Operation.DECRYPT}),
        mandatory_nodes=("node-3",),
    )

    async def work(c: Coordinator) -> None:
        await c.create_key("held", threshold=1, policy=policy)
        for k in range(4):  # chosen signers always include node-3
            await c.sign("held", b"m%d" % k)
        with pytest.raises(RemoteError) as refused:
            await c.sign("held", b"without node-3", signers=["node-1", "node-2"])
        assert refused.value.error_code is ErrorCode.MANDATORY_PARTICIPANT
        assert "node-3" in str(refused.value)
        ecdsa = await c.create_key("held-ecdsa", suite="ecdsa-secp256k1", policy=policy)
        assert ecdsa.public.threshold == 1
        await c.sign_ecdsa("held-ecdsa", b"tx")

    drive(cluster, work)
    assert "node-3" in nodes_sent(cluster, FrostSign)
    assert "node-3" in nodes_sent(cluster, EcdsaSign)


def test_a_mandatory_node_must_hold_a_share(cluster: InProcessCluster) -> None:
    policy = ApprovalPolicy(
        (public_key_bytes(COMPLIANCE[0]),),
        1,
        frozenset({Operation.SIGN}),
        mandatory_nodes=("node-9",),
    )

    async def work(c: Coordinator) -> None:
        with pytest.raises(RemoteError) as refused:
            await c.create_key("nowhere", threshold=1, policy=policy)
        assert refused.value.error_code is ErrorCode.MANDATORY_PARTICIPANT

    drive(cluster, work)


def test_only_the_current_policy_can_approve_its_update(cluster: InProcessCluster) -> None:
    """Refused by every node without the CURRENT policy's approvals (the new policy's approvers
    cannot install themselves); with them it applies on every node, the old policy stays in the
    history, and the same approvals cannot move the policy a second time."""
    first = _policy()
    second = ApprovalPolicy((public_key_bytes(COMPLIANCE[0]),), 1, frozenset({Operation.SIGN}))

    async def work(c: Coordinator) -> None:
        key = await c.create_key("gov", threshold=1, policy=first)
        digest = policy_update_digest(0, second.encode())
        by_new = _approve(COMPLIANCE, "gov", key.public_key, Operation.UPDATE_POLICY, digest)
        with pytest.raises(RemoteError) as refused:
            await c.update_policy("gov", second, approvals=by_new)
        assert refused.value.error_code is ErrorCode.QUORUM_NOT_MET
        assert (await c.describe_key("gov", refresh=True)).policy == first
        for node in ("node-1", "node-2", "node-3"):  # every node still under the first policy
            history = await c._call(node, PolicyShow("gov"), PolicyHistory)
            assert history.current == first.encode()
            assert history.previous == ()
        approvals = _approve(
            TREASURY[:2] + COMPLIANCE, "gov", key.public_key, Operation.UPDATE_POLICY, digest
        )
        updated = await c.update_policy("gov", second, approvals=approvals)
        assert updated.policy == second
        history = await c.policy_history("gov")
        assert history.current == second.encode()
        assert history.previous == (first.encode(),)
        # the approvals named update 0: they cannot move the policy again (back to the first)
        with pytest.raises(RemoteError) as replayed:
            await c.update_policy("gov", first, approvals=approvals)
        assert replayed.value.error_code in (
            ErrorCode.APPROVAL_MISMATCH,
            ErrorCode.APPROVAL_UNLISTED,
        )

    drive(cluster, work)
