"""Opening shared values with redundancy: the checks of DJNPO20 that make presigning sound.

Damgård, Jakobsen, Nielsen, Pagter, Østergaard, "Fast Threshold ECDSA with Honest Majority"
(SCN 2020, ePrint 2019/889) open two kinds of values among the ``2t + 1`` presigning parties:

* a degree-``t`` sharing **in the exponent** (``R = k·G`` from the points ``R_i = k_i·G``, and
  ``W = a·R`` from ``W_i = a_i·R``). ``2t + 1`` points of a degree-``t`` polynomial carry ``t``
  redundant points: :func:`open_in_exponent` interpolates from the first ``t + 1`` parties (by
  identifier) and checks that the other ``t`` lie on the same polynomial. With at most ``t``
  corrupted parties, at least ``t + 1`` points are honest and fix the true polynomial, so *any*
  wrong point — including a value sent differently to different peers — fails the check at every
  honest receiver that got it. What the check cannot do is name the liar: with exactly ``2t + 1``
  points every set of ``t + 1`` of them is consistent with some degree-``t`` polynomial, so from
  the receiver's view any ``t + 1`` parties could be the honest ones (unique decoding would need
  ``3t + 1`` points). The abort therefore names no culprit; the reason says which value failed.
* a degree-``2t`` sharing **in the clear** (the masked product ``w = a·k + b``):
  :func:`open_scalar` interpolates all ``2t + 1`` shares. There is no redundancy at all here;
  a wrong ``w_i`` is caught later by the paper's check ``W == w·G`` (see ``presign.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from enclave.mpc.errors import InvalidParameters, ProtocolAbort
from enclave.mpc.groups import Group, Point, Scalar
from enclave.mpc.identifiers import Identifier
from enclave.mpc.shamir import lagrange_coefficient

__all__ = ["open_in_exponent", "open_scalar"]


def _interpolate_points(
    group: Group, points: Mapping[Identifier, Point], basis: Sequence[Identifier], at: int
) -> Point:
    return group.multi_mul([(lagrange_coefficient(group, i, basis, at), points[i]) for i in basis])


def open_in_exponent(
    group: Group, points: Mapping[Identifier, Point], degree: int, what: str
) -> Point:
    """Return ``f(0)·G`` for the degree-``degree`` sharing whose ``f(i)·G`` are ``points``.

    Requires at least ``degree + 1`` points; every point beyond the first ``degree + 1`` is a
    redundancy check. Raises :class:`ProtocolAbort` (no culprit can be named, see the module
    docstring) when the points do not lie on one polynomial of that degree.
    """
    parties = tuple(sorted(points))
    if len(parties) < degree + 1:
        raise InvalidParameters(f"opening {what} needs at least {degree + 1} points")
    basis = parties[: degree + 1]
    for j in parties[degree + 1 :]:
        if _interpolate_points(group, points, basis, int(j)) != points[j]:
            raise ProtocolAbort(
                (), f"{what}: the opened points are not consistent with a degree-{degree} sharing"
            )
    return _interpolate_points(group, points, basis, 0)


def open_scalar(group: Group, shares: Mapping[Identifier, Scalar]) -> Scalar:
    """Interpolate ``f(0)`` from all given shares (no redundancy: ``len(shares) = degree + 1``)."""
    parties = tuple(sorted(shares))
    acc = group.zero()
    for i in parties:
        acc = acc + lagrange_coefficient(group, i, parties) * shares[i]
    return acc
