"""In-memory driver for threshold ECDSA tests: a trusted dealer, a router, and a tamper hook.

Tests only. The dealer knows the key (a DKG is not what these tests exercise); the router runs one
:class:`PresignSession` per party, passes every message through its wire encoding (so the codec
is exercised on every run) and lets a test rewrite any message per (round, sender, recipient) —
which is how a misbehaving or equivocating party is simulated.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from enclave.mpc.ecdsa import (
    DealMessage,
    MaskOpening,
    NonceOpening,
    Presignature,
    PresignContext,
    PresignSession,
    SignatureShare,
    SigningRequest,
    sign,
)
from enclave.mpc.errors import MpcError
from enclave.mpc.groups import SECP256K1, Scalar
from enclave.mpc.identifiers import Identifier
from enclave.mpc.keys import KeyShare, PublicKeyPackage
from enclave.mpc.randomness import RandomSource
from enclave.mpc.shamir import split_secret

G = SECP256K1

# tamper(round, sender, recipient, message) -> message actually delivered
Tamper = Callable[[int, Identifier, Identifier, Any], Any]


def ids(*values: int) -> list[Identifier]:
    return [Identifier.from_int(G, v) for v in values]


def deal_key(
    threshold: int, parties: int | Sequence[int], rng: RandomSource
) -> tuple[Scalar, dict[Identifier, KeyShare]]:
    """A random secp256k1 key shared with degree ``threshold`` (trusted dealer, tests only)."""
    values = range(1, parties + 1) if isinstance(parties, int) else parties
    secret = G.random_scalar(rng)
    shares, poly = split_secret(G, secret, threshold, ids(*values), rng)
    commitment = poly.commitments()
    public = PublicKeyPackage(
        G, commitment.constant, {i: commitment.evaluate(i) for i in shares}, threshold
    )
    return secret, {i: KeyShare(i, s, public) for i, s in shares.items()}


_DECODERS: dict[int, Callable[[bytes], Any]] = {
    1: lambda b: DealMessage.from_bytes(b, G),
    2: lambda b: NonceOpening.from_bytes(b, G),
    3: lambda b: MaskOpening.from_bytes(b, G),
}


def _no_tamper(round_: int, sender: Identifier, recipient: Identifier, message: Any) -> Any:
    return message


def run_presign(
    context: PresignContext,
    key_shares: Mapping[Identifier, KeyShare],
    rng: RandomSource,
    tamper: Tamper = _no_tamper,
) -> dict[Identifier, Presignature | MpcError]:
    """Run presigning for every party of ``context``; each party's presignature or its error."""
    sessions = {i: PresignSession(context, key_shares[i]) for i in context.parties}
    outcome: dict[Identifier, Presignature | MpcError] = {}
    alive = set(context.parties)

    def route(round_: int, outgoing: Mapping[Identifier, Mapping[Identifier, Any]]) -> Any:
        inboxes: dict[Identifier, dict[Identifier, Any]] = {i: {} for i in alive}
        for sender, per_recipient in outgoing.items():
            for recipient, message in per_recipient.items():
                if recipient in inboxes:
                    wire = _DECODERS[round_](message.to_bytes())
                    assert wire == message
                    inboxes[recipient][sender] = tamper(round_, sender, recipient, wire)
        return inboxes

    def step(round_: int, call: Callable[[Identifier, Any], Any], inboxes: Any) -> Any:
        results: dict[Identifier, Any] = {}
        for i in sorted(alive):
            try:
                results[i] = call(i, inboxes[i] if inboxes is not None else None)
            except MpcError as exc:
                outcome[i] = exc
        alive.difference_update(outcome)
        return results

    dealt = step(1, lambda i, _: sessions[i].start(rng), None)
    nonce = step(2, lambda i, inbox: sessions[i].receive_deals(inbox), route(1, dealt))

    def broadcast(msgs: Mapping[Identifier, Any]) -> dict[Identifier, dict[Identifier, Any]]:
        return {s: {r: m for r in context.parties if r != s} for s, m in msgs.items()}

    mask = step(
        3, lambda i, inbox: sessions[i].receive_nonce_openings(inbox), route(2, broadcast(nonce))
    )
    final = step(
        4, lambda i, inbox: sessions[i].receive_mask_openings(inbox), route(3, broadcast(mask))
    )
    outcome.update(final)
    return outcome


def presignatures(
    outcome: Mapping[Identifier, Presignature | MpcError],
) -> dict[Identifier, Presignature]:
    """All presignatures of an honest run (fails the test if any party aborted)."""
    errors = {i: o for i, o in outcome.items() if not isinstance(o, Presignature)}
    assert not errors, errors
    return {i: o for i, o in outcome.items() if isinstance(o, Presignature)}


def sign_all(
    presigs: Mapping[Identifier, Presignature], request: SigningRequest
) -> dict[Identifier, SignatureShare]:
    """Every party's signature share, each passed through its wire encoding."""
    out = {}
    for i, p in presigs.items():
        share = sign(p, request)
        out[i] = SignatureShare.from_bytes(share.to_bytes(), G)
    return out
