"""Errors of the client SDK.

::

    ClientError                 base
    ├── ChannelError            the channel to a node could not be established or broke (node_id)
    │   └── BindingError        the node's attestation does not bind this channel (node_id, reason)
    ├── RemoteError             the node refused a request (node_id, code, message)
    ├── ProtocolError           a node answered with the wrong reply type, or nodes disagree
    └── CredentialsError        the client's key or certificate is missing or unreadable
"""

from __future__ import annotations

__all__ = [
    "BindingError",
    "ChannelError",
    "ClientError",
    "CredentialsError",
    "ProtocolError",
    "RemoteError",
]


class ClientError(Exception):
    pass


class ChannelError(ClientError):
    def __init__(self, node_id: str, reason: str) -> None:
        super().__init__(f"{node_id}: {reason}")
        self.node_id = node_id
        self.reason = reason


class BindingError(ChannelError):
    pass


class RemoteError(ClientError):
    def __init__(self, node_id: str, code: str, message: str) -> None:
        super().__init__(f"{node_id} refused: {code}: {message}")
        self.node_id = node_id
        self.code = code
        self.message = message


class ProtocolError(ClientError):
    pass


class CredentialsError(ClientError):
    pass
