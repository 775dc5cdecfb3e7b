"""Errors of the untrusted host runtime.

The parent only moves and stores opaque bytes, so its errors concern configuration, names, storage,
launching and credentials — never a secret::

    ParentError
    ├── ConfigError         invalid configuration (carries the field path and the reason)
    ├── BlobNameError       a blob name outside the allowed alphabet (traversal, dot-files, length)
    ├── BlobStoreError      the backing store failed (disk, S3); carries the operation and name
    ├── LaunchError         the enclave could not be started, watched or stopped
    └── CredentialsError    instance credentials could not be obtained (IMDS)
"""

from __future__ import annotations


class ParentError(Exception):
    """Base of every error raised by ``parent``."""


class ConfigError(ParentError):
    """The configuration is invalid; ``field`` names the culprit (dotted path)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class BlobNameError(ParentError):
    """A blob name that could escape the store or collide with its temporary files."""

    def __init__(self, name: object, reason: str) -> None:
        super().__init__(f"invalid blob name {name!r}: {reason}")
        self.name = name
        self.reason = reason


class BlobStoreError(ParentError):
    """The backing store failed; the previous blob (if any) is still intact."""

    def __init__(self, operation: str, name: str, reason: str) -> None:
        super().__init__(f"{operation} {name!r} failed: {reason}")
        self.operation = operation
        self.name = name
        self.reason = reason


class LaunchError(ParentError):
    """Starting, describing or stopping the enclave failed."""


class CredentialsError(ParentError):
    """The instance role's temporary credentials could not be obtained."""
