"""Sealed key records version 4 (issue 10): epoch, state, deletion date and a staged next-epoch
share sealed with the key; older records load unchanged; a deleted key leaves a tombstone with no
share; a record whose lifecycle fields are out of shape is refused as opaque (no state change)."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace

import pytest

from enclave.mpc.errors import SecretError
from enclave.mpc.groups import ED25519
from enclave.mpc.suites import ED25519_FROST
from enclave.sealing import SealedStore, Sealer
from enclave.secretbytes import SecretBytes
from enclave.service.errors import (
    KeyDisabledError,
    KeyPendingDeletionError,
    UnknownKeyError,
)
from enclave.service.keystore import KeyState, KeyStore, StagedShare, StoredKey
from tests.mpc.threshold_keys import deal
from tests.support.blobs import DictHost
from wire import cbor


class _Rng:
    def random_bytes(self, n: int) -> bytes:
        return os.urandom(n)


def _key(**changes: object) -> StoredKey:
    _, shares = deal(ED25519, 1, 3, _Rng())
    share = next(iter(shares.values()))
    return replace(StoredKey(share, None, ED25519_FROST, ("n1", "n2", "n3")), **changes)  # type: ignore[arg-type]


async def _store(host: DictHost | None = None) -> tuple[SealedStore, DictHost]:
    host = host or DictHost()
    store = SealedStore(Sealer(SecretBytes(bytes(32)), "n1"), host)
    await store.load()
    return store, host


def test_epoch_state_and_staged_share_round_trip_through_a_restart() -> None:
    async def run() -> None:
        store, host = await _store()
        _, others = deal(ED25519, 1, 3, _Rng())
        staged = StagedShare(next(iter(others.values())), bytes(range(64)))
        key = _key(epoch=3, state=KeyState.PENDING_DELETION, delete_at=2_000_000_000, staged=staged)
        await KeyStore(store).replace("k", key)
        fresh, _ = await _store(host)
        loaded = await KeyStore(fresh, clock=lambda: 1_000_000_000).stored("k")
        assert (loaded.epoch, loaded.state, loaded.delete_at) == (3, key.state, key.delete_at)
        assert loaded.staged is not None
        assert loaded.staged.digest == staged.digest
        assert loaded.staged.share.secret_share == staged.share.secret_share
        assert "share=<redacted>" in repr(loaded)
        assert "redacted" in repr(loaded.staged)

    asyncio.run(run())


def test_a_version_3_record_loads_enabled_at_epoch_0() -> None:
    async def run() -> None:
        store, _ = await _store()
        key = _key()
        record = {
            "v": 3,
            "share": key.share.to_sealable_bytes(),
            "policy": b"",
            "suite": "ed25519",
            "nodes": list(key.nodes),
            "pending": False,
            "created": 5,
        }
        await store.put("key-old", cbor.dumps(record))
        loaded = await KeyStore(store).usable("old")
        assert (loaded.epoch, loaded.state, loaded.staged, loaded.created) == (
            0,
            KeyState.ENABLED,
            None,
            5,
        )

    asyncio.run(run())


def test_disabled_and_pending_deletion_keys_are_not_usable() -> None:
    async def run() -> None:
        store, _ = await _store()
        keys = KeyStore(store, clock=lambda: 100)
        await keys.replace("d", _key(state=KeyState.DISABLED))
        await keys.replace("p", _key(state=KeyState.PENDING_DELETION, delete_at=200))
        with pytest.raises(KeyDisabledError):
            await keys.usable("d")
        with pytest.raises(KeyPendingDeletionError) as caught:
            await keys.usable("p")
        assert caught.value.delete_at == 200
        assert (await keys.active("p")).state is KeyState.PENDING_DELETION  # still described

    asyncio.run(run())


def test_a_due_deletion_seals_a_tombstone_without_any_share() -> None:
    async def run() -> None:
        store, host = await _store()
        now = [100.0]
        keys = KeyStore(store, clock=lambda: now[0])
        _, others = deal(ED25519, 1, 3, _Rng())
        staged = StagedShare(next(iter(others.values())), bytes(64))
        key = _key(state=KeyState.PENDING_DELETION, delete_at=200, staged=staged)
        await keys.replace("k", key)
        now[0] = 200
        with pytest.raises(UnknownKeyError):
            await keys.stored("k")
        plaintext = await store.get("key-k")
        assert plaintext is not None
        record = cbor.loads_map(plaintext, what="key")
        assert record["state"] == "deleted"
        assert record["share"] == record["next_share"] == b""
        secret = key.share.secret_share.to_bytes()
        assert secret not in plaintext
        assert staged.share.secret_share.to_bytes() not in plaintext
        assert await keys.names() == []
        fresh, _ = await _store(host)
        with pytest.raises(UnknownKeyError):
            await KeyStore(fresh).stored("k")
        assert not await KeyStore(fresh).exists("k", now=0)

    asyncio.run(run())


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("state", "lost"),
        ("state", 1),
        ("epoch", -1),
        ("epoch", 2**32),
        ("delete_at", -1),
        ("next_share", b"x"),  # a staged share without its digest
        ("next_digest", b"x" * 64),  # a digest without its share
        ("next_nodes", ["n1", "n4"]),  # a reshare's committee without a staged share
        ("next_nodes", "n1"),
    ],
)
def test_a_record_with_bad_lifecycle_fields_is_opaque(field: str, value: object) -> None:
    async def run() -> None:
        store, _ = await _store()
        await KeyStore(store).replace("k", _key())
        plaintext = await store.get("key-k")
        assert plaintext is not None
        record = cbor.loads_map(plaintext, what="key") | {field: value}
        await store.put("key-k", cbor.dumps(record))
        with pytest.raises(SecretError):
            await KeyStore(store).stored("k")

    asyncio.run(run())


def test_a_staged_reshare_keeps_its_new_committee_and_a_version_5_record_loads() -> None:
    """Record version 6: a reshare's staged share is sealed with the new committee; version-5
    records (before reshare) load with none."""

    async def run() -> None:
        store, host = await _store()
        _, others = deal(ED25519, 2, 4, _Rng())
        staged = StagedShare(next(iter(others.values())), bytes(64), ("n1", "n2", "n4", "n5"))
        await KeyStore(store).replace("k", _key(staged=staged))
        fresh, _ = await _store(host)
        loaded = await KeyStore(fresh).stored("k")
        assert loaded.staged is not None
        assert loaded.staged.nodes == ("n1", "n2", "n4", "n5")
        assert loaded.nodes == ("n1", "n2", "n3")
        plaintext = await fresh.get("key-k")
        assert plaintext is not None
        record = cbor.loads_map(plaintext, what="key")
        del record["next_nodes"]
        record |= {"v": 5, "next_share": b"", "next_digest": b""}
        await fresh.put("key-v5", cbor.dumps(record))
        old = await KeyStore(fresh).stored("v5")
        assert old.staged is None

    asyncio.run(run())
