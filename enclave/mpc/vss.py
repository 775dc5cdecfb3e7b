"""Feldman verifiable secret sharing: public commitments to a sharing polynomial.

For a dealer polynomial ``f(x) = a_0 + a_1 x + ... + a_t x^t`` the commitment is
``C_j = a_j * G``. Anyone can compute party ``i``'s public share ``f(i) * G = sum_j C_j * i^j``
and so check a dealt share ``s_i`` with ``s_i * G == sum_j C_j * i^j`` (Feldman 1987) without
learning anything beyond ``a_0 * G``. Threshold convention: ``t`` is the degree; ``t + 1``
shares reconstruct.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from enclave.mpc.encoding import Decoder, Encoder
from enclave.mpc.errors import EncodingError, InvalidParameters, InvalidShare
from enclave.mpc.groups import Group, Point, Scalar
from enclave.mpc.identifiers import MAX_PARTIES, Identifier

__all__ = ["VssCommitment"]

_KIND = "vss-commitment"


@dataclass(frozen=True, slots=True)
class VssCommitment:
    """``points[j] = a_j * G``; ``degree == len(points) - 1`` is the threshold ``t``."""

    group: Group
    points: tuple[Point, ...]

    def __post_init__(self) -> None:
        if not self.points:
            raise InvalidParameters("a commitment needs at least one coefficient")
        for p in self.points:
            if p.group is not self.group:
                raise InvalidParameters("commitment point from a different group")

    @property
    def degree(self) -> int:
        return len(self.points) - 1

    @property
    def constant(self) -> Point:
        """``a_0 * G``: the dealer's public contribution to the group key."""
        return self.points[0]

    def evaluate(self, ident: Identifier) -> Point:
        """``f(ident) * G`` by Horner's rule in the exponent (all values public)."""
        if ident.group is not self.group:
            raise InvalidParameters("identifier from a different group")
        x = ident.to_scalar()
        acc = self.group.identity()
        for c in reversed(self.points):
            acc = acc * x + c
        return acc

    def verify_share(
        self, ident: Identifier, share: Scalar, *, dealer: Identifier | None = None
    ) -> None:
        """Check ``share * G == f(ident) * G``; raise :class:`InvalidShare` naming ``dealer``."""
        if self.group.base_mul(share) != self.evaluate(ident):
            culprits = () if dealer is None else (dealer,)
            raise InvalidShare(culprits, "share does not match the dealer's commitment")

    def __add__(self, other: VssCommitment) -> VssCommitment:
        """The commitment to the sum of two polynomials (padding the shorter one)."""
        if other.group is not self.group:
            raise InvalidParameters("commitments from different groups")
        n = max(len(self.points), len(other.points))
        ident = self.group.identity()
        a = self.points + (ident,) * (n - len(self.points))
        b = other.points + (ident,) * (n - len(other.points))
        return VssCommitment(self.group, tuple(x + y for x, y in zip(a, b, strict=True)))

    @staticmethod
    def sum(group: Group, commitments: Sequence[VssCommitment]) -> VssCommitment:
        acc = VssCommitment(group, (group.identity(),))
        for c in commitments:
            acc = acc + c
        return acc

    def to_bytes(self) -> bytes:
        enc = Encoder(_KIND, self.group).count(len(self.points))
        for p in self.points:
            if p.is_identity():
                raise EncodingError("commitment", "identity point cannot be encoded")
            enc.point(p)
        return enc.finish()

    @classmethod
    def from_bytes(cls, data: bytes, group: Group | None = None) -> VssCommitment:
        dec = Decoder(data, _KIND, group)
        n = dec.count("count", minimum=1, maximum=MAX_PARTIES)  # degree t < n <= MAX_PARTIES
        points = tuple(dec.point(f"points[{j}]") for j in range(n))
        dec.finish()
        return cls(dec.group, points)
