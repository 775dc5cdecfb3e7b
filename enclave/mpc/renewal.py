"""What share renewal (``refresh.py``, ``reshare.py``) shares: its messages and the confirm step.

Both protocols have the same shape: every dealer broadcasts a Feldman commitment
(:class:`DealerCommitment`) and sends each recipient a private sub-share (:class:`SubShare`,
only ever over an encrypted, attested channel); each recipient checks everything, computes its
new share *without yet using it*, and broadcasts a :class:`Confirmation` carrying a digest of
the whole public transcript (every dealer's commitment and the resulting public key package).
Only when every expected party has confirmed the same digest (:func:`check_confirmations`) is
the new share adopted and the old one deleted: a dealer that sent different commitments to
different peers, or a recipient that computed something else, is caught before any old share
is gone (two-phase renewal; ARCHITECTURE "Protocol choices").

Messages never name their sender (the driver pairs each with the authenticated peer), carry the
session id, and are encoded with a protocol-specific kind so a refresh message never parses as
a reshare one.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from enclave.mpc.encoding import Decoder, Encoder
from enclave.mpc.errors import EncodingError, InconsistentTranscript, InvalidParameters
from enclave.mpc.groups import Group, Scalar
from enclave.mpc.identifiers import Identifier
from enclave.mpc.keys import PublicKeyPackage
from enclave.mpc.transcript import Transcript
from enclave.mpc.vss import VssCommitment

__all__ = [
    "MAX_SESSION_ID",
    "Confirmation",
    "DealerCommitment",
    "Renewal",
    "SubShare",
    "check_confirmations",
    "check_senders",
    "combined_commitment",
    "read_session_id",
    "transcript_digest",
]

MAX_SESSION_ID = 256
_DIGEST_LENGTH = 64
_MAX_DEGREE = 255


class Renewal(enum.Enum):
    """Which renewal protocol a message belongs to (part of every message kind and hash)."""

    REFRESH = "refresh"
    RESHARE = "reshare"

    @property
    def protocol(self) -> bytes:
        return f"keyshard/{self.value}/v1".encode()


def _check_session_id(session_id: bytes) -> None:
    if not 0 < len(session_id) <= MAX_SESSION_ID:
        raise InvalidParameters(f"session id must be 1..{MAX_SESSION_ID} bytes")


def read_session_id(dec: Decoder) -> bytes:
    """Decode a session id (1..MAX_SESSION_ID bytes); anything else is an encoding error."""
    session_id = dec.var_bytes("session_id", max_length=MAX_SESSION_ID)
    if not session_id:
        raise EncodingError("session_id", "empty")
    return session_id


@dataclass(frozen=True, slots=True)
class DealerCommitment:
    """Broadcast by a dealer: its Feldman commitment ``(a_j·G)_j`` for this session.

    The constant term may be the identity (a refresh dealer's zero-sharing must have exactly
    that); the higher coefficients are random and never the identity. Whether the constant is
    *right* is the protocol's check, which names the dealer — so decoding lets any constant
    through and the rule is enforced where the culprit is known.
    """

    renewal: Renewal
    session_id: bytes
    commitment: VssCommitment

    def __post_init__(self) -> None:
        _check_session_id(self.session_id)
        if self.commitment.degree > _MAX_DEGREE:
            raise InvalidParameters("commitment degree too large")

    @property
    def group(self) -> Group:
        return self.commitment.group

    def to_bytes(self) -> bytes:
        points = self.commitment.points
        enc = Encoder(f"{self.renewal.value}-commitment", self.group).var_bytes(self.session_id)
        enc.count(len(points))
        if points[0].is_identity():
            enc.u8(0)
        else:
            enc.u8(1).point(points[0])
        for p in points[1:]:
            if p.is_identity():
                raise EncodingError("commitment", "identity above the constant term")
            enc.point(p)
        return enc.finish()

    @classmethod
    def from_bytes(
        cls, data: bytes, renewal: Renewal, group: Group | None = None
    ) -> DealerCommitment:
        dec = Decoder(data, f"{renewal.value}-commitment", group)
        session_id = read_session_id(dec)
        n = dec.count("count", minimum=2, maximum=_MAX_DEGREE + 1)
        flag = dec.u8("constant flag")
        if flag not in (0, 1):
            raise EncodingError("constant flag", "must be 0 (identity) or 1 (point)")
        constant = dec.point("points[0]") if flag else dec.group.identity()
        rest = [dec.point(f"points[{j}]") for j in range(1, n)]
        dec.finish()
        return cls(renewal, session_id, VssCommitment(dec.group, (constant, *rest)))


@dataclass(frozen=True, slots=True)
class SubShare:
    """Dealer -> one recipient, over an encrypted channel only: ``f_dealer(recipient)``."""

    renewal: Renewal
    session_id: bytes
    value: Scalar

    def __post_init__(self) -> None:
        _check_session_id(self.session_id)

    @property
    def group(self) -> Group:
        return self.value.group

    def __repr__(self) -> str:
        return f"SubShare({self.renewal.value}, {self.group.name}, <redacted>)"

    def to_bytes(self) -> bytes:
        """Plaintext for the attested channel's AEAD only (contains a secret)."""
        enc = Encoder(f"{self.renewal.value}-subshare", self.group).var_bytes(self.session_id)
        return enc.scalar(self.value).finish()

    @classmethod
    def from_bytes(cls, data: bytes, renewal: Renewal, group: Group | None = None) -> SubShare:
        dec = Decoder(data, f"{renewal.value}-subshare", group)
        session_id = read_session_id(dec)
        value = dec.scalar("value")
        dec.finish()
        return cls(renewal, session_id, value)


@dataclass(frozen=True, slots=True)
class Confirmation:
    """Broadcast by a recipient: "I checked everything; this is the transcript I saw"."""

    renewal: Renewal
    group: Group
    session_id: bytes
    digest: bytes

    def __post_init__(self) -> None:
        _check_session_id(self.session_id)
        if len(self.digest) != _DIGEST_LENGTH:
            raise InvalidParameters("confirmation digest must be 64 bytes")

    def to_bytes(self) -> bytes:
        enc = Encoder(f"{self.renewal.value}-confirmation", self.group)
        return enc.var_bytes(self.session_id).var_bytes(self.digest).finish()

    @classmethod
    def from_bytes(cls, data: bytes, renewal: Renewal, group: Group | None = None) -> Confirmation:
        dec = Decoder(data, f"{renewal.value}-confirmation", group)
        session_id = read_session_id(dec)
        digest = dec.var_bytes("digest", max_length=_DIGEST_LENGTH)
        dec.finish()
        if len(digest) != _DIGEST_LENGTH:
            raise EncodingError("digest", "must be 64 bytes")
        return cls(renewal, dec.group, session_id, digest)


def check_senders(expected: Iterable[Identifier], got: Iterable[Identifier], what: str) -> None:
    """The messages present come from exactly the expected parties (a driver's duty)."""
    expected_set, got_set = set(expected), set(got)
    if expected_set != got_set:
        missing = sorted(int(i) for i in expected_set - got_set)
        extra = sorted(int(i) for i in got_set - expected_set)
        raise InvalidParameters(f"{what}: missing from {missing}, unexpected from {extra}")


def transcript_digest(
    renewal: Renewal,
    session_id: bytes,
    commitments: Mapping[Identifier, DealerCommitment],
    result: PublicKeyPackage,
    *extra: tuple[bytes, bytes],
) -> bytes:
    """Hash of everything public about a renewal: each dealer's commitment and the outcome."""
    transcript = Transcript(renewal.protocol, result.group, session_id)
    for label, data in extra:
        transcript.append(label, data)
    for dealer in sorted(commitments):
        transcript.append(b"dealer", dealer.to_bytes())
        transcript.append(b"commitment", commitments[dealer].to_bytes())
    transcript.append(b"result", result.to_bytes())
    return transcript.digest()


def check_confirmations(
    renewal: Renewal,
    group: Group,
    session_id: bytes,
    expected: Sequence[Identifier],
    confirmations: Mapping[Identifier, Confirmation],
    *,
    own_digest: bytes | None,
) -> bytes:
    """Every expected party confirmed the same transcript; returns that digest.

    The reference view is ``own_digest`` for a party that computed one (it trusts its own
    checks), else the strict majority of the confirmations; parties whose view differs are
    named (all of them when there is no majority). A confirmation for another session or
    protocol is its sender's fault as well.
    """
    check_senders(expected, confirmations.keys(), "confirmations")
    wrong_session = [
        i
        for i, c in confirmations.items()
        if c.session_id != session_id or c.renewal is not renewal or c.group is not group
    ]
    if wrong_session:
        raise InconsistentTranscript(wrong_session, "confirmation for another session")
    reference = own_digest
    if reference is None:
        (top, votes), *_ = Counter(c.digest for c in confirmations.values()).most_common(1)
        if 2 * votes <= len(confirmations):
            raise InconsistentTranscript(confirmations.keys(), "no majority transcript view")
        reference = top
    differing = [i for i, c in confirmations.items() if c.digest != reference]
    if differing:
        raise InconsistentTranscript(differing, "parties confirmed a different transcript")
    return reference


def combined_commitment(
    group: Group, commitments: Mapping[Identifier, DealerCommitment]
) -> VssCommitment:
    """``sum_i C_i`` coefficient-wise: the commitment to the sum of the dealers' polynomials."""
    return VssCommitment.sum(group, [commitments[d].commitment for d in sorted(commitments)])
