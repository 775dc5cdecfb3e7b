"""The emulated KMS keeps its keys across a restart of its process (issue 10): a ciphertext made
before decrypts after, under the same key ARN and with the same policy and tags; a key deleted in
moto's memory comes back from the file only, never from anything else."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.kms.models import kms_backends

from attestation.emulated_ca import EmulatedCa
from attestation.roots import TrustedRoots
from attestation.verifier import AttestationVerifier
from keyshard.dev.kms_server import KmsServer, start_kms_server
from keyshard.dev.kms_state import KmsKeyState

ACCOUNT = "123456789012"  # moto's account
ADMIN = f"arn:aws:iam::{ACCOUNT}:role/keyshard-admin"
PRINCIPALS = {"AKIAADMIN": ADMIN}
POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Admin",
                "Effect": "Allow",
                "Principal": {"AWS": ADMIN},
                "Action": "kms:*",
                "Resource": "*",
            }
        ],
    }
)


def _forget_moto_keys() -> None:
    """What ending the cloud process does to moto's in-memory keys."""
    for account in kms_backends.values():
        for backend in account.values():
            backend.keys.clear()


def _client(server: KmsServer) -> Any:
    return boto3.client(
        "kms",
        endpoint_url=server.endpoint_url,
        region_name="eu-west-1",
        aws_access_key_id="AKIAADMIN",
        aws_secret_access_key="emulated",
    )


@pytest.fixture
def verifier() -> AttestationVerifier:
    return AttestationVerifier(TrustedRoots.of([EmulatedCa.ephemeral().root_certificate]))


@pytest.fixture
def clean() -> Iterator[None]:
    _forget_moto_keys()
    yield
    _forget_moto_keys()


@pytest.mark.usefixtures("clean")
def test_keys_policies_and_tags_survive_a_restart(
    tmp_path: Path, verifier: AttestationVerifier
) -> None:
    state = tmp_path / "kms-state.json"
    with start_kms_server(verifier, PRINCIPALS, state_file=state) as server:
        kms = _client(server)
        arn = kms.create_key(Policy=POLICY)["KeyMetadata"]["Arn"]
        kms.put_key_policy(KeyId=arn, PolicyName="default", Policy=POLICY)  # saved on change
        kms.tag_resource(KeyId=arn, Tags=[{"TagKey": "keyshard:node", "TagValue": "node-1"}])
        blob = kms.encrypt(KeyId=arn, Plaintext=b"data key")["CiphertextBlob"]
    assert stat.S_IMODE(state.stat().st_mode) == 0o600  # key material: the owner's only
    _forget_moto_keys()
    with start_kms_server(verifier, PRINCIPALS, state_file=state) as server:
        kms = _client(server)
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"data key"
        assert kms.describe_key(KeyId=arn)["KeyMetadata"]["KeyState"] == "Enabled"
        assert kms.get_key_policy(KeyId=arn, PolicyName="default")["Policy"] == POLICY
        tags = kms.list_resource_tags(KeyId=arn)["Tags"]
        assert tags == [{"TagKey": "keyshard:node", "TagValue": "node-1"}]


@pytest.mark.usefixtures("clean")
def test_without_a_state_file_keys_are_memory_only(
    tmp_path: Path, verifier: AttestationVerifier
) -> None:
    with start_kms_server(verifier, PRINCIPALS) as server:
        arn = _client(server).create_key(Policy=POLICY)["KeyMetadata"]["Arn"]
    _forget_moto_keys()
    with (
        start_kms_server(verifier, PRINCIPALS, state_file=tmp_path / "new.json") as server,
        pytest.raises(ClientError),
    ):
        _client(server).describe_key(KeyId=arn)
    assert not (tmp_path / "new.json").exists()  # nothing changed, nothing written


def test_an_unknown_state_version_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "kms-state.json"
    state.write_text(json.dumps({"v": 99, "keys": []}))
    with pytest.raises(ValueError, match="version"):
        KmsKeyState(state).restore()
