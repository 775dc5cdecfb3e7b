"""The emulated NSM link: SocketNsm (enclave side) to NsmHypervisor (the emulated hypervisor)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from enclave_harness import short_tmpdir

from attestation.codec import decode_document
from attestation.emulated_ca import EmulatedCa
from attestation.nsm.client import NsmClient
from attestation.nsm.errors import NsmDeviceError
from attestation.nsm.messages import MAX_REQUEST_SIZE
from enclave.config import ImageConfig
from enclave.nsm_socket import SocketNsm
from keyshard.dev.hypervisor import NsmHypervisor, VmSpec, read_vm_spec, write_vm_spec
from keyshard.dev.image import build_image
from transport.unix import UnixSocketTransport


@pytest.fixture
def workdir() -> Iterator[Path]:
    with short_tmpdir() as path:
        yield path


class Hypervisor:
    """Runs an NsmHypervisor on its own event loop thread while the test calls SocketNsm."""

    def __init__(self, hypervisor: NsmHypervisor) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.hypervisor = hypervisor

    def __enter__(self) -> Hypervisor:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.hypervisor.start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.hypervisor.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


def test_documents_over_the_socket_reflect_the_current_image(workdir: Path) -> None:
    ca = EmulatedCa.ephemeral()
    root = ca.root_certificate.public_bytes(serialization.Encoding.PEM)
    config = ImageConfig(
        root, {"n1": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"}
    )
    image = build_image(workdir / "image", config)
    spec_file = workdir / "vm.json"
    write_vm_spec(spec_file, VmSpec(image.root))
    assert read_vm_spec(spec_file) == VmSpec(image.root, False)
    run = workdir / "run"
    hypervisor = NsmHypervisor(UnixSocketTransport(run), ca, lambda: read_vm_spec(spec_file))
    client = NsmClient(SocketNsm(UnixSocketTransport(run, local_cid=16)))
    with Hypervisor(hypervisor):
        first = decode_document(client.get_attestation_document(nonce=b"1" * 8)).payload
        assert first.pcrs[0] == image.measurements.pcr0
        assert first.nonce == b"1" * 8
        # One changed byte in the image: the next document carries a different PCR0 (and PCR2).
        target = image.root / "enclave" / "sealing.py"
        target.write_bytes(target.read_bytes().replace(b"AES-256-GCM", b"AES-256-GCm", 1))
        second = decode_document(client.get_attestation_document()).payload
        assert second.pcrs[0] != first.pcrs[0]
        assert second.pcrs[2] != first.pcrs[2]
        assert second.pcrs[1] == first.pcrs[1]
        write_vm_spec(spec_file, VmSpec(image.root, debug=True))
        debug = decode_document(client.get_attestation_document()).payload
        assert debug.is_debug_mode


def test_unreachable_or_oversize_is_a_device_error(workdir: Path) -> None:
    nsm = SocketNsm(UnixSocketTransport(workdir, local_cid=16), timeout=2)
    with pytest.raises(NsmDeviceError):
        nsm.call(b"\xa0")
    with pytest.raises(NsmDeviceError):
        nsm.call(b"x" * (MAX_REQUEST_SIZE + 1))
