"""Random sources for MPC tests: seeded (reproducible) and OS-backed.

The MPC core takes randomness as a parameter (``enclave.mpc.randomness.RandomSource``); tests
use :class:`SeededRandom` so a failing case replays exactly. Never use it outside tests.
"""

from __future__ import annotations

import hashlib
import secrets


class SeededRandom:
    """A deterministic byte stream: SHAKE-256(seed || counter) blocks. Tests only."""

    def __init__(self, seed: bytes | int | str = b"keyshard-test") -> None:
        if isinstance(seed, int):
            seed = seed.to_bytes(16, "big", signed=True)
        elif isinstance(seed, str):
            seed = seed.encode()
        self._seed = seed
        self._counter = 0

    def random_bytes(self, n: int) -> bytes:
        self._counter += 1
        xof = hashlib.shake_256(self._seed + self._counter.to_bytes(8, "big"))
        return xof.digest(n)


class OsRandom:
    """``secrets``-backed source, as the runtime would pass."""

    def random_bytes(self, n: int) -> bytes:
        return secrets.token_bytes(n)


class FixedBytes:
    """Returns pre-recorded byte strings in order (to replay test-vector randomness)."""

    def __init__(self, *chunks: bytes) -> None:
        self._chunks = list(chunks)

    def random_bytes(self, n: int) -> bytes:
        chunk = self._chunks.pop(0)
        assert len(chunk) == n, f"vector randomness has {len(chunk)} bytes, asked for {n}"
        return chunk
