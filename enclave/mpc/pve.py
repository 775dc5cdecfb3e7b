"""Publicly verifiable encryption (PVE) of a key share to an offline recovery key.

A holder of share ``s`` with public verification share ``Y = s·G`` encrypts ``s`` to a recovery
X25519 public key ``rk`` and proves, to anyone and WITHOUT the recovery private key, that the
ciphertext decrypts to the discrete logarithm of ``Y``. A backup of ``t + 1`` such encryptions
is then checkable by an auditor: it restores exactly the key whose verification shares are
``Y_i``. The construction is the cut-and-choose one of Coinbase cb-mpc's ``ec_pve_t``
(itself after Camenisch-Shoup's verifiable encryption of discrete logs), written here against
this package's groups, transcript and a vetted hybrid encryption.

Encryption (``KAPPA = 128`` rows, each two halves ``j = 0, 1``)::

    seed_0, seed_1 <- hedged randomness (32 bytes each)
    x_0 = H(seed_0)            x_1 = s - x_0             (so x_0 + x_1 = s)
    X_0 = x_0·G                X_1 = Y - X_0             (so X_0 + X_1 = Y)
    c_j = Enc(rk, x_j; seed_j, aad = statement || row || j)   -- deterministic given seed_j
    b   = first 128 bits of the transcript hash over (statement, every c_0, c_1, X_0, X_1)
    row k opens half b_k: seed_{b_k} (and x_1 when b_k = 1, which no seed determines) and
    carries the other half's ciphertext c_{1-b_k} unopened.

``Enc`` is X25519 with an ephemeral key derived from the seed (HKDF-SHA256), HKDF-SHA256 over the
shared secret and both public keys, and ChaCha20-Poly1305 under that single-use key (zero nonce),
all from ``cryptography``: the DHKEM + AEAD pattern of HPKE base mode, made deterministic in the
seed so a verifier can recompute an opened ciphertext byte for byte.

Verification recomputes, for every row, the opened half's value ``x_{b}``, its ciphertext and
``X_b = x_b·G``, derives the other point as ``X_{1-b} = Y - X_b``, rebuilds the transcript with
the unopened ciphertexts as given, and accepts iff the hash yields the same 128 bits.

Decryption (recovery private key) tries the rows in order: decrypt the unopened half, add the
opened half, and return the first sum ``s'`` with ``s'·G = Y``. Any ``s'`` it returns is THE
share: the discrete logarithm is unique.

Soundness (why a proof that verifies always decrypts). Call a half of row ``k`` *good* when its
ciphertext decrypts under the recovery key to ``x`` with ``x·G = X_j``. An opened half is good by
construction: the verifier recomputed its ciphertext from ``(seed, x)`` with the deterministic
``Enc``, and ``Enc`` is correct for every recipient key this module accepts (low-order X25519 keys,
for which the shared secret is constant, are refused). If both halves of some row are good,
decryption of that row yields ``x_0 + x_1`` with ``(x_0 + x_1)·G = X_0 + X_1 = Y``: success. So a
proof that verifies but does not decrypt must have a bad half in EVERY row and the challenge must
open the good one in every row: the prover fixed all ciphertexts and points before the hash
(they are its input), so each hash query hits the one winning 128-bit string with probability
``2^-128`` (random-oracle model); a prover making ``Q`` queries wins with probability at most
``Q·2^-128``. The statement — group, holder, ``Y``, ``rk`` and the caller's label (key, suite,
epoch...) — opens the transcript and enters every AEAD's associated data, so a proof never
verifies for another statement: it cannot be moved to another key, holder or recovery key.

Zero knowledge (what an auditor learns). Per row one opened half: ``x_0 = H(seed_0)`` is uniform,
and ``x_1 = s - x_0`` is uniform since ``x_0`` stays hidden; the unopened half is a ciphertext
under a key the auditor lacks (IND-CCA of the DHKEM/AEAD), and ``X_{1-b}`` follows from ``Y``. A
simulator knowing only ``Y`` picks the opened halves and challenge, encrypts junk for the
unopened ones and programs the random oracle. Seeds are hedged with the share and the statement
(as RFC 9591 §4.1 hedges nonces), so a weak random source does not make two halves share a seed.

Errors: malformed bytes :class:`EncodingError`; a proof that does not verify
:class:`InvalidProof` naming the holder and the row; a bad recovery key
:class:`InvalidParameters`; decryption that yields nothing :class:`SecretError` (opaque).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from enclave.mpc.encoding import Decoder, Encoder, lp_join
from enclave.mpc.errors import EncodingError, InvalidParameters, InvalidProof, SecretError
from enclave.mpc.groups import Group, Point, Scalar
from enclave.mpc.identifiers import Identifier
from enclave.mpc.randomness import RandomSource, draw
from enclave.mpc.transcript import Transcript, hash_to_scalar

__all__ = [
    "CIPHERTEXT_LENGTH",
    "KAPPA",
    "RECOVERY_KEY_LENGTH",
    "PveStatement",
    "VerifiableEncryption",
    "check_recovery_key",
    "decrypt",
    "encrypt",
    "verify",
]

#: Cut-and-choose rows: a cheating prover passes with probability 2^-KAPPA per hash query.
KAPPA = 128
SEED_LENGTH = 32
RECOVERY_KEY_LENGTH = 32
_EPHEMERAL_LENGTH = 32
_TAG_LENGTH = 16
#: Ephemeral X25519 key || ChaCha20-Poly1305(scalar) || tag (both groups' scalars are 32 bytes).
CIPHERTEXT_LENGTH = _EPHEMERAL_LENGTH + 32 + _TAG_LENGTH
_CHALLENGE_LENGTH = KAPPA // 8
_ZERO_NONCE = bytes(12)  # each AEAD key is derived for one encryption only

_PROTOCOL = b"keyshard/pve/v1"
_STATEMENT_DOMAIN = b"keyshard/pve/v1/statement"
_HALF_DOMAIN = b"keyshard/pve/v1/half"
_SEED_DOMAIN = b"keyshard/pve/v1/seed"
_EPHEMERAL_INFO = b"keyshard/pve/v1/ephemeral"
_AEAD_DOMAIN = b"keyshard/pve/v1/aead-key"
_ROW_DOMAIN = b"keyshard/pve/v1/row"
_KIND = "pve"
#: A fixed private scalar to test a recovery key for low order (the exchange is then all-zero).
_PROBE = X25519PrivateKey.from_private_bytes(hashlib.sha256(b"keyshard/pve/v1/probe").digest())


def check_recovery_key(data: bytes) -> X25519PublicKey:
    """The recovery public key ``data`` (raw 32-byte X25519), refusing low-order points.

    With a low-order key every shared secret is the same constant, so anyone could decrypt:
    such a key is refused here, and every function of this module goes through this check.
    """
    if type(data) is not bytes or len(data) != RECOVERY_KEY_LENGTH:
        raise InvalidParameters(f"a recovery key is {RECOVERY_KEY_LENGTH} raw X25519 bytes")
    key = X25519PublicKey.from_public_bytes(data)
    try:
        _PROBE.exchange(key)
    except ValueError:  # cryptography refuses an all-zero shared secret
        raise InvalidParameters("the recovery key is a low-order X25519 point") from None
    return key


@dataclass(frozen=True, slots=True)
class PveStatement:
    """What a PVE proves: ``holder``'s ciphertext under ``recovery_key`` decrypts to ``log_G Y``.

    ``label`` is the caller's context (for a backup, :func:`wire.backup.backup_label`: key name,
    suite, public key package, epoch, policy): it is hashed into the transcript and every AEAD,
    so the proof holds for it alone.
    """

    public_share: Point
    holder: Identifier
    recovery_key: bytes
    label: bytes

    def __post_init__(self) -> None:
        if self.holder.group is not self.public_share.group:
            raise InvalidParameters("holder and public share from different groups")
        if self.public_share.is_identity():
            raise InvalidParameters("the public share must not be the identity")
        check_recovery_key(self.recovery_key)
        if type(self.label) is not bytes:
            raise InvalidParameters("the label is bytes")

    @property
    def group(self) -> Group:
        return self.public_share.group

    def digest(self) -> bytes:
        """The statement's 64-byte hash (transcript session id, AEAD associated data)."""
        return hashlib.sha512(
            lp_join(
                (
                    _STATEMENT_DOMAIN,
                    self.group.name.encode(),
                    self.holder.to_bytes(),
                    self.public_share.to_bytes(),
                    self.recovery_key,
                    self.label,
                )
            )
        ).digest()


@dataclass(frozen=True, slots=True)
class _Row:
    """One cut-and-choose row as it travels: the opened half and the other's ciphertext."""

    seed: bytes
    opened_x1: Scalar | None  # the opened x_1 when the row's bit is 1, else None
    ciphertext: bytes


@dataclass(frozen=True, slots=True)
class VerifiableEncryption:
    """A PVE proof (public): the 128 challenge bits and :data:`KAPPA` rows.

    Encoding (:mod:`enclave.mpc.encoding`, kind ``pve``): the challenge (length-prefixed, 16
    bytes), then per row the seed (length-prefixed, 32 bytes), ``x_1`` (the group's scalar
    encoding) only when the row's bit is 1, and the unopened ciphertext (length-prefixed, 80
    bytes); the decoder refuses any other length. About 17 KiB in all.
    """

    group: Group
    challenge: bytes
    rows: tuple[_Row, ...]

    def __post_init__(self) -> None:
        if len(self.challenge) != _CHALLENGE_LENGTH or len(self.rows) != KAPPA:
            raise InvalidParameters("a PVE has a 16-byte challenge and 128 rows")
        for k, row in enumerate(self.rows):
            if (row.opened_x1 is not None) != _bit(self.challenge, k):
                raise InvalidParameters(f"row {k} opens the wrong half")
            if row.opened_x1 is not None and row.opened_x1.group is not self.group:
                raise InvalidParameters(f"row {k}: x1 from another group")
            if len(row.seed) != SEED_LENGTH or len(row.ciphertext) != CIPHERTEXT_LENGTH:
                raise InvalidParameters(f"row {k} has fields of the wrong length")

    def to_bytes(self) -> bytes:
        enc = Encoder(_KIND, self.group)
        enc.var_bytes(self.challenge)
        for row in self.rows:
            enc.var_bytes(row.seed)
            if row.opened_x1 is not None:
                enc.scalar(row.opened_x1)
            enc.var_bytes(row.ciphertext)
        return enc.finish()

    @classmethod
    def from_bytes(cls, data: bytes, group: Group) -> VerifiableEncryption:
        """Strict decoding (lengths, canonical scalars, no trailing bytes)."""
        dec = Decoder(data, _KIND, group)
        challenge = dec.var_bytes("challenge", max_length=_CHALLENGE_LENGTH)
        if len(challenge) != _CHALLENGE_LENGTH:
            raise EncodingError("challenge", f"expected {_CHALLENGE_LENGTH} bytes")
        rows = []
        for k in range(KAPPA):
            seed = dec.var_bytes(f"row[{k}].seed", max_length=SEED_LENGTH)
            x1 = dec.scalar(f"row[{k}].x1") if _bit(challenge, k) else None
            ciphertext = dec.var_bytes(f"row[{k}].ciphertext", max_length=CIPHERTEXT_LENGTH)
            if len(seed) != SEED_LENGTH or len(ciphertext) != CIPHERTEXT_LENGTH:
                raise EncodingError(f"row[{k}]", "seed or ciphertext of the wrong length")
            rows.append(_Row(seed, x1, ciphertext))
        dec.finish()
        return cls(group, challenge, tuple(rows))


def _bit(challenge: bytes, k: int) -> bool:
    return bool((challenge[k // 8] >> (k % 8)) & 1)


def _half_from_seed(group: Group, seed: bytes) -> Scalar:
    """``x_0 = H(seed_0)``: uniform, and recomputable by whoever sees the seed."""
    return hash_to_scalar(group, _HALF_DOMAIN, seed)


def _row_aad(statement_digest: bytes, k: int, side: int) -> bytes:
    return lp_join((_ROW_DOMAIN, statement_digest, k.to_bytes(2, "big"), bytes([side])))


def _hkdf(ikm: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(ikm)


def _aead_key(shared: bytes, ephemeral: bytes, recipient: bytes) -> ChaCha20Poly1305:
    return ChaCha20Poly1305(_hkdf(shared, lp_join((_AEAD_DOMAIN, ephemeral, recipient))))


def _encrypt_half(recipient: X25519PublicKey, value: Scalar, seed: bytes, aad: bytes) -> bytes:
    """Deterministic in ``seed``: the ephemeral X25519 key is derived from it."""
    ephemeral = X25519PrivateKey.from_private_bytes(_hkdf(seed, _EPHEMERAL_INFO))
    ephemeral_public = ephemeral.public_key().public_bytes_raw()
    shared = ephemeral.exchange(recipient)
    aead = _aead_key(shared, ephemeral_public, recipient.public_bytes_raw())
    return ephemeral_public + aead.encrypt(_ZERO_NONCE, value.to_bytes(), aad)


def _transcript(statement: PveStatement, digest: bytes) -> Transcript:
    transcript = Transcript(_PROTOCOL, statement.group, digest)
    transcript.append(b"public_share", statement.public_share.to_bytes())
    transcript.append(b"recovery_key", statement.recovery_key)
    return transcript


def _absorb_row(transcript: Transcript, c: Sequence[bytes], points: Sequence[Point]) -> None:
    transcript.append(b"c0", c[0])
    transcript.append(b"c1", c[1])
    transcript.append(b"X0", points[0].to_bytes())
    transcript.append(b"X1", points[1].to_bytes())


def _challenge(transcript: Transcript) -> bytes:
    transcript.append(b"challenge", b"cut-and-choose")
    return transcript.digest()[:_CHALLENGE_LENGTH]


def encrypt(share: Scalar, statement: PveStatement, rng: RandomSource) -> VerifiableEncryption:
    """Encrypt ``share`` to the statement's recovery key with a proof (see the module docstring).

    Refuses (:class:`InvalidParameters`) a share that is not the statement's discrete log: a
    prover never produces a proof of a false statement, even by mistake.
    """
    group = statement.group
    if share.group is not group or group.base_mul(share) != statement.public_share:
        raise InvalidParameters("the share does not match the statement's public share")
    recipient = check_recovery_key(statement.recovery_key)
    digest = statement.digest()
    transcript = _transcript(statement, digest)
    halves: list[tuple[tuple[bytes, bytes], Scalar, tuple[bytes, bytes]]] = []
    for k in range(KAPPA):
        # hedged seeds: the random source, the share and the statement (RFC 9591 §4.1 style)
        seeds = tuple(
            hashlib.sha512(
                lp_join((_SEED_DOMAIN, draw(rng, 32), share.to_bytes(), digest, bytes([k, j])))
            ).digest()[:SEED_LENGTH]
            for j in (0, 1)
        )
        x0 = _half_from_seed(group, seeds[0])
        x1 = share - x0
        c = (
            _encrypt_half(recipient, x0, seeds[0], _row_aad(digest, k, 0)),
            _encrypt_half(recipient, x1, seeds[1], _row_aad(digest, k, 1)),
        )
        big_x0 = group.base_mul(x0)
        _absorb_row(transcript, c, (big_x0, statement.public_share - big_x0))
        halves.append(((seeds[0], seeds[1]), x1, c))
    challenge = _challenge(transcript)
    rows = []
    for k, (seeds, x1, c) in enumerate(halves):
        if _bit(challenge, k):
            rows.append(_Row(seeds[1], x1, c[0]))
        else:
            rows.append(_Row(seeds[0], None, c[1]))
    return VerifiableEncryption(group, challenge, tuple(rows))


def verify(statement: PveStatement, proof: VerifiableEncryption) -> None:
    """Raise :class:`InvalidProof` (naming the holder) unless ``proof`` holds for ``statement``.

    Needs no secret: anyone with the statement (public) can run it.
    """
    group = statement.group
    if proof.group is not group:
        raise InvalidProof([statement.holder], "the PVE is for another group")
    recipient = check_recovery_key(statement.recovery_key)
    digest = statement.digest()
    transcript = _transcript(statement, digest)
    for k, row in enumerate(proof.rows):
        side = 1 if row.opened_x1 is not None else 0
        opened = row.opened_x1 if row.opened_x1 is not None else _half_from_seed(group, row.seed)
        recomputed = _encrypt_half(recipient, opened, row.seed, _row_aad(digest, k, side))
        big_opened = group.base_mul(opened)
        big_other = statement.public_share - big_opened
        if side == 0:
            _absorb_row(transcript, (recomputed, row.ciphertext), (big_opened, big_other))
        else:
            _absorb_row(transcript, (row.ciphertext, recomputed), (big_other, big_opened))
    if not hmac.compare_digest(_challenge(transcript), proof.challenge):
        raise InvalidProof([statement.holder], "the verifiable encryption does not verify")


def _decrypt_half(key: X25519PrivateKey, ciphertext: bytes, aad: bytes) -> bytes:
    ephemeral = X25519PublicKey.from_public_bytes(ciphertext[:_EPHEMERAL_LENGTH])
    shared = key.exchange(ephemeral)
    recipient = key.public_key().public_bytes_raw()
    aead = _aead_key(shared, ciphertext[:_EPHEMERAL_LENGTH], recipient)
    return aead.decrypt(_ZERO_NONCE, ciphertext[_EPHEMERAL_LENGTH:], aad)


def decrypt(key: X25519PrivateKey, statement: PveStatement, proof: VerifiableEncryption) -> Scalar:
    """The share, recovered with the recovery private key; checked against ``Y``.

    Verifies the proof first (a backup that does not verify is refused with
    :class:`InvalidProof` before the private key is used). A key that is not the statement's
    recovery key, or rows that all fail, raise the opaque :class:`SecretError`.
    """
    verify(statement, proof)
    group = statement.group
    if not hmac.compare_digest(key.public_key().public_bytes_raw(), statement.recovery_key):
        raise SecretError from None
    digest = statement.digest()
    for k, row in enumerate(proof.rows):
        unopened_side = 0 if row.opened_x1 is not None else 1
        try:
            plaintext = _decrypt_half(key, row.ciphertext, _row_aad(digest, k, unopened_side))
            other = group.decode_scalar(plaintext)
        except (InvalidTag, ValueError, EncodingError):
            continue  # a bad half in this row; soundness says some row is whole
        opened = row.opened_x1 if row.opened_x1 is not None else _half_from_seed(group, row.seed)
        share = opened + other
        if group.base_mul(share) == statement.public_share:
            return share
    raise SecretError from None
