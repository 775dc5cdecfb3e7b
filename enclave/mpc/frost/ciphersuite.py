"""FROST ciphersuites (RFC 9591 §6): the hash functions H1..H5 and signature (de)serialisation.

A :class:`Ciphersuite` binds a :class:`~enclave.mpc.groups.Group` to its context string and
hashes; the protocol modules are written once against it. Two suites are defined:

* ``FROST-ED25519-SHA512-v1`` (RFC 9591 §6.1): ``H1, H3, H4, H5 = SHA-512(context || tag || m)``,
  ``H2 = SHA-512(m)`` without context so that signatures verify as plain RFC 8032 Ed25519;
  64-byte digests are reduced little-endian modulo L.
* ``FROST-secp256k1-SHA256-v1`` (RFC 9591 §6.5): ``H1, H2, H3`` are ``hash_to_field`` (RFC 9380
  §5.2, expand_message_xmd with SHA-256, L = 48, DST = context || tag); ``H4, H5 =
  SHA-256(context || tag || m)``.

``hdkg`` / ``hid`` are the extra hashes of the Zcash Foundation implementation (tags ``dkg`` and
``id``), used only to reproduce its DKG vectors (see ``enclave.mpc.dkg.pop``).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from enclave.mpc.errors import EncodingError
from enclave.mpc.groups import ED25519, SECP256K1, Group, Point, Scalar

__all__ = [
    "FROST_ED25519_SHA512",
    "FROST_SECP256K1_SHA256",
    "SUITES",
    "Ciphersuite",
    "expand_message_xmd_sha256",
    "suite_by_name",
]


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


FROST_ED25519_SHA512: Ciphersuite = _Ed25519Sha512()
FROST_SECP256K1_SHA256: Ciphersuite = _Secp256k1Sha256()
SUITES: dict[str, Ciphersuite] = {s.name: s for s in (FROST_ED25519_SHA512, FROST_SECP256K1_SHA256)}


def suite_by_name(name: str) -> Ciphersuite:
    try:
        return SUITES[name]
    except KeyError:
        raise EncodingError("suite", f"unknown ciphersuite {name!r}") from None
