"""Reshare a threshold key to a new committee and/or threshold; the group key stays the same.

Threshold convention: ``t`` is the polynomial degree; any ``t + 1`` shares act together.

Protocol (Desmedt-Jajodia redistribution with Feldman commitments, as in Wong-Wang-Wing
"Verifiable secret redistribution"): a set ``D`` of at least ``t_old + 1`` old parties deals::

    1. deal     old party i in D: w_i = lambda_i^D · x_i (its Lagrange-weighted share, so that
                sum_{i in D} w_i = x); picks a random degree-t_new g_i with g_i(0) = w_i;
                broadcasts C_i = (g_i's coefficients)·G and sends g_i(j) to each new party j.
    2. receive  new party j checks, for every dealer i in D: degree t_new, the constant term
                C_i[0] == lambda_i^D · Y_i (Y_i is i's public verification share in the OLD
                package — so a dealer cannot deal anything but its own weighted share), and
                g_i(j)·G == C_i(j); a failure names i. Then
                    x_j' = sum_i g_i(j)                     (pending)
                    Y_k' = sum_i C_i(k)   for every new party k
                    Y'   = sum_i C_i[0] = sum_i lambda_i Y_i = Y     (checked)
                and broadcasts a Confirmation of the transcript digest.
    3. confirm  new parties adopt x_j' when every new party confirmed the same digest; old
                dealers (:func:`reshare_retire`) delete their old share on the same evidence.

The new shares lie on ``sum_i g_i``, a fresh degree-``t_new`` polynomial through the same secret,
independent of the old one: old shares and new shares do not combine. Each old party's share
stays hidden behind its random ``g_i``. A party may be both an old dealer and a new recipient.

On commit (new parties) and retire (old dealers) the node must also delete every ECDSA
presignature made with the old share: presignatures are tied to the sharing they came from.

Trust: new parties must obtain the old :class:`PublicKeyPackage` from an authenticated source
(e.g. the key's record signed by the old committee); everything is checked against it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from enclave.mpc.errors import InvalidCommitment, InvalidParameters, InvalidShare
from enclave.mpc.groups import Group
from enclave.mpc.identifiers import Identifier, validate_identifiers
from enclave.mpc.keys import KeyShare, PublicKeyPackage
from enclave.mpc.randomness import RandomSource
from enclave.mpc.renewal import (
    MAX_SESSION_ID,
    Confirmation,
    DealerCommitment,
    Renewal,
    SubShare,
    check_confirmations,
    check_senders,
    combined_commitment,
    transcript_digest,
)
from enclave.mpc.shamir import Polynomial, check_threshold, lagrange_coefficient

__all__ = [
    "PendingReshare",
    "ReshareContext",
    "reshare_commit",
    "reshare_deal",
    "reshare_receive",
    "reshare_retire",
]

_R = Renewal.RESHARE


@dataclass(frozen=True, slots=True)
class ReshareContext:
    """The public parameters every participant of one reshare must agree on.

    ``dealers`` is the subset of the old committee that deals (at least ``t_old + 1``; all of
    them must take part), ``new_parties`` the new committee and ``new_threshold`` its degree.
    """

    old_public: PublicKeyPackage
    dealers: tuple[Identifier, ...]
    new_parties: tuple[Identifier, ...]
    new_threshold: int
    session_id: bytes

    def __post_init__(self) -> None:
        group = self.old_public.group
        dealers = validate_identifiers(group, self.dealers)
        new_parties = validate_identifiers(group, self.new_parties)
        object.__setattr__(self, "dealers", dealers)
        object.__setattr__(self, "new_parties", new_parties)
        outside = [int(i) for i in dealers if i not in self.old_public.verifying_shares]
        if outside:
            raise InvalidParameters(f"dealers {outside} are not in the old committee")
        if len(dealers) < self.old_public.threshold + 1:
            raise InvalidParameters(
                f"need at least {self.old_public.threshold + 1} old dealers, got {len(dealers)}"
            )
        check_threshold(self.new_threshold, len(new_parties))
        if not 0 < len(self.session_id) <= MAX_SESSION_ID:
            raise InvalidParameters(f"session id must be 1..{MAX_SESSION_ID} bytes")

    @property
    def group(self) -> Group:
        return self.old_public.group

    def digest_fields(self) -> tuple[tuple[bytes, bytes], ...]:
        """The context itself goes into the confirmed transcript."""
        return (
            (b"old", self.old_public.to_bytes()),
            (b"dealers", b"".join(i.to_bytes() for i in self.dealers)),
            (b"new parties", b"".join(i.to_bytes() for i in self.new_parties)),
            (b"new threshold", self.new_threshold.to_bytes(2, "big")),
        )


def reshare_deal(
    context: ReshareContext, key_share: KeyShare, rng: RandomSource
) -> tuple[DealerCommitment, dict[Identifier, SubShare]]:
    """Step 1 (old dealer): share ``lambda_i · x_i`` with degree ``t_new`` to the new committee."""
    if key_share.public.to_bytes() != context.old_public.to_bytes():
        raise InvalidParameters("key share belongs to another public key package")
    if key_share.identifier not in context.dealers:
        raise InvalidParameters("this party is not one of the reshare dealers")
    group = context.group
    weight = lagrange_coefficient(group, key_share.identifier, context.dealers)
    poly = Polynomial.random(group, weight * key_share.secret_share, context.new_threshold, rng)
    commitment = DealerCommitment(_R, context.session_id, poly.commitments())
    sub_shares = {
        j: SubShare(_R, context.session_id, poly.evaluate(j)) for j in context.new_parties
    }
    return commitment, sub_shares


@dataclass(frozen=True, slots=True, eq=False)
class PendingReshare:
    """Step 2's result at a new party: its new share (unused until confirmed) and confirmation."""

    new: KeyShare = field(repr=False)
    confirmation: Confirmation

    def __repr__(self) -> str:
        return f"PendingReshare({self.new.group.name}, {int(self.new.identifier)}, <redacted>)"


def _check_commitments(
    context: ReshareContext, commitments: Mapping[Identifier, DealerCommitment]
) -> None:
    """Public rules for every dealer, all culprits named: session, degree, constant term."""
    group = context.group
    bad: list[Identifier] = []
    for dealer in context.dealers:
        message = commitments[dealer]
        c = message.commitment
        if (
            message.renewal is not _R
            or message.session_id != context.session_id
            or c.group is not group
            or c.degree != context.new_threshold
        ):
            bad.append(dealer)
            continue
        weight = lagrange_coefficient(group, dealer, context.dealers)
        if c.constant != context.old_public.verifying_shares[dealer] * weight:
            bad.append(dealer)
    if bad:
        raise InvalidCommitment(
            bad, "reshare commitment is not a degree-t_new sharing of lambda_i * x_i"
        )


def reshare_receive(
    context: ReshareContext,
    identifier: Identifier,
    commitments: Mapping[Identifier, DealerCommitment],
    sub_shares: Mapping[Identifier, SubShare],
) -> PendingReshare:
    """Step 2 (new party ``identifier``): verify every dealer, compute the pending new share."""
    group = context.group
    if identifier not in context.new_parties:
        raise InvalidParameters("this party is not in the new committee")
    check_senders(context.dealers, commitments.keys(), "reshare commitments")
    check_senders(context.dealers, sub_shares.keys(), "reshare sub-shares")
    _check_commitments(context, commitments)
    bad: list[Identifier] = []
    for dealer in context.dealers:
        sub = sub_shares[dealer]
        if sub.renewal is not _R or sub.session_id != context.session_id or sub.group is not group:
            bad.append(dealer)
            continue
        try:
            commitments[dealer].commitment.verify_share(identifier, sub.value, dealer=dealer)
        except InvalidShare:
            bad.append(dealer)
    if bad:
        raise InvalidShare(bad, "reshare sub-share does not match the dealer's commitment")

    total = combined_commitment(group, commitments)
    if total.constant != context.old_public.group_public_key:
        # Every constant equals lambda_i * Y_i, so only an inconsistent old package gets here.
        raise InvalidParameters("old public key package is inconsistent with its shares")
    new_public = PublicKeyPackage(
        group,
        total.constant,
        {k: total.evaluate(k) for k in context.new_parties},
        context.new_threshold,
    )
    new_secret = group.zero()
    for dealer in context.dealers:
        new_secret = new_secret + sub_shares[dealer].value
    new = KeyShare(identifier, new_secret, new_public)
    digest = transcript_digest(
        _R, context.session_id, commitments, new_public, *context.digest_fields()
    )
    return PendingReshare(new, Confirmation(_R, group, context.session_id, digest))


def reshare_commit(
    context: ReshareContext,
    pending: PendingReshare,
    confirmations: Mapping[Identifier, Confirmation],
) -> KeyShare:
    """Step 3 (new party): every new party confirmed this transcript; adopt the new share."""
    check_confirmations(
        _R,
        context.group,
        context.session_id,
        context.new_parties,
        confirmations,
        own_digest=pending.confirmation.digest,
    )
    return pending.new


def reshare_retire(
    context: ReshareContext, confirmations: Mapping[Identifier, Confirmation]
) -> bytes:
    """Step 3 (old party): may its old share be deleted? Only if the whole new committee
    confirmed one transcript (the majority view; dissenters are named). Returns that digest,
    which the node records with the deletion."""
    return check_confirmations(
        _R,
        context.group,
        context.session_id,
        context.new_parties,
        confirmations,
        own_digest=None,
    )
