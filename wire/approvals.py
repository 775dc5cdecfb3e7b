"""Approval policies and approvals: the types both the approver's client and every node speak.

A policy (approver Ed25519 public keys, a quorum ``q``, the operations that need it) is fixed when
a key is created; its canonical encoding is bound into the DKG and sealed with each share. An
approval is an Ed25519 signature by one approver over :func:`approval_statement`: a
domain-separated, length-prefixed encoding of (version, key name, group public key, operation,
SHA-256 digest of what is approved, ``not_after`` in UTC seconds). What is approved:

* sign: ``SHA-256(message)`` (:func:`message_digest`) — the exact bytes the signing package signs;
* decrypt: ``SHA-256(lp("keyshard/decrypt/v1") || lp(ciphertext) || lp(context))``
  (:func:`decryption_digest`), ``context`` being the associated data the client will use;
* a lifecycle operation (refresh, reshare, backup, restore, delete, repair):
  ``SHA-256(lp("keyshard/lifecycle/v1") || lp(operation) || lp(epoch) || lp(detail))``
  (:func:`lifecycle_digest`): the key's current epoch, so an approval is spent by the change it
  approves, and the operation's parameters (delete: the waiting days).

* backup: ``SHA-256(lp("keyshard/backup-approval/v1") || lp(recovery public key))``
  (:func:`backup_digest`) — the approval names the one recovery key the shares may be encrypted
  to;
* restore: ``SHA-256(lp("keyshard/restore-approval/v1") || lp(public key package))``
  (:func:`restore_digest`), checked by each node against the policy the backup carries;
* update-policy: ``SHA-256(lp("keyshard/policy-update/v1") || lp(update count) || lp(policy))``
  (:func:`policy_update_digest`), checked against the key's CURRENT policy.

Which operations need the quorum: those the policy lists, and always reshare, backup, restore and
delete (:data:`GUARDED_OPERATIONS`) — they move or destroy the key, so a key with a policy never
does them on a client's word alone, whatever the policy lists (policies sealed before these
operations existed included). Refresh and repair are free unless listed: neither changes anyone's
power over the key (a repair gives a recorded holder back the share it had).

Approver keys must be canonical encodings of points of prime order (libsodium's
``crypto_core_ed25519_is_valid_point``): with a small-order key listed (one of the eight points of
order dividing 8), ``R = identity, S = 0`` is a valid signature of almost any statement, so anyone
could forge that approver's approvals — and cryptography's Ed25519 accepts such keys and such
signatures. For the same reason :meth:`Approval.verify` refuses a signature whose ``R`` is not a
canonical prime-order point; cryptography already refuses a non-canonical ``S`` (``S >= L``).

A policy may bound how long its approvals live (``max_approval_lifetime``, seconds; without it
:data:`DEFAULT_APPROVAL_LIFETIME`): a node refuses an approval whose ``not_after`` lies further in
its future. A policy without a lifetime keeps its version-1 encoding (policies sealed before
lifetimes existed decode unchanged); one with a lifetime is version 2, with one more field.

The rule that enforces a policy lives in the enclave (:mod:`enclave.service.policy`); this module
only says what the values are and how they are encoded, hashed and signed.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from nacl import bindings as sodium

from wire import cbor
from wire.errors import MalformedMessageError
from wire.hashing import lp_join

__all__ = [
    "CLOCK_SKEW",
    "DEFAULT_APPROVAL_LIFETIME",
    "GUARDED_OPERATIONS",
    "MAX_APPROVAL_LIFETIME",
    "MAX_APPROVERS",
    "Approval",
    "ApprovalPolicy",
    "ApproverGroup",
    "Operation",
    "approval_statement",
    "backup_digest",
    "decryption_digest",
    "lifecycle_digest",
    "message_digest",
    "policy_update_digest",
    "prf_digest",
    "reshare_detail",
    "restore_digest",
]

POLICY_VERSION = 1  # no lifetime field: DEFAULT_APPROVAL_LIFETIME applies
POLICY_VERSION_LIFETIME = 2  # with "max_lifetime"
POLICY_VERSION_GOVERNANCE = 3  # with "groups" and "mandatory_nodes" (and "max_lifetime")
MAX_GROUPS = 8
#: The longest list of mandatory participants (a cluster's size bound).
MAX_MANDATORY_NODES = 16
APPROVAL_VERSION = 1
MAX_APPROVERS = 32
#: Seconds an approval stays acceptable after its ``not_after`` (clocks of approvers and enclaves
#: differ a little; a node never accepts an approval more than this late).
CLOCK_SKEW = 60
#: The longest an approval may live (``not_after`` after a node's clock) when its key's policy
#: names no lifetime; and the longest any policy may allow.
DEFAULT_APPROVAL_LIFETIME = 7 * 24 * 3600
MAX_APPROVAL_LIFETIME = 30 * 24 * 3600
_MAX_TIME = 2**40
_STATEMENT_DOMAIN = b"keyshard/approval/v1"
_DECRYPT_DOMAIN = b"keyshard/decrypt/v1"
_LIFECYCLE_DOMAIN = b"keyshard/lifecycle/v1"
_POLICY_UPDATE_DOMAIN = b"keyshard/policy-update/v1"
_BACKUP_DOMAIN = b"keyshard/backup-approval/v1"
_RESTORE_DOMAIN = b"keyshard/restore-approval/v1"
_GROUP_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
_NODE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_PRF_DOMAIN = b"keyshard/prf-decrypt/v1"


class Operation(enum.Enum):
    SIGN = "sign"
    DECRYPT = "decrypt"
    REFRESH = "refresh"
    RESHARE = "reshare"
    BACKUP = "backup"
    RESTORE = "restore"
    DELETE = "delete"
    UPDATE_POLICY = "update-policy"
    REPAIR = "repair"
    EXPORT = "export"  # keyshard key export: lifecycle_digest(EXPORT, epoch, recipient key)


#: Operations every policy requires its quorum for, listed or not.
GUARDED_OPERATIONS = frozenset(
    {
        Operation.RESHARE,
        Operation.BACKUP,
        Operation.RESTORE,
        Operation.DELETE,
        Operation.UPDATE_POLICY,
    }
)


def _public_key(field: str, value: object) -> bytes:
    if type(value) is not bytes or len(value) != 32:
        raise MalformedMessageError(field, "an Ed25519 public key is 32 bytes")
    if not sodium.crypto_core_ed25519_is_valid_point(value):
        raise MalformedMessageError(
            field, "not an Ed25519 public key (small order or not canonical)"
        )
    return value


def _approver_list(field: str, value: object, high: int = MAX_APPROVERS) -> tuple[bytes, ...]:
    """1..``high`` distinct, valid approver keys, sorted (one encoding per set)."""
    approvers = tuple(value) if isinstance(value, tuple | list) else None
    if approvers is None or not 1 <= len(approvers) <= high:
        raise MalformedMessageError(field, f"must list 1..{high} keys")
    for key in approvers:
        _public_key(field, key)
    if len(set(approvers)) != len(approvers):
        raise MalformedMessageError(field, "must be distinct")
    return tuple(sorted(approvers))


@dataclass(frozen=True, slots=True)
class ApproverGroup:
    """A named group of approvers with its own quorum: every group of a policy must reach its
    quorum (e.g. "2 of treasury AND 1 of compliance"), besides the policy's overall quorum."""

    name: str
    approvers: tuple[bytes, ...]
    quorum: int

    def __post_init__(self) -> None:
        if type(self.name) is not str or not _GROUP_NAME.fullmatch(self.name):
            raise MalformedMessageError("groups.name", "must be 1-32 of [a-z0-9_-]")
        object.__setattr__(self, "approvers", _approver_list("groups.approvers", self.approvers))
        if type(self.quorum) is not int or not 1 <= self.quorum <= len(self.approvers):
            raise MalformedMessageError("groups.quorum", "must be in 1..number of its approvers")

    def to_wire(self) -> dict[str, object]:
        return {"name": self.name, "approvers": list(self.approvers), "quorum": self.quorum}

    @classmethod
    def from_wire(cls, value: object) -> ApproverGroup:
        if not isinstance(value, dict) or set(value) != {"name", "approvers", "quorum"}:
            raise MalformedMessageError("groups", "each group is a map of name, approvers, quorum")
        return cls(value["name"], value["approvers"], value["quorum"])


@dataclass(frozen=True, slots=True)
class ApprovalPolicy:
    """Approvers (sorted, distinct), quorum ``1 <= q <= len(approvers)``, operations needing it,
    and the longest an approval may live (seconds; None: :data:`DEFAULT_APPROVAL_LIFETIME`).

    Governance (version 3): ``groups`` — named groups of the approvers, each with its own quorum,
    ALL of which must be met besides the overall ``quorum`` of distinct approvers;
    ``mandatory_nodes`` — nodes that must take part in every signing and decryption set (no
    quorum of nodes without them)."""

    approvers: tuple[bytes, ...]
    quorum: int
    operations: frozenset[Operation]
    max_approval_lifetime: int | None = None
    groups: tuple[ApproverGroup, ...] = ()
    mandatory_nodes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        approvers = tuple(self.approvers) if isinstance(self.approvers, tuple | list) else None
        if approvers is None or not 1 <= len(approvers) <= MAX_APPROVERS:
            raise MalformedMessageError("approvers", f"must list 1..{MAX_APPROVERS} keys")
        for key in approvers:
            _public_key("approvers", key)
        if len(set(approvers)) != len(approvers):
            raise MalformedMessageError("approvers", "must be distinct")
        object.__setattr__(self, "approvers", tuple(sorted(approvers)))
        if type(self.quorum) is not int or not 1 <= self.quorum <= len(approvers):
            raise MalformedMessageError("quorum", "must be in 1..number of approvers")
        operations = self.operations
        if (
            not isinstance(operations, frozenset)
            or not operations
            or not all(isinstance(op, Operation) for op in operations)
        ):
            raise MalformedMessageError("operations", "must be a non-empty set of operations")
        lifetime = self.max_approval_lifetime
        if lifetime is not None and (
            type(lifetime) is not int or not 1 <= lifetime <= MAX_APPROVAL_LIFETIME
        ):
            raise MalformedMessageError(
                "max_approval_lifetime", f"must be 1..{MAX_APPROVAL_LIFETIME} seconds"
            )
        self._check_governance()

    def _check_governance(self) -> None:
        groups = self.groups
        if not isinstance(groups, tuple) or len(groups) > MAX_GROUPS:
            raise MalformedMessageError("groups", f"must be a list of at most {MAX_GROUPS}")
        if not all(isinstance(g, ApproverGroup) for g in groups):
            raise MalformedMessageError("groups", "must be approver groups")
        names = [g.name for g in groups]
        if names != sorted(set(names)):
            raise MalformedMessageError("groups", "must be sorted by name, names distinct")
        if any(not set(g.approvers) <= set(self.approvers) for g in groups):
            raise MalformedMessageError("groups", "a group's approvers must be policy approvers")
        nodes = self.mandatory_nodes
        if not isinstance(nodes, tuple) or len(nodes) > MAX_MANDATORY_NODES:
            raise MalformedMessageError("mandatory_nodes", "must be a short list of node ids")
        if any(type(n) is not str or not _NODE_ID.fullmatch(n) for n in nodes):
            raise MalformedMessageError("mandatory_nodes", "must be node ids")
        if list(nodes) != sorted(set(nodes)):
            raise MalformedMessageError("mandatory_nodes", "must be sorted and distinct")

    @property
    def governed(self) -> bool:
        """Whether the policy uses groups or mandatory participants (encoding version 3)."""
        return bool(self.groups or self.mandatory_nodes)

    @property
    def approval_lifetime(self) -> int:
        """The longest, in seconds, an approval's ``not_after`` may lie after a node's clock."""
        if self.max_approval_lifetime is None:
            return DEFAULT_APPROVAL_LIFETIME
        return self.max_approval_lifetime

    def requires(self, operation: Operation) -> bool:
        """Listed operations, and always :data:`GUARDED_OPERATIONS`."""
        return operation in self.operations or operation in GUARDED_OPERATIONS

    def encode(self) -> bytes:
        """The canonical encoding (what the DKG binds and what is sealed): version 1 without a
        lifetime, version 2 with one."""
        value: dict[str, object] = {
            "v": POLICY_VERSION,
            "approvers": list(self.approvers),
            "quorum": self.quorum,
            "operations": sorted(op.value for op in self.operations),
        }
        if self.max_approval_lifetime is not None:
            value |= {"v": POLICY_VERSION_LIFETIME, "max_lifetime": self.max_approval_lifetime}
        if self.governed:
            value |= {
                "v": POLICY_VERSION_GOVERNANCE,
                "groups": [g.to_wire() for g in self.groups],
                "mandatory_nodes": list(self.mandatory_nodes),
            }
        return cbor.dumps(value)

    @classmethod
    def decode(cls, data: bytes) -> ApprovalPolicy:
        value = cbor.loads_map(data, what="policy")
        fields = {"v", "approvers", "quorum", "operations"}
        governance = {"groups", "mandatory_nodes"}
        groups: tuple[ApproverGroup, ...] = ()
        mandatory: tuple[str, ...] = ()
        if value.get("v") == POLICY_VERSION_GOVERNANCE and (
            set(value) in (fields | governance, fields | governance | {"max_lifetime"})
        ):
            lifetime = value.get("max_lifetime")
            if not isinstance(value["groups"], list) or not isinstance(
                value["mandatory_nodes"], list
            ):
                raise MalformedMessageError("policy", "groups and mandatory_nodes are lists")
            groups = tuple(ApproverGroup.from_wire(g) for g in value["groups"])
            mandatory = tuple(value["mandatory_nodes"])
        elif set(value) == fields | {"max_lifetime"} and value["v"] == POLICY_VERSION_LIFETIME:
            lifetime = value["max_lifetime"]
        elif set(value) == fields and value["v"] == POLICY_VERSION:
            lifetime = None
        else:
            raise MalformedMessageError("policy", "unknown version or fields")
        names = value["operations"]
        if (
            not isinstance(names, list)
            or not all(type(n) is str for n in names)
            or names != sorted(set(names))
        ):
            raise MalformedMessageError("operations", "must be a sorted list without duplicates")
        try:
            operations = frozenset(Operation(name) for name in names)
        except ValueError:
            raise MalformedMessageError("operations", "unknown operation") from None
        approvers = value["approvers"]
        if not isinstance(approvers, list):
            raise MalformedMessageError("approvers", "must be a list")
        policy = cls(tuple(approvers), value["quorum"], operations, lifetime, groups, mandatory)
        if policy.encode() != data:  # e.g. approvers out of order: one encoding per policy
            raise MalformedMessageError("policy", "not the canonical encoding")
        return policy

    def __str__(self) -> str:
        ops = ",".join(sorted(op.value for op in self.operations))
        text = f"{self.quorum} of {len(self.approvers)} approvers"
        for group in self.groups:
            text += f" AND {group.quorum} of {group.name} ({len(group.approvers)})"
        text += f" for {ops}; approvals live at most {self.approval_lifetime} s"
        if self.mandatory_nodes:
            text += f"; every signing and decryption set includes {', '.join(self.mandatory_nodes)}"
        return text


def message_digest(message: bytes) -> bytes:
    return hashlib.sha256(message).digest()


def decryption_digest(ciphertext: bytes, context: bytes) -> bytes:
    return hashlib.sha256(lp_join((_DECRYPT_DOMAIN, ciphertext, context))).digest()


def lifecycle_digest(operation: Operation, epoch: int, detail: bytes = b"") -> bytes:
    """What an approval of a lifecycle operation names: the operation, the key's epoch when it
    is asked (a refresh or reshare moves the key on, so the approval is not good twice), and the
    operation's parameters (``detail``; delete: the waiting days as 2 bytes)."""
    if operation in (Operation.SIGN, Operation.DECRYPT):
        raise ValueError("sign and decrypt approvals name a message or a ciphertext")
    if not 0 <= epoch < 2**32:
        raise ValueError("epoch out of range")
    return hashlib.sha256(
        lp_join((_LIFECYCLE_DOMAIN, operation.value.encode(), epoch.to_bytes(4, "big"), detail))
    ).digest()


def reshare_detail(nodes: Sequence[str], threshold: int) -> bytes:
    """The ``detail`` of a reshare approval (:func:`lifecycle_digest` with operation
    ``reshare``): the new committee in identifier order and its threshold, so an approval moves
    the key to exactly that committee."""
    if not 0 < threshold < 2**16:
        raise ValueError("threshold out of range")
    return lp_join((threshold.to_bytes(2, "big"), *(n.encode() for n in nodes)))


def policy_update_digest(version: int, policy: bytes) -> bytes:
    """What an approval of a policy update names: the number of updates the key has had (so an
    approval moves the policy once) and the new policy's encoding (empty: no policy)."""
    if not 0 <= version < 2**32:
        raise ValueError("policy version out of range")
    return hashlib.sha256(
        lp_join((_POLICY_UPDATE_DOMAIN, version.to_bytes(4, "big"), policy))
    ).digest()


def backup_digest(recovery_key: bytes) -> bytes:
    """What a backup approval approves: the recovery key the shares are encrypted to."""
    return hashlib.sha256(lp_join((_BACKUP_DOMAIN, recovery_key))).digest()


def restore_digest(public_key_package: bytes) -> bytes:
    """What a restore approval approves: the key's public package (group key, threshold, every
    verification share), i.e. exactly which shares may be dealt into the enclaves again."""
    return hashlib.sha256(lp_join((_RESTORE_DOMAIN, public_key_package))).digest()


def prf_digest(key_name: str, seed: bytes) -> bytes:
    """What an approval to evaluate a key's PRF at ``seed`` (XKS decryption) would name."""
    return hashlib.sha256(lp_join((_PRF_DOMAIN, key_name.encode(), seed))).digest()


def approval_statement(
    key_name: str, group_public_key: bytes, operation: Operation, digest: bytes, not_after: int
) -> bytes:
    """The exact bytes an approver signs (domain-separated, length-prefixed, versioned)."""
    return lp_join(
        (
            _STATEMENT_DOMAIN,
            key_name.encode(),
            group_public_key,
            operation.value.encode(),
            digest,
            not_after.to_bytes(8, "big"),
        )
    )


_APPROVAL_FIELDS = {"v", "key", "group_public_key", "op", "digest", "not_after", "approver", "sig"}


@dataclass(frozen=True, slots=True)
class Approval:
    """One approver's signed statement; validated for shape on construction, not for validity."""

    key_name: str
    group_public_key: bytes
    operation: Operation
    digest: bytes
    not_after: int
    approver: bytes
    signature: bytes

    def __post_init__(self) -> None:
        if type(self.key_name) is not str or not 1 <= len(self.key_name) <= 63:
            raise MalformedMessageError("approval.key", "must be a key name")
        if type(self.group_public_key) is not bytes or not 1 <= len(self.group_public_key) <= 65:
            raise MalformedMessageError("approval.group_public_key", "must be 1..65 bytes")
        if not isinstance(self.operation, Operation):
            raise MalformedMessageError("approval.op", "unknown operation")
        if type(self.digest) is not bytes or len(self.digest) != 32:
            raise MalformedMessageError("approval.digest", "must be 32 bytes")
        if type(self.not_after) is not int or not 0 <= self.not_after < _MAX_TIME:
            raise MalformedMessageError("approval.not_after", "must be UTC seconds")
        _public_key("approval.approver", self.approver)
        if type(self.signature) is not bytes or len(self.signature) != 64:
            raise MalformedMessageError("approval.sig", "must be 64 bytes")

    def statement(self) -> bytes:
        return approval_statement(
            self.key_name, self.group_public_key, self.operation, self.digest, self.not_after
        )

    def encode(self) -> bytes:
        return cbor.dumps(
            {
                "v": APPROVAL_VERSION,
                "key": self.key_name,
                "group_public_key": self.group_public_key,
                "op": self.operation.value,
                "digest": self.digest,
                "not_after": self.not_after,
                "approver": self.approver,
                "sig": self.signature,
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> Approval:
        value = cbor.loads_map(data, what="approval")
        if set(value) != _APPROVAL_FIELDS or value["v"] != APPROVAL_VERSION:
            raise MalformedMessageError("approval", "unknown version or fields")
        try:
            operation = Operation(value["op"])
        except ValueError:
            raise MalformedMessageError("approval.op", "unknown operation") from None
        return cls(
            value["key"],
            value["group_public_key"],
            operation,
            value["digest"],
            value["not_after"],
            value["approver"],
            value["sig"],
        )

    def verify(self) -> None:
        """Raise :class:`cryptography.exceptions.InvalidSignature` unless the signature holds.

        ``R`` must be a canonical point of prime order (OpenSSL accepts ``R`` = identity, which
        an honest signer never produces), so each approval has one valid signature encoding;
        OpenSSL refuses a non-canonical ``S`` itself.
        """
        if not sodium.crypto_core_ed25519_is_valid_point(self.signature[:32]):
            raise InvalidSignature
        Ed25519PublicKey.from_public_bytes(self.approver).verify(self.signature, self.statement())
