from __future__ import annotations

import errno
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from hypothesis import given
from hypothesis import strategies as st
from moto import mock_aws

from parent.blobstore import TEMP_PREFIX, BlobStore, LocalDirBlobStore, S3BlobStore, check_name
from parent.errors import BlobNameError, BlobStoreError

BAD_NAMES = [
    "",
    "../x",
    "..",
    "a/b",
    "/etc/passwd",
    ".hidden",
    "a..b",
    "a\x00b",
    "ä",
    "x" * 129,
    "a b",
]


@pytest.fixture
def s3_store() -> Iterator[S3BlobStore]:
    with mock_aws():
        client = boto3.client("s3", region_name="eu-west-1")
        client.create_bucket(
            Bucket="sealed", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
        yield S3BlobStore("sealed", "node-1", client)


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    if request.param == "local":
        yield LocalDirBlobStore(tmp_path / "blobs")
    else:
        yield request.getfixturevalue("s3_store")


def test_put_get_replace_and_list(store: BlobStore) -> None:
    assert store.get("state") is None
    assert store.names() == []
    store.put("state", b"v1")
    store.put("audit-0001.log", b"\x00" * 10)
    store.put("state", b"v2")
    assert store.get("state") == b"v2"
    assert store.names() == ["audit-0001.log", "state"]
    store.put("empty", b"")
    assert store.get("empty") == b""


def test_bad_names_are_refused_everywhere(store: BlobStore) -> None:
    for name in BAD_NAMES:
        with pytest.raises(BlobNameError) as info:
            store.put(name, b"x")
        assert info.value.name == name
        with pytest.raises(BlobNameError):
            store.get(name)
    assert store.names() == []


def test_non_text_name_and_non_bytes_data(store: BlobStore) -> None:
    with pytest.raises(BlobNameError):
        check_name(b"state")
    with pytest.raises(BlobStoreError):
        store.put("state", "text")  # type: ignore[arg-type]


@given(st.text(max_size=40))
def test_accepted_names_never_escape_the_directory(name: str) -> None:
    try:
        check_name(name)
    except BlobNameError:
        return
    assert "/" not in name
    assert "\x00" not in name
    assert not name.startswith(".")
    assert ".." not in name


def test_failed_rename_leaves_the_old_blob_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalDirBlobStore(tmp_path)
    store.put("state", b"old")

    def failing_replace(src: object, dst: object) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(BlobStoreError) as info:
        store.put("state", b"new")
    assert (info.value.operation, info.value.name) == ("put", "state")
    monkeypatch.undo()
    assert store.get("state") == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state"]


def test_crash_between_write_and_rename_keeps_the_old_blob(tmp_path: Path) -> None:
    """A real process dies (os._exit) after writing and fsyncing the temp file, before rename."""
    LocalDirBlobStore(tmp_path).put("state", b"old")
    child = (
        "import os, sys\n"
        "from parent.blobstore import LocalDirBlobStore\n"
        "os.replace = lambda src, dst: os._exit(9)\n"
        "LocalDirBlobStore(sys.argv[1]).put('state', b'new' * 1000)\n"
    )
    proc = subprocess.run([sys.executable, "-c", child, str(tmp_path)], check=False, timeout=30)
    assert proc.returncode == 9
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(TEMP_PREFIX)]
    assert len(leftovers) == 1
    assert leftovers[0].read_bytes() == b"new" * 1000  # the write happened; the rename did not
    reopened = LocalDirBlobStore(tmp_path)
    assert reopened.get("state") == b"old"
    assert reopened.names() == ["state"]
    assert not leftovers[0].exists()  # crash debris is cleaned on open


def test_local_files_are_private_and_symlinks_not_followed(tmp_path: Path) -> None:
    store = LocalDirBlobStore(tmp_path / "b")
    store.put("state", b"x")
    assert (tmp_path / "b" / "state").stat().st_mode & 0o077 == 0
    (tmp_path / "secret").write_bytes(b"host file")
    (tmp_path / "b" / "link").symlink_to(tmp_path / "secret")
    with pytest.raises(BlobStoreError):
        store.get("link")
    assert store.names() == ["state"]  # a planted symlink is not one of ours


def test_s3_keys_live_under_the_prefix(s3_store: S3BlobStore) -> None:
    s3_store.put("state", b"sealed")
    client = s3_store._client
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="sealed")["Contents"]]
    assert keys == ["node-1/state"]
    client.put_object(Bucket="sealed", Key="node-1/../evil", Body=b"x")
    client.put_object(Bucket="sealed", Key="node-2/other", Body=b"x")
    assert s3_store.names() == ["state"]  # foreign and odd keys are not ours


def test_s3_failures_are_typed(s3_store: S3BlobStore) -> None:
    missing = S3BlobStore("no-such-bucket", "p", s3_store._client)
    with pytest.raises(BlobStoreError) as info:
        missing.put("state", b"x")
    assert info.value.reason == "NoSuchBucket"
    with pytest.raises(BlobStoreError):
        missing.names()
