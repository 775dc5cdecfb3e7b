"""Wire messages of threshold ECDSA: frozen, slotted, validated on construction, canonical bytes.

Every message carries the suite (in the encoding header), the session id and its round, and never
names its sender: the driver pairs each message with the identity the authenticated channel
proved. Layout (``encoding.Encoder``): ``version || lp(kind) || lp(suite) || lp(session_id) ||
round || fields``.

Presigning (DJNPO20, three rounds among exactly ``2t + 1`` parties):

1. :class:`DealMessage` — private, one per recipient: the dealer's shares of its random
   degree-``t`` polynomials for ``k`` and ``a`` and of its degree-``2t`` zero polynomials ``b``
   (masks ``a·k``) and ``e`` (masks the opened signature). Secret: prints ``<redacted>``; it must
   travel only inside an encrypted, authenticated channel.
2. :class:`NonceOpening` — broadcast: ``R_i = k_i·G`` and ``w_i = a_i·k_i + b_i``.
3. :class:`MaskOpening` — broadcast: ``W_i = a_i·R``.

Signing (one round): :class:`SignatureShare` — ``s_i`` with the presignature id and the digest of
the signing request the signer saw, so the combiner detects diverging views.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from enclave.mpc.ecdsa.context import MAX_SESSION_ID_LENGTH, MIN_SESSION_ID_LENGTH
from enclave.mpc.encoding import Decoder, Encoder
from enclave.mpc.errors import EncodingError, InvalidParameters
from enclave.mpc.groups import Group, Point, Scalar

__all__ = [
    "DIGEST_LENGTH",
    "DealMessage",
    "MaskOpening",
    "NonceOpening",
    "SignatureShare",
]

DIGEST_LENGTH = 32


def _check_session_id(session_id: bytes) -> None:
    if not MIN_SESSION_ID_LENGTH <= len(session_id) <= MAX_SESSION_ID_LENGTH:
        raise InvalidParameters("session id has the wrong length")


def _check_group(group: Group, *values: Scalar | Point) -> None:
    for v in values:
        if v.group is not group:
            raise InvalidParameters("value from a different group")


def _header(kind: str, group: Group, session_id: bytes, round_: int) -> Encoder:
    return Encoder(kind, group).var_bytes(session_id).u8(round_)


def _open(data: bytes, kind: str, group: Group | None, round_: int) -> tuple[Decoder, bytes]:
    dec = Decoder(data, kind, group)
    session_id = dec.var_bytes("session_id", max_length=MAX_SESSION_ID_LENGTH)
    if len(session_id) < MIN_SESSION_ID_LENGTH:
        raise EncodingError("session_id", "too short")
    got = dec.u8("round")
    if got != round_:
        raise EncodingError("round", f"expected {round_}, got {got}")
    return dec, session_id


def _digest(dec: Decoder, name: str) -> bytes:
    value = dec.var_bytes(name, max_length=DIGEST_LENGTH)
    if len(value) != DIGEST_LENGTH:
        raise EncodingError(name, f"expected {DIGEST_LENGTH} bytes")
    return value


@dataclass(frozen=True, slots=True)
class DealMessage:
    """Round 1, dealer -> one recipient: four shares evaluated at the recipient's identifier."""

    KIND: ClassVar[str] = "ecdsa/presign/deal"
    ROUND: ClassVar[int] = 1

    group: Group
    session_id: bytes
    k_share: Scalar = field(repr=False)
    a_share: Scalar = field(repr=False)
    b_share: Scalar = field(repr=False)
    e_share: Scalar = field(repr=False)

    def __post_init__(self) -> None:
        _check_session_id(self.session_id)
        _check_group(self.group, self.k_share, self.a_share, self.b_share, self.e_share)

    def __repr__(self) -> str:
        return f"DealMessage({self.group.name}, session={self.session_id.hex()}, <redacted>)"

    def to_bytes(self) -> bytes:
        enc = _header(self.KIND, self.group, self.session_id, self.ROUND)
        for s in (self.k_share, self.a_share, self.b_share, self.e_share):
            enc.scalar(s)
        return enc.finish()

    @classmethod
    def from_bytes(cls, data: bytes, group: Group | None = None) -> DealMessage:
        dec, sid = _open(data, cls.KIND, group, cls.ROUND)
        k, a, b, e = (dec.scalar(n) for n in ("k_share", "a_share", "b_share", "e_share"))
        dec.finish()
        return cls(dec.group, sid, k, a, b, e)


@dataclass(frozen=True, slots=True)
class NonceOpening:
    """Round 2, broadcast: ``R_i = k_i·G`` (opened in the exponent) and the masked ``w_i``."""

    KIND: ClassVar[str] = "ecdsa/presign/nonce"
    ROUND: ClassVar[int] = 2

    group: Group
    session_id: bytes
    big_r_share: Point
    w_share: Scalar

    def __post_init__(self) -> None:
        _check_session_id(self.session_id)
        _check_group(self.group, self.big_r_share, self.w_share)

    def to_bytes(self) -> bytes:
        enc = _header(self.KIND, self.group, self.session_id, self.ROUND)
        return enc.point(self.big_r_share).scalar(self.w_share).finish()

    @classmethod
    def from_bytes(cls, data: bytes, group: Group | None = None) -> NonceOpening:
        dec, sid = _open(data, cls.KIND, group, cls.ROUND)
        big_r = dec.point("big_r_share")
        w = dec.scalar("w_share")
        dec.finish()
        return cls(dec.group, sid, big_r, w)


@dataclass(frozen=True, slots=True)
class MaskOpening:
    """Round 3, broadcast: ``W_i = a_i·R`` (opened in the exponent)."""

    KIND: ClassVar[str] = "ecdsa/presign/mask"
    ROUND: ClassVar[int] = 3

    group: Group
    session_id: bytes
    big_w_share: Point

    def __post_init__(self) -> None:
        _check_session_id(self.session_id)
        _check_group(self.group, self.big_w_share)

    def to_bytes(self) -> bytes:
        enc = _header(self.KIND, self.group, self.session_id, self.ROUND)
        return enc.point(self.big_w_share).finish()

    @classmethod
    def from_bytes(cls, data: bytes, group: Group | None = None) -> MaskOpening:
        dec, sid = _open(data, cls.KIND, group, cls.ROUND)
        big_w = dec.point("big_w_share")
        dec.finish()
        return cls(dec.group, sid, big_w)


@dataclass(frozen=True, slots=True)
class SignatureShare:
    """Signing round, signer -> combiner: ``s_i``, a degree-``2t`` share of ``s``.

    ``session_id`` is the presigning session; ``presignature_id`` and ``request_digest`` let the
    combiner check that every signer used the same presignature view and the same request.
    """

    KIND: ClassVar[str] = "ecdsa/sign/share"
    ROUND: ClassVar[int] = 4

    group: Group
    session_id: bytes
    presignature_id: bytes
    request_digest: bytes
    s_share: Scalar

    def __post_init__(self) -> None:
        _check_session_id(self.session_id)
        _check_group(self.group, self.s_share)
        if len(self.presignature_id) != DIGEST_LENGTH or len(self.request_digest) != DIGEST_LENGTH:
            raise InvalidParameters(f"digests are {DIGEST_LENGTH} bytes")

    def to_bytes(self) -> bytes:
        enc = _header(self.KIND, self.group, self.session_id, self.ROUND)
        enc.var_bytes(self.presignature_id).var_bytes(self.request_digest)
        return enc.scalar(self.s_share).finish()

    @classmethod
    def from_bytes(cls, data: bytes, group: Group | None = None) -> SignatureShare:
        dec, sid = _open(data, cls.KIND, group, cls.ROUND)
        pid = _digest(dec, "presignature_id")
        rd = _digest(dec, "request_digest")
        s = dec.scalar("s_share")
        dec.finish()
        return cls(dec.group, sid, pid, rd, s)
