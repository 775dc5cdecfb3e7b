"""Offline partial signatures for threshold ECDSA (issue 11): a 2-of-3 ``ecdsa-secp256k1`` key
(t = 1: presigning and signing take all 2t+1 = 3 holders) with node-3 offline, real in-process
nodes. Presignatures are made while node-3 is reachable; afterwards the online side never
reaches it and the air-gapped side reaches it only; what passes between them is the files of
:mod:`keyshard.client.offline`, encoded and decoded on the way as a person would carry them.

package -> file -> partial -> combined signature verifies (cryptography's ECDSA, an
independent verifier); the same package again is refused (the presignature is spent); the
offline node checks the approvals itself, refuses a package for another key, a presignature it
does not hold, and a reboot drops what it held.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from inprocess import InProcessCluster
from test_offline import OFFLINE, Sides

from keyshard.client.approvals import public_key_bytes, sign_approval
from keyshard.client.coordinator import Coordinator
from keyshard.client.errors import ChannelError, InvalidInputError, ProtocolError, RemoteError
from keyshard.client.offline import (
    ECDSA,
    CommitmentsFile,
    EcdsaPackage,
    PackageFile,
    PartialFile,
    PresignRunFile,
    WitnessReportsFile,
)
from wire.approvals import ApprovalPolicy, Operation, message_digest
from wire.errors import ErrorCode

APPROVERS = [Ed25519PrivateKey.generate() for _ in range(2)]
POLICY = ApprovalPolicy(
    tuple(public_key_bytes(a) for a in APPROVERS), 2, frozenset({Operation.SIGN})
)


def _approvals(public_key: bytes, message: bytes, name: str = "cold") -> tuple[bytes, ...]:
    return tuple(
        sign_approval(
            a,
            key_name=name,
            group_public_key=public_key,
            operation=Operation.SIGN,
            digest=message_digest(message),
            not_after=int(time.time()) + 600,
        ).encode()
        for a in APPROVERS
    )


def _verify(public_key: bytes, der: bytes, message: bytes) -> None:
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), public_key)
    key.verify(der, message, ec.ECDSA(hashes.SHA256()))  # raises InvalidSignature


@pytest.fixture
def cluster() -> InProcessCluster:
    """Two ECDSA keys under the same policy, made while node-3 is online."""
    cluster = InProcessCluster()

    async def create() -> None:
        async with cluster.coordinator() as c:
            for name in ("cold", "other"):
                await c.create_key(name, suite="ecdsa-secp256k1", threshold=1, policy=POLICY)

    asyncio.run(create())
    return cluster


@pytest.fixture
def presignatures(cluster: InProcessCluster) -> CommitmentsFile:
    """4 presignatures of "cold" made with node-3 while it is reachable, as carried by file."""

    async def presign() -> CommitmentsFile:
        async with cluster.coordinator() as c:
            return await c.offline_presign("cold", OFFLINE, 4)

    return CommitmentsFile.decode(asyncio.run(presign()).encode())


def test_package_partial_and_combined_signature_and_a_replay_refused(
    cluster: InProcessCluster, presignatures: CommitmentsFile
) -> None:
    message = b"withdraw 3 BTC to cold storage"
    assert presignatures.scheme == ECDSA
    assert len(presignatures.commitments) == 4
    assert presignatures.identifier == 3

    async def work() -> None:
        sides = Sides(cluster)
        key = await sides.online.describe_key("cold")
        prepared = await sides.online.prepare_offline(
            "cold", message, presignatures, approvals=_approvals(key.public_key, message)
        )
        assert prepared.scheme == ECDSA
        assert set(prepared.online_shares) == {"node-1", "node-2"}  # 2t+1 = 3 presigners
        package = PackageFile.decode(prepared.encode())  # carried to the air-gapped side
        assert package == prepared
        partial = await sides.offline.offline_sign(OFFLINE, package)
        partial = PartialFile.decode(partial.encode())  # carried back
        der = await sides.online.combine_offline(package, partial)
        _verify(key.public_key, der, message)
        signature = await sides.online.combine_offline_ecdsa(package, partial)
        assert signature.to_der() == der

        # the same package a second time: node-3's half of the presignature is spent
        with pytest.raises(RemoteError) as caught:
            await sides.offline.offline_sign(OFFLINE, package)
        assert caught.value.error_code is ErrorCode.NONCE_UNKNOWN
        assert caught.value.node_id == OFFLINE
        # and the online side cannot prepare with it again either
        with pytest.raises(RemoteError) as caught:
            await sides.online.prepare_offline(
                "cold", b"again", presignatures, approvals=_approvals(key.public_key, b"again")
            )
        assert caught.value.error_code is ErrorCode.NONCE_UNKNOWN
        # the next presignature signs the next message
        second = await sides.online.prepare_offline(
            "cold",
            b"again",
            presignatures,
            index=1,
            approvals=_approvals(key.public_key, b"again"),
        )
        again = await sides.online.combine_offline(
            second, await sides.offline.offline_sign(OFFLINE, second)
        )
        _verify(key.public_key, again, b"again")
        # a partial never combines with another package
        with pytest.raises(InvalidInputError):
            await sides.online.combine_offline(second, partial)
        await sides.online.close()
        await sides.offline.close()

    asyncio.run(work())


def test_the_offline_node_checks_the_approvals_itself(
    cluster: InProcessCluster, presignatures: CommitmentsFile
) -> None:
    message = b"withdraw everything"

    async def work() -> None:
        sides = Sides(cluster)
        key = await sides.online.describe_key("cold")
        prepared = await sides.online.prepare_offline(
            "cold", message, presignatures, approvals=_approvals(key.public_key, message)
        )
        # the approvals dropped (or one of them) on the way: refused by node-3 before it
        # touches its presignature, so the real package still signs afterwards
        for approvals in ((), prepared.approvals[:1]):
            with pytest.raises(RemoteError) as caught:
                await sides.offline.offline_sign(OFFLINE, replace(prepared, approvals=approvals))
            assert caught.value.error_code is ErrorCode.QUORUM_NOT_MET
        # approvals for another message (the package's message swapped): refused the same way
        swapped = EcdsaPackage(prepared.ecdsa().presignature, b"pay mallory", bytes(32))
        with pytest.raises(RemoteError) as caught:
            await sides.offline.offline_sign(OFFLINE, replace(prepared, package=swapped.encode()))
        assert caught.value.error_code is ErrorCode.APPROVAL_MISMATCH
        der = await sides.online.combine_offline(
            prepared, await sides.offline.offline_sign(OFFLINE, prepared)
        )
        _verify(key.public_key, der, message)
        # and the online holders refuse to prepare without approvals (nothing spent)
        with pytest.raises(RemoteError) as caught:
            await sides.online.prepare_offline("cold", message, presignatures, index=1)
        assert caught.value.error_code is ErrorCode.QUORUM_NOT_MET
        await sides.online.close()
        await sides.offline.close()

    asyncio.run(work())


def test_wrong_key_node_or_presignature_is_refused_and_spends_nothing(
    cluster: InProcessCluster, presignatures: CommitmentsFile
) -> None:

    async def work() -> None:
        sides = Sides(cluster)
        key = await sides.online.describe_key("cold")
        other = await sides.online.describe_key("other")
        # online side: files of another key, a missing index, FROST files for an ECDSA key
        for wrong in (
            replace(presignatures, public_key=other.public_key),
            replace(presignatures, key_name="other"),
            replace(presignatures, identifier=1),  # node-1's party, not node-3's
        ):
            with pytest.raises(InvalidInputError):
                await sides.online.prepare_offline("cold", b"m", wrong)
        with pytest.raises(InvalidInputError):
            await sides.online.prepare_offline("cold", b"m", presignatures, index=9)
        with pytest.raises(InvalidInputError):
            await sides.online.prepare_offline("other", b"m", presignatures)

        prepared = await sides.online.prepare_offline(
            "cold", b"m", presignatures, approvals=_approvals(key.public_key, b"m")
        )
        # air-gapped side: another node's package, another key's, a FROST-tagged one
        with pytest.raises(InvalidInputError):
            await sides.offline.offline_sign(OFFLINE, replace(prepared, node_id="node-2"))
        with pytest.raises(InvalidInputError):
            await sides.offline.offline_sign(
                OFFLINE, replace(prepared, public_key=other.public_key)
            )
        with pytest.raises(InvalidInputError):  # node-3's "other" has another public key
            await sides.offline.offline_sign(OFFLINE, replace(prepared, key_name="other"))
        with pytest.raises(InvalidInputError):
            await sides.offline.offline_sign(OFFLINE, replace(prepared, scheme="frost"))
        # a presignature node-3 does not hold (an id nobody made): refused by the node
        ecdsa = prepared.ecdsa()
        unknown = replace(ecdsa.presignature, presignature_id=bytes(32))
        forged = replace(prepared, package=replace(ecdsa, presignature=unknown).encode())
        with pytest.raises(RemoteError) as caught:
            await sides.offline.offline_sign(OFFLINE, forged)
        assert caught.value.error_code is ErrorCode.NONCE_UNKNOWN
        # a presignature made without node-3 (parties 1, 2 and a made-up 4): refused locally
        foreign = replace(ecdsa.presignature, parties=(1, 2, 4))
        with pytest.raises(InvalidInputError):
            await sides.offline.offline_sign(
                OFFLINE, replace(prepared, package=replace(ecdsa, presignature=foreign).encode())
            )
        # the real package still signs: nothing above reached node-3's presignature
        partial = await sides.offline.offline_sign(OFFLINE, prepared)
        _verify(key.public_key, await sides.online.combine_offline(prepared, partial), b"m")
        # a tampered share fails the combined signature's check (terminal)
        bad = replace(partial, share=prepared.online_shares["node-1"])
        with pytest.raises((ProtocolError, InvalidInputError)):
            await sides.online.combine_offline(prepared, bad)
        await sides.online.close()
        await sides.offline.close()

    asyncio.run(work())


def test_a_reboot_of_the_offline_node_drops_its_presignatures(
    cluster: InProcessCluster, presignatures: CommitmentsFile
) -> None:
    """Presignatures live in enclave memory only: after node-3 reboots (and is witnessed by
    file) a package on one made before is refused, never signed; new ones must be made."""

    async def work() -> None:
        await cluster.restart(OFFLINE)
        sides = Sides(cluster)
        request = await sides.offline.offline_witness_request(OFFLINE)
        reports = WitnessReportsFile.decode(
            (await sides.online.offline_witness_reports(request)).encode()
        )
        assert (await sides.offline.offline_witness_check(OFFLINE, reports)).state == "witnessed"
        key = await sides.online.describe_key("cold")
        prepared = await sides.online.prepare_offline(
            "cold", b"m", presignatures, approvals=_approvals(key.public_key, b"m")
        )
        with pytest.raises(RemoteError) as caught:
            await sides.offline.offline_sign(OFFLINE, prepared)
        assert caught.value.error_code is ErrorCode.NONCE_UNKNOWN
        await sides.online.close()
        await sides.offline.close()

    asyncio.run(work())


def test_presigning_for_an_offline_node_needs_it_reachable_and_an_ecdsa_key(
    cluster: InProcessCluster,
) -> None:
    async def work() -> None:
        sides = Sides(cluster)
        blind = Coordinator(["node-1", "node-2"], cluster.connect)
        with pytest.raises(ChannelError):  # listed, but behind the air gap
            await sides.online.offline_presign("cold", OFFLINE, 1)
        with pytest.raises(InvalidInputError):  # not even listed
            await blind.offline_presign("cold", OFFLINE, 1)
        async with cluster.coordinator() as c:
            await c.create_key("frost", threshold=1)
            with pytest.raises(InvalidInputError):
                await c.offline_presign("frost", OFFLINE, 1)
            with pytest.raises(InvalidInputError):
                await c.offline_presign("cold", OFFLINE, 0)
        for coordinator in (sides.online, sides.offline, blind):
            await coordinator.close()

    asyncio.run(work())


def _carry(run: PresignRunFile | CommitmentsFile) -> PresignRunFile:
    assert isinstance(run, PresignRunFile)
    return PresignRunFile.decode(run.encode())


def test_a_node_never_reachable_presigns_by_files_and_then_signs(
    cluster: InProcessCluster,
) -> None:
    """The three presigning rounds carried as five files between the sides (node-3 rebooted:
    what it held before is gone, and it is witnessed by file first); the presignatures it then
    publishes sign, once each."""

    async def work() -> None:
        await cluster.restart(OFFLINE)
        sides = Sides(cluster)
        request = await sides.offline.offline_witness_request(OFFLINE)
        reports = await sides.online.offline_witness_reports(request)
        assert (await sides.offline.offline_witness_check(OFFLINE, reports)).state == "witnessed"

        run = _carry(await sides.online.offline_presign_open("cold", OFFLINE, 3))
        assert (run.stage, set(run.parties)) == (1, {"node-1", "node-2"})
        with pytest.raises(InvalidInputError):  # stage 1 is the air-gapped side's
            await sides.online.offline_presign_step(run)
        with pytest.raises(InvalidInputError):
            await sides.offline.offline_presign_step(run, "node-2")
        for stage in (2, 3, 4, 5):
            side = sides.offline if run.air_gapped_turn else sides.online
            run = _carry(
                await side.offline_presign_step(run, OFFLINE if run.air_gapped_turn else None)
            )
            assert run.stage == stage
        published = await sides.offline.offline_presign_step(run, OFFLINE)
        assert isinstance(published, CommitmentsFile)
        presignatures = CommitmentsFile.decode(published.encode())
        assert (presignatures.scheme, presignatures.identifier) == (ECDSA, 3)
        assert len(presignatures.commitments) == 3
        # the last file again: node-3's run is over (taken out of its table), nothing changes
        with pytest.raises(RemoteError) as caught:
            await sides.offline.offline_presign_step(run, OFFLINE)
        assert caught.value.error_code is ErrorCode.SESSION

        key = await sides.online.describe_key("cold")
        for index in (0, 2):
            message = f"by file {index}".encode()
            prepared = await sides.online.prepare_offline(
                "cold",
                message,
                presignatures,
                index=index,
                approvals=_approvals(key.public_key, message),
            )
            partial = await sides.offline.offline_sign(
                OFFLINE, PackageFile.decode(prepared.encode())
            )
            _verify(key.public_key, await sides.online.combine_offline(prepared, partial), message)
            with pytest.raises(RemoteError) as caught:
                await sides.offline.offline_sign(OFFLINE, prepared)
            assert caught.value.error_code is ErrorCode.NONCE_UNKNOWN
        await sides.online.close()
        await sides.offline.close()

    asyncio.run(work())


def test_a_tampered_presigning_file_fails_the_run_and_publishes_nothing(
    cluster: InProcessCluster,
) -> None:
    async def work() -> None:
        sides = Sides(cluster)
        run = _carry(await sides.online.offline_presign_open("cold", OFFLINE, 1))
        with pytest.raises(InvalidInputError):  # node-3's party given to node-1
            await sides.offline.offline_presign_step(
                replace(run, parties={"node-1": 3, "node-2": 2}), OFFLINE
            )
        run = _carry(await sides.offline.offline_presign_step(run, OFFLINE))
        run = _carry(await sides.online.offline_presign_step(run))
        # an envelope for node-3 altered on the way: refused by the node, and its run is over
        r, sender, to, envelope = next(e for e in run.envelopes if e[2] == OFFLINE)
        flipped = envelope[:-1] + bytes([envelope[-1] ^ 1])
        altered = tuple(
            (r, sender, to, flipped) if e == (r, sender, to, envelope) else e for e in run.envelopes
        )
        with pytest.raises(RemoteError) as caught:
            await sides.offline.offline_presign_step(replace(run, envelopes=altered), OFFLINE)
        assert caught.value.error_code is ErrorCode.ENVELOPE
        with pytest.raises(RemoteError) as caught:
            await sides.offline.offline_presign_step(run, OFFLINE)
        assert caught.value.error_code is ErrorCode.SESSION
        await sides.online.close()
        await sides.offline.close()

    asyncio.run(work())
