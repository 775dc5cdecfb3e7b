"""The emulated KMS, driven with boto3 over HTTP exactly as an enclave drives AWS KMS.

Real parts throughout: moto's KMS behind the Recipient layer on a loopback port, documents from the
emulated NSM signed by an emulated CA, RSA keys and CMS envelopes from ``cryptography``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from attestation.emulated_ca import EmulatedCa
from attestation.errors import RecipientDecryptionError
from attestation.nsm import EmulatedNsm, NsmClient
from attestation.recipient import decrypt_for_recipient
from attestation.roots import TrustedRoots
from attestation.verifier import AttestationVerifier
from keyshard.dev.kms_server import KmsServer, start_kms_server

ACCOUNT = "123456789012"  # moto's account
ADMIN = f"arn:aws:iam::{ACCOUNT}:role/keyshard-admin"
NODE = f"arn:aws:iam::{ACCOUNT}:role/keyshard-node"
PRINCIPALS = {"AKIAADMIN": ADMIN, "AKIANODE": NODE}
IMAGE_PCR0 = bytes(range(48))
OTHER_PCR0 = bytes(range(1, 49))


def boot_pcrs(pcr0: bytes) -> dict[int, bytes]:
    pcrs = dict.fromkeys(range(16), bytes(48))
    pcrs[0], pcrs[1], pcrs[2] = pcr0, b"\x01" * 48, b"\x02" * 48
    return pcrs


def key_policy(image: bytes) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "Administration",
                    "Effect": "Allow",
                    "Principal": {"AWS": ADMIN},
                    "Action": ["kms:Describe*", "kms:Get*", "kms:PutKeyPolicy", "kms:Create*"],
                    "Resource": "*",
                },
                {
                    "Sid": "AttestedEnclaveOnly",
                    "Effect": "Allow",
                    "Principal": {"AWS": NODE},
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                    "Resource": "*",
                    "Condition": {
                        "StringEqualsIgnoreCase": {
                            "kms:RecipientAttestation:ImageSha384": image.hex()
                        }
                    },
                },
            ],
        }
    )


@dataclass
class Enclave:
    """What an enclave holds for an attested KMS call: its RSA key and a document binding it."""

    private_key: rsa.RSAPrivateKey
    document: bytes

    @property
    def recipient(self) -> dict[str, Any]:
        return {
            "AttestationDocument": self.document,
            "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256",
        }


@pytest.fixture(scope="module")
def ca() -> EmulatedCa:
    return EmulatedCa.ephemeral()


@pytest.fixture(scope="module")
def kms(ca: EmulatedCa) -> Iterator[KmsServer]:
    verifier = AttestationVerifier(TrustedRoots.of([ca.root_certificate]))
    with start_kms_server(verifier, PRINCIPALS) as server:
        yield server


def client(kms: KmsServer, access_key: str) -> Any:
    return boto3.client(
        "kms",
        endpoint_url=kms.endpoint_url,
        region_name="eu-west-1",
        aws_access_key_id=access_key,
        aws_secret_access_key="emulated",
    )


@pytest.fixture(scope="module")
def key_id(kms: KmsServer) -> str:
    admin = client(kms, "AKIAADMIN")
    created = admin.create_key(Policy=key_policy(IMAGE_PCR0), Description="node sealing key")
    return str(created["KeyMetadata"]["KeyId"])


def make_enclave(
    ca: EmulatedCa,
    pcr0: bytes = IMAGE_PCR0,
    *,
    debug: bool = False,
    clock: Callable[[], dt.datetime] | None = None,
) -> Enclave:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    spki = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if clock is None:
        nsm = EmulatedNsm(ca, boot_pcrs(pcr0), debug=debug)
    else:
        nsm = EmulatedNsm(ca, boot_pcrs(pcr0), debug=debug, clock=clock)
    document = NsmClient(nsm).get_attestation_document(public_key=spki, nonce=os.urandom(16))
    return Enclave(private_key, document)


def error_code(excinfo: pytest.ExceptionInfo[ClientError]) -> str:
    return str(excinfo.value.response["Error"]["Code"])


def test_attested_enclave_gets_its_data_key_sealed_to_itself(
    kms: KmsServer, ca: EmulatedCa, key_id: str
) -> None:
    enclave = make_enclave(ca)
    node = client(kms, "AKIANODE")

    generated = node.generate_data_key(KeyId=key_id, KeySpec="AES_256", Recipient=enclave.recipient)

    assert generated.get("Plaintext") is None  # never in the clear, as AWS
    data_key = decrypt_for_recipient(generated["CiphertextForRecipient"], enclave.private_key)
    assert len(data_key) == 32

    # A later boot (new RSA key, new document) gets the same data key back through Decrypt.
    rebooted = make_enclave(ca)
    decrypted = node.decrypt(
        CiphertextBlob=generated["CiphertextBlob"], Recipient=rebooted.recipient
    )
    assert decrypted.get("Plaintext") is None
    assert (
        decrypt_for_recipient(decrypted["CiphertextForRecipient"], rebooted.private_key) == data_key
    )
    # ... which the first boot's key cannot open.
    with pytest.raises(RecipientDecryptionError):
        decrypt_for_recipient(decrypted["CiphertextForRecipient"], enclave.private_key)


def test_unattested_request_is_denied(kms: KmsServer, key_id: str) -> None:
    node = client(kms, "AKIANODE")
    with pytest.raises(ClientError) as excinfo:
        node.generate_data_key(KeyId=key_id, KeySpec="AES_256")
    assert error_code(excinfo) == "AccessDeniedException"


def test_other_image_is_denied(kms: KmsServer, ca: EmulatedCa, key_id: str) -> None:
    node = client(kms, "AKIANODE")
    tampered = make_enclave(ca, OTHER_PCR0)
    with pytest.raises(ClientError) as excinfo:
        node.generate_data_key(KeyId=key_id, KeySpec="AES_256", Recipient=tampered.recipient)
    assert error_code(excinfo) == "AccessDeniedException"
    assert "kms:GenerateDataKey" in str(excinfo.value)


def test_debug_mode_enclave_is_denied(kms: KmsServer, ca: EmulatedCa, key_id: str) -> None:
    node = client(kms, "AKIANODE")
    debug = make_enclave(ca, debug=True)
    with pytest.raises(ClientError) as excinfo:
        node.generate_data_key(KeyId=key_id, KeySpec="AES_256", Recipient=debug.recipient)
    assert error_code(excinfo) == "AccessDeniedException"


def test_decrypt_without_key_id_is_still_decided_on_the_policy(
    kms: KmsServer, ca: EmulatedCa, key_id: str
) -> None:
    node = client(kms, "AKIANODE")
    blob = node.generate_data_key(
        KeyId=key_id, KeySpec="AES_256", Recipient=make_enclave(ca).recipient
    )["CiphertextBlob"]
    with pytest.raises(ClientError) as excinfo:
        node.decrypt(CiphertextBlob=blob, Recipient=make_enclave(ca, OTHER_PCR0).recipient)
    assert error_code(excinfo) == "AccessDeniedException"
    with pytest.raises(ClientError) as excinfo:
        node.decrypt(CiphertextBlob=blob)
    assert error_code(excinfo) == "AccessDeniedException"


def test_stale_document_is_refused(kms: KmsServer, ca: EmulatedCa, key_id: str) -> None:
    ten_minutes_ago = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
    stale = make_enclave(ca, clock=lambda: ten_minutes_ago)
    node = client(kms, "AKIANODE")
    with pytest.raises(ClientError) as excinfo:
        node.generate_data_key(KeyId=key_id, KeySpec="AES_256", Recipient=stale.recipient)
    assert error_code(excinfo) == "ValidationException"
    assert "outside the accepted window" in str(excinfo.value)


def test_document_from_another_ca_is_refused(kms: KmsServer, key_id: str) -> None:
    forged = make_enclave(EmulatedCa.ephemeral(cloud="elsewhere"))
    node = client(kms, "AKIANODE")
    with pytest.raises(ClientError) as excinfo:
        node.generate_data_key(KeyId=key_id, KeySpec="AES_256", Recipient=forged.recipient)
    assert error_code(excinfo) == "ValidationException"
    assert "Invalid attestation document" in str(excinfo.value)


def test_tampered_document_is_refused(kms: KmsServer, ca: EmulatedCa, key_id: str) -> None:
    enclave = make_enclave(ca)
    tampered = bytearray(enclave.document)
    tampered[-5] ^= 0x01  # inside the signature
    recipient = {**enclave.recipient, "AttestationDocument": bytes(tampered)}
    node = client(kms, "AKIANODE")
    with pytest.raises(ClientError) as excinfo:
        node.generate_data_key(KeyId=key_id, KeySpec="AES_256", Recipient=recipient)
    assert error_code(excinfo) == "ValidationException"


def test_administrator_cannot_use_the_key(kms: KmsServer, ca: EmulatedCa, key_id: str) -> None:
    admin = client(kms, "AKIAADMIN")
    assert admin.describe_key(KeyId=key_id)["KeyMetadata"]["KeyId"] == key_id
    with pytest.raises(ClientError) as excinfo:
        admin.generate_data_key(
            KeyId=key_id, KeySpec="AES_256", Recipient=make_enclave(ca).recipient
        )
    assert error_code(excinfo) == "AccessDeniedException"


def test_unknown_access_key_is_unrecognised(kms: KmsServer, key_id: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        client(kms, "AKIASTRANGER").describe_key(KeyId=key_id)
    assert error_code(excinfo) == "UnrecognizedClientException"


def test_generate_random_for_recipient(kms: KmsServer, ca: EmulatedCa) -> None:
    enclave = make_enclave(ca)
    answer = client(kms, "AKIANODE").generate_random(NumberOfBytes=24, Recipient=enclave.recipient)
    assert answer.get("Plaintext") is None
    assert len(decrypt_for_recipient(answer["CiphertextForRecipient"], enclave.private_key)) == 24


def test_recipient_with_wrong_algorithm_is_refused(
    kms: KmsServer, ca: EmulatedCa, key_id: str
) -> None:
    recipient = {**make_enclave(ca).recipient, "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_1"}
    with pytest.raises(ClientError) as excinfo:
        client(kms, "AKIANODE").generate_data_key(
            KeyId=key_id, KeySpec="AES_256", Recipient=recipient
        )
    assert error_code(excinfo) == "ValidationException"


def test_document_must_bind_an_rsa_key(kms: KmsServer, ca: EmulatedCa, key_id: str) -> None:
    nsm = EmulatedNsm(ca, boot_pcrs(IMAGE_PCR0))
    unbound = NsmClient(nsm).get_attestation_document(user_data=b"no key here")
    recipient = {"AttestationDocument": unbound, "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256"}
    with pytest.raises(ClientError) as excinfo:
        client(kms, "AKIANODE").generate_data_key(
            KeyId=key_id, KeySpec="AES_256", Recipient=recipient
        )
    assert error_code(excinfo) == "ValidationException"
    assert "public_key" in str(excinfo.value)


def test_recipient_document_is_base64_on_the_wire(kms: KmsServer) -> None:
    """boto3 base64-encodes blobs; the emulator must refuse anything that is not."""
    request = urllib.request.Request(
        kms.endpoint_url,
        data=json.dumps(
            {
                "NumberOfBytes": 8,
                "Recipient": {
                    "AttestationDocument": "***",
                    "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256",
                },
            }
        ).encode(),
        headers={
            "X-Amz-Target": "TrentService.GenerateRandom",
            "Content-Type": "application/x-amz-json-1.1",
            "Authorization": "AWS4-HMAC-SHA256 Credential=AKIANODE/20260101/eu-west-1/kms/"
            "aws4_request, SignedHeaders=host, Signature=0",
        },
    )
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(request)
    body = json.loads(excinfo.value.read())
    assert body["__type"] == "ValidationException"
