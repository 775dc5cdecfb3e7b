"""Trusted-dealer key shares for the decryption / refresh / reshare / repair tests.

These protocols start from an existing threshold key; a DKG is not what they test, so a dealer
(Shamir + Feldman from ``enclave.mpc``) sets one up quickly. Tests only: a dealer knows the key.
"""

from __future__ import annotations

from collections.abc import Sequence

from enclave.mpc.groups import Group, Scalar
from enclave.mpc.identifiers import Identifier
from enclave.mpc.keys import KeyShare, PublicKeyPackage
from enclave.mpc.randomness import RandomSource
from enclave.mpc.shamir import split_secret


def identifiers(group: Group, values: Sequence[int]) -> list[Identifier]:
    return [Identifier.from_int(group, v) for v in values]


def deal(
    group: Group, threshold: int, parties: int | Sequence[int], rng: RandomSource
) -> tuple[Scalar, dict[Identifier, KeyShare]]:
    """A random key of degree ``threshold`` shared among ``parties`` (a count or identifiers)."""
    values = range(1, parties + 1) if isinstance(parties, int) else parties
    secret = group.random_scalar(rng)
    shares, poly = split_secret(group, secret, threshold, identifiers(group, values), rng)
    commitment = poly.commitments()
    public = PublicKeyPackage(
        group, commitment.constant, {i: commitment.evaluate(i) for i in shares}, threshold
    )
    return secret, {i: KeyShare(i, s, public) for i, s in shares.items()}
