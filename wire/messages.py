"""The node service's wire protocol: versioned, closed request and reply types with request ids.

Each frame (:mod:`transport.framing`, at most :data:`MAX_FRAME`) is one canonical CBOR map
(:mod:`wire.cbor`)::

    {"v": 1, "id": <request id>, "op": <name>, <field>: <value>, ...}

with exactly the fields of that type, except that a field a type lists in ``OPTIONAL`` (added
after the type first shipped) is left out while it holds its default and refused when present with
it: a frame of an older peer, which never had the field, still decodes, and every value keeps
one encoding. ``id`` is chosen by the client, unique among its requests in
flight on one channel; the reply carries the id of the request it answers, so replies may come
back in any order and many requests share one channel. Decoding refuses other versions,
non-canonical encodings, unknown ops, missing or extra fields and wrong types; every type also
validates its values on construction (sizes, names, counts), so a value that exists is a valid one.

:data:`REPLIES` is the one request -> reply table; an :class:`ErrorReply` (an :class:`ErrorCode`
and public text) may answer any request. MPC payloads travel as the MPC core's own canonical
encodings (bytes); DKG and presigning payloads travel as crypto_box envelopes the client cannot
open. Approvals (:mod:`wire.approvals`) travel as lists of encoded approvals.

Batches: :class:`FrostSign` and :class:`EcdsaSign` carry up to :data:`MAX_BATCH` items in parallel
lists (item ``i`` of every list belongs together), answered by one :class:`SignatureShares`;
:class:`DecryptPartials` likewise, answered by one :class:`Partials`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from types import MappingProxyType
from typing import Any, ClassVar

from wire import cbor
from wire.approvals import MAX_APPROVERS, ApprovalPolicy
from wire.checks import MAX_BLOB, check_bytes, check_key_name, check_node_id, check_suite_name
from wire.errors import ErrorCode, MalformedMessageError
from wire.hashing import lp_join

__all__ = [
    "DEFAULT_DELETION_DAYS",
    "ENDORSEMENT_SIZE",
    "KEY_ACTIONS",
    "KEY_STATES",
    "MAX_AUDIT_RECEIPTS",
    "MAX_BATCH",
    "MAX_DELETION_DAYS",
    "MAX_FRAME",
    "MAX_NONCES",
    "MAX_PARTICIPANTS",
    "MAX_PATH",
    "MAX_PRESIGN_BATCH",
    "MAX_TWEAKS",
    "MIN_DELETION_DAYS",
    "PRF_MODES",
    "PROTOCOL_VERSION",
    "REPLIES",
    "RESHARE_ROLES",
    "SERVICE_PORT",
    "AuditHead",
    "AuditReceipts",
    "AuditReceiptsReply",
    "BackupShare",
    "Bip340NonceCommit",
    "Bip340Sign",
    "CheckpointQuery",
    "CheckpointRecord",
    "DecryptPartial",
    "DecryptPartials",
    "DkgOutbox",
    "DkgStep",
    "EcdsaSign",
    "Endorsed",
    "ErrorReply",
    "ExportedShare",
    "FrostSign",
    "Hello",
    "HelloReply",
    "KeyCommit",
    "KeyCommitted",
    "KeyCreate",
    "KeyCreated",
    "KeyExport",
    "KeyImport",
    "KeyInfo",
    "KeyInfoReply",
    "KeyList",
    "KeyListReply",
    "KeyRefresh",
    "KeyRestore",
    "KeyRestored",
    "KeySetState",
    "KeyStateReply",
    "Message",
    "NonceCommit",
    "NonceCommitments",
    "Partial",
    "Partials",
    "PolicyHistory",
    "PolicyShow",
    "PolicyUpdate",
    "PolicyUpdated",
    "PresignStart",
    "PresignStep",
    "Presigned",
    "PrfEvaluate",
    "PrfPartials",
    "RefreshAbandon",
    "RefreshCommit",
    "RefreshFinish",
    "RefreshStaged",
    "RefreshStep",
    "RefreshVouch",
    "RepairInstall",
    "RepairStart",
    "RepairSum",
    "Reply",
    "Request",
    "ReshareAbandon",
    "ReshareCommit",
    "ReshareFinish",
    "ReshareStart",
    "ReshareStatus",
    "ReshareStep",
    "ReshareVouch",
    "RestoreCommit",
    "ShareBackup",
    "SignatureShares",
    "SignedCheckpoint",
    "SignedState",
    "StateQuery",
    "WitnessCheck",
    "WitnessEnvelope",
    "WitnessQuery",
    "WitnessRecord",
    "WitnessRecorded",
    "WitnessVerdict",
    "WitnessedCheckpointReply",
    "decode_reply",
    "decode_request",
    "encode",
    "presign_batch_session_id",
]

PROTOCOL_VERSION = 1
#: The enclave's vsock port for this protocol (the parent forwards a TCP port to it).
SERVICE_PORT = 5001
MAX_FRAME = 1024 * 1024
MAX_PARTICIPANTS = 16
#: Items in one signing batch (one round trip for many digests).
MAX_BATCH = 64
#: Preprocessed FROST nonce commitments one request may ask for.
MAX_NONCES = 256
#: Presignatures one presigning run may produce.
MAX_PRESIGN_BATCH = 32
#: The longest BIP-32 path text.
MAX_PATH = 256
MAX_REQUEST_ID = 2**32 - 1
#: A committed key's states, as ``key_info`` reports them.
KEY_STATES = ("enabled", "disabled", "pending_deletion")
#: What ``key_set_state`` asks of a key (AWS KMS's Enable/DisableKey, Schedule/CancelKeyDeletion).
KEY_ACTIONS = ("enable", "disable", "schedule_deletion", "cancel_deletion")
#: The waiting period of a scheduled deletion, in days (AWS KMS's bounds; default 30).
MIN_DELETION_DAYS = 7
MAX_DELETION_DAYS = 30
DEFAULT_DELETION_DAYS = 30
_DOCUMENT = 16 * 1024
_MAX_KEYS_LISTED = 4096


def _session(value: object) -> None:
    check_bytes("session_id", value, 16, 64)


def _policy(value: object) -> None:
    """Empty (no policy) or one canonical :class:`ApprovalPolicy` encoding."""
    check_bytes("policy", value, 0, 4096)
    if value:
        ApprovalPolicy.decode(value)  # type: ignore[arg-type]


def _blobs(
    name: str, value: object, *, low: int = 0, high: int, size: tuple[int, int] = (1, 256 * 1024)
) -> tuple[bytes, ...]:
    if not isinstance(value, tuple) or not low <= len(value) <= high:
        raise MalformedMessageError(name, f"must be a list of {low}..{high}")
    for item in value:
        check_bytes(name, item, *size)
    return value


def _approvals(value: object) -> tuple[bytes, ...]:
    return _blobs("approvals", value, high=MAX_APPROVERS, size=(1, 1024))


def _batch_approvals(value: object, items: int) -> None:
    if not isinstance(value, tuple) or len(value) != items:
        raise MalformedMessageError("approvals", "must hold one list of approvals per item")
    for approvals in value:
        _approvals(approvals)


def _participants(message: Message, value: object) -> None:
    if not isinstance(value, Mapping) or not 2 <= len(value) <= MAX_PARTICIPANTS:
        raise MalformedMessageError("participants", f"must name 2..{MAX_PARTICIPANTS} nodes")
    for node_id, document in value.items():
        check_node_id(node_id, "participants")
        check_bytes("participants", document, 1, _DOCUMENT)
    object.__setattr__(message, "participants", MappingProxyType(dict(value)))


def _outbox(message: Message, value: object) -> None:
    if not isinstance(value, Mapping) or len(value) > MAX_PARTICIPANTS:
        raise MalformedMessageError("outbox", f"must map at most {MAX_PARTICIPANTS} node ids")
    for node_id, envelope in value.items():
        check_node_id(node_id, "outbox")
        check_bytes("outbox", envelope, 1)
    object.__setattr__(message, "outbox", MappingProxyType(dict(value)))


def _state(state: object, delete_at: object) -> None:
    if state not in KEY_STATES:
        raise MalformedMessageError("state", f"must be one of {', '.join(KEY_STATES)}")
    if type(delete_at) is not int or not 0 <= delete_at < 2**40:
        raise MalformedMessageError("delete_at", "must be UTC seconds")
    if (state == "pending_deletion") != (delete_at > 0):
        raise MalformedMessageError("delete_at", "is set exactly when deletion is pending")


def _exportable(exportable: object, policy: bytes) -> None:
    if type(exportable) is not bool:
        raise MalformedMessageError("exportable", "must be a boolean")
    if exportable and not policy:
        raise MalformedMessageError("exportable", "only a key with an approval policy")


def _flag(name: str, value: object) -> None:
    if type(value) is not bool:
        raise MalformedMessageError(name, "must be a boolean")


def _epoch(value: object) -> None:
    if type(value) is not int or not 0 <= value < 2**32:
        raise MalformedMessageError("epoch", "must be a 32-bit counter")


def _count(name: str, value: object, high: int) -> None:
    if type(value) is not int or not 1 <= value <= high:
        raise MalformedMessageError(name, f"must be in 1..{high}")


@dataclass(frozen=True, slots=True)
class Message:
    """Base of every message; ``OP`` names the type on the wire."""

    OP: ClassVar[str] = ""
    #: Fields added after the type first shipped: absent from a frame while they hold their
    #: default (see the module docstring).
    OPTIONAL: ClassVar[frozenset[str]] = frozenset()

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Validate values; subclasses override."""


@dataclass(frozen=True, slots=True)
class Request(Message):
    """A client -> node message."""


@dataclass(frozen=True, slots=True)
class Reply(Message):
    """A node -> client message."""


# -- channel --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello(Request):
    """First request on a channel: a fresh nonce the node's attestation document must echo."""

    OP: ClassVar[str] = "hello"
    nonce: bytes

    def check(self) -> None:
        check_bytes("nonce", self.nonce, 32, 32)


@dataclass(frozen=True, slots=True)
class HelloReply(Reply):
    OP: ClassVar[str] = "hello_reply"
    document: bytes

    def check(self) -> None:
        check_bytes("document", self.document, 1, _DOCUMENT)


# -- key creation (DKG) ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyCreate(Request):
    """Start a DKG for ``key_name``; ``participants`` maps node ids to their attestation documents.

    ``policy`` is empty or an encoded :class:`~wire.approvals.ApprovalPolicy`; it is bound into the
    DKG, so the nodes only agree on a key if they were all given the same policy. ``threshold`` is
    the polynomial degree t (t+1 nodes sign); the suite's own rules (e.g. n >= 2t+1 for threshold
    ECDSA) are checked by the node against the MPC core's suite registry.
    """

    OP: ClassVar[str] = "key_create"
    key_name: str
    suite: str
    threshold: int
    session_id: bytes
    participants: Mapping[str, bytes]
    policy: bytes = b""
    #: Sealed with every share for the key's life: its policy's quorum may export it
    #: (:class:`KeyExport`). Only a key with a policy can be exportable; bound into the DKG.
    exportable: bool = False

    def check(self) -> None:
        check_key_name(self.key_name)
        check_suite_name(self.suite)
        _policy(self.policy)
        _exportable(self.exportable, self.policy)
        _participants(self, self.participants)
        if type(self.threshold) is not int or not 1 <= self.threshold < len(self.participants):
            raise MalformedMessageError("threshold", "must be in 1..n-1 (degree; t+1 sign)")
        _session(self.session_id)


@dataclass(frozen=True, slots=True)
class DkgStep(Request):
    """The envelopes addressed to this node in the current DKG round (no sender named)."""

    OP: ClassVar[str] = "dkg_step"
    key_name: str
    inbox: tuple[bytes, ...]

    def check(self) -> None:
        check_key_name(self.key_name)
        _blobs("inbox", self.inbox, high=MAX_PARTICIPANTS)


@dataclass(frozen=True, slots=True)
class DkgOutbox(Reply):
    """Envelopes this node sends, by recipient node id (the client relays them); also the
    answer of each presigning round."""

    OP: ClassVar[str] = "dkg_outbox"
    outbox: Mapping[str, bytes]

    def check(self) -> None:
        _outbox(self, self.outbox)


@dataclass(frozen=True, slots=True)
class KeyCreated(Reply):
    """The DKG finished and this node's share is sealed, PENDING: the public key package, and
    for each peer an envelope acknowledging that this node sealed exactly that package. The key
    signs nothing until :class:`KeyCommit` brings this node every peer's acknowledgement."""

    OP: ClassVar[str] = "key_created"
    public_key_package: bytes
    outbox: Mapping[str, bytes]

    def check(self) -> None:
        check_bytes("public_key_package", self.public_key_package, 1)
        _outbox(self, self.outbox)


@dataclass(frozen=True, slots=True)
class KeyCommit(Request):
    """The peers' acknowledgements addressed to this node (second phase of key creation)."""

    OP: ClassVar[str] = "key_commit"
    key_name: str
    inbox: tuple[bytes, ...]

    def check(self) -> None:
        check_key_name(self.key_name)
        _blobs("inbox", self.inbox, high=MAX_PARTICIPANTS)


@dataclass(frozen=True, slots=True)
class KeyCommitted(Reply):
    """Every participant sealed the same key: it is active on this node."""

    OP: ClassVar[str] = "key_committed"


# -- key description ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyInfo(Request):
    OP: ClassVar[str] = "key_info"
    key_name: str

    def check(self) -> None:
        check_key_name(self.key_name)


@dataclass(frozen=True, slots=True)
class KeyInfoReply(Reply):
    """A key as this node holds it. ``epoch`` changes whenever its shares do (refresh, reshare):
    a client caches the description until a reply names another epoch."""

    OP: ClassVar[str] = "key_info_reply"
    suite: str
    identifier: int
    public_key_package: bytes
    policy: bytes
    nodes: tuple[str, ...]
    epoch: int
    state: str = "enabled"  # enabled, disabled or pending_deletion (KEY_STATES)
    delete_at: int = 0  # pending deletion: the node's UTC seconds it erases its share at
    staged: bool = False  # a refresh to epoch+1 is staged here, not yet committed
    exportable: bool = False  # created exportable (its policy's quorum may export it)
    exported: bool = False  # this node wrapped its share for an export: forever
    imported: bool = False  # the key came from outside (keyshard key import)

    def check(self) -> None:
        _state(self.state, self.delete_at)
        for name in ("exportable", "exported", "imported"):
            _flag(name, getattr(self, name))
        if type(self.staged) is not bool:
            raise MalformedMessageError("staged", "must be a boolean")
        check_suite_name(self.suite)
        _policy(self.policy)
        if type(self.identifier) is not int or not 1 <= self.identifier <= MAX_PARTICIPANTS:
            raise MalformedMessageError("identifier", "must be a participant position 1..16")
        check_bytes("public_key_package", self.public_key_package, 1)
        if not isinstance(self.nodes, tuple) or len(self.nodes) > MAX_PARTICIPANTS:
            raise MalformedMessageError("nodes", f"must list at most {MAX_PARTICIPANTS} nodes")
        for node_id in self.nodes:
            check_node_id(node_id, "nodes")
        if type(self.epoch) is not int or not 0 <= self.epoch < 2**32:
            raise MalformedMessageError("epoch", "must be a 32-bit counter")


@dataclass(frozen=True, slots=True)
class KeyList(Request):
    """The names of the keys this node holds."""

    OP: ClassVar[str] = "key_list"


@dataclass(frozen=True, slots=True)
class KeyListReply(Reply):
    OP: ClassVar[str] = "key_list_reply"
    names: tuple[str, ...]

    def check(self) -> None:
        if not isinstance(self.names, tuple) or len(self.names) > _MAX_KEYS_LISTED:
            raise MalformedMessageError("names", f"must list at most {_MAX_KEYS_LISTED} keys")
        for name in self.names:
            check_key_name(name, "names")


# -- key state (enable, disable, scheduled deletion) ----------------------------------------


@dataclass(frozen=True, slots=True)
class KeySetState(Request):
    """Change a key's state on this node: ``action`` is one of :data:`KEY_ACTIONS`.

    ``schedule_deletion`` takes ``days`` (:data:`MIN_DELETION_DAYS`..:data:`MAX_DELETION_DAYS`;
    0 for every other action) and, for a key with a policy, approvals of operation ``delete``
    over :func:`wire.approvals.lifecycle_digest` at ``epoch`` with the days as 2 bytes. The node
    refuses an ``epoch`` it is not at (the approvals name it).
    """

    OP: ClassVar[str] = "key_set_state"
    key_name: str
    action: str
    epoch: int
    days: int = 0
    approvals: tuple[bytes, ...] = ()

    def check(self) -> None:
        check_key_name(self.key_name)
        if self.action not in KEY_ACTIONS:
            raise MalformedMessageError("action", f"must be one of {', '.join(KEY_ACTIONS)}")
        _epoch(self.epoch)
        if self.action == "schedule_deletion":
            if type(self.days) is not int or not (
                MIN_DELETION_DAYS <= self.days <= MAX_DELETION_DAYS
            ):
                raise MalformedMessageError(
                    "days", f"must be {MIN_DELETION_DAYS}..{MAX_DELETION_DAYS}"
                )
        elif self.days != 0:
            raise MalformedMessageError("days", "only a scheduled deletion takes days")
        _approvals(self.approvals)


@dataclass(frozen=True, slots=True)
class KeyStateReply(Reply):
    """The key's state on this node after the change."""

    OP: ClassVar[str] = "key_state"
    state: str
    delete_at: int
    epoch: int

    def check(self) -> None:
        _state(self.state, self.delete_at)
        _epoch(self.epoch)


# -- proactive refresh ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyRefresh(Request):
    """Start a proactive refresh of ``key_name`` leaving ``epoch``: ``participants`` maps EVERY
    holder of the key to its attestation document. ``approvals`` (operation ``refresh``, over
    :func:`wire.approvals.lifecycle_digest` at ``epoch``) are needed only when the key's policy
    lists refresh. Answered by the deal envelopes (:class:`DkgOutbox`)."""

    OP: ClassVar[str] = "key_refresh"
    key_name: str
    session_id: bytes
    epoch: int
    participants: Mapping[str, bytes]
    approvals: tuple[bytes, ...] = ()

    def check(self) -> None:
        check_key_name(self.key_name)
        _session(self.session_id)
        _epoch(self.epoch)
        _participants(self, self.participants)
        _approvals(self.approvals)


@dataclass(frozen=True, slots=True)
class RefreshStep(Request):
    """The deal envelopes addressed to this node: it stages (seals) its next-epoch share."""

    OP: ClassVar[str] = "refresh_step"
    key_name: str
    session_id: bytes
    inbox: tuple[bytes, ...]

    def check(self) -> None:
        check_key_name(self.key_name)
        _session(self.session_id)
        _blobs("inbox", self.inbox, high=MAX_PARTICIPANTS)


@dataclass(frozen=True, slots=True)
class RefreshStaged(Reply):
    """The next share is sealed, not in use: the next epoch's public key package (the same
    group key, new verifying shares) and this node's confirmation to every peer."""

    OP: ClassVar[str] = "refresh_staged"
    public_key_package: bytes
    outbox: Mapping[str, bytes]

    def check(self) -> None:
        check_bytes("public_key_package", self.public_key_package, 1)
        _outbox(self, self.outbox)


@dataclass(frozen=True, slots=True)
class RefreshCommit(Request):
    """Every peer's confirmation addressed to this node: it moves to the next epoch
    (answered by :class:`KeyCommitted`)."""

    OP: ClassVar[str] = "refresh_commit"
    key_name: str
    session_id: bytes
    inbox: tuple[bytes, ...]

    def check(self) -> None:
        check_key_name(self.key_name)
        _session(self.session_id)
        _blobs("inbox", self.inbox, high=MAX_PARTICIPANTS)


@dataclass(frozen=True, slots=True)
class RefreshVouch(Request):
    """Ask a node at ``epoch`` to vouch, in an envelope to the other participant (a holder whose
    refresh to ``epoch`` is staged), that it committed ``epoch`` with its public key package.
    ``participants``: this node's and the recipient's documents. Answered by :class:`DkgOutbox`."""

    OP: ClassVar[str] = "refresh_vouch"
    key_name: str
    epoch: int
    participants: Mapping[str, bytes]

    def check(self) -> None:
        check_key_name(self.key_name)
        _epoch(self.epoch)
        _participants(self, self.participants)
        if len(self.participants) != 2:
            raise MalformedMessageError("participants", "must name the voucher and recipient")


@dataclass(frozen=True, slots=True)
class RefreshFinish(Request):
    """Commit this node's staged refresh to ``epoch`` on a peer's vouch (``inbox``: the one
    envelope); ``participants``: this node's and the voucher's documents."""

    OP: ClassVar[str] = "refresh_finish"
    key_name: str
    epoch: int
    participants: Mapping[str, bytes]
    inbox: tuple[bytes, ...]

    def check(self) -> None:
        check_key_name(self.key_name)
        _epoch(self.epoch)
        _participants(self, self.participants)
        if len(self.participants) != 2:
            raise MalformedMessageError("participants", "must name the voucher and recipient")
        _blobs("inbox", self.inbox, low=1, high=1)


@dataclass(frozen=True, slots=True)
class RefreshAbandon(Request):
    """Drop this node's running refresh of the key (it can then commit it on no confirmation);
    with ``discard``, also drop a staged share of a refresh leaving ``epoch`` — safe only once
    every holder dropped its run and none moved past ``epoch``. Answered by
    :class:`KeyInfoReply` (the key as it then is)."""

    OP: ClassVar[str] = "refresh_abandon"
    key_name: str
    epoch: int
    discard: bool = False

    def check(self) -> None:
        check_key_name(self.key_name)
        _epoch(self.epoch)
        if type(self.discard) is not bool:
            raise MalformedMessageError("discard", "must be a boolean")


# -- custody: export and import (keyshard.client.custody, enclave.service.custody) ----------

#: An X25519 public key (the export's HPKE recipient).
X25519_KEY = 32


@dataclass(frozen=True, slots=True)
class KeyExport(Request):
    """Wrap this node's re-randomised share of ``key_name`` for ``recipient`` (an X25519 public
    key; HPKE, RFC 9180). ``participants`` are EVERY holder of the key with the attestation
    document of its current boot (the pairwise masks are agreed with their box keys);
    ``approvals`` are of operation ``export`` over
    :func:`wire.approvals.lifecycle_digest` at ``epoch`` with the recipient key as detail."""

    OP: ClassVar[str] = "key_export"
    key_name: str
    epoch: int
    session_id: bytes
    recipient: bytes
    participants: Mapping[str, bytes]
    approvals: tuple[bytes, ...] = ()

    def check(self) -> None:
        check_key_name(self.key_name)
        _epoch(self.epoch)
        _session(self.session_id)
        check_bytes("recipient", self.recipient, X25519_KEY, X25519_KEY)
        _participants(self, self.participants)
        _approvals(self.approvals)


@dataclass(frozen=True, slots=True)
class ExportedShare(Reply):
    """This node's masked share, HPKE-sealed to the recipient (``enc || ct``)."""

    OP: ClassVar[str] = "exported_share"
    identifier: int
    wrapped: bytes

    def check(self) -> None:
        if type(self.identifier) is not int or not 1 <= self.identifier <= MAX_PARTICIPANTS:
            raise MalformedMessageError("identifier", "must be a participant position 1..16")
        check_bytes("wrapped", self.wrapped, 1, 1024)


@dataclass(frozen=True, slots=True)
class KeyImport(Request):
    """Seal (pending) this node's share of a key the client split with Feldman VSS.

    ``commitment`` is the sharing polynomial's commitment (degree ``threshold``; its constant
    term the public key); ``envelope`` this node's share, sealed by the client to the box key of
    this node's current boot (``crypto_box_seal``). Holders are positions 1..n in the sorted
    ``participants``, as in a DKG. Answered by :class:`KeyCreated`; committed by
    :class:`KeyCommit`, as a creation."""

    OP: ClassVar[str] = "key_import"
    key_name: str
    suite: str
    threshold: int
    session_id: bytes
    participants: Mapping[str, bytes]
    commitment: bytes
    envelope: bytes
    policy: bytes = b""
    exportable: bool = False

    def check(self) -> None:
        check_key_name(self.key_name)
        check_suite_name(self.suite)
        _policy(self.policy)
        _exportable(self.exportable, self.policy)
        _participants(self, self.participants)
        if type(self.threshold) is not int or not 1 <= self.threshold < len(self.participants):
            raise MalformedMessageError("threshold", "must be in 1..n-1 (degree; t+1 sign)")
        _session(self.session_id)
        check_bytes("commitment", self.commitment, 1, 4096)
        check_bytes("envelope", self.envelope, 1, 1024)


# -- reshare (a new committee and/or threshold, the same public key) ------------------------


@dataclass(frozen=True, slots=True)
class ReshareStart(Request):
    """Start a reshare of ``key_name`` leaving ``epoch`` to ``new_nodes`` (the new committee, in
    identifier order) with ``new_threshold``. ``participants`` maps every old holder and every
    new member to its attestation document. Old holders check ``approvals`` (operation
    ``reshare`` over :func:`wire.approvals.lifecycle_digest` at ``epoch`` with
    :func:`wire.approvals.reshare_detail`) and deal; a joining node deals nothing. Answered by
    :class:`DkgOutbox` (deal envelopes to the new members)."""

    OP: ClassVar[str] = "reshare_start"
    key_name: str
    session_id: bytes
    epoch: int
    participants: Mapping[str, bytes]
    new_nodes: tuple[str, ...]
    new_threshold: int
    approvals: tuple[bytes, ...] = ()

    def check(self) -> None:
        check_key_name(self.key_name)
        _session(self.session_id)
        _epoch(self.epoch)
        _participants(self, self.participants)
        if (
            not isinstance(self.new_nodes, tuple)
            or not 2 <= len(self.new_nodes) <= MAX_PARTICIPANTS
        ):
            raise MalformedMessageError("new_nodes", f"must list 2..{MAX_PARTICIPANTS} nodes")
        for node_id in self.new_nodes:
            check_node_id(node_id, "new_nodes")
        if len(set(self.new_nodes)) != len(self.new_nodes):
            raise MalformedMessageError("new_nodes", "must not repeat a node")
        if not set(self.new_nodes) <= set(self.participants):
            raise MalformedMessageError("new_nodes", "must be among the participants")
        _count("new_threshold", self.new_threshold, MAX_PARTICIPANTS - 1)
        _approvals(self.approvals)


@dataclass(frozen=True, slots=True)
class ReshareStep(Request):
    """A new member: every old holder's deal addressed to it; it stages (seals) its share of the
    new committee and answers :class:`RefreshStaged` (the new package, its confirmation to
    every other participant)."""

    OP: ClassVar[str] = "reshare_step"
    key_name: str
    session_id: bytes
    inbox: tuple[bytes, ...]

    def check(self) -> None:
        check_key_name(self.key_name)
        _session(self.session_id)
        _blobs("inbox", self.inbox, high=MAX_PARTICIPANTS)


@dataclass(frozen=True, slots=True)
class ReshareCommit(Request):
    """Every new member's confirmation addressed to this node: a new member commits its staged
    share; an old holder leaving the committee erases its share (answered by
    :class:`KeyCommitted`)."""

    OP: ClassVar[str] = "reshare_commit"
    key_name: str
    session_id: bytes
    inbox: tuple[bytes, ...]

    def check(self) -> None:
        check_key_name(self.key_name)
        _session(self.session_id)
        _blobs("inbox", self.inbox, high=MAX_PARTICIPANTS)


@dataclass(frozen=True, slots=True)
class ReshareVouch(Request):
    """Ask a member of the new committee at ``epoch`` to vouch, in an envelope to the other
    participant, that it committed ``epoch`` with its package and committee. Answered by
    :class:`DkgOutbox`."""

    OP: ClassVar[str] = "reshare_vouch"
    key_name: str
    epoch: int
    participants: Mapping[str, bytes]

    def check(self) -> None:
        check_key_name(self.key_name)
        _epoch(self.epoch)
        _participants(self, self.participants)
        if len(self.participants) != 2:
            raise MalformedMessageError("participants", "must name the voucher and recipient")


@dataclass(frozen=True, slots=True)
class ReshareFinish(Request):
    """Finish this node's part of an interrupted reshare to ``epoch`` on a committed member's
    vouch (``inbox``: the one envelope): a staged or joining member commits, a leaving holder
    erases its share."""

    OP: ClassVar[str] = "reshare_finish"
    key_name: str
    epoch: int
    participants: Mapping[str, bytes]
    inbox: tuple[bytes, ...]

    def check(self) -> None:
        check_key_name(self.key_name)
        _epoch(self.epoch)
        _participants(self, self.participants)
        if len(self.participants) != 2:
            raise MalformedMessageError("participants", "must name the voucher and recipient")
        _blobs("inbox", self.inbox, low=1, high=1)


@dataclass(frozen=True, slots=True)
class ReshareAbandon(Request):
    """Drop this node's running reshare of the key (it can then commit it on no confirmation);
    with ``discard``, also drop what an uncommitted reshare leaving ``epoch`` sealed here (a
    staged share, a joining node's pending record) — safe only once every participant dropped
    its run and none committed. Answered by :class:`ReshareStatus`."""

    OP: ClassVar[str] = "reshare_abandon"
    key_name: str
    epoch: int
    discard: bool = False

    def check(self) -> None:
        check_key_name(self.key_name)
        _epoch(self.epoch)
        if type(self.discard) is not bool:
            raise MalformedMessageError("discard", "must be a boolean")


#: What a node holds of a key, as far as a reshare is concerned (:class:`ReshareStatus`).
RESHARE_ROLES = ("none", "committed", "staged", "joining")


@dataclass(frozen=True, slots=True)
class ReshareStatus(Reply):
    """This node's record of the key: ``role`` ``none`` (no record), ``committed`` (a usable
    record at ``epoch`` held by ``nodes``), ``staged`` (committed at ``epoch``, a reshare to
    ``next_nodes`` staged) or ``joining`` (a joining node's pending record at ``epoch``, for
    ``nodes``)."""

    OP: ClassVar[str] = "reshare_status"
    role: str
    epoch: int
    nodes: tuple[str, ...]
    next_nodes: tuple[str, ...] = ()

    def check(self) -> None:
        if self.role not in RESHARE_ROLES:
            raise MalformedMessageError("role", f"must be one of {', '.join(RESHARE_ROLES)}")
        _epoch(self.epoch)
        for name in ("nodes", "next_nodes"):
            value = getattr(self, name)
            if not isinstance(value, tuple) or len(value) > MAX_PARTICIPANTS:
                raise MalformedMessageError(name, f"must list at most {MAX_PARTICIPANTS} nodes")
            for node_id in value:
                check_node_id(node_id, name)


# -- FROST (RFC 9591 with preprocessed nonces) ----------------------------------------------


@dataclass(frozen=True, slots=True)
class NonceCommit(Request):
    """Preprocess ``count`` single-use FROST nonce pairs for ``key_name`` (RFC 9591 §5.1 run
    ahead of time); the node keeps the nonces, the reply carries their public commitments."""

    OP: ClassVar[str] = "nonce_commit"
    key_name: str
    count: int

    def check(self) -> None:
        check_key_name(self.key_name)
        _count("count", self.count, MAX_NONCES)


@dataclass(frozen=True, slots=True)
class NonceCommitments(Reply):
    OP: ClassVar[str] = "nonce_commitments"
    commitments: tuple[bytes, ...]

    def check(self) -> None:
        _blobs("commitments", self.commitments, low=1, high=MAX_NONCES)


@dataclass(frozen=True, slots=True)
class FrostSign(Request):
    """FROST round two for up to :data:`MAX_BATCH` signing packages, each naming one of this
    node's preprocessed commitments; ``approvals[i]`` are for ``packages[i]``'s message."""

    OP: ClassVar[str] = "frost_sign"
    key_name: str
    packages: tuple[bytes, ...]
    approvals: tuple[tuple[bytes, ...], ...]

    def check(self) -> None:
        check_key_name(self.key_name)
        _blobs("packages", self.packages, low=1, high=MAX_BATCH)
        _batch_approvals(self.approvals, len(self.packages))


@dataclass(frozen=True, slots=True)
class SignatureShares(Reply):
    """One signature share per item of the batch, in order (FROST or ECDSA)."""

    OP: ClassVar[str] = "signature_shares"
    shares: tuple[bytes, ...]

    def check(self) -> None:
        _blobs("shares", self.shares, low=1, high=MAX_BATCH)


# -- repair ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RepairStart(Request):
    """Start repairing ``target``'s lost share of ``key_name`` at ``epoch``, sent to each helper:
    ``participants`` maps every helper (at least t+1 holders, the target not among them) and the
    target to their attestation documents. ``approvals`` (operation ``repair``, over
    :func:`wire.approvals.lifecycle_digest` at ``epoch`` with the target's node id) only when
    the key's policy lists repair. Answered by the delta envelopes (:class:`DkgOutbox`)."""

    OP: ClassVar[str] = "repair_start"
    key_name: str
    session_id: bytes
    epoch: int
    target: str
    participants: Mapping[str, bytes]
    approvals: tuple[bytes, ...] = ()

    def check(self) -> None:
        check_key_name(self.key_name)
        _session(self.session_id)
        _epoch(self.epoch)
        check_node_id(self.target, "target")
        _participants(self, self.participants)
        if self.target not in self.participants:
            raise MalformedMessageError("participants", "must name the target")
        _approvals(self.approvals)


@dataclass(frozen=True, slots=True)
class RepairSum(Request):
    """The other helpers' deltas for this helper; answered by its sum, in an envelope to the
    target (:class:`DkgOutbox`)."""

    OP: ClassVar[str] = "repair_sum"
    key_name: str
    session_id: bytes
    inbox: tuple[bytes, ...]

    def check(self) -> None:
        check_key_name(self.key_name)
        _session(self.session_id)
        _blobs("inbox", self.inbox, high=MAX_PARTICIPANTS)


@dataclass(frozen=True, slots=True)
class RepairInstall(Request):
    """To the target: every helper's sum (``inbox``) and every participant's document; the
    target checks, seals its repaired share and answers :class:`KeyCommitted`."""

    OP: ClassVar[str] = "repair_install"
    key_name: str
    session_id: bytes
    participants: Mapping[str, bytes]
    inbox: tuple[bytes, ...]

    def check(self) -> None:
        check_key_name(self.key_name)
        _session(self.session_id)
        _participants(self, self.participants)
        _blobs("inbox", self.inbox, low=1, high=MAX_PARTICIPANTS)


# -- BIP-340 (BIP-445) ------------------------------------------------------------------------

#: Tweaks one BIP-340 signature may apply (BIP-32 steps and a Taproot tweak).
MAX_TWEAKS = 8


@dataclass(frozen=True, slots=True)
class Bip340NonceCommit(Request):
    """Make ``count`` BIP-445 nonce pairs for a ``bip340`` key ahead of the message; the reply
    (:class:`NonceCommitments`) carries their 66-byte public nonces."""

    OP: ClassVar[str] = "bip340_nonce_commit"
    key_name: str
    count: int

    def check(self) -> None:
        check_key_name(self.key_name)
        _count("count", self.count, MAX_NONCES)


@dataclass(frozen=True, slots=True)
class Bip340Sign(Request):
    """BIP-445 Sign of up to :data:`MAX_BATCH` messages by ``signers`` (party identifiers,
    ascending): ``pubnonces[i]`` holds each signer's public nonce for ``messages[i]``, in the
    order of ``signers``. ``tweaks``: mode byte (0 plain, 1 x-only) and 32 bytes each, applied in
    order; approvals name the tweaked x-only key. Answered by :class:`SignatureShares`."""

    OP: ClassVar[str] = "bip340_sign"
    key_name: str
    signers: tuple[int, ...]
    messages: tuple[bytes, ...]
    pubnonces: tuple[tuple[bytes, ...], ...]
    approvals: tuple[tuple[bytes, ...], ...]
    tweaks: tuple[bytes, ...] = ()

    def check(self) -> None:
        check_key_name(self.key_name)
        signers = self.signers
        if (
            not isinstance(signers, tuple)
            or not 1 <= len(signers) <= MAX_PARTICIPANTS
            or not all(type(i) is int and 1 <= i <= MAX_PARTICIPANTS for i in signers)
            or list(signers) != sorted(set(signers))
        ):
            raise MalformedMessageError("signers", "must be ascending distinct identifiers 1..16")
        items = len(_blobs("messages", self.messages, low=1, high=MAX_BATCH, size=(0, MAX_BLOB)))
        if not isinstance(self.pubnonces, tuple) or len(self.pubnonces) != items:
            raise MalformedMessageError("pubnonces", "must hold one list per message")
        for nonces in self.pubnonces:
            got = _blobs("pubnonces", nonces, high=MAX_PARTICIPANTS, size=(66, 66))
            if len(got) != len(signers):
                raise MalformedMessageError("pubnonces", "must hold one nonce per signer")
        _blobs("tweaks", self.tweaks, high=MAX_TWEAKS, size=(33, 33))
        _batch_approvals(self.approvals, items)


# -- threshold decryption -------------------------------------------------------------------

#: The length of an endorsement: an Ed25519 signature of the endorsing node's identity key.
ENDORSEMENT_SIZE = 64
_ENDORSEMENT_FIELDS = frozenset({"endorsers", "endorsements"})


def _no_endorsements() -> Mapping[str, bytes]:
    return MappingProxyType({})


def _endorsement(value: object, *, optional: bool = False) -> None:
    if optional and value == b"":
        return
    check_bytes("endorsement", value, ENDORSEMENT_SIZE, ENDORSEMENT_SIZE)


def _endorsements(message: Message) -> None:
    """``endorsers`` (documents) and ``endorsements`` name the same 0..16 nodes; frozen."""
    for name in _ENDORSEMENT_FIELDS:
        value = getattr(message, name)
        if not isinstance(value, Mapping) or len(value) > MAX_PARTICIPANTS:
            raise MalformedMessageError(name, f"must map at most {MAX_PARTICIPANTS} node ids")
        for node_id, item in value.items():
            check_node_id(node_id, name)
            if name == "endorsements":
                _endorsement(item)
            else:
                check_bytes(name, item, 1, _DOCUMENT)
        object.__setattr__(message, name, MappingProxyType(dict(value)))
    if set(getattr(message, "endorsers")) != set(getattr(message, "endorsements")):  # noqa: B009
        raise MalformedMessageError("endorsers", "must name the same nodes as endorsements")


@dataclass(frozen=True, slots=True)
class DecryptPartial(Request):
    """This node's partial decryption of ``ciphertext`` with its proof.

    ``context`` is the associated data the client will decrypt with; it enters the approval
    digest, and the node checks the ciphertext's proof (of its ephemeral key, bound to the key,
    the body and this context) against it before it answers. A ciphertext of at most
    ``MAX_BLOB`` bytes carries the largest plaintext encryption accepts.
    """

    OP: ClassVar[str] = "decrypt_partial"
    OPTIONAL: ClassVar[frozenset[str]] = _ENDORSEMENT_FIELDS
    key_name: str
    ciphertext: bytes
    session_id: bytes
    context: bytes = b""
    approvals: tuple[bytes, ...] = ()
    #: For a key with mandatory participants (issue 11): each one's endorsement of this exact
    #: decryption (:class:`Endorsed`), and the document of its current boot, which binds the
    #: identity key that signed it. Empty (left out) for any other key.
    endorsers: Mapping[str, bytes] = field(default_factory=_no_endorsements)
    endorsements: Mapping[str, bytes] = field(default_factory=_no_endorsements)

    def check(self) -> None:
        check_key_name(self.key_name)
        check_bytes("ciphertext", self.ciphertext, 1)
        _session(self.session_id)
        check_bytes("context", self.context)
        _approvals(self.approvals)
        _endorsements(self)


@dataclass(frozen=True, slots=True)
class Partial(Reply):
    """A partial decryption; from a mandatory participant of the key (issue 11), with its
    endorsement of the request for the other holders (empty, left out, from any other node)."""

    OP: ClassVar[str] = "partial"
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"endorsement"})
    partial: bytes
    endorsement: bytes = b""

    def check(self) -> None:
        check_bytes("partial", self.partial, 1)
        _endorsement(self.endorsement, optional=True)


@dataclass(frozen=True, slots=True)
class Endorsed(Reply):
    """A mandatory participant's endorsement of a decryption (or PRF decryption) it has checked
    but does not yet answer with its partial, because other mandatory participants have not
    endorsed it yet (issue 11): the 64-byte signature of its identity key over the request
    (``enclave.service.endorsement``)."""

    OP: ClassVar[str] = "endorsed"
    endorsement: bytes

    def check(self) -> None:
        _endorsement(self.endorsement)


@dataclass(frozen=True, slots=True)
class DecryptPartials(Request):
    """:class:`DecryptPartial` for up to :data:`MAX_BATCH` ciphertexts of one key in one round
    trip: item ``i`` is ``ciphertexts[i]`` under ``contexts[i]`` with ``approvals[i]``, answered
    with its own ``session_ids[i]`` (so each partial is exactly the one a single request would
    get). The node checks every item as the single request's path does and answers all or none.

    Not for a key with mandatory participants (issue 11): their endorsements are per request,
    so such a key is refused here and decrypted item by item with :class:`DecryptPartial`.
    The frame bounds the sum of the ciphertexts (:data:`MAX_FRAME`); the sender splits batches.
    """

    OP: ClassVar[str] = "decrypt_partials"
    key_name: str
    session_ids: tuple[bytes, ...]
    ciphertexts: tuple[bytes, ...]
    contexts: tuple[bytes, ...]
    approvals: tuple[tuple[bytes, ...], ...]

    def check(self) -> None:
        check_key_name(self.key_name)
        items = len(
            _blobs("ciphertexts", self.ciphertexts, low=1, high=MAX_BATCH, size=(1, MAX_BLOB))
        )
        if len(_blobs("session_ids", self.session_ids, high=MAX_BATCH, size=(16, 64))) != items:
            raise MalformedMessageError("session_ids", "must hold one session id per ciphertext")
        if len(_blobs("contexts", self.contexts, high=MAX_BATCH, size=(0, MAX_BLOB))) != items:
            raise MalformedMessageError("contexts", "must hold one context per ciphertext")
        _batch_approvals(self.approvals, items)


@dataclass(frozen=True, slots=True)
class Partials(Reply):
    """One partial decryption per item of a :class:`DecryptPartials`, in order."""

    OP: ClassVar[str] = "partials"
    partials: tuple[bytes, ...]

    def check(self) -> None:
        _blobs("partials", self.partials, low=1, high=MAX_BATCH, size=(1, 1024))


# -- threshold PRF (XKS: per-message AES keys of a key that never exists whole) -------------

#: The two ways to ask for PRF evaluations: ``encrypt`` sends nonces (the node evaluates at
#: their one-way hash, so no caller can aim it at an existing seed), ``decrypt`` sends seeds.
PRF_MODES = ("encrypt", "decrypt")


@dataclass(frozen=True, slots=True)
class PrfEvaluate(Request):
    """This node's partials ``x_i·H(key, seed)`` with DLEQ proofs, one per input (at most
    :data:`MAX_BATCH`): a 32-byte nonce in ``encrypt`` mode, a 16-byte seed in ``decrypt`` mode
    (which a key whose policy wants decryption approvals refuses: none travel here)."""

    OP: ClassVar[str] = "prf_evaluate"
    OPTIONAL: ClassVar[frozenset[str]] = _ENDORSEMENT_FIELDS
    key_name: str
    session_id: bytes
    mode: str
    inputs: tuple[bytes, ...]
    #: ``decrypt`` mode of a key with mandatory participants: as :class:`DecryptPartial`'s.
    endorsers: Mapping[str, bytes] = field(default_factory=_no_endorsements)
    endorsements: Mapping[str, bytes] = field(default_factory=_no_endorsements)

    def check(self) -> None:
        check_key_name(self.key_name)
        _session(self.session_id)
        if self.mode not in PRF_MODES:
            raise MalformedMessageError("mode", f"must be one of {', '.join(PRF_MODES)}")
        size = 32 if self.mode == "encrypt" else 16
        _blobs("inputs", self.inputs, low=1, high=MAX_BATCH, size=(size, size))
        _endorsements(self)


@dataclass(frozen=True, slots=True)
class PrfPartials(Reply):
    """PRF partials; from a mandatory participant answering ``decrypt`` mode, with its
    endorsement (as :class:`Partial`)."""

    OP: ClassVar[str] = "prf_partials"
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"endorsement"})
    partials: tuple[bytes, ...]
    endorsement: bytes = b""

    def check(self) -> None:
        _blobs("partials", self.partials, low=1, high=MAX_BATCH, size=(1, 1024))
        _endorsement(self.endorsement, optional=True)


# -- threshold ECDSA ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PresignStart(Request):
    """Threshold ECDSA presigning (round one) of ``count`` presignatures among exactly 2t+1
    holders of ``key_name``.

    ``participants`` maps each presigning node id to an attestation document: the box keys the
    deal envelopes are sealed to (they change with every boot, unlike the key's holders).
    """

    OP: ClassVar[str] = "presign_start"
    key_name: str
    session_id: bytes
    participants: Mapping[str, bytes]
    count: int = 1

    def check(self) -> None:
        check_key_name(self.key_name)
        _session(self.session_id)
        _participants(self, self.participants)
        _count("count", self.count, MAX_PRESIGN_BATCH)


_PRESIGN_BATCH_DOMAIN = b"keyshard/service/presign-batch/v1"


def presign_batch_session_id(session_id: bytes, index: int) -> bytes:
    """The MPC session id of presignature ``index`` of the presigning run ``session_id``."""
    if not 0 <= index < MAX_PRESIGN_BATCH:
        raise ValueError("presignature index out of range")
    fields_ = (_PRESIGN_BATCH_DOMAIN, session_id, index.to_bytes(2, "big"))
    return hashlib.sha256(lp_join(fields_)).digest()


@dataclass(frozen=True, slots=True)
class PresignStep(Request):
    """The envelopes addressed to this node in the current presigning round."""

    OP: ClassVar[str] = "presign_step"
    key_name: str
    session_id: bytes
    inbox: tuple[bytes, ...]

    def check(self) -> None:
        check_key_name(self.key_name)
        _session(self.session_id)
        _blobs("inbox", self.inbox, high=MAX_PARTICIPANTS)


@dataclass(frozen=True, slots=True)
class Presigned(Reply):
    """Presigning finished: the (public) ids and nonce points ``R`` of the stored presignatures."""

    OP: ClassVar[str] = "presigned"
    presignature_ids: tuple[bytes, ...]
    big_rs: tuple[bytes, ...]

    def check(self) -> None:
        _blobs(
            "presignature_ids", self.presignature_ids, low=1, high=MAX_PRESIGN_BATCH, size=(32, 32)
        )
        _blobs("big_rs", self.big_rs, low=1, high=MAX_PRESIGN_BATCH, size=(33, 33))
        if len(self.big_rs) != len(self.presignature_ids):
            raise MalformedMessageError("big_rs", "must hold one point per presignature")


@dataclass(frozen=True, slots=True)
class EcdsaSign(Request):
    """Sign SHA-256(``messages[i]``) with stored presignature ``presignature_ids[i]`` (each used
    once, whatever happens), for up to :data:`MAX_BATCH` items.

    ``entropies[i]`` is the coordinator's fresh re-randomiser input; approvals are checked before
    any presignature is touched. ``path`` (non-hardened BIP-32; empty: the key itself) signs every
    item under that child key; approvals must then name the child's public key. ``prehashed``:
    each message is already the 32-byte SHA-256 digest (AWS KMS's MessageType DIGEST), signed as
    given; approvals name that same digest, so they are the ones the whole message would need.
    """

    OP: ClassVar[str] = "ecdsa_sign"
    key_name: str
    presignature_ids: tuple[bytes, ...]
    messages: tuple[bytes, ...]
    entropies: tuple[bytes, ...]
    approvals: tuple[tuple[bytes, ...], ...]
    path: str = ""
    prehashed: bool = False

    def check(self) -> None:
        check_key_name(self.key_name)
        items = len(
            _blobs("presignature_ids", self.presignature_ids, low=1, high=MAX_BATCH, size=(32, 32))
        )
        if len(_blobs("messages", self.messages, high=MAX_BATCH, size=(0, 256 * 1024))) != items:
            raise MalformedMessageError("messages", "must hold one message per presignature")
        if len(_blobs("entropies", self.entropies, high=MAX_BATCH, size=(32, 32))) != items:
            raise MalformedMessageError("entropies", "must hold one entropy per presignature")
        _batch_approvals(self.approvals, items)
        if type(self.path) is not str or len(self.path) > MAX_PATH:
            raise MalformedMessageError("path", f"must be a BIP-32 path of at most {MAX_PATH}")
        if type(self.prehashed) is not bool:
            raise MalformedMessageError("prehashed", "must be a boolean")
        if self.prehashed and any(len(m) != 32 for m in self.messages):
            raise MalformedMessageError("messages", "prehashed messages are 32-byte digests")


# -- errors ---------------------------------------------------------------------------------


# -- governance: policy updates -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PolicyUpdate(Request):
    """Replace the key's approval policy by ``policy`` (empty: none), with ``approvals`` that
    the CURRENT policy accepts for ``update-policy`` (each names the update count and the new
    policy: :func:`wire.approvals.policy_update_digest`)."""

    OP: ClassVar[str] = "policy_update"
    key_name: str
    policy: bytes
    approvals: tuple[bytes, ...]

    def check(self) -> None:
        check_key_name(self.key_name)
        _policy(self.policy)
        _approvals(self.approvals)


@dataclass(frozen=True, slots=True)
class PolicyUpdated(Reply):
    """The key is under the policy asked; ``updates`` counts its policy updates so far (a
    repeat of an update that already applied changes nothing)."""

    OP: ClassVar[str] = "policy_updated"
    updates: int

    def check(self) -> None:
        if type(self.updates) is not int or not 0 <= self.updates < 2**32:
            raise MalformedMessageError("updates", "must be a count of updates")


@dataclass(frozen=True, slots=True)
class PolicyShow(Request):
    OP: ClassVar[str] = "policy_show"
    key_name: str

    def check(self) -> None:
        check_key_name(self.key_name)


@dataclass(frozen=True, slots=True)
class PolicyHistory(Reply):
    """The key's current policy and the ones it replaced (oldest first), each with the node's
    UTC seconds when it was replaced."""

    OP: ClassVar[str] = "policy_history"
    current: bytes
    previous: tuple[bytes, ...]
    replaced_at: tuple[int, ...]

    def check(self) -> None:
        _policy(self.current)
        if not isinstance(self.previous, tuple) or len(self.previous) > 256:
            raise MalformedMessageError("previous", "must be a list of at most 256 policies")
        for policy in self.previous:
            _policy(policy)
        if not isinstance(self.replaced_at, tuple) or len(self.replaced_at) != len(self.previous):
            raise MalformedMessageError("replaced_at", "one time per previous policy")
        for when in self.replaced_at:
            if type(when) is not int or not 0 <= when < 2**40:
                raise MalformedMessageError("replaced_at", "must be UTC seconds")


# -- state witnesses (enclave.service.witness) ----------------------------------------------


def _statements(field: str, value: object) -> None:
    if not isinstance(value, Mapping) or not 1 <= len(value) <= MAX_PARTICIPANTS:
        raise MalformedMessageError(field, f"must map 1..{MAX_PARTICIPANTS} node ids")
    for node_id, item in value.items():
        check_node_id(node_id, field)
        check_bytes(field, item, 1, _DOCUMENT)


def _same_nodes(message: Message, documents: str, items: str) -> None:
    """Two maps of the same 1..16 node ids (each node's document, and its item); frozen."""
    for name in (documents, items):
        value = getattr(message, name)
        _statements(name, value)
        object.__setattr__(message, name, MappingProxyType(dict(value)))
    if set(getattr(message, documents)) != set(getattr(message, items)):
        raise MalformedMessageError(documents, f"must name the same nodes as {items}")


@dataclass(frozen=True, slots=True)
class StateQuery(Request):
    """Ask a node for its signed state statement (its sealed-state epoch, identity-signed)."""

    OP: ClassVar[str] = "state_query"


@dataclass(frozen=True, slots=True)
class SignedState(Reply):
    OP: ClassVar[str] = "signed_state"
    statement: bytes

    def check(self) -> None:
        check_bytes("statement", self.statement, 1, 512)


@dataclass(frozen=True, slots=True)
class WitnessRecord(Request):
    """Peers' statements for this node to keep as their witness, each with the document of the
    peer's current boot (which binds the identity key the statement is signed with)."""

    OP: ClassVar[str] = "witness_record"
    documents: Mapping[str, bytes]
    statements: Mapping[str, bytes]

    def check(self) -> None:
        _same_nodes(self, "documents", "statements")


@dataclass(frozen=True, slots=True)
class WitnessRecorded(Reply):
    """The nodes whose statement was news to this node and is now sealed here."""

    OP: ClassVar[str] = "witness_recorded"
    recorded: tuple[str, ...]

    def check(self) -> None:
        if not isinstance(self.recorded, tuple) or len(self.recorded) > MAX_PARTICIPANTS:
            raise MalformedMessageError("recorded", "must be a list of node ids")
        for node_id in self.recorded:
            check_node_id(node_id, "recorded")


@dataclass(frozen=True, slots=True)
class WitnessQuery(Request):
    """Ask for this node's record of ``node_id``, sealed to the box key ``document`` binds."""

    OP: ClassVar[str] = "witness_query"
    node_id: str
    document: bytes

    def check(self) -> None:
        check_node_id(self.node_id)
        check_bytes("document", self.document, 1, _DOCUMENT)


@dataclass(frozen=True, slots=True)
class WitnessEnvelope(Reply):
    OP: ClassVar[str] = "witness_envelope"
    envelope: bytes

    def check(self) -> None:
        check_bytes("envelope", self.envelope, 1, 2048)


@dataclass(frozen=True, slots=True)
class WitnessCheck(Request):
    """Peers' sealed reports on this node, each with the document of the peer's current boot."""

    OP: ClassVar[str] = "witness_check"
    documents: Mapping[str, bytes]
    envelopes: Mapping[str, bytes]

    def check(self) -> None:
        _same_nodes(self, "documents", "envelopes")


@dataclass(frozen=True, slots=True)
class WitnessVerdict(Reply):
    """This node's state after the reports: ``pending``, ``witnessed`` (reports counted of
    reports needed); a rolled-back node answers an ``error`` (``rolled_back``) instead."""

    OP: ClassVar[str] = "witness_verdict"
    state: str
    counted: int
    needed: int

    def check(self) -> None:
        if self.state not in ("pending", "witnessed"):
            raise MalformedMessageError("state", "must be pending or witnessed")
        for name in ("counted", "needed"):
            value = getattr(self, name)
            if type(value) is not int or not 0 <= value <= MAX_PARTICIPANTS:
                raise MalformedMessageError(name, f"must be in 0..{MAX_PARTICIPANTS}")


# -- audit checkpoints peers witness (wire.checkpoints) ---------------------------------------


@dataclass(frozen=True, slots=True)
class AuditHead(Request):
    """Ask a node for its signed audit checkpoint (:class:`wire.checkpoints.AuditCheckpoint`):
    the head of the records its parent took (it hands over what is pending first)."""

    OP: ClassVar[str] = "audit_head"


@dataclass(frozen=True, slots=True)
class SignedCheckpoint(Reply):
    """An encoded :class:`~wire.checkpoints.AuditCheckpoint`; empty when the parent has taken
    no record of this node yet."""

    OP: ClassVar[str] = "signed_checkpoint"
    checkpoint: bytes

    def check(self) -> None:
        check_bytes("checkpoint", self.checkpoint, 0, 512)


@dataclass(frozen=True, slots=True)
class CheckpointRecord(Request):
    """Peers' signed audit checkpoints for this node to keep as their witness, each with the
    document of the peer's current boot (which binds the identity key that signed it);
    answered like :class:`WitnessRecord`."""

    OP: ClassVar[str] = "checkpoint_record"
    documents: Mapping[str, bytes]
    checkpoints: Mapping[str, bytes]

    def check(self) -> None:
        _same_nodes(self, "documents", "checkpoints")


@dataclass(frozen=True, slots=True)
class CheckpointQuery(Request):
    """Ask for this node's record of ``node_id``'s highest audit checkpoint, signed by this
    node's identity key (:class:`~wire.checkpoints.WitnessedCheckpoint`): what an auditor
    collects to show a stored log was not cut at its tail."""

    OP: ClassVar[str] = "checkpoint_query"
    node_id: str

    def check(self) -> None:
        check_node_id(self.node_id)


@dataclass(frozen=True, slots=True)
class WitnessedCheckpointReply(Reply):
    """An encoded :class:`~wire.checkpoints.WitnessedCheckpoint`; empty when this node keeps no
    checkpoint of that node."""

    OP: ClassVar[str] = "witnessed_checkpoint"
    record: bytes

    def check(self) -> None:
        check_bytes("record", self.record, 0, 1024)


# -- backup -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BackupShare(Request):
    """This node's share of ``key_name``, verifiably encrypted to ``recovery_key`` (a raw X25519
    public key; :mod:`enclave.mpc.pve`). The key's policy gates it (operation ``backup``, digest
    :func:`~wire.approvals.backup_digest` of the recovery key)."""

    OP: ClassVar[str] = "backup_share"
    key_name: str
    recovery_key: bytes
    approvals: tuple[bytes, ...] = ()

    def check(self) -> None:
        check_key_name(self.key_name)
        check_bytes("recovery_key", self.recovery_key, 32, 32)
        _approvals(self.approvals)


@dataclass(frozen=True, slots=True)
class ShareBackup(Reply):
    """The encryption with its proof, for the key as this node holds it: its party
    ``identifier``, ``epoch`` and public key package (the statement's label binds all three)."""

    OP: ClassVar[str] = "share_backup"
    identifier: int
    epoch: int
    public_key_package: bytes
    encryption: bytes

    def check(self) -> None:
        if type(self.identifier) is not int or not 1 <= self.identifier <= MAX_PARTICIPANTS:
            raise MalformedMessageError("identifier", "must be a participant position 1..16")
        if type(self.epoch) is not int or not 0 <= self.epoch < 2**32:
            raise MalformedMessageError("epoch", "must be a 32-bit counter")
        check_bytes("public_key_package", self.public_key_package, 1)
        check_bytes("encryption", self.encryption, 1)


@dataclass(frozen=True, slots=True)
class KeyRestore(Request):
    """Hold one share of a restored key: ``share`` is a :class:`wire.backup.RestoredShare`
    sealed (``crypto_box_seal``) to this node's attested box key. ``nodes`` lists the new
    holders by party position; the node seals the share *pending* until :class:`RestoreCommit`.
    The backup's ``policy`` becomes the key's, and gates this (operation ``restore``)."""

    OP: ClassVar[str] = "key_restore"
    key_name: str
    suite: str
    public_key_package: bytes
    policy: bytes
    nodes: tuple[str, ...]
    share: bytes
    approvals: tuple[bytes, ...] = ()

    def check(self) -> None:
        check_key_name(self.key_name)
        check_suite_name(self.suite)
        check_bytes("public_key_package", self.public_key_package, 1)
        _policy(self.policy)
        if not isinstance(self.nodes, tuple) or not 2 <= len(self.nodes) <= MAX_PARTICIPANTS:
            raise MalformedMessageError("nodes", f"must list 2..{MAX_PARTICIPANTS} nodes")
        for node_id in self.nodes:
            check_node_id(node_id, "nodes")
        if len(set(self.nodes)) != len(self.nodes):
            raise MalformedMessageError("nodes", "must be distinct")
        check_bytes("share", self.share, 1, 1024)
        _approvals(self.approvals)


@dataclass(frozen=True, slots=True)
class KeyRestored(Reply):
    """The restored share is sealed, pending."""

    OP: ClassVar[str] = "key_restored"


@dataclass(frozen=True, slots=True)
class RestoreCommit(Request):
    """Commit a key this node sealed pending by :class:`KeyRestore` in this boot (a DKG's
    pending key is never committed this way: that takes every peer's acknowledgement)."""

    OP: ClassVar[str] = "restore_commit"
    key_name: str

    def check(self) -> None:
        check_key_name(self.key_name)


@dataclass(frozen=True, slots=True)
class AuditReceipts(Request):
    """This client's receipts for what it just had done: the node's signed audit records
    (``wire.audit``) of this client's successful requests whose digest is among ``digests``
    (message digests of signatures, decryption digests), from the node's recent records."""

    OP: ClassVar[str] = "audit_receipts"
    digests: tuple[bytes, ...]

    def check(self) -> None:
        _blobs("digests", self.digests, low=1, high=MAX_AUDIT_RECEIPTS, size=(32, 32))


@dataclass(frozen=True, slots=True)
class AuditReceiptsReply(Reply):
    """Signed audit records (canonical bodies and identity-key signatures), oldest first."""

    OP: ClassVar[str] = "audit_receipts_reply"
    bodies: tuple[bytes, ...]
    signatures: tuple[bytes, ...]

    def check(self) -> None:
        _blobs("bodies", self.bodies, high=4 * MAX_AUDIT_RECEIPTS, size=(1, 4096))
        _blobs("signatures", self.signatures, high=4 * MAX_AUDIT_RECEIPTS, size=(64, 64))
        if len(self.bodies) != len(self.signatures):
            raise MalformedMessageError("signatures", "one signature per record")


#: Digests one :class:`AuditReceipts` asks about (a batch's items).
MAX_AUDIT_RECEIPTS = 256


@dataclass(frozen=True, slots=True)
class ErrorReply(Reply):
    """A refused request: why (an :class:`ErrorCode`) and public text. A code this client does
    not know (a newer node) decodes as :attr:`ErrorCode.INTERNAL`, keeping the text."""

    OP: ClassVar[str] = "error"
    code: ErrorCode
    message: str

    def check(self) -> None:
        if not isinstance(self.code, ErrorCode):
            raise MalformedMessageError("code", "must be an error code")
        if type(self.message) is not str or len(self.message) > 2000:
            raise MalformedMessageError("message", "must be at most 2000 characters")


#: The one request -> reply table (an ErrorReply may answer any request).
REPLIES: Mapping[type[Request], tuple[type[Reply], ...]] = MappingProxyType(
    {
        Hello: (HelloReply,),
        KeyCreate: (DkgOutbox,),
        DkgStep: (DkgOutbox, KeyCreated),
        KeyCommit: (KeyCommitted,),
        KeyInfo: (KeyInfoReply,),
        KeyList: (KeyListReply,),
        KeySetState: (KeyStateReply,),
        KeyRefresh: (DkgOutbox,),
        RefreshStep: (RefreshStaged,),
        RefreshCommit: (KeyCommitted,),
        RefreshVouch: (DkgOutbox,),
        RefreshFinish: (KeyCommitted,),
        RefreshAbandon: (KeyInfoReply,),
        NonceCommit: (NonceCommitments,),
        FrostSign: (SignatureShares,),
        DecryptPartial: (Partial, Endorsed),
        DecryptPartials: (Partials,),
        PresignStart: (DkgOutbox,),
        PresignStep: (DkgOutbox, Presigned),
        BackupShare: (ShareBackup,),
        KeyRestore: (KeyRestored,),
        RestoreCommit: (KeyCommitted,),
        EcdsaSign: (SignatureShares,),
        KeyExport: (ExportedShare,),
        KeyImport: (KeyCreated,),
        StateQuery: (SignedState,),
        PolicyUpdate: (PolicyUpdated,),
        PolicyShow: (PolicyHistory,),
        AuditReceipts: (AuditReceiptsReply,),
        WitnessRecord: (WitnessRecorded,),
        WitnessQuery: (WitnessEnvelope,),
        WitnessCheck: (WitnessVerdict,),
        AuditHead: (SignedCheckpoint,),
        CheckpointRecord: (WitnessRecorded,),
        CheckpointQuery: (WitnessedCheckpointReply,),
        PrfEvaluate: (PrfPartials, Endorsed),
        Bip340NonceCommit: (NonceCommitments,),
        Bip340Sign: (SignatureShares,),
        RepairStart: (DkgOutbox,),
        RepairSum: (DkgOutbox,),
        RepairInstall: (KeyCommitted,),
        ReshareStart: (DkgOutbox,),
        ReshareStep: (RefreshStaged,),
        ReshareCommit: (KeyCommitted,),
        ReshareVouch: (DkgOutbox,),
        ReshareFinish: (KeyCommitted,),
        ReshareAbandon: (ReshareStatus,),
    }
)
_REQUESTS: dict[str, type[Message]] = {cls.OP: cls for cls in REPLIES}
_REPLY_TYPES: tuple[type[Reply], ...] = (
    *(cls for replies in REPLIES.values() for cls in replies),
    ErrorReply,
)
_REPLIES: dict[str, type[Message]] = {cls.OP: cls for cls in _REPLY_TYPES}


def _to_wire(value: object) -> object:
    if isinstance(value, ErrorCode):
        return value.value
    if isinstance(value, Mapping):
        return {k: _to_wire(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_to_wire(v) for v in value]
    return value


def _from_wire(value: object) -> object:
    if type(value) is list:
        return tuple(_from_wire(v) for v in value)
    return value


def encode(message: Message, request_id: int) -> bytes:
    """The frame carrying ``message`` for request ``request_id``."""
    if type(request_id) is not int or not 0 <= request_id <= MAX_REQUEST_ID:
        raise ValueError("request id out of range")
    body: dict[str, Any] = {"v": PROTOCOL_VERSION, "id": request_id, "op": message.OP}
    for item in fields(message):
        value = _to_wire(getattr(message, item.name))
        if item.name in message.OPTIONAL and value == _default(item):
            continue  # an optional field at its default is left out (its one encoding)
        body[item.name] = value
    return cbor.dumps(body)


def _default(item: Field[Any]) -> object:
    """The wire form of an optional field's default."""
    if item.default_factory is not MISSING:
        return _to_wire(item.default_factory())
    return _to_wire(item.default)


def _decode(payload: bytes, table: Mapping[str, type[Message]]) -> tuple[int, Message]:
    value = cbor.loads_map(payload, what="frame", version=PROTOCOL_VERSION)
    del value["v"]
    request_id = value.pop("id", None)
    if type(request_id) is not int or not 0 <= request_id <= MAX_REQUEST_ID:
        raise MalformedMessageError("id", "must be a request id")
    op = value.pop("op", None)
    cls = table.get(op) if type(op) is str else None
    if cls is None:
        raise MalformedMessageError("op", "unknown message type")
    names = {item.name: item for item in fields(cls)}
    if not set(names) - cls.OPTIONAL <= set(value) <= set(names):
        raise MalformedMessageError(cls.OP, "missing or unknown fields")
    for name in cls.OPTIONAL & set(value):
        if value[name] == _default(names[name]):
            raise MalformedMessageError(name, "an optional field at its default is left out")
    kwargs = {name: _from_wire(item) for name, item in value.items()}
    if cls is ErrorReply:
        try:
            kwargs["code"] = ErrorCode(kwargs["code"])
        except ValueError:
            kwargs["code"] = ErrorCode.INTERNAL
    try:
        return request_id, cls(**kwargs)
    except MalformedMessageError:
        raise
    except (TypeError, ValueError, AttributeError):
        raise MalformedMessageError(cls.OP, "wrong field types") from None


def decode_request(payload: bytes) -> tuple[int, Request]:
    """Strictly decode one request frame: ``(request id, request)``."""
    request_id, message = _decode(payload, _REQUESTS)
    if not isinstance(message, Request):  # pragma: no cover -- the table holds requests only
        raise MalformedMessageError("op", "not a request")
    return request_id, message


def decode_reply(payload: bytes) -> tuple[int, Reply]:
    """Strictly decode one reply frame: ``(id of the request it answers, reply)``."""
    request_id, message = _decode(payload, _REPLIES)
    if not isinstance(message, Reply):  # pragma: no cover -- the table holds replies only
        raise MalformedMessageError("op", "not a reply")
    return request_id, message
