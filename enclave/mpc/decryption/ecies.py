"""ECIES to a threshold group key: anyone encrypts, only ``t + 1`` nodes together can decrypt.

Encryption (ElGamal key agreement + KDF + AEAD, as SEC 1 §5.1 / ECIES-KEM arranges it)::

    e  <- random non-zero scalar        E = e·G            S = e·PK   (the shared point)
    key || nonce = HKDF-SHA256(IKM = S, salt = none,
                               info = lp(domain, suite, aead id, E, PK), L = 32 + 12)
    sealed = AES-256-GCM(key, nonce, plaintext, aad = header || lp(associated data))

Decryption needs ``S = x·E`` where ``x`` is the (never assembled) group secret: each node
returns ``x_i·E`` with a DLEQ proof (``partial.py``) and the client interpolates ``S`` in the
exponent (``combine.py``); this module only turns ``S`` back into the plaintext.

Why these choices: the AEAD key and nonce both come from HKDF over a shared point that is fresh
for every message (``e`` is never reused), so a fixed derivation of the nonce is safe and the
ciphertext carries none. Both public points are in the HKDF info so a key is bound to this
exact ephemeral and recipient key; the encoded header (version, kind, suite, AEAD id, ``E``) is
the AEAD's associated data so no header byte can be changed without the tag failing.

Wire format (``enclave.mpc.encoding``; strict, one encoding per value)::

    version=1 || lp("ecies-ciphertext") || lp(group name) || aead id (1 byte)
              || E (group element) || lp(sealed)        with len(sealed) >= 16 (the tag)

Any authentication failure is an opaque :class:`~enclave.mpc.errors.SecretError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from enclave.mpc.encoding import Decoder, Encoder, lp, lp_join
from enclave.mpc.errors import EncodingError, InvalidParameters, SecretError
from enclave.mpc.groups import Group, Point
from enclave.mpc.randomness import RandomSource

__all__ = ["AeadSuite", "Ciphertext", "encrypt", "open_with_shared_point"]

_KIND = "ecies-ciphertext"
_KDF_DOMAIN = b"keyshard/ecies/v1/hkdf"
_KEY_LENGTH = 32
_NONCE_LENGTH = 12
_TAG_LENGTH = 16
MAX_PLAINTEXT = 1 << 20
"""Plaintexts are keys and small secrets; bound them so a decoder never allocates much."""


class AeadSuite(IntEnum):
    """The KDF + AEAD of a ciphertext, tagged on the wire so a future suite is a new value."""

    HKDF_SHA256_AES256GCM = 1


@dataclass(frozen=True, slots=True)
class Ciphertext:
    """An ECIES ciphertext to a group public key (all fields public)."""

    group: Group
    ephemeral: Point
    sealed: bytes
    suite: AeadSuite = AeadSuite.HKDF_SHA256_AES256GCM

    def __post_init__(self) -> None:
        if self.ephemeral.group is not self.group:
            raise InvalidParameters("ephemeral point from a different group")
        if self.ephemeral.is_identity():
            raise InvalidParameters("ephemeral point must not be the identity")
        if not _TAG_LENGTH <= len(self.sealed) <= MAX_PLAINTEXT + _TAG_LENGTH:
            raise InvalidParameters("sealed payload length out of range")

    def header(self) -> bytes:
        """The encoded header (everything but the sealed payload): the AEAD's associated data."""
        return self._encoder().finish()

    def _encoder(self) -> Encoder:
        return _header(self.group, self.suite, self.ephemeral)

    def to_bytes(self) -> bytes:
        return self._encoder().var_bytes(self.sealed).finish()

    @classmethod
    def from_bytes(cls, data: bytes, group: Group | None = None) -> Ciphertext:
        """Strict decoding: known version and suite, a valid non-identity ``E``, no trailing bytes."""
        dec = Decoder(data, _KIND, group)
        suite_id = dec.u8("aead suite")
        try:
            suite = AeadSuite(suite_id)
        except ValueError:
            raise EncodingError("aead suite", f"unknown suite {suite_id}") from None
        ephemeral = dec.point("ephemeral")
        sealed = dec.var_bytes("sealed", max_length=MAX_PLAINTEXT + _TAG_LENGTH)
        dec.finish()
        if len(sealed) < _TAG_LENGTH:
            raise EncodingError("sealed", "shorter than the authentication tag")
        return cls(dec.group, ephemeral, sealed, suite)


def _header(group: Group, suite: AeadSuite, ephemeral: Point) -> Encoder:
    return Encoder(_KIND, group).u8(int(suite)).point(ephemeral)


def _key_and_nonce(
    suite: AeadSuite, public_key: Point, ephemeral: Point, shared: Point
) -> tuple[bytes, bytes]:
    group = public_key.group
    info = lp_join(
        (
            _KDF_DOMAIN,
            group.name.encode(),
            bytes([int(suite)]),
            ephemeral.to_bytes(),
            public_key.to_bytes(),
        )
    )
    okm = HKDF(
        algorithm=hashes.SHA256(), length=_KEY_LENGTH + _NONCE_LENGTH, salt=None, info=info
    ).derive(shared.to_bytes())
    return okm[:_KEY_LENGTH], okm[_KEY_LENGTH:]


def _aad(ciphertext_header: bytes, associated_data: bytes) -> bytes:
    return lp(ciphertext_header) + lp(associated_data)


def _check_public_key(public_key: Point) -> None:
    if public_key.is_identity():
        raise InvalidParameters("cannot encrypt to the identity")


def encrypt(
    public_key: Point, plaintext: bytes, rng: RandomSource, associated_data: bytes = b""
) -> Ciphertext:
    """Encrypt ``plaintext`` to ``public_key`` (the group key of a threshold key).

    ``associated_data`` is authenticated, not encrypted, and must be given again to decrypt
    (e.g. the key id and purpose, so a ciphertext cannot be replayed under another label).
    """
    _check_public_key(public_key)
    if len(plaintext) > MAX_PLAINTEXT:
        raise InvalidParameters(f"plaintext longer than {MAX_PLAINTEXT} bytes")
    group = public_key.group
    suite = AeadSuite.HKDF_SHA256_AES256GCM
    e = group.random_scalar(rng)
    ephemeral = group.base_mul(e)
    shared = public_key * e
    key, nonce = _key_and_nonce(suite, public_key, ephemeral, shared)
    header = _header(group, suite, ephemeral).finish()
    sealed = AESGCM(key).encrypt(nonce, plaintext, _aad(header, associated_data))
    return Ciphertext(group, ephemeral, sealed, suite)


def open_with_shared_point(
    ciphertext: Ciphertext, public_key: Point, shared: Point, associated_data: bytes = b""
) -> bytes:
    """Decrypt with ``S = x·E`` (assembled by ``combine.py``); failures are opaque.

    A wrong ``S``, a wrong key, changed associated data or any altered byte all end in the same
    :class:`SecretError` raised ``from None``: which of them happened is not said.
    """
    _check_public_key(public_key)
    if public_key.group is not ciphertext.group or shared.group is not ciphertext.group:
        raise InvalidParameters("ciphertext, public key and shared point in different groups")
    key, nonce = _key_and_nonce(ciphertext.suite, public_key, ciphertext.ephemeral, shared)
    try:
        return AESGCM(key).decrypt(
            nonce, ciphertext.sealed, _aad(ciphertext.header(), associated_data)
        )
    except InvalidTag:
        raise SecretError from None
