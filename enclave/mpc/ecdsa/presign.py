"""Presigning rounds of DJNPO20 ("Fast Threshold ECDSA with Honest Majority", §4), as pure
functions from (state, messages by sender) to (next state, messages out).

Among exactly ``2t + 1`` parties (``context.py``), with the key ``x`` shared with degree ``t``:

* **Round 1** (:func:`deal`): every party deals, to every party (itself included), shares of
  random degree-``t`` polynomials for ``k`` and ``a`` and of random degree-``2t`` polynomials with
  constant term zero for ``b`` and ``e``. Summing what it receives, each party holds degree-``t``
  shares ``k_i, a_i`` of random ``k, a`` and degree-``2t`` zero shares ``b_i, e_i``. No dealer
  commitments are sent (as in the paper): correctness is enforced by the openings below.
* **Round 2** (:func:`open_nonce`): broadcast ``R_i = k_i·G`` and ``w_i = a_i·k_i + b_i`` (a
  degree-``2t`` share of ``w = a·k``, masked so it reveals nothing but ``w``).
* **Round 3** (:func:`open_mask`): open ``R = k·G`` in the exponent with the redundancy check
  (``opening.py``), refuse ``R = O``, broadcast ``W_i = a_i·R``.
* **Output** (:func:`finish`): open ``W = a·R`` in the exponent likewise, interpolate
  ``w`` (degree ``2t``), and check ``W == w·G``. This is the paper's key check: a party that used
  another ``a_i`` or ``k_i`` in ``w_i`` than in ``W_i``/``R_i``, or dealt a ``b`` that does not
  share zero, makes it fail, so ``w = a·k`` holds whenever it passes. Then ``k^-1 = a·w^-1`` and
  the presignature keeps ``c_i = a_i·w^-1`` (a degree-``t`` share of ``k^-1``),
  ``beta_i = c_i·x_i`` (degree ``2t``, share of ``k^-1·x``) and ``e_i``.

Every check failure raises :class:`ProtocolAbort` (or a subclass); the caller must treat it as
terminal for the session (``session.py`` does). Security is "with abort": an abort leaks nothing,
since nothing about the key is opened before the checks pass.

Input validation happens before any arithmetic: exact sender set, session id, group.

Every state is single-use (:class:`_Spent`): a round function marks its input state spent before
it looks at the messages, so a state cannot be fed twice — not by a retry, a copy, or
``dataclasses.replace`` (all share the guard). Replaying round 2 with one dealer's deal shifted by
a known polynomial would open ``w' = a·(k + delta)`` beside ``w = a·k`` and make the nonce public;
running ``finish`` twice would hand out two presignatures over one nonce.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from enclave.mpc.ecdsa.context import PresignContext
from enclave.mpc.ecdsa.messages import DIGEST_LENGTH, DealMessage, MaskOpening, NonceOpening
from enclave.mpc.ecdsa.opening import open_in_exponent, open_scalar
from enclave.mpc.ecdsa.presignature import Presignature, PresignatureInfo, PresignatureSecret
from enclave.mpc.errors import (
    InconsistentTranscript,
    InvalidParameters,
    MisuseError,
    ProtocolAbort,
)
from enclave.mpc.groups import Point, Scalar
from enclave.mpc.identifiers import Identifier
from enclave.mpc.keys import KeyShare
from enclave.mpc.randomness import RandomSource
from enclave.mpc.shamir import split_secret
from enclave.mpc.transcript import Transcript

__all__ = [
    "DealState",
    "MaskState",
    "NonceState",
    "deal",
    "finish",
    "open_mask",
    "open_nonce",
]

_PROTOCOL = b"keyshard/ecdsa/djnpo20/presign"

_M = TypeVar("_M", DealMessage, NonceOpening, MaskOpening)


class _Spent:
    """A once-only latch shared by a state and every copy of it (copies are shallow)."""

    __slots__ = ("_lock", "_spent")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spent = False

    def spend(self, what: str) -> None:
        with self._lock:
            spent, self._spent = self._spent, True
        if spent:
            raise MisuseError(f"{what} was already used: each presigning state feeds one round")

    def __deepcopy__(self, memo: object) -> _Spent:
        raise TypeError("presigning states cannot be deep-copied")

    def __reduce__(self) -> str:
        raise TypeError("presigning states are not picklable")


@dataclass(frozen=True, slots=True)
class DealState:
    """After round 1: what this party dealt to itself (its own contribution)."""

    context: PresignContext
    key_share: KeyShare = field(repr=False)
    own_deal: DealMessage = field(repr=False)
    spent: _Spent = field(default_factory=_Spent, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class NonceState:
    """After round 2: the summed shares and this party's opening."""

    context: PresignContext
    key_share: KeyShare = field(repr=False)
    k_share: Scalar = field(repr=False)
    a_share: Scalar = field(repr=False)
    e_share: Scalar = field(repr=False)
    own_opening: NonceOpening
    spent: _Spent = field(default_factory=_Spent, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class MaskState:
    """After round 3: ``R``, every ``w_j`` and ``R_j`` seen, and this party's ``W_i``."""

    context: PresignContext
    key_share: KeyShare = field(repr=False)
    a_share: Scalar = field(repr=False)
    e_share: Scalar = field(repr=False)
    big_r: Point
    nonce_openings: Mapping[Identifier, NonceOpening]
    own_opening: MaskOpening
    spent: _Spent = field(default_factory=_Spent, repr=False, compare=False)


def _check_key_share(context: PresignContext, key_share: KeyShare) -> Identifier:
    if key_share.public != context.public:
        raise InvalidParameters("key share belongs to another key than the presigning context")
    context.others(key_share.identifier)  # raises unless this party presigns
    return key_share.identifier


def _collect(
    context: PresignContext,
    me: Identifier,
    own: _M,
    received: Mapping[Identifier, _M],
    kind: type[_M],
) -> dict[Identifier, _M]:
    """Check the sender set and headers; return every party's message, ours included."""
    expected = set(context.others(me))
    got = set(received)
    if got != expected:
        missing = sorted(expected - got)
        extra = sorted(got - expected)
        raise InvalidParameters(
            f"{kind.KIND}: expected one message from each other party "
            f"(missing {[int(i) for i in missing]}, unexpected {[int(i) for i in extra]})"
        )
    for sender, message in received.items():
        if not isinstance(message, kind):
            raise ProtocolAbort((sender,), f"{kind.KIND}: wrong message type")
        if message.group is not context.group or message.session_id != context.session_id:
            raise ProtocolAbort((sender,), f"{kind.KIND}: message for another session or suite")
    return {me: own, **received}


def deal(
    context: PresignContext, key_share: KeyShare, rng: RandomSource
) -> tuple[DealState, dict[Identifier, DealMessage]]:
    """Round 1: deal random sharings of ``k``, ``a`` (degree t) and of zero (degree 2t, twice)."""
    me = _check_key_share(context, key_share)
    group, t, parties = context.group, context.threshold, context.parties
    k_shares, _ = split_secret(group, group.random_scalar(rng), t, parties, rng)
    a_shares, _ = split_secret(group, group.random_scalar(rng), t, parties, rng)
    b_shares, _ = split_secret(group, group.zero(), 2 * t, parties, rng)
    e_shares, _ = split_secret(group, group.zero(), 2 * t, parties, rng)
    messages = {
        j: DealMessage(
            group, context.session_id, k_shares[j], a_shares[j], b_shares[j], e_shares[j]
        )
        for j in parties
    }
    own = messages.pop(me)
    return DealState(context, key_share, own), messages


def open_nonce(
    state: DealState, received: Mapping[Identifier, DealMessage]
) -> tuple[NonceState, NonceOpening]:
    """Round 2: sum the dealt shares; broadcast ``R_i = k_i·G`` and ``w_i = a_i·k_i + b_i``."""
    state.spent.spend("this deal state")
    context = state.context
    me = state.key_share.identifier
    deals = _collect(context, me, state.own_deal, received, DealMessage)
    group = context.group
    k = a = b = e = group.zero()
    for m in deals.values():
        k, a, b, e = k + m.k_share, a + m.a_share, b + m.b_share, e + m.e_share
    opening = NonceOpening(group, context.session_id, group.base_mul(k), a * k + b)
    return NonceState(context, state.key_share, k, a, e, opening), opening


def open_mask(
    state: NonceState, received: Mapping[Identifier, NonceOpening]
) -> tuple[MaskState, MaskOpening]:
    """Round 3: open ``R`` in the exponent (degree t, with redundancy); broadcast ``W_i = a_i·R``."""
    state.spent.spend("this nonce state")
    context = state.context
    me = state.key_share.identifier
    openings = _collect(context, me, state.own_opening, received, NonceOpening)
    group = context.group
    big_r = open_in_exponent(
        group, {j: m.big_r_share for j, m in openings.items()}, context.threshold, "R = k·G"
    )
    if big_r.is_identity():
        raise ProtocolAbort((), "R = k·G opened to the identity")
    opening = MaskOpening(group, context.session_id, big_r * state.a_share)
    next_state = MaskState(
        context, state.key_share, state.a_share, state.e_share, big_r, openings, opening
    )
    return next_state, opening


def _presignature_id(
    context: PresignContext,
    big_r: Point,
    nonce_openings: Mapping[Identifier, NonceOpening],
    mask_openings: Mapping[Identifier, MaskOpening],
) -> bytes:
    """Digest of everything opened: equal at two parties iff they saw the same broadcasts."""
    tr = Transcript(_PROTOCOL, context.group, context.session_id)
    tr.append(b"public_key_package", context.public.to_bytes())
    tr.append(b"threshold", context.threshold.to_bytes(2, "big"))
    for j in context.parties:
        tr.append(b"party", j.to_bytes())
        tr.append(b"big_r_share", nonce_openings[j].big_r_share.to_bytes())
        tr.append(b"w_share", nonce_openings[j].w_share.to_bytes())
        tr.append(b"big_w_share", mask_openings[j].big_w_share.to_bytes())
    tr.append(b"big_r", big_r.to_bytes())
    return tr.digest()[:DIGEST_LENGTH]


def finish(state: MaskState, received: Mapping[Identifier, MaskOpening]) -> Presignature:
    """Output: open ``W``, interpolate ``w``, check ``W == w·G``, derive the presignature."""
    state.spent.spend("this mask state")
    context = state.context
    me = state.key_share.identifier
    masks = _collect(context, me, state.own_opening, received, MaskOpening)
    group = context.group
    big_w = open_in_exponent(
        group, {j: m.big_w_share for j, m in masks.items()}, context.threshold, "W = a·R"
    )
    w = open_scalar(group, {j: m.w_share for j, m in state.nonce_openings.items()})
    if group.base_mul(w) != big_w:
        # Either a w_j is wrong (a w share has no redundancy) or some party's a_j/k_j in w_j
        # differs from the one behind its R_j/W_j: the paper's check, which cannot say who.
        raise InconsistentTranscript((), "W != w·G: the opened product a·k is inconsistent")
    if w.is_zero():
        raise ProtocolAbort((), "w = a·k opened to zero")
    k_inv = state.a_share * w.invert()
    secret = PresignatureSecret(
        k_inv_share=k_inv,
        k_inv_x_share=k_inv * state.key_share.secret_share,
        mask_share=state.e_share,
    )
    info = PresignatureInfo(
        public=context.public,
        parties=context.parties,
        session_id=context.session_id,
        presignature_id=_presignature_id(context, state.big_r, state.nonce_openings, masks),
        big_r=state.big_r,
    )
    return Presignature(me, info, secret)
