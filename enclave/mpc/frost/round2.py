"""FROST round two (RFC 9591 §5.2): the signing package and each signer's signature share.

The coordinator sends every chosen signer a :class:`SigningPackage` (the message and the
commitments of all signers, keyed by identifier). Before touching its nonces, each signer checks
the package (§5.2 and §7.3): the suite and session match its nonces, its own commitment is
present with exactly the values it produced, every signer is a member of the key's party set,
and there are at least ``t + 1`` signers. Only then are the nonces consumed and

    z_i = d_i + e_i * rho_i + lambda_i * s_i * c

returned. Sortedness and uniqueness of the list are enforced by the package's type (a mapping,
iterated in identifier order) and by its decoder (strictly increasing identifiers).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from enclave.mpc.errors import EncodingError, InvalidParameters, NonceReuse
from enclave.mpc.frost.binding import compute_binding_factors, compute_group_commitment
from enclave.mpc.frost.ciphersuite import Ciphersuite, suite_decoder, suite_encoder
from enclave.mpc.frost.round1 import (
    MAX_SESSION_ID,
    SigningCommitments,
    SigningNonces,
    check_session_id,
)
from enclave.mpc.groups import Scalar
from enclave.mpc.identifiers import MAX_PARTIES, Identifier, validate_identifiers
from enclave.mpc.keys import KeyShare, PublicKeyPackage
from enclave.mpc.shamir import lagrange_coefficient

__all__ = ["SignatureShare", "SigningPackage", "sign"]

_PACKAGE_KIND = "frost/round2/package"
_SHARE_KIND = "frost/round2/share"
MAX_MESSAGE = 1 << 20


@dataclass(frozen=True, slots=True)
class SigningPackage:
    """The coordinator's round-two request: message plus every signer's commitments."""

    suite: Ciphersuite
    session_id: bytes
    commitments: Mapping[Identifier, SigningCommitments]
    message: bytes

    def __post_init__(self) -> None:
        check_session_id(self.session_id)
        if len(self.message) > MAX_MESSAGE:
            raise InvalidParameters("message too long")
        idents = validate_identifiers(self.suite.group, self.commitments.keys())
        if not idents:
            raise InvalidParameters("a signing package needs signers")
        for i in idents:
            c = self.commitments[i]
            if c.suite is not self.suite or c.session_id != self.session_id:
                raise InvalidParameters(f"commitment of signer {int(i)} is for another session")
        frozen = MappingProxyType({i: self.commitments[i] for i in idents})
        object.__setattr__(self, "commitments", frozen)

    @property
    def signers(self) -> tuple[Identifier, ...]:
        return tuple(self.commitments)

    def check_signers(self, public: PublicKeyPackage) -> None:
        """Enough signers (``t + 1``), all members of the key's party set."""
        if public.group is not self.suite.group:
            raise InvalidParameters("key is not for this ciphersuite's group")
        unknown = [int(i) for i in self.signers if i not in public.verifying_shares]
        if unknown:
            raise InvalidParameters(f"signers {unknown} are not members of the key")
        if len(self.signers) < public.threshold + 1:
            raise InvalidParameters(
                f"{len(self.signers)} signers, the key needs at least {public.threshold + 1}"
            )

    def to_bytes(self) -> bytes:
        enc = suite_encoder(_PACKAGE_KIND, self.suite)
        enc.var_bytes(self.session_id).var_bytes(self.message).count(len(self.commitments))
        for i, c in self.commitments.items():
            enc.identifier(i).point(c.hiding).point(c.binding)
        return enc.finish()

    @classmethod
    def from_bytes(cls, data: bytes) -> SigningPackage:
        dec, suite = suite_decoder(data, _PACKAGE_KIND)
        session_id = dec.var_bytes("session_id", max_length=MAX_SESSION_ID)
        message = dec.var_bytes("message", max_length=MAX_MESSAGE)
        n = dec.count("count", minimum=1, maximum=MAX_PARTIES)
        commitments: dict[Identifier, SigningCommitments] = {}
        previous: Identifier | None = None
        for k in range(n):
            i = dec.identifier(f"identifier[{k}]")
            if previous is not None and not previous < i:
                raise EncodingError(f"identifier[{k}]", "not sorted or duplicated")
            previous = i
            hiding, binding = dec.point(f"hiding[{k}]"), dec.point(f"binding[{k}]")
            commitments[i] = SigningCommitments(suite, session_id, hiding, binding)
        dec.finish()
        return cls(suite, session_id, commitments, message)


@dataclass(frozen=True, slots=True)
class SignatureShare:
    """Round-two message: ``z_i``. Public once sent (it is masked by the secret nonces)."""

    suite: Ciphersuite
    session_id: bytes
    share: Scalar

    def __post_init__(self) -> None:
        check_session_id(self.session_id)
        if self.share.group is not self.suite.group:
            raise InvalidParameters("share from a different group")

    def to_bytes(self) -> bytes:
        enc = suite_encoder(_SHARE_KIND, self.suite)
        return enc.var_bytes(self.session_id).scalar(self.share).finish()

    @classmethod
    def from_bytes(cls, data: bytes) -> SignatureShare:
        dec, suite = suite_decoder(data, _SHARE_KIND)
        session_id = dec.var_bytes("session_id", max_length=MAX_SESSION_ID)
        share = dec.scalar("share")
        dec.finish()
        return cls(suite, session_id, share)


def sign(package: SigningPackage, nonces: SigningNonces, key_share: KeyShare) -> SignatureShare:
    """RFC 9591 §5.2 sign, after validating the package; consumes ``nonces``."""
    if nonces.used:
        raise NonceReuse("this signing nonce was already used")
    suite = package.suite
    mine = nonces.commitments
    if mine.suite is not suite or mine.session_id != package.session_id:
        raise InvalidParameters("the nonces belong to another suite or session")
    package.check_signers(key_share.public)
    key_share = suite.prepare_share(key_share)
    me = key_share.identifier
    if package.commitments.get(me) != mine:
        raise InvalidParameters("the package does not carry this signer's own commitment")

    public_key = key_share.group_public_key
    rho = compute_binding_factors(suite, public_key, package.commitments, package.message)
    r = compute_group_commitment(suite, package.commitments, rho)
    lam = lagrange_coefficient(suite.group, me, package.signers)
    c = suite.challenge(r, public_key, package.message)
    d, e = nonces.consume()
    z = suite.nonce_sign(r) * (d + e * rho[me]) + lam * key_share.secret_share * c
    return SignatureShare(suite, package.session_id, z)
