"""The threshold DDH-PRF: any t+1 nodes give the same output, which is the dealer's x·H; a bad
partial is caught and its sender named; encrypt-mode seeds are one-way."""

from __future__ import annotations

import itertools

import pytest

from enclave.mpc.errors import InvalidParameters, InvalidProof
from enclave.mpc.groups import ED25519, SECP256K1
from enclave.mpc.prf import (
    PrfPartial,
    combine,
    encryption_seed,
    evaluate,
    hash_to_point,
    output_key,
)

from .rng import SeededRandom
from .threshold_keys import deal

KEY = b"kms-xks"
SESSION = b"s" * 32


def test_any_t_plus_1_nodes_give_the_same_output_the_dealer_would() -> None:
    rng = SeededRandom("prf")
    secret, shares = deal(ED25519, 2, 5, rng)
    public = next(iter(shares.values())).public
    seed = encryption_seed(bytes(range(32)))
    expected = hash_to_point(KEY, seed) * secret
    outputs = set()
    for chosen in itertools.combinations(shares, 3):
        partials = {i: evaluate(shares[i], KEY, seed, SESSION, rng) for i in chosen}
        value = combine(public, KEY, seed, partials, SESSION)
        assert value == expected
        outputs.add(output_key(public, KEY, seed, value))
    assert len(outputs) == 1
    other = output_key(public, KEY, encryption_seed(bytes(32)), expected)
    assert other not in outputs


def test_a_bad_partial_is_caught_and_its_sender_named() -> None:
    rng = SeededRandom("bad")
    _, shares = deal(ED25519, 1, 3, rng)
    ids = list(shares)
    public = shares[ids[0]].public
    seed = encryption_seed(bytes(32))
    good = evaluate(shares[ids[0]], KEY, seed, SESSION, rng)
    honest = evaluate(shares[ids[1]], KEY, seed, SESSION, rng)
    forged = PrfPartial(ED25519, SESSION, honest.value + ED25519.generator(), honest.proof)
    with pytest.raises(InvalidProof) as caught:
        combine(public, KEY, seed, {ids[0]: good, ids[1]: forged}, SESSION)
    assert caught.value.culprits == frozenset({ids[1]})
    # A proof for another seed, key or session does not verify either.
    for partial, key, seed_used, session in (
        (
            evaluate(shares[ids[1]], KEY, encryption_seed(b"x" * 32), SESSION, rng),
            KEY,
            seed,
            SESSION,
        ),
        (evaluate(shares[ids[1]], b"other", seed, SESSION, rng), KEY, seed, SESSION),
    ):
        with pytest.raises(InvalidProof):
            combine(public, key, seed_used, {ids[0]: good, ids[1]: partial}, session)
    with pytest.raises(InvalidProof) as replayed:  # partials of another session, both named
        combine(public, KEY, seed, {ids[0]: good, ids[1]: honest}, b"t" * 32)
    assert replayed.value.culprits == frozenset(ids[:2])
    with pytest.raises(InvalidParameters, match="need 2"):
        combine(public, KEY, seed, {ids[0]: good}, SESSION)


def test_partial_codec_round_trip() -> None:
    rng = SeededRandom("codec")
    _, shares = deal(ED25519, 1, 3, rng)
    partial = evaluate(next(iter(shares.values())), KEY, bytes(16), SESSION, rng)
    data = partial.to_bytes()
    assert PrfPartial.from_bytes(data, ED25519) == partial
    assert PrfPartial.from_bytes(data).to_bytes() == data


def test_seeds_and_groups() -> None:
    assert len(encryption_seed(bytes(32))) == 16
    assert hash_to_point(KEY, bytes(16)) != hash_to_point(b"kms-other", bytes(16))
    with pytest.raises(InvalidParameters):
        encryption_seed(b"short")
    with pytest.raises(InvalidParameters):
        hash_to_point(KEY, bytes(32))
    _, shares = deal(SECP256K1, 1, 3, SeededRandom("k1"))
    with pytest.raises(InvalidParameters, match="Ed25519"):
        evaluate(next(iter(shares.values())), KEY, bytes(16), SESSION, SeededRandom())
