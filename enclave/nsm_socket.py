"""The emulated enclave's NSM: the same CBOR request bytes, carried over the transport.

In real mode the enclave's :class:`~attestation.nsm.raw.RawNsm` is ``/dev/nsm`` (an ioctl into the
Nitro hypervisor). In emulated mode there is no device, so :class:`SocketNsm` sends each request as
one frame to the emulated hypervisor, which answers with one frame holding the emulated NSM's CBOR
response (``keyshard.dev.hypervisor`` serves it). The bytes and the codec above the seam are the
same in both modes; only where the bytes go differs.

The address is fixed: :data:`EMULATED_NSM_ADDRESS`, the hypervisor's CID on the enclave's own
(emulated) vsock bus. Every node has its own bus (runtime directory), so only that enclave's
hypervisor answers there. Emulation is not a security boundary: the parent runs as the same user and
could reach that socket too; the real NSM is reachable only from inside the enclave.

``call`` is synchronous like the device's ioctl; it runs its own short event loop and must therefore
be called off the enclave's event loop (``asyncio.to_thread``), exactly like ``DevNsm.call``.
"""

from __future__ import annotations

import asyncio

from attestation.nsm.errors import NsmDeviceError
from attestation.nsm.messages import MAX_REQUEST_SIZE, MAX_RESPONSE_SIZE
from transport.address import HYPERVISOR_CID, VsockAddress
from transport.base import Transport
from transport.errors import FramingError
from transport.framing import FramedStream

__all__ = ["EMULATED_NSM_ADDRESS", "EMULATED_NSM_PORT", "SocketNsm"]

EMULATED_NSM_PORT = 9100
EMULATED_NSM_ADDRESS = VsockAddress(HYPERVISOR_CID, EMULATED_NSM_PORT)
#: Frames larger than the device's response buffer cannot be a genuine NSM answer.
MAX_NSM_FRAME = MAX_RESPONSE_SIZE


class SocketNsm:
    """A :class:`~attestation.nsm.raw.RawNsm` that reaches the emulated NSM over the transport."""

    def __init__(
        self,
        transport: Transport,
        address: VsockAddress = EMULATED_NSM_ADDRESS,
        *,
        timeout: float = 10.0,
    ) -> None:
        self._transport = transport
        self._address = address
        self._timeout = timeout

    def call(self, request: bytes) -> bytes:
        if len(request) > MAX_REQUEST_SIZE:
            raise NsmDeviceError("request exceeds the NSM request size limit")
        try:
            return asyncio.run(asyncio.wait_for(self._exchange(request), self._timeout))
        except (OSError, FramingError, TimeoutError) as error:
            raise NsmDeviceError(
                f"emulated NSM at {self._address} unreachable: {type(error).__name__}"
            ) from None

    async def _exchange(self, request: bytes) -> bytes:
        reader, writer = await self._transport.connect(self._address)
        stream = FramedStream(reader, writer, MAX_NSM_FRAME)
        try:
            await stream.send(request)
            return await stream.recv()
        finally:
            await stream.close()
