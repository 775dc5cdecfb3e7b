"""Backups end to end through the real Coordinator and real in-process nodes: each holder
encrypts its share to the recovery key (BackupShare -> ShareBackup), the file verifies without the
recovery key, reconstructs with it to the key's own public key, the policy gates it, and a node
that answers with a bad proof is named."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from inprocess import InProcessCluster

from keyshard.client.approvals import public_key_bytes, sign_approval
from keyshard.client.backup import Backup, private_key_pem
from keyshard.client.coordinator import Coordinator
from keyshard.client.errors import BackupError, InvalidInputError, ProtocolError, RemoteError
from wire.approvals import ApprovalPolicy, Operation, backup_digest, restore_digest
from wire.errors import ErrorCode
from wire.messages import KeyRestore, Reply, Request, ShareBackup

RECOVERY = X25519PrivateKey.generate()
RECOVERY_PUBLIC = RECOVERY.public_key().public_bytes_raw()


def drive(cluster: InProcessCluster, work: Callable[[Coordinator], Awaitable[object]]) -> object:
    async def main() -> object:
        async with cluster.coordinator() as coordinator:
            return await work(coordinator)

    return asyncio.run(main())


@pytest.fixture
def cluster() -> InProcessCluster:
    return InProcessCluster()


@pytest.mark.parametrize("suite", ["ed25519", "secp256k1", "ecdsa-secp256k1"])
def test_backup_verifies_without_the_key_and_reconstructs_the_public_key(
    cluster: InProcessCluster, suite: str
) -> None:
    async def work(c: Coordinator) -> tuple[bytes, bytes]:
        key = await c.create_key("k", suite=suite, threshold=1)
        backup = await c.backup("k", RECOVERY_PUBLIC)
        return key.public_key, backup.encode()

    public_key, encoded = drive(cluster, work)  # type: ignore[misc]
    backup = Backup.decode(encoded)
    assert backup.encode() == encoded
    assert [s.node for s in backup.shares] == ["node-1", "node-2", "node-3"]
    backup.verify()  # public data only
    secret = backup.reconstruct(RECOVERY)
    assert backup.public.group.base_mul(secret).to_bytes() == public_key
    pem = private_key_pem(backup.suite, secret)
    if backup.public.group.name == "secp256k1":  # an OpenSSL key that signs for the public key
        private = serialization.load_pem_private_key(pem, password=None)
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        signature = private.sign(b"restored", ec.ECDSA(hashes.SHA256()))
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), public_key)
        public.verify(signature, b"restored", ec.ECDSA(hashes.SHA256()))
    else:
        assert b"KEYSHARD ED25519 SECRET SCALAR" in pem


def test_a_backup_needs_only_t_plus_1_reachable_holders(cluster: InProcessCluster) -> None:
    drive(cluster, lambda c: c.create_key("k", threshold=1))
    cluster.stopped.add("node-3")
    backup = drive(cluster, lambda c: c.backup("k", RECOVERY_PUBLIC))
    assert isinstance(backup, Backup)
    assert [s.node for s in backup.shares] == ["node-1", "node-2"]
    backup.verify()
    backup.reconstruct(RECOVERY)


def test_the_policy_gates_backups_to_the_approved_recovery_key_only(
    cluster: InProcessCluster,
) -> None:
    approver = Ed25519PrivateKey.generate()
    # a policy written before backups existed: it lists sign only, yet a backup needs the quorum
    policy = ApprovalPolicy((public_key_bytes(approver),), 1, frozenset({Operation.SIGN}))
    other = X25519PrivateKey.generate().public_key().public_bytes_raw()

    async def work(c: Coordinator) -> None:
        key = await c.create_key("k", threshold=1, policy=policy)

        def approval(recovery_key: bytes) -> tuple[bytes, ...]:
            return (
                sign_approval(
                    approver,
                    key_name="k",
                    group_public_key=key.public_key,
                    operation=Operation.BACKUP,
                    digest=backup_digest(recovery_key),
                    not_after=int(time.time()) + 900,
                ).encode(),
            )

        with pytest.raises(RemoteError) as refused:
            await c.backup("k", RECOVERY_PUBLIC)
        assert refused.value.error_code is ErrorCode.QUORUM_NOT_MET
        with pytest.raises(RemoteError) as mismatch:  # approved for another recovery key
            await c.backup("k", RECOVERY_PUBLIC, approvals=approval(other))
        assert mismatch.value.error_code is ErrorCode.APPROVAL_MISMATCH
        backup = await c.backup("k", RECOVERY_PUBLIC, approvals=approval(RECOVERY_PUBLIC))
        backup.verify()
        assert Backup.decode(backup.encode()).policy == policy  # a restore keeps the policy

    drive(cluster, work)


def test_a_low_order_recovery_key_is_refused_by_the_node(cluster: InProcessCluster) -> None:
    async def work(c: Coordinator) -> None:
        await c.create_key("k", threshold=1)
        with pytest.raises(RemoteError) as refused:
            await c.backup("k", bytes(32))
        assert refused.value.error_code is ErrorCode.MALFORMED

    drive(cluster, work)


def _bad_proof(reply: ShareBackup) -> ShareBackup:
    body = bytearray(reply.encryption)
    body[-1] ^= 1  # the last row's ciphertext tag
    return dataclasses.replace(reply, encryption=bytes(body))


def _other_epoch(reply: ShareBackup) -> ShareBackup:
    return dataclasses.replace(reply, epoch=reply.epoch + 1)


def _other_party(reply: ShareBackup) -> ShareBackup:
    return dataclasses.replace(reply, identifier=reply.identifier % 3 + 1)


@pytest.mark.parametrize("lie", [_bad_proof, _other_epoch, _other_party])
@pytest.mark.parametrize("liar", ["node-1", "node-2"])
def test_a_node_answering_a_wrong_backup_is_named(
    cluster: InProcessCluster, lie: Callable[[ShareBackup], ShareBackup], liar: str
) -> None:
    def tamper(request: Request, reply: Reply) -> Reply:
        return lie(reply) if isinstance(reply, ShareBackup) else reply

    cluster.tamper[liar] = tamper

    async def work(c: Coordinator) -> None:
        await c.create_key("k", threshold=1)
        with pytest.raises(ProtocolError) as caught:
            await c.backup("k", RECOVERY_PUBLIC)
        assert caught.value.culprit == liar

    drive(cluster, work)


def test_reconstruct_refuses_another_recovery_key(cluster: InProcessCluster) -> None:
    async def work(c: Coordinator) -> Backup:
        await c.create_key("k", threshold=1)
        return await c.backup("k", RECOVERY_PUBLIC)

    backup = drive(cluster, work)
    assert isinstance(backup, Backup)
    with pytest.raises(BackupError, match="not the one the backup is encrypted to"):
        backup.reconstruct(X25519PrivateKey.generate())


# -- restore into the enclaves of another cluster --------------------------------------------


def _backed_up(
    suite: str = "ed25519", policy: ApprovalPolicy | None = None
) -> tuple[Backup, bytes]:
    """A key made on one cluster and backed up (approved by APPROVER when it has a policy)."""
    source = InProcessCluster()

    async def work(c: Coordinator) -> tuple[Backup, bytes]:
        key = await c.create_key("k", suite=suite, threshold=1, policy=policy)
        approvals = () if policy is None else _approval(key.public_key, Operation.BACKUP)
        return await c.backup("k", RECOVERY_PUBLIC, approvals=approvals), key.public_key

    result = drive(source, work)
    assert isinstance(result, tuple)
    return result


APPROVER = Ed25519PrivateKey.generate()
POLICY = ApprovalPolicy((public_key_bytes(APPROVER),), 1, frozenset({Operation.SIGN}))


def _approval(public_key: bytes, operation: Operation, digest: bytes = b"") -> tuple[bytes, ...]:
    if not digest:
        digest = backup_digest(RECOVERY_PUBLIC)
    return (
        sign_approval(
            APPROVER,
            key_name="k",
            group_public_key=public_key,
            operation=operation,
            digest=digest,
            not_after=int(time.time()) + 900,
        ).encode(),
    )


@pytest.mark.parametrize("suite", ["ed25519", "ecdsa-secp256k1"])
def test_restore_into_a_fresh_cluster_signs_with_the_same_public_key(suite: str) -> None:
    backup, public_key = _backed_up(suite)
    fresh = InProcessCluster()  # other enclaves, other boots, no key

    async def work(c: Coordinator) -> None:
        key = await c.restore(backup, RECOVERY)
        assert key.public_key == public_key
        assert dict(key.holders) == {"node-1": 1, "node-2": 2, "node-3": 3}
        if suite == "ed25519":
            signature = await c.sign("k", b"after the restore")
            Ed25519PublicKey.from_public_bytes(public_key).verify(signature, b"after the restore")
        else:
            signed = await c.sign_ecdsa("k", b"after the restore")
            public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), public_key)
            public.verify(signed.to_der(), b"after the restore", ec.ECDSA(hashes.SHA256()))
        with pytest.raises(RemoteError) as again:  # the name is taken now
            await c.restore(backup, RECOVERY)
        assert again.value.error_code is ErrorCode.KEY_EXISTS

    drive(fresh, work)


def test_restore_keeps_the_policy_and_needs_its_quorum() -> None:
    backup, public_key = _backed_up(policy=POLICY)
    fresh = InProcessCluster()
    package = backup.public.to_bytes()

    async def work(c: Coordinator) -> None:
        with pytest.raises(RemoteError) as refused:
            await c.restore(backup, RECOVERY)
        assert refused.value.error_code is ErrorCode.QUORUM_NOT_MET
        approvals = _approval(public_key, Operation.RESTORE, restore_digest(package))
        key = await c.restore(backup, RECOVERY, approvals=approvals)
        assert key.policy == POLICY
        with pytest.raises(RemoteError) as unsigned:  # signing still needs the approvers
            await c.sign("k", b"m")
        assert unsigned.value.error_code is ErrorCode.QUORUM_NOT_MET

    drive(fresh, work)


def test_a_restored_share_opens_only_at_its_node_for_its_key() -> None:
    backup, _ = _backed_up()
    fresh = InProcessCluster()

    async def work(c: Coordinator) -> None:
        # node-2 is handed node-1's sealed share: it does not open with node-2's box key
        original = c._call

        async def misroute(node_id: str, request: Request, expected: type) -> Reply:  # type: ignore[type-arg]
            if isinstance(request, KeyRestore) and node_id == "node-2":
                request = dataclasses.replace(request, share=routed["node-1"])
            if isinstance(request, KeyRestore):
                routed[node_id] = request.share
            return await original(node_id, request, expected)

        routed: dict[str, bytes] = {}
        c._call = misroute  # type: ignore[method-assign]
        with pytest.raises(RemoteError) as refused:
            await c.restore(backup, RECOVERY, nodes=["node-1", "node-2", "node-3"])
        assert refused.value.error_code is ErrorCode.ENVELOPE

    drive(fresh, work)


def test_a_restore_without_every_share_records_the_missing_holder() -> None:
    backup, public_key = _backed_up()
    partial = dataclasses.replace(backup, shares=backup.shares[:2])  # parties 1 and 2 only
    fresh = InProcessCluster()

    async def work(c: Coordinator) -> None:
        key = await c.restore(partial, RECOVERY)
        assert key.public_key == public_key
        assert key.missing == ("node-3",)
        signature = await c.sign("k", b"two of three")
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, b"two of three")

    drive(fresh, work)


def test_no_share_appears_in_any_log_line(
    cluster: InProcessCluster, caplog: pytest.LogCaptureFixture
) -> None:
    """Secrecy canary: backup and restore with DEBUG logging; neither the key nor any share
    (in either byte order) appears in a log record or an error."""
    caplog.set_level(logging.DEBUG)
    backup = drive(cluster, _create_and_back_up)
    assert isinstance(backup, Backup)
    drive(InProcessCluster(), lambda c: c.restore(backup, RECOVERY))
    secrets = [backup.reconstruct(RECOVERY)] + [
        backup.open_share(share, RECOVERY) for share in backup.shares
    ]
    logged = "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records)
    assert logged  # the canary looks at something
    for secret in secrets:
        for form in (secret.to_bytes(), secret.to_bytes()[::-1]):
            assert form.hex() not in logged
            assert repr(form) not in logged


async def _create_and_back_up(c: Coordinator) -> Backup:
    await c.create_key("k", threshold=1)
    return await c.backup("k", RECOVERY_PUBLIC)


def test_restore_refuses_wrong_node_lists_locally() -> None:
    backup, _ = _backed_up()
    fresh = InProcessCluster()
    for nodes in (["node-1", "node-2"], ["node-1", "node-1", "node-2"], ["node-1", "", "node-9"]):

        async def work(c: Coordinator, nodes: list[str] = nodes) -> None:
            with pytest.raises(InvalidInputError):
                await c.restore(backup, RECOVERY, nodes=nodes)

        drive(fresh, work)
    assert not any(isinstance(r, KeyRestore) for link in fresh.links for r in link.requests)
