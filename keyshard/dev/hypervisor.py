"""The emulated hypervisor: it measures an enclave's image and serves that enclave's NSM.

On Nitro, the hypervisor measures the EIF when ``nitro-cli run-enclave`` starts it and the NSM
device inside the enclave answers with documents signed under AWS's PKI. Here,
:class:`NsmHypervisor` plays that role for one emulated enclave: it measures the image directory the
enclave runs from (:func:`attestation.measure.measure_image`), holds an
:class:`~attestation.nsm.emulated.EmulatedNsm` for those PCRs (signing with the emulated CA), and
answers the enclave's :class:`~enclave.nsm_socket.SocketNsm` frames — one CBOR request, one CBOR
response per connection — on the fixed NSM address of that enclave's own vsock bus.

What runs is described by a :class:`VmSpec` (image directory, debug mode), read from a callable on
every new connection — the emulated ``nitro-cli run-enclave`` arguments. The image is re-measured
each time: if it changed (a node relaunched from a modified image, or in debug mode), a fresh module
with the new PCRs replaces the old one, as a relaunch would. Emulation is not a security boundary: this process holds
the emulated CA key, and anything running as the same user could reach the socket.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
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

__all__ = ["NsmHypervisor", "VmSpec", "read_vm_spec", "write_vm_spec"]

log = logging.getLogger("keyshard.dev.hypervisor")


@dataclass(frozen=True, slots=True)
class VmSpec:
    """What the emulated hypervisor runs for one node: the image directory, and debug mode."""

    image_dir: Path
    debug: bool = False


def write_vm_spec(path: Path, spec: VmSpec) -> None:
    """Persist a node's spec atomically (the cluster writes it before (re)launching the node)."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(
        json.dumps({"image_dir": str(spec.image_dir), "debug": spec.debug}), encoding="utf-8"
    )
    temporary.replace(path)


def read_vm_spec(path: Path) -> VmSpec:
    raw = json.loads(path.read_text(encoding="utf-8"))
    return VmSpec(Path(raw["image_dir"]), bool(raw["debug"]))


class NsmHypervisor:
    """Serve the emulated NSM of one enclave, for the image and mode ``spec()`` names."""

    def __init__(
        self,
        transport: Transport,
        ca: EmulatedCa,
        spec: Callable[[], VmSpec],
        *,
        address: VsockAddress = EMULATED_NSM_ADDRESS,
    ) -> None:
        self._transport = transport
        self._ca = ca
        self._spec = spec
        self._address = address
        self._running: tuple[Measurements, bool] | None = None
        self._nsm: EmulatedNsm | None = None
        self._server: asyncio.AbstractServer | None = None

    def current_nsm(self) -> EmulatedNsm:
        """The module for the image as it is now (a new one if the image or mode changed)."""
        spec = self._spec()
        running = (measure_image(spec.image_dir.resolve(), IMAGE_PACKAGES), spec.debug)
        if self._nsm is None or running != self._running:
            self._nsm = EmulatedNsm(self._ca, pcr_map(running[0]), debug=spec.debug)
            self._running = running
            log.info(
                "measured image",
                extra={
                    "fields": {
                        "event": "image_measured",
                        "pcr0": running[0].pcr0.hex()[:16],
                        "debug": spec.debug,
                    }
                },
            )
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
