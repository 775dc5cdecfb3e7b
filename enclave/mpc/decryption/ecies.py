"""ECIES to a threshold group key: anyone encrypts, only ``t + 1`` nodes together can decrypt.

Encryption (ElGamal key agreement + KDF + AEAD, as SEC 1 §5.1 / ECIES-KEM arranges it)::

    e  <- random non-zero scalar        E = e·G            S = e·PK   (the shared point)
    key || nonce = HKDF-SHA256(IKM = S, salt = none,
                               info = lp(domain, suite, aead id, E, PK), L = 32 + 12)
    sealed = AES-256-GCM(key, nonce, plaintext, aad = header || lp(associated data))
    proof  = Schnorr proof of knowledge of e, bound to PK, E, sealed, associated data (pok.py)

The proof is what makes the scheme non-malleable (CCA-secure, as TDH2): every node checks it,
for the request's context and its key, before it returns a partial (:func:`verify_ciphertext`;
:func:`~enclave.mpc.decryption.partial.partial_decrypt` calls it), so an approval for one
ciphertext can never be turned into the decryption of another.

Decryption needs ``S = x·E`` where ``x`` is the (never assembled) group secret: each node
returns ``x_i·E`` with a DLEQ proof (``partial.py``) and the client interpolates ``S`` in the
exponent (``combine.py``); this module only turns ``S`` back into the plaintext.

Why these choices: the AEAD key and nonce both come from HKDF over a shared point that is fresh
for every message (``e`` is never reused), so a fixed derivation of the nonce is safe and the
ciphertext carries none. Both public points are in the HKDF info so a key is bound to this
exact ephemeral and recipient key; the encoded header (version, kind, suite, AEAD id, ``E``) is
the AEAD's associated data so no header byte can be changed without the tag failing.

Wire format (``enclave.mpc.encoding``; strict, one encoding per value)::

    version=1 || lp("ecies-ciphertext") || lp(group name) || format=2 (1 byte) || aead id (1 byte)
              || E (group element) || c || z (proof) || lp(sealed)     with 16 <= len(sealed)
                                                                       <= MAX_PLAINTEXT + 16

Format 1 — the same without the format byte and the proof, made by builds before the proof
existed — is malleable and is refused with an error that names it (README: "Decryption is
non-malleable"). Sizes: :data:`MAX_PLAINTEXT` is the one limit on what is encrypted, checked at
encryption; every ciphertext it allows fits one wire field (``wire.checks.MAX_BLOB``), so
whatever encrypts also decrypts. Larger payloads: envelope encryption (encrypt a data key).

Any authentication failure is an opaque :class:`~enclave.mpc.errors.SecretError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from enclave.mpc.decryption import pok
from enclave.mpc.decryption.pok import EphemeralProof, EphemeralStatement
from enclave.mpc.encoding import Decoder, Encoder, lp, lp_join
from enclave.mpc.errors import EncodingError, InvalidParameters, SecretError
from enclave.mpc.groups import GROUPS, Group, Point
from enclave.mpc.randomness import RandomSource
from wire.checks import MAX_BLOB

__all__ = [
    "CIPHERTEXT_FORMAT",
    "MAX_ASSOCIATED_DATA",
    "MAX_CIPHERTEXT",
    "MAX_PLAINTEXT",
    "AeadSuite",
    "Ciphertext",
    "ciphertext_length",
    "encrypt",
    "open_with_shared_point",
    "verify_ciphertext",
]

_KIND = "ecies-ciphertext"
_KDF_DOMAIN = b"keyshard/ecies/v1/hkdf"
_KEY_LENGTH = 32
_NONCE_LENGTH = 12
_TAG_LENGTH = 16
CIPHERTEXT_FORMAT = 2
"""The ciphertext format this build writes and reads (format 1 had no proof; it is refused)."""
_UNPROVEN_FORMAT = 1
_OVERHEAD_ROOM = 1024
MAX_PLAINTEXT = MAX_BLOB - _OVERHEAD_ROOM
"""The one size limit of threshold encryption (255 KiB), checked when encrypting.

Derived from the wire's per-field limit, leaving room for the format's fixed overhead (under 160
bytes: :func:`ciphertext_length`), so that every ciphertext :func:`encrypt` returns travels in
one decryption request. Larger payloads belong in envelope encryption: encrypt a data key.
"""
MAX_ASSOCIATED_DATA = MAX_BLOB
"""The longest associated data (context): what one wire field of a decryption request carries."""


class AeadSuite(IntEnum):
    """The KDF + AEAD of a ciphertext, tagged on the wire so a future suite is a new value."""

    HKDF_SHA256_AES256GCM = 1


@dataclass(frozen=True, slots=True)
class Ciphertext:
    """An ECIES ciphertext to a group public key, with its proof (all fields public)."""

    group: Group
    ephemeral: Point
    sealed: bytes
    proof: EphemeralProof
    suite: AeadSuite = AeadSuite.HKDF_SHA256_AES256GCM

    def __post_init__(self) -> None:
        if self.ephemeral.group is not self.group or self.proof.group is not self.group:
            raise InvalidParameters("ephemeral point or proof from a different group")
        if self.ephemeral.is_identity():
            raise InvalidParameters("ephemeral point must not be the identity")
        if not _TAG_LENGTH <= len(self.sealed) <= MAX_PLAINTEXT + _TAG_LENGTH:
            raise InvalidParameters("sealed payload length out of range")

    def header(self) -> bytes:
        """The encoded header (through ``E``: neither proof nor payload): the AEAD's associated
        data."""
        return _header(self.group, self.suite, self.ephemeral).finish()

    def to_bytes(self) -> bytes:
        enc = _header(self.group, self.suite, self.ephemeral)
        return (
            enc.scalar(self.proof.challenge)
            .scalar(self.proof.response)
            .var_bytes(self.sealed)
            .finish()
        )

    @classmethod
    def from_bytes(cls, data: bytes, group: Group | None = None) -> Ciphertext:
        """Strict decoding: format 2, a known AEAD suite, a valid non-identity ``E``, canonical
        proof scalars, a sealed payload within the limits, no trailing bytes."""
        dec = Decoder(data, _KIND, group)
        version = dec.u8("format")
        if version == _UNPROVEN_FORMAT:
            raise EncodingError(
                "format",
                f"ciphertext format {_UNPROVEN_FORMAT} (no proof of its ephemeral key, made "
                f"before format {CIPHERTEXT_FORMAT}) is refused: it is malleable",
            )
        if version != CIPHERTEXT_FORMAT:
            raise EncodingError(
                "format",
                f"unknown ciphertext format {version} (this build reads format {CIPHERTEXT_FORMAT})",
            )
        suite_id = dec.u8("aead suite")
        try:
            suite = AeadSuite(suite_id)
        except ValueError:
            raise EncodingError("aead suite", f"unknown suite {suite_id}") from None
        ephemeral = dec.point("ephemeral")
        proof = EphemeralProof(dec.scalar("proof.challenge"), dec.scalar("proof.response"))
        sealed = dec.var_bytes("sealed", max_length=MAX_PLAINTEXT + _TAG_LENGTH)
        dec.finish()
        if len(sealed) < _TAG_LENGTH:
            raise EncodingError("sealed", "shorter than the authentication tag")
        return cls(dec.group, ephemeral, sealed, proof, suite)


def _header(group: Group, suite: AeadSuite, ephemeral: Point) -> Encoder:
    return Encoder(_KIND, group).u8(CIPHERTEXT_FORMAT).u8(int(suite)).point(ephemeral)


def ciphertext_length(group: Group, plaintext_length: int) -> int:
    """The exact encoded length of a ciphertext of ``plaintext_length`` bytes to a ``group`` key."""
    header = 1 + 4 + len(_KIND) + 4 + len(group.name) + 2 + group.element_length
    return header + 2 * group.scalar_length + 4 + plaintext_length + _TAG_LENGTH


MAX_CIPHERTEXT = max(ciphertext_length(g, MAX_PLAINTEXT) for g in GROUPS.values())
"""The longest ciphertext :func:`encrypt` returns (and decryption accepts); within ``MAX_BLOB``."""


def _statement(
    public_key: Point, suite: AeadSuite, ephemeral: Point, sealed: bytes, associated_data: bytes
) -> EphemeralStatement:
    """What the proof binds: the key, ``E``, the format (version, AEAD), body and context."""
    format_bytes = bytes([CIPHERTEXT_FORMAT, int(suite)])
    return EphemeralStatement(public_key, ephemeral, format_bytes, sealed, associated_data)


def verify_ciphertext(ciphertext: Ciphertext, public_key: Point, associated_data: bytes) -> None:
    """Check the encryptor's proof for this key and context (TDH2's validity check).

    Every node runs it before it computes a partial; :class:`~enclave.mpc.errors.InvalidProof`
    if the ciphertext was altered, is for another key or context, or was assembled by someone
    who does not know its ephemeral exponent (the redirection of an approval, issue 9 item 1).
    """
    _check_public_key(public_key)
    if public_key.group is not ciphertext.group:
        raise InvalidParameters("ciphertext and public key in different groups")
    if len(associated_data) > MAX_ASSOCIATED_DATA:
        raise InvalidParameters(f"associated data longer than {MAX_ASSOCIATED_DATA} bytes")
    statement = _statement(
        public_key, ciphertext.suite, ciphertext.ephemeral, ciphertext.sealed, associated_data
    )
    pok.verify(statement, ciphertext.proof)


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
        raise InvalidParameters(
            f"plaintext longer than {MAX_PLAINTEXT} bytes (the most one threshold encryption "
            "takes: encrypt a data key for larger payloads)"
        )
    if len(associated_data) > MAX_ASSOCIATED_DATA:
        raise InvalidParameters(f"associated data longer than {MAX_ASSOCIATED_DATA} bytes")
    group = public_key.group
    suite = AeadSuite.HKDF_SHA256_AES256GCM
    e = group.random_scalar(rng)
    ephemeral = group.base_mul(e)
    shared = public_key * e
    key, nonce = _key_and_nonce(suite, public_key, ephemeral, shared)
    header = _header(group, suite, ephemeral).finish()
    sealed = AESGCM(key).encrypt(nonce, plaintext, _aad(header, associated_data))
    statement = _statement(public_key, suite, ephemeral, sealed, associated_data)
    return Ciphertext(group, ephemeral, sealed, pok.prove(e, statement, rng), suite)


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
