"""Helpers shared by the CKV_KS checks: read checkov's parsed HCL (values wrapped in lists)."""

from __future__ import annotations

import fnmatch
from typing import Any

# Actions that use or delegate a KMS key: granting any of them without a condition is a leak.
KEY_USE_ACTIONS = (
    "kms:decrypt",
    "kms:encrypt",
    "kms:generatedatakey",
    "kms:generatedatakeywithoutplaintext",
    "kms:generatedatakeypair",
    "kms:generatedatakeypairwithoutplaintext",
    "kms:reencryptfrom",
    "kms:reencryptto",
    "kms:creategrant",
)
ATTESTATION_VARIABLE = "kms:recipientattestation:imagesha384"


def flatten(value: Any) -> list[Any]:
    """All scalars inside arbitrarily nested lists."""
    if isinstance(value, list):
        out: list[Any] = []
        for item in value:
            out.extend(flatten(item))
        return out
    return [value]


def first(value: Any, default: Any = None) -> Any:
    items = flatten(value)
    return items[0] if items else default


def statements(conf: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in flatten(conf.get("statement", [])) if isinstance(s, dict)]


def effect(statement: dict[str, Any]) -> str:
    return str(first(statement.get("effect"), "Allow") or "Allow")


def actions(statement: dict[str, Any]) -> list[str]:
    return [str(a).lower() for a in flatten(statement.get("actions", []))]


def uses_key(statement: dict[str, Any]) -> bool:
    """Whether any action of the statement (an IAM pattern such as "kms:*") covers a key use."""
    return any(fnmatch.fnmatchcase(use, a) for a in actions(statement) for use in KEY_USE_ACTIONS)


def conditions(statement: dict[str, Any]) -> list[dict[str, Any]]:
    """Static condition blocks and the content of dynamic "condition" blocks."""
    found = [c for c in flatten(statement.get("condition", [])) if isinstance(c, dict)]
    for dyn in flatten(statement.get("dynamic", [])):
        if isinstance(dyn, dict) and isinstance(dyn.get("condition"), dict):
            found.extend(c for c in flatten(dyn["condition"].get("content", [])) if isinstance(c, dict))
    return found


def condition_variables(statement: dict[str, Any]) -> set[str]:
    return {str(first(c.get("variable"), "")).lower() for c in conditions(statement)}


def principal_identifiers(statement: dict[str, Any]) -> list[str]:
    ids: list[str] = []
    for principal in flatten(statement.get("principals", [])):
        if isinstance(principal, dict):
            ids.extend(str(i) for i in flatten(principal.get("identifiers", [])))
            ids.extend(str(t) for t in flatten(principal.get("type", [])) if str(t) == "*")
    return ids
