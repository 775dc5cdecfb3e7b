"""Participant identifiers: non-zero scalars, their own type (as ``frost-core``'s ``Identifier``).

An identifier is the x-coordinate at which a party's Shamir share is evaluated, so it must never
be zero (that would hand out the secret itself) and identifiers of one party set must be distinct
modulo q (two parties at the same x would hold the same share). Both are checked here, before any
polynomial is evaluated. Identifiers are public: hashable, ordered by their integer value.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from enclave.mpc.errors import EncodingError, InvalidParameters
from enclave.mpc.groups import Group, Scalar

__all__ = ["MAX_PARTIES", "Identifier", "validate_identifiers"]

#: Most parties a decoder accepts in one message (a key's committee, a signer set). Interpolation
#: over ``t + 1`` parties is quadratic, so a peer must not choose the count; 255 is also the
#: largest polynomial degree a renewal commitment may carry.
MAX_PARTIES = 255


@functools.total_ordering
class Identifier:
    """A non-zero element of Z_q naming one participant."""

    __slots__ = ("_value", "group")

    group: Group
    _value: int

    def __init__(self, group: Group, value: int) -> None:
        if not 0 < value < group.order:
            raise InvalidParameters("identifier must be in [1, q)")
        object.__setattr__(self, "group", group)
        object.__setattr__(self, "_value", value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Identifier is immutable")

    @classmethod
    def from_int(cls, group: Group, value: int) -> Identifier:
        """The identifier ``value``; refuses 0 and values >= q (no silent reduction)."""
        return cls(group, value)

    @classmethod
    def from_bytes(cls, group: Group, data: bytes) -> Identifier:
        """Strict decoding of the canonical scalar encoding; zero is refused."""
        scalar = group.decode_scalar(data)
        if scalar.is_zero():
            raise EncodingError("identifier", "zero is not a valid identifier")
        return cls(group, int(scalar))

    def to_scalar(self) -> Scalar:
        return self.group.scalar(self._value)

    def to_bytes(self) -> bytes:
        return self.to_scalar().to_bytes()

    def __int__(self) -> int:
        return self._value

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Identifier):
            return NotImplemented
        return other.group is self.group and other._value == self._value

    def __lt__(self, other: Identifier) -> bool:
        if other.group is not self.group:
            raise InvalidParameters("identifiers from different groups")
        return self._value < other._value

    def __hash__(self) -> int:
        return hash((self.group.name, self._value))

    def __repr__(self) -> str:
        return f"Identifier({self.group.name}, {self._value})"


def validate_identifiers(group: Group, identifiers: Iterable[Identifier]) -> tuple[Identifier, ...]:
    """Check a party set (same group, distinct) and return it sorted.

    Identifiers are non-zero and < q by construction, so distinctness of the integers is
    distinctness modulo q.
    """
    items = tuple(identifiers)
    for ident in items:
        if ident.group is not group:
            raise InvalidParameters("identifier from a different group")
    if len(set(items)) != len(items):
        raise InvalidParameters("duplicate identifiers")
    return tuple(sorted(items))
