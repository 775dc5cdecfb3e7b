"""Repair a lost share, or enrol a new party, without ever assembling the key.

The Repairable Threshold Scheme of Laing and Stinson ("A survey and refinement of repairable
threshold schemes", https://eprint.iacr.org/2017/1155), in the three steps of ZF ``frost``
``keys/repairable`` (whose published vectors the tests pass). A set ``H`` of at least ``t + 1``
helpers restores ``f(r)`` for the participant ``r`` (a member that lost its share, or a new
identifier being enrolled)::

    1. each helper i:  zeta_i = lambda_i^H(r)   (Lagrange coefficient of i at x = r over H)
                       split zeta_i · x_i into |H| random summands delta_{i->j}, one per
                       helper j (the first |H|-1 uniform, the last the remainder), and send
                       delta_{i->j} to helper j
    2. each helper j:  sigma_j = sum_i delta_{i->j};  send sigma_j to r
    3. participant r:  x_r = sum_j sigma_j = sum_i zeta_i x_i = f(r)

Each helper sees only uniformly random deltas from the others and ``r`` sees only random-looking
sigmas, so nobody learns another party's share. Threshold convention: ``t`` is the degree.

Checks beyond the ZF reference: helpers are distinct, at least ``t + 1`` (fewer cannot
interpolate ``f``), all in the key's committee, and exclude ``r``; every message is bound to the
session and comes from exactly the expected senders; and the repaired share is verified against
``r``'s verification share (from the package, or for an enrolment interpolated in the exponent
from the helpers' verification shares), so a helper that sent garbage cannot plant a wrong
share. The sum does not tell *which* helper cheated, so a failed check names all of them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from enclave.mpc.encoding import Decoder, Encoder
from enclave.mpc.errors import InvalidParameters, InvalidShare, ProtocolAbort
from enclave.mpc.groups import Group, Point, Scalar
from enclave.mpc.identifiers import Identifier, validate_identifiers
from enclave.mpc.keys import KeyShare, PublicKeyPackage
from enclave.mpc.randomness import RandomSource
from enclave.mpc.renewal import MAX_SESSION_ID, check_senders, read_session_id
from enclave.mpc.shamir import lagrange_coefficient

__all__ = [
    "RepairStep",
    "RepairValue",
    "enrolled_package",
    "repair_step_1",
    "repair_step_2",
    "repair_step_3",
    "sum_scalars",
]


class RepairStep(enum.Enum):
    DELTA = "repair-delta"  # helper -> helper
    SIGMA = "repair-sigma"  # helper -> participant


@dataclass(frozen=True, slots=True)
class RepairValue:
    """A secret scalar of one repair step; over an encrypted, attested channel only."""

    step: RepairStep
    session_id: bytes
    value: Scalar

    def __post_init__(self) -> None:
        if not 0 < len(self.session_id) <= MAX_SESSION_ID:
            raise InvalidParameters(f"session id must be 1..{MAX_SESSION_ID} bytes")

    @property
    def group(self) -> Group:
        return self.value.group

    def __repr__(self) -> str:
        return f"RepairValue({self.step.value}, {self.group.name}, <redacted>)"

    def to_bytes(self) -> bytes:
        """Plaintext for the attested channel's AEAD only (contains a secret)."""
        enc = Encoder(self.step.value, self.group).var_bytes(self.session_id)
        return enc.scalar(self.value).finish()

    @classmethod
    def from_bytes(cls, data: bytes, step: RepairStep, group: Group | None = None) -> RepairValue:
        dec = Decoder(data, step.value, group)
        session_id = read_session_id(dec)
        value = dec.scalar("value")
        dec.finish()
        return cls(step, session_id, value)


def _check_helpers(
    public: PublicKeyPackage, helpers: Sequence[Identifier], participant: Identifier
) -> tuple[Identifier, ...]:
    group = public.group
    ordered = validate_identifiers(group, helpers)
    if participant.group is not group:
        raise InvalidParameters("participant identifier from a different group")
    if participant in ordered:
        raise InvalidParameters("the participant cannot help repair its own share")
    if len(ordered) < public.threshold + 1:
        raise InvalidParameters(f"need at least {public.threshold + 1} helpers, got {len(ordered)}")
    outside = [int(i) for i in ordered if i not in public.verifying_shares]
    if outside:
        raise InvalidParameters(f"helpers {outside} are not in the key's committee")
    return ordered


def _zeta(
    group: Group, helper: Identifier, helpers: Sequence[Identifier], at: Identifier
) -> Scalar:
    return lagrange_coefficient(group, helper, helpers, at=int(at))


def repair_step_1(
    helpers: Sequence[Identifier],
    key_share: KeyShare,
    participant: Identifier,
    session_id: bytes,
    rng: RandomSource,
) -> dict[Identifier, RepairValue]:
    """Helper side: split ``zeta_i · x_i`` into one random delta per helper (itself included)."""
    ordered = _check_helpers(key_share.public, helpers, participant)
    if key_share.identifier not in ordered:
        raise InvalidParameters("this party is not one of the helpers")
    group = key_share.group
    target = _zeta(group, key_share.identifier, ordered, participant) * key_share.secret_share
    deltas: dict[Identifier, Scalar] = {}
    running = group.zero()
    for j in ordered[:-1]:
        deltas[j] = group.random_scalar(rng)
        running = running + deltas[j]
    deltas[ordered[-1]] = target - running
    return {j: RepairValue(RepairStep.DELTA, session_id, d) for j, d in deltas.items()}


def _collect(
    step: RepairStep,
    group: Group,
    session_id: bytes,
    senders: Sequence[Identifier],
    values: Mapping[Identifier, RepairValue],
) -> list[Scalar]:
    check_senders(senders, values.keys(), f"{step.value} messages")
    bad = [
        i
        for i in senders
        if values[i].step is not step
        or values[i].session_id != session_id
        or values[i].group is not group
    ]
    if bad:
        raise ProtocolAbort(bad, f"{step.value} for another session, step or group")
    return [values[i].value for i in senders]


def sum_scalars(group: Group, values: Sequence[Scalar]) -> Scalar:
    """The sum in Z_q (steps 2 and 3 are sums; ZF's vectors check exactly this)."""
    total = group.zero()
    for v in values:
        total = total + v
    return total


def repair_step_2(
    public: PublicKeyPackage,
    helpers: Sequence[Identifier],
    participant: Identifier,
    session_id: bytes,
    deltas: Mapping[Identifier, RepairValue],
) -> RepairValue:
    """Helper side: ``sigma_j`` = the sum of the deltas received from every helper."""
    ordered = _check_helpers(public, helpers, participant)
    values = _collect(RepairStep.DELTA, public.group, session_id, ordered, deltas)
    return RepairValue(RepairStep.SIGMA, session_id, sum_scalars(public.group, values))


def enrolled_package(
    public: PublicKeyPackage, participant: Identifier, helpers: Sequence[Identifier]
) -> PublicKeyPackage:
    """The package with ``participant``'s verification share (interpolated if it is new).

    ``Y_r = sum_{i in H} lambda_i^H(r) · Y_i`` — public data, so every party can compute it
    and add the enrolled party to its own copy of the package.
    """
    if participant in public.verifying_shares:
        return public
    ordered = _check_helpers(public, helpers, participant)
    group = public.group
    y_r: Point = group.multi_mul(
        [(_zeta(group, i, ordered, participant), public.verifying_shares[i]) for i in ordered]
    )
    shares = dict(public.verifying_shares)
    shares[participant] = y_r
    return PublicKeyPackage(group, public.group_public_key, shares, public.threshold)


def repair_step_3(
    public: PublicKeyPackage,
    helpers: Sequence[Identifier],
    participant: Identifier,
    session_id: bytes,
    sigmas: Mapping[Identifier, RepairValue],
) -> KeyShare:
    """Participant side: sum the sigmas and check the result against ``Y_r`` before use."""
    ordered = _check_helpers(public, helpers, participant)
    group = public.group
    share = sum_scalars(group, _collect(RepairStep.SIGMA, group, session_id, ordered, sigmas))
    package = enrolled_package(public, participant, ordered)
    if group.base_mul(share) != package.verifying_shares[participant]:
        raise InvalidShare(ordered, "repaired share does not match its verification share")
    return KeyShare(participant, share, package)
