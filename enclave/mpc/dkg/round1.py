"""DKG round one (FROST paper KeyGen round 1; ZF ``dkg::part1``).

Each participant samples a random polynomial ``f_i`` of degree ``t``, commits to its
coefficients (Feldman, ``C_ij = a_ij * G``), proves possession of ``a_i0`` bound to the session,
and broadcasts :class:`~enclave.mpc.dkg.messages.Round1Package`. The secret state stays in
:class:`Round1Secret`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from enclave.mpc.dkg.messages import Round1Package
from enclave.mpc.dkg.params import DkgParameters
from enclave.mpc.dkg.pop import PopScheme, SessionBoundPop, prove
from enclave.mpc.errors import InvalidParameters
from enclave.mpc.identifiers import Identifier
from enclave.mpc.randomness import RandomSource
from enclave.mpc.shamir import Polynomial

__all__ = ["Round1Secret", "part1", "part1_with_polynomial"]

SESSION_BOUND = SessionBoundPop()


@dataclass(frozen=True, slots=True, eq=False)
class Round1Secret:
    params: DkgParameters
    me: Identifier
    polynomial: Polynomial = field(repr=False)
    package: Round1Package
    pop: PopScheme

    def __repr__(self) -> str:
        return f"Round1Secret({int(self.me)}, <redacted>)"


def part1_with_polynomial(
    params: DkgParameters,
    me: Identifier,
    polynomial: Polynomial,
    rng: RandomSource,
    *,
    pop: PopScheme = SESSION_BOUND,
) -> tuple[Round1Secret, Round1Package]:
    """Round one with a caller-chosen polynomial.

    For dealing a known constant term (resharing an existing share) and for reproducing
    vectors; fresh keys use :func:`part1`.
    """
    params.check_member(me)
    if polynomial.group is not params.group or polynomial.degree != params.threshold:
        raise InvalidParameters("polynomial must have the session's group and degree t")
    if polynomial.coefficients[0].is_zero():
        raise InvalidParameters("the constant term must be non-zero")
    commitment = polynomial.commitments()
    proof = prove(
        pop, params, me, polynomial.coefficients[0], constant=commitment.constant, rng=rng
    )
    package = Round1Package(params.group, params.session_id, commitment, proof)
    return Round1Secret(params, me, polynomial, package, pop), package


def part1(
    params: DkgParameters,
    me: Identifier,
    rng: RandomSource,
    *,
    pop: PopScheme = SESSION_BOUND,
) -> tuple[Round1Secret, Round1Package]:
    """Sample ``f_me`` (uniform, non-zero constant term), commit and prove possession."""
    secret = params.group.random_scalar(rng)
    polynomial = Polynomial.random(params.group, secret, params.threshold, rng)
    return part1_with_polynomial(params, me, polynomial, rng, pop=pop)
