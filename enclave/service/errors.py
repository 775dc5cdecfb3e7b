"""Errors of the node service (``enclave.mpc`` and ``attestation`` keep their own trees).

::

    ServiceError                    base; its class name is the ``code`` a client sees
    ├── MalformedMessageError       a request or reply that is not one of the closed types (field)
    ├── UnexpectedMessageError      a valid message at the wrong moment (e.g. no Hello first)
    ├── PeerRefusedError            a participant's document or binding is refused (node_id, reason)
    ├── EnvelopeError               an enclave-to-enclave envelope is refused (reason; never content)
    ├── SessionError                a protocol session is unknown, failed or in another phase
    ├── KeyExistsError              a key of that name already exists (name)
    └── UnknownKeyError             no key of that name on this node (name)

Messages carry public facts only (names, node ids, phases); nothing decrypted appears in them.
"""

from __future__ import annotations

__all__ = [
    "EnvelopeError",
    "KeyExistsError",
    "MalformedMessageError",
    "PeerRefusedError",
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
