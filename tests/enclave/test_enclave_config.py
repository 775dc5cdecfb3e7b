"""Launch and image configuration, and the one place that selects each mode's seams."""

from __future__ import annotations

import asyncio
import ctypes
import socket
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from attestation.codec import decode_document
from attestation.emulated_ca import EmulatedCa
from attestation.measure import measure_image, pcr_map
from attestation.nsm.client import NsmClient
from attestation.nsm.dev import NSM_IOCTL_RAW, DevNsm, NsmRaw
from attestation.nsm.emulated import EmulatedNsm
from attestation.nsm.errors import NsmDeviceError
from enclave.config import ImageConfig, LaunchConfig, Mode, parse_launch_args, select_seams
from enclave.errors import ConfigError
from enclave.image import image_root
from enclave.nsm_socket import SocketNsm
from transport.address import PARENT_CID, VsockAddress
from transport.unix import UnixSocketTransport
from transport.vsock import VsockTransport

ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
PEM = EmulatedCa.ephemeral().root_certificate.public_bytes(serialization.Encoding.PEM).decode()


def args(**overrides: str) -> list[str]:
    values = {
        "--mode": "emulated",
        "--node-id": "node-1",
        "--kms-key-id": ARN,
        "--region": "us-east-1",
        "--cid": "16",
        "--runtime-dir": "/tmp/ks-run",
    }
    values.update(overrides)
    return [item for pair in values.items() for item in pair if pair[1] != ""]


def test_parse_launch_args() -> None:
    config = parse_launch_args(args())
    assert config == LaunchConfig(
        Mode.EMULATED, "node-1", ARN, "us-east-1", 16, Path("/tmp/ks-run")
    )


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"--node-id": "../etc"}, "node_id"),
        ({"--region": "moon"}, "region"),
        ({"--cid": "3"}, "cid"),
        ({"--runtime-dir": ""}, "runtime_dir"),
        ({"--mode": "nitro"}, "runtime_dir"),
        ({"--mode": "bogus"}, "argv"),
        ({"--cid": "x"}, "argv"),
        ({"--node-id": ""}, "node_id"),
    ],
)
def test_bad_launch_args_are_refused_naming_the_field(
    overrides: dict[str, str], field: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_launch_args(args(**overrides))
    assert info.value.field == field


def test_missing_arguments_come_from_the_image_launch_section() -> None:
    baked: dict[str, str | int] = {
        "node_id": "node-9",
        "kms_key_id": ARN,
        "region": "us-east-1",
        "cid": 20,
    }
    config = parse_launch_args(["--mode", "nitro"], baked)
    assert config == LaunchConfig(Mode.NITRO, "node-9", ARN, "us-east-1", 20)
    assert parse_launch_args(["--mode", "nitro", "--cid", "21"], baked).cid == 21
    with pytest.raises(ConfigError) as info:
        parse_launch_args(["--mode", "nitro"], {"node_id": "n"})
    assert info.value.field == "kms_key_id"
    with pytest.raises(ConfigError) as info:
        parse_launch_args(["--mode", "nitro"], {**baked, "cid": "20"})
    assert info.value.field == "cid"


def test_key_outside_the_trusted_account_is_refused() -> None:
    image = ImageConfig("arn:aws:kms:us-east-1:123456789012:key/", PEM.encode())
    parse_launch_args(args()).check_against(image)
    attacker = ARN.replace("123456789012", "999999999999")
    with pytest.raises(ConfigError) as info:
        parse_launch_args(args(**{"--kms-key-id": attacker})).check_against(image)
    assert info.value.field == "kms_key_id"


def test_image_config_roundtrip_and_refusals(tmp_path: Path) -> None:
    image = ImageConfig(
        "arn:aws:kms:us-east-1:123456789012:key/", PEM.encode(), 120, {"region": "us-east-1"}
    )
    (tmp_path / "enclave").mkdir()
    (tmp_path / "enclave" / "image.json").write_text(image.to_json())
    assert ImageConfig.load(tmp_path) == image
    (tmp_path / "enclave" / "image.json").write_text('{"kms_key_arn_prefix": "x"}')
    with pytest.raises(ConfigError):
        ImageConfig.load(tmp_path)
    broken = image.to_json().replace("MII", "XYZ", 1)
    (tmp_path / "enclave" / "image.json").write_text(broken)
    with pytest.raises(ConfigError) as info:
        ImageConfig.load(tmp_path)
    assert info.value.field == "attestation_root_pem"
    (tmp_path / "enclave" / "image.json").unlink()
    with pytest.raises(ConfigError) as info:
        ImageConfig.load(tmp_path)
    assert info.value.field == "image.json"


def test_the_development_tree_is_not_an_image() -> None:
    # The checkout has no image.json: an enclave started from it refuses to run (fail closed).
    with pytest.raises(ConfigError):
        ImageConfig.load(image_root())


def test_emulated_seams() -> None:
    seams = select_seams(parse_launch_args(args()))
    assert isinstance(seams.transport, UnixSocketTransport)
    assert isinstance(seams.nsm, SocketNsm)
    assert seams.kms.endpoint_url(4321) == "http://127.0.0.1:4321"
    assert seams.kms.proxy_url(4321) is None
    assert seams.kms.connect_target is None


@dataclass
class FakeKernel:
    """The /dev/nsm system boundary: the real driver's ioctl struct, answered by an emulated NSM."""

    backend: EmulatedNsm
    opened: list[str] = field(default_factory=list)

    def open(self, path: str) -> int:
        self.opened.append(path)
        return 5

    def ioctl(self, fd: int, request: int, arg: bytearray) -> None:
        assert request == NSM_IOCTL_RAW
        raw = NsmRaw.from_buffer(arg)
        response = self.backend.call(ctypes.string_at(raw.request.addr, raw.request.len))
        ctypes.memmove(raw.response.addr, response, len(response))
        raw.response.len = len(response)

    def close(self, fd: int) -> None:
        pass


class RecordingSocketFactory:
    """The AF_VSOCK system boundary: records what the transport asks the kernel for."""

    def __init__(self) -> None:
        self.families: list[int] = []

    def __call__(self, family: int, kind: int) -> socket.socket:
        self.families.append(family)
        raise OSError(97, "address family not supported here")


def test_nitro_seams_use_dev_nsm_and_vsock_at_the_system_boundary() -> None:
    ca = EmulatedCa.ephemeral()
    pcrs = pcr_map(measure_image(image_root()))
    kernel = FakeKernel(EmulatedNsm(ca, pcrs))
    factory = RecordingSocketFactory()
    launch = parse_launch_args(args(**{"--mode": "nitro", "--runtime-dir": ""}))
    seams = select_seams(launch, nsm_device=kernel, vsock_socket_factory=factory)

    assert isinstance(seams.nsm, DevNsm)
    assert kernel.opened == ["/dev/nsm"]
    document = NsmClient(seams.nsm).get_attestation_document(nonce=b"n" * 16)
    assert decode_document(document).payload.pcrs[0] == pcrs[0]

    assert isinstance(seams.transport, VsockTransport)
    with pytest.raises(OSError):
        asyncio.run(seams.transport.connect(VsockAddress(PARENT_CID, 9000)))
    assert factory.families == [socket.AF_VSOCK]
    assert seams.kms.endpoint_url(4321) == "https://kms.us-east-1.amazonaws.com"
    assert seams.kms.proxy_url(4321) == "http://127.0.0.1:4321"
    assert seams.kms.connect_target == ("kms.us-east-1.amazonaws.com", 443)


def test_nitro_mode_without_the_device_fails_typed() -> None:
    class Missing:
        def open(self, path: str) -> int:
            raise FileNotFoundError(2, "No such file or directory", path)

        def ioctl(self, fd: int, request: int, arg: bytearray) -> None:
            raise AssertionError

        def close(self, fd: int) -> None:
            raise AssertionError

    launch = parse_launch_args(args(**{"--mode": "nitro", "--runtime-dir": ""}))
    with pytest.raises(NsmDeviceError):
        select_seams(launch, nsm_device=Missing())
