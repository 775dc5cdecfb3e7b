"""The /dev/nsm driver, run through a fake device layer that behaves like the kernel: it parses the
``struct nsm_raw`` it is handed, reads the request from the process's memory through the iovec,
writes the response into the response iovec and stores its length back. The driver's real
packing/unpacking code runs; only the three system calls are replaced."""

from __future__ import annotations

import ctypes
import errno
from dataclasses import dataclass, field

import pytest

from attestation.codec import decode_document
from attestation.emulated_ca import EmulatedCa
from attestation.measure import Measurements, pcr_map
from attestation.nsm.client import NsmClient
from attestation.nsm.dev import NSM_IOCTL_MAGIC, NSM_IOCTL_RAW, DevNsm, NsmRaw, OsDevice, ioc
from attestation.nsm.emulated import EmulatedNsm
from attestation.nsm.errors import NsmDeviceError, NsmRefusedError
from attestation.nsm.messages import (
    MAX_REQUEST_SIZE,
    MAX_RESPONSE_SIZE,
    ErrorCode,
    GetRandom,
    encode_request,
)
from attestation.nsm.raw import RawNsm

FAKE_FD = 7


@dataclass
class FakeKernel:
    """A DeviceOs that plays the nsm kernel driver in front of a RawNsm (the emulated NSM)."""

    backend: RawNsm
    opened: list[str] = field(default_factory=list)
    closed: list[int] = field(default_factory=list)
    requests: list[bytes] = field(default_factory=list)
    response_capacity: list[int] = field(default_factory=list)
    fail_open: int | None = None
    fail_ioctl: int | None = None
    report_length: int | None = None

    def open(self, path: str) -> int:
        if self.fail_open is not None:
            raise OSError(self.fail_open, "fake open failure", path)
        self.opened.append(path)
        return FAKE_FD

    def ioctl(self, fd: int, request: int, arg: bytearray) -> None:
        assert fd == FAKE_FD
        assert request == NSM_IOCTL_RAW
        assert len(arg) == ctypes.sizeof(NsmRaw)
        if self.fail_ioctl is not None:
            raise OSError(self.fail_ioctl, "fake ioctl failure")
        raw = NsmRaw.from_buffer(arg)
        request_bytes = ctypes.string_at(raw.request.addr, raw.request.len)
        self.requests.append(request_bytes)
        self.response_capacity.append(raw.response.len)
        response = self.backend.call(request_bytes)
        if len(response) > raw.response.len:
            raise OSError(errno.EMSGSIZE, "response does not fit")
        ctypes.memmove(raw.response.addr, response, len(response))
        raw.response.len = len(response) if self.report_length is None else self.report_length

    def close(self, fd: int) -> None:
        self.closed.append(fd)


@pytest.fixture(scope="module")
def ca() -> EmulatedCa:
    return EmulatedCa.ephemeral()


@pytest.fixture
def kernel(ca: EmulatedCa) -> FakeKernel:
    measured = Measurements(pcr0=b"\x10" * 48, pcr1=b"\x11" * 48, pcr2=b"\x12" * 48)
    return FakeKernel(EmulatedNsm(ca, pcr_map(measured)))


def test_ioctl_number_is_iowr_0x0a_0_with_32_byte_struct() -> None:
    assert ctypes.sizeof(NsmRaw) == 32
    assert NSM_IOCTL_MAGIC == 0x0A
    assert NSM_IOCTL_RAW == 0xC0200A00
    # The macro against a well-known ioctl: FS_IOC_GETFLAGS = _IOR('f', 1, long) on 64-bit.
    assert ioc(2, ord("f"), 1, 8) == 0x80086601
    with pytest.raises(ValueError, match="14 bits"):
        ioc(3, 0x0A, 0, 1 << 14)


def test_struct_layout_is_two_u64_iovecs() -> None:
    raw = NsmRaw()
    raw.request.addr, raw.request.len = 0x1122334455667788, 5
    raw.response.addr, raw.response.len = 0x99AABBCCDDEEFF00, 0x3000
    packed = bytes(raw)
    little = (
        (0x1122334455667788).to_bytes(8, "little")
        + (5).to_bytes(8, "little")
        + (0x99AABBCCDDEEFF00).to_bytes(8, "little")
        + (0x3000).to_bytes(8, "little")
    )
    assert packed == little


def test_driver_passes_request_through_iovec_and_reads_response_back(kernel: FakeKernel) -> None:
    device = DevNsm("/dev/nsm", device=kernel)
    assert kernel.opened == ["/dev/nsm"]
    request = encode_request(GetRandom())
    response = device.call(request)
    assert kernel.requests == [request]
    assert kernel.response_capacity == [MAX_RESPONSE_SIZE]
    assert response.startswith(bytes.fromhex("a16947657452616e646f6d"))
    device.close()
    assert kernel.closed == [FAKE_FD]


def test_client_over_driver_gets_a_real_document(kernel: FakeKernel) -> None:
    with DevNsm(device=kernel) as device:
        client = NsmClient(device)
        document = client.get_attestation_document(
            user_data=b"u" * 512, nonce=b"n", public_key=None
        )
        decoded = decode_document(document)
        assert decoded.payload.user_data == b"u" * 512
        assert decoded.payload.nonce == b"n"
        assert decoded.payload.public_key is None
        assert client.describe_pcr(0).value == b"\x10" * 48
        assert len(client.get_random()) == 256
        with pytest.raises(NsmRefusedError) as info:
            client.extend_pcr(0, b"x")
        assert info.value.code is ErrorCode.READ_ONLY_INDEX
    assert kernel.closed == [FAKE_FD]


def test_open_failure_is_a_device_error_with_errno(kernel: FakeKernel) -> None:
    kernel.fail_open = errno.ENOENT
    with pytest.raises(NsmDeviceError, match="cannot open /dev/nsm") as info:
        DevNsm(device=kernel)
    assert info.value.errno == errno.ENOENT


def test_missing_device_with_the_real_os_layer(tmp_path: object) -> None:
    with pytest.raises(NsmDeviceError) as info:
        DevNsm(f"{tmp_path}/no-such-nsm", device=OsDevice())
    assert info.value.errno == errno.ENOENT


def test_real_os_ioctl_on_a_non_device_fails_typed(tmp_path: object) -> None:
    path = f"{tmp_path}/not-a-device"
    with open(path, "wb"):
        pass
    with DevNsm(path, device=OsDevice()) as device, pytest.raises(NsmDeviceError) as info:
        device.call(encode_request(GetRandom()))
    assert info.value.errno == errno.ENOTTY


def test_ioctl_failure_is_a_device_error_with_errno(kernel: FakeKernel) -> None:
    kernel.fail_ioctl = errno.EMSGSIZE
    with DevNsm(device=kernel) as device, pytest.raises(NsmDeviceError) as info:
        device.call(encode_request(GetRandom()))
    assert info.value.errno == errno.EMSGSIZE


@pytest.mark.parametrize("length", [0, MAX_RESPONSE_SIZE + 1])
def test_impossible_response_length_is_refused(kernel: FakeKernel, length: int) -> None:
    kernel.report_length = length
    with DevNsm(device=kernel) as device, pytest.raises(NsmDeviceError, match="impossible"):
        device.call(encode_request(GetRandom()))


def test_oversize_and_empty_requests_never_reach_the_device(kernel: FakeKernel) -> None:
    with DevNsm(device=kernel) as device:
        with pytest.raises(NsmDeviceError) as info:
            device.call(b"\x00" * (MAX_REQUEST_SIZE + 1))
        assert info.value.errno == errno.EMSGSIZE
        with pytest.raises(NsmDeviceError) as info:
            device.call(b"")
        assert info.value.errno == errno.EINVAL
    assert kernel.requests == []


def test_calls_after_close_fail_and_close_is_idempotent(kernel: FakeKernel) -> None:
    device = DevNsm(device=kernel)
    device.close()
    device.close()
    assert kernel.closed == [FAKE_FD]
    with pytest.raises(NsmDeviceError, match="closed"):
        device.call(encode_request(GetRandom()))


def test_device_refusal_of_a_request_maps_to_an_error_code(kernel: FakeKernel) -> None:
    """The emulated device answers garbage with InvalidArgument; the driver returns it unchanged."""
    with DevNsm(device=kernel) as device:
        response = device.call(b"\xa0")
    assert response == bytes.fromhex("a1654572726f726f496e76616c6964417267756d656e74")
