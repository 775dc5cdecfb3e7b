"""Key-policy evaluation for the emulated KMS: the subset of IAM semantics Keyshard's policies use.

Real KMS decides every request on a key from the key policy (plus IAM policies when the policy delegates
to the account). Keyshard's security rests on one such decision: ``kms:Decrypt`` and
``kms:GenerateDataKey`` are allowed to the node role *only* when the request carries an attestation
document whose measurements match (``kms:RecipientAttestation:ImageSha384`` / ``PCRn``). moto keeps keys
and policies but does not evaluate conditions, so the emulated KMS evaluates them here.

The evaluation follows IAM's order: an explicit ``Deny`` wins, then any ``Allow``, otherwise the
request is implicitly denied. It fails closed: a policy element or condition operator outside the
supported subset makes the statement unusable for an ``Allow`` and, for a ``Deny``, makes it apply —
an emulator that is more permissive than AWS would let tests pass that production would fail.

Supported: ``Effect``, ``Principal`` (``"*"``, ``{"AWS": arn | [arns]}``; an account-root ARN
``arn:aws:iam::<acct>:root`` matches every principal of that account, as key-policy delegation to IAM
does when the caller's IAM policies allow), ``Action`` (string or list, ``*`` wildcards,
case-insensitive), ``Resource`` (``"*"`` or the key's ARN), and ``Condition`` with the operators
``StringEquals``, ``StringEqualsIgnoreCase``, ``StringNotEquals``, ``StringNotEqualsIgnoreCase``,
``StringLike``, ``Bool`` and ``Null``. As in IAM, a positive operator is false when the request lacks the
key, a negated one is true, and a list of values matches when any value matches.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

ATTESTATION_KEY_PREFIX = "kms:RecipientAttestation:"


class Decision(Enum):
    ALLOW = "allow"
    IMPLICIT_DENY = "implicit-deny"
    EXPLICIT_DENY = "explicit-deny"


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What a policy is evaluated against: who asks, for what, on which key, with which condition keys."""

    principal_arn: str
    action: str
    resource_arn: str
    condition_keys: Mapping[str, str]


class UnsupportedPolicyError(Exception):
    """The statement uses IAM features this evaluator does not implement (treated fail-closed)."""


def evaluate(policy_document: str, request: RequestContext) -> Decision:
    """Decide ``request`` under ``policy_document`` (a JSON key policy).

    A policy that is not valid JSON or has no statements denies everything.
    """
    try:
        policy = json.loads(policy_document)
    except ValueError:
        return Decision.IMPLICIT_DENY
    statements = policy.get("Statement") if isinstance(policy, dict) else None
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list):
        return Decision.IMPLICIT_DENY

    allowed = False
    for statement in statements:
        effect = statement.get("Effect") if isinstance(statement, dict) else None
        try:
            applies = _statement_applies(statement, request)
        except UnsupportedPolicyError:
            # Fail closed: an unknown Deny is assumed to apply, an unknown Allow never grants.
            applies = effect == "Deny"
        if not applies:
            continue
        if effect == "Deny":
            return Decision.EXPLICIT_DENY
        if effect == "Allow":
            allowed = True
    return Decision.ALLOW if allowed else Decision.IMPLICIT_DENY


def _statement_applies(statement: Any, request: RequestContext) -> bool:
    if not isinstance(statement, dict):
        raise UnsupportedPolicyError("statement is not an object")
    unsupported = set(statement) - {"Sid", "Effect", "Principal", "Action", "Resource", "Condition"}
    if unsupported:
        raise UnsupportedPolicyError(f"unsupported elements {sorted(unsupported)}")
    return (
        _principal_matches(statement.get("Principal"), request.principal_arn)
        and _action_matches(statement.get("Action"), request.action)
        and _resource_matches(statement.get("Resource", "*"), request.resource_arn)
        and _conditions_hold(statement.get("Condition", {}), request.condition_keys)
    )


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _principal_matches(principal: Any, caller_arn: str) -> bool:
    if principal == "*":
        return True
    if not isinstance(principal, dict) or set(principal) - {"AWS"}:
        raise UnsupportedPolicyError("only '*' and {'AWS': ...} principals are supported")
    return any(_one_principal_matches(p, caller_arn) for p in _as_list(principal["AWS"]))


def _one_principal_matches(pattern: Any, caller_arn: str) -> bool:
    if not isinstance(pattern, str):
        raise UnsupportedPolicyError("principal must be a string")
    if pattern in ("*", caller_arn):
        return True
    account = _account_of(pattern)
    return pattern.endswith(":root") and account is not None and account == _account_of(caller_arn)


def _account_of(arn: str) -> str | None:
    parts = arn.split(":")
    return parts[4] if len(parts) >= 6 and parts[0] == "arn" else None


def _action_matches(actions: Any, action: str) -> bool:
    if actions is None:
        raise UnsupportedPolicyError("statement without Action")
    return any(
        isinstance(pattern, str) and fnmatch.fnmatchcase(action.lower(), pattern.lower())
        for pattern in _as_list(actions)
    )


def _resource_matches(resources: Any, resource_arn: str) -> bool:
    return any(r in ("*", resource_arn) for r in _as_list(resources))


def _conditions_hold(conditions: Any, keys: Mapping[str, str]) -> bool:
    if not isinstance(conditions, dict):
        raise UnsupportedPolicyError("Condition must be an object")
    for operator, clauses in conditions.items():
        if not isinstance(clauses, dict):
            raise UnsupportedPolicyError(f"{operator} must map keys to values")
        for key, expected in clauses.items():
            if not _condition_holds(operator, keys.get(key), [str(v) for v in _as_list(expected)]):
                return False
    return True


def _condition_holds(operator: str, actual: str | None, expected: Sequence[str]) -> bool:
    if operator == "Null":
        is_null = actual is None
        return any((value.lower() == "true") == is_null for value in expected)
    negated = operator in ("StringNotEquals", "StringNotEqualsIgnoreCase")
    if actual is None:
        return negated
    match operator:
        case "StringEquals" | "StringNotEquals":
            hit = actual in expected
        case "StringEqualsIgnoreCase" | "StringNotEqualsIgnoreCase":
            hit = actual.lower() in (value.lower() for value in expected)
        case "StringLike":
            hit = any(fnmatch.fnmatchcase(actual, value) for value in expected)
        case "Bool":
            hit = actual.lower() in (value.lower() for value in expected)
        case _:
            raise UnsupportedPolicyError(f"condition operator {operator} is not supported")
    return hit != negated
