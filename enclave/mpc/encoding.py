"""Canonical, strict, versioned, suite-tagged encoding for every MPC message and hash input.

Layout of an encoded value::

    version (1 byte) || lp(kind) || lp(suite) || fields...

where ``lp(x) = len(x) as 4-byte big-endian || x``. Fixed-size fields (scalars, points,
identifiers) are written at their group's fixed length; variable-size fields are length-prefixed;
counts are 2-byte big-endian. One value has exactly one encoding, and :class:`Decoder` refuses
everything else: unknown versions, another kind or suite than expected, short input, trailing
bytes, and non-canonical scalars / points (through the group's strict decoders).

:func:`lp_join` is the framing used for every hash input (see ``transcript.py``): length
prefixes make the concatenation injective, so two different field lists never hash alike.
"""

from __future__ import annotations

import struct

from enclave.mpc.errors import EncodingError
from enclave.mpc.groups import Group, Point, Scalar, group_by_name
from enclave.mpc.identifiers import Identifier
from wire.hashing import lp, lp_join

__all__ = ["FORMAT_VERSION", "Decoder", "Encoder", "lp", "lp_join"]

FORMAT_VERSION = 1
_MAX_COUNT = 0xFFFF


class Encoder:
    """Writes one value: the header first, then fields in a fixed order."""

    def __init__(self, kind: str, group: Group) -> None:
        self.group = group
        self._parts: list[bytes] = [
            bytes([FORMAT_VERSION]),
            lp(kind.encode()),
            lp(group.name.encode()),
        ]

    def u8(self, value: int) -> Encoder:
        self._parts.append(struct.pack(">B", value))
        return self

    def count(self, value: int) -> Encoder:
        if not 0 <= value <= _MAX_COUNT:
            raise EncodingError("count", "out of range")
        self._parts.append(struct.pack(">H", value))
        return self

    def var_bytes(self, data: bytes) -> Encoder:
        self._parts.append(lp(data))
        return self

    def scalar(self, value: Scalar) -> Encoder:
        self._parts.append(value.to_bytes())
        return self

    def point(self, value: Point) -> Encoder:
        self._parts.append(value.to_bytes())
        return self

    def identifier(self, value: Identifier) -> Encoder:
        self._parts.append(value.to_bytes())
        return self

    def finish(self) -> bytes:
        return b"".join(self._parts)


class Decoder:
    """Reads one value written by :class:`Encoder`, refusing anything non-canonical."""

    def __init__(self, data: bytes, kind: str, group: Group | None = None) -> None:
        self._data = bytes(data)
        self._pos = 0
        version = self.u8("version")
        if version != FORMAT_VERSION:
            raise EncodingError("version", f"unsupported format version {version}")
        got_kind = self.var_bytes("kind")
        if got_kind != kind.encode():
            raise EncodingError("kind", f"expected {kind!r}")
        suite = self.var_bytes("suite")
        try:
            decoded_group = group_by_name(suite.decode("ascii"))
        except UnicodeDecodeError:
            raise EncodingError("suite", "not ASCII") from None
        if group is not None and decoded_group is not group:
            raise EncodingError("suite", f"expected {group.name}")
        self.group = decoded_group

    def _take(self, n: int, field: str) -> bytes:
        if self._pos + n > len(self._data):
            raise EncodingError(field, "truncated")
        out = self._data[self._pos : self._pos + n]
        self._pos += n
        return out

    def u8(self, field: str) -> int:
        return self._take(1, field)[0]

    def count(self, field: str, *, minimum: int = 0, maximum: int = _MAX_COUNT) -> int:
        (value,) = struct.unpack(">H", self._take(2, field))
        if not minimum <= value <= maximum:
            raise EncodingError(field, f"count {value} outside [{minimum}, {maximum}]")
        return int(value)

    def var_bytes(self, field: str, *, max_length: int = 1 << 20) -> bytes:
        (length,) = struct.unpack(">I", self._take(4, field))
        if length > max_length:
            raise EncodingError(field, "too long")
        return self._take(length, field)

    def scalar(self, field: str) -> Scalar:
        try:
            return self.group.decode_scalar(self._take(self.group.scalar_length, field))
        except EncodingError as exc:
            raise EncodingError(field, exc.reason) from None

    def point(self, field: str) -> Point:
        try:
            return self.group.decode_point(self._take(self.group.element_length, field))
        except EncodingError as exc:
            raise EncodingError(field, exc.reason) from None

    def identifier(self, field: str) -> Identifier:
        try:
            return Identifier.from_bytes(self.group, self._take(self.group.scalar_length, field))
        except EncodingError as exc:
            raise EncodingError(field, exc.reason) from None

    def finish(self) -> None:
        if self._pos != len(self._data):
            raise EncodingError("message", f"{len(self._data) - self._pos} trailing bytes")
