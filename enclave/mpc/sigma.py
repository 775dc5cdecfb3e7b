"""The one encoding of a Fiat-Shamir sigma-protocol proof: challenge ``c`` and response ``z``.

Chaum-Pedersen DLEQ proofs (:mod:`enclave.mpc.dleq`) and the encryptor's proof of knowledge of
an ephemeral exponent (:mod:`enclave.mpc.decryption.pok`) both travel as ``c || z``, each the
group's canonical scalar encoding (RFC 9497's proof layout). Both values are public.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self

from enclave.mpc.errors import EncodingError, InvalidParameters
from enclave.mpc.groups import Group, Scalar

__all__ = ["ChallengeResponse"]


@dataclass(frozen=True, slots=True)
class ChallengeResponse:
    """A proof ``(c, z)``; subclasses name what it proves."""

    #: How decoding errors name the field.
    FIELD: ClassVar[str] = "proof"

    challenge: Scalar
    response: Scalar

    def __post_init__(self) -> None:
        if self.challenge.group is not self.response.group:
            raise InvalidParameters(f"{self.FIELD} mixes groups")

    @property
    def group(self) -> Group:
        return self.challenge.group

    def to_bytes(self) -> bytes:
        """``c || z``, each the group's canonical scalar encoding."""
        return self.challenge.to_bytes() + self.response.to_bytes()

    @classmethod
    def from_bytes(cls, group: Group, data: bytes) -> Self:
        """Strict decoding: exactly two canonical scalars (each < q)."""
        n = group.scalar_length
        if len(data) != 2 * n:
            raise EncodingError(cls.FIELD, f"expected {2 * n} bytes, got {len(data)}")
        return cls(group.decode_scalar(data[:n]), group.decode_scalar(data[n:]))
