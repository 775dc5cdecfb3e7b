"""Key shares in the node's sealed state: blob ``key-<name>``.

The blob is canonical CBOR ``{"v": 2, "share": KeyShare.to_sealable_bytes, "policy": bytes}``
(``policy`` empty: none), so a key's approval policy is sealed in the same AEAD-protected blob as
its share — the untrusted host cannot drop or swap one without the other. Blobs written before
policies existed (the bare share encoding, which never starts with a CBOR map byte) still load,
with no policy.

The share is sealed (and the manifest rewritten) BEFORE a node reports a key as created, so a
reported key survives a restart. Shares are loaded lazily and cached for this boot only.
"""

from __future__ import annotations

from typing import Any, Protocol

import cbor2

from enclave.mpc.errors import SecretError
from enclave.mpc.frost.ciphersuite import FROST_ED25519_SHA512, FROST_SECP256K1_SHA256, Ciphersuite
from enclave.mpc.groups import ED25519, SECP256K1, Group
from enclave.mpc.keys import KeyShare
from enclave.service.errors import KeyExistsError, MalformedMessageError, UnknownKeyError
from enclave.service.policy import ApprovalPolicy

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


_RECORD_VERSION = 2


def _encode(share: KeyShare, policy: ApprovalPolicy | None) -> bytes:
    record = {
        "v": _RECORD_VERSION,
        "share": share.to_sealable_bytes(),
        "policy": b"" if policy is None else policy.encode(),
    }
    return cbor2.dumps(record, canonical=True)


def _decode(sealed: bytes) -> tuple[KeyShare, ApprovalPolicy | None]:
    """Opaque on any defect (the plaintext holds the share)."""
    if not sealed or sealed[0] >> 5 != 5:  # not a CBOR map: a share sealed before policies
        return KeyShare.from_sealed_bytes(sealed), None
    try:
        record: Any = cbor2.loads(sealed)
        if (
            not isinstance(record, dict)
            or set(record) != {"v", "share", "policy"}
            or record["v"] != _RECORD_VERSION
            or type(record["share"]) is not bytes
            or type(record["policy"]) is not bytes
        ):
            raise SecretError
        policy = ApprovalPolicy.decode(record["policy"]) if record["policy"] else None
    except (
        cbor2.CBORDecodeError,
        ValueError,
        TypeError,
        EOFError,
        RecursionError,
        MalformedMessageError,
    ):
        raise SecretError from None
    return KeyShare.from_sealed_bytes(record["share"]), policy


class KeyStore:
    def __init__(self, store: SealedBlobs) -> None:
        self._store = store
        self._cache: dict[str, tuple[KeyShare, ApprovalPolicy | None]] = {}

    async def exists(self, name: str) -> bool:
        return name in self._cache or await self._store.get(_blob(name)) is not None

    async def _record(self, name: str) -> tuple[KeyShare, ApprovalPolicy | None]:
        cached = self._cache.get(name)
        if cached is not None:
            return cached
        sealed = await self._store.get(_blob(name))
        if sealed is None:
            raise UnknownKeyError(name)
        record = self._cache[name] = _decode(sealed)
        return record

    async def load(self, name: str) -> KeyShare:
        return (await self._record(name))[0]

    async def policy(self, name: str) -> ApprovalPolicy | None:
        """The approval policy sealed with the key (``None``: the key needs no approvals)."""
        return (await self._record(name))[1]

    async def save(self, name: str, share: KeyShare, policy: ApprovalPolicy | None = None) -> None:
        if await self.exists(name):
            raise KeyExistsError(name)
        await self._store.put(_blob(name), _encode(share, policy))
        self._cache[name] = (share, policy)
