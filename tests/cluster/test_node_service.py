"""Acceptance: the node service on a real three-node emulated cluster, through the client SDK.

Keys are created by DKG between three enclaves (the test process is the untrusted coordinator that
relays sealed envelopes), signed by two of three, decrypted by two of three, and survive a node
restart. Every parent runs with ``--record``, so the parent's whole view can be searched. Refusals
are checked end to end: an unlisted client, a man in the middle, a peer of another image, a tampered
envelope, an existing key name, a client that splits the approval policy.

Most tests drive the SDK's :class:`~keyshard.client.sdk.AsyncClient` (its coordinator, over real
attested channels). Where a test plays a curious or malicious coordinator, it runs the same
:class:`~keyshard.client.coordinator.Coordinator` over :class:`TappedLink` — a real attested
channel whose requests the test sees or alters — or sends wire requests on a node's link itself.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import os
import shutil
import subprocess
import sys
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
from enclave.mpc.frost.round1 import PREPROCESSED_SESSION_ID, SigningCommitments
from enclave.mpc.frost.round2 import SigningPackage
from enclave.node_state import NodeIdentity
from enclave.service.identity import ServiceIdentity
from keyshard.client.approvals import public_key_bytes, sign_approval
from keyshard.client.channel import NodeChannel, NodeTrust, client_context
from keyshard.client.coordinator import Connector, Coordinator
from keyshard.client.credentials import ClientCredentials
from keyshard.client.errors import (
    BindingError,
    ChannelError,
    InvalidInputError,
    KeyNotFoundError,
    RemoteError,
)
from keyshard.client.keys import KeyDescription
from keyshard.client.sdk import AsyncClient
from keyshard.dev.cluster import Cluster
from transport.framing import FramedStream
from wire.approvals import ApprovalPolicy, Operation, decryption_digest, message_digest
from wire.binding import ChannelBinding
from wire.errors import ErrorCode
from wire.messages import (
    MAX_FRAME,
    DkgOutbox,
    DkgStep,
    EcdsaSign,
    FrostSign,
    KeyCreate,
    NonceCommit,
    NonceCommitments,
    Reply,
    Request,
    SignatureShares,
)

pytestmark = pytest.mark.slow

_T = TypeVar("_T")
_R = TypeVar("_R", bound=Reply)

NODES = ("node-1", "node-2", "node-3")

#: Replaces a request to ``node_id`` before it is sent (a lying coordinator).
Alter = Callable[[str, Request], Request]
#: Sees each request to ``node_id`` and the reply it got (a curious coordinator).
Seen = Callable[[str, Request, Reply], None]


class TappedLink:
    """A real attested channel to one node whose requests and replies a test sees or alters."""

    def __init__(self, channel: NodeChannel, alter: Alter | None, seen: Seen | None) -> None:
        self.node_id = channel.node_id
        self.document = channel.document
        self.binding = channel.binding
        self.opened_at = channel.opened_at
        self._channel, self._alter, self._seen = channel, alter, seen

    @property
    def broken(self) -> bool:
        return self._channel.broken

    async def request(self, message: Request, *, timeout: float = 60.0) -> Reply:
        if self._alter is not None:
            message = self._alter(self.node_id, message)
        reply = await self._channel.request(message, timeout=timeout)
        if self._seen is not None:
            self._seen(self.node_id, message, reply)
        return reply

    async def retire(self) -> None:
        await self._channel.retire()

    async def close(self) -> None:
        await self._channel.close()


def tapped(cluster: Cluster, *, alter: Alter | None = None, seen: Seen | None = None) -> Connector:
    """Connects as the SDK does (the profile's endpoints and trust), through a :class:`TappedLink`."""
    profile = cluster.profile()
    trust, credentials = NodeTrust.from_profile(profile), cluster.credentials()
    endpoints = {node.node_id: (node.host, node.service_port) for node in profile.nodes}

    async def connect(node_id: str) -> TappedLink:
        host, port = endpoints[node_id]
        assert port is not None
        channel = await NodeChannel.open(node_id, host, port, trust=trust, credentials=credentials)
        return TappedLink(channel, alter, seen)

    return connect


def client_of(cluster: Cluster) -> AsyncClient:
    return AsyncClient(cluster.profile(), cluster.credentials())


def run(
    work: Callable[[Coordinator], Awaitable[_T]],
    cluster: Cluster,
    *,
    alter: Alter | None = None,
    seen: Seen | None = None,
) -> _T:
    """``work`` on a fresh SDK client's coordinator (a tapped one when ``alter``/``seen`` given)."""

    async def main() -> _T:
        if alter is None and seen is None:
            async with client_of(cluster) as client:
                return await work(client.coordinator)
        async with Coordinator(NODES, tapped(cluster, alter=alter, seen=seen)) as coordinator:
            return await work(coordinator)

    return asyncio.run(main())


async def ask(c: Coordinator, node_id: str, request: Request, expected: type[_R]) -> _R:
    """One wire request on the coordinator's link to ``node_id`` (RemoteError when refused)."""
    reply = await (await c.link(node_id)).request(request)
    assert isinstance(reply, expected)
    return reply


def restart(cluster: Cluster, index: int) -> None:
    cluster.restart_node(index)
    cluster.wait_ready(nodes=[index], timeout=60)


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

    def keep(node_id: str, request: Request, reply: Reply) -> None:
        if isinstance(request, KeyCreate | DkgStep) and isinstance(reply, DkgOutbox):
            payloads.extend(reply.outbox.values())

    key = run(lambda c: c.create_key("ed", suite="ed25519", threshold=1), cluster, seen=keep)
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
        assert dict(described.holders) == dict(key.holders)
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
    async def work(c: Coordinator) -> tuple[KeyDescription, bytes, bytes]:
        key = await c.create_key("btc", suite="secp256k1", threshold=1)
        signature = await c.sign("btc", b"tx", signers=["node-1", "node-3"])
        ciphertext = await c.encrypt("btc", b"seed words")
        return key, signature, await c.decrypt("btc", ciphertext)

    key, signature, plaintext = run(work, cluster)
    assert key.suite.name == "secp256k1"
    # FROST(secp256k1, SHA-256) signatures are RFC 9591's (R || z) format, not ECDSA/BIP-340.
    assert FROST_SECP256K1_SHA256.verify(key.public.group_public_key, b"tx", signature)
    assert not FROST_SECP256K1_SHA256.verify(key.public.group_public_key, b"tx!", signature)
    assert plaintext == b"seed words"


def test_existing_name_is_refused(cluster: Cluster, relayed: dict[str, Any]) -> None:
    with pytest.raises(RemoteError) as caught:
        run(lambda c: c.create_key("ed"), cluster)
    assert caught.value.error_code is ErrorCode.KEY_EXISTS
    assert not caught.value.retryable


def test_decrypt_with_wrong_label_fails_here(cluster: Cluster, relayed: dict[str, Any]) -> None:
    async def work(c: Coordinator) -> bytes:
        ciphertext = await c.encrypt("ed", b"payroll", b"label")
        return await c.decrypt("ed", ciphertext, b"other label")

    # the nodes cannot see the label: the combined result fails the AEAD check on this machine
    with pytest.raises(InvalidInputError, match="does not decrypt") as caught:
        run(work, cluster)
    assert caught.value.local


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
    restart(cluster, 3)

    signature = run(lambda c: c.sign("ed", b"after restart", signers=["node-1", "node-3"]), cluster)
    Ed25519PublicKey.from_public_bytes(relayed["key"].public_key).verify(
        signature, b"after restart"
    )


def test_a_node_restarted_between_two_requests_is_reconnected_by_the_next_call(
    cluster: Cluster, relayed: dict[str, Any]
) -> None:
    """One client across two restarts of a signer, never told (no ``forget``): its channel is
    dead, the nonces the client holds for it died with its boot, and the next call still signs."""
    public = Ed25519PublicKey.from_public_bytes(relayed["key"].public_key)
    signers = ["node-1", "node-3"]
    client = client_of(cluster)
    c = client.coordinator
    with asyncio.Runner() as runner:
        try:
            public.verify(runner.run(c.sign("ed", b"before", signers=signers)), b"before")
            first = runner.run(c.link("node-3"))
            # The loop does not run meanwhile: the client learns of the dead channel only from
            # the request it sends on it.
            restart(cluster, 3)
            assert not first.broken
            public.verify(runner.run(c.sign("ed", b"after", signers=signers)), b"after")
            second = runner.run(c.link("node-3"))
            assert first.broken
            assert second is not first
            assert not second.broken

            async def restart_while_running() -> None:
                # The application goes on running while the node restarts: the channel's reader
                # sees it close, and the next call reconnects before sending anything.
                await asyncio.to_thread(restart, cluster, 3)
                assert second.broken

            runner.run(restart_while_running())
            public.verify(runner.run(c.sign("ed", b"again", signers=signers)), b"again")
            assert not runner.run(c.link("node-3")).broken
        finally:
            runner.run(client.close())


def test_one_channel_carries_many_concurrent_requests(
    cluster: Cluster, relayed: dict[str, Any]
) -> None:
    """40 signatures in flight through one client at once: first as an application makes them
    (the client may coalesce concurrent calls into batches), then each pinned to a pair of
    signers, so that each is its own request and dozens share each node's one channel."""
    messages = [b"payment %d" % k for k in range(40)]
    pairs = [["node-1", "node-2"], ["node-2", "node-3"], ["node-1", "node-3"]]

    async def work() -> tuple[list[bytes], list[bytes], int]:
        async with client_of(cluster) as client:
            c = client.coordinator
            await client.describe_key("ed")
            links = {node_id: await c.link(node_id) for node_id in NODES}
            batched = await asyncio.gather(*(client.sign("ed", m) for m in messages))
            pinned = asyncio.gather(
                *(c.sign("ed", m, signers=pairs[k % 3]) for k, m in enumerate(messages))
            )
            peak = 0
            while not pinned.done():
                for link in links.values():
                    assert isinstance(link, NodeChannel)
                    peak = max(peak, link.in_flight)
                await asyncio.sleep(0.002)
            for node_id, link in links.items():  # the same channels carried every request
                assert await c.link(node_id) is link
                assert not link.broken
            return list(batched), list(await pinned), peak

    batched, pinned, peak = asyncio.run(work())
    public = Ed25519PublicKey.from_public_bytes(relayed["key"].public_key)
    for signatures in (batched, pinned):
        assert len(set(signatures)) == len(messages)
        for message, signature in zip(messages, signatures, strict=True):
            public.verify(signature, message)
    assert peak > 1  # requests overlapped on one channel


def test_pooled_presignatures_a_restart_destroyed_are_replaced_by_the_next_call(
    cluster: Cluster,
) -> None:
    """A client holding pooled presignatures across a presigner's restart it was not told of:
    the channel is dead and the presigner's halves of the pool died with its boot."""
    client = client_of(cluster)
    c = client.coordinator
    with asyncio.Runner() as runner:
        try:
            key = runner.run(c.create_key("pooled", suite="ecdsa-secp256k1", threshold=1))
            before = runner.run(c.sign_ecdsa("pooled", b"before"))  # presigns a pool
            restart(cluster, 2)  # the loop does not run: nothing tells the client
            after = runner.run(c.sign_ecdsa("pooled", b"after"))
        finally:
            runner.run(client.close())
    public = coincurve.PublicKey(key.public_key)
    for signature, message in ((before, b"before"), (after, b"after")):
        assert public.verify(signature.to_der(), hashlib.sha256(message).digest(), hasher=None)


def readme_program() -> str:
    """The SDK example of README.md, exactly as printed there (after ``<!-- sdk-example -->``)."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- sdk-example -->\n```python\n", 1)[1]
    return block.split("\n```", 1)[0]


def test_the_readme_program_runs_against_the_cluster(cluster: Cluster, tmp_path: Path) -> None:
    """The blocking facade as a user's program meets it: a fresh interpreter, the installed
    package, the profile's path and the credentials beside it."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("KEYSHARD_") and name != "PYTHONPATH"
    }
    result = subprocess.run(
        [sys.executable, "-c", readme_program(), str(cluster.profile_file)],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "payroll\n"  # the program verified the signature itself
    described = run(lambda c: c.describe_key("invoices"), cluster)
    assert described.suite.name == "ed25519"


def test_unlisted_client_is_refused_at_the_handshake(cluster: Cluster, tmp_path: Path) -> None:
    stranger = ClientCredentials.load_or_create(tmp_path / "stranger")
    node = cluster.profile().nodes[0]
    assert node.service_port is not None
    port = node.service_port

    async def attempt() -> None:
        await NodeChannel.open(
            node.node_id,
            node.host,
            port,
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
        identity = ServiceIdentity.generate(
            "node-1", dt.datetime.now(dt.UTC), NodeIdentity.generate()
        )
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

    with pytest.raises(BindingError, match="binds another TLS key") as caught:
        asyncio.run(attempt())
    assert caught.value.node_id == "node-1"


def test_peer_of_another_image_is_refused_at_key_create(cluster: Cluster) -> None:
    ca = EmulatedCa.load_or_create(cluster.directory / "ca")
    other_pcrs = {i: hashlib.sha384(b"not the release" + bytes([i])).digest() for i in range(16)}
    impostor = ServiceIdentity.generate("node-3", dt.datetime.now(dt.UTC), NodeIdentity.generate())
    document = NsmClient(EmulatedNsm(ca, other_pcrs)).get_attestation_document(
        impostor.binding().encode(), None, None
    )

    async def work(c: Coordinator) -> None:
        one, two = await c.link("node-1"), await c.link("node-2")
        participants = {"node-1": one.document, "node-2": two.document, "node-3": document}
        await one.request(KeyCreate("impostor", "ed25519", 1, b"i" * 32, participants))

    with pytest.raises(RemoteError) as caught:
        run(work, cluster)
    assert caught.value.node_id == "node-1"
    assert caught.value.error_code is ErrorCode.PEER_REFUSED
    assert "node-3" in caught.value.message
    assert "pcr_sets" in caught.value.message


def test_tampered_envelope_fails_the_creation_for_good(cluster: Cluster) -> None:
    async def work(c: Coordinator) -> tuple[RemoteError, RemoteError]:
        links = {node_id: await c.link(node_id) for node_id in NODES}
        documents = {node_id: link.document for node_id, link in links.items()}
        request = KeyCreate("tamper", "ed25519", 1, b"t" * 32, documents)
        outboxes = {n: (await ask(c, n, request, DkgOutbox)).outbox for n in NODES}
        inbox = [outboxes["node-2"]["node-1"], outboxes["node-3"]["node-1"]]
        tampered = bytearray(inbox[0])
        tampered[30] ^= 1
        errors = []
        for attempt in ([bytes(tampered), inbox[1]], inbox):
            with pytest.raises(RemoteError) as caught:
                await links["node-1"].request(DkgStep("tamper", tuple(attempt)))
            errors.append(caught.value)
        return errors[0], errors[1]

    first, second = run(work, cluster)
    assert first.error_code is ErrorCode.ENVELOPE
    assert second.error_code is ErrorCode.SESSION  # the honest retry is refused: failed for good


def test_channel_binding_names_the_node(cluster: Cluster) -> None:
    async def work(c: Coordinator) -> ChannelBinding:
        return (await c.link("node-2")).binding

    assert run(work, cluster).node_id == "node-2"


def test_signing_and_decryption_go_on_with_one_node_down(
    cluster: Cluster, relayed: dict[str, Any]
) -> None:
    cluster.stop_node(2)
    try:

        async def work(c: Coordinator) -> tuple[KeyDescription, bytes, bytes]:
            with pytest.raises(ChannelError):
                await c.link("node-2")
            key = await c.describe_key("ed")  # the two reachable holders agree
            ciphertext = await c.encrypt("ed", b"still here")
            return key, await c.sign("ed", b"quorum"), await c.decrypt("ed", ciphertext)

        key, signature, plaintext = run(work, cluster)
        assert key.public.to_bytes() == relayed["key"].public.to_bytes()
        assert dict(key.holders) == {"node-1": 1, "node-2": 2, "node-3": 3}  # as recorded
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


async def _signing_package(c: Coordinator, key: KeyDescription, message: bytes) -> bytes:
    """A FROST package for ``message`` carrying a fresh preprocessed commitment of every holder
    (any two of which could sign it)."""
    commitments = {}
    for node_id in NODES:
        reply = await ask(c, node_id, NonceCommit(key.name, 1), NonceCommitments)
        commitments[key.identifier(node_id)] = SigningCommitments.from_bytes(reply.commitments[0])
    suite = key.suite.frost_suite()
    return SigningPackage(suite, PREPROCESSED_SESSION_ID, commitments, message).to_bytes()


def test_approval_quorum_is_enforced_by_every_node(cluster: Cluster) -> None:
    policy = ApprovalPolicy(
        tuple(public_key_bytes(k) for k in APPROVERS),
        2,
        frozenset({Operation.SIGN, Operation.DECRYPT}),
    )
    message = b"release 100 BTC"

    async def work(c: Coordinator) -> tuple[KeyDescription, bytes, bytes]:
        key = await c.create_key("guarded", policy=policy)
        assert (await c.describe_key("guarded", refresh=True)).policy == policy
        digest = message_digest(message)
        one = _approvals(key, APPROVERS[:1], Operation.SIGN, digest)
        twice = one + _approvals(key, APPROVERS[:1], Operation.SIGN, digest)
        good = _approvals(key, APPROVERS[1:], Operation.SIGN, digest)
        for node_id in NODES:  # every node refuses on its own
            for given in ([], twice):
                package = await _signing_package(c, key, message)
                with pytest.raises(RemoteError) as caught:
                    await ask(c, node_id, FrostSign("guarded", (package,), (tuple(given),)), Reply)
                assert caught.value.error_code is ErrorCode.QUORUM_NOT_MET
                assert caught.value.node_id == node_id
            # the refused request spent the node's nonce: not even good approvals reuse it
            with pytest.raises(RemoteError) as caught:
                await ask(c, node_id, FrostSign("guarded", (package,), (tuple(good),)), Reply)
            assert caught.value.error_code is ErrorCode.NONCE_UNKNOWN
        other = _approvals(key, APPROVERS[1:], Operation.SIGN, message_digest(b"release 1000"))
        with pytest.raises(RemoteError) as caught:
            await c.sign("guarded", message, approvals=other)
        assert caught.value.error_code is ErrorCode.APPROVAL_MISMATCH
        signature = await c.sign("guarded", message, approvals=good, signers=["node-1", "node-3"])
        ciphertext = await c.encrypt("guarded", b"cold wallet seed", b"vault")
        with pytest.raises(RemoteError) as caught:  # sign approvals do not approve a decryption
            await c.decrypt("guarded", ciphertext, b"vault", approvals=good)
        assert caught.value.error_code is ErrorCode.APPROVAL_MISMATCH
        approvals = _approvals(
            key, APPROVERS[:2], Operation.DECRYPT, decryption_digest(ciphertext, b"vault")
        )
        return key, signature, await c.decrypt("guarded", ciphertext, b"vault", approvals=approvals)

    key, signature, plaintext = run(work, cluster)
    Ed25519PublicKey.from_public_bytes(key.public_key).verify(signature, message)
    assert plaintext == b"cold wallet seed"


def test_a_client_splitting_the_policy_gets_no_key(cluster: Cluster) -> None:
    strict = ApprovalPolicy(
        tuple(public_key_bytes(k) for k in APPROVERS),
        3,
        frozenset({Operation.SIGN, Operation.DECRYPT}),
    )

    def lying(node_id: str, request: Request) -> Request:
        # node-3 is told the key needs no approvals; the others get the strict policy
        if isinstance(request, KeyCreate) and node_id == "node-3":
            return dataclasses.replace(request, policy=b"")
        return request

    with pytest.raises(RemoteError) as caught:
        run(lambda c: c.create_key("split", policy=strict), cluster, alter=lying)
    # the policy is bound into the DKG: the first round's proofs do not verify across the split
    assert caught.value.error_code is ErrorCode.PROTOCOL
    with pytest.raises(KeyNotFoundError):
        run(lambda c: c.describe_key("split"), cluster)


def test_threshold_ecdsa_signs_once_per_presignature_and_survives_a_restart(
    cluster: Cluster,
) -> None:
    async def work(c: Coordinator) -> tuple[KeyDescription, EcdsaSignature, PresignatureInfo]:
        key = await c.create_key("ecdsa", suite="ecdsa-secp256k1", threshold=1)
        (info,) = await c.presign("ecdsa")
        signature = await c.sign_ecdsa("ecdsa", b"spend 1", presignature=info)
        second_use = EcdsaSign("ecdsa", (info.presignature_id,), (b"spend 2",), (bytes(32),), ((),))
        for node_id in NODES:  # a second use of the presignature: every node refuses
            with pytest.raises(RemoteError) as caught:
                await ask(c, node_id, second_use, SignatureShares)
            assert caught.value.error_code is ErrorCode.NONCE_UNKNOWN
        (unused,) = await c.presign("ecdsa")
        return key, signature, unused

    key, signature, unused = run(work, cluster)
    digest = hashlib.sha256(b"spend 1").digest()
    public = coincurve.PublicKey(key.public_key)
    assert public.verify(signature.to_der(), digest, hasher=None)
    recovered = coincurve.PublicKey.from_signature_and_message(
        signature.to_recoverable(), digest, hasher=None
    )
    assert recovered.format() == public.format()

    # presignatures live in memory only: a restarted node has none, so the old one cannot sign
    restart(cluster, 2)

    async def after(c: Coordinator) -> EcdsaSignature:
        with pytest.raises(RemoteError) as caught:
            await c.sign_ecdsa("ecdsa", b"spend 3", presignature=unused)
        assert caught.value.node_id == "node-2"
        assert caught.value.error_code is ErrorCode.NONCE_UNKNOWN
        return await c.sign_ecdsa("ecdsa", b"spend 3")  # a fresh presignature signs

    signature = run(after, cluster)
    assert public.verify(signature.to_der(), hashlib.sha256(b"spend 3").digest(), hasher=None)
