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

Threshold ECDSA (DJNPO20) keys sign the same way with the same files, tagged ``scheme: "ecdsa"``
(a FROST file carries no tag, so the files written before ECDSA decode unchanged):

1. **presign** (online side, while the offline node is still reachable): a presigning run among
   ``2t + 1`` holders that include the offline node; each presignature's secret halves stay in
   the presigners' enclave memory (single use, never sealed: a reboot of any presigner drops
   them; the nodes also let them expire after an hour), and the :class:`CommitmentsFile` carries
   their public descriptions (:class:`PresignatureDescription`).
2. **prepare**: the online presigners sign the message with one described presignature; the
   :class:`PackageFile`'s ``package`` is an :class:`EcdsaPackage` (the presignature, the message,
   the request's entropy).
3. **sign**: the offline node checks the approvals first (a refused package spends nothing),
   then takes that presignature out of its pool (single use, whatever follows) and answers its
   share. The same package again: refused
   (``nonce_unknown``), the presignature is gone.
4. **combine**: the ``2t + 1`` shares are interpolated; the signature is returned only if it
   verifies (an ECDSA share cannot be checked alone: the shares lie on a degree-``2t`` polynomial
   with no redundancy, so the check is the final signature's, as DJNPO20 prescribes).

A node that was never reachable (booted offline) presigns by files instead of step 1: the three
presigning rounds travel as one :class:`PresignRunFile` carried back and forth five times
(``stage`` 1..5, odd stages answered by the air-gapped side): open (online: the session and the
online presigners' attestation documents) -> the offline node starts -> the online presigners
start and take round one -> the offline node takes rounds one and two -> the online presigners
take rounds two and three -> the offline node takes round three and publishes the
presignatures' descriptions (the :class:`CommitmentsFile`). The envelopes are crypto_box
sealed to each recipient's per-boot key, so the file holds no secret; each carrying of a
document (stages 1 and 2) must fit in the documents' maximum age (5 minutes by default), and a
failed step ends the run on that node (open a new one).

The presignatures belong, on every presigner, to the client (TLS certificate) that presigned:
the air-gapped side must sign with the same client credentials as the online side.

The files are canonical CBOR; none holds a secret (a signature share under a one-time nonce
reveals nothing of the share), and each names the key, its public key and the node, so a file is
never applied to another key. Tampering is caught, not trusted away: a wrong FROST commitment or
share fails aggregation and names the node; a wrong ECDSA share fails the signature's check.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from enclave.mpc.ecdsa import PresignatureInfo
from enclave.mpc.errors import MpcError
from enclave.mpc.frost.round2 import SigningPackage
from enclave.mpc.identifiers import Identifier
from enclave.mpc.keys import PublicKeyPackage
from keyshard.client.errors import InvalidInputError, ProtocolError
from wire import cbor
from wire.checks import check_key_name, check_node_id
from wire.errors import MalformedMessageError
from wire.messages import presign_batch_session_id

__all__ = [
    "ECDSA",
    "FROST",
    "CommitmentsFile",
    "EcdsaPackage",
    "PackageFile",
    "PartialFile",
    "PresignRunFile",
    "PresignatureDescription",
    "WitnessReportsFile",
    "WitnessRequestFile",
    "package_digest",
]

_VERSION = 1
#: The ``scheme`` tag of a file: FROST files carry none (the files before ECDSA), ECDSA ones do.
FROST = "frost"
ECDSA = "ecdsa"
_SCHEMES = (FROST, ECDSA)


def package_digest(package: bytes) -> bytes:
    """What a partial names: SHA-256 of the exact signing package it signed."""
    return hashlib.sha256(b"keyshard/offline-package/v1" + package).digest()


def _load(data: bytes, kind: str, fields: set[str], *, tagged: bool = False) -> dict[str, Any]:
    """A file of ``kind`` with exactly ``fields``; ``tagged``: it may also carry a ``scheme``
    (absent: FROST), which is then checked and set in the returned map."""
    try:
        value = cbor.loads_map(data, what=kind, version=_VERSION)
        expected = {"v", "kind", *fields}
        if set(value) != expected and not (tagged and set(value) == {*expected, "scheme"}):
            raise MalformedMessageError(kind, "missing or unknown fields")
        if tagged:
            value.setdefault("scheme", FROST)
            if value["scheme"] not in _SCHEMES:
                raise MalformedMessageError(kind, f"unknown scheme {value['scheme']!r}")
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


def _tag(scheme: str) -> dict[str, str]:
    """The ``scheme`` field of an encoded file: none for FROST (as before ECDSA was added)."""
    if scheme not in _SCHEMES:
        raise ValueError(f"unknown offline scheme {scheme!r}")
    return {} if scheme == FROST else {"scheme": scheme}


def _map(data: bytes, what: str, fields: set[str]) -> dict[str, Any]:
    try:
        return cbor.loads_map(data, what=what, fields=fields)
    except MalformedMessageError as error:
        raise InvalidInputError(f"not a {what}: {error}") from None


@dataclass(frozen=True, slots=True)
class PresignatureDescription:
    """The public description of one ECDSA presignature (what a combiner needs; no secret):
    the presigning session, the presignature id, the nonce point ``R`` and the ``2t + 1``
    presigners' party identifiers. One item of an ECDSA :class:`CommitmentsFile`."""

    session_id: bytes
    presignature_id: bytes
    big_r: bytes
    parties: tuple[int, ...]

    WHAT = "presignature description"

    @classmethod
    def of(cls, info: PresignatureInfo) -> PresignatureDescription:
        return cls(
            info.session_id,
            info.presignature_id,
            info.big_r.to_bytes(),
            tuple(int(p) for p in info.parties),
        )

    def to_info(self, public: PublicKeyPackage) -> PresignatureInfo:
        """The presignature under the key ``public``; :class:`InvalidInputError` if the point
        or the parties are not valid for that key."""
        if not set(self.parties) <= {int(i) for i in public.identifiers}:
            raise InvalidInputError(f"not a valid {self.WHAT}: presigners the key does not have")
        try:
            return PresignatureInfo(
                public,
                tuple(Identifier.from_int(public.group, p) for p in self.parties),
                self.session_id,
                self.presignature_id,
                public.group.decode_point(self.big_r),
            )
        except (MpcError, ValueError) as error:
            raise InvalidInputError(f"not a valid {self.WHAT}: {error}") from None

    def encode(self) -> bytes:
        return cbor.dumps(
            {
                "session": self.session_id,
                "id": self.presignature_id,
                "big_r": self.big_r,
                "parties": list(self.parties),
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> PresignatureDescription:
        value = _map(data, cls.WHAT, {"session", "id", "big_r", "parties"})
        parties = value["parties"]
        if (
            not all(type(value[f]) is bytes for f in ("session", "id", "big_r"))
            or not isinstance(parties, list)
            or not all(type(p) is int and 0 < p < 2**16 for p in parties)
            or len(set(parties)) != len(parties)
            or len(value["id"]) != 32
            or len(value["session"]) != 32
        ):
            raise InvalidInputError(f"not a {cls.WHAT}: wrong field types")
        return cls(value["session"], value["id"], value["big_r"], tuple(sorted(parties)))


@dataclass(frozen=True, slots=True)
class EcdsaPackage:
    """What an ECDSA :class:`PackageFile` asks the offline node to sign: the message (hashed
    with SHA-256 by every signer) with the described presignature and the request's fresh
    entropy (every presigner must use the same, or the shares do not combine)."""

    presignature: PresignatureDescription
    message: bytes
    entropy: bytes

    WHAT = "ECDSA signing package"

    def encode(self) -> bytes:
        return cbor.dumps(
            {
                "presignature": self.presignature.encode(),
                "message": self.message,
                "entropy": self.entropy,
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> EcdsaPackage:
        value = _map(data, cls.WHAT, {"presignature", "message", "entropy"})
        if not all(type(value[f]) is bytes for f in ("presignature", "message", "entropy")):
            raise InvalidInputError(f"not an {cls.WHAT}: wrong field types")
        if len(value["entropy"]) != 32:
            raise InvalidInputError(f"not an {cls.WHAT}: the entropy is 32 bytes")
        presignature = PresignatureDescription.decode(value["presignature"])
        return cls(presignature, value["message"], value["entropy"])


@dataclass(frozen=True, slots=True)
class CommitmentsFile:
    """What an offline node holds in advance for ``key_name``, published (each usable once):
    FROST nonce commitments, or (``scheme`` ECDSA) encoded :class:`PresignatureDescription` s
    of presignatures made with it."""

    key_name: str
    node_id: str
    public_key: bytes
    commitments: tuple[bytes, ...]
    #: The node's party identifier for the key (the online side may not know the node at all).
    identifier: int = 0
    scheme: str = FROST

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
            | _tag(self.scheme)
        )

    @classmethod
    def decode(cls, data: bytes) -> CommitmentsFile:
        fields = {"key", "node", "public_key", "commitments", "identifier"}
        value = _load(data, cls.KIND, fields, tagged=True)
        if type(value["public_key"]) is not bytes or type(value["identifier"]) is not int:
            raise InvalidInputError("not a Keyshard offline-commitments file: wrong field types")
        commitments = _bytes_list(value["commitments"], cls.KIND)
        return cls(
            value["key"],
            value["node"],
            value["public_key"],
            commitments,
            value["identifier"],
            value["scheme"],
        )

    def presignature(self, index: int) -> PresignatureDescription:
        """ECDSA: the description of presignature ``index``."""
        if self.scheme != ECDSA:
            raise InvalidInputError("these are FROST nonce commitments, not presignatures")
        if not 0 <= index < len(self.commitments):
            raise InvalidInputError(f"no presignature {index} in this file")
        return PresignatureDescription.decode(self.commitments[index])


@dataclass(frozen=True, slots=True)
class PackageFile:
    """One signature's package for the offline node ``node_id``, with its approvals and the
    online holders' signature shares (by node id) kept for :meth:`Coordinator.combine_offline`.
    ``package``: a FROST ``SigningPackage``, or (``scheme`` ECDSA) an :class:`EcdsaPackage`."""

    key_name: str
    node_id: str
    public_key: bytes
    package: bytes
    approvals: tuple[bytes, ...]
    online_shares: Mapping[str, bytes]
    scheme: str = FROST

    KIND = "offline-package"

    def message(self) -> bytes:
        """The message the package signs; :class:`InvalidInputError` for a broken package."""
        if self.scheme == ECDSA:
            return self.ecdsa().message
        try:
            return SigningPackage.from_bytes(self.package).message
        except MpcError as error:
            raise InvalidInputError(f"not a signing package: {error}") from None

    def ecdsa(self) -> EcdsaPackage:
        """The ECDSA package (:class:`InvalidInputError` for a FROST one)."""
        if self.scheme != ECDSA:
            raise InvalidInputError("this is a FROST package")
        return EcdsaPackage.decode(self.package)

    def message_sha256(self) -> bytes:
        """SHA-256 of the message the package signs (what an offline operator is shown)."""
        return hashlib.sha256(self.message()).digest()

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
            | _tag(self.scheme)
        )

    @classmethod
    def decode(cls, data: bytes) -> PackageFile:
        fields = {"key", "node", "public_key", "package", "approvals", "shares"}
        value = _load(data, cls.KIND, fields, tagged=True)
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
            value["key"],
            value["node"],
            value["public_key"],
            value["package"],
            approvals,
            shares,
            value["scheme"],
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


#: Presigning envelope rounds: 1 the deals (start), 2 and 3 the openings.
PRESIGN_FILE_ROUNDS = 3
#: Stages of a :class:`PresignRunFile`: the file at stage k is answered by the air-gapped side
#: when k is odd, by the online side when even; stage 5's answer is the presignatures' file.
PRESIGN_FILE_STAGES = 5
#: The presigning rounds each stage's answer takes (0: start; k: the round-k envelopes in):
#: the offline node starts; the online presigners start and take round 1; the offline node takes
#: rounds 1 and 2; the online presigners take 2 and 3 (and finish); the offline node takes 3.
STAGE_ROUNDS: Mapping[int, tuple[int, ...]] = {1: (0,), 2: (0, 1), 3: (1, 2), 4: (2, 3), 5: (3,)}


@dataclass(frozen=True, slots=True)
class PresignRunFile:
    """One presigning run (DJNPO20, three rounds) between online presigners and the offline
    node ``node_id``, carried by hand: every envelope produced so far (crypto_box sealed to its
    recipient's boot key) as ``(round, sender, recipient, envelope)``, the participants'
    documents and party identifiers, and, once the online presigners finished, the
    presignatures' ids and nonce points for the offline node to check its own against."""

    key_name: str
    node_id: str
    public_key: bytes
    session_id: bytes
    count: int
    stage: int
    parties: Mapping[str, int]
    documents: Mapping[str, bytes]
    envelopes: tuple[tuple[int, str, str, bytes], ...] = ()
    presignature_ids: tuple[bytes, ...] = ()
    big_rs: tuple[bytes, ...] = ()

    KIND = "offline-presign"

    @property
    def air_gapped_turn(self) -> bool:
        """Whether the air-gapped side answers this file (odd stages)."""
        return self.stage % 2 == 1

    def inbox(self, node_id: str, round_: int) -> tuple[bytes, ...]:
        """The envelopes of ``round_`` addressed to ``node_id``."""
        return tuple(e for r, _, to, e in self.envelopes if r == round_ and to == node_id)

    def with_outboxes(
        self, round_: int, outboxes: Mapping[str, Mapping[str, bytes]]
    ) -> PresignRunFile:
        """This run with the envelopes of ``round_`` each sender addressed to every other
        participant (:class:`ProtocolError` naming a sender whose outbox is misaddressed)."""
        for sender, outbox in outboxes.items():
            if set(outbox) != set(self.parties) - {sender}:
                raise ProtocolError(
                    f"{sender}'s presign round {round_} outbox is misaddressed", culprit=sender
                )
        added = tuple(
            (round_, sender, to, envelope)
            for sender, outbox in sorted(outboxes.items())
            for to, envelope in sorted(outbox.items())
        )
        return replace(self, envelopes=self.envelopes + added)

    def published(self) -> CommitmentsFile:
        """The presignatures' file of a finished run (stage 5: ids and nonce points known)."""
        parties = tuple(sorted(self.parties.values()))
        descriptions = tuple(
            PresignatureDescription(
                presign_batch_session_id(self.session_id, k), pid, big_r, parties
            ).encode()
            for k, (pid, big_r) in enumerate(zip(self.presignature_ids, self.big_rs, strict=True))
        )
        return CommitmentsFile(
            self.key_name,
            self.node_id,
            self.public_key,
            descriptions,
            self.parties[self.node_id],
            ECDSA,
        )

    def encode(self) -> bytes:
        return cbor.dumps(
            {
                "v": _VERSION,
                "kind": self.KIND,
                "key": self.key_name,
                "node": self.node_id,
                "public_key": self.public_key,
                "session": self.session_id,
                "count": self.count,
                "stage": self.stage,
                "parties": dict(sorted(self.parties.items())),
                "documents": dict(sorted(self.documents.items())),
                "envelopes": [list(e) for e in self.envelopes],
                "ids": list(self.presignature_ids),
                "big_rs": list(self.big_rs),
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> PresignRunFile:
        fields = {"key", "node", "public_key", "session", "count", "stage", "parties"}
        fields |= {"documents", "envelopes", "ids", "big_rs"}
        value = _load(data, cls.KIND, fields)
        wrong = InvalidInputError(f"not a Keyshard {cls.KIND} file: wrong field types")
        parties, envelopes = value["parties"], value["envelopes"]
        if (
            type(value["public_key"]) is not bytes
            or type(value["session"]) is not bytes
            or len(value["session"]) != 32
            or type(value["count"]) is not int
            or type(value["stage"]) is not int
            or not 1 <= value["stage"] <= PRESIGN_FILE_STAGES
            or not isinstance(parties, dict)
            or not all(type(k) is str and type(v) is int and v > 0 for k, v in parties.items())
            or not isinstance(envelopes, list)
        ):
            raise wrong
        records = []
        for record in envelopes:
            if (
                not isinstance(record, list)
                or len(record) != 4
                or type(record[0]) is not int
                or not 1 <= record[0] <= PRESIGN_FILE_ROUNDS
                or type(record[1]) is not str
                or type(record[2]) is not str
                or type(record[3]) is not bytes
            ):
                raise wrong
            records.append((record[0], record[1], record[2], record[3]))
        ids = _bytes_list(value["ids"], cls.KIND)
        big_rs = _bytes_list(value["big_rs"], cls.KIND)
        if len(ids) != len(big_rs):
            raise wrong
        return cls(
            value["key"],
            value["node"],
            value["public_key"],
            value["session"],
            value["count"],
            value["stage"],
            parties,
            _documents(value["documents"], cls.KIND),
            tuple(records),
            ids,
            big_rs,
        )
