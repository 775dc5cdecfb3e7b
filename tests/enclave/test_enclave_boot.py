"""The boot sequence in-process, against the real emulated KMS, NSM and a protocol-exact parent."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import http.server
import json
import logging
import shutil
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from enclave_harness import (
    NODE_KEY,
    REGION,
    Cloud,
    FakeParent,
    emulated_cloud,
    short_tmpdir,
)

from attestation.errors import RecipientDecryptionError
from attestation.measure import pcr_map
from attestation.nsm.client import NsmClient
from attestation.nsm.emulated import EmulatedNsm
from attestation.nsm.messages import Attestation, AttestationResponse, decode_response
from attestation.nsm.messages import encode_request as nsm_request
from attestation.nsm.raw import RawNsm
from attestation.recipient import decrypt_for_recipient, seal_for_recipient
from attestation.roots import TrustedRoots
from attestation.verifier import AttestationVerifier
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
from keyshard.dev.kms_tls import issue_kms_tls, server_context
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
    kms_port: int | None = None,
) -> tuple[NodeStatus, FakeParent]:
    """Boot with a protocol-exact parent whose KMS route goes to ``kms_port`` (default: the KMS)."""

    async def scenario() -> tuple[NodeStatus, FakeParent]:
        port = cloud.kms_port if kms_port is None else kms_port
        parent = FakeParent(UnixSocketTransport(rundir), port, node_id)
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


def genuine_data_key(cloud: Cloud, ciphertext_blob: bytes) -> bytes:
    """What only the measured enclave can get: the test plays a genuine enclave (emulation only)."""
    private_key = rsa.generate_private_key(65537, 2048)
    public_der = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    nsm = NsmClient(EmulatedNsm(cloud.ca, pcr_map(cloud.image.measurements)))
    document = nsm.get_attestation_document(public_key=public_der)
    response = cloud.kms_client(NODE_KEY).decrypt(
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
        cloud.kms_client(NODE_KEY).generate_data_key(
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
        cloud.kms_client(NODE_KEY).generate_data_key(
            KeyId=cloud.key_arn,
            KeySpec="AES_256",
            EncryptionContext=encryption_context("n1"),
            Recipient={
                "AttestationDocument": document,
                "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256",
            },
        )
    assert info.value.response["Error"]["Code"] == "ValidationException"


class RecordingNsm:
    """The enclave's own NSM seam, keeping each attestation document it hands out."""

    def __init__(self, inner: RawNsm) -> None:
        self.inner = inner
        self.documents: list[bytes] = []

    def call(self, request: bytes) -> bytes:
        answer = self.inner.call(request)
        decoded = decode_response(answer)
        if isinstance(decoded, AttestationResponse):
            self.documents.append(decoded.document)
        return answer


def test_a_parent_replaying_the_enclaves_document_gets_nothing_it_can_open(
    cloud: Cloud, rundir: Path
) -> None:
    base = select_seams(LaunchConfig(Mode.EMULATED, CID, rundir))
    nsm = RecordingNsm(base.nsm)
    status, parent = run_boot(cloud, rundir, seams=Seams(base.transport, nsm, base.public_kms))
    assert status.state is NodeState.READY, status.reason
    # The KMS exchange crossed the parent as TLS: no request, no document in what it forwarded.
    forwarded = b"".join(parent.recorder.forwarded)
    assert len(forwarded) > 1000
    assert forwarded[:1] == b"\x16"  # a TLS handshake record, first byte of the first connection
    assert b"TrentService" not in forwarded
    assert b"AttestationDocument" not in forwarded
    assert nsm.documents
    assert nsm.documents[-1] not in forwarded
    # Should the parent still get the document (it is public), replaying it to KMS with the
    # node's own credentials, within the freshness window, gives it nothing it can open.
    response = cloud.kms_client(NODE_KEY).decrypt(
        KeyId=cloud.key_arn,
        CiphertextBlob=parent.blobs[DATA_KEY_BLOB],
        EncryptionContext=encryption_context("n1"),
        Recipient={
            "AttestationDocument": nsm.documents[-1],
            "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256",
        },
    )
    assert "Plaintext" not in response
    # KMS sealed the answer to the enclave's boot key, which never left the enclave.
    with pytest.raises(RecipientDecryptionError):
        decrypt_for_recipient(
            response["CiphertextForRecipient"], rsa.generate_private_key(65537, 2048)
        )


#: The data key a parent would like a first-booting node to seal its state with.
PARENTS_DATA_KEY = b"the-parent-chose-this-data-key!!"


class ParentsOwnKms(http.server.ThreadingHTTPServer):
    """Where a hostile parent routes the enclave's KMS connection: its own server.

    It answers GenerateDataKey with :data:`PARENTS_DATA_KEY` sealed to the RSA key in the
    enclave's (genuine, public) attestation document — which anybody can do — in plain HTTP if
    the enclave speaks it, and over TLS with a certificate of its own (for the right host name,
    from another dev CA) if the enclave speaks TLS. Only the enclave's certificate check stops it.
    """

    daemon_threads = True

    def __init__(self, tls: ssl.SSLContext, verifier: AttestationVerifier) -> None:
        super().__init__(("127.0.0.1", 0), _ParentsKmsHandler)
        self.tls = tls
        self.verifier = verifier
        self.tls_handshakes_failed = 0
        self.answered: list[str] = []
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def __enter__(self) -> ParentsOwnKms:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join()


class _ParentsKmsHandler(http.server.BaseHTTPRequestHandler):
    server: ParentsOwnKms

    def setup(self) -> None:
        self.refused = False
        if self.request.recv(1, socket.MSG_PEEK) == b"\x16":  # a TLS ClientHello
            try:
                self.request = self.server.tls.wrap_socket(self.request, server_side=True)
            except (ssl.SSLError, OSError):
                self.server.tls_handshakes_failed += 1
                self.refused = True
        super().setup()

    def handle(self) -> None:
        if not self.refused:
            super().handle()

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        document = base64.b64decode(request["Recipient"]["AttestationDocument"])
        spki = self.server.verifier.verify(document).payload.public_key
        assert spki is not None
        public_key = serialization.load_der_public_key(spki)
        assert isinstance(public_key, rsa.RSAPublicKey)
        answer = {
            "KeyId": request["KeyId"],
            "CiphertextBlob": base64.b64encode(b"the parent's blob").decode(),
            "CiphertextForRecipient": base64.b64encode(
                seal_for_recipient(PARENTS_DATA_KEY, public_key)
            ).decode(),
        }
        payload = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        self.server.answered.append(str(self.headers.get("X-Amz-Target")))

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_parent_routing_kms_to_its_own_server_cannot_choose_the_data_key(
    cloud: Cloud, rundir: Path
) -> None:
    """Issue 9 item 3: in emulation the parent could answer a first boot's GenerateDataKey itself
    (plain HTTP) and so choose the node's data key. The enclave now verifies the KMS certificate
    against the dev CA in its measured image: the parent's server, with a certificate of another
    CA for the same host name, fails the handshake, and the boot fails saying so."""
    verifier = AttestationVerifier(TrustedRoots.of([cloud.ca.root_certificate]))
    with short_tmpdir() as elsewhere:
        impostor_tls = server_context(issue_kms_tls(elsewhere, [REGION]))
        with ParentsOwnKms(impostor_tls, verifier) as impostor:
            status, parent = run_boot(cloud, rundir, kms_port=impostor.port)
    assert status.state is NodeState.FAILED, "the first boot accepted a data key the parent chose"
    assert status.reason is not None
    assert status.reason.startswith(
        "kms: KmsError: KMS GenerateDataKey failed with TLSVerificationFailed: the KMS endpoint's "
        "certificate is not trusted"
    )
    assert "CERTIFICATE_VERIFY_FAILED" in status.reason
    assert impostor.tls_handshakes_failed >= 1  # it reached the parent's server, spoke TLS...
    assert impostor.answered == []  # ...and sent it no request
    assert DATA_KEY_BLOB not in parent.blobs
    assert STATE_BLOB not in parent.blobs
