"""``keyshard dev demo`` — the guided tour that ``make demo`` runs on a fresh machine.

Three acts, each using the real code paths, printing what it checks as it goes:

1. **Attestation.** An emulated NSM measures the enclave image and issues a document; the verifier
   checks it against the pinned emulated root and a policy (PCRs, nonce); a tampered document, the
   wrong root, a debug-mode enclave and a modified image are each refused with the reason.
2. **The emulated cluster.** Three nodes (parent + enclave each) boot; every enclave obtains its
   sealing key from the emulated KMS only through attestation; a node restarts and recovers its
   sealed state; an enclave built from a modified image is refused by KMS and never becomes ready.
3. **The node service.** On the same running cluster (node 3 back on the released image), the
   client opens an attested TLS channel to each node (each node's fresh attestation document must
   bind the TLS key it presented), the three enclaves create a 2-of-3 Ed25519 key by DKG — the
   client relays their messages as crypto_box envelopes it cannot open — two nodes sign with FROST
   (verified by OpenSSL's Ed25519), and two others decrypt a message encrypted to the key, each
   partial decryption checked by its proof. A client whose certificate is not in the measured image
   is refused at the TLS handshake.

Every act exits non-zero on the first unexpected outcome, so the demo doubles as a smoke test.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

import enclave
from attestation import (
    AttestationError,
    AttestationPolicy,
    AttestationVerifier,
    EmulatedCa,
    EmulatedNsm,
    Measurements,
    NsmClient,
    TrustedRoots,
    measure_image,
    pcr_map,
)
from enclave.mpc.errors import MpcError
from enclave.status import NodeState, NodeStatus
from keyshard.client.channel import NodeChannel, NodeTrust
from keyshard.client.credentials import ClientCredentials
from keyshard.client.errors import ChannelError, ClientError
from keyshard.client.sdk import AsyncClient
from keyshard.dev.cluster import Cluster, ClusterError, NodeView

__all__ = ["DemoFailedError", "act_attestation", "act_cluster", "act_node_service", "run_demo"]

#: The packages that make up the enclave image (what PCR0 measures in emulation).
IMAGE_PACKAGES = ("wire", "transport", "attestation", "enclave")


class DemoFailedError(Exception):
    """An act of the demo did not turn out as the security model says it must."""


class _Narrator:
    def __init__(self, out: TextIO) -> None:
        self._out = out

    def act(self, title: str) -> None:
        print(f"\n== {title}", file=self._out, flush=True)

    def ok(self, what: str) -> None:
        print(f"  [ok]      {what}", file=self._out, flush=True)

    def refused(self, what: str, reason: str) -> None:
        print(f"  [refused] {what}\n            -> {reason}", file=self._out, flush=True)

    def note(self, what: str) -> None:
        print(f"            {what}", file=self._out, flush=True)


def _source_root() -> Path:
    """The directory holding the enclave's packages (the "image" measured in emulation)."""
    return Path(enclave.__file__).resolve().parent.parent


def _expect_refusal(narrator: _Narrator, what: str, attempt: Callable[[], object]) -> None:
    try:
        attempt()
    except AttestationError as error:
        narrator.refused(what, f"{type(error).__name__}: {error}")
        return
    raise DemoFailedError(f"{what} was accepted; it must be refused")


def act_attestation(narrator: _Narrator, workdir: Path) -> None:
    """Act 1: documents from the emulated NSM, verified and refused for the right reasons."""
    narrator.act("1. Attestation: an enclave proves what code it runs")
    measurements = measure_image(_source_root(), IMAGE_PACKAGES)
    narrator.ok(f"measured the enclave image: PCR0 {measurements.pcr0.hex()[:32]}...")
    ca = EmulatedCa.load_or_create(workdir / "demo-ca", cloud="demo")
    narrator.ok(f"emulated Nitro CA, root pinned by SHA-256 {ca.root_fingerprint[:32]}...")

    nsm = EmulatedNsm(ca, pcr_map(measurements))
    nonce = secrets.token_bytes(32)
    channel_key = secrets.token_bytes(32)
    document = NsmClient(nsm).get_attestation_document(public_key=channel_key, nonce=nonce)
    verifier = AttestationVerifier(TrustedRoots.of([ca.root_certificate]))
    policy = AttestationPolicy(
        pcrs={0: [measurements.pcr0], 1: [measurements.pcr1], 2: [measurements.pcr2]},
        nonce=nonce,
        public_key=channel_key,
        max_age=dt.timedelta(minutes=5),
    )
    verified = verifier.verify(document)
    policy.check(verified)
    narrator.ok(
        f"document of {len(document)} bytes verified: chain of {len(verified.payload.cabundle)} "
        "CAs to the pinned root, ES384 signature, PCR0/1/2, nonce, bound channel key"
    )

    tampered = bytearray(document)
    tampered[-1] ^= 0x01  # the last byte of the ES384 signature
    _expect_refusal(
        narrator,
        "the same document with one signature byte flipped",
        lambda: verifier.verify(bytes(tampered)),
    )
    _expect_refusal(
        narrator,
        "the genuine document against the AWS Nitro root",
        lambda: AttestationVerifier().verify(document),
    )
    debug_document = NsmClient(
        EmulatedNsm(ca, pcr_map(measurements), debug=True)
    ).get_attestation_document(public_key=channel_key, nonce=nonce)
    _expect_refusal(
        narrator,
        "a debug-mode enclave (PCR0/1/2/8 zero)",
        lambda: policy.check(verifier.verify(debug_document)),
    )
    modified = _modified_image(workdir, measurements)
    other_document = NsmClient(EmulatedNsm(ca, pcr_map(modified))).get_attestation_document(
        public_key=channel_key, nonce=nonce
    )
    _expect_refusal(
        narrator,
        "an enclave whose code differs by one byte",
        lambda: policy.check(verifier.verify(other_document)),
    )
    _expect_refusal(
        narrator,
        "a replayed document answering another challenge",
        lambda: AttestationPolicy(pcrs=policy.pcrs, nonce=secrets.token_bytes(32)).check(verified),
    )


def _modified_image(workdir: Path, original: Measurements) -> Measurements:
    """Copy the image, change one byte of the enclave's code, and measure the copy."""
    image = workdir / "modified-image"
    shutil.rmtree(image, ignore_errors=True)
    for package in IMAGE_PACKAGES:
        shutil.copytree(
            _source_root() / package, image / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    target = image / "enclave" / "__init__.py"
    code = bytearray(target.read_bytes())
    code[-2] ^= 0x20
    target.write_bytes(bytes(code))
    modified = measure_image(image, IMAGE_PACKAGES)
    if modified.pcr0 == original.pcr0:
        raise DemoFailedError("a modified image measured the same PCR0")
    return modified


def act_cluster(
    narrator: _Narrator,
    workdir: Path,
    nodes: int = 3,
    *,
    then: Callable[[_Narrator, Cluster], None] | None = None,
) -> None:
    """Act 2: nodes that get their sealing keys only through attestation, and keep them.

    ``then`` (act 3) runs on the same cluster once the modified node is back on the released
    image; the cluster is stopped afterwards whatever happens."""
    narrator.act(f"2. The emulated cluster: {nodes} nodes, each a parent and an enclave")
    with Cluster(workdir / "cluster", nodes, progress=narrator.note) as cluster:
        views = cluster.up(timeout=120.0)
        for view in views:
            status = _ready_status(view)
            narrator.ok(
                f"{view.node_id}: ready, sealed state v{status.sealed_version}, "
                f"PCR0 {status.pcrs[0].hex()[:16]}..., data-key id {(status.data_key_id or '-')[:16]}..."
            )
        narrator.note("each enclave got its data key as CiphertextForRecipient, opened inside it;")
        narrator.note("the parents only ever held sealed blobs and KMS ciphertext")

        restarted = views[1]
        before = _ready_status(restarted).identity_public_key
        cluster.restart_node(restarted.index)
        after = _ready_status(cluster.wait_ready(nodes=[restarted.index])[restarted.index - 1])
        if after.identity_public_key != before:
            raise DemoFailedError(f"{restarted.node_id} did not recover its sealed state")
        narrator.ok(
            f"{restarted.node_id} restarted: re-attested, unsealed its state from the parent's blob "
            "(same node identity)"
        )

        victim = views[-1]
        cluster.restart_node(victim.index, image_dir=cluster.tampered_image())
        failed = cluster.wait_state(victim.index, NodeState.FAILED).status
        reason = failed.reason if failed is not None else "unknown"
        narrator.refused(
            f"{victim.node_id} rebooted from an image with one byte changed", str(reason)
        )
        if then is not None:
            cluster.restart_node(victim.index)
            _ready_status(cluster.wait_ready(nodes=[victim.index])[victim.index - 1])
            narrator.ok(f"{victim.node_id} rebooted from the released image: ready again")
            then(narrator, cluster)
        narrator.note("stopping the cluster")


def _ready_status(view: NodeView) -> NodeStatus:
    if view.status is None or view.status.state is not NodeState.READY:
        raise DemoFailedError(f"{view.node_id} is {view.state}, expected ready")
    return view.status


def act_node_service(narrator: _Narrator, cluster: Cluster) -> None:
    """Act 3: DKG, FROST signing and threshold decryption BETWEEN the cluster's enclaves."""
    narrator.act("3. The node service: a key that never exists whole (over the network)")
    asyncio.run(_node_service(narrator, cluster))


async def _node_service(narrator: _Narrator, cluster: Cluster) -> None:
    profile = cluster.profile()
    async with AsyncClient(profile, cluster.credentials()) as client:
        coordinator = client.coordinator
        for node_id in coordinator.node_ids:
            channel = await coordinator.link(node_id)
            narrator.ok(
                f"{node_id}: attested TLS 1.3 channel; its document binds TLS key "
                f"{channel.binding.tls_spki_sha256.hex()[:16]}... and box key "
                f"{channel.binding.box_public_key.hex()[:16]}..."
            )
        key = await coordinator.create_key("demo-key", suite="ed25519", threshold=1)
        narrator.ok(
            f"DKG between the 3 enclaves, threshold 1 (any 2 sign): Ed25519 key "
            f"{key.public_key.hex()[:32]}..."
        )
        narrator.note("each share was sealed inside its enclave; the client relayed only")
        narrator.note("crypto_box envelopes between enclaves, and no machine saw the whole key")

        message = b"transfer 10 units to account 42"
        signature = await coordinator.sign("demo-key", message, signers=["node-1", "node-2"])
        Ed25519PublicKey.from_public_bytes(key.public_key).verify(signature, message)
        narrator.ok("FROST signature by node-1 and node-2 verified by OpenSSL's Ed25519 (RFC 8032)")

        secret = b"the quarterly payroll file"
        ciphertext = await coordinator.encrypt("demo-key", secret, b"demo")
        plaintext = await coordinator.decrypt(
            "demo-key", ciphertext, b"demo", nodes=["node-2", "node-3"]
        )
        if plaintext != secret:
            raise DemoFailedError("threshold decryption returned the wrong plaintext")
        narrator.ok(
            "threshold decryption by node-2 and node-3, each partial checked by its DLEQ proof"
        )

    with tempfile.TemporaryDirectory(prefix="keyshard-stranger-") as scratch:
        stranger = ClientCredentials.load_or_create(Path(scratch))
        node = profile.nodes[0]
        try:
            channel = await NodeChannel.open(
                node.node_id,
                node.host,
                node.service_port or 0,
                trust=NodeTrust.from_profile(profile),
                credentials=stranger,
            )
        except ChannelError as error:
            narrator.refused(
                "a client whose certificate is not in the measured image", error.reason
            )
        else:
            await channel.close()
            raise DemoFailedError("an unlisted client was accepted")


def run_demo(out: TextIO, workdir: Path | None = None) -> int:
    """Run every act; return 0 if each turned out as it must, 1 otherwise (reason on ``out``)."""
    narrator = _Narrator(out)
    with tempfile.TemporaryDirectory(prefix="keyshard-demo-") as scratch:
        base = workdir or Path(scratch)
        try:
            act_attestation(narrator, base)
            act_cluster(narrator, base, then=act_node_service)
        except (DemoFailedError, AttestationError, ClusterError, ClientError, MpcError) as error:
            print(f"\ndemo FAILED: {error}", file=out)
            return 1
    print("\nDemo complete: every check above behaved as the security model requires.", file=out)
    return 0
