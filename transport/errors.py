"""Errors of the transport leaf.

Every failure the transport can observe raises one of these; callers above never see a bare
``ValueError`` from this package. The split follows h11: errors the *caller* made (a bad address, a
payload too large to send) versus errors the *peer* made (an oversize or truncated frame, a message
that is not in the closed host protocol)::

    TransportError
    ├── AddressError            an address out of range, or one the emulated transport cannot map
    ├── FramingError            the peer broke the length-prefixed framing (connection is then closed)
    │   ├── FrameTooLargeError      declared length above the limit (carries size and limit)
    │   ├── TruncatedFrameError     stream ended inside a frame (carries expected and received)
    │   └── StreamClosedError       clean end of stream exactly at a frame boundary
    ├── HostProtoError          a host-services message that is not exactly one of the closed types
    │   ├── UnknownMessageTypeError (carries the type name seen)
    │   ├── MalformedMessageError   (carries the field and what was wrong)
    │   └── HostServiceError        the parent answered ``Error(code, message)``
    └── UsageError              an invalid argument from the caller (also a ``ValueError``)
"""

from __future__ import annotations


class TransportError(Exception):
    """Base of every error raised by ``transport``."""


class AddressError(TransportError):
    """An address that is out of range, or that the chosen transport cannot represent."""


class FramingError(TransportError):
    """The byte stream does not follow the length-prefixed framing."""


class FrameTooLargeError(FramingError):
    """A frame whose length exceeds the limit (declared by the peer, or requested by us)."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"frame of {size} bytes exceeds the limit of {limit} bytes")
        self.size = size
        self.limit = limit


class TruncatedFrameError(FramingError):
    """The stream ended in the middle of a frame header or body."""

    def __init__(self, expected: int, received: int) -> None:
        super().__init__(f"stream ended after {received} of {expected} bytes")
        self.expected = expected
        self.received = received


class StreamClosedError(FramingError):
    """The peer closed the stream cleanly at a frame boundary (not an attack, but no frame either)."""

    def __init__(self) -> None:
        super().__init__("connection closed at a frame boundary")


class HostProtoError(TransportError):
    """A host-services message that is not exactly one of the closed request/response types."""


class UnknownMessageTypeError(HostProtoError):
    """The message names a type outside the closed set for its direction."""

    def __init__(self, type_name: object) -> None:
        super().__init__(f"unknown message type {type_name!r}")
        self.type_name = type_name


class MalformedMessageError(HostProtoError):
    """The message is not strict canonical CBOR, or a field is missing, extra or mistyped."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class HostServiceError(HostProtoError):
    """The parent answered a request with ``Error``; carries its code and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"host service error {code}: {message}")
        self.code = code
        self.message = message


class UsageError(TransportError, ValueError):
    """The caller passed an argument outside its domain (a programming error, not a peer's)."""
