"""Issue 9 item 2: the emulated KMS authorises every action on every key a request touches.

The review's attack: with one parent's own role credentials, ``ReEncrypt`` (which names no
``KeyId``) moved every node's stored data-key blob to a key the attacker had just created, and
``Decrypt`` under that key opened it — every share, no attestation document involved. Here a
cluster's worth of node keys (the dev key policies of :mod:`keyshard.dev.kms_keys`, pinned to one
image) is attacked through boto3 against the real emulated KMS server: every KMS action a node role
can call, with and without ``Recipient``, against every node's key. Only a node's own attested
``Decrypt`` / ``GenerateDataKey`` succeeds, and it never returns a plaintext.
"""

from __future__ import annotations

import base64
import json
import os
import re
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from botocore import xform_name
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from attestation.emulated_ca import EmulatedCa
from attestation.measure import Measurements, pcr_map
from attestation.nsm import EmulatedNsm, NsmClient
from attestation.recipient import decrypt_for_recipient
from attestation.roots import TrustedRoots
from attestation.verifier import AttestationVerifier
from enclave.kms import encryption_context
from keyshard.dev.kms_keys import KEY_USE_ACTIONS, create_node_key, pin_node_key
from keyshard.dev.kms_server import ACCOUNT_OPERATIONS, KmsServer, start_kms_server

ACCOUNT = "123456789012"  # moto's account
ADMIN = f"arn:aws:iam::{ACCOUNT}:role/keyshard-admin"
ADMIN_KEY = "AKIAADMIN"
NODES = (1, 2, 3)
MEASURED = Measurements(bytes(range(48)), b"\x01" * 48, b"\x02" * 48)
OTHER_IMAGE = Measurements(bytes(range(1, 49)), b"\x01" * 48, b"\x02" * 48)
TERRAFORM_KMS = Path(__file__).parents[2] / "infra/terraform/modules/node-aws-nitro/kms.tf"


def role(index: int) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/keyshard-node-{index}"


def access_key(index: int) -> str:
    return f"AKIANODE{index}"


def node_id(index: int) -> str:
    return f"node-{index}"


def everything_for(principal: str) -> str:
    """The policy an attacker gives a key of its own: it may do anything with it."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": principal},
                    "Action": "kms:*",
                    "Resource": "*",
                }
            ],
        }
    )


@dataclass(frozen=True)
class Attested:
    private_key: rsa.RSAPrivateKey
    document: bytes

    @property
    def recipient(self) -> dict[str, Any]:
        return {
            "AttestationDocument": self.document,
            "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256",
        }


def attested(ca: EmulatedCa, measurements: Measurements = MEASURED) -> Attested:
    """A genuine enclave of the measured image (in emulation a test can play one)."""
    private_key = rsa.generate_private_key(65537, 2048)
    spki = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    nsm = NsmClient(EmulatedNsm(ca, pcr_map(measurements)))
    return Attested(
        private_key, nsm.get_attestation_document(public_key=spki, nonce=os.urandom(16))
    )


@dataclass(frozen=True)
class Node:
    index: int
    key_arn: str
    #: The node's stored ``kms-data-key`` blob, as its genuine enclave left it at the parent.
    blob: bytes
    data_key: bytes
    #: A key the node's own role created with a policy granting itself everything.
    attacker_key: str
    attacker_blob: bytes
    #: An alias the role created on its attacker key (UpdateAlias retargets it).
    attacker_alias: str
    #: An alias an administrator created on the node's key (DeleteAlias tries to remove it).
    node_alias: str

    @property
    def context(self) -> dict[str, str]:
        return encryption_context(node_id(self.index))


@dataclass(frozen=True)
class World:
    kms: KmsServer
    ca: EmulatedCa
    nodes: dict[int, Node]
    enclave: Attested
    clients: dict[str, Any] = field(default_factory=dict)

    def client(self, key: str) -> Any:
        if key not in self.clients:
            self.clients[key] = boto3.session.Session().client(
                "kms",
                endpoint_url=self.kms.endpoint_url,
                region_name="us-east-1",
                aws_access_key_id=key,
                aws_secret_access_key="emulated",
            )
        return self.clients[key]


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    ca = EmulatedCa.ephemeral()
    principals = {ADMIN_KEY: ADMIN} | {access_key(i): role(i) for i in NODES}
    verifier = AttestationVerifier(TrustedRoots.of([ca.root_certificate]))
    with start_kms_server(verifier, principals) as kms:
        probe = World(kms, ca, {}, attested(ca))
        admin = probe.client(ADMIN_KEY)
        nodes = {}
        for i in NODES:
            key_arn = create_node_key(admin, ADMIN, role(i), MEASURED, node_id(i))
            # An administrator names the key (a policy change it may make, then pins it back).
            widened = json.loads(
                admin.get_key_policy(KeyId=key_arn, PolicyName="default")["Policy"]
            )
            widened["Statement"].append(
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": ADMIN},
                    "Action": "kms:CreateAlias",
                    "Resource": "*",
                }
            )
            admin.put_key_policy(KeyId=key_arn, PolicyName="default", Policy=json.dumps(widened))
            node_alias = f"alias/keyshard/{node_id(i)}"
            admin.create_alias(AliasName=node_alias, TargetKeyId=key_arn)
            pin_node_key(admin, key_arn, ADMIN, role(i), MEASURED)

            enclave = attested(ca)
            node = probe.client(access_key(i))
            generated = node.generate_data_key(
                KeyId=key_arn,
                KeySpec="AES_256",
                EncryptionContext=encryption_context(node_id(i)),
                Recipient=enclave.recipient,
            )
            data_key = decrypt_for_recipient(
                generated["CiphertextForRecipient"], enclave.private_key
            )
            own = node.create_key(Policy=everything_for(role(i)))["KeyMetadata"]["Arn"]
            attacker_blob = node.encrypt(KeyId=own, Plaintext=b"attacker-chosen-data-key-32bytes")[
                "CiphertextBlob"
            ]
            attacker_alias = f"alias/attacker-{i}"
            node.create_alias(AliasName=attacker_alias, TargetKeyId=own)
            nodes[i] = Node(
                i,
                key_arn,
                generated["CiphertextBlob"],
                data_key,
                own,
                attacker_blob,
                attacker_alias,
                node_alias,
            )
        yield World(kms, ca, nodes, probe.enclave, probe.clients)


def error_code(error: ClientError) -> str:
    return str(error.response["Error"]["Code"])


# -- the attack the review found ---------------------------------------------------------------


def move_and_open(attacker: Any, node: Node, destination: str) -> bytes:
    """The attack: re-encrypt a node's stored blob to the attacker's key, then decrypt it."""
    moved = attacker.re_encrypt(
        CiphertextBlob=node.blob,
        SourceEncryptionContext=node.context,
        DestinationKeyId=destination,
    )
    return bytes(attacker.decrypt(CiphertextBlob=moved["CiphertextBlob"])["Plaintext"])


def test_reencrypt_to_an_attackers_key_opens_no_nodes_data_key(world: World) -> None:
    """Issue 9 item 2: ReEncrypt names no KeyId, so the policy check never ran for it."""
    attacker = world.client(access_key(1))
    for node in world.nodes.values():
        with pytest.raises(ClientError) as info:
            move_and_open(attacker, node, world.nodes[1].attacker_key)
        assert error_code(info.value) == "AccessDeniedException"
        assert "kms:ReEncryptFrom" in str(info.value)
        assert node.key_arn in str(info.value)


def test_reencrypt_needs_reencrypt_to_on_the_destination(world: World) -> None:
    """Issue 9 item 2: ReEncrypt's destination key policy is evaluated too (kms:ReEncryptTo)."""
    attacker = world.client(access_key(1))
    with pytest.raises(ClientError) as info:
        attacker.re_encrypt(
            CiphertextBlob=world.nodes[1].attacker_blob,
            DestinationKeyId=world.nodes[1].key_arn,
            DestinationEncryptionContext=world.nodes[1].context,
        )
    assert error_code(info.value) == "AccessDeniedException"
    assert "kms:ReEncryptTo" in str(info.value)


def test_decrypt_names_its_key_by_the_blob_not_by_the_request(world: World) -> None:
    """Issue 9 item 2: a KeyId the caller may use does not open a blob of another key."""
    attacker = world.client(access_key(1))
    for node in world.nodes.values():
        with pytest.raises(ClientError) as info:
            attacker.decrypt(
                KeyId=world.nodes[1].attacker_key,
                CiphertextBlob=node.blob,
                EncryptionContext=node.context,
            )
        assert error_code(info.value) == "IncorrectKeyException"


def test_a_ciphertext_naming_no_known_key_is_refused_before_moto_sees_it(world: World) -> None:
    node = world.client(access_key(1))
    with pytest.raises(ClientError) as info:
        node.decrypt(CiphertextBlob=b"\x00" * 80, Recipient=world.enclave.recipient)
    assert error_code(info.value) == "InvalidCiphertextException"


# -- every action, every node's key, with and without Recipient ------------------------------

Request = Callable[[Node], dict[str, Any]]

#: Every KMS operation that touches a key, with a request a node role could send against
#: ``node``'s key (each variant is a separate call). The coverage test below keeps this list equal
#: to botocore's model minus the account-level operations.
KEY_REQUESTS: dict[str, tuple[Request, ...]] = {
    "CancelKeyDeletion": (lambda n: {"KeyId": n.key_arn},),
    "CreateAlias": (
        lambda n: {"AliasName": f"alias/stolen-{uuid.uuid4()}", "TargetKeyId": n.key_arn},
    ),
    "CreateGrant": (
        lambda n: {
            "KeyId": n.key_arn,
            "GranteePrincipal": role(1),
            "Operations": ["Decrypt", "GenerateDataKey", "ReEncryptFrom"],
        },
    ),
    "Decapsulate": (
        lambda n: {
            "KeyId": n.key_arn,
            "SharedSecretCiphertextBlob": b"x" * 32,
            "EncapsulationAlgorithm": "ML_KEM",
        },
    ),
    "Decrypt": (
        lambda n: {"KeyId": n.key_arn, "CiphertextBlob": n.blob, "EncryptionContext": n.context},
        lambda n: {"CiphertextBlob": n.blob, "EncryptionContext": n.context},
    ),
    "DeleteAlias": (lambda n: {"AliasName": n.node_alias},),
    "DeleteImportedKeyMaterial": (lambda n: {"KeyId": n.key_arn},),
    "DeriveSharedSecret": (
        lambda n: {"KeyId": n.key_arn, "KeyAgreementAlgorithm": "ECDH", "PublicKey": b"x" * 32},
    ),
    "DescribeKey": (lambda n: {"KeyId": n.key_arn},),
    "DisableKey": (lambda n: {"KeyId": n.key_arn},),
    "DisableKeyRotation": (lambda n: {"KeyId": n.key_arn},),
    "EnableKey": (lambda n: {"KeyId": n.key_arn},),
    "EnableKeyRotation": (lambda n: {"KeyId": n.key_arn},),
    "Encapsulate": (lambda n: {"KeyId": n.key_arn, "EncapsulationAlgorithm": "ML_KEM"},),
    "Encrypt": (lambda n: {"KeyId": n.key_arn, "Plaintext": b"x", "EncryptionContext": n.context},),
    "GenerateDataKey": (
        lambda n: {"KeyId": n.key_arn, "KeySpec": "AES_256", "EncryptionContext": n.context},
    ),
    "GenerateDataKeyPair": (lambda n: {"KeyId": n.key_arn, "KeyPairSpec": "RSA_2048"},),
    "GenerateDataKeyPairWithoutPlaintext": (
        lambda n: {"KeyId": n.key_arn, "KeyPairSpec": "RSA_2048"},
    ),
    "GenerateDataKeyWithoutPlaintext": (
        lambda n: {"KeyId": n.key_arn, "KeySpec": "AES_256", "EncryptionContext": n.context},
    ),
    "GenerateMac": (
        lambda n: {"KeyId": n.key_arn, "Message": b"m", "MacAlgorithm": "HMAC_SHA_256"},
    ),
    "GetKeyLastUsage": (lambda n: {"KeyId": n.key_arn},),
    "GetKeyPolicy": (lambda n: {"KeyId": n.key_arn},),
    "GetKeyRotationStatus": (lambda n: {"KeyId": n.key_arn},),
    "GetParametersForImport": (
        lambda n: {
            "KeyId": n.key_arn,
            "WrappingAlgorithm": "RSAES_OAEP_SHA_256",
            "WrappingKeySpec": "RSA_2048",
        },
    ),
    "GetPublicKey": (lambda n: {"KeyId": n.key_arn},),
    "ImportKeyMaterial": (
        lambda n: {"KeyId": n.key_arn, "ImportToken": b"t", "EncryptedKeyMaterial": b"k"},
    ),
    "ListGrants": (lambda n: {"KeyId": n.key_arn},),
    "ListKeyPolicies": (lambda n: {"KeyId": n.key_arn},),
    "ListKeyRotations": (lambda n: {"KeyId": n.key_arn},),
    "ListResourceTags": (lambda n: {"KeyId": n.key_arn},),
    "PutKeyPolicy": (lambda n: {"KeyId": n.key_arn, "Policy": everything_for(role(1))},),
    "ReEncrypt": (
        # From the node's key to the attacker's own (kms:ReEncryptFrom on the node's key)...
        lambda n: {
            "CiphertextBlob": n.blob,
            "SourceEncryptionContext": n.context,
            "DestinationKeyId": n.attacker_key,
        },
        # ...naming the source key explicitly...
        lambda n: {
            "CiphertextBlob": n.blob,
            "SourceKeyId": n.key_arn,
            "SourceEncryptionContext": n.context,
            "DestinationKeyId": n.attacker_key,
        },
        # ...into the node's key (kms:ReEncryptTo), and within it.
        lambda n: {"CiphertextBlob": n.attacker_blob, "DestinationKeyId": n.key_arn},
        lambda n: {
            "CiphertextBlob": n.blob,
            "SourceEncryptionContext": n.context,
            "DestinationKeyId": n.key_arn,
        },
    ),
    "ReplicateKey": (lambda n: {"KeyId": n.key_arn, "ReplicaRegion": "eu-west-1"},),
    "RetireGrant": (lambda n: {"KeyId": n.key_arn, "GrantId": "0" * 64},),
    "RevokeGrant": (lambda n: {"KeyId": n.key_arn, "GrantId": "0" * 64},),
    "RotateKeyOnDemand": (lambda n: {"KeyId": n.key_arn},),
    "ScheduleKeyDeletion": (lambda n: {"KeyId": n.key_arn, "PendingWindowInDays": 7},),
    "Sign": (
        lambda n: {"KeyId": n.key_arn, "Message": b"m", "SigningAlgorithm": "RSASSA_PSS_SHA_256"},
    ),
    "TagResource": (lambda n: {"KeyId": n.key_arn, "Tags": [{"TagKey": "a", "TagValue": "b"}]},),
    "UntagResource": (lambda n: {"KeyId": n.key_arn, "TagKeys": ["keyshard:node"]},),
    "UpdateAlias": (lambda n: {"AliasName": n.attacker_alias, "TargetKeyId": n.key_arn},),
    "UpdateKeyDescription": (lambda n: {"KeyId": n.key_arn, "Description": "mine now"},),
    "UpdatePrimaryRegion": (lambda n: {"KeyId": n.key_arn, "PrimaryRegion": "eu-west-1"},),
    "Verify": (
        lambda n: {
            "KeyId": n.key_arn,
            "Message": b"m",
            "Signature": b"s",
            "SigningAlgorithm": "RSASSA_PSS_SHA_256",
        },
    ),
    "VerifyMac": (
        lambda n: {
            "KeyId": n.key_arn,
            "Message": b"m",
            "Mac": b"m" * 32,
            "MacAlgorithm": "HMAC_SHA_256",
        },
    ),
}

#: The one thing a node role may do with a key: its own, from its attested enclave.
ATTESTED_USE = frozenset({"Decrypt", "GenerateDataKey"})


def _model() -> Any:
    return botocore.session.get_session().get_service_model("kms")


def _accepts_recipient(operation: str) -> bool:
    shape = _model().operation_model(operation).input_shape
    return shape is not None and "Recipient" in shape.members


def test_every_kms_operation_is_covered() -> None:
    """Every operation botocore knows is either account-level or attacked below (issue 9 item 2)."""
    operations = set(_model().operation_names)
    assert set(KEY_REQUESTS) | ACCOUNT_OPERATIONS == operations
    assert not set(KEY_REQUESTS) & ACCOUNT_OPERATIONS


@pytest.mark.parametrize("operation", sorted(KEY_REQUESTS))
def test_node_roles_may_use_only_their_own_key_and_only_attested(
    world: World, operation: str
) -> None:
    """Issue 9 item 2: every action a node role can call, against every node's key."""
    genuine_recipient = world.enclave.recipient
    recipients: list[dict[str, Any] | None] = [None]
    if _accepts_recipient(operation):
        recipients += [genuine_recipient, attested(world.ca, OTHER_IMAGE).recipient]
    method = xform_name(operation)
    for caller in NODES:
        client = world.client(access_key(caller))
        for node in world.nodes.values():
            for build in KEY_REQUESTS[operation]:
                for recipient in recipients:
                    request = build(node) | ({} if recipient is None else {"Recipient": recipient})
                    genuine = recipient is genuine_recipient
                    where = f"{operation} by node {caller} on node {node.index}'s key"
                    if operation in ATTESTED_USE and caller == node.index and genuine:
                        answer = getattr(client, method)(**request)
                        assert "Plaintext" not in answer, where
                        opened = decrypt_for_recipient(
                            answer["CiphertextForRecipient"], world.enclave.private_key
                        )
                        assert len(opened) == 32, where
                        continue
                    with pytest.raises(ClientError) as info:
                        getattr(client, method)(**request)
                    assert error_code(info.value) == "AccessDeniedException", (
                        f"{where} (Recipient: {recipient is not None}): {info.value}"
                    )


def test_retire_grant_without_a_key_is_refused(world: World) -> None:
    """A grant token names no key the emulator can evaluate: refused rather than let through."""
    with pytest.raises(ClientError) as info:
        world.client(access_key(1)).retire_grant(GrantToken="token")
    assert error_code(info.value) in {"AccessDeniedException", "ValidationException"}


def _raw(world: World, target: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        world.kms.endpoint_url,
        data=json.dumps(body).encode(),
        headers={
            "X-Amz-Target": target,
            "Content-Type": "application/x-amz-json-1.1",
            "Authorization": f"AWS4-HMAC-SHA256 Credential={access_key(1)}/20260101/us-east-1/"
            "kms/aws4_request, SignedHeaders=host, Signature=0",
        },
    )
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.parametrize("target", ["Anything.Decrypt", "TrentService.NoSuchOperation", ""])
def test_requests_outside_the_kms_protocol_never_reach_moto(world: World, target: str) -> None:
    """Issue 9 item 2: moto takes the action from whatever follows the last dot of the target,
    so a request the authorisation layer does not recognise must be refused, not passed on."""
    node = world.nodes[2]
    body = {
        "CiphertextBlob": base64.b64encode(node.blob).decode(),
        "EncryptionContext": node.context,
    }
    status, answer = _raw(world, target, body)
    assert status == 400
    assert answer.get("__type") == "UnknownOperationException"
    assert "Plaintext" not in answer


def test_dev_key_policies_deny_unattested_use_as_terraform_does() -> None:
    """Issue 9 item 2: the dev policies carry the Terraform policy's explicit Deny, same actions."""
    block = re.search(r"key_use_actions\s*=\s*\[(.*?)\]", TERRAFORM_KMS.read_text(), re.S)
    assert block is not None
    assert set(re.findall(r'"(kms:[A-Za-z]+)"', block.group(1))) == set(KEY_USE_ACTIONS)
