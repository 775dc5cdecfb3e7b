"""Sealing node state for the untrusted parent to keep: AES-256-GCM under the KMS data key.

A sealed blob is ``header || nonce || ciphertext-and-tag`` where the header is public and is also
the AEAD's associated data::

    magic "KSSB" | format u8 = 1 | len16 node_id | node_id | len16 name | name | version u64
    | nonce (12 bytes, random) | AES-256-GCM(data key, nonce, plaintext, aad = header)

The header binds the blob to one node, one blob name and one monotonic version. Unsealing never
trusts the header's node id or name: it checks them against the values the caller expects (a
swapped blob is refused with :class:`~enclave.errors.BlobMismatchError`, a public fact) and the AEAD then
authenticates exactly those values, so a header edited to pass the check fails the tag and raises
the opaque :class:`~enclave.errors.UnsealError`.

Rollback: what can and cannot be detected
-----------------------------------------
The enclave has no trusted storage and no trusted monotonic counter; KMS offers none either. So:

* within one enclave lifetime, :class:`SealedStore` remembers the highest version it has sealed or
  unsealed for every name and refuses anything lower (:class:`~enclave.errors.RollbackError`);
* across a restart, the store seals a *manifest* (every blob name with its current version) with
  every write, at the same store-wide epoch. On boot the manifest is unsealed first and every blob
  must be at least at the version the manifest lists, so the parent cannot roll back one blob while
  keeping the others, nor delete one (:class:`~enclave.errors.BlobMissingError`): only a consistent
  snapshot of the whole state is accepted;
* rolling the *whole* state back to an earlier consistent snapshot (an old manifest with its old
  blobs), or deleting it all, is not detectable by a lone enclave after a restart. The store's
  :attr:`SealedStore.epoch` is what the node's peers witness instead
  (:mod:`enclave.service.witness`): a node refuses to serve keys from state older than they saw.

Writes are crash-consistent: a blob is written before the manifest that names it, and a blob newer
than the manifest says is accepted (a crash between the two writes), never an older one.
"""

from __future__ import annotations

import asyncio
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from enclave.errors import (
    BlobFormatError,
    BlobMismatchError,
    BlobMissingError,
    RollbackError,
    UnsealError,
)
from enclave.secretbytes import SecretBytes
from wire import cbor
from wire.errors import MalformedMessageError

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "BlobHeader",
    "HostBlobs",
    "SealedStore",
    "Sealer",
]

MAGIC = b"KSSB"
FORMAT_VERSION = 1
NONCE_SIZE = 12
TAG_SIZE = 16
DATA_KEY_SIZE = 32
MAX_ID_LENGTH = 255
MAX_VERSION = 2**64 - 1
#: The reserved blob name of the manifest; callers cannot use it for their own blobs.
MANIFEST_NAME = "manifest"


def _check_identifier(field: str, value: str) -> bytes:
    encoded = value.encode("utf-8")
    if not 1 <= len(encoded) <= MAX_ID_LENGTH:
        raise BlobFormatError(field, f"length {len(encoded)} is outside 1..{MAX_ID_LENGTH}")
    return encoded


@dataclass(frozen=True, slots=True)
class BlobHeader:
    """The public, authenticated header of a sealed blob."""

    node_id: str
    name: str
    version: int

    def __post_init__(self) -> None:
        _check_identifier("node_id", self.node_id)
        _check_identifier("name", self.name)
        if type(self.version) is not int or not 0 <= self.version <= MAX_VERSION:
            raise BlobFormatError("version", "must be an integer in 0..2**64-1")

    def encode(self) -> bytes:
        node = self.node_id.encode("utf-8")
        name = self.name.encode("utf-8")
        return b"".join(
            (
                MAGIC,
                bytes([FORMAT_VERSION]),
                struct.pack(">H", len(node)),
                node,
                struct.pack(">H", len(name)),
                name,
                struct.pack(">Q", self.version),
            )
        )

    @classmethod
    def decode_prefix(cls, blob: bytes) -> tuple[BlobHeader, int]:
        """Parse the header at the start of ``blob``; return it and the offset just past it."""
        if blob[:4] != MAGIC:
            raise BlobFormatError("magic", "not a Keyshard sealed blob")
        if len(blob) < 5 or blob[4] != FORMAT_VERSION:
            raise BlobFormatError("format", "unknown sealed blob format version")
        offset = 5
        fields: list[str] = []
        for field in ("node_id", "name"):
            if len(blob) < offset + 2:
                raise BlobFormatError(field, "truncated length")
            (length,) = struct.unpack_from(">H", blob, offset)
            offset += 2
            raw = blob[offset : offset + length]
            if len(raw) != length:
                raise BlobFormatError(field, "truncated")
            try:
                fields.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                raise BlobFormatError(field, "not UTF-8") from None
            offset += length
        if len(blob) < offset + 8:
            raise BlobFormatError("version", "truncated")
        (version,) = struct.unpack_from(">Q", blob, offset)
        offset += 8
        return cls(fields[0], fields[1], version), offset


class Sealer:
    """Seals and unseals single blobs under one data key for one node. Pure: no I/O, no state."""

    def __init__(self, data_key: SecretBytes, node_id: str) -> None:
        if len(data_key) != DATA_KEY_SIZE:
            raise BlobFormatError("data_key", f"must be {DATA_KEY_SIZE} bytes")
        _check_identifier("node_id", node_id)
        self._aead = AESGCM(data_key.expose())
        self._node_id = node_id

    @property
    def node_id(self) -> str:
        return self._node_id

    def seal(self, name: str, version: int, plaintext: bytes) -> bytes:
        header = BlobHeader(self._node_id, name, version).encode()
        nonce = os.urandom(NONCE_SIZE)
        return header + nonce + self._aead.encrypt(nonce, plaintext, header)

    def unseal(self, name: str, blob: bytes, *, min_version: int = 0) -> tuple[int, bytes]:
        """Return ``(version, plaintext)`` of a blob sealed by this node under ``name``.

        Raises :class:`BlobFormatError`, :class:`BlobMismatchError` (another node's or another name's
        blob), :class:`RollbackError` (``version < min_version``) on the public header, and the
        opaque :class:`UnsealError` when the AEAD refuses.
        """
        header, offset = BlobHeader.decode_prefix(blob)
        if header.node_id != self._node_id:
            raise BlobMismatchError("node_id", self._node_id, header.node_id)
        if header.name != name:
            raise BlobMismatchError("name", name, header.name)
        if header.version < min_version:
            raise RollbackError(name, min_version, header.version)
        if len(blob) < offset + NONCE_SIZE + TAG_SIZE:
            raise BlobFormatError("ciphertext", "shorter than nonce and tag")
        expected_header = BlobHeader(self._node_id, name, header.version).encode()
        nonce = blob[offset : offset + NONCE_SIZE]
        try:
            plaintext = self._aead.decrypt(nonce, blob[offset + NONCE_SIZE :], expected_header)
        except InvalidTag:
            raise UnsealError from None
        return header.version, plaintext


class HostBlobs(Protocol):
    """Where sealed blobs go: the parent's blob store, reached over host services."""

    async def put_blob(self, name: str, data: bytes) -> None: ...

    async def get_blob(self, name: str) -> bytes | None: ...


def _decode_manifest(plaintext: bytes) -> tuple[int, dict[str, int]]:
    """Parse the unsealed manifest, ``{"epoch": int, "blobs": {name: version}}`` in canonical CBOR.

    A sealed plaintext: refused with a fixed message, never the codec's detail about its bytes.
    """
    try:
        decoded = cbor.loads_map(plaintext, what=MANIFEST_NAME, fields={"epoch", "blobs"})
    except MalformedMessageError:
        raise BlobFormatError("manifest", "must be a canonical map of epoch and blobs") from None
    epoch, blobs = decoded["epoch"], decoded["blobs"]
    if type(epoch) is not int or not isinstance(blobs, dict):
        raise BlobFormatError("manifest", "wrong field types")
    for name, version in blobs.items():
        if type(name) is not str or type(version) is not int or version > epoch:
            raise BlobFormatError("manifest", "malformed blob entry")
    return epoch, dict(blobs)


class SealedStore:
    """The node's sealed state at the parent: named blobs plus a sealed manifest of their versions.

    Versions are one store-wide epoch that increases with every write, so the manifest sealed at
    epoch ``e`` vouches for every blob version up to ``e``. See the module docstring for what this
    does and does not detect.
    """

    def __init__(self, sealer: Sealer, host: HostBlobs) -> None:
        self._sealer = sealer
        self._host = host
        self._epoch = 0
        self._listed: dict[str, int] = {}
        self._seen: dict[str, int] = {}
        self._loaded = False
        # One writer at a time: each put takes the next epoch and rewrites the manifest.
        self._lock = asyncio.Lock()

    @property
    def epoch(self) -> int:
        """The highest version sealed or accepted so far (0: nothing sealed yet)."""
        return self._epoch

    @property
    def versions(self) -> Mapping[str, int]:
        return dict(self._listed)

    async def load(self) -> bool:
        """Unseal the manifest if the parent has one. Returns ``False`` for a fresh node."""
        blob = await self._host.get_blob(MANIFEST_NAME)
        self._loaded = True
        if blob is None:
            if self._epoch:
                raise BlobMissingError(MANIFEST_NAME, self._epoch)
            return False
        version, plaintext = self._sealer.unseal(
            MANIFEST_NAME, blob, min_version=self._seen.get(MANIFEST_NAME, 0)
        )
        epoch, listed = _decode_manifest(plaintext)
        if epoch != version:
            raise BlobFormatError("manifest", "epoch differs from the sealed version")
        self._epoch = max(self._epoch, epoch)
        self._seen[MANIFEST_NAME] = version
        self._listed = listed
        return True

    async def get(self, name: str) -> bytes | None:
        """The plaintext of ``name``, or ``None`` if it was never sealed by this store."""
        self._require_loaded()
        self._check_name(name)
        floor = max(self._listed.get(name, 0), self._seen.get(name, 0))
        blob = await self._host.get_blob(name)
        if blob is None:
            if floor:
                raise BlobMissingError(name, floor)
            return None
        version, plaintext = self._sealer.unseal(name, blob, min_version=floor)
        self._seen[name] = version
        self._epoch = max(self._epoch, version)
        return plaintext

    async def put(self, name: str, plaintext: bytes) -> int:
        """Seal ``plaintext`` as ``name`` at the next epoch; returns that epoch."""
        self._require_loaded()
        self._check_name(name)
        async with self._lock:
            epoch = self._epoch + 1
            await self._host.put_blob(name, self._sealer.seal(name, epoch, plaintext))
            listed = {**self._listed, name: epoch}
            manifest = cbor.dumps({"epoch": epoch, "blobs": listed})
            sealed_manifest = self._sealer.seal(MANIFEST_NAME, epoch, manifest)
            await self._host.put_blob(MANIFEST_NAME, sealed_manifest)
            self._epoch = epoch
            self._listed = listed
            self._seen[name] = epoch
            self._seen[MANIFEST_NAME] = epoch
            return epoch

    def _require_loaded(self) -> None:
        if not self._loaded:
            raise BlobFormatError("manifest", "load() must run before get() or put()")

    @staticmethod
    def _check_name(name: str) -> None:
        if name == MANIFEST_NAME:
            raise BlobFormatError("name", f"{MANIFEST_NAME!r} is reserved")
        _check_identifier("name", name)
