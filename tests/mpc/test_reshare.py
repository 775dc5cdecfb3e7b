"""Reshare to a new committee / threshold (enclave.mpc.reshare): same key, culprits named."""

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
    InconsistentTranscript,
    InvalidCommitment,
    InvalidParameters,
    InvalidShare,
)
from enclave.mpc.groups import ED25519, SECP256K1, Group
from enclave.mpc.identifiers import Identifier
from enclave.mpc.keys import KeyShare
from enclave.mpc.renewal import Confirmation, DealerCommitment, Renewal, SubShare
from enclave.mpc.reshare import (
    ReshareContext,
    reshare_commit,
    reshare_deal,
    reshare_receive,
    reshare_retire,
)
from enclave.mpc.shamir import Polynomial, reconstruct

from .rng import SeededRandom
from .threshold_keys import deal, identifiers

SUITES = pytest.mark.parametrize("group", [SECP256K1, ED25519], ids=lambda g: g.name)
SESSION = b"reshare-1"

Deals = dict[Identifier, tuple[DealerCommitment, dict[Identifier, SubShare]]]


def run_reshare(
    context: ReshareContext,
    old: dict[Identifier, KeyShare],
    seed: int,
    tamper: Callable[[Deals], None] | None = None,
) -> tuple[dict[Identifier, KeyShare], dict[Identifier, Confirmation]]:
    rng = SeededRandom(seed)
    deals: Deals = {i: reshare_deal(context, old[i], rng) for i in context.dealers}
    if tamper is not None:
        tamper(deals)
    pending = {
        j: reshare_receive(
            context, j, {i: d[0] for i, d in deals.items()}, {i: d[1][j] for i, d in deals.items()}
        )
        for j in context.new_parties
    }
    confirmations = {j: p.confirmation for j, p in pending.items()}
    new = {j: reshare_commit(context, p, confirmations) for j, p in pending.items()}
    return new, confirmations


@st.composite
def _setting(draw: st.DrawFn) -> tuple[int, int, list[int], int, list[int], int]:
    n_old = draw(st.integers(min_value=2, max_value=7))
    t_old = draw(st.integers(min_value=1, max_value=n_old - 1))
    size = draw(st.integers(min_value=t_old + 1, max_value=n_old))
    dealers = sorted(draw(st.permutations(list(range(1, n_old + 1))))[:size])
    n_new = draw(st.integers(min_value=2, max_value=7))
    t_new = draw(st.integers(min_value=1, max_value=n_new - 1))
    # New identifiers overlap the old ones or not (parties 1..10).
    new_ids = sorted(draw(st.permutations(list(range(1, 11))))[:n_new])
    return t_old, n_old, dealers, t_new, new_ids, draw(st.integers(min_value=0, max_value=2**32))


@SUITES
@given(setting=_setting())
def test_reshare_keeps_the_key_for_any_committee_and_threshold(
    group: Group, setting: tuple[int, int, list[int], int, list[int], int]
) -> None:
    t_old, n_old, dealer_ids, t_new, new_ids, seed = setting
    secret, old = deal(group, t_old, n_old, SeededRandom(seed))
    old_public = next(iter(old.values())).public
    context = ReshareContext(
        old_public,
        tuple(identifiers(group, dealer_ids)),
        tuple(identifiers(group, new_ids)),
        t_new,
        SESSION,
    )
    new, confirmations = run_reshare(context, old, seed + 1)
    assert len({s.public.to_bytes() for s in new.values()}) == 1
    new_public = next(iter(new.values())).public
    assert new_public.group_public_key == old_public.group_public_key
    assert new_public.threshold == t_new
    assert set(new_public.identifiers) == set(context.new_parties)
    for share in new.values():
        assert share.verifying_share == group.base_mul(share.secret_share)
    for subset in itertools.combinations(sorted(new), t_new + 1):
        assert reconstruct(group, {i: new[i].secret_share for i in subset}) == secret
    # t_new shares are not enough (the new polynomial has degree exactly t_new, w.h.p.).
    few = {i: new[i].secret_share for i in sorted(new)[:t_new]}
    assert reconstruct(group, few) != secret
    assert reshare_retire(context, confirmations) == next(iter(confirmations.values())).digest


@SUITES
def test_new_committee_decrypts_and_old_shares_do_not_mix(group: Group) -> None:
    secret, old = deal(group, 1, 3, SeededRandom(1))
    old_public = next(iter(old.values())).public
    context = ReshareContext(
        old_public,
        tuple(identifiers(group, [1, 3])),
        tuple(identifiers(group, [2, 4, 5, 6, 7])),
        2,
        SESSION,
    )
    new, _ = run_reshare(context, old, 2)
    new_public = next(iter(new.values())).public
    ct = encrypt(new_public.group_public_key, b"for the new committee", SeededRandom(3))
    rng = SeededRandom(4)
    who = identifiers(group, [4, 6, 7])
    partials = {i: partial_decrypt(new[i], ct, b"r", rng) for i in who}
    assert combine(new_public, ct, partials, b"r") == b"for the new committee"
    two = Identifier.from_int(group, 2)
    mixed = {two: old[two].secret_share} | {i: new[i].secret_share for i in who[:2]}
    assert reconstruct(group, mixed) != secret


@SUITES
def test_dealer_with_wrong_constant_term_is_named(group: Group) -> None:
    """Dealer 2 deals x_2 itself (forgetting lambda) — or any other value: named."""
    _, old = deal(group, 1, 3, SeededRandom(5))
    old_public = next(iter(old.values())).public
    context = ReshareContext(
        old_public,
        tuple(identifiers(group, [1, 2])),
        tuple(identifiers(group, [1, 2, 3])),
        1,
        SESSION,
    )
    cheat = Identifier.from_int(group, 2)

    def tamper(deals: Deals) -> None:
        poly = Polynomial.random(group, old[cheat].secret_share, 1, SeededRandom(6))
        deals[cheat] = (
            DealerCommitment(Renewal.RESHARE, SESSION, poly.commitments()),
            {j: SubShare(Renewal.RESHARE, SESSION, poly.evaluate(j)) for j in context.new_parties},
        )

    with pytest.raises(InvalidCommitment) as err:
        run_reshare(context, old, 7, tamper)
    assert err.value.culprits == frozenset({cheat})


@SUITES
def test_dealer_with_wrong_degree_or_bad_sub_share_is_named(group: Group) -> None:
    _, old = deal(group, 2, 4, SeededRandom(8))
    old_public = next(iter(old.values())).public
    context = ReshareContext(
        old_public,
        tuple(identifiers(group, [1, 2, 3, 4])),
        tuple(identifiers(group, [5, 6, 7])),
        1,
        SESSION,
    )
    one, three = Identifier.from_int(group, 1), Identifier.from_int(group, 3)
    victim = Identifier.from_int(group, 6)

    def wrong_degree(deals: Deals) -> None:
        weight_share = old[one].secret_share  # value irrelevant: the degree is checked first
        poly = Polynomial.random(group, weight_share, 2, SeededRandom(9))
        deals[one] = (
            DealerCommitment(Renewal.RESHARE, SESSION, poly.commitments()),
            {j: SubShare(Renewal.RESHARE, SESSION, poly.evaluate(j)) for j in context.new_parties},
        )

    with pytest.raises(InvalidCommitment) as err:
        run_reshare(context, old, 10, wrong_degree)
    assert err.value.culprits == frozenset({one})

    def bad_sub_share(deals: Deals) -> None:
        sub = deals[three][1][victim]
        deals[three][1][victim] = SubShare(Renewal.RESHARE, SESSION, sub.value + group.one())

    with pytest.raises(InvalidShare) as share_err:
        run_reshare(context, old, 11, bad_sub_share)
    assert share_err.value.culprits == frozenset({three})


@SUITES
def test_retire_refuses_unless_every_new_party_confirmed_the_same(group: Group) -> None:
    _, old = deal(group, 1, 3, SeededRandom(12))
    old_public = next(iter(old.values())).public
    context = ReshareContext(
        old_public,
        tuple(identifiers(group, [1, 2, 3])),
        tuple(identifiers(group, [4, 5, 6])),
        1,
        SESSION,
    )
    _, confirmations = run_reshare(context, old, 13)
    five = Identifier.from_int(group, 5)
    forged = dict(confirmations)
    forged[five] = Confirmation(Renewal.RESHARE, group, SESSION, bytes(64))
    with pytest.raises(InconsistentTranscript) as err:
        reshare_retire(context, forged)
    assert err.value.culprits == frozenset({five})
    del forged[five]
    with pytest.raises(InvalidParameters, match="missing"):
        reshare_retire(context, forged)


def test_context_validation() -> None:
    g = SECP256K1
    _, old = deal(g, 2, 5, SeededRandom(14))
    public = next(iter(old.values())).public
    new = tuple(identifiers(g, [1, 2, 3]))
    with pytest.raises(InvalidParameters, match="at least 3"):
        ReshareContext(public, tuple(identifiers(g, [1, 2])), new, 1, SESSION)
    with pytest.raises(InvalidParameters, match="not in the old committee"):
        ReshareContext(public, tuple(identifiers(g, [1, 2, 9])), new, 1, SESSION)
    with pytest.raises(InvalidParameters):
        ReshareContext(public, tuple(identifiers(g, [1, 2, 3])), new, 3, SESSION)
    with pytest.raises(InvalidParameters):
        ReshareContext(public, tuple(identifiers(g, [1, 1, 2, 3])), new, 1, SESSION)
    context = ReshareContext(public, tuple(identifiers(g, [1, 2, 3])), new, 1, SESSION)
    with pytest.raises(InvalidParameters, match="not one of the reshare dealers"):
        reshare_deal(context, old[Identifier.from_int(g, 4)], SeededRandom(15))
    _, other = deal(g, 2, 5, SeededRandom(16))
    with pytest.raises(InvalidParameters, match="another public key package"):
        reshare_deal(context, other[Identifier.from_int(g, 1)], SeededRandom(17))
