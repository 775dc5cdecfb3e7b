"""The DKG wire messages: frozen, slotted, validated on construction, strictly decoded.

Every message carries the session id and its suite (group) and round (in its encoding kind). No
message names its sender: the round functions take ``Mapping[Identifier, Message]`` keyed by the
identity the authenticated channel proved.

* :class:`Round1Package` — broadcast: Feldman commitment and proof of possession.
* :class:`Round2Package` — private, one per recipient: the dealt share (secret; ``<redacted>``;
  its bytes must only travel inside an encrypted channel).
* :class:`TranscriptConfirmation` — broadcast: the hash of the sender's view of round 1.
* :class:`Complaint` — broadcast: an accusation against a dealer, revealing the bad share.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from enclave.mpc.dkg.params import MAX_SESSION_ID
from enclave.mpc.dkg.pop import ProofOfPossession
from enclave.mpc.encoding import Decoder, Encoder
from enclave.mpc.errors import InvalidParameters
from enclave.mpc.groups import Group, Scalar
from enclave.mpc.identifiers import Identifier
from enclave.mpc.vss import VssCommitment

__all__ = ["Complaint", "Round1Package", "Round2Package", "TranscriptConfirmation"]

DIGEST_LENGTH = 64


def _check_session(session_id: bytes) -> None:
    if not 0 < len(session_id) <= MAX_SESSION_ID:
        raise InvalidParameters(f"session id must be 1..{MAX_SESSION_ID} bytes")


@dataclass(frozen=True, slots=True)
class Round1Package:
    group: Group
    session_id: bytes
    commitment: VssCommitment
    proof: ProofOfPossession

    KIND = "dkg/round1"

    def __post_init__(self) -> None:
        _check_session(self.session_id)
        if self.commitment.group is not self.group or self.proof.r.group is not self.group:
            raise InvalidParameters("round-1 package mixes groups")

    def to_bytes(self) -> bytes:
        enc = Encoder(self.KIND, self.group).var_bytes(self.session_id)
        enc.var_bytes(self.commitment.to_bytes()).var_bytes(self.proof.to_bytes())
        return enc.finish()

    @classmethod
    def from_bytes(cls, data: bytes, group: Group | None = None) -> Round1Package:
        dec = Decoder(data, cls.KIND, group)
        session_id = dec.var_bytes("session_id", max_length=MAX_SESSION_ID)
        commitment = VssCommitment.from_bytes(dec.var_bytes("commitment"), dec.group)
        proof = ProofOfPossession.from_bytes(dec.group, dec.var_bytes("proof", max_length=128))
        dec.finish()
        return cls(dec.group, session_id, commitment, proof)


@dataclass(frozen=True, slots=True)
class Round2Package:
    group: Group
    session_id: bytes
    share: Scalar = field(repr=False)

    KIND = "dkg/round2"

    def __post_init__(self) -> None:
        _check_session(self.session_id)
        if self.share.group is not self.group:
            raise InvalidParameters("share from a different group")

    def __repr__(self) -> str:
        return f"Round2Package({self.group.name}, <redacted>)"

    def to_bytes(self) -> bytes:
        """Contains the secret share: only for an encrypted, authenticated channel."""
        enc = Encoder(self.KIND, self.group).var_bytes(self.session_id).scalar(self.share)
        return enc.finish()

    @classmethod
    def from_bytes(cls, data: bytes, group: Group | None = None) -> Round2Package:
        dec = Decoder(data, cls.KIND, group)
        session_id = dec.var_bytes("session_id", max_length=MAX_SESSION_ID)
        share = dec.scalar("share")
        dec.finish()
        return cls(dec.group, session_id, share)


@dataclass(frozen=True, slots=True)
class TranscriptConfirmation:
    group: Group
    session_id: bytes
    digest: bytes

    KIND = "dkg/round3"

    def __post_init__(self) -> None:
        _check_session(self.session_id)
        if len(self.digest) != DIGEST_LENGTH:
            raise InvalidParameters("transcript digest must be 64 bytes")

    def to_bytes(self) -> bytes:
        enc = Encoder(self.KIND, self.group).var_bytes(self.session_id).var_bytes(self.digest)
        return enc.finish()

    @classmethod
    def from_bytes(cls, data: bytes, group: Group | None = None) -> TranscriptConfirmation:
        dec = Decoder(data, cls.KIND, group)
        session_id = dec.var_bytes("session_id", max_length=MAX_SESSION_ID)
        digest = dec.var_bytes("digest", max_length=DIGEST_LENGTH)
        dec.finish()
        return cls(dec.group, session_id, digest)


@dataclass(frozen=True, slots=True)
class Complaint:
    """``accused`` sent the sender a share that fails the accused's own commitment.

    The share is revealed so every party can check the claim against the public commitment.
    """

    group: Group
    session_id: bytes
    accused: Identifier
    share: Scalar

    KIND = "dkg/complaint"

    def __post_init__(self) -> None:
        _check_session(self.session_id)
        if self.accused.group is not self.group or self.share.group is not self.group:
            raise InvalidParameters("complaint mixes groups")

    def to_bytes(self) -> bytes:
        enc = Encoder(self.KIND, self.group).var_bytes(self.session_id)
        return enc.identifier(self.accused).scalar(self.share).finish()

    @classmethod
    def from_bytes(cls, data: bytes, group: Group | None = None) -> Complaint:
        dec = Decoder(data, cls.KIND, group)
        session_id = dec.var_bytes("session_id", max_length=MAX_SESSION_ID)
        accused, share = dec.identifier("accused"), dec.scalar("share")
        dec.finish()
        return cls(dec.group, session_id, accused, share)
