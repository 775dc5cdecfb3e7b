"""Shamir sharing, Lagrange interpolation and identifiers, generic over the suite."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from enclave.mpc.errors import EncodingError, InvalidParameters
from enclave.mpc.groups import ED25519, SECP256K1, Group
from enclave.mpc.identifiers import Identifier, validate_identifiers
from enclave.mpc.shamir import Polynomial, lagrange_coefficient, reconstruct, split_secret

from .rng import SeededRandom

SUITES = pytest.mark.parametrize("group", [SECP256K1, ED25519], ids=lambda g: g.name)


def ids(group: Group, *values: int) -> list[Identifier]:
    return [Identifier.from_int(group, v) for v in values]


@SUITES
@given(
    tn=st.integers(min_value=2, max_value=7).flatmap(
        lambda n: st.tuples(st.integers(min_value=1, max_value=n - 1), st.just(n))
    ),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_any_t_plus_1_shares_reconstruct(group: Group, tn: tuple[int, int], seed: int) -> None:
    t, n = tn
    rng = SeededRandom(seed)
    secret = group.random_scalar(rng)
    shares, poly = split_secret(group, secret, t, ids(group, *range(1, n + 1)), rng)
    assert poly.degree == t
    for subset in itertools.combinations(shares, t + 1):
        assert reconstruct(group, {i: shares[i] for i in subset}) == secret
    # t shares interpolate to something else (the polynomial has degree t, not t - 1).
    too_few = list(shares)[:t]
    assert reconstruct(group, {i: shares[i] for i in too_few}) != secret


@SUITES
def test_lagrange_coefficients_interpolate_at_any_point(group: Group) -> None:
    rng = SeededRandom(7)
    poly = Polynomial.random(group, group.scalar(42), 3, rng)
    signers = ids(group, 2, 5, 9, 11)
    for at in (0, 1, 3, 17):
        value = group.zero()
        for i in signers:
            value = value + lagrange_coefficient(group, i, signers, at=at) * poly.evaluate(i)
        expected = poly.evaluate(Identifier.from_int(group, at)) if at else group.scalar(42)
        assert value == expected


@SUITES
def test_identifier_rules(group: Group) -> None:
    with pytest.raises(InvalidParameters):
        Identifier.from_int(group, 0)
    with pytest.raises(InvalidParameters):
        Identifier.from_int(group, group.order)
    with pytest.raises(EncodingError):
        Identifier.from_bytes(group, bytes(32))
    one = Identifier.from_int(group, 1)
    assert Identifier.from_bytes(group, one.to_bytes()) == one
    with pytest.raises(InvalidParameters, match="duplicate"):
        validate_identifiers(group, ids(group, 1, 2, 1))
    assert validate_identifiers(group, ids(group, 3, 1, 2)) == tuple(ids(group, 1, 2, 3))


@SUITES
def test_split_refuses_bad_parameters_before_evaluating(group: Group) -> None:
    rng = SeededRandom(1)
    s = group.scalar(5)
    with pytest.raises(InvalidParameters, match="duplicate"):
        split_secret(group, s, 1, ids(group, 1, 1, 2), rng)
    with pytest.raises(InvalidParameters, match="threshold"):
        split_secret(group, s, 0, ids(group, 1, 2, 3), rng)
    with pytest.raises(InvalidParameters, match="more parties"):
        split_secret(group, s, 3, ids(group, 1, 2, 3), rng)
    other = ED25519 if group is SECP256K1 else SECP256K1
    with pytest.raises(InvalidParameters, match="different group"):
        split_secret(group, s, 1, ids(other, 1, 2, 3), rng)


@SUITES
def test_lagrange_refuses_bad_signer_sets(group: Group) -> None:
    with pytest.raises(InvalidParameters, match="not in the signer set"):
        lagrange_coefficient(group, Identifier.from_int(group, 4), ids(group, 1, 2))
    with pytest.raises(InvalidParameters, match="duplicate"):
        lagrange_coefficient(group, Identifier.from_int(group, 1), ids(group, 1, 1, 2))


@SUITES
def test_polynomial_is_redacted(group: Group) -> None:
    poly = Polynomial(group, [group.scalar(0xABCDEF)])
    assert "redacted" in repr(poly)
    assert "abcdef" not in repr(poly).lower()
