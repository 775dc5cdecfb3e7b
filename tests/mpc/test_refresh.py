"""Share refresh (enclave.mpc.refresh): same key, fresh shares, two-phase commit, culprits."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from enclave.mpc.decryption.combine import combine
from enclave.mpc.decryption.ecies import encrypt
from enclave.mpc.decryption.partial import partial_decrypt
from enclave.mpc.errors import (
    EncodingError,
    InconsistentTranscript,
    InvalidCommitment,
    InvalidParameters,
    InvalidProof,
    InvalidShare,
    InvalidSignatureShare,
    MisuseError,
)
from enclave.mpc.frost.aggregate import aggregate
from enclave.mpc.frost.ciphersuite import (
    FROST_ED25519_SHA512,
    FROST_SECP256K1_SHA256,
    Ciphersuite,
)
from enclave.mpc.frost.round1 import commit
from enclave.mpc.frost.round2 import SigningPackage, sign
from enclave.mpc.groups import ED25519, SECP256K1, Group
from enclave.mpc.identifiers import Identifier
from enclave.mpc.keys import KeyShare, PublicKeyPackage
from enclave.mpc.refresh import Phase, RefreshSession, refresh_deal, refresh_receive
from enclave.mpc.renewal import Confirmation, DealerCommitment, Renewal, SubShare
from enclave.mpc.shamir import Polynomial, reconstruct
from enclave.mpc.vss import VssCommitment

from .rng import SeededRandom
from .threshold_keys import deal

SUITES = pytest.mark.parametrize("group", [SECP256K1, ED25519], ids=lambda g: g.name)
SESSION = b"refresh-epoch-2"

Deals = dict[Identifier, tuple[DealerCommitment, dict[Identifier, SubShare]]]


def run_refresh(
    shares: dict[Identifier, KeyShare],
    seed: int,
    tamper: Callable[[Deals], None] | None = None,
) -> tuple[dict[Identifier, RefreshSession], dict[Identifier, Confirmation]]:
    """Drive every party's session through deal and receive (the in-memory router)."""
    rng = SeededRandom(seed)
    sessions = {i: RefreshSession(s, SESSION) for i, s in shares.items()}
    deals: Deals = {i: sess.deal(rng) for i, sess in sessions.items()}
    if tamper is not None:
        tamper(deals)
    confirmations = {
        j: sess.receive({i: deals[i][0] for i in deals}, {i: deals[i][1][j] for i in deals})
        for j, sess in sessions.items()
    }
    return sessions, confirmations


@st.composite
def _setting(draw: st.DrawFn) -> tuple[int, int, int]:
    n = draw(st.integers(min_value=2, max_value=7))
    t = draw(st.integers(min_value=1, max_value=n - 1))
    return t, n, draw(st.integers(min_value=0, max_value=2**32))


@SUITES
@given(setting=_setting())
def test_refresh_keeps_the_key_and_renews_every_share(
    group: Group, setting: tuple[int, int, int]
) -> None:
    t, n, seed = setting
    secret, old = deal(group, t, n, SeededRandom(seed))
    sessions, confirmations = run_refresh(old, seed + 1)
    new = {i: sess.confirm(confirmations) for i, sess in sessions.items()}
    old_public = next(iter(old.values())).public
    publics = {s.public.to_bytes() for s in new.values()}
    assert len(publics) == 1  # every party computed the same new package
    new_public = next(iter(new.values())).public
    assert new_public.group_public_key == old_public.group_public_key
    assert new_public.threshold == t
    for i, share in new.items():
        assert share.verifying_share == group.base_mul(share.secret_share)
        assert share.secret_share != old[i].secret_share
        assert sessions[i].phase is Phase.COMMITTED
        assert sessions[i].active_share is share
        assert sessions[i].retired_share_deleted
    ids = sorted(new)
    for subset in itertools.combinations(ids, t + 1):
        assert reconstruct(group, {i: new[i].secret_share for i in subset}) == secret
    # Old and new shares do not mix: any t+1 with at least one of each interpolate to garbage.
    for subset in itertools.combinations(ids, t + 1):
        for k in range(1, t + 1):
            mixed = {i: (old if pos < k else new)[i].secret_share for pos, i in enumerate(subset)}
            assert reconstruct(group, mixed) != secret


@SUITES
def test_mixed_old_and_new_shares_cannot_decrypt(group: Group) -> None:
    _, old = deal(group, 2, 5, SeededRandom(1))
    sessions, confirmations = run_refresh(old, 2)
    new = {i: sess.confirm(confirmations) for i, sess in sessions.items()}
    new_public = next(iter(new.values())).public
    ct = encrypt(new_public.group_public_key, b"after refresh", SeededRandom(3))
    rng = SeededRandom(4)
    ids = sorted(new)
    fresh = {i: partial_decrypt(new[i], ct, b"req", rng) for i in ids[:3]}
    assert combine(new_public, ct, fresh, b"req") == b"after refresh"
    stale = dict(fresh)
    stale[ids[0]] = partial_decrypt(old[ids[0]], ct, b"req", rng)
    with pytest.raises(InvalidProof) as err:
        combine(new_public, ct, stale, b"req")
    assert err.value.culprits == frozenset({ids[0]})


@SUITES
def test_old_share_stays_active_until_every_party_confirms(group: Group) -> None:
    _, old = deal(group, 1, 3, SeededRandom(5))
    sessions, confirmations = run_refresh(old, 6)
    one = Identifier.from_int(group, 1)
    assert sessions[one].phase is Phase.PENDING
    assert sessions[one].active_share is old[one]
    missing = {i: c for i, c in confirmations.items() if int(i) != 3}
    with pytest.raises(InvalidParameters, match="missing from \\[3\\]"):
        sessions[one].confirm(missing)
    assert sessions[one].phase is Phase.FAILED
    assert sessions[one].active_share is old[one]
    assert not sessions[one].retired_share_deleted
    with pytest.raises(MisuseError):
        sessions[one].confirm(confirmations)


def test_out_of_order_event_is_misuse_and_fails_the_session() -> None:
    _, old = deal(SECP256K1, 1, 3, SeededRandom(7))
    session = RefreshSession(next(iter(old.values())), SESSION)
    with pytest.raises(MisuseError):
        session.confirm({})
    assert session.phase is Phase.FAILED
    with pytest.raises(MisuseError):
        session.deal(SeededRandom(8))


def _redeal(deals: Deals, dealer: Identifier, poly: Polynomial) -> None:
    """Replace ``dealer``'s deal by one of ``poly`` (consistent shares, chosen commitment)."""
    commitment = DealerCommitment(Renewal.REFRESH, SESSION, poly.commitments())
    subs = {j: SubShare(Renewal.REFRESH, SESSION, poly.evaluate(j)) for j in deals[dealer][1]}
    deals[dealer] = (commitment, subs)


@SUITES
def test_dealer_with_non_zero_constant_is_named(group: Group) -> None:
    """A dealer sharing 1 instead of 0 would move the group key: its constant is not identity."""
    _, old = deal(group, 2, 4, SeededRandom(9))
    cheat = Identifier.from_int(group, 3)

    def tamper(deals: Deals) -> None:
        _redeal(deals, cheat, Polynomial.random(group, group.one(), 2, SeededRandom(10)))

    with pytest.raises(InvalidCommitment) as err:
        run_refresh(old, 11, tamper)
    assert err.value.culprits == frozenset({cheat})


@SUITES
def test_dealer_with_wrong_degree_is_named(group: Group) -> None:
    _, old = deal(group, 2, 4, SeededRandom(12))
    cheat = Identifier.from_int(group, 2)

    def tamper(deals: Deals) -> None:
        _redeal(deals, cheat, Polynomial.random(group, group.zero(), 3, SeededRandom(13)))

    with pytest.raises(InvalidCommitment) as err:
        run_refresh(old, 14, tamper)
    assert err.value.culprits == frozenset({cheat})


@SUITES
def test_bad_sub_share_is_named_by_its_recipient(group: Group) -> None:
    _, old = deal(group, 1, 3, SeededRandom(15))
    cheat, victim = Identifier.from_int(group, 1), Identifier.from_int(group, 2)

    def tamper(deals: Deals) -> None:
        bad = deals[cheat][1][victim]
        deals[cheat][1][victim] = SubShare(bad.renewal, SESSION, bad.value + group.one())

    with pytest.raises(InvalidShare) as err:
        run_refresh(old, 16, tamper)
    assert err.value.culprits == frozenset({cheat})


@SUITES
def test_equivocating_dealer_is_caught_before_any_old_share_is_dropped(group: Group) -> None:
    """Dealer 1 sends party 3 a different (self-consistent) zero-sharing than parties 1 and 2.

    Every sub-share verifies against the commitment its recipient saw, so only the confirm
    step can notice: party 3's transcript differs, nobody commits, every old share survives.
    """
    _, old = deal(group, 1, 3, SeededRandom(17))
    one, three = Identifier.from_int(group, 1), Identifier.from_int(group, 3)
    rng = SeededRandom(18)
    sessions = {i: RefreshSession(s, SESSION) for i, s in old.items()}
    deals: Deals = {i: sess.deal(rng) for i, sess in sessions.items()}
    alt = Polynomial.random(group, group.zero(), 1, SeededRandom(19))
    alt_commitment = DealerCommitment(Renewal.REFRESH, SESSION, alt.commitments())
    confirmations = {}
    for j, sess in sessions.items():
        commitments = {i: deals[i][0] for i in deals}
        subs = {i: deals[i][1][j] for i in deals}
        if j == three:
            commitments[one] = alt_commitment
            subs[one] = SubShare(Renewal.REFRESH, SESSION, alt.evaluate(three))
        confirmations[j] = sess.receive(commitments, subs)
    with pytest.raises(InconsistentTranscript) as err:
        sessions[one].confirm(confirmations)
    assert err.value.culprits == frozenset({three})
    with pytest.raises(InconsistentTranscript) as err:
        sessions[three].confirm(confirmations)
    assert err.value.culprits == frozenset({one, Identifier.from_int(group, 2)})
    for i, sess in sessions.items():
        if sess.phase is Phase.FAILED:
            assert sess.active_share is old[i]


@SUITES
def test_message_for_another_session_is_named(group: Group) -> None:
    _, old = deal(group, 1, 3, SeededRandom(20))
    cheat = Identifier.from_int(group, 2)

    def tamper(deals: Deals) -> None:
        c, subs = deals[cheat]
        deals[cheat] = (DealerCommitment(Renewal.REFRESH, b"old-session", c.commitment), subs)

    with pytest.raises(InvalidCommitment) as err:
        run_refresh(old, 21, tamper)
    assert err.value.culprits == frozenset({cheat})


@SUITES
def test_renewal_messages_round_trip_and_decode_strictly(group: Group) -> None:
    _, old = deal(group, 2, 4, SeededRandom(22))
    _, confirmations = run_refresh(old, 23)
    commitment, subs = RefreshSession(next(iter(old.values())), SESSION).deal(SeededRandom(24))
    data = commitment.to_bytes()
    assert commitment.commitment.constant.is_identity()
    decoded = DealerCommitment.from_bytes(data, Renewal.REFRESH, group)
    assert decoded.to_bytes() == data
    assert decoded.commitment.points == commitment.commitment.points
    sub = next(iter(subs.values()))
    assert SubShare.from_bytes(sub.to_bytes(), Renewal.REFRESH, group).value == sub.value
    assert sub.value.to_bytes().hex() not in repr(sub)
    conf = next(iter(confirmations.values()))
    assert Confirmation.from_bytes(conf.to_bytes(), Renewal.REFRESH).to_bytes() == conf.to_bytes()
    # A refresh message never parses as a reshare one; trailing bytes and bad flags refused.
    flag_at = data.index(SESSION) + len(SESSION) + 2
    for bad, renewal in (
        (data, Renewal.RESHARE),
        (data + b"\x00", Renewal.REFRESH),
        (data[:flag_at] + b"\x02" + data[flag_at + 1 :], Renewal.REFRESH),
        (data[:-1], Renewal.REFRESH),
    ):
        with pytest.raises(EncodingError):
            DealerCommitment.from_bytes(bad, renewal, group)
    with pytest.raises(EncodingError):
        Confirmation.from_bytes(conf.to_bytes()[:-1], Renewal.REFRESH)
    # An identity above the constant term cannot be encoded.
    identity_high = VssCommitment(group, (group.identity(), group.identity()))
    with pytest.raises(EncodingError):
        DealerCommitment(Renewal.REFRESH, SESSION, identity_high).to_bytes()


FROST_SUITES = pytest.mark.parametrize(
    "suite", [FROST_ED25519_SHA512, FROST_SECP256K1_SHA256], ids=lambda s: s.name
)


def _frost_sign(
    suite: Ciphersuite, signers: dict[Identifier, KeyShare], public: PublicKeyPackage, seed: int
) -> bytes:
    """One FROST run (RFC 9591) by ``signers``, each with whatever share it holds."""
    rng = SeededRandom(seed)
    rounds = {i: commit(suite, k, b"sign-1", rng) for i, k in signers.items()}
    package = SigningPackage(suite, b"sign-1", {i: c for i, (_, c) in rounds.items()}, b"msg")
    shares = {i: sign(package, rounds[i][0], k) for i, k in signers.items()}
    return aggregate(package, shares, public)


@FROST_SUITES
def test_new_shares_sign_and_old_new_mixes_sign_nothing(suite: Ciphersuite) -> None:
    group = suite.group
    _, old = deal(group, 2, 4, SeededRandom(30))
    sessions, confirmations = run_refresh(old, 31)
    new = {i: sess.confirm(confirmations) for i, sess in sessions.items()}
    new_public = next(iter(new.values())).public
    ids = sorted(new)
    signature = _frost_sign(suite, {i: new[i] for i in ids[:3]}, new_public, 32)
    assert suite.verify(new_public.group_public_key, b"msg", signature)
    # Signers 1 and 2 refreshed, signer 3 still holds its old share: the coordinator (with the
    # new package) names the stale signer and outputs no signature.
    mixed = {ids[0]: new[ids[0]], ids[1]: new[ids[1]], ids[2]: old[ids[2]]}
    with pytest.raises(InvalidSignatureShare) as err:
        _frost_sign(suite, mixed, new_public, 33)
    assert err.value.culprits == frozenset({ids[2]})


@SUITES
def test_no_secret_appears_in_reprs_or_errors(group: Group) -> None:
    """Secrecy canary: shares, sub-shares and pending state never print their values."""
    _, old = deal(group, 1, 3, SeededRandom(40))
    cheat, victim = Identifier.from_int(group, 1), Identifier.from_int(group, 2)
    seen: list[str] = []
    secrets_hex = {s.secret_share.to_bytes().hex() for s in old.values()}

    def tamper(deals: Deals) -> None:
        for _, subs in deals.values():
            secrets_hex.update(s.value.to_bytes().hex() for s in subs.values())
            seen.extend(repr(s) for s in subs.values())
        bad = deals[cheat][1][victim]
        deals[cheat][1][victim] = SubShare(bad.renewal, SESSION, bad.value + group.one())
        secrets_hex.add(deals[cheat][1][victim].value.to_bytes().hex())

    with pytest.raises(InvalidShare) as err:
        run_refresh(old, 41, tamper)
    seen += [str(err.value), repr(err.value)]
    rng = SeededRandom(42)
    deals = {i: refresh_deal(s, SESSION, rng) for i, s in old.items()}
    for j, share in old.items():
        pending = refresh_receive(
            share,
            SESSION,
            {i: d[0] for i, d in deals.items()},
            {i: d[1][j] for i, d in deals.items()},
        )
        secrets_hex.add(pending.new.secret_share.to_bytes().hex())
        seen += [repr(pending), str(pending), repr(pending.new), repr(share)]
    for text in seen:
        for secret in secrets_hex:
            assert secret not in text
