"""Issue 9 item 3: the emulated KMS's dev CA is part of the measured image, and only it is trusted.

The boot-level attack (a parent routing KMS to its own server) is in ``test_enclave_boot.py``;
here: the CA is a field of the measured ``image.json`` (another CA, another PCR0), the image refuses
anything but one CA certificate, each mode's route trusts exactly its own authority, and the enclave's
boto3 verifies the emulated KMS against that CA — through the CONNECT tunnel, end to end.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from enclave_harness import REGION, short_tmpdir

from attestation.emulated_ca import EmulatedCa
from attestation.roots import TrustedRoots
from attestation.verifier import AttestationVerifier
from enclave.config import KMS_PROXY_PORT, ImageConfig, LaunchConfig, Mode, select_seams
from enclave.errors import ConfigError, KmsError
from enclave.kms import EnclaveKms, StaticCredentials, _sealed_memfd
from enclave.kms_tunnel import KmsTunnel
from keyshard.dev.image import build_image
from keyshard.dev.kms_server import KmsServer, start_kms_server
from keyshard.dev.kms_tls import KmsTls, issue_kms_tls, server_context
from transport.address import PARENT_CID, VsockAddress
from transport.pump import splice
from transport.unix import UnixSocketTransport

ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ROOT = EmulatedCa.ephemeral().root_certificate.public_bytes(serialization.Encoding.PEM)
CREDENTIALS = StaticCredentials("AKIANODE", "emulated", "")


@pytest.fixture(scope="module")
def tls() -> Iterator[KmsTls]:
    with short_tmpdir() as directory:
        yield issue_kms_tls(directory / "kms-tls", [REGION])


@pytest.fixture(scope="module")
def other_tls() -> Iterator[KmsTls]:
    with short_tmpdir() as directory:
        yield issue_kms_tls(directory / "kms-tls", [REGION])


def image(kms_ca_pem: bytes | None) -> ImageConfig:
    return ImageConfig(ROOT, {"node-1": ARN}, kms_ca_pem=kms_ca_pem)


def test_the_kms_ca_is_measured(tmp_path: Path, tls: KmsTls, other_tls: KmsTls) -> None:
    """Issue 9 item 3: the dev CA is inside what is measured, so another CA is another PCR0."""
    ours = build_image(tmp_path / "ours", image(tls.ca_pem))
    theirs = build_image(tmp_path / "theirs", image(other_tls.ca_pem))
    assert ours.measurements.pcr0 != theirs.measurements.pcr0
    assert ImageConfig.load(ours.root).kms_ca_pem == tls.ca_pem


def test_image_json_round_trips_the_kms_ca_and_omits_it_when_absent(
    tmp_path: Path, tls: KmsTls
) -> None:
    with_ca = image(tls.ca_pem)
    (tmp_path / "enclave").mkdir()
    (tmp_path / "enclave" / "image.json").write_text(with_ca.to_json())
    assert ImageConfig.load(tmp_path) == with_ca
    # A Nitro image has none, and its image.json keeps the bytes it had before the field existed.
    assert "kms_ca_pem" not in json.loads(image(None).to_json())


@pytest.mark.parametrize(
    ("pem", "reason"),
    [
        (b"not a certificate", "not a PEM X.509 certificate"),
        (None, "exactly one certificate"),  # two CAs
        (b"leaf", "is not a CA certificate"),  # the server's own certificate
    ],
)
def test_the_image_refuses_anything_but_one_ca_certificate(
    tls: KmsTls, other_tls: KmsTls, pem: bytes | None, reason: str
) -> None:
    if pem is None:
        pem = tls.ca_pem + other_tls.ca_pem
    elif pem == b"leaf":
        pem = tls.cert_file.read_bytes()
    with pytest.raises(ConfigError) as info:
        image(pem)
    assert info.value.field == "kms_ca_pem"
    assert reason in str(info.value)


def test_each_mode_trusts_only_its_own_kms_authority(tls: KmsTls) -> None:
    emulated = select_seams(LaunchConfig(Mode.EMULATED, 16, Path("/tmp/ks-run")))
    assert emulated.kms_route(REGION, tls.ca_pem).ca_pem == tls.ca_pem
    with pytest.raises(ConfigError) as info:
        emulated.kms_route(REGION, None)  # no plain-HTTP route any more
    assert info.value.field == "kms_ca_pem"
    nitro = dataclasses.replace(emulated, public_kms=True)  # what select_seams gives on Nitro
    assert nitro.kms_route(REGION, None).ca_pem is None  # AWS's certificate, default bundle
    with pytest.raises(ConfigError) as info:
        nitro.kms_route(REGION, tls.ca_pem)  # a dev CA never vouches for AWS's host name
    assert info.value.field == "kms_ca_pem"


def test_the_ca_bundle_is_an_immutable_in_memory_file(tls: KmsTls) -> None:
    descriptor = _sealed_memfd("test-ca", tls.ca_pem)
    try:
        path = f"/proc/self/fd/{descriptor}"
        assert Path(path).read_bytes() == tls.ca_pem
        writer = os.open(path, os.O_WRONLY)
        try:
            # Sealed: nobody (not the parent, in emulation the same user) can swap the CA later.
            with pytest.raises(PermissionError) as info:
                os.write(writer, b"-----BEGIN CERTIFICATE-----")
            assert info.value.errno == errno.EPERM
            with pytest.raises(PermissionError):
                os.ftruncate(writer, 0)
        finally:
            os.close(writer)
        assert Path(path).read_bytes() == tls.ca_pem
    finally:
        os.close(descriptor)


def _through_the_tunnel(rundir: Path, kms: KmsServer, ca_pem: bytes) -> str:
    """Call KMS from an EnclaveKms the way the boot does: CONNECT tunnel -> parent -> KMS.

    Returns the error (the document is not one: reaching KMS at all is what counts)."""

    async def scenario() -> str:
        transport = UnixSocketTransport(rundir)
        port = int(kms.endpoint_url.rsplit(":", 1)[1])

        async def parent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
            await splice(reader, writer, up_reader, up_writer, idle_timeout=10)

        server = await transport.listen(VsockAddress(PARENT_CID, KMS_PROXY_PORT), parent)
        route = select_seams(LaunchConfig(Mode.EMULATED, 16, rundir)).kms_route(REGION, ca_pem)
        tunnel = KmsTunnel(
            UnixSocketTransport(rundir, local_cid=16),
            VsockAddress(PARENT_CID, KMS_PROXY_PORT),
            connect_target=route.connect_target,
        )
        tunnel_port = await tunnel.start()
        client = EnclaveKms(
            route.endpoint_url(tunnel_port),
            REGION,
            CREDENTIALS,
            proxy_url=route.proxy_url(tunnel_port),
            ca_pem=route.ca_pem,
            timeout=5,
        )
        try:
            with pytest.raises(KmsError) as info:
                await asyncio.to_thread(client.decrypt, ARN, "node-1", b"blob", b"document")
            return info.value.code + ": " + str(info.value)
        finally:
            client.close()
            await tunnel.close()
            server.close()
            await server.wait_closed()

    return asyncio.run(scenario())


def test_the_enclave_verifies_the_emulated_kms_against_the_measured_ca(
    tls: KmsTls, other_tls: KmsTls
) -> None:
    verifier = AttestationVerifier(TrustedRoots.of([EmulatedCa.ephemeral().root_certificate]))
    with (
        start_kms_server(verifier, {"AKIANODE": ARN}, tls=server_context(tls)) as kms,
        short_tmpdir() as rundir,
    ):
        # The image's CA: TLS verifies end to end and KMS answers (the document is not one).
        reached = _through_the_tunnel(rundir, kms, tls.ca_pem)
        assert reached.startswith("ValidationException: KMS Decrypt failed with")
        assert "Invalid attestation document" in reached
        # Any other CA, or AWS's bundle: the handshake fails inside the enclave.
        refused = _through_the_tunnel(rundir, kms, other_tls.ca_pem)
        assert refused.startswith("TLSVerificationFailed")
        assert "CERTIFICATE_VERIFY_FAILED" in refused
