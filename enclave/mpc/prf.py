"""A threshold pseudo-random function (hashed DDH-PRF) whose key is a Keyshard key's secret.

``F_x(key, seed) = SHA-256(domain, key, seed, x·H(key, seed))``, where ``x`` is the key's Shamir
-shared secret and ``H`` hashes onto Ed25519's prime-order group. No party ever holds ``x``:

* node ``i`` returns ``P_i = x_i·H`` with a Chaum-Pedersen proof that ``log_G(Y_i) ==
  log_H(P_i)`` (``Y_i`` its verification share from the DKG), bound to this protocol, the
  request's session id and the node's identifier (:mod:`enclave.mpc.dleq`);
* the caller verifies every partial, interpolates ``x·H = sum lambda_i·P_i`` over any t+1 of
  them (:func:`combine`) — a bad partial is caught and its sender named — and hashes the result
  into a 32-byte output (:func:`output_key`), e.g. an AES-256 key.

``H`` is evaluated by the node from ``(key name, seed)``, never taken from the caller, so a
partial is only ever ``x_i`` times a point with an unknown discrete logarithm (two Elligator-2
maps of a SHA-512 digest added, as RFC 9380's hash_to_curve does, through libsodium's
``crypto_core_ed25519_from_uniform``, which clears the cofactor).

Encrypt-only callers. An evaluation is asked for in one of two modes:

* ``ENCRYPT``: the caller sends a fresh 32-byte nonce ``r`` and the node evaluates at the
  16-byte seed ``s = SHA-256(domain, r)[:16]`` (:func:`encryption_seed`). To make an encrypt-mode evaluation land
  on the seed of an existing ciphertext, a caller would have to find a (128-bit) SHA-256
  preimage; so no
  sequence of encrypt calls ever yields the key of a ciphertext it did not create.
* ``DECRYPT``: the caller names the seed ``s`` itself (from the ciphertext), which is why this
  mode is a separate permission, checked by the node (the key's approval policy for decryption)
  and by the proxy (a key's decrypt usage).
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from nacl import bindings as sodium

from enclave.mpc.dleq import DleqProof, DleqStatement, ProofContext, prove, verify
from enclave.mpc.encoding import Decoder, Encoder, lp_join
from enclave.mpc.errors import EncodingError, InvalidParameters, InvalidProof
from enclave.mpc.groups import ED25519, Group, Point
from enclave.mpc.identifiers import Identifier, validate_identifiers
from enclave.mpc.keys import KeyShare, PublicKeyPackage
from enclave.mpc.randomness import RandomSource
from enclave.mpc.shamir import lagrange_coefficient

__all__ = [
    "NONCE_LENGTH",
    "PRF_PROTOCOL",
    "SEED_LENGTH",
    "PrfMode",
    "PrfPartial",
    "combine",
    "encryption_seed",
    "evaluate",
    "hash_to_point",
    "output_key",
    "verify_partial",
]

PRF_PROTOCOL = b"keyshard/prf/v1"
#: A seed is 16 bytes so that it fits, with a version byte, in the 20 bytes of ciphertext
#: metadata an XKS ciphertext may carry; aiming an encryption at a given seed still costs a
#: 2^128 preimage search. A nonce (encrypt mode's input) is 32 random bytes.
SEED_LENGTH = 16
NONCE_LENGTH = 32
_KIND = "prf-partial"
_H2C_DOMAIN = b"keyshard/prf/v1/hash-to-group"
_SEED_DOMAIN = b"keyshard/prf/v1/encryption-seed"
_OUTPUT_DOMAIN = b"keyshard/prf/v1/output"
MAX_SESSION_ID = 256


class PrfMode(enum.Enum):
    ENCRYPT = "encrypt"  # the input is a caller's nonce; the seed is its hash
    DECRYPT = "decrypt"  # the input is the seed itself


def encryption_seed(nonce: bytes) -> bytes:
    """The seed an encrypt-mode evaluation of ``nonce`` uses: one-way, so a caller cannot aim
    it at an existing seed."""
    if len(nonce) != NONCE_LENGTH:
        raise InvalidParameters(f"an encryption nonce is {NONCE_LENGTH} bytes")
    return hashlib.sha256(lp_join((_SEED_DOMAIN, nonce))).digest()[:SEED_LENGTH]


def hash_to_point(key_name: bytes, seed: bytes) -> Point:
    """``H(key, seed)`` on Ed25519's prime-order subgroup, with no known discrete logarithm."""
    if len(seed) != SEED_LENGTH:
        raise InvalidParameters(f"a PRF seed is {SEED_LENGTH} bytes")
    digest = hashlib.sha512(lp_join((_H2C_DOMAIN, key_name, seed))).digest()
    halves = (
        bytes(sodium.crypto_core_ed25519_from_uniform(digest[:32])),
        bytes(sodium.crypto_core_ed25519_from_uniform(digest[32:])),
    )
    point = bytes(sodium.crypto_core_ed25519_add(*halves))
    return ED25519.decode_point(point)  # refuses the identity (probability ~2^-252)


@dataclass(frozen=True, slots=True)
class PrfPartial:
    """Node -> caller: ``P_i = x_i·H(key, seed)`` and its proof, for one request."""

    group: Group
    session_id: bytes
    value: Point
    proof: DleqProof

    def __post_init__(self) -> None:
        if not 0 < len(self.session_id) <= MAX_SESSION_ID:
            raise InvalidParameters(f"session id must be 1..{MAX_SESSION_ID} bytes")
        if self.value.group is not self.group or self.proof.group is not self.group:
            raise InvalidParameters("PRF partial mixes groups")

    def to_bytes(self) -> bytes:
        enc = Encoder(_KIND, self.group).var_bytes(self.session_id).point(self.value)
        return enc.scalar(self.proof.challenge).scalar(self.proof.response).finish()

    @classmethod
    def from_bytes(cls, data: bytes, group: Group | None = None) -> PrfPartial:
        dec = Decoder(data, _KIND, group)
        session_id = dec.var_bytes("session_id", max_length=MAX_SESSION_ID)
        if not session_id:
            raise EncodingError("session_id", "empty")
        value = dec.point("value")
        proof = DleqProof(dec.scalar("proof.challenge"), dec.scalar("proof.response"))
        dec.finish()
        return cls(dec.group, session_id, value, proof)


def _context(session_id: bytes, key_name: bytes, seed: bytes, prover: Identifier) -> ProofContext:
    # The key and seed enter the challenge through H (the statement's C); the session through
    # the context. The protocol label keeps these proofs apart from decryption's.
    return ProofContext(PRF_PROTOCOL, lp_join((session_id, key_name, seed)), prover)


def evaluate(
    share: KeyShare, key_name: bytes, seed: bytes, session_id: bytes, rng: RandomSource
) -> PrfPartial:
    """Node side: ``x_i·H(key, seed)`` with a DLEQ proof against ``Y_i``."""
    if share.group is not ED25519:
        raise InvalidParameters("the threshold PRF is served for Ed25519 keys")
    base = hash_to_point(key_name, seed)
    value = base * share.secret_share
    statement = DleqStatement(share.group.generator(), share.verifying_share, base, value)
    context = _context(session_id, key_name, seed, share.identifier)
    return PrfPartial(
        share.group, session_id, value, prove(share.secret_share, statement, context, rng)
    )


def verify_partial(
    public: PublicKeyPackage,
    key_name: bytes,
    seed: bytes,
    sender: Identifier,
    partial: PrfPartial,
    *,
    session_id: bytes,
) -> None:
    """Check one partial; :class:`InvalidProof` names ``sender`` (the channel's identity)."""
    verifying_share = public.verifying_shares.get(sender)
    if verifying_share is None:
        raise InvalidParameters(f"party {int(sender)} is not in the key's committee")
    if partial.group is not public.group:
        raise InvalidProof((sender,), "PRF partial is for another group")
    if partial.session_id != session_id:
        raise InvalidProof((sender,), "PRF partial is for another session")
    base = hash_to_point(key_name, seed)
    statement = DleqStatement(public.group.generator(), verifying_share, base, partial.value)
    verify(statement, partial.proof, _context(session_id, key_name, seed, sender))


def combine(
    public: PublicKeyPackage,
    key_name: bytes,
    seed: bytes,
    partials: Mapping[Identifier, PrfPartial],
    session_id: bytes,
) -> Point:
    """Verify every partial (naming all bad senders), then ``x·H`` from any t+1 or more."""
    group = public.group
    senders = validate_identifiers(group, partials.keys())
    if len(senders) < public.threshold + 1:
        raise InvalidParameters(f"need {public.threshold + 1} PRF partials, got {len(senders)}")
    culprits: list[Identifier] = []
    for sender in senders:
        try:
            verify_partial(public, key_name, seed, sender, partials[sender], session_id=session_id)
        except InvalidProof:
            culprits.append(sender)
    if culprits:
        raise InvalidProof(culprits, "PRF partial proof does not verify")
    return group.multi_mul(
        [(lagrange_coefficient(group, i, senders), partials[i].value) for i in senders]
    )


def output_key(public: PublicKeyPackage, key_name: bytes, seed: bytes, value: Point) -> bytes:
    """The 32-byte PRF output (an AES-256 key): bound to the group key, the key name and seed."""
    return hashlib.sha256(
        lp_join(
            (_OUTPUT_DOMAIN, public.group_public_key.to_bytes(), key_name, seed, value.to_bytes())
        )
    ).digest()
