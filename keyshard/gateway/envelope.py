"""Ciphertext blobs and encryption contexts, as the gateway writes and reads them.

A KMS ``CiphertextBlob`` is opaque to callers, but ``Decrypt`` must find the key from the blob
alone (symmetric KMS keys need no ``KeyId`` to decrypt), so the gateway's blob names its key::

    blob = MAGIC ("KSG") || version (1 byte, 1) || lp(key id, UTF-8) || Keyshard ciphertext

The Keyshard ciphertext is the SDK's threshold-ECIES ciphertext (CCA-secure, its proof bound to
the key), opened by t+1 nodes. Its associated data is :func:`associated_data`: the blob's header
and the encryption context, so a header naming another key, or a different context, fails the
check every node makes before it answers.

The encryption context is bound exactly as AWS KMS documents it: a set of non-secret string
pairs, exact and case-sensitive, whose order does not matter — Decrypt must repeat the same set.
It is encoded canonically (pairs sorted by key, each key and value length-prefixed UTF-8), so the
same set always gives the same bytes and no two sets give the same bytes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from wire.hashing import lp, lp_join

__all__ = [
    "BLOB_VERSION",
    "MAX_CONTEXT",
    "Blob",
    "BlobError",
    "ContextError",
    "associated_data",
    "check_context",
]

MAGIC = b"KSG"
BLOB_VERSION = 1
#: The largest encryption context accepted, in encoded bytes (AWS KMS allows 8,192 characters).
MAX_CONTEXT = 8192
_DOMAIN = b"keyshard-gateway/encryption-context/v1"
_KEY_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class BlobError(Exception):
    """Not a ciphertext blob of this gateway (public detail: which part is wrong)."""


class ContextError(Exception):
    """An encryption context that is not a map of strings, or too large."""


@dataclass(frozen=True, slots=True)
class Blob:
    key_id: str
    ciphertext: bytes

    def __post_init__(self) -> None:
        if not _KEY_ID.fullmatch(self.key_id):
            raise BlobError("the blob names no key id")

    def header(self) -> bytes:
        return MAGIC + bytes([BLOB_VERSION]) + lp(self.key_id.encode())

    def to_bytes(self) -> bytes:
        return self.header() + self.ciphertext

    @classmethod
    def from_bytes(cls, data: bytes) -> Blob:
        if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 1 + 4:
            raise BlobError("not a Keyshard gateway ciphertext blob")
        version = data[len(MAGIC)]
        if version != BLOB_VERSION:
            raise BlobError(f"ciphertext blob version {version} is not supported")
        offset = len(MAGIC) + 1
        length = int.from_bytes(data[offset : offset + 4], "big")
        if length > 64 or len(data) < offset + 4 + length:
            raise BlobError("the blob's key id is truncated")
        raw = data[offset + 4 : offset + 4 + length]
        try:
            key_id = raw.decode("ascii")
        except UnicodeDecodeError:
            raise BlobError("the blob names no key id") from None
        return cls(key_id, data[offset + 4 + length :])


def check_context(context: object) -> dict[str, str]:
    """The encryption context as a map of strings (absent: empty), or :class:`ContextError`."""
    if context is None:
        return {}
    if not isinstance(context, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and k for k, v in context.items()
    ):
        raise ContextError("EncryptionContext must map non-empty strings to strings")
    if len(_encode(context)) > MAX_CONTEXT:
        raise ContextError(f"EncryptionContext is larger than {MAX_CONTEXT} bytes")
    return dict(context)


def associated_data(blob: Blob, context: Mapping[str, str]) -> bytes:
    """What the Keyshard ciphertext is bound to: the blob header and the canonical context."""
    return lp_join((_DOMAIN, blob.header(), _encode(context)))


def _encode(context: Mapping[str, str]) -> bytes:
    return lp_join(lp(key.encode()) + lp(value.encode()) for key, value in sorted(context.items()))
