"""Review finding: decoders bound the number of parties a peer can make us process.

``PublicKeyPackage.from_bytes`` (the client decodes one from every node) and
``SigningPackage.from_bytes`` (a node decodes one from the coordinator) accepted up to 65535
parties, and ``VssCommitment.from_bytes`` (DKG round one) as many points. The package check interpolates in the exponent over ``t + 1`` of them — quadratic work —
so one corrupted node could answer with a consistent package of thousands of parties and
threshold ``n - 1`` and pin a client's CPU for minutes. The decoders now refuse more than
:data:`MAX_PARTIES` before any point is decoded.
"""

from __future__ import annotations

import pytest

from enclave.mpc.errors import EncodingError
from enclave.mpc.frost.ciphersuite import FROST_SECP256K1_SHA256, suite_encoder
from enclave.mpc.frost.round2 import SigningPackage
from enclave.mpc.groups import SECP256K1
from enclave.mpc.identifiers import MAX_PARTIES, Identifier
from enclave.mpc.keys import PublicKeyPackage
from enclave.mpc.shamir import split_secret
from enclave.mpc.vss import VssCommitment

from .rng import SeededRandom

G = SECP256K1


def _package(n: int) -> PublicKeyPackage:
    rng = SeededRandom("review-party-count")
    ids = [Identifier(G, i) for i in range(1, n + 1)]
    _, poly = split_secret(G, G.random_scalar(rng), 1, ids, rng)
    c = poly.commitments()
    return PublicKeyPackage(G, c.constant, {i: c.evaluate(i) for i in ids}, 1)


def test_a_public_package_with_too_many_parties_is_refused() -> None:
    data = _package(MAX_PARTIES + 1).to_bytes()
    with pytest.raises(EncodingError) as caught:
        PublicKeyPackage.from_bytes(data)
    assert caught.value.field == "count"


def test_a_public_package_at_the_limit_decodes() -> None:
    package = _package(MAX_PARTIES)
    assert PublicKeyPackage.from_bytes(package.to_bytes()).identifiers == package.identifiers


def test_a_signing_package_with_too_many_signers_is_refused() -> None:
    g = G.generator()
    n = MAX_PARTIES + 1
    enc = suite_encoder("frost/round2/package", FROST_SECP256K1_SHA256)
    enc.var_bytes(b"review-session").var_bytes(b"msg").count(n)
    for i in range(1, n + 1):
        enc.identifier(Identifier(G, i)).point(g).point(g + g)
    with pytest.raises(EncodingError) as caught:
        SigningPackage.from_bytes(enc.finish())
    assert caught.value.field == "count"


def test_a_commitment_of_more_than_max_parties_points_is_refused() -> None:
    g = G.generator()
    commitment = VssCommitment(G, tuple(g for _ in range(MAX_PARTIES + 1)))
    with pytest.raises(EncodingError) as caught:
        VssCommitment.from_bytes(commitment.to_bytes())
    assert caught.value.field == "count"
    at_limit = VssCommitment(G, tuple(g for _ in range(MAX_PARTIES)))
    assert VssCommitment.from_bytes(at_limit.to_bytes()).points == at_limit.points
