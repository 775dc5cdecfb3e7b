"""Key export and import (issue 11), driven by the real Coordinator against real in-process
nodes (sealed stores, attested box keys, the wire codec on every request).

Export: refused for a key not created exportable and without the policy's quorum of ``export``
approvals naming the recipient (each node checks; nothing is flagged); with them every holder
wraps a re-randomised share with HPKE, the recipient alone reconstructs the key, which signs
messages that verify under the cluster's public key, and the key reads "exported" for good.
Import: a PEM key split with Feldman VSS signs through the cluster under the PEM's own public
key; a share that does not match the commitment, or an envelope replayed to another node, is
refused by the node and nothing is sealed.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from inprocess import InProcessCluster
from nacl.public import PublicKey as BoxPublicKey
from nacl.public import SealedBox

from enclave.mpc.ecdsa import EcdsaSignature
from enclave.mpc.groups import ED25519
from enclave.mpc.identifiers import Identifier
from enclave.mpc.shamir import lagrange_coefficient, split_secret
from keyshard.client.approvals import public_key_bytes, sign_approval
from keyshard.client.coordinator import Coordinator
from keyshard.client.custody import (
    ExportBundle,
    exported_key,
    load_private_key,
    private_key_pem,
    unwrap,
)
from keyshard.client.errors import ChannelError, InvalidInputError, ProtocolError, RemoteError
from keyshard.client.keys import KeyDescription
from wire.approvals import ApprovalPolicy, Operation, lifecycle_digest
from wire.custody import HPKE, encode_import_share, export_info
from wire.errors import ErrorCode, MalformedMessageError
from wire.messages import ErrorReply, KeyCreate, KeyExport, KeyImport, KeyInfo

_T = TypeVar("_T")


def drive(cluster: InProcessCluster, work: Callable[[Coordinator], Awaitable[_T]]) -> _T:
    async def main() -> _T:
        async with cluster.coordinator() as coordinator:
            return await work(coordinator)

    return asyncio.run(main())


async def refused(work: Awaitable[object]) -> ErrorCode:
    with pytest.raises(RemoteError) as caught:
        await work
    return caught.value.error_code


@pytest.fixture
def cluster() -> InProcessCluster:
    return InProcessCluster()


APPROVERS = [Ed25519PrivateKey.generate() for _ in range(3)]
POLICY = ApprovalPolicy(
    tuple(public_key_bytes(a) for a in APPROVERS), 2, frozenset({Operation.SIGN})
)


def _raw(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _export_approvals(
    key: KeyDescription, recipient: bytes, approvers: list[Ed25519PrivateKey]
) -> list[bytes]:
    return [
        sign_approval(
            approver,
            key_name=key.name,
            group_public_key=key.public_key,
            operation=Operation.EXPORT,
            digest=lifecycle_digest(Operation.EXPORT, key.epoch, recipient),
            not_after=int(time.time()) + 900,
        ).encode()
        for approver in approvers
    ]


# -- export -------------------------------------------------------------------------------


def test_a_key_not_created_exportable_is_never_exported(cluster: InProcessCluster) -> None:
    recipient = _raw(X25519PrivateKey.generate())

    async def work(c: Coordinator) -> None:
        key = await c.create_key("k", threshold=1, policy=POLICY)
        assert not key.exportable
        approvals = _export_approvals(key, recipient, APPROVERS)
        assert await refused(c.export_key("k", recipient, approvals=approvals)) is (
            ErrorCode.NOT_EXPORTABLE
        )
        assert not (await c.describe_key("k", refresh=True)).exported

    drive(cluster, work)


def test_exportable_needs_a_policy_at_creation(cluster: InProcessCluster) -> None:
    async def work(c: Coordinator) -> None:
        with pytest.raises(InvalidInputError):
            await c.create_key("k", threshold=1, exportable=True)

    drive(cluster, work)
    with pytest.raises(MalformedMessageError):
        KeyCreate("k", "ed25519", 1, bytes(32), {"a": b"d", "b": b"d"}, b"", exportable=True)


def test_an_export_without_the_quorum_or_for_another_recipient_is_refused(
    cluster: InProcessCluster,
) -> None:
    recipient = _raw(X25519PrivateKey.generate())
    other = _raw(X25519PrivateKey.generate())

    async def work(c: Coordinator) -> None:
        key = await c.create_key("k", threshold=1, policy=POLICY, exportable=True)
        # export is not among the operations the policy lists: an exportable key guards it
        assert await refused(c.export_key("k", recipient)) is ErrorCode.QUORUM_NOT_MET
        one = _export_approvals(key, recipient, APPROVERS[:1])
        assert await refused(c.export_key("k", recipient, approvals=one)) is (
            ErrorCode.QUORUM_NOT_MET
        )
        for_other = _export_approvals(key, other, APPROVERS[:2])
        assert await refused(c.export_key("k", recipient, approvals=for_other)) is (
            ErrorCode.APPROVAL_MISMATCH
        )
        info = await c.describe_key("k", refresh=True)
        assert info.exportable
        assert not info.exported

    drive(cluster, work)


@pytest.mark.parametrize("suite", ["ed25519", "secp256k1", "ecdsa-secp256k1"])
def test_an_approved_export_reconstructs_the_key_and_flags_it_for_good(
    cluster: InProcessCluster, suite: str
) -> None:
    recipient_key = X25519PrivateKey.generate()
    recipient = _raw(recipient_key)

    async def work(c: Coordinator) -> tuple[KeyDescription, ExportBundle, KeyDescription]:
        key = await c.create_key("k", suite=suite, threshold=1, policy=POLICY, exportable=True)
        approvals = _export_approvals(key, recipient, APPROVERS[1:])
        bundle = await c.export_key("k", recipient, approvals=approvals)
        # approvals are spent by the export they approve, on every node
        assert await refused(c.export_key("k", recipient, approvals=approvals)) is (
            ErrorCode.APPROVAL_REUSED
        )
        return key, bundle, await c.describe_key("k", refresh=True)

    key, bundle, after = drive(cluster, work)
    assert after.exported
    assert set(bundle.shares) == {"node-1", "node-2", "node-3"}
    # the bundle survives its file form; the recipient alone opens it
    bundle = ExportBundle.decode(bundle.encode())
    with pytest.raises(InvalidInputError):
        unwrap(bundle, X25519PrivateKey.generate())
    exported = exported_key(key.public.group, unwrap(bundle, recipient_key))
    assert exported.public_key == key.public_key
    message = b"signed outside the cluster"
    signature = exported.sign(message)
    if key.public.group is ED25519:
        Ed25519PublicKey.from_public_bytes(key.public_key).verify(signature, message)
    else:
        point = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), key.public_key)
        point.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    # the PEM written for it reads back as the same key
    assert load_private_key(private_key_pem(exported)).public_key == key.public_key

    # the flag is sealed: a restarted node still reports it
    async def restarted(c: Coordinator) -> KeyDescription:
        for node_id in list(cluster.services):
            await cluster.restart(node_id)
        return await c.describe_key("k", refresh=True)

    assert drive(cluster, restarted).exported


def test_exported_values_are_not_the_stored_shares(cluster: InProcessCluster) -> None:
    recipient_key = X25519PrivateKey.generate()
    recipient = _raw(recipient_key)

    async def work(c: Coordinator) -> tuple[KeyDescription, ExportBundle]:
        key = await c.create_key("k", threshold=1, policy=POLICY, exportable=True)
        bundle = await c.export_key(
            "k", recipient, approvals=_export_approvals(key, recipient, APPROVERS[:2])
        )
        return key, bundle

    key, bundle = drive(cluster, work)
    group = key.public.group
    holders = sorted(bundle.shares)
    ids = [Identifier.from_int(group, i) for i, _ in bundle.shares.values()]
    for node_id in holders:
        identifier, wrapped = bundle.shares[node_id]
        info = export_info(
            key_name="k",
            group_public_key=bundle.public_key,
            epoch=bundle.epoch,
            session_id=bundle.session_id,
            recipient=recipient,
            holders=holders,
            identifier=identifier,
        )
        value = group.decode_scalar(HPKE.decrypt(wrapped, recipient_key, info=info))
        stored = asyncio.run(cluster.services[node_id]._keys.stored("k")).share.secret_share
        weight = lagrange_coefficient(group, Identifier.from_int(group, identifier), ids)
        assert value != stored
        assert value != weight * stored  # masked by the pairwise zero sharing


def test_a_tampered_bundle_is_refused(cluster: InProcessCluster) -> None:
    recipient_key = X25519PrivateKey.generate()
    recipient = _raw(recipient_key)

    async def work(c: Coordinator) -> ExportBundle:
        key = await c.create_key("k", threshold=1, policy=POLICY, exportable=True)
        return await c.export_key(
            "k", recipient, approvals=_export_approvals(key, recipient, APPROVERS[:2])
        )

    bundle = drive(cluster, work)
    assert isinstance(bundle, ExportBundle)
    identifier, wrapped = bundle.shares["node-2"]
    bundle.shares["node-2"] = (identifier, wrapped[:-1] + bytes([wrapped[-1] ^ 1]))
    with pytest.raises(ProtocolError) as caught:
        unwrap(bundle, recipient_key)
    assert caught.value.culprit == "node-2"
    # a share moved to another holder's place does not open there either
    bundle.shares["node-2"] = bundle.shares["node-1"]
    with pytest.raises(ProtocolError):
        unwrap(bundle, recipient_key)


# -- import -------------------------------------------------------------------------------


def test_an_imported_ed25519_pem_signs_under_its_own_public_key(
    cluster: InProcessCluster,
) -> None:
    outside = Ed25519PrivateKey.generate()
    pem = outside.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    expected = outside.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )

    async def work(c: Coordinator) -> tuple[KeyDescription, bytes]:
        await c.import_key("imp", load_private_key(pem), threshold=1)
        return await c.describe_key("imp", refresh=True), await c.sign("imp", b"hello")

    key, signature = drive(cluster, work)
    assert key.imported
    assert not key.exportable
    assert key.public_key == expected
    outside.public_key().verify(signature, b"hello")


def test_an_imported_secp256k1_pem_signs_ecdsa_under_its_own_public_key(
    cluster: InProcessCluster,
) -> None:
    outside = ec.generate_private_key(ec.SECP256K1())
    pem = outside.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )

    async def work(c: Coordinator) -> EcdsaSignature:
        key = await c.import_key("wallet", load_private_key(pem), threshold=1)
        assert key.suite.name == "ecdsa-secp256k1"
        return await c.sign_ecdsa("wallet", b"pay 1 BTC")

    signature = drive(cluster, work)
    outside.public_key().verify(
        signature.to_der(),
        b"pay 1 BTC",
        ec.ECDSA(hashes.SHA256()),
    )


class _Rng:
    def random_bytes(self, n: int) -> bytes:
        return os.urandom(n)


def _import_requests(
    cluster: InProcessCluster, name: str, tamper: str | None = None, replay: bool = False
) -> dict[str, KeyImport]:
    """KeyImport requests for every node as the Coordinator builds them; ``tamper``: that
    node's share is off by one; ``replay``: node-2 gets node-1's envelope."""

    async def build() -> dict[str, KeyImport]:
        async with cluster.coordinator() as c:
            await c.list_keys()  # every node shown its witnesses
            links = {n: await c.link(n) for n in sorted(cluster.services)}
        group = ED25519
        nodes = sorted(links)
        ids = {n: Identifier.from_int(group, k) for k, n in enumerate(nodes, 1)}
        secret = group.random_scalar(_Rng())
        shares, polynomial = split_secret(group, secret, 1, list(ids.values()), _Rng())
        session = os.urandom(32)
        envelopes = {}
        for node_id in nodes:
            share = shares[ids[node_id]]
            if node_id == tamper:
                share = share + group.one()
            plaintext = encode_import_share(name, session, node_id, share.to_bytes())
            box = SealedBox(BoxPublicKey(links[node_id].binding.box_public_key))
            envelopes[node_id] = bytes(box.encrypt(plaintext))
        if replay:
            envelopes["node-2"] = envelopes["node-1"]
        documents = {n: link.document for n, link in links.items()}
        return {
            n: KeyImport(
                name,
                "ed25519",
                1,
                session,
                documents,
                polynomial.commitments().to_bytes(),
                envelopes[n],
            )
            for n in nodes
        }

    return asyncio.run(build())


@pytest.mark.parametrize(("tamper", "replay"), [("node-2", False), (None, True)])
def test_a_tampered_or_misaddressed_share_is_refused_and_nothing_is_sealed(
    cluster: InProcessCluster, tamper: str | None, replay: bool
) -> None:
    requests = _import_requests(cluster, "imp", tamper=tamper, replay=replay)
    node = cluster.services["node-2"]

    async def answer() -> tuple[object, object]:
        reply = await node.answer(requests["node-2"])
        return reply, await node.answer(KeyInfo("imp"))

    reply, info = asyncio.run(answer())
    assert isinstance(reply, ErrorReply)
    assert reply.code is ErrorCode.PROTOCOL
    assert isinstance(info, ErrorReply)
    assert info.code is ErrorCode.UNKNOWN_KEY
    # the honest nodes seal pending, and with node-2's refusal never commit
    for node_id in ("node-1", "node-3"):
        honest = asyncio.run(cluster.services[node_id].answer(requests[node_id]))
        assert honest.OP == "key_created"
        pending = asyncio.run(cluster.services[node_id].answer(KeyInfo("imp")))
        assert isinstance(pending, ErrorReply)
        assert pending.code is ErrorCode.KEY_PENDING


def test_an_import_of_the_wrong_kind_is_refused_before_any_node_is_asked(
    cluster: InProcessCluster,
) -> None:
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )

    async def work(c: Coordinator) -> None:
        with pytest.raises(InvalidInputError):
            await c.import_key("imp", load_private_key(pem), suite="ecdsa-secp256k1")

    drive(cluster, work)
    assert all(not link.requests for link in cluster.links)


def test_an_export_needs_every_holder_and_spends_nothing_without_one(
    cluster: InProcessCluster,
) -> None:
    recipient = _raw(X25519PrivateKey.generate())

    async def work(c: Coordinator) -> None:
        key = await c.create_key("k", threshold=1, policy=POLICY, exportable=True)
        approvals = _export_approvals(key, recipient, APPROVERS[:2])
        cluster.stopped.add("node-3")
        for link in cluster.links:
            if link.node_id == "node-3":
                link.break_()
        with pytest.raises(ChannelError) as caught:
            await c.export_key("k", recipient, approvals=approvals)
        assert caught.value.node_id == "node-3"
        assert not any(isinstance(r, KeyExport) for link in cluster.links for r in link.requests)
        cluster.stopped.clear()
        # nothing was spent or flagged: the same approvals export once every holder is back
        bundle = await c.export_key("k", recipient, approvals=approvals)
        assert len(bundle.shares) == 3

    drive(cluster, work)


def test_a_disabled_key_is_not_exported(cluster: InProcessCluster) -> None:
    recipient = _raw(X25519PrivateKey.generate())

    async def work(c: Coordinator) -> None:
        key = await c.create_key("k", threshold=1, policy=POLICY, exportable=True)
        await c.set_key_state("k", "disable")
        approvals = _export_approvals(key, recipient, APPROVERS[:2])
        assert await refused(c.export_key("k", recipient, approvals=approvals)) is (
            ErrorCode.KEY_DISABLED
        )
        assert not (await c.describe_key("k", refresh=True)).exported

    drive(cluster, work)


def test_a_small_order_recipient_key_is_refused_and_nothing_is_spent(
    cluster: InProcessCluster,
) -> None:
    """With the all-zero X25519 key the HPKE shared secret is zero (anyone could open it):
    refused as malformed after the approvals are checked, before they are spent or the key
    is flagged."""
    zero = bytes(32)

    async def work(c: Coordinator) -> None:
        key = await c.create_key("k", threshold=1, policy=POLICY, exportable=True)
        approvals = _export_approvals(key, zero, APPROVERS[:2])
        assert await refused(c.export_key("k", zero, approvals=approvals)) is ErrorCode.MALFORMED
        assert not (await c.describe_key("k", refresh=True)).exported
        # not spent: still accepted up to the same refusal
        assert await refused(c.export_key("k", zero, approvals=approvals)) is ErrorCode.MALFORMED

    drive(cluster, work)
