"""FROST ciphersuites (RFC 9591 §6): the hash functions H1..H5 and signature (de)serialisation.

A :class:`Ciphersuite` binds a :class:`~enclave.mpc.groups.Group` to its context string and
hashes; the protocol modules are written once against it. Two suites are defined:

* ``FROST-ED25519-SHA512-v1`` (RFC 9591 §6.1): ``H1, H3, H4, H5 = SHA-512(context || tag || m)``,
  ``H2 = SHA-512(m)`` without context so that signatures verify as plain RFC 8032 Ed25519;
  64-byte digests are reduced little-endian modulo L.
* ``FROST-secp256k1-SHA256-v1`` (RFC 9591 §6.5): ``H1, H2, H3`` are ``hash_to_field`` (RFC 9380
  §5.2, expand_message_xmd with SHA-256, L = 48, DST = context || tag); ``H4, H5 =
  SHA-256(context || tag || m)``.

A third suite, ``FROST-secp256k1-SHA256-TR-v1`` (ZF ``frost-secp256k1-tr``), produces BIP-340
signatures through three hooks (:meth:`Ciphersuite.prepare_public`, ``prepare_share``,
``nonce_sign``) that are the identity for the RFC suites.

``hdkg`` / ``hid`` are the extra hashes of the Zcash Foundation implementation (tags ``dkg`` and
``id``), used only to reproduce its DKG vectors (see ``enclave.mpc.dkg.pop``).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod

import coincurve
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from enclave.mpc.encoding import Decoder, Encoder
from enclave.mpc.errors import EncodingError
from enclave.mpc.groups import ED25519, SECP256K1, Group, Point, Scalar
from enclave.mpc.keys import KeyShare, PublicKeyPackage

__all__ = [
    "FROST_ED25519_SHA512",
    "FROST_SECP256K1_SHA256",
    "FROST_SECP256K1_SHA256_TR",
    "SUITES",
    "Ciphersuite",
    "expand_message_xmd_sha256",
    "suite_by_name",
    "suite_decoder",
    "suite_encoder",
]

_MAX_SUITE_NAME = 64


def expand_message_xmd_sha256(msg: bytes, dst: bytes, length: int) -> bytes:
    """RFC 9380 §5.3.1 expand_message_xmd with SHA-256 (b = 32, s = 64 bytes)."""
    if len(dst) > 255 or length > 255 * 32 or length > 0xFFFF:
        raise ValueError("expand_message_xmd parameters out of range")
    dst_prime = dst + bytes([len(dst)])
    ell = -(-length // 32)
    b0 = hashlib.sha256(bytes(64) + msg + length.to_bytes(2, "big") + b"\x00" + dst_prime).digest()
    blocks = [hashlib.sha256(b0 + b"\x01" + dst_prime).digest()]
    for i in range(2, ell + 1):
        mixed = bytes(x ^ y for x, y in zip(b0, blocks[-1], strict=True))
        blocks.append(hashlib.sha256(mixed + bytes([i]) + dst_prime).digest())
    return b"".join(blocks)[:length]


class Ciphersuite(ABC):
    """One FROST ciphersuite: a group, a context string, and its hash functions."""

    name: str
    group: Group
    context: bytes

    @abstractmethod
    def h1(self, m: bytes) -> Scalar:
        """Binding factor hash (tag ``rho``)."""

    @abstractmethod
    def h2(self, m: bytes) -> Scalar:
        """Challenge hash (tag ``chal``, or none for Ed25519)."""

    @abstractmethod
    def h3(self, m: bytes) -> Scalar:
        """Nonce hash (tag ``nonce``)."""

    @abstractmethod
    def h4(self, m: bytes) -> bytes:
        """Message hash (tag ``msg``)."""

    @abstractmethod
    def h5(self, m: bytes) -> bytes:
        """Commitment-list hash (tag ``com``)."""

    @abstractmethod
    def hdkg(self, m: bytes) -> Scalar:
        """Zcash Foundation DKG proof-of-knowledge challenge hash (tag ``dkg``)."""

    def signature_length(self) -> int:
        return self.group.element_length + self.group.scalar_length

    def encode_signature(self, r: Point, z: Scalar) -> bytes:
        """``SerializeElement(R) || SerializeScalar(z)`` (RFC 9591 §6)."""
        return r.to_bytes() + z.to_bytes()

    def decode_signature(self, data: bytes) -> tuple[Point, Scalar]:
        if len(data) != self.signature_length():
            raise EncodingError("signature", f"expected {self.signature_length()} bytes")
        n = self.group.element_length
        return self.group.decode_point(data[:n]), self.group.decode_scalar(data[n:])

    def challenge(self, r: Point, public_key: Point, message: bytes) -> Scalar:
        """RFC 9591 §4.6 compute_challenge: ``H2(R || PK || msg)``."""
        return self.h2(r.to_bytes() + public_key.to_bytes() + message)

    def verify(self, public_key: Point, message: bytes, signature: bytes) -> bool:
        """Verify a Schnorr signature of this suite (RFC 9591 §6 verify, prime-order form)."""
        try:
            r, z = self.decode_signature(signature)
        except EncodingError:
            return False
        c = self.challenge(r, public_key, message)
        return self.group.base_mul(z) == r + public_key * c

    # -- hooks for BIP-340 output (identity for the RFC 9591 suites) -------------------------
    def prepare_public(self, public: PublicKeyPackage) -> PublicKeyPackage:
        """The key package signing actually uses (BIP-340: negated if ``Y`` has odd y)."""
        return public

    def prepare_share(self, share: KeyShare) -> KeyShare:
        """The signer's key as signing uses it (consistent with :meth:`prepare_public`)."""
        return share

    def nonce_sign(self, group_commitment: Point) -> Scalar:
        """``1``, or ``-1`` where BIP-340 needs an even-y ``R`` (nonces are negated)."""
        return self.group.one()

    def post_dkg(self, share: KeyShare) -> KeyShare:
        """The key share as this suite uses it after a DKG (identity for the RFC suites)."""
        return share

    def __repr__(self) -> str:
        return f"Ciphersuite({self.name})"


class _Ed25519Sha512(Ciphersuite):
    name = "FROST-ED25519-SHA512-v1"
    group = ED25519
    context = b"FROST-ED25519-SHA512-v1"

    def _h(self, tag: bytes, m: bytes) -> bytes:
        return hashlib.sha512(self.context + tag + m).digest()

    def h1(self, m: bytes) -> Scalar:
        return self.group.scalar_from_digest(self._h(b"rho", m))

    def h2(self, m: bytes) -> Scalar:
        return self.group.scalar_from_digest(hashlib.sha512(m).digest())

    def h3(self, m: bytes) -> Scalar:
        return self.group.scalar_from_digest(self._h(b"nonce", m))

    def h4(self, m: bytes) -> bytes:
        return self._h(b"msg", m)

    def h5(self, m: bytes) -> bytes:
        return self._h(b"com", m)

    def hdkg(self, m: bytes) -> Scalar:
        return self.group.scalar_from_digest(self._h(b"dkg", m))

    def verify(self, public_key: Point, message: bytes, signature: bytes) -> bool:
        """Ed25519 verification by ``cryptography`` (RFC 8032), an independent implementation."""
        try:
            Ed25519PublicKey.from_public_bytes(public_key.to_bytes()).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


class _Secp256k1Sha256(Ciphersuite):
    name = "FROST-secp256k1-SHA256-v1"
    group = SECP256K1
    context = b"FROST-secp256k1-SHA256-v1"

    def _field(self, tag: bytes, m: bytes) -> Scalar:
        # hash_to_field(m, 1) with L = 48 bytes: 384 bits reduced mod q (bias < 2^-128).
        return self.group.scalar_from_digest(expand_message_xmd_sha256(m, self.context + tag, 48))

    def h1(self, m: bytes) -> Scalar:
        return self._field(b"rho", m)

    def h2(self, m: bytes) -> Scalar:
        return self._field(b"chal", m)

    def h3(self, m: bytes) -> Scalar:
        return self._field(b"nonce", m)

    def h4(self, m: bytes) -> bytes:
        return hashlib.sha256(self.context + b"msg" + m).digest()

    def h5(self, m: bytes) -> bytes:
        return hashlib.sha256(self.context + b"com" + m).digest()

    def hdkg(self, m: bytes) -> Scalar:
        return self._field(b"dkg", m)


def _has_even_y(p: Point) -> bool:
    return p.to_bytes()[0] == 2


def _tagged_hash(tag: bytes, m: bytes) -> bytes:
    """BIP-340 tagged hash."""
    t = hashlib.sha256(tag).digest()
    return hashlib.sha256(t + t + m).digest()


class _Secp256k1Sha256Tr(_Secp256k1Sha256):
    """FROST(secp256k1, SHA-256) with BIP-340 output, as the ZF ``frost-secp256k1-tr`` crate.

    RFC 9591 signing with three BIP-340 changes: the challenge is the tagged hash
    ``BIP0340/challenge(x(R) || x(Y) || msg)``; the key is used with even y (``Y``, the shares
    and verification shares negated when ``Y`` has odd y); and the nonces are negated when the
    group commitment ``R`` has odd y. Signatures are ``x(R) || z`` and verify as plain BIP-340
    (checked with libsecp256k1). BIP-445 (``bip340.py``) is the standard protocol for this job;
    this suite reproduces the ZF reference vectors as a second reference.
    """

    name = "FROST-secp256k1-SHA256-TR-v1"
    context = b"FROST-secp256k1-SHA256-TR-v1"

    def h2(self, m: bytes) -> Scalar:
        return self.group.scalar_from_digest(_tagged_hash(b"BIP0340/challenge", m))

    def challenge(self, r: Point, public_key: Point, message: bytes) -> Scalar:
        return self.h2(r.to_bytes()[1:] + public_key.to_bytes()[1:] + message)

    def signature_length(self) -> int:
        return 64

    def encode_signature(self, r: Point, z: Scalar) -> bytes:
        return r.to_bytes()[1:] + z.to_bytes()

    def decode_signature(self, data: bytes) -> tuple[Point, Scalar]:
        if len(data) != 64:
            raise EncodingError("signature", "expected 64 bytes")
        return self.group.decode_point(b"\x02" + data[:32]), self.group.decode_scalar(data[32:])

    def verify(self, public_key: Point, message: bytes, signature: bytes) -> bool:
        """BIP-340 verification by libsecp256k1 (coincurve), against ``x(Y)``."""
        try:
            key = coincurve.PublicKeyXOnly(public_key.to_bytes()[1:])
            return bool(key.verify(signature, message))
        except ValueError:
            return False

    def prepare_public(self, public: PublicKeyPackage) -> PublicKeyPackage:
        if _has_even_y(public.group_public_key):
            return public
        return PublicKeyPackage(
            public.group,
            -public.group_public_key,
            {i: -p for i, p in public.verifying_shares.items()},
            public.threshold,
        )

    def prepare_share(self, share: KeyShare) -> KeyShare:
        if _has_even_y(share.group_public_key):
            return share
        return KeyShare(share.identifier, -share.secret_share, self.prepare_public(share.public))

    def nonce_sign(self, group_commitment: Point) -> Scalar:
        return self.group.one() if _has_even_y(group_commitment) else -self.group.one()

    def post_dkg(self, share: KeyShare) -> KeyShare:
        """BIP-341 key-path-only output key, as ZF's ``post_dkg``.

        ``Q = even(Y) + t*G`` with ``t = H_TapTweak(x(Y))`` commits the key to an unspendable
        script path, so no participant can have slipped a hidden script tweak into the group
        key. Every share becomes ``±s_i + t`` (Lagrange weights sum to one).
        """
        even = self.prepare_share(share)
        y = even.group_public_key
        t = self.group.scalar_from_digest(_tagged_hash(b"TapTweak", y.to_bytes()[1:]))
        tg = self.group.base_mul(t)
        public = PublicKeyPackage(
            self.group,
            y + tg,
            {i: p + tg for i, p in even.verifying_shares.items()},
            even.threshold,
        )
        return KeyShare(even.identifier, even.secret_share + t, public)


FROST_ED25519_SHA512: Ciphersuite = _Ed25519Sha512()
FROST_SECP256K1_SHA256: Ciphersuite = _Secp256k1Sha256()
FROST_SECP256K1_SHA256_TR: Ciphersuite = _Secp256k1Sha256Tr()
SUITES: dict[str, Ciphersuite] = {
    s.name: s for s in (FROST_ED25519_SHA512, FROST_SECP256K1_SHA256, FROST_SECP256K1_SHA256_TR)
}


def suite_by_name(name: str) -> Ciphersuite:
    try:
        return SUITES[name]
    except KeyError:
        raise EncodingError("suite", f"unknown ciphersuite {name!r}") from None


def suite_encoder(kind: str, suite: Ciphersuite) -> Encoder:
    """An encoder for one FROST message of ``kind``: the group header, then the suite's name."""
    return Encoder(kind, suite.group).var_bytes(suite.name.encode())


def suite_decoder(data: bytes, kind: str) -> tuple[Decoder, Ciphersuite]:
    """The inverse of :func:`suite_encoder`'s header: a decoder past it, and the named suite.

    The suite must be over the header's group (the fields after it are decoded in that group):
    a mismatch is the sender's malformed encoding, so an :class:`EncodingError`.
    """
    dec = Decoder(data, kind)
    name = dec.var_bytes("ciphersuite", max_length=_MAX_SUITE_NAME)
    suite = suite_by_name(name.decode("ascii", "replace"))
    if suite.group is not dec.group:
        raise EncodingError("ciphersuite", f"{suite.name} is not a suite over {dec.group.name}")
    return dec, suite
