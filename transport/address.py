"""Addresses on the enclave/host link: ``(cid, port)`` in both real and emulated mode.

A context identifier (CID) names a VM on the vsock bus; Nitro gives the parent instance CID 3 as seen
from its enclaves (``VMADDR_CID_HOST`` = 2 is the hypervisor's host in other vsock setups, not the
Nitro parent). Both fields are unsigned 32-bit on the wire (``struct sockaddr_vm``); 0xFFFFFFFF is the
wildcard ``VMADDR_CID_ANY`` / ``VMADDR_PORT_ANY``. The emulated transport maps the same pair to a Unix
socket path, so code above the transport never learns which mode it runs in.
"""

from __future__ import annotations

from dataclasses import dataclass

from transport.errors import AddressError

U32_MAX = 0xFFFFFFFF
ANY_CID = U32_MAX
"""Wildcard CID for listening: "whichever CID this machine has" (``VMADDR_CID_ANY``)."""
ANY_PORT = U32_MAX
"""Wildcard port (``VMADDR_PORT_ANY``); not used by Keyshard, refused where a real port is needed."""
HYPERVISOR_CID = 0
LOCAL_CID = 1
HOST_CID = 2
PARENT_CID = 3
"""The Nitro parent instance, as an enclave addresses it."""
FIRST_ENCLAVE_CID = 4
"""Smallest CID nitro-cli accepts for an enclave (``--enclave-cid``)."""


@dataclass(frozen=True, slots=True)
class VsockAddress:
    """A ``(cid, port)`` pair, validated on construction (both unsigned 32-bit)."""

    cid: int
    port: int

    def __post_init__(self) -> None:
        for field, value in (("cid", self.cid), ("port", self.port)):
            if type(value) is not int:
                raise AddressError(f"{field} must be an int, got {type(value).__name__}")
            if not 0 <= value <= U32_MAX:
                raise AddressError(f"{field} {value} outside 0..{U32_MAX}")

    def __str__(self) -> str:
        cid = "any" if self.cid == ANY_CID else str(self.cid)
        return f"vsock:{cid}:{self.port}"
