"""Errors of the wire layer and the closed set of error codes that travel on it.

::

    WireError                       base; ``code`` is the :class:`ErrorCode` a peer sees
    └── MalformedMessageError       bytes that are not exactly one valid value (field, reason)

A refused request travels as an ``error`` reply carrying an :class:`ErrorCode` (never a Python
class name) and public text. Both ends map their own exceptions to and from these codes; adding a
code is a wire change, removing or renaming one is a format break.
"""

from __future__ import annotations

import enum
from typing import ClassVar

__all__ = ["ErrorCode", "MalformedMessageError", "WireError"]


class ErrorCode(enum.Enum):
    """Why a node refused a request. ``RETRYABLE`` codes may succeed if sent again unchanged."""

    MALFORMED = "malformed"  # the request is not one valid message
    UNEXPECTED = "unexpected"  # a valid message at the wrong moment (e.g. no hello first)
    UNSUPPORTED = "unsupported"  # a suite, operation or version this node does not serve
    PEER_REFUSED = "peer_refused"  # a participant's attestation or binding was refused
    ENVELOPE = "envelope"  # an enclave-to-enclave envelope was refused
    SESSION = "session"  # a protocol session is unknown, failed or in another phase
    KEY_EXISTS = "key_exists"
    KEY_PENDING = "key_pending"  # created, but not every participant has confirmed it yet
    UNKNOWN_KEY = "unknown_key"
    WRONG_SCHEME = "wrong_scheme"  # e.g. FROST asked of an ECDSA key
    NONCE_UNKNOWN = "nonce_unknown"  # a preprocessed nonce or presignature is unknown or used
    APPROVAL_MISMATCH = "approval_mismatch"
    APPROVAL_UNLISTED = "approval_unlisted"
    APPROVAL_EXPIRED = "approval_expired"
    APPROVAL_SIGNATURE = "approval_signature"
    APPROVAL_REUSED = "approval_reused"  # a single-use (decrypt) approval was already spent here
    QUORUM_NOT_MET = "quorum_not_met"
    MANDATORY_PARTICIPANT = "mandatory_participant"  # a node the policy requires is not taking part
    PROTOCOL = "protocol"  # a protocol check failed (a proof, a share, a commitment)
    ATTESTATION = "attestation"  # this node's own attestation failed
    UNWITNESSED = "unwitnessed"  # booted, but not yet shown its peers' witness reports
    ROLLED_BACK = "rolled_back"  # peers witnessed newer sealed state: this node serves no key
    BUSY = "busy"  # a bound was reached (sessions, in-flight requests); retry later
    INTERNAL = "internal"  # an unexpected failure inside the node (its type only)
    KEY_DISABLED = "key_disabled"  # the key is disabled: enable it to use it again
    KEY_PENDING_DELETION = "key_pending_deletion"  # scheduled for deletion: cancel to use it
    KEY_STATE = (
        "key_state"  # the key's state forbids the change (e.g. enable while pending deletion)
    )
    EPOCH_MISMATCH = "epoch_mismatch"  # the request names another epoch than the node's
    NOT_EXPORTABLE = "not_exportable"  # the key was not created exportable (with a policy)

    @property
    def retryable(self) -> bool:
        return self in _RETRYABLE


_RETRYABLE = frozenset({ErrorCode.BUSY})


class WireError(Exception):
    """Base of the wire layer's errors."""

    code: ClassVar[ErrorCode] = ErrorCode.INTERNAL


class MalformedMessageError(WireError):
    """Bytes or values that are not one valid message; ``field`` names where."""

    code = ErrorCode.MALFORMED

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
