"""The boot sequence in-process, against the real emulated KMS, NSM and a protocol-exact parent."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from enclave_harness import (
    NODE_KEY,
    Cloud,
    FakeParent,
    emulated_cloud,
    kms_client,
    short_tmpdir,
)

from attestation.errors import RecipientDecryptionError
from attestation.measure import pcr_map
from attestation.nsm.client import NsmClient
from attestation.nsm.emulated import EmulatedNsm
from attestation.nsm.messages import Attestation
from attestation.nsm.messages import encode_request as nsm_request
from attestation.recipient import decrypt_for_recipient
from enclave.boot import DATA_KEY_BLOB, EnclaveRuntime
from enclave.config import LaunchConfig, Mode, Seams, select_seams
from enclave.kms import encryption_context
from enclave.logs import JsonFormatter
from enclave.node_state import STATE_BLOB
from enclave.sealing import Sealer
from enclave.secretbytes import SecretBytes
from enclave.status import (
    CLIENT_PORT,
    MAX_STATUS_FRAME,
    NodeState,
    NodeStatus,
    decode_status,
    encode_request,
)
from keyshard.dev.hypervisor import NsmHypervisor, VmSpec
from transport.address import VsockAddress
from transport.framing import FramedStream
from transport.unix import UnixSocketTransport

CID = 16
DEADLINE = 30.0


@pytest.fixture(scope="module")
def cloud() -> Iterator[Cloud]:
    with short_tmpdir() as workdir, emulated_cloud(workdir) as cloud:
        yield cloud


@pytest.fixture
def rundir() -> Iterator[Path]:
    with short_tmpdir() as path:
        yield path


async def status_over_socket(transport: UnixSocketTransport) -> NodeStatus:
    reader, writer = await transport.connect(VsockAddress(CID, CLIENT_PORT))
    stream = FramedStream(reader, writer, MAX_STATUS_FRAME)
    try:
        await stream.send(encode_request())
        return decode_status(await stream.recv())
    finally:
        await stream.close()


async def boot_node(
    cloud: Cloud,
    rundir: Path,
    parent: FakeParent,
    *,
    image_dir: Path | None = None,
    debug: bool = False,
    seams: Seams | None = None,
) -> NodeStatus:
    """Boot one enclave until it leaves ``booting`` (bounded), stop it, return its last status."""
    spec = VmSpec(image_dir or cloud.image.root, debug)
    hypervisor = NsmHypervisor(UnixSocketTransport(rundir), cloud.ca, lambda: spec)
    await hypervisor.start()
    launch = LaunchConfig(Mode.EMULATED, CID, rundir)
    runtime = EnclaveRuntime(launch, cloud.image_config, seams or select_seams(launch))
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop))
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE
        client = UnixSocketTransport(rundir)
        while True:
            try:
                status = await status_over_socket(client)
            except ConnectionRefusedError:
                status = None
            if status is not None and status.state is not NodeState.BOOTING:
                return status
            assert loop.time() < deadline, "node did not finish booting in time"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task
        await hypervisor.close()


def run_boot(
    cloud: Cloud,
    rundir: Path,
    *,
    blobs: dict[str, bytes] | None = None,
    image_dir: Path | None = None,
    debug: bool = False,
    seams: Seams | None = None,
    node_id: str = "n1",
) -> tuple[NodeStatus, FakeParent]:
    async def scenario() -> tuple[NodeStatus, FakeParent]:
        parent = FakeParent(UnixSocketTransport(rundir), _port(cloud), node_id)
        parent.blobs.update(blobs or {})
        await parent.start()
        try:
            status = await boot_node(
                cloud, rundir, parent, image_dir=image_dir, debug=debug, seams=seams
            )
            return status, parent
        finally:
            await parent.close()

    return asyncio.run(scenario())


def _port(cloud: Cloud) -> int:
    return int(cloud.kms.endpoint_url.rsplit(":", 1)[1])


def genuine_data_key(cloud: Cloud, ciphertext_blob: bytes) -> bytes:
    """What only the measured enclave can get: the test plays a genuine enclave (emulation only)."""
    private_key = rsa.generate_private_key(65537, 2048)
    public_der = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    nsm = NsmClient(EmulatedNsm(cloud.ca, pcr_map(cloud.image.measurements)))
    document = nsm.get_attestation_document(public_key=public_der)
    response = kms_client(cloud.kms.endpoint_url, NODE_KEY).decrypt(
        KeyId=cloud.key_arn,
        CiphertextBlob=ciphertext_blob,
        EncryptionContext=encryption_context("n1"),
        Recipient={"AttestationDocument": document, "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256"},
    )
    return decrypt_for_recipient(response["CiphertextForRecipient"], private_key)


def test_first_boot_seals_and_restart_unseals_the_same_state(
    cloud: Cloud, rundir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    first, parent = run_boot(cloud, rundir)
    assert first.state is NodeState.READY, first.reason
    assert first.sealed_version == 1
    assert first.pcrs[0] == cloud.image.measurements.pcr0
    assert first.identity_public_key is not None
    assert set(parent.blobs) == {DATA_KEY_BLOB, "manifest", STATE_BLOB}

    second, parent2 = run_boot(cloud, rundir, blobs=parent.blobs)
    assert second.state is NodeState.READY, second.reason
    assert second.identity_public_key == first.identity_public_key
    assert second.data_key_id == first.data_key_id
    assert second.sealed_version == 1
    assert parent2.recorder.stored == []  # a restart reads; it seals nothing new

    # The parent saw no data key and no plaintext state, in what it stored or forwarded.
    data_key = genuine_data_key(cloud, parent.blobs[DATA_KEY_BLOB])
    _, plaintext = Sealer(SecretBytes(data_key), "n1").unseal(STATE_BLOB, parent.blobs[STATE_BLOB])
    for recorder in (parent.recorder, parent2.recorder):
        seen = recorder.all_bytes()
        assert len(seen) > 1000  # it did see the KMS traffic and the sealed blobs
        for secret in (data_key, plaintext, plaintext[-32:]):
            assert secret not in seen
            assert base64.b64encode(secret)[:40] not in seen
    # Nor do the enclave's logs (which leave through the parent too).
    lines = "\n".join(JsonFormatter().format(entry) for entry in caplog.records)
    assert "data_key" in lines  # the events are there...
    for secret in (data_key, plaintext):
        assert secret.hex() not in lines  # ...the secrets are not
        assert base64.b64encode(secret).decode() not in lines


def test_a_node_id_outside_the_table_fails_the_boot_before_attesting(
    cloud: Cloud, rundir: Path
) -> None:
    status, parent = run_boot(cloud, rundir, node_id="n3")
    assert status.state is NodeState.FAILED
    assert status.reason == (
        "launch: ConfigError: config node_id: 'n3' is not in the image's cluster table (n1, n2)"
    )
    assert status.node_id == ""
    assert status.pcrs == {}  # refused before it attested or called KMS
    assert parent.recorder.all_bytes() == b""


def test_a_parent_naming_another_nodes_id_gets_access_denied_from_kms(
    cloud: Cloud, rundir: Path
) -> None:
    """The id is in the table, so the enclave asks for n2's key — with the credentials its own
    parent relays (n1's role), which n2's key policy does not admit."""
    status, parent = run_boot(cloud, rundir, node_id="n2")
    assert status.state is NodeState.FAILED
    assert status.node_id == "n2"
    assert status.reason is not None
    assert status.reason.startswith("kms: KmsError: KMS GenerateDataKey failed with AccessDenied")
    assert status.pcrs[0] == cloud.image.measurements.pcr0  # a genuine enclave, refused anyway
    assert STATE_BLOB not in parent.blobs
    assert DATA_KEY_BLOB not in parent.blobs


def test_modified_image_is_refused_by_kms(cloud: Cloud, rundir: Path) -> None:
    tampered = rundir / "tampered"
    shutil.copytree(cloud.image.root, tampered)
    target = tampered / "enclave" / "status.py"
    target.write_bytes(target.read_bytes() + b"\n")
    status, parent = run_boot(cloud, rundir, image_dir=tampered)
    assert status.state is NodeState.FAILED
    assert status.reason is not None
    assert status.reason.startswith("kms: KmsError: KMS GenerateDataKey failed with AccessDenied")
    assert status.pcrs[0] != cloud.image.measurements.pcr0
    assert STATE_BLOB not in parent.blobs


def test_debug_mode_document_is_refused_by_the_enclave(cloud: Cloud, rundir: Path) -> None:
    status, _ = run_boot(cloud, rundir, debug=True)
    assert status.state is NodeState.FAILED
    assert status.reason is not None
    assert status.reason.startswith("attest: PolicyViolation: policy rule 'debug'")


def test_debug_mode_document_is_refused_by_kms(cloud: Cloud) -> None:
    private_key = rsa.generate_private_key(65537, 2048)
    public_der = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    nsm = NsmClient(EmulatedNsm(cloud.ca, pcr_map(cloud.image.measurements), debug=True))
    document = nsm.get_attestation_document(public_key=public_der)
    with pytest.raises(ClientError) as info:
        kms_client(cloud.kms.endpoint_url, NODE_KEY).generate_data_key(
            KeyId=cloud.key_arn,
            KeySpec="AES_256",
            EncryptionContext=encryption_context("n1"),
            Recipient={
                "AttestationDocument": document,
                "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256",
            },
        )
    assert info.value.response["Error"]["Code"] == "AccessDeniedException"


class ReplayingNsm:
    """A man in the middle on the NSM link answering with a document captured earlier."""

    def __init__(self, captured: bytes) -> None:
        self.captured = captured

    def call(self, request: bytes) -> bytes:
        return self.captured


def test_replayed_document_with_wrong_nonce_is_refused(cloud: Cloud, rundir: Path) -> None:
    private_key = rsa.generate_private_key(65537, 2048)
    public_der = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    genuine = EmulatedNsm(cloud.ca, pcr_map(cloud.image.measurements))
    captured = genuine.call(nsm_request(Attestation(nonce=b"old" * 8, public_key=public_der)))
    launch = LaunchConfig(Mode.EMULATED, CID, rundir)
    base = select_seams(launch)
    seams = Seams(base.transport, ReplayingNsm(captured), base.public_kms)
    status, _ = run_boot(cloud, rundir, seams=seams)
    assert status.state is NodeState.FAILED
    assert status.reason is not None
    assert status.reason.startswith("attest: PolicyViolation: policy rule 'nonce'")


def test_stale_document_is_refused_by_the_enclave_and_by_kms(cloud: Cloud, rundir: Path) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=20)
    stale_nsm = EmulatedNsm(cloud.ca, pcr_map(cloud.image.measurements), clock=lambda: past)
    launch = LaunchConfig(Mode.EMULATED, CID, rundir)
    base = select_seams(launch)

    class StaleNsm:
        def call(self, request: bytes) -> bytes:
            return stale_nsm.call(request)

    status, _ = run_boot(cloud, rundir, seams=Seams(base.transport, StaleNsm(), base.public_kms))
    assert status.state is NodeState.FAILED
    assert status.reason is not None
    assert status.reason.startswith("attest: PolicyViolation: policy rule 'max_age'")

    private_key = rsa.generate_private_key(65537, 2048)
    public_der = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    document = NsmClient(stale_nsm).get_attestation_document(public_key=public_der)
    with pytest.raises(ClientError) as info:
        kms_client(cloud.kms.endpoint_url, NODE_KEY).generate_data_key(
            KeyId=cloud.key_arn,
            KeySpec="AES_256",
            EncryptionContext=encryption_context("n1"),
            Recipient={
                "AttestationDocument": document,
                "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256",
            },
        )
    assert info.value.response["Error"]["Code"] == "ValidationException"


def test_a_parent_replaying_the_enclaves_document_gets_nothing_it_can_open(
    cloud: Cloud, rundir: Path
) -> None:
    status, parent = run_boot(cloud, rundir)
    assert status.state is NodeState.READY, status.reason
    # In emulation the parent sees the KMS request in the clear: it lifts the document...
    match = re.search(rb'"AttestationDocument":\s*"([A-Za-z0-9+/=]+)"', parent.recorder.all_bytes())
    assert match is not None
    document = base64.b64decode(match.group(1))
    # ...and replays it to KMS with the node's own credentials, within the freshness window.
    response = kms_client(cloud.kms.endpoint_url, NODE_KEY).decrypt(
        KeyId=cloud.key_arn,
        CiphertextBlob=parent.blobs[DATA_KEY_BLOB],
        EncryptionContext=encryption_context("n1"),
        Recipient={"AttestationDocument": document, "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256"},
    )
    assert "Plaintext" not in response
    # KMS sealed the answer to the enclave's boot key, which never left the enclave.
    with pytest.raises(RecipientDecryptionError):
        decrypt_for_recipient(
            response["CiphertextForRecipient"], rsa.generate_private_key(65537, 2048)
        )
