"""BIP-445 "FROST Signing Protocol for BIP340 Signatures" over secp256k1.

BIP-445 is FROST shaped for Bitcoin: x-only threshold keys, BIP-340 tagged hashes, a single
MuSig2-style nonce coefficient ``b = H_noncecoef(ids || aggnonce || xonly(Q) || msg)`` for all
signers, and tweaking of the threshold key (plain tweaks for BIP-32 derivation, x-only tweaks for
BIP-341 Taproot) tracked in a :class:`TweakContext` ``(Q, gacc, tacc)``. The final signature is
a plain BIP-340 signature for ``xonly(Q)`` and is verified here with libsecp256k1's
``schnorrsig_verify`` (coincurve ``PublicKeyXOnly.verify``) before it is returned.

Identifiers: BIP-445 numbers participants ``0 .. n-1`` and evaluates shares at ``id + 1``; this
module takes our :class:`~enclave.mpc.identifiers.Identifier` (the evaluation point ``x``) and
uses ``x - 1`` wherever the BIP serialises an id. ``min_signers`` is the BIP's ``t`` (number of
signers needed), i.e. our threshold (degree) plus one.

Error mapping: BIP ``ValueError`` -> :class:`InvalidParameters` / :class:`EncodingError`; an
``InvalidContributionError`` from a signer -> :class:`ProtocolAbort` naming that signer (from the
coordinator, whose aggregate nonce is invalid, -> :class:`ProtocolAbort` with no culprit among the
signers); a reused secret nonce -> :class:`NonceReuse`.
"""

from __future__ import annotations

import enum
import hashlib
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import coincurve

from enclave.mpc.errors import (
    EncodingError,
    InvalidParameters,
    InvalidSignatureShare,
    NonceReuse,
    ProtocolAbort,
)
from enclave.mpc.groups import SECP256K1, Point, Scalar
from enclave.mpc.identifiers import Identifier, validate_identifiers
from enclave.mpc.keys import PublicKeyPackage
from enclave.mpc.randomness import RandomSource, draw
from enclave.mpc.shamir import lagrange_coefficient

__all__ = [
    "SecNonce",
    "SessionContext",
    "SignersContext",
    "Tweak",
    "TweakContext",
    "TweakMode",
    "aggregate",
    "deterministic_sign",
    "nonce_agg",
    "nonce_gen",
    "nonce_gen_internal",
    "partial_sig_agg",
    "partial_sig_verify",
    "sign",
    "tagged_hash",
    "verify_bip340",
]

G = SECP256K1
_INFINITY = bytes(33)


def tagged_hash(tag: str, msg: bytes) -> bytes:
    """BIP-340 tagged hash ``SHA256(SHA256(tag) || SHA256(tag) || msg)``."""
    t = hashlib.sha256(tag.encode()).digest()
    return hashlib.sha256(t + t + msg).digest()


def _wrap(data: bytes) -> Scalar:
    return G.scalar_from_digest(data)  # BIP "from_bytes_wrapping": big-endian mod n


def xonly(p: Point) -> bytes:
    return p.to_bytes()[1:]


def has_even_y(p: Point) -> bool:
    return p.to_bytes()[0] == 2


def verify_bip340(xonly_key: bytes, message: bytes, signature: bytes) -> bool:
    """BIP-340 verification by libsecp256k1 (an implementation independent of this module)."""
    try:
        return bool(coincurve.PublicKeyXOnly(xonly_key).verify(signature, message))
    except ValueError:
        return False


def _bip_id(ident: Identifier) -> int:
    return int(ident) - 1


def _serialize_ids(signers: Sequence[Identifier]) -> bytes:
    return b"".join(_bip_id(i).to_bytes(4, "big") for i in sorted(signers))


# -- tweaking ---------------------------------------------------------------------------------
class TweakMode(enum.Enum):
    PLAIN = "plain"  # BIP-32 non-hardened derivation: Q' = Q + t*G
    XONLY = "xonly"  # BIP-341 Taproot: Q' = with_even_y(Q) + t*G


@dataclass(frozen=True, slots=True)
class Tweak:
    value: bytes
    mode: TweakMode

    def __post_init__(self) -> None:
        if len(self.value) != 32:
            raise InvalidParameters("the tweak must be a 32-byte array")


@dataclass(frozen=True, slots=True)
class TweakContext:
    """``Q`` the tweaked key, ``gacc`` the accumulated sign flips, ``tacc`` the summed tweaks."""

    q: Point
    gacc: Scalar
    tacc: Scalar

    @classmethod
    def init(cls, thresh_pk: Point) -> TweakContext:
        return cls(thresh_pk, G.one(), G.zero())

    def apply(self, tweak: Tweak) -> TweakContext:
        g = -G.one() if tweak.mode is TweakMode.XONLY and not has_even_y(self.q) else G.one()
        try:
            t = G.decode_scalar(tweak.value)
        except EncodingError:
            raise InvalidParameters("the tweak value is out of range") from None
        q = self.q * g + G.base_mul(t)
        if q.is_identity():
            raise InvalidParameters("the result of tweaking cannot be infinity")
        return TweakContext(q, g * self.gacc, t + g * self.tacc)

    @property
    def xonly_key(self) -> bytes:
        return xonly(self.q)


def tweak_key(thresh_pk: Point, tweaks: Sequence[Tweak]) -> TweakContext:
    ctx = TweakContext.init(thresh_pk)
    for tweak in tweaks:
        ctx = ctx.apply(tweak)
    return ctx


# -- signer set -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SignersContext:
    """BIP-445 SignersContext, validated on construction (``validate_signers_ctx``)."""

    n: int
    min_signers: int
    signers: tuple[Identifier, ...]
    pubshares: tuple[Point, ...]
    thresh_pk: Point

    def __post_init__(self) -> None:
        if not 1 <= self.min_signers <= self.n:
            raise InvalidParameters("the threshold must be 1 <= t <= n")
        if not self.min_signers <= len(self.signers) <= self.n:
            raise InvalidParameters("the number of signers must be between t and n")
        if len(self.pubshares) != len(self.signers):
            raise InvalidParameters("the pubshares and ids arrays must have the same length")
        for idx, ident in enumerate(self.signers):
            if ident.group is not G or not 1 <= int(ident) <= self.n:
                raise InvalidParameters(
                    f"the participant identifier at index {idx} is out of range"
                )
        validate_identifiers(G, self.signers)  # duplicates
        if self.pubshares and self._derived_key() != self.thresh_pk:
            raise InvalidParameters("the provided key material is incorrect")

    def _derived_key(self) -> Point:
        return G.multi_mul(
            [
                (lagrange_coefficient(G, i, self.signers), p)
                for i, p in zip(self.signers, self.pubshares, strict=True)
            ]
        )

    @classmethod
    def decode(
        cls,
        n: int,
        min_signers: int,
        bip_ids: Sequence[int],
        pubshares: Sequence[bytes],
        thresh_pk: bytes,
    ) -> SignersContext:
        """From BIP-445 wire values (0-based ids, compressed points)."""
        if len(pubshares) != len(bip_ids):
            raise InvalidParameters("the pubshares and ids arrays must have the same length")
        points = []
        for idx, data in enumerate(pubshares):
            try:
                points.append(G.decode_point(data))
            except EncodingError:
                raise EncodingError(f"pubshare[{idx}]", "invalid pubshare") from None
        signers = tuple(Identifier.from_int(G, i + 1) for i in bip_ids)
        return cls(n, min_signers, signers, tuple(points), G.decode_point(thresh_pk))

    @classmethod
    def from_public(cls, public: PublicKeyPackage, signers: Sequence[Identifier]) -> SignersContext:
        """For a key produced by our DKG (identifiers must be 1..n)."""
        if public.group is not G:
            raise InvalidParameters("BIP-445 needs a secp256k1 key")
        ids = tuple(signers)
        return cls(
            len(public.verifying_shares),
            public.threshold + 1,
            ids,
            tuple(public.verifying_shares[i] for i in ids),
            public.group_public_key,
        )


# -- nonces -----------------------------------------------------------------------------------
class SecNonce:
    """A signer's secret nonce pair ``(k1, k2)``; usable once (a second use raises)."""

    __slots__ = ("_k1", "_k2", "_lock", "_used", "pubnonce")

    def __init__(self, k1: Scalar, k2: Scalar) -> None:
        if k1.is_zero():
            raise InvalidParameters("first secnonce value is out of range")
        if k2.is_zero():
            raise InvalidParameters("second secnonce value is out of range")
        self._k1, self._k2, self._used = k1, k2, False
        self._lock = threading.Lock()
        self.pubnonce: bytes = G.base_mul(k1).to_bytes() + G.base_mul(k2).to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> SecNonce:
        """From the BIP's 64-byte ``k1 || k2`` (test vectors, sealed storage)."""
        if len(data) != 64:
            raise InvalidParameters("secnonce must be 64 bytes")
        try:
            k1 = G.decode_scalar(data[:32])
        except EncodingError:
            raise InvalidParameters("first secnonce value is out of range") from None
        try:
            k2 = G.decode_scalar(data[32:])
        except EncodingError:
            raise InvalidParameters("second secnonce value is out of range") from None
        return cls(k1, k2)

    def to_bytes(self) -> bytes:
        """``k1 || k2`` — secret; for vectors and the sealed store only.

        A consumed nonce raises :class:`NonceReuse`: its bytes, restored with :meth:`from_bytes`,
        would be a second usable nonce (and the placeholder left by :meth:`consume` is a public
        value, which would hand out the share in the next partial signature).
        """
        with self._lock:
            if self._used:
                raise NonceReuse("this secret nonce was already used")
            return self._k1.to_bytes() + self._k2.to_bytes()

    def consume(self) -> tuple[Scalar, Scalar]:
        """``(k1, k2)`` once; test and mark under one lock, so two threads never both get it."""
        with self._lock:
            if self._used:
                raise NonceReuse("this secret nonce was already used")
            self._used = True
            k = self._k1, self._k2
            self._k1 = self._k2 = G.one()
        return k

    def __repr__(self) -> str:
        return "SecNonce(<redacted>)"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("SecNonce is not serialisable")


def _nonce_hash(
    rand: bytes, pubshare: bytes, thresh_pk: bytes, *, i: int, msg_prefixed: bytes, extra_in: bytes
) -> bytes:
    buf = (
        rand
        + len(pubshare).to_bytes(1, "big")
        + pubshare
        + len(thresh_pk).to_bytes(1, "big")
        + thresh_pk
        + msg_prefixed
        + len(extra_in).to_bytes(4, "big")
        + extra_in
        + i.to_bytes(1, "big")
    )
    return tagged_hash("BIP0445/nonce", buf)


def nonce_gen_internal(
    rand_: bytes,
    secshare: Scalar | None,
    pubshare: Point | None,
    *,
    thresh_pk: bytes | None,
    msg: bytes | None,
    extra_in: bytes | None,
) -> SecNonce:
    """BIP-445 NonceGen with explicit ``rand_`` (the secret share masks it when given)."""
    if len(rand_) != 32:
        raise InvalidParameters("rand must be 32 bytes")
    if thresh_pk is not None and len(thresh_pk) != 32:
        raise InvalidParameters("thresh_pk must be a 32-byte x-only key")
    rand = rand_
    if secshare is not None:
        aux = tagged_hash("BIP0445/aux", rand_)
        rand = bytes(a ^ b for a, b in zip(secshare.to_bytes(), aux, strict=True))
    msg_prefixed = b"\x00" if msg is None else b"\x01" + len(msg).to_bytes(8, "big") + msg
    ps = b"" if pubshare is None else pubshare.to_bytes()
    tpk = b"" if thresh_pk is None else thresh_pk
    extra = b"" if extra_in is None else extra_in
    k1 = _wrap(_nonce_hash(rand, ps, tpk, i=0, msg_prefixed=msg_prefixed, extra_in=extra))
    k2 = _wrap(_nonce_hash(rand, ps, tpk, i=1, msg_prefixed=msg_prefixed, extra_in=extra))
    return SecNonce(k1, k2)


def nonce_gen(
    rng: RandomSource,
    secshare: Scalar | None,
    pubshare: Point | None,
    *,
    thresh_pk: bytes | None,
    msg: bytes | None,
    extra_in: bytes | None = None,
) -> SecNonce:
    """BIP-445 NonceGen with 32 fresh random bytes; pass every optional input you have."""
    return nonce_gen_internal(
        draw(rng, 32), secshare, pubshare, thresh_pk=thresh_pk, msg=msg, extra_in=extra_in
    )


def nonce_agg(pubnonces: Mapping[Identifier, bytes]) -> bytes:
    """Sum every signer's two nonce points; an invalid public nonce names its signer."""
    bad = []
    halves: list[list[Point]] = [[], []]
    for ident in sorted(pubnonces):
        data = pubnonces[ident]
        try:
            if len(data) != 66:
                raise EncodingError("pubnonce", "wrong length")
            pts = G.decode_point(data[:33]), G.decode_point(data[33:])
        except EncodingError:
            bad.append(ident)
            continue
        halves[0].append(pts[0])
        halves[1].append(pts[1])
    if bad:
        raise ProtocolAbort(bad, "invalid public nonce")
    out = b""
    for half in halves:
        acc = G.identity()
        for p in half:
            acc = acc + p
        out += acc.to_bytes()  # the identity encodes as 33 zero bytes, as in BIP-445
    return out


# -- session ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SessionContext:
    aggnonce: bytes
    signers: SignersContext
    tweaks: tuple[Tweak, ...]
    msg: bytes


@dataclass(frozen=True, slots=True)
class _SessionValues:
    tweak: TweakContext
    b: Scalar
    r: Point
    e: Scalar


def _decode_aggnonce_half(data: bytes) -> Point:
    if data == _INFINITY:
        return G.identity()
    return G.decode_point(data)


def _session_values(ctx: SessionContext) -> _SessionValues:
    tweak = tweak_key(ctx.signers.thresh_pk, ctx.tweaks)
    b = _wrap(
        tagged_hash(
            "BIP0445/noncecoef",
            _serialize_ids(ctx.signers.signers) + ctx.aggnonce + tweak.xonly_key + ctx.msg,
        )
    )
    try:
        if len(ctx.aggnonce) != 66:
            raise EncodingError("aggnonce", "wrong length")
        r1 = _decode_aggnonce_half(ctx.aggnonce[:33])
        r2 = _decode_aggnonce_half(ctx.aggnonce[33:])
    except EncodingError:
        raise ProtocolAbort((), "the coordinator's aggregate nonce is invalid") from None
    r = r1 + r2 * b
    if r.is_identity():
        r = G.generator()
    e = _wrap(tagged_hash("BIP0340/challenge", xonly(r) + tweak.xonly_key + ctx.msg))
    return _SessionValues(tweak, b, r, e)


def _key_sign(q: Point) -> Scalar:
    return G.one() if has_even_y(q) else -G.one()


def sign(secnonce: SecNonce, secshare: Scalar, me: Identifier, ctx: SessionContext) -> bytes:
    """BIP-445 Sign: the 32-byte partial signature; consumes ``secnonce``."""
    v = _session_values(ctx)
    k1_, k2_ = secnonce.consume()
    k1, k2 = (k1_, k2_) if has_even_y(v.r) else (-k1_, -k2_)
    if secshare.is_zero() or secshare.group is not G:
        raise InvalidParameters("the signer's secret share value is out of range")
    if G.base_mul(secshare) not in ctx.signers.pubshares:
        raise InvalidParameters("the signer's pubshare must be included in the list of pubshares")
    if me not in ctx.signers.signers:
        raise InvalidParameters(
            "the signer's id must be present in the participant identifier list"
        )
    lam = lagrange_coefficient(G, me, ctx.signers.signers)
    d = _key_sign(v.tweak.q) * v.tweak.gacc * secshare
    s = k1 + v.b * k2 + v.e * lam * d
    return s.to_bytes()


def _partial_ok(
    psig: bytes, me: Identifier, pubnonce: bytes, pubshare: Point, ctx: SessionContext
) -> bool:
    v = _session_values(ctx)
    try:
        s = G.decode_scalar(psig)
        r1, r2 = G.decode_point(pubnonce[:33]), G.decode_point(pubnonce[33:66])
    except EncodingError:
        return False
    if pubshare not in ctx.signers.pubshares or me not in ctx.signers.signers:
        return False
    re = r1 + r2 * v.b
    if not has_even_y(v.r):
        re = -re
    lam = lagrange_coefficient(G, me, ctx.signers.signers)
    g = _key_sign(v.tweak.q) * v.tweak.gacc
    return G.base_mul(s) == re + pubshare * (v.e * lam * g)


def partial_sig_verify(
    psig: bytes,
    pubnonces: Mapping[Identifier, bytes],
    signers: SignersContext,
    *,
    tweaks: Sequence[Tweak],
    msg: bytes,
    signer: Identifier,
) -> bool:
    """BIP-445 PartialSigVerify of ``signer``'s partial signature (pubnonces of all signers)."""
    if set(pubnonces) != set(signers.signers):
        raise InvalidParameters("the pubnonces and ids arrays must match")
    ctx = SessionContext(nonce_agg(pubnonces), signers, tuple(tweaks), msg)
    pubshare = signers.pubshares[signers.signers.index(signer)]
    return _partial_ok(psig, signer, pubnonces[signer], pubshare, ctx)


def partial_sig_agg(psigs: Mapping[Identifier, bytes], ctx: SessionContext) -> bytes:
    """BIP-445 PartialSigAgg: ``xonly(R) || s`` with ``s = sum s_i + e * g * tacc``."""
    v = _session_values(ctx)
    if set(psigs) != set(ctx.signers.signers) or len(psigs) != len(ctx.signers.signers):
        raise InvalidParameters("the psigs and ids arrays must have the same length")
    s = G.zero()
    bad = []
    for ident in ctx.signers.signers:
        try:
            s = s + G.decode_scalar(psigs[ident])
        except EncodingError:
            bad.append(ident)
    if bad:
        raise ProtocolAbort(bad, "partial signature out of range")
    s = s + v.e * _key_sign(v.tweak.q) * v.tweak.tacc
    return xonly(v.r) + s.to_bytes()


def aggregate(
    psigs: Mapping[Identifier, bytes],
    pubnonces: Mapping[Identifier, bytes],
    ctx: SessionContext,
) -> bytes:
    """Aggregate, verify as BIP-340, and on failure name every signer whose share is wrong."""
    signature = partial_sig_agg(psigs, ctx)
    key = tweak_key(ctx.signers.thresh_pk, ctx.tweaks).xonly_key
    if verify_bip340(key, ctx.msg, signature):
        return signature
    culprits = [
        i
        for i, pubshare in zip(ctx.signers.signers, ctx.signers.pubshares, strict=True)
        if not _partial_ok(psigs[i], i, pubnonces[i], pubshare, ctx)
    ]
    if culprits:
        raise InvalidSignatureShare(culprits, "partial signatures do not verify")
    raise ProtocolAbort((), "BIP-340 signature does not verify although every share does")


def deterministic_sign(
    secshare: Scalar,
    me: Identifier,
    aggothernonce: bytes | None,
    *,
    signers: SignersContext,
    tweaks: Sequence[Tweak],
    msg: bytes,
    rand: bytes | None,
) -> tuple[bytes, bytes]:
    """BIP-445 DeterministicSign (the last signer, stateless): returns ``(pubnonce, psig)``.

    ``aggothernonce`` is the coordinator's sum of the other signers' nonces; ``None`` when this
    signer signs alone (``t = 1``), in which case the aggregate nonce is its own.
    """
    key = secshare.to_bytes()
    if rand is not None:
        aux = tagged_hash("BIP0445/aux", rand)
        key = bytes(a ^ b for a, b in zip(key, aux, strict=True))
    tweaked = tweak_key(signers.thresh_pk, tweaks).xonly_key
    prefix = (
        key
        + _bip_id(me).to_bytes(4, "big")
        + len(signers.signers).to_bytes(4, "big")
        + _serialize_ids(signers.signers)
        + (aggothernonce or b"")
        + tweaked
        + len(msg).to_bytes(8, "big")
        + msg
    )
    k1 = _wrap(tagged_hash("BIP0445/deterministic/nonce", prefix + b"\x00"))
    k2 = _wrap(tagged_hash("BIP0445/deterministic/nonce", prefix + b"\x01"))
    secnonce = SecNonce(k1, k2)
    try:
        aggnonce = (
            secnonce.pubnonce
            if aggothernonce is None
            else _sum_two(secnonce.pubnonce, aggothernonce)
        )
    except EncodingError:
        raise ProtocolAbort((), "the coordinator's aggregate of other nonces is invalid") from None
    psig = sign(secnonce, secshare, me, SessionContext(aggnonce, signers, tuple(tweaks), msg))
    return secnonce.pubnonce, psig


def _sum_two(a: bytes, b: bytes) -> bytes:
    if len(b) != 66:
        raise EncodingError("aggothernonce", "wrong length")
    out = b""
    for k in (0, 33):
        out += (G.decode_point(a[k : k + 33]) + G.decode_point(b[k : k + 33])).to_bytes()
    return out
