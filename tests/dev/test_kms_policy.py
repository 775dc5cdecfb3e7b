"""Key-policy evaluation: IAM's deny/allow order, principals, actions and the attestation conditions."""

from __future__ import annotations

import json

import pytest

from keyshard.dev.kms_policy import Decision, RequestContext, evaluate

ACCOUNT = "111122223333"
NODE_ROLE = f"arn:aws:iam::{ACCOUNT}:role/keyshard-node-1"
ADMIN = f"arn:aws:iam::{ACCOUNT}:role/keyshard-admin"
KEY = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
IMAGE = "ab" * 48
IMAGE_KEY = "kms:RecipientAttestation:ImageSha384"


def node_policy(*extra: dict[str, object]) -> str:
    """The shape Keyshard's Terraform writes: admin manages, node decrypts only when attested."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "KeyAdministration",
                    "Effect": "Allow",
                    "Principal": {"AWS": ADMIN},
                    "Action": ["kms:Describe*", "kms:Get*", "kms:PutKeyPolicy"],
                    "Resource": "*",
                },
                {
                    "Sid": "AttestedEnclaveOnly",
                    "Effect": "Allow",
                    "Principal": {"AWS": [NODE_ROLE]},
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                    "Resource": "*",
                    "Condition": {"StringEqualsIgnoreCase": {IMAGE_KEY: IMAGE}},
                },
                *extra,
            ],
        }
    )


def ask(policy: str, principal: str, action: str, keys: dict[str, str] | None = None) -> Decision:
    return evaluate(policy, RequestContext(principal, action, KEY, keys or {}))


def test_attested_node_may_decrypt() -> None:
    assert ask(node_policy(), NODE_ROLE, "kms:Decrypt", {IMAGE_KEY: IMAGE}) is Decision.ALLOW


def test_condition_is_case_insensitive_for_hex() -> None:
    keys = {IMAGE_KEY: IMAGE.upper()}
    assert ask(node_policy(), NODE_ROLE, "kms:GenerateDataKey", keys) is Decision.ALLOW


def test_node_without_attestation_is_denied() -> None:
    assert ask(node_policy(), NODE_ROLE, "kms:Decrypt") is Decision.IMPLICIT_DENY


def test_node_with_other_image_is_denied() -> None:
    keys = {IMAGE_KEY: "cd" * 48}
    assert ask(node_policy(), NODE_ROLE, "kms:Decrypt", keys) is Decision.IMPLICIT_DENY


def test_admin_manages_but_cannot_decrypt() -> None:
    assert ask(node_policy(), ADMIN, "kms:DescribeKey") is Decision.ALLOW
    assert ask(node_policy(), ADMIN, "kms:Decrypt", {IMAGE_KEY: IMAGE}) is Decision.IMPLICIT_DENY


def test_explicit_deny_wins_over_allow() -> None:
    deny: dict[str, object] = {
        "Effect": "Deny",
        "Principal": "*",
        "Action": "kms:*",
        "Resource": "*",
        "Condition": {"Null": {IMAGE_KEY: "true"}},
    }
    policy = node_policy(deny)
    assert ask(policy, ADMIN, "kms:DescribeKey") is Decision.EXPLICIT_DENY
    assert ask(policy, NODE_ROLE, "kms:Decrypt", {IMAGE_KEY: IMAGE}) is Decision.ALLOW


def test_account_root_principal_delegates_to_the_account() -> None:
    policy = json.dumps(
        {
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                    "Action": "kms:*",
                    "Resource": "*",
                }
            ]
        }
    )
    assert ask(policy, NODE_ROLE, "kms:Decrypt") is Decision.ALLOW
    other_account = "arn:aws:iam::999999999999:role/x"
    assert ask(policy, other_account, "kms:Decrypt") is Decision.IMPLICIT_DENY


def test_negated_operator_matches_absent_key() -> None:
    policy = json.dumps(
        {
            "Statement": [
                {
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "kms:Decrypt",
                    "Resource": "*",
                    "Condition": {"StringNotEqualsIgnoreCase": {IMAGE_KEY: IMAGE}},
                },
                {"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"},
            ]
        }
    )
    assert ask(policy, NODE_ROLE, "kms:Decrypt") is Decision.EXPLICIT_DENY
    assert ask(policy, NODE_ROLE, "kms:Decrypt", {IMAGE_KEY: IMAGE}) is Decision.ALLOW


@pytest.mark.parametrize(
    "statement",
    [
        {"Effect": "Allow", "Principal": "*", "NotAction": "kms:Sign", "Resource": "*"},
        {
            "Effect": "Allow",
            "Principal": "*",
            "Action": "kms:*",
            "Resource": "*",
            "Condition": {"ForAnyValue:StringEquals": {IMAGE_KEY: [IMAGE]}},
        },
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "kms:*"},
    ],
)
def test_unsupported_allow_never_grants(statement: dict[str, object]) -> None:
    policy = json.dumps({"Statement": [statement]})
    assert ask(policy, NODE_ROLE, "kms:Decrypt", {IMAGE_KEY: IMAGE}) is Decision.IMPLICIT_DENY


def test_unsupported_deny_is_assumed_to_apply() -> None:
    statements = [
        {"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"},
        {"Effect": "Deny", "Principal": "*", "NotAction": "kms:Sign", "Resource": "*"},
    ]
    policy = json.dumps({"Statement": statements})
    assert ask(policy, NODE_ROLE, "kms:Decrypt") is Decision.EXPLICIT_DENY


@pytest.mark.parametrize("document", ["", "not json", "[]", '{"Statement": 3}'])
def test_malformed_policy_denies(document: str) -> None:
    assert ask(document, NODE_ROLE, "kms:Decrypt") is Decision.IMPLICIT_DENY
