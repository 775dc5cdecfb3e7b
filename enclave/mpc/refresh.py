"""Proactive share refresh: same group key, fresh shares, old shares made useless.

Threshold convention: ``t`` is the polynomial degree; any ``t + 1`` shares act together.

Protocol (Herzberg, Jarecki, Krawczyk, Yung, "Proactive Secret Sharing", CRYPTO '95, with
Feldman commitments; the shape of ZF ``frost`` ``keys/refresh``). *Every* party of the key
takes part — a party left out would keep a share of the old polynomial that fits nobody's new
one::

    1. deal     each party i picks a random degree-t f_i with f_i(0) = 0, broadcasts
                C_i = (f_i's coefficients)·G, whose constant term is the identity, and sends
                f_i(j) privately to each party j (itself included).
    2. receive  party j checks, for every dealer i: the degree is t, C_i's constant term IS
                the identity (else i could shift the group key), and f_i(j)·G == C_i(j);
                a failure names i. Then
                    x_j' = x_j + sum_i f_i(j)              (kept pending, not yet used)
                    Y_k' = Y_k + sum_i C_i(k)   for every party k
                    Y'   = Y + sum_i C_i[0] = Y            (checked)
                and broadcasts a Confirmation: a digest of every C_i and the new package.
    3. confirm  when every party confirmed the same digest, adopt x_j' and delete x_j.

The new shares lie on ``F + sum_i f_i``, a fresh random polynomial through the same secret, so
``t`` or fewer old shares combined with new ones reveal nothing and interpolate to garbage:
an attacker must corrupt ``t + 1`` parties within one epoch.

:class:`RefreshSession` is the two-phase state machine: the old share stays the active one until
the confirm step succeeds; any failure leaves the session FAILED for good with the old share
still active (no party can have adopted new shares without every party's confirmation).
*Limitation:* a party that crashes after others adopted the new shares but before it saw all
confirmations must be handed the (public) confirmations again to commit; the node service keeps
the pending share sealed until then. On commit the node must also delete every ECDSA
presignature made with the old share.

A failed sub-share check is known only to its recipient, which names the dealer; others can
check such a complaint only if the dealer then reveals the sub-share (as a DKG complaint
round does); this module raises and leaves that to the driver.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from enclave.mpc.errors import InvalidCommitment, InvalidParameters, InvalidShare, MisuseError
from enclave.mpc.identifiers import Identifier
from enclave.mpc.keys import KeyShare, PublicKeyPackage
from enclave.mpc.randomness import RandomSource
from enclave.mpc.renewal import (
    Confirmation,
    DealerCommitment,
    Renewal,
    SubShare,
    check_confirmations,
    check_senders,
    combined_commitment,
    transcript_digest,
)
from enclave.mpc.shamir import Polynomial

__all__ = [
    "TRANSITIONS",
    "Event",
    "PendingRefresh",
    "Phase",
    "RefreshSession",
    "refresh_commit",
    "refresh_deal",
    "refresh_receive",
]

_R = Renewal.REFRESH
_T = TypeVar("_T")


def refresh_deal(
    key_share: KeyShare, session_id: bytes, rng: RandomSource
) -> tuple[DealerCommitment, dict[Identifier, SubShare]]:
    """Step 1: a random zero-sharing of degree ``t`` for every party of the key."""
    group = key_share.group
    poly = Polynomial.random(group, group.zero(), key_share.threshold, rng)
    commitment = DealerCommitment(_R, session_id, poly.commitments())
    sub_shares = {
        j: SubShare(_R, session_id, poly.evaluate(j)) for j in key_share.public.identifiers
    }
    return commitment, sub_shares


@dataclass(frozen=True, slots=True, eq=False)
class PendingRefresh:
    """Step 2's result: the new share (not to be used yet) and the confirmation to broadcast."""

    old: KeyShare = field(repr=False)
    new: KeyShare = field(repr=False)
    confirmation: Confirmation

    def __repr__(self) -> str:
        return f"PendingRefresh({self.old.group.name}, {int(self.old.identifier)}, <redacted>)"


def _check_commitments(
    key_share: KeyShare, session_id: bytes, commitments: Mapping[Identifier, DealerCommitment]
) -> None:
    """The public rules, checked for every dealer before any share: all culprits named."""
    bad: list[Identifier] = []
    for dealer, message in sorted(commitments.items()):
        c = message.commitment
        if (
            message.renewal is not _R
            or message.session_id != session_id
            or c.group is not key_share.group
            or c.degree != key_share.threshold
            or not c.constant.is_identity()
        ):
            bad.append(dealer)
    if bad:
        raise InvalidCommitment(
            bad, "refresh commitment is not a degree-t zero-sharing for this session"
        )


def refresh_receive(
    key_share: KeyShare,
    session_id: bytes,
    commitments: Mapping[Identifier, DealerCommitment],
    sub_shares: Mapping[Identifier, SubShare],
) -> PendingRefresh:
    """Step 2: verify every dealer, compute the pending share and the new public package.

    ``commitments`` and ``sub_shares`` are keyed by the authenticated sender and must come
    from exactly the key's parties (this party's own deal included).
    """
    group = key_share.group
    parties = key_share.public.identifiers
    check_senders(parties, commitments.keys(), "refresh commitments")
    check_senders(parties, sub_shares.keys(), "refresh sub-shares")
    _check_commitments(key_share, session_id, commitments)
    bad_shares: list[Identifier] = []
    for dealer in parties:
        sub = sub_shares[dealer]
        if sub.renewal is not _R or sub.session_id != session_id or sub.group is not group:
            bad_shares.append(dealer)
            continue
        try:
            commitments[dealer].commitment.verify_share(
                key_share.identifier, sub.value, dealer=dealer
            )
        except InvalidShare:
            bad_shares.append(dealer)
    if bad_shares:
        raise InvalidShare(bad_shares, "refresh sub-share does not match the dealer's commitment")

    delta = combined_commitment(group, commitments)
    old = key_share.public
    new_public_key = old.group_public_key + delta.constant
    if new_public_key != old.group_public_key:  # pragma: no cover - constants checked above
        raise InvalidCommitment(parties, "refresh changed the group key")
    new_public = PublicKeyPackage(
        group,
        new_public_key,
        {k: y + delta.evaluate(k) for k, y in old.verifying_shares.items()},
        old.threshold,
    )
    new_secret = key_share.secret_share
    for dealer in parties:
        new_secret = new_secret + sub_shares[dealer].value
    new = KeyShare(key_share.identifier, new_secret, new_public)
    digest = transcript_digest(_R, session_id, commitments, new_public, (b"old", old.to_bytes()))
    return PendingRefresh(key_share, new, Confirmation(_R, group, session_id, digest))


def refresh_commit(
    pending: PendingRefresh, confirmations: Mapping[Identifier, Confirmation]
) -> KeyShare:
    """Step 3: every party confirmed this party's transcript; the new share may be used."""
    own = pending.confirmation
    check_confirmations(
        _R,
        own.group,
        own.session_id,
        pending.old.public.identifiers,
        confirmations,
        own_digest=own.digest,
    )
    return pending.new


# -- the two-phase session -------------------------------------------------------------------


class Phase(enum.Enum):
    NEW = "new"
    DEALT = "dealt"
    PENDING = "pending"  # new share computed, old one still the active one
    COMMITTED = "committed"  # new share active, old one dropped
    FAILED = "failed"  # old share still active, this session unusable


class Event(enum.Enum):
    DEAL = "deal"
    RECEIVE = "receive"
    CONFIRM = "confirm"


TRANSITIONS: Mapping[tuple[Phase, Event], Phase] = {
    (Phase.NEW, Event.DEAL): Phase.DEALT,
    (Phase.DEALT, Event.RECEIVE): Phase.PENDING,
    (Phase.PENDING, Event.CONFIRM): Phase.COMMITTED,
}


class RefreshSession:
    """One party's refresh: ``deal -> receive -> confirm``, old share active until the end."""

    __slots__ = ("_new", "_old", "_pending", "_phase", "_session_id")

    def __init__(self, key_share: KeyShare, session_id: bytes) -> None:
        self._old: KeyShare | None = key_share
        self._new: KeyShare | None = None
        self._pending: PendingRefresh | None = None
        self._session_id = session_id
        self._phase = Phase.NEW

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def active_share(self) -> KeyShare:
        """The share to sign / decrypt with now: the old one until COMMITTED."""
        share = self._new if self._phase is Phase.COMMITTED else self._old
        assert share is not None
        return share

    @property
    def retired_share_deleted(self) -> bool:
        """True once the old share is no longer referenced (after COMMITTED)."""
        return self._old is None

    def _step(self, event: Event, action: Callable[[], _T]) -> _T:
        target = TRANSITIONS.get((self._phase, event))
        if target is None:
            current = self._phase
            self._phase = Phase.FAILED
            raise MisuseError(f"refresh: {event.value} not allowed in phase {current.value}")
        try:
            result = action()
        except BaseException:
            self._phase = Phase.FAILED
            self._pending = None
            raise
        self._phase = target
        return result

    def deal(self, rng: RandomSource) -> tuple[DealerCommitment, dict[Identifier, SubShare]]:
        return self._step(
            Event.DEAL, lambda: refresh_deal(self.active_share, self._session_id, rng)
        )

    def receive(
        self,
        commitments: Mapping[Identifier, DealerCommitment],
        sub_shares: Mapping[Identifier, SubShare],
    ) -> Confirmation:
        def action() -> Confirmation:
            self._pending = refresh_receive(
                self.active_share, self._session_id, commitments, sub_shares
            )
            return self._pending.confirmation

        return self._step(Event.RECEIVE, action)

    def confirm(self, confirmations: Mapping[Identifier, Confirmation]) -> KeyShare:
        def action() -> KeyShare:
            if self._pending is None:  # pragma: no cover - guaranteed by the transition table
                raise InvalidParameters("no pending refresh")
            new = refresh_commit(self._pending, confirmations)
            self._new, self._old, self._pending = new, None, None
            return new

        return self._step(Event.CONFIRM, action)
