"""Combine the ``2t + 1`` signature shares into an ordinary, verified, recoverable ECDSA signature.

Which check detects a bad share: the signature shares are points of a **degree-2t** polynomial
(``s_i`` mixes ``c_i·x_i``), and exactly ``2t + 1`` of them exist, so interpolation has no
redundancy — every set of ``2t + 1`` values is consistent with some degree-``2t`` polynomial.
The check is therefore the final one the paper prescribes: the combined ``(r, s)`` is verified as
a plain ECDSA signature with libsecp256k1 (coincurve) under the (tweaked) public key, and the
recovery id is checked by recovering that key. A wrong share changes ``s`` by ``lambda_i·Delta``
and the result fails verification. Such a failure cannot be attributed to a party from the
shares alone (see above), so it is raised as a terminal :class:`ProtocolAbort` with no culprit:
the presignature is gone, and the caller must start again with a new one — never retry with the
same presignature. Before interpolating, every share must carry the same presignature id and
request digest as the combiner's; differing ones are named (:class:`InconsistentTranscript`).

The recovery check matters on its own: shares of ``-s`` give ``(r, -s)``, which plain
verification accepts once low-S normalised, but the recovery id derived from ``R'`` then recovers
another key — so the released signature always matches the nonce point actually used.

The output is low-S normalised (``s <= q/2``, BIP-62 / libsecp256k1's verifier requires it) with
the recovery id adjusted accordingly (negating ``s`` is signing with ``-k``, whose point has the
opposite y parity).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import coincurve

from enclave.mpc.ecdsa.messages import SignatureShare
from enclave.mpc.ecdsa.opening import open_scalar
from enclave.mpc.ecdsa.presignature import PresignatureInfo
from enclave.mpc.ecdsa.sign import SigningRequest, rerandomise
from enclave.mpc.errors import InconsistentTranscript, InvalidParameters, ProtocolAbort
from enclave.mpc.groups import SECP256K1
from enclave.mpc.identifiers import Identifier

__all__ = ["EcdsaSignature", "combine"]

_Q = SECP256K1.order


@dataclass(frozen=True, slots=True)
class EcdsaSignature:
    """A verified, low-S secp256k1 ECDSA signature with its recovery id (0..3)."""

    r: int
    s: int
    recovery_id: int

    def __post_init__(self) -> None:
        if not (0 < self.r < _Q and 0 < self.s <= _Q // 2 and 0 <= self.recovery_id <= 3):
            raise InvalidParameters("not a normalised ECDSA signature")

    def to_compact(self) -> bytes:
        """64 bytes ``r || s`` (big-endian)."""
        return self.r.to_bytes(32, "big") + self.s.to_bytes(32, "big")

    def to_recoverable(self) -> bytes:
        """65 bytes ``r || s || recovery_id`` (coincurve / libsecp256k1 recoverable layout)."""
        return self.to_compact() + bytes([self.recovery_id])

    def to_der(self) -> bytes:
        """DER ``ECDSA-Sig-Value`` (SEC 1), as produced by libsecp256k1."""
        return bytes(
            coincurve.ecdsa.cdata_to_der(coincurve.ecdsa.deserialize_compact(self.to_compact()))
        )


def _check_shares(
    info: PresignatureInfo, request: SigningRequest, shares: Mapping[Identifier, SignatureShare]
) -> None:
    if set(shares) != set(info.parties):
        raise InvalidParameters("need exactly one share from each of the presignature's parties")
    digest = request.digest()
    culprits = [
        sender
        for sender, share in shares.items()
        if not isinstance(share, SignatureShare)
        or share.group is not info.group
        or share.session_id != info.session_id
        or share.presignature_id != info.presignature_id
        or share.request_digest != digest
    ]
    if culprits:
        raise InconsistentTranscript(
            culprits, "signature shares for another presignature view or another request"
        )


def combine(
    info: PresignatureInfo, request: SigningRequest, shares: Mapping[Identifier, SignatureShare]
) -> EcdsaSignature:
    """Interpolate ``s``, normalise, verify with libsecp256k1, and return the signature."""
    values = rerandomise(info, request)
    _check_shares(info, request, shares)
    s = int(open_scalar(info.group, {j: m.s_share for j, m in shares.items()}))
    r = int(values.r)
    if s == 0:
        raise ProtocolAbort((), "combined s is zero: a signature share is wrong")
    point = values.big_r.to_bytes()
    x_coordinate = int.from_bytes(point[1:], "big")
    recovery_id = (point[0] & 1) | (2 if x_coordinate >= _Q else 0)
    if s > _Q // 2:
        s = _Q - s
        recovery_id ^= 1
    signature = EcdsaSignature(r, s, recovery_id)
    public_key = coincurve.PublicKey(values.public_key.to_bytes())
    try:
        valid = public_key.verify(signature.to_der(), request.message_hash, hasher=None)
        recovered = coincurve.PublicKey.from_signature_and_message(
            signature.to_recoverable(), request.message_hash, hasher=None
        )
    except ValueError:
        valid, recovered = False, None
    if not valid or recovered is None or recovered.format() != public_key.format():
        raise ProtocolAbort(
            (), "combined signature does not verify: a signature share is wrong (terminal)"
        )
    return signature
