"""Value checks shared by every wire type: names, node ids, byte strings. Each raises
:class:`~wire.errors.MalformedMessageError` naming the field, and returns the value it checked."""

from __future__ import annotations

import re

from wire.errors import MalformedMessageError

__all__ = ["MAX_BLOB", "check_bytes", "check_key_name", "check_node_id", "check_suite_name"]

#: The largest single byte-string field of a message (MPC payloads, envelopes, documents).
MAX_BLOB = 256 * 1024
_KEY_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
_NODE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_SUITE = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")


def check_key_name(name: object, field: str = "key_name") -> str:
    if type(name) is not str or not _KEY_NAME.fullmatch(name):
        raise MalformedMessageError(field, "must be 1-63 of [a-z0-9._-], starting alphanumeric")
    return name


def check_node_id(node_id: object, field: str = "node_id") -> str:
    if type(node_id) is not str or not _NODE_ID.fullmatch(node_id):
        raise MalformedMessageError(field, "must be 1-64 of [A-Za-z0-9._-]")
    return node_id


def check_suite_name(name: object, field: str = "suite") -> str:
    """The shape of a suite name; which suites exist is the MPC core's registry's business."""
    if type(name) is not str or not _SUITE.fullmatch(name):
        raise MalformedMessageError(field, "must be a suite name")
    return name


def check_bytes(field: str, value: object, low: int = 0, high: int = MAX_BLOB) -> bytes:
    if type(value) is not bytes or not low <= len(value) <= high:
        raise MalformedMessageError(field, f"must be {low}..{high} bytes")
    return value
