"""The randomness seam of the MPC core.

``enclave.mpc`` never reads OS randomness itself: every function that needs random bytes takes a
:class:`RandomSource`. The enclave runtime passes one backed by the NSM / ``secrets``; tests pass
a seeded one so that runs are reproducible. Protocols that must stay safe even with a weak source
(FROST nonces) hedge it with secret key material as RFC 9591 §4.1 prescribes.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from enclave.mpc.errors import MisuseError

__all__ = ["RandomSource", "draw"]


@runtime_checkable
class RandomSource(Protocol):
    """A source of uniformly random bytes, cryptographically strong in production."""

    def random_bytes(self, n: int) -> bytes:
        """Return exactly ``n`` uniformly random bytes."""
        ...


def draw(rng: RandomSource, n: int) -> bytes:
    """Exactly ``n`` bytes from ``rng``, or :class:`MisuseError`.

    Every secret in ``enclave.mpc`` is drawn through here. A source that returns fewer bytes
    (a truncated NSM answer, an empty read) would otherwise weaken secrets silently: a FROST nonce
    ``H3(random || share)`` with no random part repeats in every session.
    """
    data = rng.random_bytes(n)
    if type(data) is not bytes or len(data) != n:
        raise MisuseError(f"the random source returned {len(data)} bytes, not {n}")
    return data
