"""Approval policies as people write them (JSON files), and a key's policy history.

A policy file says who approves what, in groups if the organisation has them::

    {
      "groups": {
        "treasury":   {"approvers": ["<hex>", "<hex>", "<hex>"], "quorum": 2},
        "compliance": {"approvers": ["<hex>"], "quorum": 1}
      },
      "require": ["sign", "decrypt"],
      "mandatory_nodes": ["node-3"],
      "approval_lifetime": 86400
    }

``approvers`` (optional) lists approvers, in groups or not; the policy's approvers are those
plus every group's. ``quorum`` (optional) is the overall count of distinct approvers; by default the
sum of the groups' quorums (every approver, without groups). Every group must reach its own
quorum as well: the example needs 2 of treasury AND 1 of compliance. ``mandatory_nodes`` must
take part in every signing and decryption. Approver keys are the 32-byte Ed25519 public keys ``keyshard
approver keygen`` prints, in hex. Unknown fields are refused (a typo must not weaken a policy).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from keyshard.client.errors import InvalidInputError
from wire.approvals import ApprovalPolicy, ApproverGroup, Operation
from wire.errors import MalformedMessageError
from wire.messages import PolicyHistory

__all__ = ["PolicyRecord", "policy_from_json", "policy_to_json", "read_history"]

_FIELDS = {"approvers", "quorum", "groups", "require", "mandatory_nodes", "approval_lifetime"}


def _keys(where: str, value: object) -> tuple[bytes, ...]:
    if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
        raise InvalidInputError(f"{where} must be a list of hex public keys")
    try:
        return tuple(bytes.fromhex(k) for k in value)
    except ValueError:
        raise InvalidInputError(f"{where} must be a list of hex public keys") from None


def policy_from_json(text: str) -> ApprovalPolicy:
    """The policy a JSON policy file describes (see the module docstring); refused with
    :class:`InvalidInputError` saying what is wrong."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidInputError(f"the policy file is not JSON: {error}") from None
    if not isinstance(value, dict) or not set(value) <= _FIELDS:
        unknown = sorted(set(value) - _FIELDS) if isinstance(value, dict) else []
        raise InvalidInputError(
            f"a policy is a JSON object of {sorted(_FIELDS)}; unknown {unknown}"
        )
    groups_value = value.get("groups", {})
    if not isinstance(groups_value, dict):
        raise InvalidInputError("groups must map group names to {approvers, quorum}")
    groups = []
    approvers = set(_keys("approvers", value.get("approvers", [])))
    try:
        for name, group in sorted(groups_value.items()):
            if not isinstance(group, dict) or set(group) != {"approvers", "quorum"}:
                raise InvalidInputError(f"group {name!r} must be {{approvers, quorum}}")
            members = _keys(f"groups.{name}.approvers", group["approvers"])
            groups.append(ApproverGroup(name, members, group["quorum"]))
            approvers |= set(members)
        default_quorum = sum(g.quorum for g in groups) if groups else len(approvers)
        quorum = value.get("quorum", min(default_quorum, len(approvers)))
        require = value.get("require", ["sign", "decrypt"])
        if not isinstance(require, list):
            raise InvalidInputError("require must be a list of operations")
        try:
            operations = frozenset(Operation(op) for op in require)
        except ValueError:
            known = ", ".join(op.value for op in Operation)
            raise InvalidInputError(f"require takes operations of: {known}") from None
        mandatory = value.get("mandatory_nodes", [])
        if not isinstance(mandatory, list):
            raise InvalidInputError("mandatory_nodes must be a list of node ids")
        return ApprovalPolicy(
            tuple(approvers),
            quorum,
            operations,
            value.get("approval_lifetime"),
            tuple(groups),
            tuple(sorted(mandatory)),
        )
    except MalformedMessageError as error:
        raise InvalidInputError(f"invalid policy: {error}") from None


def policy_to_json(policy: ApprovalPolicy | None) -> dict[str, Any] | None:
    """A policy as a JSON-able record (what ``key info`` and ``key policy show`` print); the
    same shape :func:`policy_from_json` reads."""
    if policy is None:
        return None
    record: dict[str, Any] = {
        "approvers": [a.hex() for a in policy.approvers],
        "quorum": policy.quorum,
        "require": sorted(op.value for op in policy.operations),
    }
    if policy.max_approval_lifetime is not None:
        record["approval_lifetime"] = policy.max_approval_lifetime
    if policy.groups:
        record["groups"] = {
            g.name: {"approvers": [a.hex() for a in g.approvers], "quorum": g.quorum}
            for g in policy.groups
        }
    if policy.mandatory_nodes:
        record["mandatory_nodes"] = list(policy.mandatory_nodes)
    record["summary"] = str(policy)
    return record


@dataclass(frozen=True, slots=True)
class PolicyRecord:
    """One policy in a key's history: the policy (None: none) and when it was replaced (None:
    the current one)."""

    policy: ApprovalPolicy | None
    replaced_at: int | None


def read_history(reply: PolicyHistory) -> list[PolicyRecord]:
    """A node's :class:`PolicyHistory` reply as records, oldest first, the current one last."""

    def decode(encoded: bytes) -> ApprovalPolicy | None:
        return ApprovalPolicy.decode(encoded) if encoded else None

    records = [
        PolicyRecord(decode(p), t) for p, t in zip(reply.previous, reply.replaced_at, strict=True)
    ]
    records.append(PolicyRecord(decode(reply.current), None))
    return records
