"""NSM request and response messages: closed, frozen types with a strict CBOR codec.

The Nitro Secure Module speaks CBOR. The wire shapes are those of AWS's reference crate
``aws-nitro-enclaves-nsm-api`` (``src/api/mod.rs``), whose ``Request`` / ``Response`` enums are
serialised by serde as *externally tagged* enums:

- a variant without fields is a bare text string: ``"DescribeNSM"``, ``"GetRandom"``, ``"LockPCR"``;
- a struct variant is a one-entry map from its name to a map of its fields, in declaration order:
  ``{"ExtendPCR": {"index": 16, "data": h'..'}}``;
- the one newtype variant is a one-entry map to its value: ``{"Error": "InvalidIndex"}``.

``u16`` is an unsigned integer, ``Vec<u8>``/``ByteBuf`` a byte string, ``Option`` null or the value,
``BTreeSet<u16>`` an ascending array, ``Digest`` and ``ErrorCode`` text strings.

Both enums are closed here (the crate marks them ``non_exhaustive`` for future firmware, but a
variant we do not know is a variant we cannot reason about): unknown variants, unknown or missing
fields, wrong types, duplicate keys, CBOR tags, floats and trailing bytes are refused with
:class:`~attestation.nsm.errors.NsmMessageError`. :func:`encode_request` / :func:`encode_response`
emit exactly serde's bytes (definite lengths, shortest integers, declaration order), so
``encode(decode(b)) == b`` for every canonical message. :func:`decode_request` additionally requires
that canonical form (the emulated device accepts only what a real client library sends), while
:func:`decode_response` tolerates indefinite lengths and other key orders because newer NSM firmware
is known to stream its CBOR (see the indefinite-length attestation payloads).
"""

from __future__ import annotations

import enum
import io
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar, TypeAlias

import cbor2

from attestation.nsm.errors import NsmMessageError

__all__ = [
    "MAX_NONCE_SIZE",
    "MAX_PUBLIC_KEY_SIZE",
    "MAX_REQUEST_SIZE",
    "MAX_RESPONSE_SIZE",
    "MAX_USER_DATA_SIZE",
    "Attestation",
    "AttestationResponse",
    "DescribeNsm",
    "DescribePcr",
    "DescribePcrResponse",
    "Digest",
    "ErrorCode",
    "ErrorResponse",
    "ExtendPcr",
    "ExtendPcrResponse",
    "GetRandom",
    "GetRandomResponse",
    "LockPcr",
    "LockPcrResponse",
    "LockPcrs",
    "LockPcrsResponse",
    "NsmDescription",
    "Request",
    "Response",
    "decode_request",
    "decode_response",
    "encode_request",
    "encode_response",
]

#: The driver refuses requests over 0x1000 bytes (``NSM_REQUEST_MAX_SIZE`` in the reference driver).
MAX_REQUEST_SIZE = 0x1000
#: The response buffer handed to the kernel is 0x3000 bytes (``NSM_RESPONSE_MAX_SIZE``).
MAX_RESPONSE_SIZE = 0x3000
#: Limits the NSM enforces on attestation inputs (AWS Nitro Enclaves attestation documentation).
#: They are the device's to enforce (it answers ``InputTooLarge``), so the message types carry any
#: size and the emulated NSM applies these.
MAX_USER_DATA_SIZE = 512
MAX_NONCE_SIZE = 512
MAX_PUBLIC_KEY_SIZE = 1024
_U16_MAX = 0xFFFF


class ErrorCode(enum.Enum):
    """``nsm_api::api::ErrorCode``: what the NSM answers instead of a result."""

    SUCCESS = "Success"
    INVALID_ARGUMENT = "InvalidArgument"
    INVALID_INDEX = "InvalidIndex"
    INVALID_RESPONSE = "InvalidResponse"
    READ_ONLY_INDEX = "ReadOnlyIndex"
    INVALID_OPERATION = "InvalidOperation"
    BUFFER_TOO_SMALL = "BufferTooSmall"
    INPUT_TOO_LARGE = "InputTooLarge"
    INTERNAL_ERROR = "InternalError"


class Digest(enum.Enum):
    """``nsm_api::api::Digest``: the hash of the PCR bank (Nitro uses SHA384)."""

    SHA256 = "SHA256"
    SHA384 = "SHA384"
    SHA512 = "SHA512"


class _Kind(enum.Enum):
    """Wire kinds of message fields; each has one validator and one decoder below."""

    U16 = "u16"
    BYTES = "bytes"
    OPT_BYTES = "optional bytes"
    BOOL = "bool"
    TEXT = "text"
    U16_SET = "set of u16"
    DIGEST = "digest"
    ERROR_CODE = "error code"


def _is_u16(value: object) -> bool:
    return type(value) is int and 0 <= value <= _U16_MAX


_VALIDATORS: Mapping[_Kind, Callable[[object], bool]] = {
    _Kind.U16: _is_u16,
    _Kind.BYTES: lambda v: type(v) is bytes,
    _Kind.OPT_BYTES: lambda v: v is None or type(v) is bytes,
    _Kind.BOOL: lambda v: type(v) is bool,
    _Kind.TEXT: lambda v: type(v) is str,
    _Kind.U16_SET: lambda v: type(v) is frozenset and all(_is_u16(x) for x in v),
    _Kind.DIGEST: lambda v: isinstance(v, Digest),
    _Kind.ERROR_CODE: lambda v: isinstance(v, ErrorCode),
}


def _valid(kind: _Kind, value: object) -> bool:
    """Whether a Python value is a valid in-memory value of ``kind`` (exact types, no subclasses)."""
    return _VALIDATORS[kind](value)


def _to_wire(kind: _Kind, value: Any) -> Any:
    if kind is _Kind.U16_SET:
        return sorted(value)
    if kind in (_Kind.DIGEST, _Kind.ERROR_CODE):
        return value.value
    return value


def _from_wire(kind: _Kind, value: Any, where: str) -> Any:
    """Decode one field, refusing any value whose CBOR type is not exactly the expected one."""
    if kind is _Kind.U16_SET:
        if type(value) is not list or not all(_is_u16(v) for v in value):
            raise NsmMessageError(f"{where}: expected an array of u16")
        if any(a >= b for a, b in itertools.pairwise(value)):
            raise NsmMessageError(f"{where}: set elements must be strictly ascending")
        return frozenset(value)
    if kind in (_Kind.DIGEST, _Kind.ERROR_CODE):
        enum_type: type[Digest] | type[ErrorCode] = Digest if kind is _Kind.DIGEST else ErrorCode
        if type(value) is not str:
            raise NsmMessageError(f"{where}: expected a {kind.value} string")
        try:
            return enum_type(value)
        except ValueError:
            raise NsmMessageError(f"{where}: unknown {kind.value} {value!r}") from None
    if not _valid(kind, value):
        raise NsmMessageError(f"{where}: expected {kind.value}, got {type(value).__name__}")
    return value


class _Message:
    """Common machinery: each variant declares its serde name and its fields' wire kinds."""

    __slots__ = ()
    TAG: ClassVar[str]
    KINDS: ClassVar[tuple[_Kind, ...]] = ()
    #: serde newtype variant (``Error(ErrorCode)``): the single field is the map value itself.
    NEWTYPE: ClassVar[bool] = False

    def __post_init__(self) -> None:
        for field, kind in zip(fields(self), self.KINDS, strict=True):  # type: ignore[arg-type]
            if not _valid(kind, getattr(self, field.name)):
                raise NsmMessageError(f"{self.TAG}.{field.name}: expected {kind.value}")

    def to_wire(self) -> Any:
        """The serde data model value (before CBOR) of this variant."""
        if not self.KINDS:
            return self.TAG
        names = [f.name for f in fields(self)]  # type: ignore[arg-type]
        if self.NEWTYPE:
            return {self.TAG: _to_wire(self.KINDS[0], getattr(self, names[0]))}
        body = {
            _wire_name(n): _to_wire(k, getattr(self, n))
            for n, k in zip(names, self.KINDS, strict=True)
        }
        return {self.TAG: body}

    @classmethod
    def from_wire(cls, body: Any) -> Any:
        """Build the variant from its map body (``None`` for unit variants)."""
        names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
        factory: Callable[..., Any] = cls
        if not cls.KINDS:
            return factory()
        if cls.NEWTYPE:
            return factory(_from_wire(cls.KINDS[0], body, cls.TAG))
        if type(body) is not dict:
            raise NsmMessageError(f"{cls.TAG}: expected a map of fields")
        expected = [_wire_name(n) for n in names]
        if set(body) != set(expected):
            got = sorted(map(repr, body))
            raise NsmMessageError(f"{cls.TAG}: fields {got}, expected {expected}")
        values: dict[str, Any] = {
            n: _from_wire(k, body[_wire_name(n)], f"{cls.TAG}.{_wire_name(n)}")
            for n, k in zip(names, cls.KINDS, strict=True)
        }
        return factory(**values)


def _wire_name(attribute: str) -> str:
    # ``range`` is the wire name of LockPCRs' field; the attribute avoids shadowing the builtin.
    return "range" if attribute == "count" else attribute


# ---- requests ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DescribePcr(_Message):
    """Read PCR ``index`` and whether it is locked."""

    TAG: ClassVar[str] = "DescribePCR"
    KINDS: ClassVar[tuple[_Kind, ...]] = (_Kind.U16,)
    index: int


@dataclass(frozen=True, slots=True)
class ExtendPcr(_Message):
    """Extend PCR ``index``: ``PCR = H(PCR || data)``."""

    TAG: ClassVar[str] = "ExtendPCR"
    KINDS: ClassVar[tuple[_Kind, ...]] = (_Kind.U16, _Kind.BYTES)
    index: int
    data: bytes


@dataclass(frozen=True, slots=True)
class LockPcr(_Message):
    """Make PCR ``index`` read-only until the enclave terminates."""

    TAG: ClassVar[str] = "LockPCR"
    KINDS: ClassVar[tuple[_Kind, ...]] = (_Kind.U16,)
    index: int


@dataclass(frozen=True, slots=True)
class LockPcrs(_Message):
    """Lock PCRs ``[0, count)`` (wire field ``range``)."""

    TAG: ClassVar[str] = "LockPCRs"
    KINDS: ClassVar[tuple[_Kind, ...]] = (_Kind.U16,)
    count: int


@dataclass(frozen=True, slots=True)
class DescribeNsm(_Message):
    """Ask for the module's version, id and PCR bank shape."""

    TAG: ClassVar[str] = "DescribeNSM"


@dataclass(frozen=True, slots=True)
class Attestation(_Message):
    """Ask for a signed attestation document binding the optional fields."""

    TAG: ClassVar[str] = "Attestation"
    KINDS: ClassVar[tuple[_Kind, ...]] = (_Kind.OPT_BYTES,) * 3
    user_data: bytes | None = None
    nonce: bytes | None = None
    public_key: bytes | None = None


@dataclass(frozen=True, slots=True)
class GetRandom(_Message):
    """Ask for entropy from the NSM's hardware RNG."""

    TAG: ClassVar[str] = "GetRandom"


Request: TypeAlias = (
    DescribePcr | ExtendPcr | LockPcr | LockPcrs | DescribeNsm | Attestation | GetRandom
)

# ---- responses --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DescribePcrResponse(_Message):
    """PCR state: ``lock`` is true when read-only; ``data`` the current value."""

    TAG: ClassVar[str] = "DescribePCR"
    KINDS: ClassVar[tuple[_Kind, ...]] = (_Kind.BOOL, _Kind.BYTES)
    lock: bool
    data: bytes


@dataclass(frozen=True, slots=True)
class ExtendPcrResponse(_Message):
    """The PCR value after the extension."""

    TAG: ClassVar[str] = "ExtendPCR"
    KINDS: ClassVar[tuple[_Kind, ...]] = (_Kind.BYTES,)
    data: bytes


@dataclass(frozen=True, slots=True)
class LockPcrResponse(_Message):
    """The PCR is now locked."""

    TAG: ClassVar[str] = "LockPCR"


@dataclass(frozen=True, slots=True)
class LockPcrsResponse(_Message):
    """The PCR range is now locked."""

    TAG: ClassVar[str] = "LockPCRs"


@dataclass(frozen=True, slots=True)
class NsmDescription(_Message):
    """The DescribeNSM response: module version, id, PCR bank size, locked PCRs, digest."""

    TAG: ClassVar[str] = "DescribeNSM"
    KINDS: ClassVar[tuple[_Kind, ...]] = (
        _Kind.U16,
        _Kind.U16,
        _Kind.U16,
        _Kind.TEXT,
        _Kind.U16,
        _Kind.U16_SET,
        _Kind.DIGEST,
    )
    version_major: int
    version_minor: int
    version_patch: int
    module_id: str
    max_pcrs: int
    locked_pcrs: frozenset[int]
    digest: Digest


@dataclass(frozen=True, slots=True)
class AttestationResponse(_Message):
    """The COSE_Sign1 attestation document, as bytes."""

    TAG: ClassVar[str] = "Attestation"
    KINDS: ClassVar[tuple[_Kind, ...]] = (_Kind.BYTES,)
    document: bytes


@dataclass(frozen=True, slots=True)
class GetRandomResponse(_Message):
    """Bytes of entropy."""

    TAG: ClassVar[str] = "GetRandom"
    KINDS: ClassVar[tuple[_Kind, ...]] = (_Kind.BYTES,)
    random: bytes


@dataclass(frozen=True, slots=True)
class ErrorResponse(_Message):
    """The NSM could not complete the request."""

    TAG: ClassVar[str] = "Error"
    KINDS: ClassVar[tuple[_Kind, ...]] = (_Kind.ERROR_CODE,)
    NEWTYPE: ClassVar[bool] = True
    code: ErrorCode


Response: TypeAlias = (
    DescribePcrResponse
    | ExtendPcrResponse
    | LockPcrResponse
    | LockPcrsResponse
    | NsmDescription
    | AttestationResponse
    | GetRandomResponse
    | ErrorResponse
)

_REQUESTS: Mapping[str, type[_Message]] = {
    c.TAG: c
    for c in (DescribePcr, ExtendPcr, LockPcr, LockPcrs, DescribeNsm, Attestation, GetRandom)
}
_RESPONSES: Mapping[str, type[_Message]] = {
    c.TAG: c
    for c in (
        DescribePcrResponse,
        ExtendPcrResponse,
        LockPcrResponse,
        LockPcrsResponse,
        NsmDescription,
        AttestationResponse,
        GetRandomResponse,
        ErrorResponse,
    )
}

# ---- CBOR -------------------------------------------------------------------------------------


def _refuse_tag(_decoder: object, tag: object) -> object:
    raise NsmMessageError("CBOR tags are not allowed in NSM messages")


def _refuse_semantic(*_args: object) -> object:
    raise NsmMessageError("CBOR tags are not allowed in NSM messages")


#: cbor2 decodes the registered tags it knows itself (datetimes, bignums, sets, ...: all below 1100
#: or the self-describe tags 55799..55801) without calling ``tag_hook``; override them all.
_NO_SEMANTIC_TAGS: Mapping[int, Callable[..., object]] = {
    tag: _refuse_semantic for tag in (*range(1100), 55799, 55800, 55801)
}


def _loads(data: bytes, limit: int, what: str) -> Any:
    """Decode exactly one CBOR item: no trailing bytes, no duplicate keys, no tags, bounded size."""
    if type(data) is not bytes:
        raise NsmMessageError(f"{what} must be bytes")
    if not data:
        raise NsmMessageError(f"{what} is empty")
    if len(data) > limit:
        raise NsmMessageError(f"{what} is {len(data)} bytes, over {limit}")
    stream = io.BytesIO(data)
    try:
        decoder = cbor2.CBORDecoder(
            stream,
            allow_duplicate_keys=False,
            tag_hook=_refuse_tag,
            semantic_decoders=_NO_SEMANTIC_TAGS,
            max_depth=8,
        )
        value = decoder.decode()
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        cause = exc.__cause__ if isinstance(exc.__cause__, NsmMessageError) else exc
        raise NsmMessageError(f"{what} is not valid CBOR: {cause}") from None
    if stream.tell() != len(data):
        raise NsmMessageError(f"{what} has {len(data) - stream.tell()} trailing bytes")
    return value


def _decode(value: Any, table: Mapping[str, type[_Message]], what: str) -> Any:
    """Dispatch an externally tagged enum value to its variant class."""
    if type(value) is str:
        cls = table.get(value)
        if cls is None:
            raise NsmMessageError(f"unknown {what} variant {value!r}")
        if cls.KINDS:
            raise NsmMessageError(f"{what} variant {value!r} needs fields")
        return cls.from_wire(None)
    if type(value) is not dict or len(value) != 1:
        raise NsmMessageError(f"{what} must be a variant name or a one-entry map")
    ((tag, body),) = value.items()
    cls = table.get(tag) if type(tag) is str else None
    if cls is None:
        raise NsmMessageError(f"unknown {what} variant {tag!r}")
    if not cls.KINDS:
        raise NsmMessageError(f"{what} variant {tag!r} takes no fields")
    return cls.from_wire(body)


def encode_request(request: Request) -> bytes:
    """Serialise a request exactly as the reference client library does."""
    return bytes(cbor2.dumps(request.to_wire()))


def encode_response(response: Response) -> bytes:
    """Serialise a response exactly as serde_cbor would (used by the emulated NSM)."""
    return bytes(cbor2.dumps(response.to_wire()))


def decode_request(data: bytes) -> Request:
    """Parse a request, refusing anything but the canonical encoding of a known variant."""
    request: Request = _decode(_loads(data, MAX_REQUEST_SIZE, "request"), _REQUESTS, "request")
    if encode_request(request) != data:
        raise NsmMessageError("request is not canonically encoded")
    return request


def decode_response(data: bytes) -> Response:
    """Parse a response from the NSM (definite or indefinite lengths; otherwise strict)."""
    response: Response = _decode(
        _loads(data, MAX_RESPONSE_SIZE, "response"), _RESPONSES, "response"
    )
    return response
