"""The randomness seam of the MPC core.

``enclave.mpc`` never reads OS randomness itself: every function that needs random bytes takes a
:class:`RandomSource`. The enclave runtime passes one backed by the NSM / ``secrets``; tests pass
a seeded one so that runs are reproducible. Protocols that must stay safe even with a weak source
(FROST nonces) hedge it with secret key material as RFC 9591 §4.1 prescribes.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["RandomSource"]


@runtime_checkable
class RandomSource(Protocol):
    """A source of uniformly random bytes, cryptographically strong in production."""

    def random_bytes(self, n: int) -> bytes:
        """Return exactly ``n`` uniformly random bytes."""
        ...
