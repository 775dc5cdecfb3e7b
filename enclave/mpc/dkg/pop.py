"""Schnorr proofs of possession of a dealer's constant term ``a_0`` (FROST paper, KeyGen 1-2).

Without them a rushing dealer could pick its commitment as a function of the others' and bias or
fix the group key (rogue-key attack). The proof is ``(R, mu)`` with ``R = k * G`` and
``mu = k + a_0 * c``; it verifies iff ``R == mu * G - c * C_0``.

Two challenge schemes exist because the reference vectors need one that the protocol must not use:

* :class:`SessionBoundPop` (the default) — ``c = hash_to_scalar("dkg/pop", context, i, C_0, R)``
  where ``context`` is the DKG session context (group, session id, threshold, party set), so a
  proof cannot be replayed into another session or by another identity.
* :class:`ZfPop` — the Zcash Foundation ``frost`` challenge ``c = H_dkg(i || C_0 || R)`` with the
  ciphersuite's ``dkg`` hash. It binds no session, which is exactly why it is not the default; it
  exists so that the ZF DKG vectors (whose proofs are fixed) exercise the real verification code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from enclave.mpc.errors import EncodingError, InvalidProof
from enclave.mpc.groups import Group, Point, Scalar
from enclave.mpc.identifiers import Identifier
from enclave.mpc.randomness import RandomSource
from enclave.mpc.transcript import hash_to_scalar

if TYPE_CHECKING:
    from enclave.mpc.dkg.params import DkgParameters
    from enclave.mpc.frost.ciphersuite import Ciphersuite

__all__ = ["PopScheme", "ProofOfPossession", "SessionBoundPop", "ZfPop", "prove", "verify"]


@dataclass(frozen=True, slots=True)
class ProofOfPossession:
    r: Point
    mu: Scalar

    def to_bytes(self) -> bytes:
        return self.r.to_bytes() + self.mu.to_bytes()

    @classmethod
    def from_bytes(cls, group: Group, data: bytes) -> ProofOfPossession:
        n = group.element_length
        if len(data) != n + group.scalar_length:
            raise EncodingError("proof", "wrong length")
        return cls(group.decode_point(data[:n]), group.decode_scalar(data[n:]))


class PopScheme(Protocol):
    """How the proof's challenge is computed."""

    def challenge(
        self, params: DkgParameters, dealer: Identifier, constant: Point, r: Point
    ) -> Scalar: ...


class SessionBoundPop:
    """The default: the challenge commits to the whole session context."""

    def challenge(
        self, params: DkgParameters, dealer: Identifier, constant: Point, r: Point
    ) -> Scalar:
        return hash_to_scalar(
            params.group,
            b"dkg/pop",
            params.context(),
            dealer.to_bytes(),
            constant.to_bytes(),
            r.to_bytes(),
        )


@dataclass(frozen=True, slots=True)
class ZfPop:
    """ZF ``frost`` compatibility (vectors only): ``H_dkg(i || C_0 || R)``, no session binding."""

    suite: Ciphersuite

    def challenge(
        self, params: DkgParameters, dealer: Identifier, constant: Point, r: Point
    ) -> Scalar:
        return self.suite.hdkg(dealer.to_bytes() + constant.to_bytes() + r.to_bytes())


def prove(
    scheme: PopScheme,
    params: DkgParameters,
    dealer: Identifier,
    secret: Scalar,
    *,
    constant: Point,
    rng: RandomSource,
) -> ProofOfPossession:
    k = params.group.random_scalar(rng)
    r = params.group.base_mul(k)
    c = scheme.challenge(params, dealer, constant, r)
    return ProofOfPossession(r, k + secret * c)


def verify(
    scheme: PopScheme,
    params: DkgParameters,
    dealer: Identifier,
    constant: Point,
    proof: ProofOfPossession,
) -> None:
    """Raise :class:`InvalidProof` naming ``dealer`` unless ``R == mu*G - c*C_0``."""
    c = scheme.challenge(params, dealer, constant, proof.r)
    if params.group.base_mul(proof.mu) - constant * c != proof.r:
        raise InvalidProof({dealer}, "proof of possession does not verify")
