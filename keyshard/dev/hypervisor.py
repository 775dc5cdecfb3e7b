"""The emulated hypervisor: it measures an enclave's image and serves that enclave's NSM.

On Nitro, the hypervisor measures the EIF when ``nitro-cli run-enclave`` starts it and the NSM
device inside the enclave answers with documents signed under AWS's PKI. Here,
:class:`NsmHypervisor` plays that role for one emulated enclave: it measures the image directory the
enclave runs from (:func:`attestation.measure.measure_image`), holds an
:class:`~attestation.nsm.emulated.EmulatedNsm` for those PCRs (signing with the emulated CA), and
answers the enclave's :class:`~enclave.nsm_socket.SocketNsm` frames — one CBOR request, one CBOR
response per connection — on the fixed NSM address of that enclave's own vsock bus.

The measurement is taken when the module is first used and re-taken on every new connection: if
the image changed (an enclave restarted from a modified image), a fresh module with the new PCRs
replaces the old one, as a relaunch would. Emulation is not a security boundary: this process holds
the emulated CA key, and anything running as the same user could reach the socket.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from attestation.emulated_ca import EmulatedCa
from attestation.measure import Measurements, measure_image, pcr_map
from attestation.nsm.emulated import EmulatedNsm
from attestation.nsm.messages import MAX_REQUEST_SIZE, MAX_RESPONSE_SIZE
from enclave.image import IMAGE_PACKAGES
from enclave.nsm_socket import EMULATED_NSM_ADDRESS
from transport.address import VsockAddress
from transport.base import Transport
from transport.errors import FramingError
from transport.framing import FramedStream, write_frame

__all__ = ["NsmHypervisor"]

log = logging.getLogger("keyshard.dev.hypervisor")


class NsmHypervisor:
    """Serve the emulated NSM of the enclave whose image lives in ``image_dir``."""

    def __init__(
        self,
        transport: Transport,
        ca: EmulatedCa,
        image_dir: Path,
        *,
        debug: bool = False,
        address: VsockAddress = EMULATED_NSM_ADDRESS,
    ) -> None:
        self._transport = transport
        self._ca = ca
        self._image_dir = image_dir
        self._debug = debug
        self._address = address
        self._measured: Measurements | None = None
        self._nsm: EmulatedNsm | None = None
        self._server: asyncio.AbstractServer | None = None

    def measure(self) -> Measurements:
        return measure_image(self._image_dir, IMAGE_PACKAGES)

    def current_nsm(self) -> EmulatedNsm:
        """The module for the image as it is now (a new one if the image changed)."""
        measured = self.measure()
        if self._nsm is None or measured != self._measured:
            self._nsm = EmulatedNsm(self._ca, pcr_map(measured), debug=self._debug)
            self._measured = measured
            log.info("measured image pcr0=%s debug=%s", measured.pcr0.hex()[:16], self._debug)
        return self._nsm

    async def start(self) -> None:
        self._server = await self._transport.listen(self._address, self._handle)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stream = FramedStream(reader, writer, MAX_REQUEST_SIZE)
        try:
            request = await stream.recv()
            nsm = await asyncio.to_thread(self.current_nsm)
            response = await asyncio.to_thread(nsm.call, request)
            await write_frame(writer, response, MAX_RESPONSE_SIZE)
        except (FramingError, ConnectionError):
            pass
        finally:
            await stream.close()
