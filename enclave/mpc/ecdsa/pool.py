"""A party's in-memory pool of unused presignatures, keyed by presignature id.

The pool is where single use meets operations: :meth:`PresignaturePool.take` removes the
presignature before handing it out (so two concurrent requests for one id cannot both get it),
and :meth:`PresignaturePool.discard_all` empties the pool when the key's shares change (refresh,
reshare, restore from a backup) — presignatures hold ``c_i·x_i`` for the old share and, after a
restore, might already have been used. Persistence (sealed state) belongs to the node runtime.
"""

from __future__ import annotations

import threading

from enclave.mpc.ecdsa.presignature import Presignature
from enclave.mpc.errors import InvalidParameters, PresignatureReuse

__all__ = ["PresignaturePool"]


class PresignaturePool:
    """Unused presignatures of one party for one key."""

    __slots__ = ("_items", "_lock", "_used")

    def __init__(self) -> None:
        self._items: dict[bytes, Presignature] = {}
        self._used: set[bytes] = set()
        self._lock = threading.Lock()

    def add(self, presignature: Presignature) -> None:
        """Add a fresh presignature; an id seen before (stored or used) is refused."""
        pid = presignature.info.presignature_id
        with self._lock:
            if presignature.consumed or pid in self._used:
                raise PresignatureReuse("this presignature has already been used")
            if pid in self._items:
                raise InvalidParameters("a presignature with this id is already in the pool")
            self._items[pid] = presignature

    def take(self, presignature_id: bytes) -> Presignature:
        """Remove and return the presignature; a used id raises, an unknown one is a misuse."""
        with self._lock:
            if presignature_id in self._used:
                raise PresignatureReuse("this presignature has already been used")
            presignature = self._items.pop(presignature_id, None)
            if presignature is None:
                raise InvalidParameters("no such presignature in the pool")
            self._used.add(presignature_id)
            return presignature

    def discard_all(self) -> int:
        """Drop every unused presignature (their secrets are released); returns how many."""
        with self._lock:
            items, self._items = self._items, {}
            self._used.update(items)
        for presignature in items.values():
            presignature.discard()
        return len(items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"PresignaturePool({len(self._items)} unused)"
