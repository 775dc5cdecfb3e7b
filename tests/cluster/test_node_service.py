"""Acceptance: the node service on a real three-node emulated cluster.

Keys are created by DKG between three enclaves (the test process is the untrusted coordinator that
relays sealed envelopes), signed by two of three, decrypted by two of three, and survive a node
restart. Every parent runs with ``--record``, so the parent's whole view can be searched. Refusals
are checked end to end: an unlisted client, a man in the middle, a peer of another image, a tampered
envelope, an existing key name.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import coincurve
import pytest
from cluster_processes import cluster_processes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from attestation.emulated_ca import EmulatedCa
from attestation.nsm.client import NsmClient
from attestation.nsm.emulated import EmulatedNsm
from enclave.mpc.dkg.messages import Round1Package, Round2Package, TranscriptConfirmation
from enclave.mpc.ecdsa import EcdsaSignature, PresignatureInfo
from enclave.mpc.errors import MpcError
from enclave.mpc.frost.ciphersuite import FROST_SECP256K1_SHA256
from enclave.service.binding import ChannelBinding
from enclave.service.identity import ServiceIdentity
from enclave.service.keystore import ECDSA_SUITE
from enclave.service.messages import MAX_FRAME, DkgOutbox
from enclave.service.policy import ApprovalPolicy, Operation, decryption_digest, message_digest
from keyshard.client.approvals import public_key_bytes, sign_approval
from keyshard.client.channel import NodeChannel, NodeTrust, client_context
from keyshard.client.coordinator import Coordinator, KeyDescription
from keyshard.client.credentials import ClientCredentials
from keyshard.client.errors import BindingError, ChannelError, ClientError, RemoteError
from keyshard.client.node import NodeClient
from keyshard.dev.cluster import Cluster
from transport.framing import FramedStream

pytestmark = pytest.mark.slow

_T = TypeVar("_T")


def run(work: Callable[[Coordinator], Awaitable[_T]], cluster: Cluster) -> _T:
    async def main() -> _T:
        async with Coordinator.from_profile(cluster.profile(), cluster.credentials()) as c:
            return await work(c)

    return asyncio.run(main())


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    directory = Path(tempfile.mkdtemp(prefix="kss-", dir="/tmp"))
    try:
        with Cluster(directory, 3, record=True) as running:
            running.up(timeout=90)
            yield running
        assert cluster_processes(directory) == []
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def relayed(cluster: Cluster) -> dict[str, Any]:
    """Create the Ed25519 key once, keeping every payload the coordinator relayed."""
    payloads: list[bytes] = []
    original_create, original_step = NodeClient.key_create, NodeClient.dkg_step

    async def key_create(self: NodeClient, *args: Any, **kwargs: Any) -> DkgOutbox:
        reply = await original_create(self, *args, **kwargs)
        payloads.extend(reply.outbox.values())
        return reply

    async def dkg_step(self: NodeClient, *args: Any) -> Any:
        reply = await original_step(self, *args)
        if isinstance(reply, DkgOutbox):
            payloads.extend(reply.outbox.values())
        return reply

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(NodeClient, "key_create", key_create)
        patch.setattr(NodeClient, "dkg_step", dkg_step)
        key = run(lambda c: c.create_key("ed", suite="ed25519", threshold=1), cluster)
    return {"key": key, "payloads": payloads}


def test_ed25519_key_two_of_three_sign_and_decrypt(
    cluster: Cluster, relayed: dict[str, Any]
) -> None:
    key = relayed["key"]
    assert key.public.threshold == 1
    assert dict(key.holders) == {"node-1": 1, "node-2": 2, "node-3": 3}

    async def work(c: Coordinator) -> tuple[bytes, bytes, bytes]:
        described = await c.describe_key("ed")
        assert described.public.to_bytes() == key.public.to_bytes()
        first = await c.sign("ed", b"pay 10", signers=["node-1", "node-2"])
        second = await c.sign("ed", b"pay 10", signers=["node-2", "node-3"])
        ciphertext = await c.encrypt("ed", b"payroll", b"label")
        return (
            first,
            second,
            await c.decrypt("ed", ciphertext, b"label", nodes=["node-1", "node-3"]),
        )

    first, second, plaintext = run(work, cluster)
    public = Ed25519PublicKey.from_public_bytes(key.public_key)
    public.verify(first, b"pay 10")  # OpenSSL's Ed25519 (RFC 8032)
    public.verify(second, b"pay 10")
    assert plaintext == b"payroll"


def test_secp256k1_key(cluster: Cluster) -> None:
    async def work(c: Coordinator) -> tuple[Any, bytes, bytes]:
        key = await c.create_key("btc", suite="secp256k1", threshold=1)
        signature = await c.sign("btc", b"tx", signers=["node-1", "node-3"])
        ciphertext = await c.encrypt("btc", b"seed words")
        return key, signature, await c.decrypt("btc", ciphertext)

    key, signature, plaintext = run(work, cluster)
    # FROST(secp256k1, SHA-256) signatures are RFC 9591's (R || z) format, not ECDSA/BIP-340.
    assert FROST_SECP256K1_SHA256.verify(key.public.group_public_key, b"tx", signature)
    assert not FROST_SECP256K1_SHA256.verify(key.public.group_public_key, b"tx!", signature)
    assert plaintext == b"seed words"


def test_existing_name_is_refused(cluster: Cluster, relayed: dict[str, Any]) -> None:
    with pytest.raises(RemoteError) as caught:
        run(lambda c: c.create_key("ed"), cluster)
    assert caught.value.code == "KeyExistsError"


def test_decrypt_with_wrong_label_fails(cluster: Cluster, relayed: dict[str, Any]) -> None:
    async def work(c: Coordinator) -> bytes:
        ciphertext = await c.encrypt("ed", b"payroll", b"label")
        return await c.decrypt("ed", ciphertext, b"other label")

    with pytest.raises(MpcError):
        run(work, cluster)


def test_relayed_payloads_are_opaque_and_the_parent_sees_only_tls(
    cluster: Cluster, relayed: dict[str, Any]
) -> None:
    payloads: list[bytes] = relayed["payloads"]
    # 3 nodes x 2 peers x 3 rounds: every inter-enclave payload went through the coordinator
    assert len(payloads) == 18
    for payload in payloads:
        for message in (Round1Package, Round2Package, TranscriptConfirmation):
            with pytest.raises(MpcError):
                message.from_bytes(payload)  # no DKG message in clear
    public = relayed["key"].public.to_bytes()
    for index in (1, 2, 3):
        view = b"".join(p.read_bytes() for p in sorted(cluster.record_dir(index).glob("*.bin")))
        service_in = (cluster.record_dir(index) / "service-in.bin").read_bytes()
        assert service_in.startswith(b"\x16\x03\x01")  # a TLS ClientHello record
        assert b"\x17\x03\x03" in service_in  # then TLS application-data records
        # The public key package travels inside TLS: not even it appears in the parent's view,
        # nor any envelope the coordinator relayed.
        assert public not in view
        assert not any(payload[24:64] in view for payload in payloads)
        sealed = (cluster.node_layout(index).blob_dir / "key-ed").read_bytes()
        assert sealed.startswith(b"KSSB")
        assert relayed["key"].public_key not in sealed


def test_restarted_node_signs_with_its_sealed_share(
    cluster: Cluster, relayed: dict[str, Any]
) -> None:
    cluster.restart_node(3)
    cluster.wait_ready(nodes=[3], timeout=60)

    signature = run(lambda c: c.sign("ed", b"after restart", signers=["node-1", "node-3"]), cluster)
    Ed25519PublicKey.from_public_bytes(relayed["key"].public_key).verify(
        signature, b"after restart"
    )


def test_unlisted_client_is_refused_at_the_handshake(cluster: Cluster, tmp_path: Path) -> None:
    stranger = ClientCredentials.load_or_create(tmp_path / "stranger")
    node = cluster.profile().nodes[0]
    assert node.service_port is not None

    async def attempt() -> None:
        await NodeChannel.open(
            node.node_id,
            node.host,
            node.service_port,  # type: ignore[arg-type]
            trust=NodeTrust.from_profile(cluster.profile()),
            credentials=stranger,
        )

    log = cluster.directory / "logs" / "enclave-1.log"
    refusals_before = log.read_text().count('"event": "tls_refused"')
    with pytest.raises(ChannelError) as caught:
        asyncio.run(attempt())
    assert not isinstance(caught.value, BindingError)
    assert caught.value.node_id == "node-1"
    # the enclave refused it in the TLS handshake (certificate not among the authorised clients);
    # its log line reaches the file through the parent, possibly after the client saw the alert
    deadline = time.monotonic() + 10
    while (
        log.read_text().count('"event": "tls_refused"') == refusals_before
        and time.monotonic() < deadline
    ):
        time.sleep(0.05)  # waiting on another process's log file: no event to wait on
    assert log.read_text().count('"event": "tls_refused"') == refusals_before + 1


def test_man_in_the_middle_is_refused(cluster: Cluster) -> None:
    """A relay terminating TLS with its own key, forwarding the client's Hello to the genuine node
    (with stolen client credentials) and returning its genuine, fresh, correctly-nonced document."""
    credentials = cluster.credentials()
    node = cluster.profile().nodes[0]

    async def attempt() -> None:
        identity = ServiceIdentity.generate("node-1", dt.datetime.now(dt.UTC))
        context = identity.server_context([credentials.certificate_pem])

        async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            up_reader, up_writer = await asyncio.open_connection(
                node.host, node.service_port, ssl=client_context(credentials), server_hostname=""
            )
            down = FramedStream(reader, writer, MAX_FRAME)
            up = FramedStream(up_reader, up_writer, MAX_FRAME)
            await up.send(await down.recv())
            await down.send(await up.recv())
            await up.close()

        server = await asyncio.start_server(relay, "127.0.0.1", 0, ssl=context)
        port = server.sockets[0].getsockname()[1]
        try:
            await NodeChannel.open(
                "node-1",
                "127.0.0.1",
                port,
                trust=NodeTrust.from_profile(cluster.profile()),
                credentials=credentials,
            )
        finally:
            server.close()

    with pytest.raises(BindingError, match="binds another TLS key"):
        asyncio.run(attempt())


def test_peer_of_another_image_is_refused_at_key_create(cluster: Cluster) -> None:
    ca = EmulatedCa.load_or_create(cluster.directory / "ca")
    other_pcrs = {i: hashlib.sha384(b"not the release" + bytes([i])).digest() for i in range(16)}
    impostor = ServiceIdentity.generate("node-3", dt.datetime.now(dt.UTC))
    document = NsmClient(EmulatedNsm(ca, other_pcrs)).get_attestation_document(
        impostor.binding().encode(), None, None
    )

    async def work(c: Coordinator) -> None:
        one, two = await c.node("node-1"), await c.node("node-2")
        participants = {
            "node-1": one.channel.document,
            "node-2": two.channel.document,
            "node-3": document,
        }
        await one.key_create("impostor", "ed25519", 1, b"i" * 32, participants)

    with pytest.raises(RemoteError) as caught:
        run(work, cluster)
    assert caught.value.code == "PeerRefusedError"
    assert "node-3" in caught.value.message
    assert "pcr_sets" in caught.value.message


def test_tampered_envelope_fails_the_creation_for_good(cluster: Cluster) -> None:
    async def work(c: Coordinator) -> tuple[RemoteError, RemoteError]:
        nodes = {n: await c.node(n) for n in ("node-1", "node-2", "node-3")}
        documents = {n: client.channel.document for n, client in nodes.items()}
        outboxes = {
            n: (await client.key_create("tamper", "ed25519", 1, b"t" * 32, documents)).outbox
            for n, client in nodes.items()
        }
        inbox = [outboxes["node-2"]["node-1"], outboxes["node-3"]["node-1"]]
        tampered = bytearray(inbox[0])
        tampered[30] ^= 1
        errors = []
        for attempt in ([bytes(tampered), inbox[1]], inbox):
            try:
                await nodes["node-1"].dkg_step("tamper", attempt)
            except RemoteError as error:
                errors.append(error)
        return errors[0], errors[1]

    first, second = run(work, cluster)
    assert first.code == "EnvelopeError"
    assert second.code == "SessionError"  # the honest retry is refused: failed for good


def test_channel_binding_names_the_node(cluster: Cluster) -> None:
    async def work(c: Coordinator) -> ChannelBinding:
        return (await c.node("node-2")).channel.binding

    assert run(work, cluster).node_id == "node-2"


def test_signing_and_decryption_go_on_with_one_node_down(
    cluster: Cluster, relayed: dict[str, Any]
) -> None:
    cluster.stop_node(2)
    try:

        async def work(c: Coordinator) -> tuple[Any, bytes, bytes]:
            key = await c.describe_key("ed")
            ciphertext = await c.encrypt("ed", b"still here")
            return key, await c.sign("ed", b"quorum"), await c.decrypt("ed", ciphertext)

        key, signature, plaintext = run(work, cluster)
        assert sorted(key.holders) == ["node-1", "node-3"]  # the two reachable holders agree
        Ed25519PublicKey.from_public_bytes(relayed["key"].public_key).verify(signature, b"quorum")
        assert plaintext == b"still here"
    finally:
        cluster.start_node(2)
        cluster.wait_ready(nodes=[2], timeout=60)


APPROVERS = [Ed25519PrivateKey.generate() for _ in range(3)]


def _approvals(
    key: KeyDescription, keys: list[Ed25519PrivateKey], op: Operation, digest: bytes
) -> list[bytes]:
    return [
        sign_approval(
            k,
            key_name=key.name,
            group_public_key=key.public_key,
            operation=op,
            digest=digest,
            not_after=int(time.time()) + 300,
        ).encode()
        for k in keys
    ]


def test_approval_quorum_is_enforced_by_every_node(cluster: Cluster) -> None:
    policy = ApprovalPolicy(tuple(public_key_bytes(k) for k in APPROVERS), 2, frozenset(Operation))
    message = b"release 100 BTC"

    async def work(c: Coordinator) -> tuple[KeyDescription, bytes, bytes]:
        key = await c.create_key("guarded", policy=policy)
        assert (await c.describe_key("guarded")).policy == policy
        digest = message_digest(message)
        one = _approvals(key, APPROVERS[:1], Operation.SIGN, digest)
        twice = one + _approvals(key, APPROVERS[:1], Operation.SIGN, digest)
        for node_id in c.node_ids:  # every node refuses on its own, before committing nonces
            node = await c.node(node_id)
            for given, code in (([], "QuorumNotMetError"), (twice, "QuorumNotMetError")):
                with pytest.raises(RemoteError) as caught:
                    await node.sign_commit("guarded", b"s" * 32, digest, given)
                assert caught.value.code == code
        other = _approvals(key, APPROVERS[1:], Operation.SIGN, message_digest(b"release 1000"))
        with pytest.raises(RemoteError) as caught:
            await c.sign("guarded", message, approvals=other)
        assert caught.value.code == "ApprovalMismatchError"
        good = _approvals(key, APPROVERS[1:], Operation.SIGN, digest)
        signature = await c.sign("guarded", message, approvals=good, signers=["node-1", "node-3"])
        ciphertext = await c.encrypt("guarded", b"cold wallet seed", b"vault")
        with pytest.raises(RemoteError) as caught:  # sign approvals do not approve a decryption
            await c.decrypt("guarded", ciphertext, b"vault", approvals=good)
        assert caught.value.code == "ApprovalMismatchError"
        approvals = _approvals(
            key, APPROVERS[:2], Operation.DECRYPT, decryption_digest(ciphertext, b"vault")
        )
        return key, signature, await c.decrypt("guarded", ciphertext, b"vault", approvals=approvals)

    key, signature, plaintext = run(work, cluster)
    Ed25519PublicKey.from_public_bytes(key.public_key).verify(signature, message)
    assert plaintext == b"cold wallet seed"


def test_a_client_splitting_the_policy_gets_no_key(cluster: Cluster) -> None:
    strict = ApprovalPolicy(tuple(public_key_bytes(k) for k in APPROVERS), 3, frozenset(Operation))
    original = NodeClient.key_create

    async def lying(self: NodeClient, *args: Any, policy: bytes = b"") -> DkgOutbox:
        # node-3 is told the key needs no approvals; the others get the strict policy
        return await original(self, *args, policy=b"" if self.node_id == "node-3" else policy)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(NodeClient, "key_create", lying)
        with pytest.raises(RemoteError) as caught:
            run(lambda c: c.create_key("split", policy=strict), cluster)
    assert caught.value.code == "ProtocolAbort"
    with pytest.raises(ClientError, match="no reachable node holds"):
        run(lambda c: c.describe_key("split"), cluster)


def test_threshold_ecdsa_signs_once_per_presignature_and_survives_a_restart(
    cluster: Cluster,
) -> None:
    async def work(c: Coordinator) -> tuple[KeyDescription, EcdsaSignature, PresignatureInfo]:
        key = await c.create_key("ecdsa", suite=ECDSA_SUITE, threshold=1)
        info = await c.presign("ecdsa")
        signature = await c.sign_ecdsa("ecdsa", b"spend 1", presignature=info)
        for node_id in c.node_ids:  # a second use of the presignature: every node refuses
            node = await c.node(node_id)
            with pytest.raises(RemoteError) as caught:
                await node.ecdsa_sign("ecdsa", info.presignature_id, b"spend 2", bytes(32))
            assert caught.value.code == "PresignatureReuse"
        return key, signature, await c.presign("ecdsa")

    key, signature, unused = run(work, cluster)
    digest = hashlib.sha256(b"spend 1").digest()
    public = coincurve.PublicKey(key.public_key)
    assert public.verify(signature.to_der(), digest, hasher=None)
    recovered = coincurve.PublicKey.from_signature_and_message(
        signature.to_recoverable(), digest, hasher=None
    )
    assert recovered.format() == public.format()

    # presignatures live in memory only: a restarted node has none, so the old one cannot sign
    cluster.restart_node(2)
    cluster.wait_ready(nodes=[2], timeout=60)

    async def after(c: Coordinator) -> EcdsaSignature:
        with pytest.raises(RemoteError) as caught:
            await c.sign_ecdsa("ecdsa", b"spend 3", presignature=unused)
        assert caught.value.node_id == "node-2"
        assert caught.value.code == "InvalidParameters"
        return await c.sign_ecdsa("ecdsa", b"spend 3")  # a fresh presignature signs

    signature = run(after, cluster)
    assert public.verify(signature.to_der(), hashlib.sha256(b"spend 3").digest(), hasher=None)
