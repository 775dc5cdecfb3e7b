"""Acceptance: a real emulated cluster — processes, sockets, boto3 against the emulated KMS.

One three-node cluster serves the whole module (bringing one up costs a few seconds); every test
leaves it as it found it (all nodes ready on the released image). Readiness is polled through the
status protocol with bounded deadlines; the fixture always tears down and asserts no process of the
cluster survives.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_processes import cluster_processes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from attestation.emulated_ca import EmulatedCa
from attestation.errors import PolicyViolation, UntrustedRoot
from attestation.measure import pcr_map
from attestation.nsm.client import NsmClient
from attestation.nsm.emulated import EmulatedNsm
from attestation.recipient import decrypt_for_recipient
from enclave.boot import DATA_KEY_BLOB
from enclave.config import ImageConfig
from enclave.kms import encryption_context
from enclave.node_state import STATE_BLOB
from enclave.sealing import Sealer
from enclave.secretbytes import SecretBytes
from enclave.status import NodeState
from keyshard.client.profile import ClusterProfile, ProfileError
from keyshard.dev.cluster import Cluster, ClusterError

pytestmark = pytest.mark.slow

NODES = 3


class RecordingRelay:
    """A TCP relay between the parents' outbound proxies and the KMS that keeps every byte.

    It sits exactly where the parent's forwarded KMS traffic leaves the parent, so it sees what
    the parent sees of it.
    """

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._target = 0
        self._threads: list[threading.Thread] = []
        self._closed = False

    def route(self, kms_port: int) -> int:
        self._target = kms_port
        thread = threading.Thread(target=self._accept_loop, daemon=True)
        thread.start()
        return self.port

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self._target))
            for source, sink in ((client, upstream), (upstream, client)):
                thread = threading.Thread(target=self._pump, args=(source, sink), daemon=True)
                thread.start()
                self._threads.append(thread)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                with self._lock:
                    self.chunks.append(chunk)
                sink.sendall(chunk)
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def recorded(self) -> bytes:
        with self._lock:
            return b"".join(self.chunks)

    def close(self) -> None:
        self._closed = True
        self._listener.close()


@pytest.fixture(scope="module")
def relay() -> Iterator[RecordingRelay]:
    relay = RecordingRelay()
    yield relay
    relay.close()


@pytest.fixture(scope="module")
def cluster(relay: RecordingRelay) -> Iterator[Cluster]:
    directory = Path(tempfile.mkdtemp(prefix="ksc-", dir="/tmp"))
    cluster = Cluster(directory, NODES, kms_route=relay.route)
    try:
        cluster.up(timeout=120)
        yield cluster
    finally:
        cluster.down()
        survivors = cluster_processes(directory)
        assert survivors == [], f"orphan processes: {survivors}"
        shutil.rmtree(directory, ignore_errors=True)


def test_three_nodes_are_ready_with_the_released_measurements(cluster: Cluster) -> None:
    profile = json.loads(cluster.profile_file.read_text())
    views = cluster.status()
    assert [view.state for view in views] == ["ready"] * NODES
    identities = set()
    for view, entry in zip(views, profile["nodes"], strict=True):
        assert view.status is not None
        assert view.status.pcrs[0].hex() == profile["expected_pcrs"][0]["0"]
        assert view.status.pcrs[2].hex() == profile["expected_pcrs"][0]["2"]
        assert view.status.sealed_version == 1
        assert entry["endpoint"] == f"127.0.0.1:{view.client_port}"
        identities.add(view.status.identity_public_key)
    assert len(identities) == NODES
    # ONE image for every node: one PCR0, whose table lists each node with its own key, and each
    # parent named its node at boot.
    state = json.loads(cluster.state_file.read_text())
    assert len({view.status.pcrs[0] for view in views if view.status is not None}) == 1
    assert [view.status.node_id for view in views if view.status is not None] == state["node_ids"]
    table = ImageConfig.load(cluster.directory / "image").nodes
    assert dict(table) == dict(zip(state["node_ids"], state["key_arns"], strict=True))
    assert len(set(state["key_arns"])) == NODES
    assert (
        profile["attestation_root"]["sha256"]
        == EmulatedCa.load_or_create(cluster.directory / "ca").root_fingerprint
    )


def test_the_profile_gives_clients_the_trust_to_pin(cluster: Cluster) -> None:
    profile = cluster.profile()
    assert [node.node_id for node in profile.nodes] == [f"node-{i}" for i in range(1, NODES + 1)]
    assert cluster.image is not None
    ca = EmulatedCa.load_or_create(cluster.directory / "ca")
    genuine = NsmClient(EmulatedNsm(ca, pcr_map(cluster.image.measurements)))
    document = genuine.get_attestation_document(nonce=b"challenge")
    profile.policy(nonce=b"challenge").check(profile.verifier().verify(document))
    tampered = cluster.image.measurements.pcr0[:-1] + b"\x00"
    pcrs = {**pcr_map(cluster.image.measurements), 0: tampered}
    other = NsmClient(EmulatedNsm(ca, pcrs)).get_attestation_document()
    with pytest.raises(PolicyViolation) as refused:
        profile.policy().check(profile.verifier().verify(other))
    assert refused.value.rule == "pcr_sets"
    foreign = EmulatedNsm(EmulatedCa.ephemeral(), pcr_map(cluster.image.measurements))
    with pytest.raises(UntrustedRoot):
        profile.verifier().verify(NsmClient(foreign).get_attestation_document())
    text = cluster.profile_file.read_text().replace(profile.root_sha256, "00" * 32)
    broken = cluster.directory / "broken-profile.json"
    broken.write_text(text)
    with pytest.raises(ProfileError, match="pins"):
        ClusterProfile.load(broken)


def test_enclave_code_runs_from_the_image(cluster: Cluster) -> None:
    # The enclave refuses to boot on code from outside its image; its log names the image root.
    log = (cluster.directory / "logs" / "enclave-1.log").read_text()
    assert str(cluster.directory / "image") in log


@pytest.mark.parametrize("index", range(1, NODES + 1))
def test_restart_recovers_the_sealed_state(cluster: Cluster, index: int) -> None:
    before = cluster.status()[index - 1].status
    assert before is not None
    cluster.restart_node(index)
    after = cluster.wait_ready(nodes=[index], timeout=60)[index - 1].status
    assert after is not None
    assert after.identity_public_key == before.identity_public_key
    assert after.data_key_id == before.data_key_id
    assert after.sealed_version == before.sealed_version


def test_modified_enclave_is_refused_by_kms_and_says_why(cluster: Cluster) -> None:
    index = NODES
    before = cluster.status()[index - 1].status
    assert before is not None
    tampered = cluster.tampered_image()
    try:
        cluster.restart_node(index, image_dir=tampered)
        view = cluster.wait_state(index, NodeState.FAILED, timeout=60)
        assert view.status is not None
        assert view.status.reason is not None
        assert "GenerateDataKey" not in view.status.reason  # it had a key: it asked to Decrypt
        assert "Decrypt failed with AccessDeniedException" in view.status.reason
        assert view.status.pcrs[0] != before.pcrs[0]
        assert view.status.identity_public_key is None
    finally:
        cluster.restart_node(index)
    recovered = cluster.wait_ready(nodes=[index], timeout=60)[index - 1].status
    assert recovered is not None
    assert recovered.identity_public_key == before.identity_public_key


def test_debug_mode_enclave_is_refused(cluster: Cluster) -> None:
    try:
        cluster.restart_node(1, debug=True)
        view = cluster.wait_state(1, NodeState.FAILED, timeout=60)
        assert view.status is not None
        assert view.status.reason is not None
        assert "'debug'" in view.status.reason
        assert all(not any(view.status.pcrs[i]) for i in (0, 1, 2, 8))
    finally:
        cluster.restart_node(1)
    cluster.wait_ready(nodes=[1], timeout=60)


@pytest.mark.parametrize(
    ("blob", "reason"),
    [
        (
            STATE_BLOB,
            "unseal: BlobMismatchError: sealed blob node_id is 'node-2', expected 'node-1'",
        ),
        (DATA_KEY_BLOB, "kms: KmsError: KMS Decrypt failed with"),
    ],
)
def test_a_parent_swapping_in_another_nodes_blob_is_refused(
    cluster: Cluster, blob: str, reason: str
) -> None:
    victim = cluster.node_layout(1).blob_dir / blob
    original = victim.read_bytes()
    before = cluster.status()[0].status
    assert before is not None
    try:
        cluster.stop_node(1)
        victim.write_bytes((cluster.node_layout(2).blob_dir / blob).read_bytes())
        cluster.start_node(1)
        view = cluster.wait_state(1, NodeState.FAILED, timeout=60)
        assert view.status is not None
        assert view.status.reason is not None
        assert view.status.reason.startswith(reason)
        assert view.status.identity_public_key is None
    finally:
        cluster.stop_node(1)
        victim.write_bytes(original)
        cluster.start_node(1)
    after = cluster.wait_ready(nodes=[1], timeout=60)[0].status
    assert after is not None
    assert after.identity_public_key == before.identity_public_key


def test_a_second_cluster_cannot_start_in_the_same_directory(cluster: Cluster) -> None:
    with pytest.raises(ClusterError, match="already running"):
        Cluster(cluster.directory, NODES).up(timeout=5)


def test_the_parents_view_holds_no_data_key_and_no_plaintext(
    cluster: Cluster, relay: RecordingRelay
) -> None:
    ca = EmulatedCa.load_or_create(cluster.directory / "ca")
    assert cluster.image is not None
    pcrs = pcr_map(cluster.image.measurements)
    state = json.loads(cluster.state_file.read_text())
    stored_everything = b""
    secrets: list[bytes] = []
    for index in range(1, NODES + 1):
        blob_dir = cluster.node_layout(index).blob_dir
        stored = {path.name: path.read_bytes() for path in blob_dir.iterdir() if path.is_file()}
        stored_everything += b"".join(stored.values())
        blobs = {name: data for name, data in stored.items()}
        ciphertext = _blob(blobs, DATA_KEY_BLOB)
        # Play the genuine enclave (possible only in emulation, with the CA key) to learn the secrets.
        private_key = rsa.generate_private_key(65537, 2048)
        public_der = private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        document = NsmClient(EmulatedNsm(ca, pcrs)).get_attestation_document(public_key=public_der)
        node_id = state["node_ids"][index - 1]
        response = cluster.kms_client(f"AKIAKSDEVNODE{index:07d}").decrypt(
            KeyId=state["key_arns"][index - 1],
            CiphertextBlob=ciphertext,
            EncryptionContext=encryption_context(node_id),
            Recipient={
                "AttestationDocument": document,
                "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256",
            },
        )
        data_key = decrypt_for_recipient(response["CiphertextForRecipient"], private_key)
        sealer = Sealer(SecretBytes(data_key), node_id)
        _, plaintext = sealer.unseal(STATE_BLOB, _blob(blobs, STATE_BLOB))
        secrets += [data_key, plaintext, plaintext[-32:]]
    forwarded = relay.recorded()
    assert len(forwarded) > 10_000  # every boot's KMS exchange went through the relay
    logs = b"".join(path.read_bytes() for path in (cluster.directory / "logs").iterdir())
    for secret in secrets:
        for haystack in (forwarded, stored_everything, logs):
            assert secret not in haystack
            assert secret.hex().encode() not in haystack
    assert os.path.getsize(cluster.state_file) > 0


def _blob(blobs: dict[str, bytes], name: str) -> bytes:
    for stored_name, data in blobs.items():
        if stored_name == name:
            return data
    raise AssertionError(f"{name} not stored (have {sorted(blobs)})")
