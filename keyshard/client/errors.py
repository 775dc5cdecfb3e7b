"""Errors of the client SDK: one tree, each error with a stable ``code`` (like botocore's
``ClientError``), split as the CLI's exit codes are — the caller's side or the cluster's side.

::

    ClientError                 base; ``code`` (str), ``local`` (True: a problem on this machine)
    ├── LocalError              local: the input or the configuration is wrong (exit 1)
    │   ├── ConfigurationError  a profile or credentials that are missing, unreadable or malformed
    │   │   ├── ProfileError
    │   │   └── CredentialsError
    │   ├── InvalidInputError   bad input detected here: a malformed ciphertext, a wrong context
    │   │                       (the AEAD check fails), a hardened or malformed BIP-32 path
    │   └── BackupError         a backup file that is malformed, does not verify, or does not
    │                           open with the recovery key given
    ├── ChannelError            a node could not be reached or its channel broke (node_id)
    │   └── BindingError        the node's attestation does not bind this channel (node_id, reason)
    ├── UnavailableError        fewer reachable holders than the operation needs (have, need)
    ├── KeyNotFoundError        no reachable node holds the key (name) — distinct from unreachable
    ├── RemoteError             a node refused a request (node_id, ``code``: wire ErrorCode, message)
    └── ProtocolError           a node answered out of protocol: the wrong reply, nodes that
                                disagree, a share or proof that does not verify (culprit if known)

``RemoteError.code`` is the :class:`wire.errors.ErrorCode` the node sent; ``retryable`` says whether
sending the same request again may succeed.
"""

from __future__ import annotations

from typing import ClassVar

from wire.errors import ErrorCode

__all__ = [
    "BackupError",
    "BindingError",
    "ChannelError",
    "ClientError",
    "ConfigurationError",
    "CredentialsError",
    "InvalidInputError",
    "KeyNotFoundError",
    "LocalError",
    "ProfileError",
    "ProtocolError",
    "RemoteError",
    "UnavailableError",
]


class ClientError(Exception):
    code: ClassVar[str] = "client_error"
    local: ClassVar[bool] = False


class LocalError(ClientError):
    code = "local_error"
    local = True


class ConfigurationError(LocalError):
    code = "configuration"


class ProfileError(ConfigurationError):
    """The profile file is missing, malformed, or inconsistent (its root is not the pinned one)."""

    code = "profile"


class CredentialsError(ConfigurationError):
    code = "credentials"


class InvalidInputError(LocalError):
    code = "invalid_input"


class BackupError(LocalError):
    """A backup file (or recovery key) this client refuses; the message says which check."""

    code = "invalid_backup"


class ChannelError(ClientError):
    code = "unreachable"

    def __init__(self, node_id: str, reason: str) -> None:
        super().__init__(f"{node_id}: {reason}")
        self.node_id = node_id
        self.reason = reason


class BindingError(ChannelError):
    code = "attestation_refused"


class UnavailableError(ClientError):
    code = "unavailable"

    def __init__(self, message: str, *, have: int, need: int) -> None:
        super().__init__(message)
        self.have, self.need = have, need


class KeyNotFoundError(ClientError):
    code = "key_not_found"

    def __init__(self, name: str) -> None:
        super().__init__(f"no reachable node holds key {name!r}")
        self.name = name


class RemoteError(ClientError):
    """A node's refusal: ``error_code`` is the wire code; ``code`` its text, for printing."""

    code = "remote"

    def __init__(self, node_id: str, error_code: ErrorCode, message: str) -> None:
        super().__init__(f"{node_id} refused: {error_code.value}: {message}")
        self.node_id = node_id
        self.error_code = error_code
        self.message = message

    @property
    def retryable(self) -> bool:
        return self.error_code.retryable


class ProtocolError(ClientError):
    code = "protocol"

    def __init__(self, message: str, *, culprit: str | None = None) -> None:
        super().__init__(message)
        self.culprit = culprit
