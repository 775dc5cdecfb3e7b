"""Feldman VSS, keys and the canonical encoding, generic over the suite."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from enclave.mpc.encoding import Decoder, Encoder
from enclave.mpc.errors import EncodingError, InvalidShare, SecretError
from enclave.mpc.groups import ED25519, SECP256K1, Group
from enclave.mpc.identifiers import Identifier
from enclave.mpc.keys import KeyShare, PublicKeyPackage
from enclave.mpc.shamir import split_secret
from enclave.mpc.transcript import Transcript, hash_to_scalar
from enclave.mpc.vss import VssCommitment

from .rng import SeededRandom

SUITES = pytest.mark.parametrize("group", [SECP256K1, ED25519], ids=lambda g: g.name)


def deal(group: Group, t: int, n: int, seed: int = 0):  # type: ignore[no-untyped-def]
    rng = SeededRandom(seed)
    idents = [Identifier.from_int(group, i) for i in range(1, n + 1)]
    secret = group.random_scalar(rng)
    shares, poly = split_secret(group, secret, t, idents, rng)
    return secret, shares, poly.commitments()


@SUITES
@given(seed=st.integers(min_value=0, max_value=2**32), t=st.integers(min_value=1, max_value=4))
def test_every_share_verifies_and_public_shares_match(group: Group, seed: int, t: int) -> None:
    secret, shares, commitment = deal(group, t, t + 2, seed)
    assert commitment.degree == t
    assert commitment.constant == group.base_mul(secret)
    for i, s in shares.items():
        commitment.verify_share(i, s)
        assert commitment.evaluate(i) == group.base_mul(s)
    assert VssCommitment.from_bytes(commitment.to_bytes(), group) == commitment


@SUITES
def test_wrong_share_names_the_dealer(group: Group) -> None:
    _, shares, commitment = deal(group, 2, 4)
    one, dealer = Identifier.from_int(group, 1), Identifier.from_int(group, 3)
    with pytest.raises(InvalidShare) as info:
        commitment.verify_share(one, shares[one] + group.one(), dealer=dealer)
    assert info.value.culprits == frozenset({dealer})


@SUITES
def test_commitment_sum_commits_to_sum(group: Group) -> None:
    s1, shares1, c1 = deal(group, 2, 4, 1)
    s2, shares2, c2 = deal(group, 1, 4, 2)
    total = c1 + c2
    assert total.constant == group.base_mul(s1 + s2)
    for i in shares1:
        total.verify_share(i, shares1[i] + shares2[i])
    assert VssCommitment.sum(group, [c1, c2]) == total


@SUITES
def test_commitment_decoding_is_strict(group: Group) -> None:
    _, _, commitment = deal(group, 2, 4)
    data = commitment.to_bytes()
    with pytest.raises(EncodingError, match="trailing"):
        VssCommitment.from_bytes(data + b"\x00")
    with pytest.raises(EncodingError, match="truncated"):
        VssCommitment.from_bytes(data[:-1])
    with pytest.raises(EncodingError, match="version"):
        VssCommitment.from_bytes(b"\x02" + data[1:])
    other = ED25519 if group is SECP256K1 else SECP256K1
    with pytest.raises(EncodingError, match="suite"):
        VssCommitment.from_bytes(data, other)
    identity_last = data[: -group.element_length] + group.identity().to_bytes()
    with pytest.raises(EncodingError, match="points"):
        VssCommitment.from_bytes(identity_last)


@SUITES
def test_key_share_and_package(group: Group) -> None:
    _, shares, commitment = deal(group, 1, 3)
    public = PublicKeyPackage(
        group, commitment.constant, {i: commitment.evaluate(i) for i in shares}, 1
    )
    assert PublicKeyPackage.from_bytes(public.to_bytes()) == public
    # A package whose shares do not interpolate to its key is refused when decoded.
    ids = list(shares)
    forged = PublicKeyPackage(
        group,
        commitment.constant,
        {**public.verifying_shares, ids[-1]: group.generator()},
        1,
    )
    with pytest.raises(EncodingError, match="inconsistent"):
        PublicKeyPackage.from_bytes(forged.to_bytes())
    wrong_key = PublicKeyPackage(group, group.generator(), public.verifying_shares, 1)
    with pytest.raises(EncodingError, match="group key"):
        PublicKeyPackage.from_bytes(wrong_key.to_bytes())
    one = Identifier.from_int(group, 1)
    share = KeyShare(one, shares[one], public)
    assert "redacted" in repr(share)
    assert shares[one].to_bytes().hex() not in repr(share)
    restored = KeyShare.from_sealed_bytes(share.to_sealable_bytes())
    assert restored.secret_share == share.secret_share
    assert restored.public == public
    with pytest.raises(SecretError) as info:
        KeyShare(one, shares[one] + group.one(), public)
    assert str(info.value) == SecretError.MESSAGE
    with pytest.raises(SecretError):
        KeyShare.from_sealed_bytes(share.to_sealable_bytes()[:-1])


def test_encoder_decoder_round_trip_and_snapshot() -> None:
    enc = Encoder("demo", SECP256K1).u8(7).count(2).var_bytes(b"ab")
    enc.identifier(Identifier.from_int(SECP256K1, 1)).scalar(SECP256K1.scalar(2))
    data = enc.finish()
    assert data.hex() == (
        "01" + "00000004" + b"demo".hex() + "00000009" + b"secp256k1".hex()
        + "07" + "0002" + "00000002" + "6162" + "00" * 31 + "01" + "00" * 31 + "02"
    )  # fmt: skip
    dec = Decoder(data, "demo")
    assert dec.u8("a") == 7
    assert dec.count("b") == 2
    assert dec.var_bytes("c") == b"ab"
    assert int(dec.identifier("d")) == 1
    assert int(dec.scalar("e")) == 2
    dec.finish()
    with pytest.raises(EncodingError, match="kind"):
        Decoder(data, "other")


@SUITES
def test_hashes_are_domain_separated(group: Group) -> None:
    a = hash_to_scalar(group, b"domain-a", b"x", b"y")
    assert a == hash_to_scalar(group, b"domain-a", b"x", b"y")
    assert a != hash_to_scalar(group, b"domain-b", b"x", b"y")
    assert a != hash_to_scalar(group, b"domain-a", b"xy")  # length prefixes: no ambiguity
    t1, t2 = Transcript(b"p", group, b"sid"), Transcript(b"p", group, b"sid2")
    t1.append(b"l", b"v")
    t2.append(b"l", b"v")
    assert t1.digest() != t2.digest()
    assert t1.challenge(b"c") != t1.challenge(b"d")
