"""The NSM interface: typed messages, one byte-level seam, the real driver and the emulated NSM.

- :mod:`.messages` -- closed request/response types and their strict CBOR codec (AWS's nsm-api shapes)
- :mod:`.raw` -- :class:`RawNsm`, the one-method seam (CBOR bytes in, CBOR bytes out)
- :mod:`.dev` -- :class:`DevNsm`, the ``/dev/nsm`` ioctl driver (real enclaves)
- :mod:`.emulated` -- :class:`EmulatedNsm`, the in-process NSM signing with the emulated CA
- :mod:`.client` -- :class:`NsmClient`, typed operations over any :class:`RawNsm`
"""

from __future__ import annotations

from attestation.nsm.client import NsmClient, PcrState
from attestation.nsm.dev import NSM_DEVICE, NSM_IOCTL_RAW, DeviceOs, DevNsm, OsDevice
from attestation.nsm.emulated import EmulatedNsm
from attestation.nsm.errors import (
    NsmDeviceError,
    NsmError,
    NsmMessageError,
    NsmRefusedError,
    NsmUnexpectedResponseError,
)
from attestation.nsm.messages import (
    Digest,
    ErrorCode,
    NsmDescription,
    Request,
    Response,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
)
from attestation.nsm.raw import RawNsm

__all__ = [
    "NSM_DEVICE",
    "NSM_IOCTL_RAW",
    "DevNsm",
    "DeviceOs",
    "Digest",
    "EmulatedNsm",
    "ErrorCode",
    "NsmClient",
    "NsmDescription",
    "NsmDeviceError",
    "NsmError",
    "NsmMessageError",
    "NsmRefusedError",
    "NsmUnexpectedResponseError",
    "OsDevice",
    "PcrState",
    "RawNsm",
    "Request",
    "Response",
    "decode_request",
    "decode_response",
    "encode_request",
    "encode_response",
]
