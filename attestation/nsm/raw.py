"""The one-method seam between NSM clients and NSM implementations.

Everything above this seam (:class:`~attestation.nsm.client.NsmClient`) speaks typed messages;
everything below it moves CBOR bytes: the ``/dev/nsm`` ioctl driver
(:class:`~attestation.nsm.dev.DevNsm`), the emulated NSM
(:class:`~attestation.nsm.emulated.EmulatedNsm`), or a socket shim that carries the same bytes from
an emulated enclave to the emulated NSM in its "hypervisor". Keeping the seam at bytes means the
real codec runs in every mode, and the emulated device sees exactly what the real one would.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["RawNsm"]


@runtime_checkable
class RawNsm(Protocol):
    """An NSM as the kernel exposes it: one CBOR request in, one CBOR response out."""

    def call(self, request: bytes) -> bytes:
        """Send one CBOR-encoded request and return the CBOR-encoded response.

        Implementations answer NSM-level failures with an ``Error`` response (like the device) and
        raise :class:`~attestation.errors.NsmError` subclasses only when no response exists
        (device unavailable, ioctl failure).
        """
        ...
