"""Offline partial signatures (issue 11): the files that travel between the online side and a
node with no network, carried by hand.

A FROST key one of whose holders is offline signs in four steps, each a file:

1. **commit** (air-gapped side): the offline node preprocesses nonces and publishes their
   commitments (:class:`CommitmentsFile`) — RFC 9591 round one, run ahead of time.
2. **prepare** (online side): for one message, the online holders sign at once with their own
   fresh nonces, in a package that also carries one of the offline node's published commitments;
   the :class:`PackageFile` holds the package, the approvals, and the online signature shares.
3. **sign** (air-gapped side): the offline node checks the approvals against the key's sealed
   policy, takes the nonces behind its commitment out of its table (single use, whatever
   follows) and answers its signature share (:class:`PartialFile`). The same package a second
   time is refused (``nonce_unknown``): the nonces are gone.
4. **combine** (online side): every share is verified and aggregated; the signature is returned
   only if it verifies under the key.

After every boot a node serves no key until its peers' witness reports show its sealed state is
not older than they saw (:mod:`enclave.service.witness`); an offline node gets them by file too:
it writes its fresh attestation document (:class:`WitnessRequestFile`), the online side asks the
peers for their reports sealed to that boot's box key (:class:`WitnessReportsFile`, each with the
peer's own fresh document), and the offline node is shown them. Documents are refused once older
than the image's maximum age (5 minutes by default): the round trip must fit in it.

The files are canonical CBOR; none holds a secret (a signature share under a one-time nonce
reveals nothing of the share), and each names the key, its public key and the node, so a file is
never applied to another key. Tampering is caught, not trusted away: a wrong commitment or share
fails aggregation and names the node.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from enclave.mpc.errors import MpcError
from enclave.mpc.frost.round2 import SigningPackage
from keyshard.client.errors import InvalidInputError
from wire import cbor
from wire.checks import check_key_name, check_node_id
from wire.errors import MalformedMessageError

__all__ = [
    "CommitmentsFile",
    "PackageFile",
    "PartialFile",
    "WitnessReportsFile",
    "WitnessRequestFile",
    "package_digest",
]

_VERSION = 1


def package_digest(package: bytes) -> bytes:
    """What a partial names: SHA-256 of the exact signing package it signed."""
    return hashlib.sha256(b"keyshard/offline-package/v1" + package).digest()


def _load(data: bytes, kind: str, fields: set[str]) -> dict[str, Any]:
    try:
        value = cbor.loads_map(data, what=kind, fields={"v", "kind", *fields}, version=_VERSION)
        if value["kind"] != kind:
            raise MalformedMessageError(kind, f"this is a {value['kind']!r} file")
        if "key" in fields:
            check_key_name(value["key"])
        check_node_id(value["node"])
    except MalformedMessageError as error:
        raise InvalidInputError(f"not a Keyshard {kind} file: {error}") from None
    return value


def _bytes_list(value: object, kind: str) -> tuple[bytes, ...]:
    if not isinstance(value, list) or not all(type(v) is bytes for v in value):
        raise InvalidInputError(f"not a Keyshard {kind} file: a list of byte strings expected")
    return tuple(value)


@dataclass(frozen=True, slots=True)
class CommitmentsFile:
    """Nonce commitments an offline node published for ``key_name`` (each used at most once)."""

    key_name: str
    node_id: str
    public_key: bytes
    commitments: tuple[bytes, ...]
    #: The node's party identifier for the key (the online side may not know the node at all).
    identifier: int = 0

    KIND = "offline-commitments"

    def encode(self) -> bytes:
        return cbor.dumps(
            {
                "v": _VERSION,
                "kind": self.KIND,
                "key": self.key_name,
                "node": self.node_id,
                "public_key": self.public_key,
                "commitments": list(self.commitments),
                "identifier": self.identifier,
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> CommitmentsFile:
        value = _load(data, cls.KIND, {"key", "node", "public_key", "commitments", "identifier"})
        if type(value["public_key"]) is not bytes or type(value["identifier"]) is not int:
            raise InvalidInputError("not a Keyshard offline-commitments file: wrong field types")
        commitments = _bytes_list(value["commitments"], cls.KIND)
        return cls(
            value["key"], value["node"], value["public_key"], commitments, value["identifier"]
        )


@dataclass(frozen=True, slots=True)
class PackageFile:
    """One signature's package for the offline node ``node_id``, with its approvals and the
    online holders' signature shares (by node id) kept for :meth:`Coordinator.combine_offline`."""

    key_name: str
    node_id: str
    public_key: bytes
    package: bytes
    approvals: tuple[bytes, ...]
    online_shares: Mapping[str, bytes]

    KIND = "offline-package"

    def message_sha256(self) -> bytes:
        """SHA-256 of the message the package signs (what an offline operator is shown)."""
        try:
            return hashlib.sha256(SigningPackage.from_bytes(self.package).message).digest()
        except MpcError as error:
            raise InvalidInputError(f"not a signing package: {error}") from None

    def encode(self) -> bytes:
        return cbor.dumps(
            {
                "v": _VERSION,
                "kind": self.KIND,
                "key": self.key_name,
                "node": self.node_id,
                "public_key": self.public_key,
                "package": self.package,
                "approvals": list(self.approvals),
                "shares": dict(sorted(self.online_shares.items())),
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> PackageFile:
        fields = {"key", "node", "public_key", "package", "approvals", "shares"}
        value = _load(data, cls.KIND, fields)
        shares = value["shares"]
        if (
            type(value["public_key"]) is not bytes
            or type(value["package"]) is not bytes
            or not isinstance(shares, dict)
            or not all(type(k) is str and type(v) is bytes for k, v in shares.items())
        ):
            raise InvalidInputError("not a Keyshard offline-package file: wrong field types")
        approvals = _bytes_list(value["approvals"], cls.KIND)
        return cls(
            value["key"], value["node"], value["public_key"], value["package"], approvals, shares
        )


@dataclass(frozen=True, slots=True)
class PartialFile:
    """The offline node's signature share over the package whose digest it names."""

    key_name: str
    node_id: str
    digest: bytes
    share: bytes

    KIND = "offline-partial"

    def encode(self) -> bytes:
        return cbor.dumps(
            {
                "v": _VERSION,
                "kind": self.KIND,
                "key": self.key_name,
                "node": self.node_id,
                "digest": self.digest,
                "share": self.share,
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> PartialFile:
        value = _load(data, cls.KIND, {"key", "node", "digest", "share"})
        if type(value["digest"]) is not bytes or type(value["share"]) is not bytes:
            raise InvalidInputError("not a Keyshard offline-partial file: wrong field types")
        return cls(value["key"], value["node"], value["digest"], value["share"])


def _documents(value: object, kind: str) -> dict[str, bytes]:
    if not isinstance(value, dict) or not all(
        type(k) is str and type(v) is bytes for k, v in value.items()
    ):
        raise InvalidInputError(f"not a Keyshard {kind} file: node ids to bytes expected")
    return value


@dataclass(frozen=True, slots=True)
class WitnessRequestFile:
    """An offline node's attestation document of its current boot (binding its box key)."""

    node_id: str
    document: bytes

    KIND = "offline-witness-request"

    def encode(self) -> bytes:
        return cbor.dumps(
            {
                "v": _VERSION,
                "kind": self.KIND,
                "node": self.node_id,
                "document": self.document,
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> WitnessRequestFile:
        value = _load(data, cls.KIND, {"node", "document"})
        if type(value["document"]) is not bytes:
            raise InvalidInputError("not a Keyshard offline-witness-request file: document")
        return cls(value["node"], value["document"])


@dataclass(frozen=True, slots=True)
class WitnessReportsFile:
    """Peers' witness reports on ``node_id`` (sealed to its box key), with their documents."""

    node_id: str
    documents: Mapping[str, bytes]
    envelopes: Mapping[str, bytes]

    KIND = "offline-witness-reports"

    def encode(self) -> bytes:
        return cbor.dumps(
            {
                "v": _VERSION,
                "kind": self.KIND,
                "node": self.node_id,
                "documents": dict(sorted(self.documents.items())),
                "envelopes": dict(sorted(self.envelopes.items())),
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> WitnessReportsFile:
        value = _load(data, cls.KIND, {"node", "documents", "envelopes"})
        documents = _documents(value["documents"], cls.KIND)
        envelopes = _documents(value["envelopes"], cls.KIND)
        if set(documents) != set(envelopes):
            raise InvalidInputError("not a Keyshard offline-witness-reports file: peers differ")
        return cls(value["node"], documents, envelopes)
