"""Keyshard's DLEQ construction (enclave.mpc.dleq.prove / verify) on both suites.

The proof algebra itself is checked byte for byte against RFC 9497 in test_dleq_rfc9497.py;
here: completeness, soundness against wrong statements, binding to the context (protocol,
session, prover), the culprit named, strict proof decoding, and the hedged nonce.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from enclave.mpc.dleq import DleqProof, DleqStatement, ProofContext, prove, verify
from enclave.mpc.errors import EncodingError, InvalidParameters, InvalidProof
from enclave.mpc.groups import ED25519, SECP256K1, Group, Scalar
from enclave.mpc.identifiers import Identifier

from .rng import FixedBytes, SeededRandom

GROUPS = [SECP256K1, ED25519]
SUITES = pytest.mark.parametrize("group", GROUPS, ids=lambda g: g.name)


def _setup(group: Group, seed: int) -> tuple[Scalar, DleqStatement, ProofContext]:
    rng = SeededRandom(seed)
    k = group.random_scalar(rng)
    other = group.base_mul(group.random_scalar(rng))
    statement = DleqStatement(group.generator(), group.base_mul(k), other, other * k)
    context = ProofContext(b"test/v1", b"session-1", Identifier.from_int(group, 3))
    return k, statement, context


@SUITES
@given(seed=st.integers(min_value=0, max_value=2**32))
def test_honest_proof_verifies_and_round_trips(group: Group, seed: int) -> None:
    k, statement, context = _setup(group, seed)
    proof = prove(k, statement, context, SeededRandom(seed + 1))
    verify(statement, proof, context)
    encoded = proof.to_bytes()
    assert len(encoded) == 2 * group.scalar_length
    assert DleqProof.from_bytes(group, encoded).to_bytes() == encoded


@SUITES
def test_wrong_witness_or_statement_is_refused_naming_the_prover(group: Group) -> None:
    k, st_, context = _setup(group, 7)
    # A prover whose second point uses another exponent cannot make a verifying proof.
    bad = DleqStatement(st_.base, st_.public, st_.other_base, st_.other_public + group.generator())
    with pytest.raises(InvalidProof) as err:
        verify(bad, prove(k, bad, context, SeededRandom(1)), context)
    assert err.value.culprits == frozenset({context.prover})
    # A valid proof does not transfer to any other statement.
    proof = prove(k, st_, context, SeededRandom(2))
    for other in (
        DleqStatement(st_.base, st_.public + group.generator(), st_.other_base, st_.other_public),
        DleqStatement(st_.base, st_.public, st_.other_base + group.generator(), st_.other_public),
    ):
        with pytest.raises(InvalidProof):
            verify(other, proof, context)


@SUITES
def test_proof_is_bound_to_protocol_session_and_prover(group: Group) -> None:
    k, statement, context = _setup(group, 11)
    proof = prove(k, statement, context, SeededRandom(3))
    for other in (
        ProofContext(b"test/v2", context.session_id, context.prover),
        ProofContext(context.protocol, b"session-2", context.prover),
        ProofContext(context.protocol, context.session_id, Identifier.from_int(group, 4)),
    ):
        with pytest.raises(InvalidProof) as err:
            verify(statement, proof, other)
        assert err.value.culprits == frozenset({other.prover})


@SUITES
def test_nonce_is_hedged_when_randomness_repeats(group: Group) -> None:
    """With a stuck RNG, two proofs for different statements must still use different r.

    r = s + c·k; equal r across two challenges would reveal k = (s1 - s2) / (c2 - c1).
    """
    k, st1, context = _setup(group, 13)
    other = group.base_mul(group.random_scalar(SeededRandom(99)))
    st2 = DleqStatement(st1.base, st1.public, other, other * k)
    stuck = bytes(32)
    p1 = prove(k, st1, context, FixedBytes(stuck))
    p2 = prove(k, st2, context, FixedBytes(stuck))
    r1 = p1.response + p1.challenge * k
    r2 = p2.response + p2.challenge * k
    assert r1 != r2
    # Same everything, same randomness: deterministic (reproducible for tests).
    assert prove(k, st1, context, FixedBytes(stuck)).to_bytes() == p1.to_bytes()


@SUITES
def test_proof_decoding_is_strict(group: Group) -> None:
    k, statement, context = _setup(group, 17)
    good = prove(k, statement, context, SeededRandom(5)).to_bytes()
    with pytest.raises(EncodingError):
        DleqProof.from_bytes(group, good[:-1])
    with pytest.raises(EncodingError):
        DleqProof.from_bytes(group, good + b"\x00")
    order = group.order.to_bytes(
        group.scalar_length, "big" if group is SECP256K1 else "little"
    )  # q itself: not reduced
    with pytest.raises(EncodingError):
        DleqProof.from_bytes(group, order + good[group.scalar_length :])


def test_statement_validation() -> None:
    g = SECP256K1
    with pytest.raises(InvalidParameters):
        DleqStatement(g.identity(), g.generator(), g.generator(), g.generator())
    with pytest.raises(InvalidParameters):
        DleqStatement(g.generator(), g.generator(), g.identity(), g.generator())
    with pytest.raises(InvalidParameters):
        DleqStatement(g.generator(), g.generator(), ED25519.generator(), g.generator())
    with pytest.raises(InvalidParameters):
        ProofContext(b"", b"s", Identifier.from_int(g, 1))


def test_proof_for_other_group_is_refused() -> None:
    _k, statement, context = _setup(SECP256K1, 19)
    ek, est, ectx = _setup(ED25519, 19)
    foreign = prove(ek, est, ectx, SeededRandom(1))
    with pytest.raises(InvalidProof):
        verify(statement, foreign, context)
