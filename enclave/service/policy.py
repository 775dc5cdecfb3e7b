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
request with a typed error naming the rule and the approval's index (fail closed).
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.exceptions import InvalidSignature

from enclave.service.errors import (
    ApprovalExpiredError,
    ApprovalMismatchError,
    ApprovalSignatureError,
    ApprovalUnlistedError,
    QuorumNotMetError,
)
from wire.approvals import CLOCK_SKEW, Approval, ApprovalPolicy, Operation

__all__ = ["check_approvals"]


def check_approvals(
    policy: ApprovalPolicy | None,
    approvals: Sequence[bytes],
    *,
    key_name: str,
    group_public_key: bytes,
    operation: Operation,
    digest: bytes,
    now: int,
) -> None:
    """Refuse unless ``policy`` does not cover ``operation`` or a valid quorum approved it.

    Every approval must pass every rule (one bad approval refuses the request, naming its index);
    the same approver counted twice counts once.
    """
    if policy is None or not policy.requires(operation):
        return
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
        try:
            approval.verify()
        except InvalidSignature:
            raise ApprovalSignatureError(index) from None
        approved.add(approval.approver)
    if len(approved) < policy.quorum:
        raise QuorumNotMetError(len(approved), policy.quorum)
