"""Prime-order groups the MPC protocols are written against: secp256k1 and Ed25519.

Every protocol in ``enclave.mpc`` sees only :class:`Group`, :class:`Scalar` and :class:`Point`;
a suite is one small subclass that maps those operations onto a vetted library:

* **secp256k1** — points through coincurve (libsecp256k1). Secret-dependent scalar
  multiplications (``base_mul``, ``Point * Scalar``) run inside libsecp256k1, which is constant
  time. coincurve cannot represent the point at infinity and refuses zero scalars, so the
  identity is represented here (``_impl is None``) and ``k = 0`` short-circuits to it.
  *Limitation:* scalar arithmetic mod q (``+ - * invert``) uses Python integers, which are not
  constant time; libsecp256k1's scalar API is not exposed by coincurve. The timing signal is
  confined to big-integer arithmetic inside one enclave (side channels on a single host are out
  of scope in the threat model) and no branch here depends on a secret value.
* **Ed25519** — everything through libsodium's low-level bindings in PyNaCl: scalar arithmetic
  with ``crypto_core_ed25519_scalar_*`` and multiplications with the ``*_noclamp`` functions.
  libsodium reduces out-of-range scalars silently and raises on identity results, so scalars are
  checked canonical (< L) before use and the identity / zero cases are handled here.

Decoding is strict (one encoding per value): wrong lengths, scalars >= q, points off the curve or
with non-canonical coordinates, and the identity are refused with :class:`EncodingError`; for
Ed25519 small-order and mixed-order points are refused too
(``crypto_core_ed25519_is_valid_point`` checks canonical, on-curve, prime-order subgroup).

Encodings: secp256k1 scalars 32 bytes big-endian, points 33-byte SEC1 compressed (the identity,
only produced by :meth:`Point.to_bytes` for arithmetic results and never accepted by
:meth:`Group.decode_point`, is 33 zero bytes); Ed25519 scalars 32 bytes little-endian, points the
32-byte RFC 8032 encoding (identity ``01 00..00``).
"""

from __future__ import annotations

import hmac
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import overload

import coincurve
from nacl import bindings as sodium

from enclave.mpc.errors import EncodingError, InvalidParameters
from enclave.mpc.randomness import RandomSource, draw

__all__ = ["ED25519", "GROUPS", "SECP256K1", "Group", "Point", "Scalar", "group_by_name"]


class Scalar:
    """An element of Z_q, immutable. Possibly secret: prints ``<redacted>``, compares in constant
    time, is not hashable, and exposes its value only through :meth:`to_bytes` / ``int()``."""

    __slots__ = ("_data", "group")

    group: Group
    _data: bytes

    def __init__(self, group: Group, data: bytes) -> None:
        # Internal: ``data`` is the canonical encoding, already validated by the group.
        object.__setattr__(self, "group", group)
        object.__setattr__(self, "_data", data)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Scalar is immutable")

    def _other(self, other: Scalar) -> bytes:
        if other.group is not self.group:
            raise InvalidParameters("scalars from different groups")
        return other._data

    def __add__(self, other: Scalar) -> Scalar:
        return Scalar(self.group, self.group._s_add(self._data, self._other(other)))

    def __sub__(self, other: Scalar) -> Scalar:
        return Scalar(self.group, self.group._s_sub(self._data, self._other(other)))

    def __neg__(self) -> Scalar:
        return Scalar(self.group, self.group._s_neg(self._data))

    @overload
    def __mul__(self, other: Scalar) -> Scalar: ...
    @overload
    def __mul__(self, other: Point) -> Point: ...
    def __mul__(self, other: Scalar | Point) -> Scalar | Point:
        if isinstance(other, Point):
            return other * self
        return Scalar(self.group, self.group._s_mul(self._data, self._other(other)))

    def invert(self) -> Scalar:
        """Multiplicative inverse; refuses zero (which has none)."""
        if self.is_zero():
            raise InvalidParameters("zero scalar has no inverse")
        return Scalar(self.group, self.group._s_inv(self._data))

    def is_zero(self) -> bool:
        return hmac.compare_digest(self._data, bytes(len(self._data)))

    def to_bytes(self) -> bytes:
        """The canonical fixed-length encoding (the one explicit accessor of the value)."""
        return self._data

    def __int__(self) -> int:
        return self.group._s_to_int(self._data)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Scalar):
            return NotImplemented
        return other.group is self.group and hmac.compare_digest(self._data, other._data)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Scalar({self.group.name}, <redacted>)"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("Scalar values are not picklable")


class Point:
    """A group element, immutable and public; the identity is representable."""

    __slots__ = ("_data", "_impl", "group")

    group: Group
    _data: bytes
    _impl: object

    def __init__(self, group: Group, data: bytes, impl: object) -> None:
        # Internal: ``data`` is the canonical encoding, ``impl`` the library object (or None).
        object.__setattr__(self, "group", group)
        object.__setattr__(self, "_data", data)
        object.__setattr__(self, "_impl", impl)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Point is immutable")

    def _check(self, other: Point) -> Point:
        if other.group is not self.group:
            raise InvalidParameters("points from different groups")
        return other

    def __add__(self, other: Point) -> Point:
        return self.group._p_add(self, self._check(other))

    def __neg__(self) -> Point:
        return self.group._p_neg(self)

    def __sub__(self, other: Point) -> Point:
        return self.group._p_add(self, self.group._p_neg(self._check(other)))

    def __mul__(self, k: Scalar) -> Point:
        if k.group is not self.group:
            raise InvalidParameters("scalar and point from different groups")
        return self.group._p_mul(self, k)

    __rmul__ = __mul__

    def is_identity(self) -> bool:
        return self._data == self.group._identity_bytes

    def to_bytes(self) -> bytes:
        """Canonical encoding (see the module docstring)."""
        return self._data

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Point):
            return NotImplemented
        return other.group is self.group and other._data == self._data

    def __hash__(self) -> int:
        return hash((self.group.name, self._data))

    def __repr__(self) -> str:
        return f"Point({self.group.name}, {self._data.hex()})"


class Group(ABC):
    """A prime-order group with its scalar field; one instance per suite."""

    name: str
    order: int
    scalar_length: int
    element_length: int
    _identity_bytes: bytes

    # -- scalars ---------------------------------------------------------------------------
    @abstractmethod
    def _s_add(self, a: bytes, b: bytes) -> bytes: ...
    @abstractmethod
    def _s_sub(self, a: bytes, b: bytes) -> bytes: ...
    @abstractmethod
    def _s_mul(self, a: bytes, b: bytes) -> bytes: ...
    @abstractmethod
    def _s_neg(self, a: bytes) -> bytes: ...
    @abstractmethod
    def _s_inv(self, a: bytes) -> bytes: ...
    @abstractmethod
    def _s_to_int(self, a: bytes) -> int: ...
    @abstractmethod
    def _s_from_int(self, value: int) -> bytes:
        """Encode ``value`` already in [0, q)."""

    @abstractmethod
    def _s_reduce_wide(self, data: bytes) -> bytes:
        """Reduce a 64-byte string, read in the group's byte order, modulo q."""

    def scalar(self, value: int) -> Scalar:
        """The scalar ``value mod q`` (for public constants; negative values allowed)."""
        return Scalar(self, self._s_from_int(value % self.order))

    def decode_scalar(self, data: bytes) -> Scalar:
        """Strict decoding: exactly ``scalar_length`` bytes encoding a value < q."""
        if len(data) != self.scalar_length:
            raise EncodingError("scalar", f"expected {self.scalar_length} bytes, got {len(data)}")
        if self._s_to_int(data) >= self.order:
            raise EncodingError("scalar", "not reduced modulo the group order")
        return Scalar(self, bytes(data))

    def scalar_from_digest(self, digest: bytes) -> Scalar:
        """Reduce a hash output (up to 64 bytes, group byte order) modulo q.

        With 64 input bytes the bias is below 2^-250 for both groups, so this is how uniform
        scalars are derived from hashes and random bytes.
        """
        if len(digest) > 64:
            raise InvalidParameters("digest longer than 64 bytes")
        return Scalar(self, self._s_reduce_wide(digest))

    def random_scalar(self, rng: RandomSource) -> Scalar:
        """A uniform non-zero scalar from 64 random bytes (wide reduction)."""
        while True:
            k = self.scalar_from_digest(draw(rng, 64))
            if not k.is_zero():
                return k

    def zero(self) -> Scalar:
        return self.scalar(0)

    def one(self) -> Scalar:
        return self.scalar(1)

    # -- points ----------------------------------------------------------------------------
    @abstractmethod
    def decode_point(self, data: bytes) -> Point:
        """Strict decoding of a non-identity, prime-order point; raises :class:`EncodingError`."""

    def decode_point_or_identity(self, data: bytes) -> Point:
        """As :meth:`decode_point`, but also accepts the identity's encoding.

        Only for values that may legitimately be the identity (e.g. the constant-term
        commitment of a zero-sharing in refresh); everything else uses :meth:`decode_point`.
        """
        if data == self._identity_bytes:
            return self.identity()
        return self.decode_point(data)

    @abstractmethod
    def generator(self) -> Point: ...

    @abstractmethod
    def identity(self) -> Point: ...

    @abstractmethod
    def base_mul(self, k: Scalar) -> Point:
        """``k * G`` computed inside the library (constant time in ``k``)."""

    @abstractmethod
    def _p_add(self, a: Point, b: Point) -> Point: ...
    @abstractmethod
    def _p_neg(self, a: Point) -> Point: ...
    @abstractmethod
    def _p_mul(self, p: Point, k: Scalar) -> Point: ...

    def multi_mul(self, pairs: Sequence[tuple[Scalar, Point]]) -> Point:
        """``sum k_i * P_i`` (each product computed inside the library)."""
        acc = self.identity()
        for k, p in pairs:
            acc = acc + p * k
        return acc

    def __repr__(self) -> str:
        return f"Group({self.name})"

    def __reduce__(self) -> str:
        # Groups are singletons; pickling refers to the module-level instance.
        return self.name.upper()


# ---------------------------------------------------------------------------------------------
_SECP_Q = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


class _Secp256k1(Group):
    """secp256k1 via coincurve; the identity is ``_impl is None``."""

    name = "secp256k1"
    order = _SECP_Q
    scalar_length = 32
    element_length = 33
    _identity_bytes = bytes(33)

    def __init__(self) -> None:
        self._generator = self._wrap(coincurve.PublicKey.from_secret((1).to_bytes(32, "big")))
        self._identity = Point(self, self._identity_bytes, None)

    def _wrap(self, key: coincurve.PublicKey) -> Point:
        return Point(self, key.format(compressed=True), key)

    def _s_to_int(self, a: bytes) -> int:
        return int.from_bytes(a, "big")

    def _s_from_int(self, value: int) -> bytes:
        return value.to_bytes(32, "big")

    def _s_add(self, a: bytes, b: bytes) -> bytes:
        return self._s_from_int((self._s_to_int(a) + self._s_to_int(b)) % _SECP_Q)

    def _s_sub(self, a: bytes, b: bytes) -> bytes:
        return self._s_from_int((self._s_to_int(a) - self._s_to_int(b)) % _SECP_Q)

    def _s_mul(self, a: bytes, b: bytes) -> bytes:
        return self._s_from_int((self._s_to_int(a) * self._s_to_int(b)) % _SECP_Q)

    def _s_neg(self, a: bytes) -> bytes:
        return self._s_from_int((-self._s_to_int(a)) % _SECP_Q)

    def _s_inv(self, a: bytes) -> bytes:
        return self._s_from_int(pow(self._s_to_int(a), -1, _SECP_Q))

    def _s_reduce_wide(self, data: bytes) -> bytes:
        return self._s_from_int(int.from_bytes(data, "big") % _SECP_Q)

    def decode_point(self, data: bytes) -> Point:
        if len(data) != 33 or data[0] not in (2, 3):
            raise EncodingError("point", "expected a 33-byte compressed SEC1 point")
        try:
            key = coincurve.PublicKey(bytes(data))
        except ValueError:
            raise EncodingError("point", "not a point on secp256k1") from None
        point = self._wrap(key)
        if point.to_bytes() != data:  # pragma: no cover - libsecp256k1 parses canonically
            raise EncodingError("point", "non-canonical encoding")
        return point

    def generator(self) -> Point:
        return self._generator

    def identity(self) -> Point:
        return self._identity

    def base_mul(self, k: Scalar) -> Point:
        if k.is_zero():
            return self._identity
        return self._wrap(coincurve.PublicKey.from_secret(k.to_bytes()))

    def _p_add(self, a: Point, b: Point) -> Point:
        if a._impl is None:
            return b
        if b._impl is None:
            return a
        try:
            key = coincurve.PublicKey.combine_keys([a._impl, b._impl])  # type: ignore[list-item]
        except ValueError:
            return self._identity  # P + (-P): coincurve cannot represent the result
        return self._wrap(key)

    def _p_neg(self, a: Point) -> Point:
        if a._impl is None:
            return a
        data = bytes([a._data[0] ^ 1]) + a._data[1:]  # flip the y parity: -(x, y) = (x, -y)
        return self._wrap(coincurve.PublicKey(data))

    def _p_mul(self, p: Point, k: Scalar) -> Point:
        if p._impl is None or k.is_zero():
            return self._identity
        impl = p._impl
        assert isinstance(impl, coincurve.PublicKey)
        return self._wrap(impl.multiply(k.to_bytes()))

    def multi_mul(self, pairs: Sequence[tuple[Scalar, Point]]) -> Point:
        keys = []
        for k, p in pairs:
            if p.group is not self or k.group is not self:
                raise InvalidParameters("scalar or point from a different group")
            if p._impl is None or k.is_zero():
                continue
            impl = p._impl
            assert isinstance(impl, coincurve.PublicKey)
            keys.append(impl.multiply(k.to_bytes()))
        if not keys:
            return self._identity
        if len(keys) == 1:
            return self._wrap(keys[0])
        try:
            return self._wrap(coincurve.PublicKey.combine_keys(keys))
        except ValueError:
            return self._identity


# ---------------------------------------------------------------------------------------------
_ED_L = 2**252 + 27742317777372353535851937790883648493


class _Ed25519(Group):
    """Ed25519 (the prime-order subgroup of edwards25519) via libsodium."""

    name = "ed25519"
    order = _ED_L
    scalar_length = 32
    element_length = 32
    _identity_bytes = bytes([1]) + bytes(31)

    def __init__(self) -> None:
        self._generator = Point(
            self, sodium.crypto_scalarmult_ed25519_base_noclamp(self._s_from_int(1)), None
        )
        self._identity = Point(self, self._identity_bytes, None)

    def _s_to_int(self, a: bytes) -> int:
        return int.from_bytes(a, "little")

    def _s_from_int(self, value: int) -> bytes:
        return value.to_bytes(32, "little")

    def _s_add(self, a: bytes, b: bytes) -> bytes:
        return bytes(sodium.crypto_core_ed25519_scalar_add(a, b))

    def _s_sub(self, a: bytes, b: bytes) -> bytes:
        return bytes(sodium.crypto_core_ed25519_scalar_sub(a, b))

    def _s_mul(self, a: bytes, b: bytes) -> bytes:
        return bytes(sodium.crypto_core_ed25519_scalar_mul(a, b))

    def _s_neg(self, a: bytes) -> bytes:
        return bytes(sodium.crypto_core_ed25519_scalar_negate(a))

    def _s_inv(self, a: bytes) -> bytes:
        return bytes(sodium.crypto_core_ed25519_scalar_invert(a))

    def _s_reduce_wide(self, data: bytes) -> bytes:
        return bytes(sodium.crypto_core_ed25519_scalar_reduce(data + bytes(64 - len(data))))

    def decode_point(self, data: bytes) -> Point:
        if len(data) != 32:
            raise EncodingError("point", f"expected 32 bytes, got {len(data)}")
        # Canonical y, on the curve, not of small order, in the prime-order subgroup.
        if not sodium.crypto_core_ed25519_is_valid_point(bytes(data)):
            raise EncodingError("point", "not a canonical prime-order Ed25519 point")
        return Point(self, bytes(data), None)

    def generator(self) -> Point:
        return self._generator

    def identity(self) -> Point:
        return self._identity

    def base_mul(self, k: Scalar) -> Point:
        if k.is_zero():
            return self._identity  # libsodium refuses to return the identity
        return Point(self, bytes(sodium.crypto_scalarmult_ed25519_base_noclamp(k.to_bytes())), None)

    def _p_add(self, a: Point, b: Point) -> Point:
        return Point(self, bytes(sodium.crypto_core_ed25519_add(a._data, b._data)), None)

    def _p_neg(self, a: Point) -> Point:
        neg = sodium.crypto_core_ed25519_sub(self._identity_bytes, a._data)
        return Point(self, bytes(neg), None)

    def _p_mul(self, p: Point, k: Scalar) -> Point:
        if p.is_identity() or k.is_zero():
            return self._identity  # libsodium refuses small-order inputs and identity results
        if p._data == self._generator._data:
            # the same product by libsodium's fixed-base routine (precomputed tables, constant
            # time): ~0.02 ms instead of ~0.12 ms, and every DLEQ proof multiplies G
            return self.base_mul(k)
        product = sodium.crypto_scalarmult_ed25519_noclamp(k.to_bytes(), p._data)
        return Point(self, bytes(product), None)


SECP256K1: Group = _Secp256k1()
ED25519: Group = _Ed25519()
GROUPS: dict[str, Group] = {g.name: g for g in (SECP256K1, ED25519)}


def group_by_name(name: str) -> Group:
    """The group called ``name``; unknown names are an encoding error (they arrive on the wire)."""
    try:
        return GROUPS[name]
    except KeyError:
        raise EncodingError("suite", f"unknown group {name!r}") from None
