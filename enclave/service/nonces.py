"""Preprocessed FROST nonces on one node: committed ahead of time, each used at most once.

RFC 9591 §5.1 may run before the message is known: a signer publishes commitments, keeps the
nonces, and later signs any package that carries one of its commitments. So a signature costs one
request per signer (``frost_sign``) instead of two, and a client asks for nonces in batches
(``nonce_commit``).

Single use: :meth:`FrostNonces.take` removes the nonces from the table BEFORE anything else is
checked, so whatever follows — success, a refused approval, a malformed package — the nonces are
gone and can never sign twice (the MPC core's ``SigningNonces`` also refuses a second use). Nonces
live in memory only: a restart forgets them, which is safe (commitments without nonces can only
fail, and the client then asks for fresh ones). Each key keeps at most :data:`MAX_PER_KEY`
(oldest dropped first) so a client cannot exhaust memory; nonces are tied to the share they were
made for, and :meth:`forget` drops a key's nonces when its shares change.
"""

from __future__ import annotations

from collections import OrderedDict

from enclave.mpc.frost.ciphersuite import Ciphersuite
from enclave.mpc.frost.round1 import (
    PREPROCESSED_SESSION_ID,
    SigningCommitments,
    SigningNonces,
    commit,
)
from enclave.mpc.keys import KeyShare
from enclave.mpc.randomness import RandomSource
from enclave.service.errors import NonceUnknownError

__all__ = ["MAX_PER_KEY", "NONCE_CHUNK", "FrostNonces"]

MAX_PER_KEY = 4096
#: Nonce pairs the handler commits between two yields to the event loop (a batch of 64 is ~10 ms
#: of point multiplications, which a signature waiting behind it should not pay at once).
NONCE_CHUNK = 8


def _slot(commitments: SigningCommitments) -> bytes:
    return commitments.to_bytes()


class FrostNonces:
    """The preprocessed nonces of every key on this node."""

    def __init__(self, max_per_key: int = MAX_PER_KEY) -> None:
        self._max = max_per_key
        self._keys: dict[str, OrderedDict[bytes, SigningNonces]] = {}

    def preprocess(
        self, key_name: str, suite: Ciphersuite, share: KeyShare, count: int, rng: RandomSource
    ) -> list[bytes]:
        """Commit ``count`` fresh nonce pairs for ``key_name``; their encoded commitments."""
        table = self._keys.setdefault(key_name, OrderedDict())
        published = []
        for _ in range(count):
            nonces, commitments = commit(suite, share, PREPROCESSED_SESSION_ID, rng)
            encoded = _slot(commitments)
            table[encoded] = nonces
            published.append(encoded)
        while len(table) > self._max:
            table.popitem(last=False)
        return published

    def take(self, key_name: str, commitments: SigningCommitments) -> SigningNonces:
        """Remove and return the nonces behind ``commitments``: single use, whatever follows."""
        nonces = self._keys.get(key_name, OrderedDict()).pop(_slot(commitments), None)
        if nonces is None:
            raise NonceUnknownError(f"no unused preprocessed nonce of key {key_name!r} matches")
        return nonces

    def available(self, key_name: str) -> int:
        return len(self._keys.get(key_name, ()))

    def forget(self, key_name: str) -> None:
        """Drop every nonce of ``key_name`` (its shares changed, or it is gone)."""
        self._keys.pop(key_name, None)
