"""Errors of the node service (``enclave.mpc`` and ``attestation`` keep their own trees).

::

    ServiceError                    base; its class name is the ``code`` a client sees
    ├── MalformedMessageError       a request or reply that is not one of the closed types (field)
    ├── UnexpectedMessageError      a valid message at the wrong moment (e.g. no Hello first)
    ├── PeerRefusedError            a participant's document or binding is refused (node_id, reason)
    ├── EnvelopeError               an enclave-to-enclave envelope is refused (reason; never content)
    ├── SessionError                a protocol session is unknown, failed or in another phase
    ├── KeyExistsError              a key of that name already exists (name)
    ├── UnknownKeyError             no key of that name on this node (name)
    └── ApprovalError               the key's approval policy refuses the request (rule)
        ├── ApprovalMismatchError   approval ``index`` is for another key/operation/message (field)
        ├── ApprovalUnlistedError   approval ``index`` is by a key the policy does not list
        ├── ApprovalExpiredError    approval ``index`` expired (not_after)
        ├── ApprovalSignatureError  approval ``index``'s signature does not verify
        └── QuorumNotMetError       fewer distinct valid approvers than the quorum (have, need)

Messages carry public facts only (names, node ids, phases); nothing decrypted appears in them.
"""

from __future__ import annotations

__all__ = [
    "ApprovalError",
    "ApprovalExpiredError",
    "ApprovalMismatchError",
    "ApprovalSignatureError",
    "ApprovalUnlistedError",
    "EnvelopeError",
    "KeyExistsError",
    "MalformedMessageError",
    "PeerRefusedError",
    "QuorumNotMetError",
    "ServiceError",
    "SessionError",
    "UnexpectedMessageError",
    "UnknownKeyError",
]


class ServiceError(Exception):
    """Base of the node service's errors."""

    @property
    def code(self) -> str:
        return type(self).__name__


class MalformedMessageError(ServiceError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field


class UnexpectedMessageError(ServiceError):
    pass


class PeerRefusedError(ServiceError):
    def __init__(self, node_id: str, reason: str) -> None:
        super().__init__(f"peer {node_id}: {reason}")
        self.node_id = node_id
        self.reason = reason


class EnvelopeError(ServiceError):
    pass


class SessionError(ServiceError):
    pass


class KeyExistsError(ServiceError):
    def __init__(self, name: str) -> None:
        super().__init__(f"key {name!r} already exists")
        self.name = name


class UnknownKeyError(ServiceError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no key {name!r} on this node")
        self.name = name


class ApprovalError(ServiceError):
    """The key's approval policy refuses the request; ``rule`` names the rule that failed."""

    rule = "approval"


class ApprovalMismatchError(ApprovalError):
    rule = "mismatch"

    def __init__(self, index: int | None, field: str) -> None:
        if index is None:  # the request itself strays from what its approvals covered
            super().__init__(f"the request's {field} is not the committed, approved one")
        else:
            super().__init__(f"approval {index} is for another {field}")
        self.index, self.field = index, field


class ApprovalUnlistedError(ApprovalError):
    rule = "unlisted"

    def __init__(self, index: int) -> None:
        super().__init__(f"approval {index} is by a key the policy does not list")
        self.index = index


class ApprovalExpiredError(ApprovalError):
    rule = "expired"

    def __init__(self, index: int, not_after: int) -> None:
        super().__init__(f"approval {index} expired at {not_after} (UTC seconds)")
        self.index, self.not_after = index, not_after


class ApprovalSignatureError(ApprovalError):
    rule = "signature"

    def __init__(self, index: int) -> None:
        super().__init__(f"approval {index}'s signature does not verify")
        self.index = index


class QuorumNotMetError(ApprovalError):
    rule = "quorum"

    def __init__(self, have: int, need: int) -> None:
        super().__init__(f"{have} distinct valid approval(s); the policy needs {need}")
        self.have, self.need = have, need
