"""Which keys a KMS request touches, and which action each key's policy must allow.

AWS KMS authorises a request on *every* key it touches, whatever names that key: ``Decrypt``
finds its key in the ciphertext blob (``KeyId`` is optional, and when given must name that same
key); ``ReEncrypt`` needs ``kms:ReEncryptFrom`` on the blob's key and ``kms:ReEncryptTo`` on
``DestinationKeyId``; ``CreateAlias`` needs ``kms:CreateAlias`` on its target, ``UpdateAlias``
``kms:UpdateAlias`` on the alias's current key and on the new one, ``DeleteAlias`` on the key the
alias points to. Every other key-scoped operation needs ``kms:<Operation>`` on ``KeyId``.

The emulator once ran its policy check only for requests that carried a ``KeyId``: ``ReEncrypt``
names none, and one parent's credentials moved every node's data key to a key of its own. So this
module is a closed table over botocore's whole KMS model (a test keeps it so): every operation is
either account-level (no key; IAM decides in AWS, which the emulator does not model) or has a plan
here. Anything else — an unknown operation, a key that does not resolve, a ``RetireGrant`` by
grant token alone — is refused before moto sees it.

:func:`plan` is pure: keys are resolved through a :class:`KeyResolver` the server provides.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "ACCOUNT_OPERATIONS",
    "KEY_OPERATIONS",
    "KeyResolver",
    "KmsError",
    "Plan",
    "Touch",
    "is_known",
    "plan",
]

#: Operations not scoped to a key: no key policy applies (IAM decides in AWS).
ACCOUNT_OPERATIONS = frozenset(
    {
        "ConnectCustomKeyStore",
        "CreateCustomKeyStore",
        "CreateKey",
        "DeleteCustomKeyStore",
        "DescribeCustomKeyStores",
        "DisconnectCustomKeyStore",
        "GenerateRandom",
        "ListAliases",
        "ListKeys",
        "ListRetirableGrants",
        "UpdateCustomKeyStore",
    }
)
#: Operations on the one key their ``KeyId`` names: its policy must allow ``kms:<Operation>``.
KEY_OPERATIONS = frozenset(
    {
        "CancelKeyDeletion",
        "CreateGrant",
        "Decapsulate",
        "DeleteImportedKeyMaterial",
        "DeriveSharedSecret",
        "DescribeKey",
        "DisableKey",
        "DisableKeyRotation",
        "EnableKey",
        "EnableKeyRotation",
        "Encapsulate",
        "Encrypt",
        "GenerateDataKey",
        "GenerateDataKeyPair",
        "GenerateDataKeyPairWithoutPlaintext",
        "GenerateDataKeyWithoutPlaintext",
        "GenerateMac",
        "GetKeyLastUsage",
        "GetKeyPolicy",
        "GetKeyRotationStatus",
        "GetParametersForImport",
        "GetPublicKey",
        "ImportKeyMaterial",
        "ListGrants",
        "ListKeyPolicies",
        "ListKeyRotations",
        "ListResourceTags",
        "PutKeyPolicy",
        "ReplicateKey",
        "RevokeGrant",
        "RotateKeyOnDemand",
        "ScheduleKeyDeletion",
        "Sign",
        "TagResource",
        "UntagResource",
        "UpdateKeyDescription",
        "UpdatePrimaryRegion",
        "Verify",
        "VerifyMac",
    }
)
#: moto's ciphertext blob starts with the 36-character id of its key (``moto.kms.utils``); AWS's
#: blob names its key too, which is how ``Decrypt`` works without ``KeyId``.
_BLOB_KEY_ID_LENGTH = 36


class KmsError(Exception):
    """An error answered to the caller in AWS's JSON error shape."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


class KeyResolver(Protocol):
    def key_arn(self, key_id: str) -> str | None:
        """The ARN of the key ``key_id`` names (id, ARN, alias name or alias ARN), or None."""
        ...


@dataclass(frozen=True, slots=True)
class Touch:
    """One authorisation: ``action`` on ``key_arn`` must be allowed by that key's policy."""

    action: str
    key_arn: str


@dataclass(frozen=True, slots=True)
class Plan:
    """What to authorise before forwarding, and what to hold moto's answer to.

    ``rewrite`` replaces key references in the forwarded request by the ARNs just authorised, so
    an alias retargeted between the check and the call cannot change the key used. ``answers``
    names the response fields (``KeyId``, ``SourceKeyId``) that must name the authorised keys.
    """

    touches: tuple[Touch, ...] = ()
    rewrite: Mapping[str, str] = field(default_factory=dict)
    answers: Mapping[str, str] = field(default_factory=dict)


def is_known(operation: str) -> bool:
    """Whether :func:`plan` has a rule for ``operation`` (anything else is never forwarded)."""
    return operation in ACCOUNT_OPERATIONS or operation in KEY_OPERATIONS or operation in _SPECIAL


def plan(operation: str, request: Mapping[str, Any], keys: KeyResolver) -> Plan:
    """The authorisations ``operation`` needs; raise :class:`KmsError` for what cannot be planned."""
    if operation in ACCOUNT_OPERATIONS:
        return Plan()
    if operation in KEY_OPERATIONS:
        arn = _named(request, "KeyId", keys)
        return Plan((Touch(f"kms:{operation}", arn),), {"KeyId": arn}, {"KeyId": arn})
    special = _SPECIAL.get(operation)
    if special is None:
        raise KmsError("UnknownOperationException", f"unknown operation {operation!r}")
    return special(request, keys)


def _decrypt(request: Mapping[str, Any], keys: KeyResolver) -> Plan:
    source = _blob_key(request, keys)
    _same_key(request, "KeyId", source, keys)
    return Plan((Touch("kms:Decrypt", source),), {"KeyId": source}, {"KeyId": source})


def _re_encrypt(request: Mapping[str, Any], keys: KeyResolver) -> Plan:
    source = _blob_key(request, keys)
    _same_key(request, "SourceKeyId", source, keys)
    destination = _named(request, "DestinationKeyId", keys)
    return Plan(
        (Touch("kms:ReEncryptFrom", source), Touch("kms:ReEncryptTo", destination)),
        {"SourceKeyId": source, "DestinationKeyId": destination},
        {"SourceKeyId": source, "KeyId": destination},
    )


def _create_alias(request: Mapping[str, Any], keys: KeyResolver) -> Plan:
    target = _named(request, "TargetKeyId", keys)
    return Plan((Touch("kms:CreateAlias", target),), {"TargetKeyId": target})


def _update_alias(request: Mapping[str, Any], keys: KeyResolver) -> Plan:
    current = _alias_key(request, keys)
    target = _named(request, "TargetKeyId", keys)
    return Plan(
        (Touch("kms:UpdateAlias", current), Touch("kms:UpdateAlias", target)),
        {"TargetKeyId": target},
    )


def _delete_alias(request: Mapping[str, Any], keys: KeyResolver) -> Plan:
    return Plan((Touch("kms:DeleteAlias", _alias_key(request, keys)),))


def _retire_grant(request: Mapping[str, Any], keys: KeyResolver) -> Plan:
    if not isinstance(request.get("KeyId"), str):
        # A grant token alone names no key whose policy the emulator could evaluate.
        raise KmsError(
            "AccessDeniedException",
            "the emulated KMS authorises RetireGrant only with KeyId and GrantId",
        )
    arn = _named(request, "KeyId", keys)
    return Plan((Touch("kms:RetireGrant", arn),), {"KeyId": arn})


#: The rest of botocore's model, each with its own rule.
_SPECIAL: Mapping[str, Callable[[Mapping[str, Any], KeyResolver], Plan]] = {
    "CreateAlias": _create_alias,
    "Decrypt": _decrypt,
    "DeleteAlias": _delete_alias,
    "ReEncrypt": _re_encrypt,
    "RetireGrant": _retire_grant,
    "UpdateAlias": _update_alias,
}


def _named(request: Mapping[str, Any], name: str, keys: KeyResolver) -> str:
    key_id = request.get(name)
    if not isinstance(key_id, str) or not key_id:
        raise KmsError("ValidationException", f"{name} is required")
    arn = keys.key_arn(key_id)
    if arn is None:
        raise KmsError("NotFoundException", f"Key '{key_id}' does not exist")
    return arn


def _alias_key(request: Mapping[str, Any], keys: KeyResolver) -> str:
    """The key an existing alias points to (whose policy decides changes to the alias)."""
    alias = request.get("AliasName")
    if not isinstance(alias, str) or not alias.startswith("alias/"):
        raise KmsError("ValidationException", "AliasName must begin with alias/")
    return _named(request, "AliasName", keys)


def _blob_key(request: Mapping[str, Any], keys: KeyResolver) -> str:
    """The key a ciphertext blob names: the key whose policy decides Decrypt / ReEncryptFrom."""
    invalid = KmsError("InvalidCiphertextException", "the ciphertext names no key of this account")
    blob = request.get("CiphertextBlob")
    if not isinstance(blob, str):
        raise KmsError("ValidationException", "CiphertextBlob is required")
    try:
        raw = base64.b64decode(blob, validate=True)
        key_id = raw[:_BLOB_KEY_ID_LENGTH].decode("ascii")
    except (binascii.Error, ValueError):
        raise invalid from None
    arn = keys.key_arn(key_id) if len(key_id) == _BLOB_KEY_ID_LENGTH else None
    if arn is None:
        raise invalid
    return arn


def _same_key(request: Mapping[str, Any], name: str, blob_key: str, keys: KeyResolver) -> None:
    if request.get(name) is None:
        return
    if _named(request, name, keys) != blob_key:
        raise KmsError(
            "IncorrectKeyException",
            f"The {name} in the request does not identify the KMS key that encrypted the "
            "ciphertext",
        )
