"""The one signing round: re-randomise the presignature, tweak the key, release ``s_i``.

Inputs agreed by the parties (the coordinator distributes one :class:`SigningRequest`): the
32-byte message hash ``h``, an optional additive key tweak ``epsilon`` (BIP-32 non-hardened
derivation: sign under ``Y = X + epsilon·G``), and 32 bytes of fresh entropy ``rho``.

Re-randomisation (Groth-Shlomovits, ePrint 2021/1330, as the issue asks): every signer derives

    delta = H("keyshard/ecdsa/rerandomise", X, epsilon, h, R, rho, presignature id)

(``transcript.hash_to_scalar``: domain-separated, suite-tagged, length-prefixed) and uses the
nonce ``k' = delta·k``: ``R' = delta·R``, ``r = x(R') mod q``. Because ``delta`` is bound to the
message, the key and ``R``, an adversary cannot pick the message after seeing the nonce it will be
signed with, which defeats the ROS/Wagner-style attacks on plain presignatures.

With ``c = k^-1`` and ``beta = k^-1·x`` shared in the presignature:

    s = k'^-1 (h + r (x + epsilon)) = delta^-1 (c·h + r·(beta + c·epsilon))

and party ``i`` releases ``s_i = delta^-1 (c_i·h + r·(beta_i + c_i·epsilon)) + e_i``, a point on a
degree-``2t`` polynomial whose constant term is ``s`` and whose other coefficients are uniformly
random thanks to the zero sharing ``e`` — so the ``2t + 1`` shares reveal ``s`` and nothing else.
The tweak is applied to the constant term only: ``x(X) + epsilon`` is still degree ``t`` and is
evaluated at ``i`` as ``x_i + epsilon``, which is why adding it inside every share is consistent.

The presignature's secret is consumed (taken out of the object) before the share is computed and
released; a second use raises :class:`PresignatureReuse`. A zero message hash (``h mod q = 0``)
is refused: it would make the signature independent of the message.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from enclave.mpc.ecdsa.messages import DIGEST_LENGTH, SignatureShare
from enclave.mpc.ecdsa.presignature import Presignature, PresignatureInfo
from enclave.mpc.encoding import lp_join
from enclave.mpc.errors import InvalidParameters, MpcError
from enclave.mpc.groups import SECP256K1, Group, Point, Scalar
from enclave.mpc.randomness import RandomSource, draw
from enclave.mpc.transcript import PREFIX, hash_to_scalar

__all__ = [
    "ENTROPY_LENGTH",
    "HASH_LENGTH",
    "Rerandomised",
    "SigningRequest",
    "rerandomise",
    "sign",
]

HASH_LENGTH = 32
ENTROPY_LENGTH = 32
_RERANDOMISE = b"keyshard/ecdsa/rerandomise"
_REQUEST = b"keyshard/ecdsa/request"


@dataclass(frozen=True, slots=True)
class SigningRequest:
    """What every signer of one presignature must agree on (public)."""

    presignature_id: bytes
    message_hash: bytes
    entropy: bytes
    tweak: Scalar = field(default_factory=SECP256K1.zero)

    def __post_init__(self) -> None:
        if len(self.presignature_id) != DIGEST_LENGTH:
            raise InvalidParameters(f"presignature id must be {DIGEST_LENGTH} bytes")
        if len(self.message_hash) != HASH_LENGTH:
            raise InvalidParameters(f"message hash must be {HASH_LENGTH} bytes")
        if len(self.entropy) != ENTROPY_LENGTH:
            raise InvalidParameters(f"entropy must be {ENTROPY_LENGTH} bytes")
        if self.tweak.group is not SECP256K1:
            raise InvalidParameters("tweak must be a secp256k1 scalar")
        if int.from_bytes(self.message_hash, "big") % SECP256K1.order == 0:
            raise InvalidParameters("refusing to sign a zero message hash")

    @classmethod
    def create(
        cls,
        info: PresignatureInfo,
        message_hash: bytes,
        rng: RandomSource,
        tweak: Scalar | None = None,
    ) -> SigningRequest:
        """The coordinator's request: fresh entropy drawn from ``rng`` for this signature only."""
        return cls(
            info.presignature_id,
            message_hash,
            draw(rng, ENTROPY_LENGTH),
            SECP256K1.zero() if tweak is None else tweak,
        )

    @property
    def h(self) -> Scalar:
        """The hash as a scalar (ECDSA: a 256-bit hash over a 256-bit order, reduced mod q)."""
        return SECP256K1.scalar(int.from_bytes(self.message_hash, "big"))

    def digest(self) -> bytes:
        """Binding digest of the request; signers echo it so diverging requests are detected."""
        fields = (PREFIX, _REQUEST, self.presignature_id, self.message_hash, self.entropy)
        return hashlib.sha256(lp_join((*fields, self.tweak.to_bytes()))).digest()


@dataclass(frozen=True, slots=True)
class Rerandomised:
    """Public values of one signing: the key signed under, ``delta``, ``R'`` and ``r``."""

    public_key: Point
    delta: Scalar
    big_r: Point
    r: Scalar


def rerandomise(info: PresignatureInfo, request: SigningRequest) -> Rerandomised:
    """Check ``request`` against ``info`` and derive the public signing values (no secrets)."""
    group: Group = info.group
    if request.presignature_id != info.presignature_id:
        raise InvalidParameters("the request names another presignature")
    public_key = info.group_public_key + group.base_mul(request.tweak)
    if public_key.is_identity():
        raise InvalidParameters("the tweak cancels the public key")
    delta = hash_to_scalar(
        group,
        _RERANDOMISE,
        info.group_public_key.to_bytes(),
        request.tweak.to_bytes(),
        request.message_hash,
        info.big_r.to_bytes(),
        request.entropy,
        info.presignature_id,
    )
    if delta.is_zero():  # pragma: no cover - probability 2^-256
        raise MpcError("re-randomiser is zero; use another entropy value")
    big_r = info.big_r * delta
    r = group.scalar(int.from_bytes(big_r.to_bytes()[1:], "big"))
    if r.is_zero():  # pragma: no cover - x(R') = q would need a discrete-log break
        raise MpcError("r is zero; use another entropy value")
    return Rerandomised(public_key, delta, big_r, r)


def sign(presignature: Presignature, request: SigningRequest) -> SignatureShare:
    """Produce this party's signature share, consuming the presignature first."""
    info = presignature.info
    values = rerandomise(info, request)  # public checks first: a bad request burns nothing
    secret = presignature.consume()  # raises PresignatureReuse on a second use
    c, beta, e = secret.k_inv_share, secret.k_inv_x_share, secret.mask_share
    del secret
    s_share = values.delta.invert() * (c * request.h + values.r * (beta + c * request.tweak)) + e
    return SignatureShare(
        info.group, info.session_id, info.presignature_id, request.digest(), s_share
    )
