"""Domain-separated hashing for the MPC protocols (everything except the RFC-fixed FROST hashes).

Every hash input is ``lp_join(PREFIX, domain, suite, fields...)`` (see ``encoding.lp_join``):
the project prefix and the domain (protocol + purpose) separate uses, the suite name separates
groups, and length prefixes make the field list unambiguous. A :class:`Transcript` accumulates
labelled fields of one protocol run (protocol, suite, session id, then per-party data), so a
challenge or a view hash commits to everything that preceded it.

SHA-512 gives 64 bytes, which :meth:`Group.scalar_from_digest` reduces with negligible bias.
"""

from __future__ import annotations

import hashlib

from enclave.mpc.encoding import lp, lp_join
from enclave.mpc.groups import Group, Scalar

__all__ = ["PREFIX", "Transcript", "hash_to_scalar"]

PREFIX = b"keyshard/mpc/v1"


def hash_to_scalar(group: Group, domain: bytes, *fields: bytes) -> Scalar:
    """A scalar from SHA-512 over the domain-separated, length-prefixed fields."""
    digest = hashlib.sha512(lp_join((PREFIX, domain, group.name.encode(), *fields))).digest()
    return group.scalar_from_digest(digest)


class Transcript:
    """An append-only, domain-separated hash of one protocol run."""

    __slots__ = ("_group", "_hash")

    def __init__(self, protocol: bytes, group: Group, session_id: bytes) -> None:
        self._group = group
        self._hash = hashlib.sha512(lp_join((PREFIX, protocol, group.name.encode(), session_id)))

    def append(self, label: bytes, data: bytes) -> None:
        """Absorb one labelled field."""
        self._hash.update(lp(label) + lp(data))

    def copy(self) -> Transcript:
        clone = Transcript.__new__(Transcript)
        clone._group = self._group
        clone._hash = self._hash.copy()
        return clone

    def digest(self) -> bytes:
        """64-byte digest of everything absorbed so far (the transcript stays usable)."""
        return self._hash.copy().digest()

    def challenge(self, label: bytes) -> Scalar:
        """A scalar challenge bound to the whole transcript and ``label``."""
        h = self._hash.copy()
        h.update(lp(b"challenge") + lp(label))
        return self._group.scalar_from_digest(h.digest())
