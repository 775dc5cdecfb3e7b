"""The key policy that lets only the measured enclave image obtain a node's data key.

One KMS key per node. The administrator may manage the key but never use it; the node's role may
call ``Decrypt`` and ``GenerateDataKey`` only with a ``Recipient`` attestation document whose
measurements equal the released image's (``kms:RecipientAttestation:ImageSha384`` = PCR0, plus
PCR1 and PCR2). The condition keys exist only when KMS verified a document, so a call without
``Recipient`` — for instance by the parent, which holds the same role credentials — is refused. This
is the policy shape AWS documents for Nitro Enclaves; the emulated KMS evaluates it the same way.

Both policies also carry the Terraform policy's explicit ``Deny`` (``infra/terraform/modules/
node-aws-nitro/kms.tf``, ``key_use_actions``): every cryptographic use and ``CreateGrant``, for every
principal, unless the request's document measures the released image — so no other statement, grant
or later policy edit can open a use without attestation (``ReEncryptFrom`` included).
"""

from __future__ import annotations

import json
from typing import Any

from attestation.measure import Measurements

__all__ = [
    "KEY_USE_ACTIONS",
    "admin_only_policy",
    "create_node_key",
    "enclave_key_policy",
    "pin_node_key",
]

_ADMIN_ACTIONS = [
    "kms:Describe*",
    "kms:Get*",
    "kms:List*",
    "kms:PutKeyPolicy",
    "kms:TagResource",
    "kms:ScheduleKeyDeletion",
]
#: Every use of the key's material, and the grant that would delegate it (Terraform's list).
KEY_USE_ACTIONS = (
    "kms:Decrypt",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyPair",
    "kms:GenerateDataKeyPairWithoutPlaintext",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:CreateGrant",
)


def admin_only_policy(admin_arn: str) -> str:
    """A key nobody may use yet: it exists so its ARN can go into the image's cluster table, and
    gets its enclave statement (:func:`pin_node_key`) once that image is built and measured."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "KeyAdministration",
                    "Effect": "Allow",
                    "Principal": {"AWS": admin_arn},
                    "Action": _ADMIN_ACTIONS,
                    "Resource": "*",
                },
                {
                    "Sid": "DenyAllUseUntilPinned",
                    "Effect": "Deny",
                    "Principal": {"AWS": "*"},
                    "Action": list(KEY_USE_ACTIONS),
                    "Resource": "*",
                },
            ],
        },
        indent=2,
    )


def enclave_key_policy(admin_arn: str, node_arn: str, measurements: Measurements) -> str:
    condition = {
        "StringEqualsIgnoreCase": {
            "kms:RecipientAttestation:ImageSha384": measurements.image_sha384.hex(),
            "kms:RecipientAttestation:PCR1": measurements.pcr1.hex(),
            "kms:RecipientAttestation:PCR2": measurements.pcr2.hex(),
        }
    }
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "KeyAdministration",
                    "Effect": "Allow",
                    "Principal": {"AWS": admin_arn},
                    "Action": _ADMIN_ACTIONS,
                    "Resource": "*",
                },
                {
                    "Sid": "OnlyTheMeasuredEnclave",
                    "Effect": "Allow",
                    "Principal": {"AWS": node_arn},
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                    "Resource": "*",
                    "Condition": condition,
                },
                {
                    # StringNotEqualsIgnoreCase also holds when the request has no document.
                    "Sid": "DenyUseWithoutReleasedMeasurement",
                    "Effect": "Deny",
                    "Principal": {"AWS": "*"},
                    "Action": list(KEY_USE_ACTIONS),
                    "Resource": "*",
                    "Condition": {
                        "StringNotEqualsIgnoreCase": {
                            "kms:RecipientAttestation:ImageSha384": measurements.image_sha384.hex()
                        }
                    },
                },
            ],
        },
        indent=2,
    )


def create_node_key(
    kms: Any, admin_arn: str, node_arn: str, measurements: Measurements | None, node_id: str
) -> str:
    """Create the node's key (``kms`` is a boto3 KMS client); its ARN.

    With ``measurements`` the key is pinned at once; without, only the administrator may touch it
    until :func:`pin_node_key` — the order a cluster needs, since the image lists every key's ARN
    and the key policies pin that image's measurements."""
    policy = (
        admin_only_policy(admin_arn)
        if measurements is None
        else enclave_key_policy(admin_arn, node_arn, measurements)
    )
    response = kms.create_key(
        Policy=policy,
        Description=f"Keyshard node {node_id} sealing key (enclave-only)",
        KeyUsage="ENCRYPT_DECRYPT",
        KeySpec="SYMMETRIC_DEFAULT",
        Tags=[{"TagKey": "keyshard:node", "TagValue": node_id}],
    )
    return str(response["KeyMetadata"]["Arn"])


def pin_node_key(
    kms: Any, key_arn: str, admin_arn: str, node_arn: str, measurements: Measurements
) -> None:
    """Replace the key's policy with the one admitting ``node_arn``'s enclave of ``measurements``."""
    kms.put_key_policy(
        KeyId=key_arn,
        PolicyName="default",
        Policy=enclave_key_policy(admin_arn, node_arn, measurements),
    )
