"""Where the parent keeps the enclave's sealed blobs: opaque bytes, stored atomically.

The enclave seals everything it hands over (AEAD under a KMS-released key, with a monotonic version
bound into the associated data), so the parent needs no confidentiality or integrity of its own: it
may lose, roll back or swap blobs, and the enclave will notice (threat model: the parent can only deny
service). What the store *must* give is crash atomicity — after a crash, a name maps to the old blob
or the new one, never to a torn mix — because a torn blob would be a lost key.

Names are a closed alphabet (``[A-Za-z0-9][A-Za-z0-9._-]{0,127}``, no ``..``): nothing that could
climb out of the directory or an S3 prefix, and nothing that collides with the store's own temporary
files (which start with a dot).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from parent.errors import BlobNameError, BlobStoreError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
TEMP_PREFIX = ".tmp-"
_READ_CHUNK = 1 << 20


def check_name(name: object) -> str:
    """Return ``name`` if it is a valid blob name; raise :class:`BlobNameError` otherwise."""
    if type(name) is not str:
        raise BlobNameError(name, "must be text")
    if not NAME_RE.fullmatch(name):
        raise BlobNameError(
            name, "allowed: letters, digits, '.', '_', '-'; 1-128 chars; no leading dot"
        )
    if ".." in name:
        raise BlobNameError(name, "'..' is not allowed")
    return name


class BlobStore(Protocol):
    """Opaque named blobs. ``put`` replaces atomically; ``get`` returns None for an unknown name."""

    def put(self, name: str, data: bytes) -> None: ...

    def get(self, name: str) -> bytes | None: ...

    def names(self) -> list[str]: ...


class LocalDirBlobStore:
    """Blobs as files in one directory: write a temp file, fsync, rename over, fsync the directory.

    ``rename`` within a directory is atomic on POSIX file systems, and the two fsyncs order the data
    before the name change and make the change durable — the classic recipe for crash-safe
    replacement. Temp files left by a crash are removed when the store is opened.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        for leftover in self.directory.glob(TEMP_PREFIX + "*"):
            leftover.unlink(missing_ok=True)

    def put(self, name: str, data: bytes) -> None:
        check_name(name)
        if type(data) is not bytes:
            raise BlobStoreError("put", name, "data must be bytes")
        final = self.directory / name
        temp = self.directory / f"{TEMP_PREFIX}{name}-{secrets.token_hex(8)}"
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, final)
            self._fsync_directory()
        except OSError as exc:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise BlobStoreError("put", name, exc.strerror or type(exc).__name__) from None

    def get(self, name: str) -> bytes | None:
        """The blob, or None. Only a regular file is a blob: the open never blocks (a FIFO would
        wait for a writer) and anything else — a directory, a device — is a ``BlobStoreError``."""
        check_name(name)
        try:
            fd = os.open(self.directory / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise BlobStoreError("get", name, exc.strerror or type(exc).__name__) from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise BlobStoreError("get", name, "not a regular file")
            os.set_blocking(fd, True)
            chunks = []
            while chunk := os.read(fd, _READ_CHUNK):
                chunks.append(chunk)
            return b"".join(chunks)
        except OSError as exc:
            raise BlobStoreError("get", name, exc.strerror or type(exc).__name__) from None
        finally:
            os.close(fd)

    def names(self) -> list[str]:
        return sorted(
            p.name
            for p in self.directory.iterdir()
            if not p.name.startswith(".") and not p.is_symlink() and p.is_file()
        )

    def _fsync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class S3BlobStore:
    """Blobs as S3 objects under ``prefix`` in ``bucket`` (boto3).

    A single PUT is atomic in S3 (readers see the old or the new object, never a mix), which gives the
    same crash property as rename. The ``client`` is injected, so the same code runs against AWS, a
    VPC endpoint or moto.
    """

    def __init__(self, bucket: str, prefix: str, client: S3Client) -> None:
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        self.bucket = bucket
        self.prefix = prefix
        self._client = client

    def put(self, name: str, data: bytes) -> None:
        check_name(name)
        if type(data) is not bytes:
            raise BlobStoreError("put", name, "data must be bytes")
        try:
            self._client.put_object(Bucket=self.bucket, Key=self.prefix + name, Body=data)
        except (BotoCoreError, ClientError) as exc:
            raise BlobStoreError("put", name, _reason(exc)) from None

    def get(self, name: str) -> bytes | None:
        check_name(name)
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=self.prefix + name)
        except self._client.exceptions.NoSuchKey:
            return None
        except (BotoCoreError, ClientError) as exc:
            raise BlobStoreError("get", name, _reason(exc)) from None
        body: bytes = response["Body"].read()
        return body

    def names(self) -> list[str]:
        out: list[str] = []
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    name = obj["Key"][len(self.prefix) :]
                    if NAME_RE.fullmatch(name) and ".." not in name:
                        out.append(name)
        except (BotoCoreError, ClientError) as exc:
            raise BlobStoreError("list", self.prefix, _reason(exc)) from None
        return sorted(out)


def _reason(exc: Exception) -> str:
    """A short public reason from a botocore error (its code when it has one)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code:
            return str(code)
    return type(exc).__name__
