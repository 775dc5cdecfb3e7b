"""Sealed key records version 5 (issue 11): the custody flags ``exportable``, ``exported`` and
``imported`` are sealed with the share; a version-4 record (as written before custody existed)
loads with all three false; a flag out of shape makes the record opaque."""

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
from enclave.service.keystore import KeyState, KeyStore, StoredKey
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


def test_custody_flags_round_trip_through_a_restart() -> None:
    async def run() -> None:
        store, host = await _store()
        await KeyStore(store).replace("k", _key(exportable=True, exported=True, imported=True))
        fresh, _ = await _store(host)
        loaded = await KeyStore(fresh).usable("k")
        assert (loaded.exportable, loaded.exported, loaded.imported) == (True, True, True)
        plaintext = await fresh.get("key-k")
        assert plaintext is not None
        assert cbor.loads_map(plaintext, what="key")["v"] == 6

    asyncio.run(run())


def test_a_version_4_record_loads_neither_exportable_exported_nor_imported() -> None:
    async def run() -> None:
        store, _ = await _store()
        key = _key()
        record = {
            "v": 4,
            "share": key.share.to_sealable_bytes(),
            "policy": b"",
            "suite": "ed25519",
            "nodes": list(key.nodes),
            "pending": False,
            "created": 5,
            "epoch": 2,
            "state": "disabled",
            "delete_at": 0,
            "next_share": b"",
            "next_digest": b"",
        }
        await store.put("key-old", cbor.dumps(record))
        loaded = await KeyStore(store).active("old")
        assert (loaded.epoch, loaded.state, loaded.created) == (2, KeyState.DISABLED, 5)
        assert (loaded.exportable, loaded.exported, loaded.imported) == (False, False, False)
        assert loaded.share.secret_share == key.share.secret_share

    asyncio.run(run())


def test_a_tombstone_keeps_the_exported_flag_and_no_share() -> None:
    async def run() -> None:
        store, _ = await _store()
        keys = KeyStore(store)
        key = _key(exportable=True, exported=True)
        await keys.replace("k", key)
        await keys.erase("k")
        plaintext = await store.get("key-k")
        assert plaintext is not None
        record = cbor.loads_map(plaintext, what="key")
        assert (record["state"], record["share"], record["exported"]) == ("deleted", b"", True)
        assert key.share.secret_share.to_bytes() not in plaintext

    asyncio.run(run())


@pytest.mark.parametrize("field", ["exportable", "exported", "imported"])
def test_a_custody_flag_that_is_not_a_boolean_makes_the_record_opaque(field: str) -> None:
    async def run() -> None:
        store, _ = await _store()
        await KeyStore(store).replace("k", _key())
        plaintext = await store.get("key-k")
        assert plaintext is not None
        await store.put("key-k", cbor.dumps(cbor.loads_map(plaintext, what="key") | {field: 1}))
        with pytest.raises(SecretError):
            await KeyStore(store).stored("k")

    asyncio.run(run())
