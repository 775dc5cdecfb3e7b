"""The real NSM driver: CBOR over ``ioctl(2)`` on ``/dev/nsm``.

The Linux ``nsm`` driver (``include/uapi/linux/nsm.h``) takes one ioctl, ``NSM_IOCTL_RAW``, whose
argument is ``struct nsm_raw``::

    struct nsm_iovec { __u64 addr; __u64 len; };      /* a user-space buffer */
    struct nsm_raw   { struct nsm_iovec request;       /* CBOR request, at most 0x1000 bytes */
                       struct nsm_iovec response; };   /* buffer for the CBOR response */

32 bytes on every architecture (the fields are fixed-width ``__u64``, matching ``struct iovec`` on
64-bit). The kernel copies the request in, forwards it to the NSM over virtio, writes the response
into the response buffer and stores its length back into ``response.len`` (it copies the whole
struct back to user space). The raw ioctl needs ``CAP_SYS_ADMIN`` inside the enclave; a request over
``NSM_REQUEST_MAX_SIZE`` is refused here, before the kernel would answer ``EMSGSIZE``.

The ioctl number is ``_IOWR(0x0A, 0, struct nsm_raw)``. With the generic ``_IOC`` layout used by
x86-64 and arm64 (the only Nitro architectures) -- ``dir << 30 | size << 16 | type << 8 | nr``,
``_IOC_WRITE = 1``, ``_IOC_READ = 2`` -- that is ``3 << 30 | 32 << 16 | 0x0A << 8 | 0 =
0xC0200A00``. :data:`NSM_IOCTL_RAW` is computed from that macro, not written as a literal.

The OS calls sit behind :class:`DeviceOs` so tests can run the real packing and unpacking code
against a fake device that reads the ``nsm_raw`` struct and the request bytes from process memory
(via ``ctypes``), exactly as the kernel would.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import threading
from types import TracebackType
from typing import Protocol

from attestation.nsm.errors import NsmDeviceError
from attestation.nsm.messages import MAX_REQUEST_SIZE, MAX_RESPONSE_SIZE

__all__ = [
    "NSM_DEVICE",
    "NSM_IOCTL_MAGIC",
    "NSM_IOCTL_RAW",
    "DevNsm",
    "DeviceOs",
    "NsmIovec",
    "NsmRaw",
    "OsDevice",
    "ioc",
]

NSM_DEVICE = "/dev/nsm"
NSM_IOCTL_MAGIC = 0x0A

# Linux asm-generic/ioctl.h
_IOC_NRSHIFT = 0
_IOC_TYPESHIFT = 8
_IOC_SIZESHIFT = 16
_IOC_DIRSHIFT = 30
_IOC_SIZEMASK = (1 << 14) - 1
_IOC_WRITE = 1
_IOC_READ = 2


def ioc(direction: int, ioctl_type: int, number: int, size: int) -> int:
    """The kernel's ``_IOC(dir, type, nr, size)`` macro (generic layout: x86-64, arm64)."""
    if not 0 <= size <= _IOC_SIZEMASK:
        raise ValueError(f"ioctl argument size {size} does not fit in 14 bits")
    return (
        (direction << _IOC_DIRSHIFT)
        | (size << _IOC_SIZESHIFT)
        | (ioctl_type << _IOC_TYPESHIFT)
        | (number << _IOC_NRSHIFT)
    )


class NsmIovec(ctypes.Structure):
    """``struct nsm_iovec``: address and length of a user-space buffer."""

    _fields_ = (("addr", ctypes.c_uint64), ("len", ctypes.c_uint64))


class NsmRaw(ctypes.Structure):
    """``struct nsm_raw``: the request and response buffers of one NSM call."""

    _fields_ = (("request", NsmIovec), ("response", NsmIovec))


#: ``_IOWR(NSM_MAGIC, 0, struct nsm_raw)`` == 0xC0200A00.
NSM_IOCTL_RAW = ioc(_IOC_READ | _IOC_WRITE, NSM_IOCTL_MAGIC, 0, ctypes.sizeof(NsmRaw))


class DeviceOs(Protocol):
    """The three system calls the driver needs; the seam tests replace with a fake device."""

    def open(self, path: str) -> int:
        """Open the device read-write; return a file descriptor."""
        ...

    def ioctl(self, fd: int, request: int, arg: bytearray) -> None:
        """Issue ``ioctl(fd, request, arg)``; the kernel may write into ``arg``. Raise OSError."""
        ...

    def close(self, fd: int) -> None:
        """Close the descriptor."""
        ...


class OsDevice:
    """The real system calls."""

    def open(self, path: str) -> int:
        return os.open(path, os.O_RDWR | os.O_CLOEXEC)

    def ioctl(self, fd: int, request: int, arg: bytearray) -> None:
        fcntl.ioctl(fd, request, arg, True)

    def close(self, fd: int) -> None:
        os.close(fd)


class DevNsm:
    """:class:`~attestation.nsm.raw.RawNsm` over the ``/dev/nsm`` character device.

    One descriptor per instance, calls serialised by a lock (the device processes one request at a
    time anyway). Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, path: str = NSM_DEVICE, device: DeviceOs | None = None) -> None:
        self._os: DeviceOs = device if device is not None else OsDevice()
        self._lock = threading.Lock()
        try:
            self._fd: int | None = self._os.open(path)
        except OSError as exc:
            raise NsmDeviceError(f"cannot open {path}: {exc.strerror}", exc.errno) from None

    def call(self, request: bytes) -> bytes:
        """One request/response exchange through ``NSM_IOCTL_RAW``."""
        if not request:
            raise NsmDeviceError("empty request", errno.EINVAL)
        if len(request) > MAX_REQUEST_SIZE:
            raise NsmDeviceError(
                f"request is {len(request)} bytes, over the driver's {MAX_REQUEST_SIZE}",
                errno.EMSGSIZE,
            )
        # The buffers must stay alive (and in place) until the ioctl returns: keep references.
        request_buffer = (ctypes.c_char * len(request)).from_buffer_copy(request)
        response_buffer = (ctypes.c_char * MAX_RESPONSE_SIZE)()
        raw = NsmRaw(
            NsmIovec(ctypes.addressof(request_buffer), len(request)),
            NsmIovec(ctypes.addressof(response_buffer), MAX_RESPONSE_SIZE),
        )
        arg = bytearray(bytes(raw))
        with self._lock:
            if self._fd is None:
                raise NsmDeviceError("device is closed")
            try:
                self._os.ioctl(self._fd, NSM_IOCTL_RAW, arg)
            except OSError as exc:
                raise NsmDeviceError(f"NSM ioctl failed: {exc.strerror}", exc.errno) from None
        length = NsmRaw.from_buffer_copy(arg).response.len
        if not 0 < length <= MAX_RESPONSE_SIZE:
            raise NsmDeviceError(f"device reported an impossible response length {length}")
        return response_buffer.raw[:length]

    def close(self) -> None:
        """Close the device; later calls raise :class:`NsmDeviceError`."""
        with self._lock:
            if self._fd is not None:
                fd, self._fd = self._fd, None
                self._os.close(fd)

    def __enter__(self) -> DevNsm:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
