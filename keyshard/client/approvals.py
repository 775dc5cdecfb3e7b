"""The approver's side of approval policies: keys, signing approvals, their JSON form.

An approver holds an Ed25519 private key (PKCS#8 PEM in a file, mode 0600; never a flag value)
and signs :func:`wire.approvals.approval_statement` for one key, operation and digest with
an expiry. The key's group public key is taken from what the nodes report, so an approval can
never be replayed to another key of the same name created later. The JSON form is what
``keyshard key approve`` writes and ``--approval FILE`` reads; it carries every field in hex so a
person can read what they approve, and the nodes check every field themselves.

Nodes refuse an approval whose expiry lies further ahead than the key's approval lifetime
(:attr:`wire.approvals.ApprovalPolicy.approval_lifetime`), and spend a decrypt approval on its
first use: :func:`approval_expiry` keeps an approver within the first rule before signing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from keyshard.client.errors import InvalidInputError
from wire.approvals import DEFAULT_APPROVAL_LIFETIME, Approval, ApprovalPolicy, Operation
from wire.errors import MalformedMessageError

__all__ = [
    "approval_expiry",
    "approval_from_json",
    "approval_to_json",
    "generate_approver_key",
    "load_approver_key",
    "public_key_bytes",
    "sign_approval",
]


def generate_approver_key(path: Path) -> bytes:
    """Write a fresh private key to ``path`` (created 0600, never overwritten); the public key."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise InvalidInputError(f"{path} exists; refusing to overwrite a key") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return public_key_bytes(key)


def load_approver_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as error:
        raise InvalidInputError(f"cannot read approver key {path}: {error.strerror}") from None
    except (ValueError, TypeError):
        raise InvalidInputError(f"{path} is not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidInputError(f"{path} is not an Ed25519 key")
    return key


def public_key_bytes(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def approval_expiry(ttl: int, policy: ApprovalPolicy | None, *, now: int) -> int:
    """``now + ttl``, if the key's nodes accept an approval that lives ``ttl`` seconds: at most
    the policy's approval lifetime; :data:`~wire.approvals.DEFAULT_APPROVAL_LIFETIME` when the
    policy is unknown (an approver with no access to the cluster) or there is none."""
    limit = DEFAULT_APPROVAL_LIFETIME if policy is None else policy.approval_lifetime
    if type(ttl) is not int or not 1 <= ttl <= limit:
        raise InvalidInputError(
            f"an approval's ttl must be 1..{limit} seconds (the key's approval lifetime)"
        )
    return now + ttl


def sign_approval(
    key: Ed25519PrivateKey,
    *,
    key_name: str,
    group_public_key: bytes,
    operation: Operation,
    digest: bytes,
    not_after: int,
) -> Approval:
    unsigned = Approval(
        key_name, group_public_key, operation, digest, not_after, public_key_bytes(key), bytes(64)
    )
    signature = key.sign(unsigned.statement())
    return Approval(
        key_name,
        group_public_key,
        operation,
        digest,
        not_after,
        unsigned.approver,
        signature,
    )


def approval_to_json(approval: Approval) -> str:
    return json.dumps(
        {
            "version": 1,
            "key": approval.key_name,
            "group_public_key": approval.group_public_key.hex(),
            "operation": approval.operation.value,
            "digest": approval.digest.hex(),
            "not_after": approval.not_after,
            "approver": approval.approver.hex(),
            "signature": approval.signature.hex(),
        },
        indent=2,
    )


def approval_from_json(text: str) -> Approval:
    try:
        value: Any = json.loads(text)
        if not isinstance(value, dict) or value.get("version") != 1:
            raise InvalidInputError("not a version-1 approval")
        return Approval(
            value["key"],
            bytes.fromhex(value["group_public_key"]),
            Operation(value["operation"]),
            bytes.fromhex(value["digest"]),
            value["not_after"],
            bytes.fromhex(value["approver"]),
            bytes.fromhex(value["signature"]),
        )
    except (ValueError, KeyError, TypeError, MalformedMessageError) as error:
        raise InvalidInputError(f"not a valid approval: {error}") from None
