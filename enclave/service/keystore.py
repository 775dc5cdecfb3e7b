"""Key shares in the node's sealed state: blob ``key-<name>``.

The blob is canonical CBOR ``{"v": 2, "share": KeyShare.to_sealable_bytes, "policy": bytes,
"suite": str, "nodes": [node ids]}`` (``policy`` empty: none; ``nodes`` the DKG's participants in
identifier order, empty when unknown), so a key's approval policy, its signature scheme and its
holders are sealed in the same AEAD-protected blob as its share — the untrusted host cannot drop
or swap one without the other. Blobs written before policies existed (the bare share encoding,
which never starts with a CBOR map byte) still load: no policy, the group's FROST suite, holders
unknown (such keys cannot presign for ECDSA, which they never were).

The share is sealed (and the manifest rewritten) BEFORE a node reports a key as created, so a
reported key survives a restart. Shares are loaded lazily and cached for this boot only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import cbor2

from enclave.mpc.errors import SecretError
from enclave.mpc.frost.ciphersuite import FROST_ED25519_SHA512, FROST_SECP256K1_SHA256, Ciphersuite
from enclave.mpc.groups import ED25519, SECP256K1, Group
from enclave.mpc.keys import KeyShare
from enclave.service.errors import KeyExistsError, MalformedMessageError, UnknownKeyError
from enclave.service.policy import ApprovalPolicy

__all__ = ["ECDSA_SUITE", "FROST_SUITES", "GROUPS", "KeyStore", "StoredKey", "suite_name"]

#: Threshold ECDSA (DJNPO20, :mod:`enclave.mpc.ecdsa`): a secp256k1 key never used for FROST.
ECDSA_SUITE = "ecdsa-secp256k1"
GROUPS: dict[str, Group] = {"ed25519": ED25519, "secp256k1": SECP256K1, ECDSA_SUITE: SECP256K1}
#: The FROST ciphersuite each key suite signs with (RFC 9591; secp256k1 in RFC 9591's format).
FROST_SUITES: dict[str, Ciphersuite] = {
    "ed25519": FROST_ED25519_SHA512,
    "secp256k1": FROST_SECP256K1_SHA256,
}


def suite_name(group: Group) -> str:
    """The FROST suite of ``group`` (for shares sealed before the suite was recorded)."""
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
_RECORD_FIELDS = frozenset({"v", "share", "policy", "suite", "nodes"})


@dataclass(frozen=True, slots=True)
class StoredKey:
    """One key as sealed on this node (``share`` is secret; the rest public)."""

    share: KeyShare
    policy: ApprovalPolicy | None
    suite: str
    nodes: tuple[str, ...]

    def __repr__(self) -> str:
        return f"StoredKey({self.suite}, nodes={self.nodes}, share=<redacted>)"


def _encode(key: StoredKey) -> bytes:
    record = {
        "v": _RECORD_VERSION,
        "share": key.share.to_sealable_bytes(),
        "policy": b"" if key.policy is None else key.policy.encode(),
        "suite": key.suite,
        "nodes": list(key.nodes),
    }
    return cbor2.dumps(record, canonical=True)


def _decode(sealed: bytes) -> StoredKey:
    """Opaque on any defect (the plaintext holds the share)."""
    if not sealed or sealed[0] >> 5 != 5:  # not a CBOR map: a share sealed before policies
        share = KeyShare.from_sealed_bytes(sealed)
        return StoredKey(share, None, suite_name(share.group), ())
    try:
        record: Any = cbor2.loads(sealed)
        if (
            not isinstance(record, dict)
            or set(record) != _RECORD_FIELDS
            or record["v"] != _RECORD_VERSION
            or type(record["share"]) is not bytes
            or type(record["policy"]) is not bytes
            or record["suite"] not in GROUPS
            or not isinstance(record["nodes"], list)
            or not all(type(n) is str for n in record["nodes"])
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
    share = KeyShare.from_sealed_bytes(record["share"])
    if share.group is not GROUPS[record["suite"]]:
        raise SecretError
    return StoredKey(share, policy, record["suite"], tuple(record["nodes"]))


class KeyStore:
    def __init__(self, store: SealedBlobs) -> None:
        self._store = store
        self._cache: dict[str, StoredKey] = {}

    async def exists(self, name: str) -> bool:
        return name in self._cache or await self._store.get(_blob(name)) is not None

    async def stored(self, name: str) -> StoredKey:
        cached = self._cache.get(name)
        if cached is not None:
            return cached
        sealed = await self._store.get(_blob(name))
        if sealed is None:
            raise UnknownKeyError(name)
        record = self._cache[name] = _decode(sealed)
        return record

    async def load(self, name: str) -> KeyShare:
        return (await self.stored(name)).share

    async def policy(self, name: str) -> ApprovalPolicy | None:
        """The approval policy sealed with the key (``None``: the key needs no approvals)."""
        return (await self.stored(name)).policy

    async def save(self, name: str, key: StoredKey) -> None:
        if await self.exists(name):
            raise KeyExistsError(name)
        await self._store.put(_blob(name), _encode(key))
        self._cache[name] = key
