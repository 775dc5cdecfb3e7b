"""Review finding: the local blob store serves regular files only, and never blocks on a name.

``get`` opened whatever the name pointed at. A directory under a blob's name escaped as a bare
``IsADirectoryError`` (not :class:`BlobStoreError`, so host services answered ``internal``), and a
FIFO made ``open`` wait for a writer forever, pinning a host-services worker thread. ``names()``
already lists regular files only; ``get`` now agrees: it opens without blocking, and anything but
a regular file is a ``BlobStoreError`` naming the blob. The descriptor is closed on every path.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from parent.blobstore import LocalDirBlobStore
from parent.errors import BlobStoreError


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_directory_under_a_blob_name_is_a_store_error(tmp_path: Path) -> None:
    store = LocalDirBlobStore(tmp_path / "blobs")
    (store.directory / "sealed-state").mkdir()
    before = _open_fds()
    with pytest.raises(BlobStoreError) as caught:
        store.get("sealed-state")
    assert caught.value.operation == "get"
    assert caught.value.name == "sealed-state"
    assert _open_fds() == before


def test_a_fifo_under_a_blob_name_does_not_block(tmp_path: Path) -> None:
    store = LocalDirBlobStore(tmp_path / "blobs")
    os.mkfifo(store.directory / "sealed-state")
    outcome: list[BaseException | bytes | None] = []

    def attempt() -> None:
        try:
            outcome.append(store.get("sealed-state"))
        except BlobStoreError as exc:
            outcome.append(exc)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout=10)
    if worker.is_alive():  # unblock the stuck open() so the thread can end
        os.close(os.open(store.directory / "sealed-state", os.O_WRONLY | os.O_NONBLOCK))
        worker.join(timeout=10)
        pytest.fail("get() blocked on a FIFO")
    assert len(outcome) == 1
    assert isinstance(outcome[0], BlobStoreError)


def test_regular_blobs_still_round_trip(tmp_path: Path) -> None:
    store = LocalDirBlobStore(tmp_path / "blobs")
    store.put("sealed-state", b"\x00opaque")
    assert store.get("sealed-state") == b"\x00opaque"
    assert store.get("absent") is None
