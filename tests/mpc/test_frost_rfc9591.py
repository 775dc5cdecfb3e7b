"""RFC 9591 Appendix E: reproduce every value of the vectors, once per ciphersuite."""

from __future__ import annotations

import pytest

from enclave.mpc.frost.aggregate import aggregate
from enclave.mpc.frost.binding import binding_factor_inputs, compute_binding_factors
from enclave.mpc.frost.ciphersuite import (
    FROST_ED25519_SHA512,
    FROST_SECP256K1_SHA256,
    FROST_SECP256K1_SHA256_TR,
    Ciphersuite,
)
from enclave.mpc.frost.round1 import SigningCommitments, commit, nonce_generate
from enclave.mpc.frost.round2 import SignatureShare, SigningPackage, sign
from enclave.mpc.identifiers import Identifier
from enclave.mpc.keys import KeyShare, PublicKeyPackage
from enclave.mpc.shamir import Polynomial

from .rng import FixedBytes
from .vectors import FrostRfcVector, frost_rfc9591, zf_big_identifier, zf_taproot

SESSION = b"rfc9591-vector"


def check_rfc9591(suite: Ciphersuite, v: FrostRfcVector) -> None:
    g = suite.group
    secret = g.decode_scalar(v.group_secret_key)
    poly = Polynomial(g, [secret, *(g.decode_scalar(c) for c in v.share_polynomial_coefficients)])
    ids = {i: Identifier.from_int(g, i) for i in range(1, v.max_participants + 1)}
    # Trusted-dealer shares (RFC 9591 Appendix C) reproduce the listed participant shares.
    for i, share in v.participant_shares.items():
        assert poly.evaluate(ids[i]).to_bytes() == share
    public = PublicKeyPackage(
        g,
        g.base_mul(secret),
        {ids[i]: g.base_mul(g.decode_scalar(s)) for i, s in v.participant_shares.items()},
        v.min_participants - 1,
    )
    assert public.group_public_key.to_bytes() == v.group_public_key
    keys = {
        i: KeyShare(ids[i], g.decode_scalar(s), public) for i, s in v.participant_shares.items()
    }

    # Round one: nonces from the given randomness hedged with the share; their commitments.
    nonces, commitments = {}, {}
    for o in v.round_one:
        sk = keys[o.identifier].secret_share
        d = nonce_generate(suite, sk, FixedBytes(o.hiding_nonce_randomness))
        e = nonce_generate(suite, sk, FixedBytes(o.binding_nonce_randomness))
        assert (d.to_bytes(), e.to_bytes()) == (o.hiding_nonce, o.binding_nonce)
        rng = FixedBytes(o.hiding_nonce_randomness, o.binding_nonce_randomness)
        n, c = commit(suite, keys[o.identifier], SESSION, rng)
        assert c.hiding.to_bytes() == o.hiding_nonce_commitment
        assert c.binding.to_bytes() == o.binding_nonce_commitment
        nonces[ids[o.identifier]], commitments[ids[o.identifier]] = n, c
    assert tuple(int(i) for i in commitments) == v.participant_list

    # Binding factors and their inputs.
    y = public.group_public_key
    inputs = binding_factor_inputs(suite, y, commitments, v.message)
    factors = compute_binding_factors(suite, y, commitments, v.message)
    for o in v.round_one:
        assert inputs[ids[o.identifier]] == o.binding_factor_input
        assert factors[ids[o.identifier]].to_bytes() == o.binding_factor

    # Round two: signature shares; round-trip the package through its wire encoding.
    package = SigningPackage(suite, SESSION, commitments, v.message)
    assert SigningPackage.from_bytes(package.to_bytes()) == package
    shares: dict[Identifier, SignatureShare] = {}
    for ident, n in nonces.items():
        sig_share = sign(package, n, keys[int(ident)])
        assert sig_share.share.to_bytes() == v.sig_shares[int(ident)]
        assert SignatureShare.from_bytes(sig_share.to_bytes()) == sig_share
        shares[ident] = sig_share

    # Aggregation: the final signature, accepted by the suite's independent verifier.
    signature = aggregate(package, shares, public)
    assert signature == v.signature
    assert suite.verify(y, v.message, signature)
    assert not suite.verify(y, v.message + b"x", signature)
    for c in commitments.values():
        assert SigningCommitments.from_bytes(c.to_bytes()) == c


@pytest.mark.parametrize(
    ("suite", "group_name"),
    [(FROST_ED25519_SHA512, "ed25519"), (FROST_SECP256K1_SHA256, "secp256k1")],
    ids=["ed25519", "secp256k1"],
)
def test_rfc9591_vectors(suite: Ciphersuite, group_name: str) -> None:
    check_rfc9591(suite, frost_rfc9591(group_name))


def test_zf_big_identifier_vector() -> None:
    """Same checks on ZF's vector whose signers are 129, 256 and 257 (multi-byte identifiers)."""
    check_rfc9591(FROST_ED25519_SHA512, zf_big_identifier())


def test_zf_taproot_vector() -> None:
    """ZF's BIP-340 ("tr") suite: every value, and the signature verifies under BIP-340."""
    check_rfc9591(FROST_SECP256K1_SHA256_TR, zf_taproot())
