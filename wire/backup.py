"""What a share backup's verifiable encryptions are bound to: the one label nodes and clients share.

Each holder's publicly verifiable encryption (:mod:`enclave.mpc.pve`) proves a statement whose
label is :func:`backup_label` of the key as the holder holds it: name, suite, the canonical
public key package (group key, threshold, every verification share), epoch and approval policy
(its canonical encoding, empty for none: a restored key keeps its policy, and a file whose policy
was stripped or changed no longer verifies). The node computes
it from its sealed key, the verifier of a backup file from the file's fields; an encryption made
for another key, another epoch (before a refresh) or another committee never verifies.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from wire import cbor
from wire.checks import check_bytes, check_key_name, check_node_id
from wire.errors import MalformedMessageError
from wire.hashing import lp_join

__all__ = ["RestoredShare", "backup_label"]

_LABEL_DOMAIN = b"keyshard/backup/v1"
_RESTORE_VERSION = 1
_RESTORE_FIELDS = frozenset({"v", "key", "node", "identifier", "package_sha256", "share"})


def backup_label(
    key_name: str, suite: str, public_key_package: bytes, epoch: int, policy: bytes
) -> bytes:
    """The domain-separated, length-prefixed label of one key's backup."""
    return lp_join(
        (
            _LABEL_DOMAIN,
            key_name.encode(),
            suite.encode(),
            public_key_package,
            epoch.to_bytes(8, "big"),
            policy,
        )
    )


@dataclass(frozen=True, slots=True, repr=False)
class RestoredShare:
    """The plaintext a restoring client seals (libsodium ``crypto_box_seal``) to one node's
    attested per-boot box key: one share, addressed to one node and one key's package.

    The node refuses it unless ``key``, ``node`` and ``identifier`` are its own request's and
    ``package_sha256`` is the SHA-256 of the package it is asked to hold, so a sealed share
    cannot be replayed to another node, name or package. ``share`` is secret (never printed).
    """

    key_name: str
    node_id: str
    identifier: int
    package_sha256: bytes
    share: bytes

    def __post_init__(self) -> None:
        check_key_name(self.key_name, "key")
        check_node_id(self.node_id, "node")
        if type(self.identifier) is not int or not 1 <= self.identifier <= 255:
            raise MalformedMessageError("identifier", "must be a party identifier 1..255")
        check_bytes("package_sha256", self.package_sha256, 32, 32)
        check_bytes("share", self.share, 32, 32)

    def __repr__(self) -> str:
        return f"RestoredShare({self.key_name}, {self.node_id}, {self.identifier}, <redacted>)"

    @staticmethod
    def package_digest(public_key_package: bytes) -> bytes:
        return hashlib.sha256(public_key_package).digest()

    def encode(self) -> bytes:
        return cbor.dumps(
            {
                "v": _RESTORE_VERSION,
                "key": self.key_name,
                "node": self.node_id,
                "identifier": self.identifier,
                "package_sha256": self.package_sha256,
                "share": self.share,
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> RestoredShare:
        value = cbor.loads_map(data, what="restored share", fields=_RESTORE_FIELDS)
        if value["v"] != _RESTORE_VERSION:
            raise MalformedMessageError("restored share", "unknown version")
        return cls(
            value["key"],
            value["node"],
            value["identifier"],
            value["package_sha256"],
            value["share"],
        )
