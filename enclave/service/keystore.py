"""Key shares in the node's sealed state: blob ``key-<name>``.

The blob is canonical CBOR ``{"v": 2, "share": KeyShare.to_sealable_bytes, "policy": bytes,
"suite": str, "nodes": [node ids]}`` (``policy`` empty: none; ``nodes`` the DKG's participants in
identifier order, empty when unknown), so a key's approval policy, its suite and its holders are
sealed in the same AEAD-protected blob as its share — the untrusted host cannot drop or swap one
without the other. Blobs written before policies existed (the bare share encoding, which never
starts with a CBOR map byte) still load: no policy, the group's FROST suite, holders unknown.

Two-phase creation (:mod:`enclave.service.dkg`): a share is first sealed ``pending`` with the
enclave's clock at sealing (record version 3: ``"pending": bool, "created": UTC seconds``) and
becomes usable only when :meth:`KeyStore.activate` reseals it committed. A pending key serves
nothing; one older than :data:`PENDING_TIMEOUT` is abandoned: a new creation may take its name.
Version-2 records (before two phases) are committed keys.

A key's ``epoch`` counts how often its shares changed (refresh, reshare); a key as created is at
epoch 0, and records without an ``epoch`` field are at epoch 0. Clients cache a key's description
per epoch.

The share is sealed (and the manifest rewritten) BEFORE a node reports a key as created, so a
reported key survives a restart. Shares are loaded lazily and cached for this boot only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from enclave.mpc.errors import MpcError, SecretError
from enclave.mpc.keys import KeyShare
from enclave.mpc.suites import KEY_SUITES, KeySuite, suite_of_group
from enclave.service.errors import KeyExistsError, KeyPendingError, UnknownKeyError
from wire import cbor
from wire.approvals import ApprovalPolicy
from wire.errors import MalformedMessageError

__all__ = ["KEY_BLOB_PREFIX", "PENDING_TIMEOUT", "KeyStore", "SealedBlobs", "StoredKey"]

KEY_BLOB_PREFIX = "key-"
#: Seconds a created key may stay pending (not committed by every participant) before a new
#: creation may take its name.
PENDING_TIMEOUT = 600


class SealedBlobs(Protocol):
    """The node's sealed store (:class:`enclave.sealing.SealedStore`), as the service uses it."""

    @property
    def versions(self) -> Mapping[str, int]: ...
    @property
    def epoch(self) -> int: ...
    async def get(self, name: str) -> bytes | None: ...
    async def put(self, name: str, plaintext: bytes) -> int: ...


def _blob(name: str) -> str:
    return f"{KEY_BLOB_PREFIX}{name}"


_RECORD_VERSION = 3
_V2_FIELDS = frozenset({"v", "share", "policy", "suite", "nodes"})
_RECORD_FIELDS = _V2_FIELDS | {"pending", "created"}


@dataclass(frozen=True, slots=True)
class StoredKey:
    """One key as sealed on this node (``share`` is secret; the rest public)."""

    share: KeyShare
    policy: ApprovalPolicy | None
    suite: KeySuite
    nodes: tuple[str, ...]
    epoch: int = 0
    pending: bool = False
    created: int = 0  # the enclave's UTC seconds when the share was sealed (0: unknown)

    def __repr__(self) -> str:
        return f"StoredKey({self.suite.name}, nodes={self.nodes}, share=<redacted>)"


def _encode(key: StoredKey) -> bytes:
    return cbor.dumps(
        {
            "v": _RECORD_VERSION,
            "share": key.share.to_sealable_bytes(),
            "policy": b"" if key.policy is None else key.policy.encode(),
            "suite": key.suite.name,
            "nodes": list(key.nodes),
            "pending": key.pending,
            "created": key.created,
        }
    )


def _decode(sealed: bytes) -> StoredKey:
    """Opaque on any defect (the plaintext holds the share)."""
    if not sealed or sealed[0] >> 5 != 5:  # not a CBOR map: a share sealed before policies
        share = KeyShare.from_sealed_bytes(sealed)
        try:
            return StoredKey(share, None, suite_of_group(share.group), ())
        except MpcError:
            raise SecretError from None
    try:
        record = cbor.loads_map(sealed, what="key")
        if record.get("v") == 2 and set(record) == _V2_FIELDS:
            record |= {"pending": False, "created": 0}
        elif record.get("v") != _RECORD_VERSION or set(record) != _RECORD_FIELDS:
            raise SecretError
        suite = KEY_SUITES.get(record["suite"]) if type(record["suite"]) is str else None
        nodes = record["nodes"]
        if (
            suite is None
            or type(record["share"]) is not bytes
            or type(record["policy"]) is not bytes
            or type(nodes) is not list
            or not all(type(n) is str for n in nodes)
            or type(record["pending"]) is not bool
            or type(record["created"]) is not int
            or not 0 <= record["created"] < 2**40
        ):
            raise SecretError
        policy = ApprovalPolicy.decode(record["policy"]) if record["policy"] else None
    except MalformedMessageError:
        raise SecretError from None
    share = KeyShare.from_sealed_bytes(record["share"])
    if share.group is not suite.group:
        raise SecretError
    return StoredKey(
        share, policy, suite, tuple(nodes), pending=record["pending"], created=record["created"]
    )


class KeyStore:
    def __init__(self, store: SealedBlobs) -> None:
        self._store = store
        self._cache: dict[str, StoredKey] = {}

    async def exists(self, name: str, *, now: int) -> bool:
        """Whether ``name`` is taken: by a committed key, or a pending one not yet abandoned."""
        try:
            key = await self.stored(name)
        except UnknownKeyError:
            return False
        return not (key.pending and now - key.created > PENDING_TIMEOUT)

    async def stored(self, name: str) -> StoredKey:
        cached = self._cache.get(name)
        if cached is not None:
            return cached
        sealed = await self._store.get(_blob(name))
        if sealed is None:
            raise UnknownKeyError(name)
        record = self._cache[name] = _decode(sealed)
        return record

    async def active(self, name: str) -> StoredKey:
        """The committed key ``name`` (:class:`KeyPendingError` while it is pending)."""
        key = await self.stored(name)
        if key.pending:
            raise KeyPendingError(name)
        return key

    async def names(self) -> list[str]:
        """The names of every committed key sealed on this node, sorted."""
        prefix = len(KEY_BLOB_PREFIX)
        listed = {n[prefix:] for n in self._store.versions if n.startswith(KEY_BLOB_PREFIX)}
        names = []
        for name in sorted(listed | set(self._cache)):
            if not (await self.stored(name)).pending:
                names.append(name)
        return names

    async def save(self, name: str, key: StoredKey, *, now: int) -> None:
        """Seal a new key (or replace an abandoned pending one of the same name)."""
        if await self.exists(name, now=now):
            raise KeyExistsError(name)
        await self._store.put(_blob(name), _encode(key))
        self._cache[name] = key

    async def activate(self, name: str) -> None:
        """Reseal the pending key ``name`` as committed (usable from now on)."""
        key = await self.stored(name)
        if not key.pending:
            return
        committed = replace(key, pending=False)
        await self._store.put(_blob(name), _encode(committed))
        self._cache[name] = committed
