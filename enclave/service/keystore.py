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

Policy updates (record version 5: ``"policy_history"``, a list of ``[policy, replaced_at]``):
a key's policy may be replaced, with approvals its current policy accepts; the policies it had
are kept in order, and their number counts the updates (what an update approval names).
Version-2 to -4 records load with no history.

Key state (record version 4: ``"epoch"``, ``"state"``, ``"delete_at"``, ``"next_share"``,
``"next_digest"``): a committed key is ``enabled``, ``disabled`` (kept, serves nothing but its
description) or ``pending_deletion`` (likewise, until ``delete_at``, the enclave's UTC seconds).
Once a key pending deletion is due, the first look at it on this node erases it: the record is
resealed as a ``deleted`` tombstone without any share (the sealed store has no delete; the
tombstone also raises the manifest's floor so the parent cannot serve the old blob back), and the
name then reads as unknown. A refresh stages the next epoch's share beside the current one
(``next_share``/``next_digest``) and commits it by a reseal with only the new share (see
:mod:`enclave.service.refresh`). Version-3 records load as enabled at epoch 0 with nothing staged.

Custody (record version 5: ``"exportable"``, ``"exported"``, ``"imported"``, booleans): a key
created ``exportable`` may be exported by its policy's quorum (:mod:`enclave.service.custody`);
a node that wrapped its share for an export reseals the record ``exported`` BEFORE it answers,
and nothing ever clears that flag (``key info`` shows it for the key's life); ``imported`` marks a
key the client split from an outside secret. Version-4 records load with all three false.

Reshare (record version 6: ``"next_nodes"``): a holder that stays in a reshared key's committee
stages its next share the same way, with the new committee's node ids (``next_nodes``; empty for
a refresh, whose committee stays), so that the commit — on confirmations or on a peer's vouch
after a crash — reseals the record with the new holders (see :mod:`enclave.service.reshare`).
Version-5 records load with nothing staged for a reshare.

The share is sealed (and the manifest rewritten) BEFORE a node reports a key as created, so a
reported key survives a restart. Shares are loaded lazily and cached for this boot only.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from enclave.errors import EnclaveError
from enclave.mpc.errors import MpcError, SecretError
from enclave.mpc.keys import KeyShare
from enclave.mpc.suites import KEY_SUITES, KeySuite, suite_of_group
from enclave.service.errors import (
    KeyDisabledError,
    KeyExistsError,
    KeyPendingDeletionError,
    KeyPendingError,
    UnknownKeyError,
)
from wire import cbor
from wire.approvals import ApprovalPolicy
from wire.errors import MalformedMessageError

__all__ = [
    "KEY_BLOB_PREFIX",
    "PENDING_TIMEOUT",
    "KeyState",
    "KeyStore",
    "PolicyChange",
    "SealedBlobs",
    "StagedShare",
    "StoredKey",
]

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


_RECORD_VERSION = 6
_V2_FIELDS = frozenset({"v", "share", "policy", "suite", "nodes"})
_V3_FIELDS = _V2_FIELDS | {"pending", "created"}
_V4_FIELDS = _V3_FIELDS | {"epoch", "state", "delete_at", "next_share", "next_digest"}
_CUSTODY_FIELDS = ("exportable", "exported", "imported")
_V5_FIELDS = _V4_FIELDS | {"policy_history"} | set(_CUSTODY_FIELDS)
_RECORD_FIELDS = _V5_FIELDS | {"next_nodes"}
#: Policy updates a key may have had (each keeps the policy it replaced).
MAX_POLICY_HISTORY = 256
_MAX_TIME = 2**40
_DIGEST = 64  # a refresh transcript digest (enclave.mpc.renewal)


class KeyState(enum.Enum):
    """A committed key's state on this node (what ``key info`` shows)."""

    ENABLED = "enabled"
    DISABLED = "disabled"
    PENDING_DELETION = "pending_deletion"
    DELETED = "deleted"  # a tombstone: the share is erased


@dataclass(frozen=True, slots=True, eq=False)
class StagedShare:
    """A refresh's next-epoch share, sealed but not yet in use, and the transcript digest every
    holder confirmed (what a peer that committed vouches for)."""

    share: KeyShare
    digest: bytes
    #: A reshare's new committee in identifier order (empty: a refresh, the holders stay).
    nodes: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"StagedShare(digest={self.digest.hex()[:16]}..., share=<redacted>)"


@dataclass(frozen=True, slots=True)
class PolicyChange:
    """A policy a key had (encoding; empty: none) and when it was replaced."""

    policy: bytes
    replaced_at: int


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
    state: KeyState = KeyState.ENABLED
    delete_at: int = 0  # pending deletion: the enclave's UTC seconds it is erased at
    staged: StagedShare | None = None
    #: The policies this key had before its current one, oldest first, each with the enclave's
    #: UTC seconds when it was replaced (its length counts the policy's updates).
    policy_history: tuple[PolicyChange, ...] = ()
    exportable: bool = False  # its policy's quorum may export it (chosen at creation)
    exported: bool = False  # this node wrapped its share for an export: never cleared
    imported: bool = False  # split by a client from an outside secret

    def __repr__(self) -> str:
        return (
            f"StoredKey({self.suite.name}, nodes={self.nodes}, epoch={self.epoch}, "
            f"{self.state.value}, share=<redacted>)"
        )


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
            "epoch": key.epoch,
            "state": key.state.value,
            "delete_at": key.delete_at,
            "next_share": b"" if key.staged is None else key.staged.share.to_sealable_bytes(),
            "next_digest": b"" if key.staged is None else key.staged.digest,
            "policy_history": [[c.policy, c.replaced_at] for c in key.policy_history],
            "exportable": key.exportable,
            "exported": key.exported,
            "imported": key.imported,
            "next_nodes": [] if key.staged is None else list(key.staged.nodes),
        }
    )


def _tombstone(key: StoredKey) -> bytes:
    """What replaces an erased key's record: its public facts, no share at all."""
    return cbor.dumps(
        {
            "v": _RECORD_VERSION,
            "share": b"",
            "policy": b"",
            "suite": key.suite.name,
            "nodes": list(key.nodes),
            "pending": False,
            "created": key.created,
            "epoch": key.epoch,
            "state": KeyState.DELETED.value,
            "delete_at": key.delete_at,
            "next_share": b"",
            "next_digest": b"",
            "policy_history": [],
            "exportable": False,
            "exported": key.exported,
            "imported": key.imported,
            "next_nodes": [],
        }
    )


class _DeletedKeyError(Exception):
    """A tombstone was read (internal: the name then reads as unknown)."""


def _upgrade(record: dict[str, Any]) -> dict[str, Any]:
    """A version-2 to -5 record as version 6 (version 3: committed, enabled, epoch 0, nothing
    staged; version 4: no policy history, neither exportable, exported nor imported; version 5:
    no reshare staged)."""
    if record.get("v") == 2 and set(record) == _V2_FIELDS:
        record = record | {"v": 3, "pending": False, "created": 0}
    if record.get("v") == 3 and set(record) == _V3_FIELDS:
        record = record | {
            "v": 4,
            "epoch": 0,
            "state": KeyState.ENABLED.value,
            "delete_at": 0,
            "next_share": b"",
            "next_digest": b"",
        }
    if record.get("v") == 4 and set(record) == _V4_FIELDS:
        record = record | {"v": 5, "policy_history": []} | dict.fromkeys(_CUSTODY_FIELDS, False)
    if record.get("v") == 5 and set(record) == _V5_FIELDS:
        record = record | {"v": _RECORD_VERSION, "next_nodes": []}
    if record.get("v") != _RECORD_VERSION or set(record) != _RECORD_FIELDS:
        raise SecretError
    if not all(type(record[name]) is bool for name in _CUSTODY_FIELDS):
        raise SecretError
    return record


def _lifecycle(record: Mapping[str, Any]) -> KeyState:
    """The record's state, its lifecycle fields checked (a tombstone: :class:`_DeletedKeyError`)."""
    try:
        state = KeyState(record["state"]) if type(record["state"]) is str else None
    except ValueError:
        state = None
    epoch, delete_at = record["epoch"], record["delete_at"]
    if (
        state is None
        or type(epoch) is not int
        or not 0 <= epoch < 2**32
        or type(delete_at) is not int
        or not 0 <= delete_at < _MAX_TIME
        or type(record["next_share"]) is not bytes
        or type(record["next_digest"]) is not bytes
        or bool(record["next_share"]) != bool(record["next_digest"])
    ):
        raise SecretError
    if state is KeyState.DELETED:
        raise _DeletedKeyError
    return state


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
        record = _upgrade(record)
        state = _lifecycle(record)
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
        history = _policy_history(record["policy_history"])
    except MalformedMessageError:
        raise SecretError from None
    share = KeyShare.from_sealed_bytes(record["share"])
    if share.group is not suite.group:
        raise SecretError
    staged = None
    if record["next_share"]:
        next_share = KeyShare.from_sealed_bytes(record["next_share"])
        if next_share.group is not suite.group or len(record["next_digest"]) != _DIGEST:
            raise SecretError
        staged = StagedShare(next_share, record["next_digest"], _next_nodes(record["next_nodes"]))
    elif record["next_nodes"] != []:
        raise SecretError
    return StoredKey(
        share,
        policy,
        suite,
        tuple(nodes),
        epoch=record["epoch"],
        pending=record["pending"],
        created=record["created"],
        state=state,
        delete_at=record["delete_at"],
        staged=staged,
        policy_history=history,
        exportable=record["exportable"],
        exported=record["exported"],
        imported=record["imported"],
    )


def _next_nodes(value: object) -> tuple[str, ...]:
    if type(value) is not list or not all(type(n) is str for n in value):
        raise SecretError
    return tuple(value)


def _policy_history(value: object) -> tuple[PolicyChange, ...]:
    if type(value) is not list or len(value) > MAX_POLICY_HISTORY:
        raise SecretError
    changes = []
    for item in value:
        if (
            type(item) is not list
            or len(item) != 2
            or type(item[0]) is not bytes
            or type(item[1]) is not int
            or not 0 <= item[1] < _MAX_TIME
        ):
            raise SecretError
        if item[0]:
            ApprovalPolicy.decode(item[0])
        changes.append(PolicyChange(item[0], item[1]))
    return tuple(changes)


class KeyStore:
    def __init__(self, store: SealedBlobs, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock
        self._cache: dict[str, StoredKey] = {}
        self._deleted: set[str] = set()  # tombstones read or written this boot

    async def exists(self, name: str, *, now: int) -> bool:
        """Whether ``name`` is taken: by a committed key, or a pending one not yet abandoned."""
        try:
            key = await self.stored(name)
        except UnknownKeyError:
            return False
        return not (key.pending and now - key.created > PENDING_TIMEOUT)

    async def stored(self, name: str) -> StoredKey:
        """The key ``name`` as sealed (pending or not; never a deleted one). A key pending
        deletion whose date has come is erased here first, then reads as unknown."""
        if name in self._deleted:
            raise UnknownKeyError(name)
        record = self._cache.get(name)
        if record is None:
            sealed = await self._store.get(_blob(name))
            if sealed is None:
                raise UnknownKeyError(name)
            try:
                record = self._cache[name] = _decode(sealed)
            except _DeletedKeyError:
                self._deleted.add(name)
                raise UnknownKeyError(name) from None
        if record.state is KeyState.PENDING_DELETION and self._clock() >= record.delete_at:
            await self.erase(name)
            raise UnknownKeyError(name)
        return record

    async def erase(self, name: str) -> None:
        """Replace the record of ``name`` by a tombstone without any share (both the current
        and a staged one); the name then reads as unknown and may be created again."""
        key = self._cache.get(name) or await self.stored(name)
        await self._store.put(_blob(name), _tombstone(key))
        self._cache.pop(name, None)
        self._deleted.add(name)

    async def usable(self, name: str) -> StoredKey:
        """The committed, enabled key ``name``: what signs and decrypts. Disabled and
        pending-deletion keys are refused with their own typed errors."""
        key = await self.active(name)
        if key.state is KeyState.DISABLED:
            raise KeyDisabledError(name)
        if key.state is KeyState.PENDING_DELETION:
            raise KeyPendingDeletionError(name, key.delete_at)
        return key

    async def replace(self, name: str, key: StoredKey) -> None:
        """Reseal ``name``'s record as ``key`` (a state change, a staged or committed epoch)."""
        await self._store.put(_blob(name), _encode(key))
        self._cache[name] = key

    async def lost(self, name: str, *, epoch: int) -> bool:
        """Whether this node has lost its share of ``name`` at ``epoch``: no record, a record
        it cannot read (deleted or corrupt blob), or one of an older epoch — what a repair may
        replace. A key erased by its scheduled deletion is not lost: it stays erased."""
        if name in self._deleted:
            return False
        try:
            key = await self.stored(name)
        except UnknownKeyError:
            return name not in self._deleted
        except (MpcError, EnclaveError):
            return True  # the blob is gone or unreadable: the share is lost
        return key.pending or key.epoch < epoch

    async def restore(self, name: str, key: StoredKey) -> None:
        """Seal a repaired share over whatever this node had of ``name`` (see :meth:`lost`)."""
        if not await self.lost(name, epoch=key.epoch):
            raise KeyExistsError(name)
        await self._store.put(_blob(name), _encode(key))
        self._cache[name] = key

    async def sweep(self) -> list[str]:
        """Erase every key pending deletion whose date has come; their names."""
        erased = []
        prefix = len(KEY_BLOB_PREFIX)
        listed = {n[prefix:] for n in self._store.versions if n.startswith(KEY_BLOB_PREFIX)}
        for name in sorted(listed | set(self._cache)):
            if name in self._deleted:
                continue
            try:
                await self.stored(name)
            except UnknownKeyError:
                if name in self._deleted:
                    erased.append(name)
            except (MpcError, EnclaveError):
                continue  # a lost or unreadable record is not this sweep's to judge
        return erased

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
        for name in sorted((listed | set(self._cache)) - self._deleted):
            try:
                key = await self.stored(name)
            except UnknownKeyError:
                continue  # erased just now (its deletion date came)
            if not key.pending:
                names.append(name)
        return names

    async def save(self, name: str, key: StoredKey, *, now: int) -> None:
        """Seal a new key (or replace an abandoned pending one of the same name)."""
        if await self.exists(name, now=now):
            raise KeyExistsError(name)
        await self._store.put(_blob(name), _encode(key))
        self._cache[name] = key
        self._deleted.discard(name)

    async def activate(self, name: str) -> None:
        """Reseal the pending key ``name`` as committed (usable from now on)."""
        key = await self.stored(name)
        if not key.pending:
            return
        committed = replace(key, pending=False)
        await self._store.put(_blob(name), _encode(committed))
        self._cache[name] = committed
