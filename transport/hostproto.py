"""The enclave <-> parent "host services" protocol: framed, strict CBOR, closed message types.

The enclave asks its untrusted parent for four things only: store an opaque blob, return one, hand
over the instance role's temporary AWS credentials (which the parent holds anyway), and name the node
it runs as (:class:`GetLaunch`: every node runs the same image, so the node id is the one per-node
value, and a Nitro EIF takes no command line). The node id is a *claim*: the enclave accepts it only
if the measured image's cluster table lists it, and then uses the table's key, never one the parent
names. Everything
the enclave sends is already sealed; everything it receives is checked inside the enclave (the blob's
AEAD binds its version, KMS answers only to the enclave's attested key). The protocol therefore needs
no secrecy of its own, only exactness, so that a hostile parent cannot smuggle anything past the
decoder:

* one frame (``transport.framing``, at most :data:`MAX_MESSAGE` bytes) carries one message;
* a message is a CBOR map ``{"v": 1, "type": <name>, <field>: <value>, ...}`` in the one canonical
  encoding of :mod:`wire.cbor` (RFC 8949 §4.2.1: definite lengths, shortest forms, sorted keys; no
  tags or floats), which refuses anything that is not byte-identical to it (non-canonical forms,
  duplicate keys, indefinite lengths, trailing bytes); this module then refuses an unknown version,
  a type outside the closed set for its direction, and any missing, extra or mistyped field.

Requests (enclave -> parent): :class:`PutBlob`, :class:`GetBlob`, :class:`ListBlobs`,
:class:`GetCredentials`, :class:`GetLaunch`, :class:`PutAudit` (the node's signed audit trail, for
append-only storage), and :class:`PutLogs` (the enclave's log channel: a
production Nitro enclave has no console, so its JSON log lines reach the host only this way; they
are public by construction, see :mod:`transport.jsonlog`). Responses (parent -> enclave): :class:`Ok`,
:class:`Blob`, :class:`BlobNames`, :class:`Credentials`, :class:`Launch`, :class:`Error`. The model is the NSM API's closed
request/response enums (aws-nitro-enclaves-nsm-api ``src/api/mod.rs``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import ClassVar, TypeAlias

from transport.errors import MalformedMessageError, UnknownMessageTypeError
from wire import cbor
from wire.errors import MalformedMessageError as WireMalformedError

VERSION = 1
HOST_SERVICES_PORT = 9000
"""Vsock port of the host-services server, at the parent's CID."""
MAX_MESSAGE = 16 << 20
"""Largest frame either side accepts (sealed state plus CBOR overhead)."""
MAX_NAME = 255
MAX_TEXT = 4096
MAX_LOG_LINE = 8192
"""Longest log line the channel carries (a boot failure's reason is at most 2000 characters)."""
MAX_LOG_BATCH = 256
"""Most log lines in one :class:`PutLogs`."""
MAX_AUDIT_BATCH = 256
"""Most audit records in one :class:`PutAudit`."""
MAX_AUDIT_RECORD = 4096
"""Largest audit record body (a record is a few hundred bytes; approvers make it grow)."""


class ErrorCode(enum.Enum):
    """Why the parent could not serve a request (public information; no secret ever in a message)."""

    BAD_REQUEST = "bad_request"
    BAD_NAME = "bad_name"
    STORAGE_FAILED = "storage_failed"
    CREDENTIALS_UNAVAILABLE = "credentials_unavailable"
    LAUNCH_UNAVAILABLE = "launch_unavailable"
    INTERNAL = "internal"


def _text(name: str, value: object, limit: int = MAX_TEXT) -> str:
    if type(value) is not str:
        raise MalformedMessageError(name, f"expected text, got {type(value).__name__}")
    if len(value) > limit:
        raise MalformedMessageError(name, f"longer than {limit} characters")
    return value


def _bytes(name: str, value: object) -> bytes:
    if type(value) is not bytes:
        raise MalformedMessageError(name, f"expected bytes, got {type(value).__name__}")
    return value


class _Message:
    """Shared codec behaviour; subclasses are frozen slotted dataclasses validated on construction."""

    __slots__ = ()
    KIND: ClassVar[str]

    def _wire_fields(self) -> dict[str, object]:
        out: dict[str, object] = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, enum.Enum):
                value = value.value
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out


@dataclass(frozen=True, slots=True)
class PutBlob(_Message):
    """Store ``data`` (opaque, already sealed) under ``name``, replacing any previous blob."""

    name: str
    data: bytes = field(repr=False)

    def __post_init__(self) -> None:
        _text("name", self.name, MAX_NAME)
        _bytes("data", self.data)


@dataclass(frozen=True, slots=True)
class GetBlob(_Message):
    """Return the blob stored under ``name`` (``Blob(None)`` if there is none)."""

    name: str

    def __post_init__(self) -> None:
        _text("name", self.name, MAX_NAME)


@dataclass(frozen=True, slots=True)
class ListBlobs(_Message):
    """Return the names of all stored blobs."""


@dataclass(frozen=True, slots=True)
class GetCredentials(_Message):
    """Return temporary AWS credentials for the enclave's KMS calls."""


@dataclass(frozen=True, slots=True)
class GetLaunch(_Message):
    """Return the node id the parent launched this enclave as (checked against the image)."""


@dataclass(frozen=True, slots=True)
class PutLogs(_Message):
    """Hand the parent ``lines`` of the enclave's log (JSON objects, oldest first); ``dropped``
    counts lines the enclave discarded since its last batch because its buffer was full."""

    lines: tuple[str, ...]
    dropped: int = 0

    def __post_init__(self) -> None:
        if type(self.lines) is not tuple or len(self.lines) > MAX_LOG_BATCH:
            raise MalformedMessageError("lines", f"expected at most {MAX_LOG_BATCH} lines")
        for line in self.lines:
            _text("lines", line, MAX_LOG_LINE)
        if type(self.dropped) is not int or self.dropped < 0:
            raise MalformedMessageError("dropped", "expected a non-negative integer")


@dataclass(frozen=True, slots=True)
class PutAudit(_Message):
    """Hand the parent a batch of the node's audit trail (``wire.audit``): record ``bodies`` and
    their identity-key ``signatures``, oldest first, for append-only storage. ``document`` is an
    attestation document binding the identity key (sent with a boot's first batch, else empty)
    so the stored log can be checked offline. Public by construction; the parent cannot forge
    or reorder records without the chain naming them."""

    bodies: tuple[bytes, ...]
    signatures: tuple[bytes, ...]
    document: bytes = b""

    def __post_init__(self) -> None:
        for name, items in (("bodies", self.bodies), ("signatures", self.signatures)):
            if type(items) is not tuple or len(items) > MAX_AUDIT_BATCH:
                raise MalformedMessageError(name, f"expected at most {MAX_AUDIT_BATCH} items")
            for item in items:
                if len(_bytes(name, item)) > MAX_AUDIT_RECORD:
                    raise MalformedMessageError(name, f"longer than {MAX_AUDIT_RECORD} bytes")
        if len(self.bodies) != len(self.signatures):
            raise MalformedMessageError("signatures", "one signature per record")
        _bytes("document", self.document)


@dataclass(frozen=True, slots=True)
class Ok(_Message):
    """The request succeeded and has nothing to return."""


@dataclass(frozen=True, slots=True)
class Blob(_Message):
    """A stored blob, or ``None`` when nothing is stored under the name."""

    data: bytes | None = field(repr=False)

    def __post_init__(self) -> None:
        if self.data is not None:
            _bytes("data", self.data)


@dataclass(frozen=True, slots=True)
class BlobNames(_Message):
    """Names of the stored blobs, sorted."""

    names: tuple[str, ...]

    def __post_init__(self) -> None:
        if type(self.names) is not tuple:
            raise MalformedMessageError("names", "expected a sequence of text")
        for name in self.names:
            _text("names", name, MAX_NAME)


@dataclass(frozen=True, slots=True)
class Credentials(_Message):
    """Temporary AWS credentials; the secret parts never appear in a repr."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expiration: str
    """ISO 8601 UTC instant, as IMDS and STS give it."""

    def __post_init__(self) -> None:
        for f in fields(self):
            _text(f.name, getattr(self, f.name))


@dataclass(frozen=True, slots=True)
class Launch(_Message):
    """The parent's claim of which node this enclave is (untrusted; see the module docstring)."""

    node_id: str

    def __post_init__(self) -> None:
        _text("node_id", self.node_id, MAX_NAME)


@dataclass(frozen=True, slots=True)
class Error(_Message):
    """The request failed; ``code`` is machine-readable, ``message`` a short public explanation."""

    code: ErrorCode
    message: str

    def __post_init__(self) -> None:
        if not isinstance(self.code, ErrorCode):
            raise MalformedMessageError("code", "expected an ErrorCode")
        _text("message", self.message)


Request: TypeAlias = PutBlob | GetBlob | ListBlobs | GetCredentials | GetLaunch | PutLogs | PutAudit
Response: TypeAlias = Ok | Blob | BlobNames | Credentials | Launch | Error

_REQUESTS: Mapping[str, type[Request]] = {
    cls.__name__: cls
    for cls in (PutBlob, GetBlob, ListBlobs, GetCredentials, GetLaunch, PutLogs, PutAudit)
}
_RESPONSES: Mapping[str, type[Response]] = {
    cls.__name__: cls for cls in (Ok, Blob, BlobNames, Credentials, Launch, Error)
}


def _error_code(value: object) -> ErrorCode:
    try:
        return ErrorCode(_text("code", value))
    except ValueError:
        raise MalformedMessageError("code", f"unknown error code {value!r}") from None


def _names(value: object) -> tuple[str, ...]:
    if type(value) is not list:
        raise MalformedMessageError("names", f"expected an array, got {type(value).__name__}")
    return tuple(value)


# Wire value -> constructor argument, for the fields whose Python type differs from the CBOR one.
_FROM_WIRE: Mapping[tuple[str, str], Callable[[object], object]] = {
    ("Error", "code"): _error_code,
    ("BlobNames", "names"): _names,
    ("PutLogs", "lines"): _names,
    ("PutAudit", "bodies"): _names,
    ("PutAudit", "signatures"): _names,
}


def _encode(message: _Message) -> bytes:
    return cbor.dumps({"v": VERSION, "type": type(message).__name__, **message._wire_fields()})


def encode_request(request: Request) -> bytes:
    """Canonical CBOR of a request (the frame payload)."""
    if type(request).__name__ not in _REQUESTS:
        raise UnknownMessageTypeError(type(request).__name__)
    return _encode(request)


def encode_response(response: Response) -> bytes:
    """Canonical CBOR of a response (the frame payload)."""
    if type(response).__name__ not in _RESPONSES:
        raise UnknownMessageTypeError(type(response).__name__)
    return _encode(response)


def _decode_map(payload: bytes) -> dict[str, object]:
    # Every message is a definite-length map of at most 23 entries (major type 5, short count);
    # refusing anything else before decoding keeps the decoder away from hostile shapes.
    if not payload or not 0xA0 <= payload[0] <= 0xB7:
        raise MalformedMessageError("message", "expected a definite-length map")
    try:
        return cbor.loads_map(payload, what="message")
    except WireMalformedError as error:
        raise MalformedMessageError("message", error.reason) from None


def _decode(payload: bytes, table: Mapping[str, type[_Message]]) -> _Message:
    body = _decode_map(payload)
    version = body.pop("v", None)
    if version != VERSION or type(version) is not int:
        raise MalformedMessageError("v", f"unsupported version {version!r}")
    kind = body.pop("type", None)
    if type(kind) is not str or kind not in table:
        raise UnknownMessageTypeError(kind)
    cls = table[kind]
    expected = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    for name in body:
        if name not in expected:
            raise MalformedMessageError(name, f"unexpected field in {kind}")
    kwargs: dict[str, object] = {}
    for name in expected:
        if name not in body:
            raise MalformedMessageError(name, f"missing from {kind}")
        convert = _FROM_WIRE.get((kind, name))
        kwargs[name] = convert(body[name]) if convert else body[name]
    return cls(**kwargs)


def decode_request(payload: bytes) -> Request:
    """Parse a request; raises :class:`MalformedMessageError` or :class:`UnknownMessageTypeError`."""
    return _decode(payload, _REQUESTS)  # type: ignore[return-value]


def decode_response(payload: bytes) -> Response:
    """Parse a response; raises :class:`MalformedMessageError` or :class:`UnknownMessageTypeError`."""
    return _decode(payload, _RESPONSES)  # type: ignore[return-value]
