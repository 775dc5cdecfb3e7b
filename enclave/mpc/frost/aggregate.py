"""FROST aggregation (RFC 9591 §5.3) with cheater identification (§5.4).

The coordinator sums the shares, ``z = sum z_i``, and verifies ``(R, z)`` before releasing it
(Ed25519 through ``cryptography``'s RFC 8032 verifier, the BIP-340 "tr" suite through
libsecp256k1, secp256k1 through the Schnorr equation). If it does not verify, every share is
checked with ``verify_signature_share``:

    z_i * G == sign(R) * (D_i + rho_i * E_i) + (c * lambda_i) * Y_i

(``sign(R)`` is 1 except for the tr suite, whose nonces are negated when ``R`` has odd y.)
and all signers whose share fails are named in :class:`InvalidSignatureShare`. An invalid
signature is never returned.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from enclave.mpc.errors import InvalidParameters, InvalidSignatureShare, ProtocolAbort
from enclave.mpc.frost.binding import compute_binding_factors, compute_group_commitment
from enclave.mpc.frost.round2 import SignatureShare, SigningPackage
from enclave.mpc.groups import Point, Scalar
from enclave.mpc.identifiers import Identifier
from enclave.mpc.keys import PublicKeyPackage
from enclave.mpc.shamir import lagrange_coefficient

__all__ = ["aggregate", "verify_signature_share"]


def _check_shares(package: SigningPackage, shares: Mapping[Identifier, SignatureShare]) -> None:
    if set(shares) != set(package.signers):
        raise InvalidParameters("shares must come from exactly the package's signers")
    for i, s in shares.items():
        if s.suite is not package.suite or s.session_id != package.session_id:
            raise InvalidParameters(f"share of signer {int(i)} is for another session")


@dataclass(frozen=True, slots=True)
class _Session:
    """What every share check needs, derived once from the package and the key."""

    public: PublicKeyPackage  # as the suite signs with it (BIP-340: even y)
    rho: Mapping[Identifier, Scalar]
    r: Point
    c: Scalar
    nonce_sign: Scalar


def _session(package: SigningPackage, public: PublicKeyPackage) -> _Session:
    package.check_signers(public)
    suite = package.suite
    public = suite.prepare_public(public)
    y = public.group_public_key
    rho = compute_binding_factors(suite, y, package.commitments, package.message)
    r = compute_group_commitment(suite, package.commitments, rho)
    c = suite.challenge(r, y, package.message)
    return _Session(public, rho, r, c, suite.nonce_sign(r))


def _share_ok(package: SigningPackage, ident: Identifier, z_i: Scalar, s: _Session) -> bool:
    """``z_i * G == sign * (D_i + rho_i * E_i) + (c * lambda_i) * Y_i``."""
    g = package.suite.group
    comm = package.commitments[ident]
    lam = lagrange_coefficient(g, ident, package.signers)
    share_commitment = comm.hiding + comm.binding * s.rho[ident]
    expected = share_commitment * s.nonce_sign + s.public.verifying_shares[ident] * (s.c * lam)
    return g.base_mul(z_i) == expected


def verify_signature_share(
    package: SigningPackage,
    ident: Identifier,
    share: SignatureShare,
    public: PublicKeyPackage,
) -> None:
    """§5.4: check one share; raise :class:`InvalidSignatureShare` naming ``ident``."""
    session = _session(package, public)
    if ident not in package.commitments:
        raise InvalidParameters("identifier is not a signer of this package")
    if not _share_ok(package, ident, share.share, session):
        raise InvalidSignatureShare({ident}, "signature share does not verify")


def aggregate(
    package: SigningPackage,
    shares: Mapping[Identifier, SignatureShare],
    public: PublicKeyPackage,
) -> bytes:
    """§5.3 aggregate; returns the encoded signature only if it verifies."""
    session = _session(package, public)
    _check_shares(package, shares)
    suite = package.suite
    z = suite.group.zero()
    for i in package.signers:
        z = z + shares[i].share
    signature = suite.encode_signature(session.r, z)
    if suite.verify(session.public.group_public_key, package.message, signature):
        return signature
    culprits = [i for i in package.signers if not _share_ok(package, i, shares[i].share, session)]
    if culprits:
        raise InvalidSignatureShare(culprits, "signature shares do not verify")
    raise ProtocolAbort((), "aggregate signature does not verify although every share does")
