"""The public parameters of one presigning run, checked once before any arithmetic.

Honest-majority threshold ECDSA (DJNPO20) multiplies two degree-``t`` sharings, which gives a
degree-``2t`` sharing; opening it needs ``2t + 1`` shares. Hence:

* the key must be shared among ``n >= 2t + 1`` parties (refused otherwise: with fewer, ``t + 1``
  corrupted parties would be needed to block and ``t`` could already break secrecy);
* exactly ``2t + 1`` of them presign, and the *same* ``2t + 1`` later sign with that
  presignature — the set is fixed here and recorded in the presignature.

Threshold convention (as everywhere in ``enclave.mpc``): ``t`` is the polynomial degree of the key
sharing, so ``t`` corrupted parties learn nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from enclave.mpc.errors import InvalidParameters
from enclave.mpc.groups import SECP256K1, Group, Point
from enclave.mpc.identifiers import Identifier, validate_identifiers
from enclave.mpc.keys import PublicKeyPackage

__all__ = ["MAX_SESSION_ID_LENGTH", "MIN_SESSION_ID_LENGTH", "PresignContext"]

MIN_SESSION_ID_LENGTH = 16
MAX_SESSION_ID_LENGTH = 64


@dataclass(frozen=True, slots=True)
class PresignContext:
    """Who presigns, for which key, in which session.

    ``session_id`` must be unique per presigning run (the driver picks it, e.g. 32 random bytes
    agreed by the coordinator); it is bound into every message and into the presignature id.
    """

    public: PublicKeyPackage
    parties: tuple[Identifier, ...]
    session_id: bytes

    @classmethod
    def create(
        cls, public: PublicKeyPackage, parties: Iterable[Identifier], session_id: bytes
    ) -> PresignContext:
        return cls(public, validate_identifiers(public.group, parties), bytes(session_id))

    def __post_init__(self) -> None:
        group = self.public.group
        if group is not SECP256K1:
            raise InvalidParameters("threshold ECDSA is implemented for secp256k1 only")
        t = self.public.threshold
        n = len(self.public.verifying_shares)
        if n < 2 * t + 1:
            raise InvalidParameters(f"honest-majority ECDSA needs n >= 2t+1 parties (t={t}, n={n})")
        parties = validate_identifiers(group, self.parties)
        if parties != self.parties:
            raise InvalidParameters("the party set must be given sorted")
        if len(parties) != 2 * t + 1:
            raise InvalidParameters(f"exactly 2t+1 = {2 * t + 1} parties presign and sign")
        unknown = [i for i in parties if i not in self.public.verifying_shares]
        if unknown:
            raise InvalidParameters("a presigning party does not hold a share of the key")
        if not MIN_SESSION_ID_LENGTH <= len(self.session_id) <= MAX_SESSION_ID_LENGTH:
            raise InvalidParameters(
                f"session id must be {MIN_SESSION_ID_LENGTH}..{MAX_SESSION_ID_LENGTH} bytes"
            )

    @property
    def group(self) -> Group:
        return self.public.group

    @property
    def threshold(self) -> int:
        return self.public.threshold

    @property
    def group_public_key(self) -> Point:
        return self.public.group_public_key

    def others(self, me: Identifier) -> tuple[Identifier, ...]:
        """The parties ``me`` exchanges messages with (``me`` must be one of the parties)."""
        if me not in self.parties:
            raise InvalidParameters("this party is not in the presigning set")
        return tuple(i for i in self.parties if i != me)
