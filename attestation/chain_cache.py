"""A bounded cache of verified certificate chains that never outlives their validity.

Verifying a chain costs one P-384 signature check per link; a stream of documents from one
enclave presents the same chain again and again. The cache maps a hash of the chain's DER bytes to
the verified result together with the intersection of its certificates' validity windows. A lookup
at an instant outside that window is a miss, so the caller re-verifies from scratch and gets the
precise error (an expired certificate is never served from the cache). Entries are evicted least
recently used once ``max_entries`` is reached.

Keys are SHA-256 over length-prefixed, domain-separated DER (see :func:`chain_key`): equal keys
mean byte-identical chains, and a verification result depends only on those bytes, the instant and
the verifier's pinned roots (which is why each verifier owns its caches).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["ChainCache", "ValidityWindow", "chain_key"]

V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class ValidityWindow:
    """A closed interval ``[not_before, not_after]`` of aware UTC datetimes."""

    not_before: _dt.datetime
    not_after: _dt.datetime

    def contains(self, instant: _dt.datetime) -> bool:
        return self.not_before <= instant <= self.not_after

    def intersect(self, other: ValidityWindow) -> ValidityWindow:
        return ValidityWindow(
            max(self.not_before, other.not_before), min(self.not_after, other.not_after)
        )


def chain_key(label: bytes, parts: Iterable[bytes]) -> bytes:
    """SHA-256 over ``label`` and each part prefixed with its 4-byte length (no ambiguity)."""
    digest = hashlib.sha256(b"keyshard/attestation/" + label + b"\x00")
    for part in parts:
        digest.update(len(part).to_bytes(4, "big"))
        digest.update(part)
    return digest.digest()


class ChainCache(Generic[V]):
    """LRU map ``key -> (window, value)`` whose lookups honour the window. Thread-safe."""

    def __init__(self, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max_entries = max_entries
        self._entries: OrderedDict[bytes, tuple[ValidityWindow, V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: bytes, instant: _dt.datetime) -> V | None:
        """The cached value if present and ``instant`` lies inside its window, else ``None``."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            window, value = entry
            if not window.contains(instant):
                return None
            self._entries.move_to_end(key)
            return value

    def put(self, key: bytes, window: ValidityWindow, value: V) -> None:
        with self._lock:
            self._entries[key] = (window, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
