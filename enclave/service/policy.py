"""Approval policies enforced by each node on its own: :func:`check_approvals` is the one rule.

The policy and approval types (and their digests) are wire types (:mod:`wire.approvals`): the
approver's client writes them, every node reads them. The policy is fixed when the key is created:
its canonical encoding is bound into the DKG session context (:mod:`enclave.service.dkg`), so the
DKG only completes among nodes that were given byte-identical policies, and it is sealed with each
node's share (:mod:`enclave.service.keystore`). No node trusts the client or another node to have
checked.

:func:`check_approvals`: every approval given must be for exactly this key, operation and digest,
by a listed approver, unexpired (with :data:`~wire.approvals.CLOCK_SKEW` seconds of grace), with a
valid signature; and at least ``q`` distinct approvers must remain. Any defect refuses the whole
request with a typed error naming the rule and the approval's index (fail closed). An approval
whose ``not_after`` lies more than the policy's lifetime (plus the skew) after the node's clock is
refused too: an approval is never a capability without bound.

:class:`SpentApprovals`: decrypt approvals are single use on each node. The node remembers, in
memory and bounded, every decrypt approval it accepted until that approval could no longer be
accepted anyway (``not_after`` plus the skew), and refuses a second use. A restart forgets the
table: a spent approval can then be used once more on that node until it expires, which the
lifetime bounds. Each node keeps its own table, so one approval yields at most one partial
decryption per node — at most ``n // (t + 1)`` decryptions across the cluster, one when
``n < 2t + 2``. Signing approvals are not spent: they name one exact message.

The two errors defined here (:class:`~enclave.service.errors.ApprovalError` subclasses, each
with its wire code) belong with the others in :mod:`enclave.service.errors`.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Sequence

from cryptography.exceptions import InvalidSignature

from enclave.service.errors import (
    ApprovalError,
    ApprovalExpiredError,
    ApprovalMismatchError,
    ApprovalSignatureError,
    ApprovalUnlistedError,
    BusyError,
    GroupQuorumNotMetError,
    QuorumNotMetError,
)
from wire.approvals import CLOCK_SKEW, Approval, ApprovalPolicy, Operation
from wire.errors import ErrorCode
from wire.hashing import lp_join

__all__ = [
    "ApprovalLifetimeError",
    "ApprovalReusedError",
    "SpentApprovals",
    "check_approvals",
]

_SPENT_DOMAIN = b"keyshard/spent-approval/v1"


class ApprovalLifetimeError(ApprovalError):
    """Approval ``index`` lives longer than the key's policy allows (``limit``: its approval
    lifetime in seconds; the node allows :data:`~wire.approvals.CLOCK_SKEW` more). The wire code
    is ``approval_expired``: the remedy is the same, a fresh approval with a nearer expiry."""

    code = ErrorCode.APPROVAL_EXPIRED
    rule = "lifetime"

    def __init__(self, index: int, not_after: int, limit: int) -> None:
        super().__init__(
            f"approval {index} expires at {not_after} (UTC seconds): more than {limit} s from "
            "now, the key's approval lifetime"
        )
        self.index, self.not_after, self.limit = index, not_after, limit


class ApprovalReusedError(ApprovalError):
    """Approval ``index`` was already spent on a decryption by this node."""

    code = ErrorCode.APPROVAL_REUSED
    rule = "reused"

    def __init__(self, index: int) -> None:
        super().__init__(f"approval {index} was already used for a decryption on this node")
        self.index = index


def check_approvals(
    policy: ApprovalPolicy | None,
    approvals: Sequence[bytes],
    *,
    key_name: str,
    group_public_key: bytes,
    operation: Operation,
    digest: bytes,
    now: int,
) -> tuple[Approval, ...]:
    """Refuse unless ``policy`` does not cover ``operation`` or a valid quorum approved it; the
    approvals accepted, in the request's order (none when no approval is needed).

    Every approval must pass every rule (one bad approval refuses the request, naming its index);
    the same approver counted twice counts once.
    """
    if policy is None or not policy.requires(operation):
        return ()
    lifetime = policy.approval_lifetime
    accepted: list[Approval] = []
    approved: set[bytes] = set()
    for index, encoded in enumerate(approvals):
        approval = Approval.decode(encoded)
        expected: tuple[tuple[str, object, object], ...] = (
            ("key", approval.key_name, key_name),
            ("group_public_key", approval.group_public_key, group_public_key),
            ("operation", approval.operation, operation),
            ("digest", approval.digest, digest),
        )
        for field, given, wanted in expected:
            if given != wanted:
                raise ApprovalMismatchError(index, field)
        if approval.approver not in policy.approvers:
            raise ApprovalUnlistedError(index)
        if approval.not_after + CLOCK_SKEW < now:
            raise ApprovalExpiredError(index, approval.not_after)
        if approval.not_after - now > lifetime + CLOCK_SKEW:
            raise ApprovalLifetimeError(index, approval.not_after, lifetime)
        try:
            approval.verify()
        except InvalidSignature:
            raise ApprovalSignatureError(index) from None
        accepted.append(approval)
        approved.add(approval.approver)
    if len(approved) < policy.quorum:
        raise QuorumNotMetError(len(approved), policy.quorum)
    for group in policy.groups:  # every group reaches its own quorum, whatever the total
        have = len(approved & set(group.approvers))
        if have < group.quorum:
            raise GroupQuorumNotMetError(group.name, have, group.quorum)
    return tuple(accepted)


class SpentApprovals:
    """The decrypt approvals this node accepted and that could still be accepted: each spent
    once (see the module docstring for what a restart forgets).

    An approval is identified by SHA-256 of its approver and its statement — what was approved,
    not how the signature is encoded. It is kept until ``not_after + CLOCK_SKEW`` has passed
    (after which :func:`check_approvals` refuses it as expired), at most ``capacity`` at a time:
    when full, a request is refused as busy (retryable, nothing spent) rather than forget an
    approval that could still be replayed. With lifetimes of a week, filling the table takes
    ``capacity`` distinct approvals signed by the approvers within a week.
    """

    def __init__(self, capacity: int = 1 << 16) -> None:
        self._capacity = capacity
        self._until: dict[bytes, int] = {}
        self._expiries: list[tuple[int, bytes]] = []  # a heap of (forget after, id)

    def __len__(self) -> int:
        return len(self._until)

    def spend(self, approvals: Sequence[Approval], now: int) -> None:
        """Record ``approvals`` as spent; refuse (spending none) if any was spent already."""
        self._forget_expired(now)
        ids = [self._id(approval) for approval in approvals]
        for index, approval_id in enumerate(ids):
            if approval_id in self._until:
                raise ApprovalReusedError(index)
        fresh = dict.fromkeys(ids)  # one request naming one approval twice spends it once
        if len(self._until) + len(fresh) > self._capacity:
            raise BusyError("too many unexpired decrypt approvals spent on this node")
        for approval_id, approval in zip(ids, approvals, strict=True):
            if approval_id not in self._until:
                until = approval.not_after + CLOCK_SKEW
                self._until[approval_id] = until
                heapq.heappush(self._expiries, (until, approval_id))

    def spend_each(self, items: Sequence[Sequence[Approval]], now: int) -> None:
        """Record the approvals of every item of a batch as spent, all or none: refused
        (spending none) if any was spent already or one approval is named by two items — each
        approval opens one decryption, as it would across single requests."""
        seen: set[bytes] = set()
        for approvals in items:
            ids = [self._id(approval) for approval in approvals]
            for index, approval_id in enumerate(ids):
                if approval_id in seen:
                    raise ApprovalReusedError(index)
            seen.update(ids)
        self.spend([approval for approvals in items for approval in approvals], now)

    def _forget_expired(self, now: int) -> None:
        while self._expiries and self._expiries[0][0] < now:
            _, approval_id = heapq.heappop(self._expiries)
            del self._until[approval_id]

    @staticmethod
    def _id(approval: Approval) -> bytes:
        return hashlib.sha256(
            lp_join((_SPENT_DOMAIN, approval.approver, approval.statement()))
        ).digest()
