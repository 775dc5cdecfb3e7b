"""Offline partial signatures (issue 11): a 2-of-3 FROST key with node-3 offline, real
in-process nodes. The online side never reaches node-3 and the air-gapped side reaches node-3
only; what passes between them is the files of :mod:`keyshard.client.offline`, encoded and
decoded on the way as a person would carry them.

package -> file -> partial -> combined signature verifies (cryptography's Ed25519); the same
package a second time is refused (the nonces behind the commitment are spent); the offline node
checks the approvals itself; a partial never combines with another package.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from inprocess import InProcessCluster

from keyshard.client.approvals import public_key_bytes, sign_approval
from keyshard.client.coordinator import Coordinator, Link
from keyshard.client.errors import ChannelError, InvalidInputError, RemoteError, UnavailableError
from keyshard.client.offline import (
    CommitmentsFile,
    PackageFile,
    PartialFile,
    WitnessReportsFile,
    WitnessRequestFile,
)
from wire.approvals import ApprovalPolicy, Operation, message_digest
from wire.errors import ErrorCode

OFFLINE = "node-3"
APPROVERS = [Ed25519PrivateKey.generate() for _ in range(2)]
POLICY = ApprovalPolicy(
    tuple(public_key_bytes(a) for a in APPROVERS), 2, frozenset({Operation.SIGN})
)


class Sides:
    """The online coordinator (every node but node-3) and the air-gapped one (node-3 only)."""

    def __init__(self, cluster: InProcessCluster) -> None:
        self.cluster = cluster

        async def online(node_id: str) -> Link:
            if node_id == OFFLINE:
                raise ChannelError(node_id, "air gap: no route")
            return await cluster.connect(node_id)

        async def air_gapped(node_id: str) -> Link:
            if node_id != OFFLINE:
                raise ChannelError(node_id, "air gap: no route")
            return await cluster.connect(node_id)

        self.online = Coordinator(cluster.services, online)
        self.offline = Coordinator([OFFLINE], air_gapped)


def _approvals(public_key: bytes, message: bytes) -> tuple[bytes, ...]:
    return tuple(
        sign_approval(
            a,
            key_name="cold",
            group_public_key=public_key,
            operation=Operation.SIGN,
            digest=message_digest(message),
            not_after=int(time.time()) + 600,
        ).encode()
        for a in APPROVERS
    )


@pytest.fixture
def cluster() -> InProcessCluster:
    cluster = InProcessCluster()

    async def create() -> None:
        async with cluster.coordinator() as c:  # node-3 online while the key is born
            await c.create_key("cold", threshold=1, policy=POLICY)

    asyncio.run(create())
    return cluster


def test_package_partial_and_combined_signature_and_a_replay_refused(
    cluster: InProcessCluster,
) -> None:
    message = b"withdraw 3 BTC to cold storage"

    async def work() -> None:
        sides = Sides(cluster)
        published = await sides.offline.offline_commit(OFFLINE, "cold", 4)
        commitments = CommitmentsFile.decode(published.encode())  # carried to the online side
        key = await sides.online.describe_key("cold")
        approvals = _approvals(key.public_key, message)
        prepared = await sides.online.prepare_offline(
            "cold", message, commitments, approvals=approvals
        )
        assert set(prepared.online_shares) == {"node-1"}  # t+1 = 2: one online, one offline
        package = PackageFile.decode(prepared.encode())  # carried to the air-gapped side
        partial = await sides.offline.offline_sign(OFFLINE, package)
        partial = PartialFile.decode(partial.encode())  # carried back
        signature = await sides.online.combine_offline(package, partial)
        Ed25519PublicKey.from_public_bytes(key.public_key).verify(signature, message)

        # the same package a second time: the nonces behind the commitment are spent
        with pytest.raises(RemoteError) as caught:
            await sides.offline.offline_sign(OFFLINE, package)
        assert caught.value.error_code is ErrorCode.NONCE_UNKNOWN
        # the next published commitment signs the next message
        second = await sides.online.prepare_offline(
            "cold", b"again", commitments, index=1, approvals=_approvals(key.public_key, b"again")
        )
        again = await sides.online.combine_offline(
            second, await sides.offline.offline_sign(OFFLINE, second)
        )
        Ed25519PublicKey.from_public_bytes(key.public_key).verify(again, b"again")
        # a partial never combines with another package
        with pytest.raises(InvalidInputError):
            await sides.online.combine_offline(second, partial)
        await sides.online.close()
        await sides.offline.close()

    asyncio.run(work())


def test_the_offline_node_checks_the_approvals_itself(cluster: InProcessCluster) -> None:
    message = b"withdraw everything"

    async def work() -> None:
        sides = Sides(cluster)
        commitments = await sides.offline.offline_commit(OFFLINE, "cold", 2)
        key = await sides.online.describe_key("cold")
        prepared = await sides.online.prepare_offline(
            "cold", message, commitments, approvals=_approvals(key.public_key, message)
        )
        # the approvals dropped from the file on its way: refused by node-3, whose nonces for
        # that commitment are spent all the same (taken before any check)
        stripped = replace(prepared, approvals=())
        with pytest.raises(RemoteError) as caught:
            await sides.offline.offline_sign(OFFLINE, stripped)
        assert caught.value.error_code is ErrorCode.QUORUM_NOT_MET
        with pytest.raises(RemoteError) as caught:
            await sides.offline.offline_sign(OFFLINE, prepared)
        assert caught.value.error_code is ErrorCode.NONCE_UNKNOWN
        # and the online holders refuse to prepare without approvals
        with pytest.raises(RemoteError) as caught:
            await sides.online.prepare_offline("cold", message, commitments, index=1)
        assert caught.value.error_code is ErrorCode.QUORUM_NOT_MET
        await sides.online.close()
        await sides.offline.close()

    asyncio.run(work())


def test_files_for_another_key_or_node_are_refused_before_any_node_is_asked(
    cluster: InProcessCluster,
) -> None:
    async def work() -> None:
        sides = Sides(cluster)
        commitments = await sides.offline.offline_commit(OFFLINE, "cold", 1)
        other = replace(commitments, public_key=bytes(32))
        with pytest.raises(InvalidInputError):
            await sides.online.prepare_offline("cold", b"m", other)
        with pytest.raises(InvalidInputError):
            await sides.online.prepare_offline("cold", b"m", commitments, index=5)
        key = await sides.online.describe_key("cold")
        prepared = await sides.online.prepare_offline(
            "cold", b"m", commitments, approvals=_approvals(key.public_key, b"m")
        )
        with pytest.raises(InvalidInputError):
            await sides.offline.offline_sign(OFFLINE, replace(prepared, node_id="node-2"))
        with pytest.raises(InvalidInputError):
            await sides.offline.offline_sign(OFFLINE, replace(prepared, public_key=bytes(32)))
        # the real package still signs: nothing above reached node-3's nonces
        partial = await sides.offline.offline_sign(OFFLINE, prepared)
        await sides.online.combine_offline(prepared, partial)
        await sides.online.close()
        await sides.offline.close()

    asyncio.run(work())


def test_a_restarted_offline_node_is_witnessed_by_file(cluster: InProcessCluster) -> None:
    """After a boot node-3 serves nothing until its peers' reports reach it; with no route to
    them, they travel as files: its document out, the peers' sealed reports back."""

    async def work() -> None:
        await cluster.restart(OFFLINE)
        sides = Sides(cluster)
        with pytest.raises(UnavailableError):  # the SDK cannot relay reports across the gap
            await sides.offline.offline_commit(OFFLINE, "cold", 1)
        request = WitnessRequestFile.decode(
            (await sides.offline.offline_witness_request(OFFLINE)).encode()
        )
        reports = WitnessReportsFile.decode(
            (await sides.online.offline_witness_reports(request)).encode()
        )
        assert set(reports.envelopes) == {"node-1", "node-2"}
        with pytest.raises(InvalidInputError):
            await sides.offline.offline_witness_check("node-2", reports)
        verdict = await sides.offline.offline_witness_check(OFFLINE, reports)
        assert verdict.state == "witnessed"
        commitments = await sides.offline.offline_commit(OFFLINE, "cold", 1)
        key = await sides.online.describe_key("cold")
        prepared = await sides.online.prepare_offline(
            "cold", b"m", commitments, approvals=_approvals(key.public_key, b"m")
        )
        signature = await sides.online.combine_offline(
            prepared, await sides.offline.offline_sign(OFFLINE, prepared)
        )
        Ed25519PublicKey.from_public_bytes(key.public_key).verify(signature, b"m")
        await sides.online.close()
        await sides.offline.close()

    asyncio.run(work())


def test_an_online_side_that_does_not_know_the_offline_node_signs_with_it(
    cluster: InProcessCluster,
) -> None:
    """A profile without node-3 (a real air gap): its party comes from the commitments file,
    and only a party the key has and no online holder claims is accepted."""

    async def work() -> None:
        sides = Sides(cluster)
        blind = Coordinator(["node-1", "node-2"], cluster.connect)
        commitments = await sides.offline.offline_commit(OFFLINE, "cold", 2)
        key = await blind.describe_key("cold")
        assert OFFLINE not in key.holders
        for wrong in (1, 7):  # node-1's party; no party of the key
            with pytest.raises(InvalidInputError):
                await blind.prepare_offline("cold", b"m", replace(commitments, identifier=wrong))
        prepared = await blind.prepare_offline(
            "cold", b"m", commitments, approvals=_approvals(key.public_key, b"m")
        )
        signature = await blind.combine_offline(
            prepared, await sides.offline.offline_sign(OFFLINE, prepared)
        )
        Ed25519PublicKey.from_public_bytes(key.public_key).verify(signature, b"m")
        for coordinator in (blind, sides.online, sides.offline):
            await coordinator.close()

    asyncio.run(work())
