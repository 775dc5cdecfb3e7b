"""Errors of the NSM interface: refinements of :class:`attestation.errors.NsmError`.

Everything an NSM says is public (PCR values, module ids, error codes), so these errors carry
details. ::

    NsmError                      (attestation.errors) base of everything below
    ├── NsmRefusedError           the NSM answered ``Error(code)``; ``code`` is the ErrorCode
    ├── NsmMessageError           bytes are not a well-formed NSM request/response (reason)
    ├── NsmUnexpectedResponseError  a well-formed response of the wrong variant for the request
    └── NsmDeviceError            /dev/nsm could not be opened or the ioctl failed (errno)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from attestation.errors import NsmError

if TYPE_CHECKING:
    from attestation.nsm.messages import ErrorCode

__all__ = [
    "NsmDeviceError",
    "NsmError",
    "NsmMessageError",
    "NsmRefusedError",
    "NsmUnexpectedResponseError",
]


class NsmRefusedError(NsmError):
    """The NSM refused the request with ``code`` (e.g. ``ReadOnlyIndex`` for a locked PCR)."""

    def __init__(self, request: str, code: ErrorCode) -> None:
        self.request = request
        self.code = code
        super().__init__(f"NSM refused {request}: {code.value}")


class NsmMessageError(NsmError):
    """Bytes that are not a well-formed NSM message (unknown variant, wrong type, bad CBOR...)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class NsmUnexpectedResponseError(NsmError):
    """A valid response that does not answer the request (e.g. ``GetRandom`` for ``DescribePCR``)."""

    def __init__(self, request: str, response: str) -> None:
        self.request = request
        self.response = response
        super().__init__(f"NSM answered {response} to {request}")


class NsmDeviceError(NsmError):
    """The NSM device failed below the protocol: open, ioctl, or an impossible response length.

    ``errno`` is the OS error number when there is one (``EMSGSIZE`` means the request was too large).
    """

    def __init__(self, reason: str, errno: int | None = None) -> None:
        self.reason = reason
        self.errno = errno
        super().__init__(reason if errno is None else f"{reason} (errno {errno})")
