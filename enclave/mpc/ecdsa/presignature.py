"""Presignatures: the single-use output of presigning (DJNPO20 §4, with GS21 re-randomisation).

A presignature for party ``i`` holds, for the nonce ``k`` with ``R = k·G``:

* ``c_i``   — its degree-``t`` share of ``k^-1`` (``c_i = a_i · w^-1`` since ``w = a·k``);
* ``beta_i`` — its degree-``2t`` share of ``k^-1·x`` (``c_i · x_i``, the local product);
* ``e_i``   — its degree-``2t`` share of zero that masks the opened signature polynomial;

plus public data (:class:`PresignatureInfo`): ``R``, the fixed ``2t + 1`` party set, the key, and
the presignature id (a digest of the whole opened transcript, equal at every honest party).

Single use is enforced here: :meth:`Presignature.consume` hands the secret out once and drops
it from the object under a lock; a second call raises :class:`PresignatureReuse`. Two signatures
with one nonce would reveal the key, so there is no way to copy, pickle or serialise a
presignature (a node that must survive restarts stores presignatures only in sealed state and
deletes them on use, refresh, reshare and restore).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from enclave.mpc.errors import PresignatureReuse
from enclave.mpc.groups import Group, Point, Scalar
from enclave.mpc.identifiers import Identifier
from enclave.mpc.keys import PublicKeyPackage

__all__ = ["Presignature", "PresignatureInfo", "PresignatureSecret"]


@dataclass(frozen=True, slots=True)
class PresignatureInfo:
    """Public description of a presignature; what a combiner needs (no secret)."""

    public: PublicKeyPackage
    parties: tuple[Identifier, ...]
    session_id: bytes
    presignature_id: bytes
    big_r: Point

    @property
    def group(self) -> Group:
        return self.public.group

    @property
    def group_public_key(self) -> Point:
        return self.public.group_public_key


@dataclass(frozen=True, slots=True)
class PresignatureSecret:
    """The secret shares ``(c_i, beta_i, e_i)``; only ever obtained through ``consume``."""

    k_inv_share: Scalar = field(repr=False)
    k_inv_x_share: Scalar = field(repr=False)
    mask_share: Scalar = field(repr=False)

    def __repr__(self) -> str:
        return "PresignatureSecret(<redacted>)"

    def __reduce__(self) -> str:
        raise TypeError("presignature secrets are not picklable")


class Presignature:
    """Party ``identifier``'s single-use presignature."""

    __slots__ = ("_lock", "_secret", "identifier", "info")

    def __init__(
        self, identifier: Identifier, info: PresignatureInfo, secret: PresignatureSecret
    ) -> None:
        object.__setattr__(self, "identifier", identifier)
        object.__setattr__(self, "info", info)
        object.__setattr__(self, "_secret", secret)
        object.__setattr__(self, "_lock", threading.Lock())

    identifier: Identifier
    info: PresignatureInfo
    _secret: PresignatureSecret | None
    _lock: threading.Lock

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("a presignature's fields are fixed; its secret only leaves by consume")

    @property
    def consumed(self) -> bool:
        return self._secret is None

    def consume(self) -> PresignatureSecret:
        """Take the secret shares out, exactly once; the object keeps no reference to them."""
        with self._lock:
            secret = self._secret
            object.__setattr__(self, "_secret", None)
        if secret is None:
            raise PresignatureReuse("this presignature has already been used")
        return secret

    def discard(self) -> None:
        """Drop the secret without signing (refresh, reshare, restore, or an abandoned request)."""
        with self._lock:
            object.__setattr__(self, "_secret", None)

    def __repr__(self) -> str:
        state = "consumed" if self.consumed else "unused"
        return (
            f"Presignature(party={int(self.identifier)}, "
            f"id={self.info.presignature_id.hex()}, {state}, <redacted>)"
        )

    def __reduce__(self) -> str:
        raise TypeError("presignatures are not picklable")

    def __copy__(self) -> Presignature:
        raise TypeError("presignatures cannot be copied")

    def __deepcopy__(self, memo: object) -> Presignature:
        raise TypeError("presignatures cannot be copied")
