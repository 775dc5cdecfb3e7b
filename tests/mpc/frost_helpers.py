"""In-memory FROST signing driver and independent verifiers for tests."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import coincurve
import ecdsa  # type: ignore[import-untyped]  # independent secp256k1 arithmetic (tests)
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from enclave.mpc.frost.aggregate import aggregate
from enclave.mpc.frost.ciphersuite import Ciphersuite, expand_message_xmd_sha256
from enclave.mpc.frost.round1 import commit
from enclave.mpc.frost.round2 import SignatureShare, SigningPackage, sign
from enclave.mpc.identifiers import Identifier
from enclave.mpc.keys import KeyShare
from enclave.mpc.randomness import RandomSource

ShareHook = Callable[[Identifier, SignatureShare], SignatureShare]


def frost_sign(
    suite: Ciphersuite,
    keys: Mapping[Identifier, KeyShare],
    signers: Sequence[Identifier],
    message: bytes,
    rng: RandomSource,
    *,
    session_id: bytes = b"test-sign",
    share_hook: ShareHook | None = None,
) -> bytes:
    """Round 1, round 2 and aggregation, all parties in memory."""
    round1 = {i: commit(suite, keys[i], session_id, rng) for i in signers}
    package = SigningPackage(suite, session_id, {i: c for i, (_, c) in round1.items()}, message)
    shares = {}
    for i, (nonces, _) in round1.items():
        share = sign(package, nonces, keys[i])
        shares[i] = share_hook(i, share) if share_hook else share
    public = keys[signers[0]].public
    return aggregate(package, shares, public)


def independent_verify(suite: Ciphersuite, public_key: bytes, message: bytes, sig: bytes) -> bool:
    """Verification with curve arithmetic independent of ``enclave.mpc.groups``.

    Ed25519: ``cryptography`` (RFC 8032). BIP-340 (tr suite): libsecp256k1 via coincurve.
    secp256k1: python-ecdsa points; only the RFC 9591 H2
    hash (expand_message_xmd, checked against the RFC vectors) is shared with the code under test.
    """
    if suite.signature_length() == 64 and suite.group.name == "secp256k1":
        # BIP-340 output (tr suite): libsecp256k1's schnorrsig_verify against x(Y).
        return bool(coincurve.PublicKeyXOnly(public_key[1:]).verify(sig, message))
    if suite.group.name == "ed25519":
        try:
            Ed25519PublicKey.from_public_bytes(public_key).verify(sig, message)
        except InvalidSignature:
            return False
        return True
    # FROST(secp256k1, SHA-256): z*G == R + c*Y with python-ecdsa's curve arithmetic.
    curve = ecdsa.SECP256k1
    order = curve.order
    r_pt = ecdsa.VerifyingKey.from_string(sig[:33], curve=curve).pubkey.point
    y_pt = ecdsa.VerifyingKey.from_string(public_key, curve=curve).pubkey.point
    z = int.from_bytes(sig[33:], "big")
    dst = b"FROST-secp256k1-SHA256-v1chal"
    c = int.from_bytes(expand_message_xmd_sha256(sig[:33] + public_key + message, dst, 48), "big")
    lhs = curve.generator * z
    rhs = r_pt + y_pt * (c % order)
    return bool(lhs == rhs)
