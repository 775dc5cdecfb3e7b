"""Chaum-Pedersen proofs that two points share one discrete logarithm (DLEQ).

Statement: public bases ``A``, ``C`` and points ``B``, ``D``; the prover knows ``k`` with
``B = k·A`` and ``D = k·C``. This is the sigma protocol of Chaum and Pedersen made
non-interactive with Fiat-Shamir, arranged exactly as RFC 9497 §2.2.1 (GenerateProof) and
§2.2.2 (VerifyProof)::

    prover:   r <- nonce;  T2 = r·A;  T3 = r·C;  c = H(statement, T2, T3);  s = r - c·k
    verifier: T2 = s·A + c·B;  T3 = s·C + c·D;  accept iff c == H(statement, T2, T3)

The proof is ``(c, s)``: recomputing ``c`` re-derives both commitments, so nothing else travels.
Soundness needs ``A`` and ``C`` to generate the prime-order group (neither may be the identity)
and the challenge to bind the whole statement; zero knowledge needs ``r`` never to repeat for
two challenges (two answers with one ``r`` reveal ``k``), so :func:`prove` hedges the caller's
randomness with the secret and the statement, as RFC 9591 §4.1 does for FROST nonces.

Two challenge constructions share this one algebra:

* Keyshard's (:func:`prove` / :func:`verify`): a domain-separated transcript — protocol label,
  suite, session id, prover identifier, then ``A, B, C, D, T2, T3`` length-prefixed — so a
  proof made for one protocol, session or node never verifies for another.
* Any other construction, passed as a :data:`ChallengeFunction` to :func:`generate_proof` /
  :func:`check_proof`, with batching of many ``(C_i, D_i)`` pairs into one statement by
  :func:`composite_statement` (RFC 9497 §2.2.1 ComputeComposites). The tests reproduce RFC 9497's
  published proofs this way, which checks the algebra byte for byte.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from enclave.mpc.errors import InvalidParameters, InvalidProof
from enclave.mpc.groups import Group, Point, Scalar
from enclave.mpc.identifiers import Identifier
from enclave.mpc.randomness import RandomSource, draw
from enclave.mpc.sigma import ChallengeResponse
from enclave.mpc.transcript import Transcript, hash_to_scalar

__all__ = [
    "ChallengeFunction",
    "DleqProof",
    "DleqStatement",
    "ProofContext",
    "check_proof",
    "composite_statement",
    "generate_proof",
    "prove",
    "verify",
]

_DLEQ_PROTOCOL = b"keyshard/dleq/v1"
_NONCE_DOMAIN = b"keyshard/dleq/v1/nonce"


@dataclass(frozen=True, slots=True)
class DleqStatement:
    """``log_base(public) == log_other_base(other_public)``, all four in one group.

    Validated on construction: one group, and neither base the identity (with an identity base
    the statement says nothing about the other pair). ``public`` / ``other_public`` may be the
    identity only when the caller's protocol allows a zero secret; the proof stays sound.
    """

    base: Point
    public: Point
    other_base: Point
    other_public: Point

    def __post_init__(self) -> None:
        group = self.base.group
        if any(p.group is not group for p in (self.public, self.other_base, self.other_public)):
            raise InvalidParameters("DLEQ statement mixes groups")
        if self.base.is_identity() or self.other_base.is_identity():
            raise InvalidParameters("DLEQ base must not be the identity")

    @property
    def group(self) -> Group:
        return self.base.group

    def points(self) -> tuple[Point, Point, Point, Point]:
        return (self.base, self.public, self.other_base, self.other_public)


@dataclass(frozen=True, slots=True)
class DleqProof(ChallengeResponse):
    """A non-interactive DLEQ proof: challenge ``c`` and response ``s`` (both public)."""

    FIELD: ClassVar[str] = "dleq proof"


ChallengeFunction = Callable[[DleqStatement, Point, Point], Scalar]
"""``(statement, T2, T3) -> c``: the Fiat-Shamir hash of one proof construction."""


def generate_proof(
    secret: Scalar, statement: DleqStatement, nonce: Scalar, challenge: ChallengeFunction
) -> DleqProof:
    """RFC 9497 GenerateProof with the composites already folded into ``statement``.

    ``nonce`` must be uniform and never reused with another challenge; :func:`prove` derives a
    hedged one. Use this directly only to reproduce published vectors or to build a protocol
    with its own (reviewed) challenge construction.
    """
    if secret.group is not statement.group or nonce.group is not statement.group:
        raise InvalidParameters("DLEQ secret, nonce and statement in different groups")
    if nonce.is_zero():
        raise InvalidParameters("DLEQ nonce must be non-zero")
    t2 = statement.base * nonce
    t3 = statement.other_base * nonce
    c = challenge(statement, t2, t3)
    return DleqProof(c, nonce - c * secret)


def check_proof(
    statement: DleqStatement,
    proof: DleqProof,
    challenge: ChallengeFunction,
    culprits: Sequence[Identifier] = (),
) -> None:
    """RFC 9497 VerifyProof; raises :class:`InvalidProof` naming ``culprits`` on failure."""
    group = statement.group
    if proof.group is not group:
        raise InvalidProof(culprits, "DLEQ proof is for another group")
    c, s = proof.challenge, proof.response
    t2 = group.multi_mul([(s, statement.base), (c, statement.public)])
    t3 = group.multi_mul([(s, statement.other_base), (c, statement.other_public)])
    expected = challenge(statement, t2, t3)
    # Public values, but the comparison costs nothing to make constant time.
    if not hmac.compare_digest(expected.to_bytes(), c.to_bytes()):
        raise InvalidProof(culprits, "DLEQ proof does not verify")


def composite_statement(
    base: Point,
    public: Point,
    pairs: Sequence[tuple[Point, Point]],
    weights: Sequence[Scalar],
) -> DleqStatement:
    """Batch ``log_base(public) == log_{C_i}(D_i)`` for every pair into one statement.

    RFC 9497 §2.2.1 ComputeComposites: ``M = sum w_i·C_i``, ``Z = sum w_i·D_i``. The weights
    must be derived by hashing all the pairs (after they are fixed), otherwise a prover could
    pick pairs whose errors cancel; deriving them is the caller's construction.
    """
    if not pairs or len(pairs) != len(weights):
        raise InvalidParameters("composite needs one weight per (C, D) pair, at least one pair")
    group = base.group
    m = group.multi_mul([(w, c) for w, (c, _) in zip(weights, pairs, strict=True)])
    z = group.multi_mul([(w, d) for w, (_, d) in zip(weights, pairs, strict=True)])
    if m.is_identity():
        raise InvalidParameters("composite base is the identity")
    return DleqStatement(base, public, m, z)


# -- Keyshard's construction ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProofContext:
    """What a Keyshard DLEQ proof is bound to besides its statement.

    ``protocol`` names the calling protocol and its version (e.g. ``b"keyshard/decrypt/v1"``),
    ``session_id`` the run, ``prover`` the party the authenticated channel identifies — the one
    named if the proof fails.
    """

    protocol: bytes
    session_id: bytes
    prover: Identifier

    def __post_init__(self) -> None:
        if not self.protocol:
            raise InvalidParameters("DLEQ proof context needs a protocol label")


def _keyshard_challenge(context: ProofContext) -> ChallengeFunction:
    def challenge(statement: DleqStatement, t2: Point, t3: Point) -> Scalar:
        transcript = Transcript(_DLEQ_PROTOCOL, statement.group, context.session_id)
        transcript.append(b"protocol", context.protocol)
        transcript.append(b"prover", context.prover.to_bytes())
        for label, point in zip((b"A", b"B", b"C", b"D"), statement.points(), strict=True):
            transcript.append(label, point.to_bytes())
        transcript.append(b"T2", t2.to_bytes())
        transcript.append(b"T3", t3.to_bytes())
        return transcript.challenge(b"dleq")

    return challenge


def _hedged_nonce(
    secret: Scalar, statement: DleqStatement, context: ProofContext, rng: RandomSource
) -> Scalar:
    """A nonce that stays unique even if ``rng`` repeats: H(random, secret, statement, context).

    SHA-512 output reduced modulo q (64 bytes: bias below 2^-250), as RFC 9591 §4.1 does.
    """
    nonce = hash_to_scalar(
        statement.group,
        _NONCE_DOMAIN,
        draw(rng, 32),
        secret.to_bytes(),
        context.protocol,
        context.session_id,
        context.prover.to_bytes(),
        *(p.to_bytes() for p in statement.points()),
    )
    if nonce.is_zero():  # pragma: no cover - probability 2^-252
        raise InvalidParameters("DLEQ nonce derivation produced zero")
    return nonce


def prove(
    secret: Scalar, statement: DleqStatement, context: ProofContext, rng: RandomSource
) -> DleqProof:
    """Prove ``statement`` with witness ``secret`` under Keyshard's transcript."""
    nonce = _hedged_nonce(secret, statement, context, rng)
    return generate_proof(secret, statement, nonce, _keyshard_challenge(context))


def verify(statement: DleqStatement, proof: DleqProof, context: ProofContext) -> None:
    """Check a Keyshard DLEQ proof; :class:`InvalidProof` names ``context.prover`` on failure."""
    check_proof(statement, proof, _keyshard_challenge(context), (context.prover,))
