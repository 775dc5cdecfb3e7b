"""Every error the enclave runtime raises (``enclave.mpc`` has its own tree), in one tree.

Errors about public data (a blob's header, a status frame, the launch configuration, which KMS call
failed and with which AWS error code) carry the culprit. Errors about secrets (unsealing, opening
the KMS recipient envelope) carry a fixed message and are raised ``from None``: the parent relays
every log line and status reply, so detail there would be an oracle for it.

::

    EnclaveError                        base: catch this at a process boundary
    ├── ConfigError                     the launch configuration is refused (field, reason)
    ├── ImageIntegrityError             code was imported from outside the measured image (module)
    ├── SealedBlobError                 a sealed blob is refused before any decryption
    │   ├── BlobFormatError             malformed header or framing (field, reason)
    │   ├── BlobMismatchError           header names another node / blob (field, expected, actual)
    │   ├── RollbackError               version lower than one already seen (name, seen, offered)
    │   └── BlobMissingError            a blob the sealed manifest lists is absent (name, seen)
    ├── UnsealError                     AEAD refused the blob (secret: fixed message)
    ├── KmsError                        KMS refused or failed (operation, code) — public
    ├── BootError                       a boot step failed (step, reason) — what ``status`` reports
    └── StatusProtocolError             a malformed status request or reply (reason)
"""

from __future__ import annotations

__all__ = [
    "BlobFormatError",
    "BlobMismatchError",
    "BlobMissingError",
    "BootError",
    "ConfigError",
    "EnclaveError",
    "ImageIntegrityError",
    "KmsError",
    "RollbackError",
    "SealedBlobError",
    "StatusProtocolError",
    "UnsealError",
]


class EnclaveError(Exception):
    """Base of every error raised by the enclave runtime."""


class ConfigError(EnclaveError):
    """The launch configuration is refused; ``field`` names the culprit."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"config {field}: {reason}")


class ImageIntegrityError(EnclaveError):
    """A project module was loaded from outside the measured image directory.

    The emulated hypervisor measures the image directory; code loaded from anywhere else would run
    unmeasured, so the enclave refuses to boot rather than attest to code it is not running.
    """

    def __init__(self, module: str, path: str) -> None:
        self.module = module
        self.path = path
        super().__init__(f"module {module} was loaded from {path}, outside the measured image")


class SealedBlobError(EnclaveError):
    """A sealed blob is refused on its public header, before any decryption is attempted."""


class BlobFormatError(SealedBlobError):
    """The sealed blob's framing or header is malformed (public data, so detailed)."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"sealed blob {field}: {reason}")


class BlobMismatchError(SealedBlobError):
    """The blob's header names another node or blob than the one asked for (a swapped blob)."""

    def __init__(self, field: str, expected: str, actual: str) -> None:
        self.field = field
        self.expected = expected
        self.actual = actual
        super().__init__(f"sealed blob {field} is {actual!r}, expected {expected!r}")


class RollbackError(SealedBlobError):
    """The blob's version is lower than one this enclave already knows for that name."""

    def __init__(self, name: str, seen: int, offered: int) -> None:
        self.name = name
        self.seen = seen
        self.offered = offered
        super().__init__(f"sealed blob {name!r}: version {offered} is older than {seen}")


class BlobMissingError(SealedBlobError):
    """A blob that the sealed manifest lists at version ``seen`` is absent at the parent."""

    def __init__(self, name: str, seen: int) -> None:
        self.name = name
        self.seen = seen
        super().__init__(f"sealed blob {name!r} (version {seen}) is missing")


class UnsealError(EnclaveError):
    """A sealed blob did not authenticate. Deliberately opaque: raise it ``from None``."""

    MESSAGE = "sealed blob could not be unsealed"

    def __init__(self) -> None:
        super().__init__(self.MESSAGE)


class KmsError(EnclaveError):
    """A KMS call was refused or failed. ``code`` is the AWS error code (public)."""

    def __init__(self, operation: str, code: str, message: str = "") -> None:
        self.operation = operation
        self.code = code
        detail = f": {message}" if message else ""
        super().__init__(f"KMS {operation} failed with {code}{detail}")


class BootError(EnclaveError):
    """A boot step failed; ``step`` and ``reason`` are what the status protocol reports."""

    def __init__(self, step: str, reason: str) -> None:
        self.step = step
        self.reason = reason
        super().__init__(f"boot step {step!r} failed: {reason}")


class StatusProtocolError(EnclaveError):
    """A status request or reply is malformed."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)
