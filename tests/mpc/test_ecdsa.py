"""Threshold ECDSA (DJNPO20): honest runs verify under coincurve, parameters, single use."""

from __future__ import annotations

import copy
import hashlib
import pickle

import coincurve
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from hypothesis import given, settings
from hypothesis import strategies as st

from enclave.mpc.ecdsa import (
    EcdsaSignature,
    Phase,
    Presignature,
    PresignatureInfo,
    PresignaturePool,
    PresignContext,
    PresignSession,
    SigningRequest,
    combine,
    sign,
)
from enclave.mpc.errors import InvalidParameters, MisuseError, PresignatureReuse
from enclave.mpc.groups import SECP256K1
from enclave.mpc.identifiers import Identifier

from .ecdsa_harness import deal_key, ids, presignatures, run_presign, sign_all
from .rng import SeededRandom

Q = SECP256K1.order
SID = b"ecdsa-test-session-0001"


def _check_signature(sig: EcdsaSignature, public_key: bytes, digest: bytes) -> None:
    """What ordinary verifiers accept: libsecp256k1 (coincurve) and OpenSSL (cryptography)."""
    assert 0 < sig.s <= Q // 2  # low-S
    key = coincurve.PublicKey(public_key)
    assert key.verify(sig.to_der(), digest, hasher=None)
    openssl_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), public_key)
    openssl_key.verify(sig.to_der(), digest, ec.ECDSA(Prehashed(hashes.SHA256())))  # raises
    recovered = coincurve.PublicKey.from_signature_and_message(
        sig.to_recoverable(), digest, hasher=None
    )
    assert recovered.format() == key.format()


@st.composite
def setups(draw: st.DrawFn) -> tuple[int, int, list[int], int, bool]:
    t = draw(st.integers(min_value=1, max_value=3))
    n = draw(st.integers(min_value=2 * t + 1, max_value=7))
    parties = draw(st.permutations(range(1, n + 1)))[: 2 * t + 1]
    return t, n, sorted(parties), draw(st.integers(0, 2**32)), draw(st.booleans())


@settings(max_examples=30)
@given(setup=setups(), message=st.binary(min_size=1, max_size=64))
def test_presign_and_sign_verify_with_coincurve(
    setup: tuple[int, int, list[int], int, bool], message: bytes
) -> None:
    t, n, parties, seed, tweaked = setup
    rng = SeededRandom(seed)
    _, shares = deal_key(t, n, rng)
    public = shares[ids(1)[0]].public
    context = PresignContext.create(public, ids(*parties), SID)
    presigs = presignatures(run_presign(context, shares, rng))
    info = presigs[context.parties[0]].info
    # every party holds the same public view (R, parties, id)
    assert all(p.info == info for p in presigs.values())
    tweak = SECP256K1.random_scalar(rng) if tweaked else SECP256K1.zero()
    digest = hashlib.sha256(message).digest()
    request = SigningRequest(info.presignature_id, digest, rng.random_bytes(32), tweak)
    signature = combine(info, request, sign_all(presigs, request))
    expected_key = public.group_public_key + SECP256K1.base_mul(tweak)
    _check_signature(signature, expected_key.to_bytes(), digest)
    assert all(p.consumed for p in presigs.values())


def test_tweaked_signature_verifies_only_under_the_tweaked_key() -> None:
    rng = SeededRandom("tweak")
    _, shares = deal_key(1, 3, rng)
    public = shares[ids(1)[0]].public
    presigs = presignatures(
        run_presign(PresignContext.create(public, ids(1, 2, 3), SID), shares, rng)
    )
    info = presigs[ids(1)[0]].info
    tweak = SECP256K1.scalar(12345)
    digest = hashlib.sha256(b"tweaked").digest()
    request = SigningRequest(info.presignature_id, digest, bytes(32), tweak)
    signature = combine(info, request, sign_all(presigs, request))
    child = public.group_public_key + SECP256K1.base_mul(tweak)
    _check_signature(signature, child.to_bytes(), digest)
    parent = coincurve.PublicKey(public.group_public_key.to_bytes())
    assert not parent.verify(signature.to_der(), digest, hasher=None)


def test_signature_matches_the_rerandomised_nonce() -> None:
    """r is the x-coordinate of delta·R, not of the presigned R (re-randomisation happened)."""
    rng = SeededRandom("rerandomise")
    _, shares = deal_key(1, 3, rng)
    public = shares[ids(1)[0]].public
    presigs = presignatures(
        run_presign(PresignContext.create(public, ids(1, 2, 3), SID), shares, rng)
    )
    info = presigs[ids(1)[0]].info
    request = SigningRequest(info.presignature_id, hashlib.sha256(b"m").digest(), bytes(32))
    signature = combine(info, request, sign_all(presigs, request))
    assert signature.r != int.from_bytes(info.big_r.to_bytes()[1:], "big") % Q


# -- parameters ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("t", "n"), [(1, 2), (2, 4), (3, 6)])
def test_fewer_than_2t_plus_1_parties_refused(t: int, n: int) -> None:
    _, shares = deal_key(t, n, SeededRandom(n))
    public = shares[ids(1)[0]].public
    with pytest.raises(InvalidParameters, match="n >= 2t\\+1"):
        PresignContext.create(public, ids(*range(1, n + 1)), SID)


def test_party_set_must_be_exactly_2t_plus_1_key_holders() -> None:
    _, shares = deal_key(1, 5, SeededRandom(5))
    public = shares[ids(1)[0]].public
    with pytest.raises(InvalidParameters, match="exactly 2t\\+1"):
        PresignContext.create(public, ids(1, 2), SID)
    with pytest.raises(InvalidParameters, match="exactly 2t\\+1"):
        PresignContext.create(public, ids(1, 2, 3, 4), SID)
    with pytest.raises(InvalidParameters, match="does not hold a share"):
        PresignContext.create(public, ids(1, 2, 9), SID)
    with pytest.raises(InvalidParameters, match="session id"):
        PresignContext.create(public, ids(1, 2, 3), b"short")
    context = PresignContext.create(public, ids(1, 2, 3), SID)
    with pytest.raises(InvalidParameters, match="not in the presigning set"):
        PresignSession(context, shares[ids(4)[0]])


def _one_presignature_set(
    seed: str,
) -> tuple[dict[Identifier, Presignature], PresignatureInfo]:
    rng = SeededRandom(seed)
    _, shares = deal_key(1, 3, rng)
    public = shares[ids(1)[0]].public
    presigs = presignatures(
        run_presign(PresignContext.create(public, ids(1, 2, 3), SID), shares, rng)
    )
    return presigs, presigs[ids(1)[0]].info


@pytest.mark.parametrize("digest", [bytes(32), Q.to_bytes(32, "big")])
def test_zero_message_hash_refused(digest: bytes) -> None:
    with pytest.raises(InvalidParameters, match="zero message hash"):
        SigningRequest(bytes(32), digest, bytes(32))


def test_malformed_requests_refused() -> None:
    with pytest.raises(InvalidParameters, match="message hash"):
        SigningRequest(bytes(32), b"\x01" * 31, bytes(32))
    with pytest.raises(InvalidParameters, match="entropy"):
        SigningRequest(bytes(32), b"\x01" * 32, bytes(16))
    with pytest.raises(InvalidParameters, match="presignature id"):
        SigningRequest(bytes(31), b"\x01" * 32, bytes(32))


def test_presignature_reuse_raises_and_a_bad_request_burns_nothing() -> None:
    presigs, info = _one_presignature_set("reuse")
    p1 = presigs[ids(1)[0]]
    digest = hashlib.sha256(b"first").digest()
    wrong = SigningRequest(bytes(32), digest, bytes(32))  # names another presignature
    with pytest.raises(InvalidParameters, match="another presignature"):
        sign(p1, wrong)
    assert not presigs[ids(1)[0]].consumed
    request = SigningRequest(info.presignature_id, digest, bytes(32))
    sign(p1, request)
    assert p1.consumed
    other = SigningRequest(info.presignature_id, hashlib.sha256(b"second").digest(), bytes(32))
    with pytest.raises(PresignatureReuse):
        sign(p1, other)
    with pytest.raises(PresignatureReuse):
        sign(p1, request)


def test_discarded_presignature_cannot_sign() -> None:
    presigs, info = _one_presignature_set("discard")
    p = presigs[ids(2)[0]]
    p.discard()
    request = SigningRequest(info.presignature_id, b"\x07" * 32, bytes(32))
    with pytest.raises(PresignatureReuse):
        sign(p, request)


def test_presignatures_cannot_be_copied_or_pickled_and_print_redacted() -> None:
    presigs, _ = _one_presignature_set("copy")
    p = presigs[ids(1)[0]]
    for attempt in (lambda: copy.copy(p), lambda: copy.deepcopy(p), lambda: pickle.dumps(p)):
        with pytest.raises(TypeError):
            attempt()
    with pytest.raises(AttributeError):
        p.info = presigs[ids(2)[0]].info
    secret = p.consume()
    text = repr(p) + repr(secret) + str(secret)
    for value in (secret.k_inv_share, secret.k_inv_x_share, secret.mask_share):
        assert value.to_bytes().hex() not in text
    assert "<redacted>" in repr(secret)


# -- the session machine ------------------------------------------------------------------------


def test_session_out_of_order_is_misuse_and_fails_for_good() -> None:
    rng = SeededRandom("session")
    _, shares = deal_key(1, 3, rng)
    public = shares[ids(1)[0]].public
    context = PresignContext.create(public, ids(1, 2, 3), SID)
    session = PresignSession(context, shares[ids(1)[0]])
    with pytest.raises(MisuseError):
        session.receive_deals({})
    assert session.phase is Phase.FAILED
    with pytest.raises(MisuseError):
        session.start(rng)
    assert session.phase is Phase.FAILED


def test_session_error_in_a_round_leaves_it_failed() -> None:
    rng = SeededRandom("session-2")
    _, shares = deal_key(1, 3, rng)
    public = shares[ids(1)[0]].public
    context = PresignContext.create(public, ids(1, 2, 3), SID)
    session = PresignSession(context, shares[ids(1)[0]])
    session.start(rng)
    assert session.phase.value == "dealt"
    with pytest.raises(InvalidParameters, match="missing"):
        session.receive_deals({})
    assert session.phase is Phase.FAILED
    with pytest.raises(MisuseError):
        session.receive_deals({})


# -- the pool and the coordinator's request -----------------------------------------------------


def test_pool_hands_out_each_presignature_once_and_empties_on_refresh() -> None:
    rng = SeededRandom("pool")
    _, shares = deal_key(1, 3, rng)
    public = shares[ids(1)[0]].public
    me = ids(1)[0]
    pool = PresignaturePool()
    made = []
    for k in range(3):
        context = PresignContext.create(public, ids(1, 2, 3), SID + bytes([k]))
        made.append(presignatures(run_presign(context, shares, rng))[me])
    for p in made:
        pool.add(p)
    assert len(pool) == 3
    with pytest.raises(InvalidParameters, match="already in the pool"):
        pool.add(made[0])
    first = pool.take(made[0].info.presignature_id)
    assert first is made[0]
    with pytest.raises(PresignatureReuse):
        pool.take(made[0].info.presignature_id)
    with pytest.raises(PresignatureReuse):
        pool.add(made[0])  # a taken id never comes back
    with pytest.raises(InvalidParameters, match="no such presignature"):
        pool.take(b"\x00" * 32)
    assert pool.discard_all() == 2  # refresh / reshare / restore
    assert len(pool) == 0
    assert all(p.consumed for p in made[1:])
    request = SigningRequest.create(made[1].info, hashlib.sha256(b"x").digest(), rng)
    with pytest.raises(PresignatureReuse):
        sign(made[1], request)


def test_request_create_draws_fresh_entropy() -> None:
    presigs, info = _one_presignature_set("create")
    rng = SeededRandom("entropy")
    digest = hashlib.sha256(b"m").digest()
    first = SigningRequest.create(info, digest, rng)
    second = SigningRequest.create(info, digest, rng)
    assert first.entropy != second.entropy
    assert first.digest() != second.digest()
    assert first.tweak == SECP256K1.zero()
    signature = combine(info, first, sign_all(presigs, first))
    _check_signature(signature, info.group_public_key.to_bytes(), digest)


def test_key_share_of_another_key_refused() -> None:
    rng = SeededRandom("other-key")
    _, shares = deal_key(1, 3, rng)
    _, other = deal_key(1, 3, rng)
    context = PresignContext.create(shares[ids(1)[0]].public, ids(1, 2, 3), SID)
    with pytest.raises(InvalidParameters, match="another key"):
        PresignSession(context, other[ids(1)[0]]).start(rng)


def test_misuse_message_names_the_phase_it_happened_in() -> None:
    rng = SeededRandom("phase-name")
    _, shares = deal_key(1, 3, rng)
    context = PresignContext.create(shares[ids(1)[0]].public, ids(1, 2, 3), SID)
    session = PresignSession(context, shares[ids(1)[0]])
    with pytest.raises(MisuseError, match="not allowed in phase new"):
        session.receive_mask_openings({})
