"""The encryptor's proof of knowledge of the ephemeral exponent: what makes threshold ECIES
non-malleable (CCA-secure, as TDH2 — Shoup and Gennaro, "Securing Threshold Cryptosystems
against Chosen Ciphertext Attack", J. Cryptology 15(2), 2002).

Why it is needed: a node's partial ``x_i·E`` is a Diffie-Hellman answer for whatever ``E`` it is
shown. Without a proof, a client approved to decrypt ``C' = (E + r·G, any body)`` gets partials
that combine to ``x·E + r·X``; subtracting ``r·X`` leaves ``x·E`` and opens ``C = (E, body)``,
which nobody approved. So every ciphertext carries a Schnorr proof of knowledge of ``e`` with
``E = e·G`` whose challenge binds the group key, ``E``, the sealed body and the context, and
every node checks it before it computes a partial:

* whoever can prove knowledge of ``e`` can compute ``e·X`` alone, so the partials teach them
  nothing they could not compute (the plaintext-awareness argument of TDH2);
* the proof cannot be moved to another ``E``, body, context, key or format: the challenge would
  change, and making a new proof needs ``e`` — for ``E + r·G`` that is ``e + r``, unknown.

Construction (Schnorr's sigma protocol made non-interactive by Fiat-Shamir, laid out as
``dleq.py``; the group arithmetic is :mod:`enclave.mpc.groups`, i.e. libsodium / libsecp256k1)::

    prover:   k <- hedged nonce;  A = k·G;  c = H(A);  z = k + c·e
    verifier: A = z·G - c·E;  accept iff c == H(A)
    H(A) = hash_to_scalar(suite, "keyshard/ecies/v2/pok",
                          lp: format, group public key X, E, A, sealed body, context)

``format`` is the ciphertext's format version and AEAD id, so a proof made for one format never
verifies for another. The proof travels as ``(c, z)``, two canonical scalars: ``A`` is re-derived,
so there is no point to decode. A failed check raises :class:`~enclave.mpc.errors.InvalidProof`
(public data, no culprit: the encryptor is not a party of the key).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import ClassVar

from enclave.mpc.errors import InvalidParameters, InvalidProof
from enclave.mpc.groups import Group, Point, Scalar
from enclave.mpc.randomness import RandomSource, draw
from enclave.mpc.sigma import ChallengeResponse
from enclave.mpc.transcript import hash_to_scalar

__all__ = ["EphemeralProof", "EphemeralStatement", "prove", "verify"]

_CHALLENGE_DOMAIN = b"keyshard/ecies/v2/pok"
_NONCE_DOMAIN = b"keyshard/ecies/v2/pok/nonce"


@dataclass(frozen=True, slots=True)
class EphemeralStatement:
    """ "I know ``e`` with ``ephemeral = e·G``", bound to everything a partial could serve.

    ``public_key`` is the group key encrypted to, ``format`` the ciphertext's format bytes,
    ``sealed`` the AEAD output and ``context`` the associated data decryption must repeat.
    """

    public_key: Point
    ephemeral: Point
    format: bytes
    sealed: bytes
    context: bytes

    def __post_init__(self) -> None:
        if self.ephemeral.group is not self.public_key.group:
            raise InvalidParameters("ephemeral point and public key in different groups")
        if self.ephemeral.is_identity() or self.public_key.is_identity():
            raise InvalidParameters("ephemeral point and public key must not be the identity")

    @property
    def group(self) -> Group:
        return self.public_key.group

    def challenge(self, commitment: Point) -> Scalar:
        return hash_to_scalar(
            self.group,
            _CHALLENGE_DOMAIN,
            self.format,
            self.public_key.to_bytes(),
            self.ephemeral.to_bytes(),
            commitment.to_bytes(),
            self.sealed,
            self.context,
        )


@dataclass(frozen=True, slots=True)
class EphemeralProof(ChallengeResponse):
    """``(c, z)``: challenge and response, both public."""

    FIELD: ClassVar[str] = "proof"


def _hedged_nonce(secret: Scalar, statement: EphemeralStatement, rng: RandomSource) -> Scalar:
    """``k = H(random, e, statement)``: unique even if ``rng`` repeats, as in ``dleq.py``."""
    nonce = hash_to_scalar(
        statement.group,
        _NONCE_DOMAIN,
        draw(rng, 32),
        secret.to_bytes(),
        statement.format,
        statement.public_key.to_bytes(),
        statement.ephemeral.to_bytes(),
        statement.sealed,
        statement.context,
    )
    if nonce.is_zero():  # pragma: no cover - probability 2^-252
        raise InvalidParameters("proof nonce derivation produced zero")
    return nonce


def prove(secret: Scalar, statement: EphemeralStatement, rng: RandomSource) -> EphemeralProof:
    """Prove knowledge of ``secret`` with ``statement.ephemeral == secret·G``."""
    group = statement.group
    if secret.group is not group:
        raise InvalidParameters("secret and statement in different groups")
    if group.base_mul(secret) != statement.ephemeral:
        raise InvalidParameters("the secret is not the ephemeral point's exponent")
    k = _hedged_nonce(secret, statement, rng)
    c = statement.challenge(group.base_mul(k))
    return EphemeralProof(c, k + c * secret)


def verify(statement: EphemeralStatement, proof: EphemeralProof) -> None:
    """Raise :class:`InvalidProof` unless ``proof`` proves ``statement``."""
    group = statement.group
    if proof.group is not group:
        raise InvalidProof((), "the ciphertext's proof is for another group")
    commitment = group.base_mul(proof.response) - statement.ephemeral * proof.challenge
    expected = statement.challenge(commitment)
    # Public values, but the comparison costs nothing to make constant time.
    if not hmac.compare_digest(expected.to_bytes(), proof.challenge.to_bytes()):
        raise InvalidProof(
            (),
            "the ciphertext's proof of its ephemeral key does not verify for this key and context",
        )
