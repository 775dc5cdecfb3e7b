"""FROST end to end over real DKG keys, generic over the suite, plus every misuse and cheat."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enclave.mpc.errors import (
    EncodingError,
    InvalidParameters,
    InvalidSignatureShare,
    NonceReuse,
)
from enclave.mpc.frost.aggregate import aggregate, verify_signature_share
from enclave.mpc.frost.ciphersuite import (
    FROST_ED25519_SHA512,
    FROST_SECP256K1_SHA256,
    FROST_SECP256K1_SHA256_TR,
    Ciphersuite,
)
from enclave.mpc.frost.round1 import SigningCommitments, commit
from enclave.mpc.frost.round2 import SignatureShare, SigningPackage, sign
from enclave.mpc.identifiers import Identifier

from .dkg_helpers import run_dkg
from .frost_helpers import frost_sign, independent_verify
from .rng import SeededRandom

SUITES = pytest.mark.parametrize(
    "suite",
    [FROST_ED25519_SHA512, FROST_SECP256K1_SHA256, FROST_SECP256K1_SHA256_TR],
    ids=["ed25519", "secp256k1", "secp256k1-tr"],
)
MAX_SUBSETS = 6


def check_dkg_then_sign(suite: Ciphersuite, t: int, n: int, seed: int) -> None:
    rng = SeededRandom(seed)
    keys = {i: suite.post_dkg(k) for i, k in run_dkg(suite.group, t, n, rng).items()}
    y = next(iter(keys.values())).group_public_key.to_bytes()
    ids = sorted(keys)
    subsets = [s for k in range(t + 1, n + 1) for s in itertools.combinations(ids, k)]
    step = max(1, len(subsets) // MAX_SUBSETS)
    for signers in subsets[::step]:
        message = b"msg/" + bytes(int(i) for i in signers)
        sig = frost_sign(suite, keys, list(signers), message, rng)
        assert independent_verify(suite, y, message, sig)
        assert not independent_verify(suite, y, message + b"!", sig)
    with pytest.raises(InvalidParameters, match="at least"):
        frost_sign(suite, keys, ids[:t], b"too few", rng)


@SUITES
@settings(max_examples=20)
@given(
    tn=st.integers(min_value=2, max_value=7).flatmap(
        lambda n: st.tuples(st.integers(min_value=1, max_value=n - 1), st.just(n))
    ),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_dkg_then_sign_with_signer_subsets(
    suite: Ciphersuite, tn: tuple[int, int], seed: int
) -> None:
    check_dkg_then_sign(suite, tn[0], tn[1], seed)


@SUITES
def test_bad_signature_share_is_named(suite: Ciphersuite) -> None:
    rng = SeededRandom(11)
    keys = run_dkg(suite.group, 2, 5, rng)
    signers = sorted(keys)[1:5]
    cheaters = {signers[0], signers[2]}

    def tamper(ident: Identifier, share: SignatureShare) -> SignatureShare:
        if ident in cheaters:
            return dataclasses.replace(share, share=share.share + suite.group.one())
        return share

    with pytest.raises(InvalidSignatureShare) as info:
        frost_sign(suite, keys, signers, b"hello", rng, share_hook=tamper)
    assert info.value.culprits == frozenset(cheaters)


@SUITES
def test_nonce_reuse_is_refused(suite: Ciphersuite) -> None:
    rng = SeededRandom(12)
    keys = run_dkg(suite.group, 1, 3, rng)
    a, b = sorted(keys)[:2]
    (na, ca), (_, cb) = commit(suite, keys[a], b"s1", rng), commit(suite, keys[b], b"s1", rng)
    package = SigningPackage(suite, b"s1", {a: ca, b: cb}, b"first")
    sign(package, na, keys[a])
    other = SigningPackage(suite, b"s1", {a: ca, b: cb}, b"second")
    with pytest.raises(NonceReuse):
        sign(other, na, keys[a])
    assert "redacted" in repr(na)


@SUITES
def test_signer_validates_the_package(suite: Ciphersuite) -> None:
    rng = SeededRandom(13)
    g = suite.group
    keys = run_dkg(g, 1, 3, rng)
    a, b, c = sorted(keys)
    (na, ca), (_, cb), (_, cc) = (commit(suite, keys[i], b"sess", rng) for i in (a, b, c))

    def fresh() -> tuple[object, SigningCommitments]:
        return commit(suite, keys[a], b"sess", rng)

    # Own commitment missing.
    with pytest.raises(InvalidParameters, match="own commitment"):
        sign(SigningPackage(suite, b"sess", {b: cb, c: cc}, b"m"), na, keys[a])
    # Own commitment altered by the coordinator.
    forged = dataclasses.replace(ca, binding=ca.hiding)
    with pytest.raises(InvalidParameters, match="own commitment"):
        sign(SigningPackage(suite, b"sess", {a: forged, b: cb}, b"m"), na, keys[a])
    # Too few signers for the key (t + 1 = 2 needed).
    with pytest.raises(InvalidParameters, match="at least 2"):
        sign(SigningPackage(suite, b"sess", {a: ca}, b"m"), na, keys[a])
    # A signer that is not a member of the key.
    stranger = Identifier.from_int(g, 99)
    with pytest.raises(InvalidParameters, match="not members"):
        sign(SigningPackage(suite, b"sess", {a: ca, stranger: cb}, b"m"), na, keys[a])
    # Nonces from another session.
    with pytest.raises(InvalidParameters, match="another"):
        SigningPackage(suite, b"other", {a: ca, b: cb}, b"m")
    # None of the refused packages consumed the nonce: it still signs once.
    sign(SigningPackage(suite, b"sess", {a: ca, b: cb}, b"m"), na, keys[a])
    assert fresh()[1] != ca  # fresh nonces every time


@SUITES
def test_aggregator_checks_share_set_and_single_shares(suite: Ciphersuite) -> None:
    rng = SeededRandom(14)
    keys = run_dkg(suite.group, 1, 3, rng)
    a, b, _ = sorted(keys)
    (na, ca), (nb, cb) = commit(suite, keys[a], b"agg", rng), commit(suite, keys[b], b"agg", rng)
    package = SigningPackage(suite, b"agg", {a: ca, b: cb}, b"m")
    sa, sb = sign(package, na, keys[a]), sign(package, nb, keys[b])
    public = keys[a].public
    with pytest.raises(InvalidParameters, match="exactly"):
        aggregate(package, {a: sa}, public)
    verify_signature_share(package, a, sa, public)
    with pytest.raises(InvalidSignatureShare) as info:
        verify_signature_share(package, b, sa, public)
    assert info.value.culprits == frozenset({b})
    assert independent_verify(
        suite, public.group_public_key.to_bytes(), b"m", aggregate(package, {a: sa, b: sb}, public)
    )


@SUITES
def test_messages_decode_strictly(suite: Ciphersuite) -> None:
    rng = SeededRandom(15)
    keys = run_dkg(suite.group, 1, 3, rng)
    a, b, _ = sorted(keys)
    (_, ca), (_, cb) = commit(suite, keys[a], b"codec", rng), commit(suite, keys[b], b"codec", rng)
    package = SigningPackage(suite, b"codec", {a: ca, b: cb}, b"m")
    data = package.to_bytes()
    assert SigningPackage.from_bytes(data) == package
    with pytest.raises(EncodingError, match="trailing"):
        SigningPackage.from_bytes(data + b"\x00")
    # Swap the two signer entries: the decoder refuses an unsorted list.
    g = suite.group
    entry = g.scalar_length + 2 * g.element_length
    body, tail = data[: -2 * entry], data[-2 * entry :]
    with pytest.raises(EncodingError, match="not sorted"):
        SigningPackage.from_bytes(body + tail[entry:] + tail[:entry])
    with pytest.raises(EncodingError, match="not sorted"):
        SigningPackage.from_bytes(body + tail[:entry] + tail[:entry])  # duplicate
    assert SigningCommitments.from_bytes(ca.to_bytes()) == ca
