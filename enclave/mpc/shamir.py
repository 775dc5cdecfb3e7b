"""Shamir secret sharing over a group's scalar field, and Lagrange interpolation.

Threshold convention used across ``enclave.mpc``: *threshold t* is the polynomial degree, so any
``t + 1`` shares reconstruct and ``t`` reveal nothing ("t-of-n nodes may be corrupted"; FROST's
``min_signers`` is ``t + 1``).

Invariants checked before any polynomial is evaluated: ``1 <= t < n``, identifiers non-zero (by
their type) and distinct modulo q, all from the dealer's group.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from enclave.mpc.errors import InvalidParameters
from enclave.mpc.groups import Group, Scalar
from enclave.mpc.identifiers import Identifier, validate_identifiers
from enclave.mpc.randomness import RandomSource
from enclave.mpc.vss import VssCommitment

__all__ = [
    "Polynomial",
    "check_threshold",
    "lagrange_coefficient",
    "reconstruct",
    "split_secret",
]


class Polynomial:
    """A secret polynomial ``a_0 + a_1 x + ... + a_t x^t`` (prints ``<redacted>``)."""

    __slots__ = ("coefficients", "group")

    def __init__(self, group: Group, coefficients: Sequence[Scalar]) -> None:
        if not coefficients:
            raise InvalidParameters("a polynomial needs at least one coefficient")
        for c in coefficients:
            if c.group is not group:
                raise InvalidParameters("coefficient from a different group")
        self.group = group
        self.coefficients: tuple[Scalar, ...] = tuple(coefficients)

    @classmethod
    def random(cls, group: Group, constant: Scalar, degree: int, rng: RandomSource) -> Polynomial:
        """A uniformly random polynomial of the given degree with ``f(0) = constant``."""
        if degree < 0:
            raise InvalidParameters("degree must be >= 0")
        rest = [group.random_scalar(rng) for _ in range(degree)]
        return cls(group, [constant, *rest])

    @property
    def degree(self) -> int:
        return len(self.coefficients) - 1

    def evaluate(self, ident: Identifier) -> Scalar:
        """``f(ident)`` by Horner's rule. Never evaluated at 0 (identifiers are non-zero)."""
        if ident.group is not self.group:
            raise InvalidParameters("identifier from a different group")
        x = ident.to_scalar()
        acc = self.group.zero()
        for c in reversed(self.coefficients):
            acc = acc * x + c
        return acc

    def commitments(self) -> VssCommitment:
        """The Feldman commitment ``(a_j * G)_j``."""
        return VssCommitment(self.group, tuple(self.group.base_mul(c) for c in self.coefficients))

    def __repr__(self) -> str:
        return f"Polynomial({self.group.name}, degree={self.degree}, <redacted>)"


def check_threshold(threshold: int, n: int) -> None:
    """``1 <= t < n``: at least two parties are needed to sign, and ``t + 1 <= n`` can."""
    if threshold < 1:
        raise InvalidParameters("threshold (degree) must be >= 1")
    if n <= threshold:
        raise InvalidParameters("need more parties than the threshold (n >= t + 1)")


def split_secret(
    group: Group,
    secret: Scalar,
    threshold: int,
    identifiers: Sequence[Identifier],
    rng: RandomSource,
) -> tuple[dict[Identifier, Scalar], Polynomial]:
    """Deal ``secret`` to ``identifiers`` with a random degree-``threshold`` polynomial."""
    idents = validate_identifiers(group, identifiers)
    check_threshold(threshold, len(idents))
    if secret.group is not group:
        raise InvalidParameters("secret from a different group")
    poly = Polynomial.random(group, secret, threshold, rng)
    return {i: poly.evaluate(i) for i in idents}, poly


def lagrange_coefficient(
    group: Group, ident: Identifier, signers: Sequence[Identifier], at: int = 0
) -> Scalar:
    """``lambda_i(at) = prod_{j != i} (at - x_j) / (x_i - x_j)`` over the signer set.

    Refuses duplicate signers and an ``ident`` that is not among them (RFC 9591 §4.2
    ``derive_interpolating_value``).
    """
    idents = validate_identifiers(group, signers)
    if ident not in idents:
        raise InvalidParameters("identifier is not in the signer set")
    x_at = group.scalar(at)
    x_i = ident.to_scalar()
    num = group.one()
    den = group.one()
    for j in idents:
        if j == ident:
            continue
        x_j = j.to_scalar()
        num = num * (x_at - x_j)
        den = den * (x_i - x_j)
    return num * den.invert()


def reconstruct(group: Group, shares: Mapping[Identifier, Scalar]) -> Scalar:
    """Interpolate ``f(0)`` from shares (tests and policy-gated export only)."""
    idents = validate_identifiers(group, shares.keys())
    if not idents:
        raise InvalidParameters("no shares")
    acc = group.zero()
    for i in idents:
        acc = acc + lagrange_coefficient(group, i, idents) * shares[i]
    return acc
