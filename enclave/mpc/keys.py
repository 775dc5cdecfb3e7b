"""Key material produced by DKG (and consumed by FROST, ECDSA, decryption, refresh).

* :class:`PublicKeyPackage` — public: the group key ``Y = s * G``, every party's verification
  share ``Y_i = s_i * G``, and the threshold ``t`` (degree; ``t + 1`` parties act together).
* :class:`KeyShare` — one party's secret share ``s_i`` together with that public package. It is
  secret: prints ``<redacted>``, is not picklable, and has no wire encoding. Sealing it at rest
  uses the one explicit pair :meth:`KeyShare.to_sealable_bytes` / :meth:`from_sealed_bytes`,
  whose output must only ever be passed to the sealing AEAD.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from enclave.mpc.encoding import Decoder, Encoder
from enclave.mpc.errors import EncodingError, InvalidParameters, SecretError
from enclave.mpc.groups import Group, Point, Scalar
from enclave.mpc.identifiers import MAX_PARTIES, Identifier, validate_identifiers
from enclave.mpc.shamir import check_threshold, lagrange_coefficient

__all__ = ["KeyShare", "PublicKeyPackage"]

_PUBLIC_KIND = "public-key-package"
_SEALED_KIND = "key-share-sealed"


def _freeze(group: Group, shares: Mapping[Identifier, Point]) -> Mapping[Identifier, Point]:
    idents = validate_identifiers(group, shares.keys())
    for i in idents:
        if shares[i].group is not group:
            raise InvalidParameters("verification share from a different group")
    return MappingProxyType({i: shares[i] for i in idents})


@dataclass(frozen=True, slots=True)
class PublicKeyPackage:
    """The public outcome of a DKG, identical at every party."""

    group: Group
    group_public_key: Point
    verifying_shares: Mapping[Identifier, Point]
    threshold: int

    def __post_init__(self) -> None:
        if self.group_public_key.group is not self.group:
            raise InvalidParameters("group key from a different group")
        object.__setattr__(self, "verifying_shares", _freeze(self.group, self.verifying_shares))
        check_threshold(self.threshold, len(self.verifying_shares))

    @property
    def identifiers(self) -> tuple[Identifier, ...]:
        return tuple(self.verifying_shares)

    def check_consistency(self) -> None:
        """Every ``Y_i`` lies on one degree-``t`` polynomial in the exponent with value ``Y`` at 0.

        Packages produced by the DKG are consistent by construction; this is for packages that
        arrive as bytes. Interpolates from the first ``t + 1`` shares (Lagrange in the exponent).
        """
        ids = self.identifiers
        base = ids[: self.threshold + 1]
        points = [self.verifying_shares[i] for i in base]

        def at(x: int) -> Point:
            coeffs = [lagrange_coefficient(self.group, i, base, at=x) for i in base]
            return self.group.multi_mul(list(zip(coeffs, points, strict=True)))

        if at(0) != self.group_public_key:
            raise InvalidParameters("verification shares do not match the group key")
        for j in ids[self.threshold + 1 :]:
            if at(int(j)) != self.verifying_shares[j]:
                raise InvalidParameters(f"verification share of {int(j)} is inconsistent")

    def _encode(self, enc: Encoder) -> Encoder:
        enc.count(self.threshold).point(self.group_public_key).count(len(self.verifying_shares))
        for i, p in self.verifying_shares.items():
            enc.identifier(i).point(p)
        return enc

    @staticmethod
    def _decode(dec: Decoder) -> PublicKeyPackage:
        threshold = dec.count("threshold", minimum=1)
        y = dec.point("group_public_key")
        n = dec.count("count", minimum=threshold + 1, maximum=MAX_PARTIES)
        shares: dict[Identifier, Point] = {}
        previous: Identifier | None = None
        for k in range(n):
            i = dec.identifier(f"identifier[{k}]")
            if previous is not None and not previous < i:
                raise EncodingError(f"identifier[{k}]", "not strictly increasing")
            previous = i
            shares[i] = dec.point(f"verifying_share[{k}]")
        return PublicKeyPackage(dec.group, y, shares, threshold)

    def to_bytes(self) -> bytes:
        return self._encode(Encoder(_PUBLIC_KIND, self.group)).finish()

    @classmethod
    def from_bytes(cls, data: bytes, group: Group | None = None) -> PublicKeyPackage:
        """Strict decoding, including :meth:`check_consistency`."""
        dec = Decoder(data, _PUBLIC_KIND, group)
        pkg = cls._decode(dec)
        dec.finish()
        try:
            pkg.check_consistency()
        except InvalidParameters as exc:
            raise EncodingError("public-key-package", str(exc)) from None
        return pkg


@dataclass(frozen=True, slots=True, eq=False)
class KeyShare:
    """One party's secret share plus the public package it belongs to."""

    identifier: Identifier
    secret_share: Scalar = field(repr=False)
    public: PublicKeyPackage

    def __post_init__(self) -> None:
        expected = self.public.verifying_shares.get(self.identifier)
        if expected is None:
            raise InvalidParameters("identifier not in the public key package")
        if self.secret_share.group is not self.public.group:
            raise InvalidParameters("secret share from a different group")
        if self.public.group.base_mul(self.secret_share) != expected:
            raise SecretError from None

    @property
    def group(self) -> Group:
        return self.public.group

    @property
    def group_public_key(self) -> Point:
        return self.public.group_public_key

    @property
    def verifying_shares(self) -> Mapping[Identifier, Point]:
        return self.public.verifying_shares

    @property
    def threshold(self) -> int:
        return self.public.threshold

    @property
    def verifying_share(self) -> Point:
        return self.public.verifying_shares[self.identifier]

    def __repr__(self) -> str:
        return f"KeyShare({self.group.name}, {int(self.identifier)}, <redacted>)"

    __str__ = __repr__

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("KeyShare is not picklable; seal it with to_sealable_bytes()")

    def to_sealable_bytes(self) -> bytes:
        """Plaintext for the sealing AEAD only (contains the secret share)."""
        enc = Encoder(_SEALED_KIND, self.group).identifier(self.identifier)
        enc.scalar(self.secret_share)
        return self.public._encode(enc).finish()

    @classmethod
    def from_sealed_bytes(cls, data: bytes) -> KeyShare:
        """Inverse of :meth:`to_sealable_bytes`; any defect is an opaque :class:`SecretError`."""
        try:
            dec = Decoder(data, _SEALED_KIND)
            ident = dec.identifier("identifier")
            secret = dec.scalar("secret_share")
            public = PublicKeyPackage._decode(dec)
            dec.finish()
            return cls(ident, secret, public)
        except (EncodingError, InvalidParameters):
            raise SecretError from None
