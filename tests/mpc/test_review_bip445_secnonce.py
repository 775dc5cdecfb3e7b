"""Review finding: a consumed BIP-445 ``SecNonce`` must not serialise to a usable nonce.

``SecNonce.to_bytes`` / ``from_bytes`` exist for the sealed store. After ``consume`` the object
kept ``k1 = k2 = 1`` and ``to_bytes`` still answered, so a node that (re)sealed a used nonce — or
any caller that serialised it after signing — got ``00..01 || 00..01`` back, which ``from_bytes``
accepts. Signing with that restored nonce uses the *public* nonce ``k = 1``: the partial signature
``s = k1 + b*k2 + e*lambda*d`` then hands out the secret share ``d``. The fix makes a consumed
nonce refuse to serialise (``NonceReuse``), as it refuses a second ``consume``.
"""

from __future__ import annotations

import pytest

from enclave.mpc.errors import NonceReuse
from enclave.mpc.frost.bip340 import SecNonce
from enclave.mpc.groups import SECP256K1

from .rng import SeededRandom

G = SECP256K1


def _fresh() -> SecNonce:
    rng = SeededRandom("review-secnonce")
    return SecNonce(G.random_scalar(rng), G.random_scalar(rng))


def test_unused_secnonce_round_trips_through_bytes() -> None:
    nonce = _fresh()
    data = nonce.to_bytes()
    restored = SecNonce.from_bytes(data)
    assert restored.pubnonce == nonce.pubnonce
    assert restored.to_bytes() == data


def test_consumed_secnonce_refuses_to_serialise() -> None:
    nonce = _fresh()
    nonce.consume()
    with pytest.raises(NonceReuse):
        nonce.to_bytes()
