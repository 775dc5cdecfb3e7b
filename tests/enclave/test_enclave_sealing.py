"""Sealing: AEAD binding of node, name and version; swap, rollback and deletion detection."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from enclave.errors import (
    BlobFormatError,
    BlobMismatchError,
    BlobMissingError,
    RollbackError,
    UnsealError,
)
from enclave.sealing import MANIFEST_NAME, BlobHeader, SealedStore, Sealer
from enclave.secretbytes import SecretBytes
from tests.support.blobs import DictHost

T = TypeVar("T")


def key() -> SecretBytes:
    return SecretBytes(os.urandom(32))


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def test_seal_roundtrip_and_header_binding() -> None:
    sealer = Sealer(key(), "node-1")
    blob = sealer.seal("state", 7, b"secret state")
    assert b"secret state" not in blob
    assert sealer.unseal("state", blob) == (7, b"secret state")
    header, _ = BlobHeader.decode_prefix(blob)
    assert header == BlobHeader("node-1", "state", 7)


def test_swapped_blob_other_node_or_name_is_refused() -> None:
    data_key = key()
    mine = Sealer(data_key, "node-1")
    theirs = Sealer(data_key, "node-2")
    blob = theirs.seal("state", 1, b"x")
    with pytest.raises(BlobMismatchError) as info:
        mine.unseal("state", blob)
    assert (info.value.field, info.value.expected, info.value.actual) == (
        "node_id",
        "node-1",
        "node-2",
    )
    with pytest.raises(BlobMismatchError) as info:
        mine.unseal("other", mine.seal("state", 1, b"x"))
    assert info.value.field == "name"


def test_header_edited_to_pass_the_check_fails_the_tag_opaquely() -> None:
    data_key = key()
    blob = Sealer(data_key, "node-2").seal("state", 5, b"x")
    _, offset = BlobHeader.decode_prefix(blob)
    forged = BlobHeader("node-1", "state", 5).encode() + blob[offset:]
    with pytest.raises(UnsealError) as info:
        Sealer(data_key, "node-1").unseal("state", forged)
    assert str(info.value) == UnsealError.MESSAGE
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


def test_version_raised_in_header_fails_the_tag() -> None:
    sealer = Sealer(key(), "n")
    blob = sealer.seal("state", 1, b"x")
    _, offset = BlobHeader.decode_prefix(blob)
    forged = BlobHeader("n", "state", 99).encode() + blob[offset:]
    with pytest.raises(UnsealError):
        sealer.unseal("state", forged)


def test_wrong_key_is_opaque() -> None:
    blob = Sealer(key(), "n").seal("state", 1, b"x")
    with pytest.raises(UnsealError):
        Sealer(key(), "n").unseal("state", blob)


def test_rollback_below_min_version() -> None:
    sealer = Sealer(key(), "n")
    with pytest.raises(RollbackError) as info:
        sealer.unseal("state", sealer.seal("state", 3, b"x"), min_version=4)
    assert (info.value.seen, info.value.offered) == (4, 3)


@given(st.binary(max_size=80))
def test_garbage_is_refused_with_a_typed_error(data: bytes) -> None:
    sealer = Sealer(SecretBytes(bytes(32)), "n")
    with pytest.raises((BlobFormatError, BlobMismatchError, UnsealError, RollbackError)):
        sealer.unseal("state", data)


@given(st.integers(min_value=0, max_value=200), st.data())
def test_any_single_byte_flip_is_refused(position: int, data: st.DataObject) -> None:
    sealer = Sealer(SecretBytes(bytes(range(32))), "node")
    blob = bytearray(sealer.seal("state", 2, b"payload-bytes"))
    position %= len(blob)
    blob[position] ^= data.draw(st.integers(min_value=1, max_value=255))
    with pytest.raises((BlobFormatError, BlobMismatchError, UnsealError, RollbackError)):
        sealer.unseal("state", bytes(blob))


def test_store_roundtrip_across_restart() -> None:
    host = DictHost()
    data_key = key()

    async def first() -> None:
        store = SealedStore(Sealer(data_key, "n"), host)
        assert await store.load() is False
        assert await store.get("state") is None
        assert await store.put("state", b"v1") == 1
        assert await store.put("other", b"o1") == 2
        assert await store.put("state", b"v2") == 3

    async def second() -> None:
        store = SealedStore(Sealer(data_key, "n"), host)
        assert await store.load() is True
        assert store.epoch == 3
        assert await store.get("state") == b"v2"
        assert await store.get("other") == b"o1"

    run(first())
    run(second())


def test_store_detects_single_blob_rollback_across_restart() -> None:
    host = DictHost()
    data_key = key()

    async def scenario() -> None:
        store = SealedStore(Sealer(data_key, "n"), host)
        await store.load()
        await store.put("state", b"v1")
        old = host.blobs["state"]
        await store.put("state", b"v2")
        host.blobs["state"] = old  # the parent serves the old, genuinely sealed blob
        restarted = SealedStore(Sealer(data_key, "n"), host)
        await restarted.load()
        with pytest.raises(RollbackError) as info:
            await restarted.get("state")
        assert (info.value.seen, info.value.offered) == (2, 1)

    run(scenario())


def test_store_detects_rollback_within_a_lifetime_even_with_old_manifest() -> None:
    host = DictHost()

    async def scenario() -> None:
        store = SealedStore(Sealer(key(), "n"), host)
        await store.load()
        await store.put("state", b"v1")
        snapshot = dict(host.blobs)
        await store.put("state", b"v2")
        host.blobs.update(snapshot)  # a whole consistent snapshot rolled back
        with pytest.raises(RollbackError):
            await store.load()
        with pytest.raises(RollbackError):
            await store.get("state")

    run(scenario())


def test_store_detects_deleted_blob_and_manifest() -> None:
    host = DictHost()
    data_key = key()

    async def scenario() -> None:
        store = SealedStore(Sealer(data_key, "n"), host)
        await store.load()
        await store.put("state", b"v1")
        del host.blobs["state"]
        restarted = SealedStore(Sealer(data_key, "n"), host)
        await restarted.load()
        with pytest.raises(BlobMissingError):
            await restarted.get("state")
        del host.blobs[MANIFEST_NAME]
        with pytest.raises(BlobMissingError):
            await store.load()

    run(scenario())


def test_store_accepts_blob_newer_than_manifest_after_crash() -> None:
    host = DictHost()
    data_key = key()

    async def scenario() -> None:
        store = SealedStore(Sealer(data_key, "n"), host)
        await store.load()
        await store.put("state", b"v1")
        manifest_before = host.blobs[MANIFEST_NAME]
        await store.put("state", b"v2")
        host.blobs[MANIFEST_NAME] = manifest_before  # crash after the blob, before the manifest
        restarted = SealedStore(Sealer(data_key, "n"), host)
        await restarted.load()
        assert await restarted.get("state") == b"v2"

    run(scenario())


def test_reserved_name_and_use_before_load() -> None:
    store = SealedStore(Sealer(key(), "n"), DictHost())
    with pytest.raises(BlobFormatError):
        run(store.put("state", b"x"))
    run(store.load())
    with pytest.raises(BlobFormatError):
        run(store.put(MANIFEST_NAME, b"x"))


def test_secret_bytes_redacts_and_wipes() -> None:
    secret = SecretBytes(b"\x01" * 32)
    assert repr(secret) == "<redacted>"
    assert str(secret) == "<redacted>"
    assert secret == SecretBytes(b"\x01" * 32)
    secret.wipe()
    assert secret.expose() == bytes(32)


class YieldingBlobs(DictHost):
    """Like the real host client, every call suspends, so concurrent puts interleave."""

    async def put_blob(self, name: str, data: bytes) -> None:
        await asyncio.sleep(0)
        await super().put_blob(name, data)


def test_concurrent_puts_take_distinct_epochs_and_stay_consistent() -> None:
    host = YieldingBlobs()
    data_key = key()

    async def scenario() -> None:
        store = SealedStore(Sealer(data_key, "n"), host)
        await store.load()
        epochs = await asyncio.gather(*(store.put(f"blob-{i}", bytes([i])) for i in range(10)))
        assert sorted(epochs) == list(range(1, 11))
        restarted = SealedStore(Sealer(data_key, "n"), host)
        await restarted.load()
        assert restarted.epoch == 10
        for i in range(10):
            assert await restarted.get(f"blob-{i}") == bytes([i])

    run(scenario())
