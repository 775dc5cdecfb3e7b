"""Key shares in the node's sealed state: blob ``key-<name>`` holds ``KeyShare.to_sealable_bytes``.

The share is sealed (and the manifest rewritten) BEFORE a node reports a key as created, so a
reported key survives a restart. Shares are loaded lazily and cached for this boot only.
"""

from __future__ import annotations

from typing import Protocol

from enclave.mpc.frost.ciphersuite import FROST_ED25519_SHA512, FROST_SECP256K1_SHA256, Ciphersuite
from enclave.mpc.groups import ED25519, SECP256K1, Group
from enclave.mpc.keys import KeyShare
from enclave.service.errors import KeyExistsError, UnknownKeyError

__all__ = ["FROST_SUITES", "GROUPS", "KeyStore", "suite_name"]

GROUPS: dict[str, Group] = {"ed25519": ED25519, "secp256k1": SECP256K1}
#: The FROST ciphersuite each key suite signs with (RFC 9591; secp256k1 in RFC 9591's format).
FROST_SUITES: dict[str, Ciphersuite] = {
    "ed25519": FROST_ED25519_SHA512,
    "secp256k1": FROST_SECP256K1_SHA256,
}


def suite_name(group: Group) -> str:
    for name, candidate in GROUPS.items():
        if candidate is group:
            return name
    raise ValueError(f"no key suite for group {group.name}")


class SealedBlobs(Protocol):
    async def get(self, name: str) -> bytes | None: ...
    async def put(self, name: str, plaintext: bytes) -> int: ...


def _blob(name: str) -> str:
    return f"key-{name}"


class KeyStore:
    def __init__(self, store: SealedBlobs) -> None:
        self._store = store
        self._cache: dict[str, KeyShare] = {}

    async def exists(self, name: str) -> bool:
        return name in self._cache or await self._store.get(_blob(name)) is not None

    async def load(self, name: str) -> KeyShare:
        cached = self._cache.get(name)
        if cached is not None:
            return cached
        sealed = await self._store.get(_blob(name))
        if sealed is None:
            raise UnknownKeyError(name)
        share = KeyShare.from_sealed_bytes(sealed)
        self._cache[name] = share
        return share

    async def save(self, name: str, share: KeyShare) -> None:
        if await self.exists(name):
            raise KeyExistsError(name)
        await self._store.put(_blob(name), share.to_sealable_bytes())
        self._cache[name] = share
