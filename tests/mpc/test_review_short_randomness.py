"""Review finding: a randomness source that returns the wrong number of bytes is refused.

``RandomSource.random_bytes(n)`` promises exactly ``n`` bytes, and nothing checked it. A broken
source (an NSM answer cut short, an empty read) then silently weakened every secret drawn from it:
FROST nonces became ``H3(secret)`` alone — the same nonce in every session, which reveals the
share after two signatures — uniform scalars were drawn from fewer than 64 bytes, and a source
returning ``b""`` made ``random_scalar`` loop forever. Every draw now goes through one checked
accessor and raises :class:`MisuseError`.
"""

from __future__ import annotations

import pytest

from enclave.mpc.dleq import DleqStatement, ProofContext, prove
from enclave.mpc.errors import MisuseError
from enclave.mpc.frost.ciphersuite import FROST_ED25519_SHA512
from enclave.mpc.frost.round1 import commit
from enclave.mpc.groups import ED25519, SECP256K1
from enclave.mpc.identifiers import Identifier
from enclave.mpc.keys import KeyShare, PublicKeyPackage
from enclave.mpc.shamir import split_secret

from .rng import SeededRandom


class Short:
    """Returns ``n - missing`` bytes (``missing = n``: nothing at all)."""

    def __init__(self, missing: int | None = None) -> None:
        self._missing = missing
        self._inner = SeededRandom("review-short")

    def random_bytes(self, n: int) -> bytes:
        missing = n if self._missing is None else self._missing
        return self._inner.random_bytes(n)[: n - missing]


def _ed25519_share() -> KeyShare:
    rng = SeededRandom("review-short-key")
    ids = [Identifier(ED25519, i) for i in (1, 2, 3)]
    shares, poly = split_secret(ED25519, ED25519.random_scalar(rng), 1, ids, rng)
    c = poly.commitments()
    public = PublicKeyPackage(ED25519, c.constant, {i: c.evaluate(i) for i in ids}, 1)
    return KeyShare(ids[0], shares[ids[0]], public)


@pytest.mark.parametrize("source", [Short(), Short(1)], ids=["empty", "one-short"])
def test_frost_commit_refuses_a_short_source(source: Short) -> None:
    with pytest.raises(MisuseError, match="random"):
        commit(FROST_ED25519_SHA512, _ed25519_share(), b"session", source)


@pytest.mark.parametrize("group", [SECP256K1, ED25519], ids=lambda g: g.name)
def test_random_scalar_refuses_a_short_source(group: object) -> None:
    with pytest.raises(MisuseError, match="random"):
        group.random_scalar(Short(1))  # type: ignore[attr-defined]
    with pytest.raises(MisuseError, match="random"):
        group.random_scalar(Short())  # type: ignore[attr-defined]


def test_dleq_prove_refuses_a_short_source() -> None:
    g = SECP256K1
    k = g.random_scalar(SeededRandom(1))
    other = g.base_mul(g.random_scalar(SeededRandom(2)))
    statement = DleqStatement(g.generator(), g.base_mul(k), other, other * k)
    context = ProofContext(b"review", b"session", Identifier(g, 1))
    with pytest.raises(MisuseError, match="random"):
        prove(k, statement, context, Short(1))


def test_an_honest_source_still_works() -> None:
    nonces, commitments = commit(
        FROST_ED25519_SHA512, _ed25519_share(), b"session", SeededRandom(3)
    )
    assert nonces.commitments == commitments
