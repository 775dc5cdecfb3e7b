"""Errors of the node service (``enclave.mpc``, ``attestation`` and ``wire`` keep their own trees).

::

    ServiceError                    base; ``code`` is the wire ErrorCode a client sees
    ├── UnexpectedMessageError      a valid message at the wrong moment (e.g. no Hello first)
    ├── UnsupportedError            a suite or operation this node does not serve
    ├── WrongSchemeError            a key asked for another scheme's operation (FROST of an ECDSA key)
    ├── PeerRefusedError            a participant's document or binding is refused (node_id, reason)
    ├── EnvelopeError               an enclave-to-enclave envelope is refused (reason; never content)
    ├── SessionError                a protocol session is unknown, failed or in another phase
    ├── BusyError                   a bound was reached (running sessions, stored nonces)
    ├── NonceUnknownError           a preprocessed nonce or presignature is unknown or used
    ├── KeyExistsError              a key of that name already exists (name)
    ├── UnknownKeyError             no key of that name on this node (name)
    ├── KeyPendingError             the key is created but not yet committed by every participant
    ├── UnwitnessedError            booted, but not yet shown enough peer witness reports
    ├── RolledBackError             peers witnessed newer sealed state: no key is served (reason)
    ├── MandatoryParticipantError   a signing or decryption set without a node the policy requires
    ├── EndorsementError            a mandatory participant's endorsement is refused (node_id, reason)
    ├── WitnessError                a state statement or witness report is refused (reason)
    ├── KeyDisabledError            the key is disabled (name)
    ├── KeyPendingDeletionError     the key is scheduled for deletion (name, delete_at)
    ├── KeyStateError               the key's state does not allow the change asked (name, state)
    ├── EpochMismatchError          a lifecycle request names another epoch than this node's
    └── ApprovalError               the key's approval policy refuses the request (rule)
        ├── ApprovalMismatchError   approval ``index`` is for another key/operation/message (field)
        ├── ApprovalUnlistedError   approval ``index`` is by a key the policy does not list
        ├── ApprovalExpiredError    approval ``index`` expired (not_after)
        ├── ApprovalSignatureError  approval ``index``'s signature does not verify
        └── QuorumNotMetError       fewer distinct valid approvers than the quorum (have, need)
            └── GroupQuorumNotMetError  a group of the policy short of its quorum (group)

Malformed requests raise :class:`wire.errors.MalformedMessageError` (re-exported here). Messages
carry public facts only (names, node ids, phases); nothing decrypted appears in them.
"""

from __future__ import annotations

from typing import ClassVar

from wire.errors import ErrorCode, MalformedMessageError

__all__ = [
    "ApprovalError",
    "ApprovalExpiredError",
    "ApprovalMismatchError",
    "ApprovalSignatureError",
    "ApprovalUnlistedError",
    "BusyError",
    "EndorsementError",
    "EnvelopeError",
    "EpochMismatchError",
    "GroupQuorumNotMetError",
    "KeyDisabledError",
    "KeyExistsError",
    "KeyPendingDeletionError",
    "KeyPendingError",
    "KeyStateError",
    "MalformedMessageError",
    "MandatoryParticipantError",
    "NonceUnknownError",
    "PeerRefusedError",
    "QuorumNotMetError",
    "RolledBackError",
    "ServiceError",
    "SessionError",
    "UnexpectedMessageError",
    "UnknownKeyError",
    "UnsupportedError",
    "UnwitnessedError",
    "WitnessError",
    "WrongSchemeError",
]


class ServiceError(Exception):
    """Base of the node service's errors."""

    code: ClassVar[ErrorCode] = ErrorCode.INTERNAL


class UnexpectedMessageError(ServiceError):
    code = ErrorCode.UNEXPECTED


class UnsupportedError(ServiceError):
    code = ErrorCode.UNSUPPORTED


class WrongSchemeError(ServiceError):
    code = ErrorCode.WRONG_SCHEME


class PeerRefusedError(ServiceError):
    code = ErrorCode.PEER_REFUSED

    def __init__(self, node_id: str, reason: str) -> None:
        super().__init__(f"peer {node_id}: {reason}")
        self.node_id = node_id
        self.reason = reason


class EnvelopeError(ServiceError):
    code = ErrorCode.ENVELOPE


class SessionError(ServiceError):
    code = ErrorCode.SESSION


class BusyError(ServiceError):
    code = ErrorCode.BUSY


class NonceUnknownError(ServiceError):
    code = ErrorCode.NONCE_UNKNOWN


class KeyExistsError(ServiceError):
    code = ErrorCode.KEY_EXISTS

    def __init__(self, name: str) -> None:
        super().__init__(f"key {name!r} already exists")
        self.name = name


class UnknownKeyError(ServiceError):
    code = ErrorCode.UNKNOWN_KEY

    def __init__(self, name: str) -> None:
        super().__init__(f"no key {name!r} on this node")
        self.name = name


class KeyPendingError(ServiceError):
    code = ErrorCode.KEY_PENDING

    def __init__(self, name: str) -> None:
        super().__init__(f"key {name!r} is pending: not every participant has confirmed it")
        self.name = name


class UnwitnessedError(ServiceError):
    code = ErrorCode.UNWITNESSED


class RolledBackError(ServiceError):
    code = ErrorCode.ROLLED_BACK


class WitnessError(ServiceError):
    code = ErrorCode.PROTOCOL


class KeyDisabledError(ServiceError):
    """The key is disabled: it describes itself, but signs and decrypts nothing until enabled."""

    code = ErrorCode.KEY_DISABLED

    def __init__(self, name: str) -> None:
        super().__init__(f"key {name!r} is disabled")
        self.name = name


class KeyPendingDeletionError(ServiceError):
    """The key is scheduled for deletion at ``delete_at`` (UTC seconds) and serves nothing."""

    code = ErrorCode.KEY_PENDING_DELETION

    def __init__(self, name: str, delete_at: int) -> None:
        super().__init__(
            f"key {name!r} is pending deletion (erased at {delete_at} UTC seconds): "
            "cancel the deletion to use it"
        )
        self.name, self.delete_at = name, delete_at


class KeyStateError(ServiceError):
    """The key's state forbids the change asked (AWS KMS's KMSInvalidStateException)."""

    code = ErrorCode.KEY_STATE

    def __init__(self, name: str, state: str, action: str) -> None:
        super().__init__(f"key {name!r} is {state}: cannot {action.replace('_', ' ')}")
        self.name, self.state, self.action = name, state, action


class EpochMismatchError(ServiceError):
    """A lifecycle request names an epoch this node's key is not at."""

    code = ErrorCode.EPOCH_MISMATCH

    def __init__(self, name: str, have: int, given: int) -> None:
        super().__init__(f"key {name!r} is at epoch {have} on this node, not {given}")
        self.name, self.have, self.given = name, have, given


class ApprovalError(ServiceError):
    """The key's approval policy refuses the request; ``rule`` names the rule that failed."""

    rule = "approval"


class ApprovalMismatchError(ApprovalError):
    code = ErrorCode.APPROVAL_MISMATCH
    rule = "mismatch"

    def __init__(self, index: int | None, field: str) -> None:
        if index is None:  # the request itself strays from what its approvals covered
            super().__init__(f"the request's {field} is not the committed, approved one")
        else:
            super().__init__(f"approval {index} is for another {field}")
        self.index, self.field = index, field


class ApprovalUnlistedError(ApprovalError):
    code = ErrorCode.APPROVAL_UNLISTED
    rule = "unlisted"

    def __init__(self, index: int) -> None:
        super().__init__(f"approval {index} is by a key the policy does not list")
        self.index = index


class ApprovalExpiredError(ApprovalError):
    code = ErrorCode.APPROVAL_EXPIRED
    rule = "expired"

    def __init__(self, index: int, not_after: int) -> None:
        super().__init__(f"approval {index} expired at {not_after} (UTC seconds)")
        self.index, self.not_after = index, not_after


class ApprovalSignatureError(ApprovalError):
    code = ErrorCode.APPROVAL_SIGNATURE
    rule = "signature"

    def __init__(self, index: int) -> None:
        super().__init__(f"approval {index}'s signature does not verify")
        self.index = index


class QuorumNotMetError(ApprovalError):
    code = ErrorCode.QUORUM_NOT_MET
    rule = "quorum"

    def __init__(self, have: int, need: int) -> None:
        super().__init__(f"{have} distinct valid approval(s); the policy needs {need}")
        self.have, self.need = have, need


class GroupQuorumNotMetError(QuorumNotMetError):
    """An approver group of the policy is short of its own quorum (whatever the total)."""

    rule = "group-quorum"

    def __init__(self, group: str, have: int, need: int) -> None:
        ApprovalError.__init__(
            self, f"{have} valid approval(s) from group {group!r}; the policy needs {need}"
        )
        self.group, self.have, self.need = group, have, need


class MandatoryParticipantError(ServiceError):
    """The key's policy requires nodes that are not in the signing (or decryption) set."""

    code = ErrorCode.MANDATORY_PARTICIPANT

    def __init__(self, missing: tuple[str, ...], *, what: str = "signing set") -> None:
        super().__init__(f"the key's policy requires {', '.join(missing)} in every {what}")
        self.missing = missing


class EndorsementError(ServiceError):
    """A relayed endorsement refused: not from a mandatory participant of the key, or not its
    identity key's signature over this exact request (e.g. made for another ciphertext)."""

    code = ErrorCode.MANDATORY_PARTICIPANT

    def __init__(self, node_id: str, reason: str) -> None:
        super().__init__(f"the endorsement of {node_id} is refused: {reason}")
        self.node_id = node_id
        self.reason = reason


class NotExportableError(ServiceError):
    """An export of a key that was not created exportable (with a policy): never."""

    code = ErrorCode.NOT_EXPORTABLE

    def __init__(self, name: str) -> None:
        super().__init__(f"key {name!r} was not created exportable: it never leaves the cluster")
        self.name = name


class ImportShareError(ServiceError):
    """An imported share that does not open, is not addressed to this node and import, or does
    not match the dealer's commitment (a tampered share): nothing is sealed."""

    code = ErrorCode.PROTOCOL
