"""Launch and image configuration, and the one place that selects each mode's seams."""

from __future__ import annotations

import asyncio
import ctypes
import json
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


ARN2 = "arn:aws:kms:eu-west-1:210987654321:key/abcd1234-12ab-34cd-56ef-1234567890ab"


def args(**overrides: str) -> list[str]:
    values = {"--mode": "emulated", "--cid": "16", "--runtime-dir": "/tmp/ks-run"}
    values.update(overrides)
    return [item for pair in values.items() for item in pair if pair[1] != ""]


def table_image(max_document_age_seconds: int = 300) -> ImageConfig:
    return ImageConfig(PEM.encode(), {"node-1": ARN, "node-2": ARN2}, max_document_age_seconds)


def test_parse_launch_args() -> None:
    assert parse_launch_args(args()) == LaunchConfig(Mode.EMULATED, 16, Path("/tmp/ks-run"))
    # The Nitro EIF's fixed command line: the same on every node, nothing per-node in it.
    assert parse_launch_args(["--mode", "nitro"]) == LaunchConfig(Mode.NITRO, 16)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"--cid": "3"}, "cid"),
        ({"--runtime-dir": ""}, "runtime_dir"),
        ({"--mode": "nitro"}, "runtime_dir"),
        ({"--mode": "bogus"}, "argv"),
        ({"--cid": "x"}, "argv"),
        ({"--node-id": "node-1"}, "argv"),  # the node id comes from the parent at boot
        ({"--kms-key-id": ARN}, "argv"),  # and the key from the image's table, never argv
    ],
)
def test_bad_launch_args_are_refused_naming_the_field(
    overrides: dict[str, str], field: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_launch_args(args(**overrides))
    assert info.value.field == field


def test_the_table_gives_each_node_its_own_key_and_region() -> None:
    image = table_image()
    assert list(image.nodes) == ["node-1", "node-2"]
    one, two = image.node_key("node-1"), image.node_key("node-2")
    assert (one.kms_key_arn, one.region) == (ARN, "us-east-1")
    assert (two.kms_key_arn, two.region) == (ARN2, "eu-west-1")


@pytest.mark.parametrize("claimed", ["node-3", "", "NODE-1", "node-1 "])
def test_a_node_id_outside_the_table_is_refused(claimed: str) -> None:
    with pytest.raises(ConfigError) as info:
        table_image().node_key(claimed)
    assert info.value.field == "node_id"
    assert str(info.value).endswith("is not in the image's cluster table (node-1, node-2)")


@pytest.mark.parametrize(
    ("nodes", "field"),
    [
        ({}, "nodes"),
        ({"../x": ARN}, "node_id"),
        ({"node-1": "arn:aws:kms:us-east-1:123456789012:alias/x"}, "nodes.node-1"),
        ({"node-1": "arn:aws:kms:us-east-1:*:key/x"}, "nodes.node-1"),
        ({"node-1": ARN + ":extra"}, "nodes.node-1"),
    ],
)
def test_bad_tables_are_refused(nodes: dict[str, str], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        ImageConfig(PEM.encode(), nodes)
    assert info.value.field == field


def _write(tmp_path: Path, text: str) -> None:
    (tmp_path / "enclave").mkdir(exist_ok=True)
    (tmp_path / "enclave" / "image.json").write_text(text)


def test_image_config_roundtrip_and_refusals(tmp_path: Path) -> None:
    image = table_image(max_document_age_seconds=120)
    _write(tmp_path, image.to_json())
    assert ImageConfig.load(tmp_path) == image
    assert json.loads(image.to_json())["format"] == 2
    _write(tmp_path, '{"kms_key_arn_prefix": "x"}')
    with pytest.raises(ConfigError) as info:
        ImageConfig.load(tmp_path)
    assert info.value.field == "format"
    assert "format 1" in str(info.value)
    document = json.loads(image.to_json())
    for change, culprit in [
        ({"format": 3}, "format"),
        ({"format": "2"}, "format"),
        ({"launch": {"node_id": "node-1"}}, "image.json"),
        ({"nodes": ["node-1"]}, "nodes"),
        ({"max_document_age_seconds": 0}, "max_document_age_seconds"),
    ]:
        _write(tmp_path, json.dumps({**document, **change}))
        with pytest.raises(ConfigError) as info:
            ImageConfig.load(tmp_path)
        assert info.value.field == culprit, change
    broken = image.to_json().replace("MII", "XYZ", 1)
    _write(tmp_path, broken)
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
    # The same route as Nitro's (TLS to the region's KMS host through CONNECT); only the CA it
    # trusts differs: the emulated KMS's, from the measured image (tests/enclave/test_enclave_kms_ca.py).
    route = seams.kms_route("eu-west-1", PEM.encode())
    assert route.endpoint_url(4321) == "https://kms.eu-west-1.amazonaws.com"
    assert route.proxy_url(4321) == "http://127.0.0.1:4321"
    assert route.connect_target == ("kms.eu-west-1.amazonaws.com", 443)
    assert route.ca_pem == PEM.encode()


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
    # The region is the named node's key's: one image serves nodes in several regions.
    route = seams.kms_route("eu-west-1", None)
    assert route.endpoint_url(4321) == "https://kms.eu-west-1.amazonaws.com"
    assert route.proxy_url(4321) == "http://127.0.0.1:4321"
    assert route.connect_target == ("kms.eu-west-1.amazonaws.com", 443)
    assert route.ca_pem is None  # AWS's certificate, through botocore's default bundle
    with pytest.raises(ConfigError) as info:
        seams.kms_route("moon", None)
    assert info.value.field == "region"


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
