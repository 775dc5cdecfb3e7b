"""The KMS gateway against a running three-node cluster, driven by real AWS clients that no one
here wrote: boto3, the AWS CLI (``awscli``) and the AWS Encryption SDK.

``keyshard dev gateway`` starts the gateway beside the cluster and writes ``gateway.json``; the
clients take its endpoint with ``endpoint_url`` / ``--endpoint-url`` and nothing else changes.
Signatures are checked with pyca/cryptography and coincurve from GetPublicKey's SPKI, never with
the gateway's own Verify alone.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import hashlib
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import coincurve
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from cluster_processes import cluster_processes
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from enclave.mpc.prf import PrfMode
from keyshard.cli.main import main
from keyshard.client.sdk import AsyncClient, Client
from keyshard.dev.cluster import ACCOUNT, REGION, Cluster
from keyshard.dev.gateway import GATEWAY_FILE, DevGateway
from keyshard.gateway.config import (
    AccessKey,
    GatewayConfig,
    XksConfig,
    XksKey,
    new_access_key,
    new_xks_credentials,
)
from keyshard.gateway.registry import KeyRecord, Registry
from wire.approvals import ApprovalPolicy, Operation

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    path = Path(tempfile.mkdtemp(prefix="ksgw-", dir="/tmp"))
    try:
        with Cluster(path, 3) as running:
            running.up(timeout=90)
            yield running
        assert cluster_processes(path) == []  # `down` stopped the gateway too
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def gateway(cluster: Cluster) -> DevGateway:
    # Checkpoints witnessed every half second (default 60 s), for the test that waits for one.
    command = ["dev", "gateway", "--dir", str(cluster.directory), "--witness-every", "0.5"]
    assert main(command) == 0
    info_file = cluster.directory / GATEWAY_FILE
    assert info_file.stat().st_mode & 0o777 == 0o600  # it holds the secret access key
    return DevGateway.load(info_file)


def _kms(gateway: DevGateway, *, key_id: str | None = None, secret: str | None = None) -> Any:
    return boto3.session.Session().client(
        "kms",
        endpoint_url=gateway.endpoint_url,
        region_name=gateway.region,
        aws_access_key_id=key_id or gateway.access_key_id,
        aws_secret_access_key=secret or gateway.secret_access_key,
    )


@pytest.fixture(scope="module")
def kms(gateway: DevGateway) -> Any:
    return _kms(gateway)


def _code(error: pytest.ExceptionInfo[ClientError]) -> str:
    return str(error.value.response["Error"]["Code"])


# -- boto3: signatures ---------------------------------------------------------------------


def test_secp256k1_sign_raw_and_digest_verified_from_the_spki(kms: Any) -> None:
    key = kms.create_key(KeySpec="ECC_SECG_P256K1", KeyUsage="SIGN_VERIFY", Description="wallet")[
        "KeyMetadata"
    ]
    assert key["KeySpec"] == "ECC_SECG_P256K1"
    assert key["SigningAlgorithms"] == ["ECDSA_SHA_256"]
    answer = kms.get_public_key(KeyId=key["Arn"])
    assert answer["KeyUsage"] == "SIGN_VERIFY"
    assert answer["SigningAlgorithms"] == ["ECDSA_SHA_256"]
    public = serialization.load_der_public_key(answer["PublicKey"])
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert public.curve.name == "secp256k1"
    compressed = public.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )

    message = b"pay 5 to 42"
    raw = kms.sign(KeyId=key["KeyId"], Message=message, SigningAlgorithm="ECDSA_SHA_256")
    assert raw["KeyId"] == key["Arn"]
    public.verify(raw["Signature"], message, ec.ECDSA(hashes.SHA256()))
    assert coincurve.PublicKey(compressed).verify(raw["Signature"], message)  # SHA-256 inside

    digest = hashlib.sha256(b"a transaction hashed elsewhere").digest()
    signed = kms.sign(
        KeyId=key["KeyId"], Message=digest, MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256"
    )["Signature"]
    assert coincurve.PublicKey(compressed).verify(signed, digest, hasher=None)
    assert kms.verify(
        KeyId=key["KeyId"],
        Message=b"a transaction hashed elsewhere",
        Signature=signed,
        SigningAlgorithm="ECDSA_SHA_256",
    )["SignatureValid"]

    with pytest.raises(ClientError) as bad:
        kms.verify(
            KeyId=key["KeyId"],
            Message=b"pay 6 to 42",
            Signature=raw["Signature"],
            SigningAlgorithm="ECDSA_SHA_256",
        )
    assert _code(bad) == "KMSInvalidSignatureException"
    with pytest.raises(ClientError) as short:
        kms.sign(
            KeyId=key["KeyId"],
            Message=b"short",
            MessageType="DIGEST",
            SigningAlgorithm="ECDSA_SHA_256",
        )
    assert _code(short) == "ValidationException"
    with pytest.raises(ClientError) as usage:
        kms.sign(KeyId=key["KeyId"], Message=message, SigningAlgorithm="ED25519_SHA_512")
    assert _code(usage) == "InvalidKeyUsageException"
    with pytest.raises(ClientError) as symmetric:
        kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x")
    assert _code(symmetric) == "InvalidKeyUsageException"


def test_ed25519_sign_verified_by_cryptography(kms: Any) -> None:
    key = kms.create_key(KeySpec="ECC_NIST_EDWARDS25519", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    public = serialization.load_der_public_key(kms.get_public_key(KeyId=key["KeyId"])["PublicKey"])
    assert isinstance(public, Ed25519PublicKey)
    signature = kms.sign(
        KeyId=key["KeyId"], Message=b"release 1.2", SigningAlgorithm="ED25519_SHA_512"
    )["Signature"]
    public.verify(signature, b"release 1.2")
    with pytest.raises(ClientError) as digest:
        kms.sign(
            KeyId=key["KeyId"],
            Message=bytes(64),
            MessageType="DIGEST",
            SigningAlgorithm="ED25519_SHA_512",
        )
    assert _code(digest) == "ValidationException"


# -- boto3: encryption ---------------------------------------------------------------------


def _stored_heads(directory: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, int]:
    """Each node's last stored audit seq, from its parent's log (``keyshard audit export``)."""
    capsys.readouterr()
    assert main(["audit", "export", "--dir", str(directory)]) == 0
    heads: dict[str, int] = {}
    for line in capsys.readouterr().out.splitlines():
        entry = json.loads(line)
        heads[entry["node_id"]] = max(heads.get(entry["node_id"], -1), int(entry["seq"]))
    return heads


def test_the_gateway_has_audit_checkpoints_witnessed_without_a_change_of_state(
    kms: Any, cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    """Signatures change no sealed state, so nothing but the gateway's periodic round has the
    peers witness the records they added: the peers' checkpoints must come to cover them."""
    key = kms.create_key(KeySpec="ECC_NIST_EDWARDS25519", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    before = _stored_heads(cluster.directory, capsys)
    for number in range(3):
        kms.sign(KeyId=key["KeyId"], Message=b"%d" % number, SigningAlgorithm="ED25519_SHA_512")
    deadline = time.monotonic() + 30
    while (heads := _stored_heads(cluster.directory, capsys)) == before:  # stored as they come
        assert time.monotonic() < deadline, "no signature record was stored"
        time.sleep(0.1)
    grown = {node: seq for node, seq in heads.items() if seq > before.get(node, -1)}
    with Client.from_profile(cluster.profile_file) as sdk:
        while True:
            witnessed: dict[str, int] = {}
            for entry in sdk.audit_checkpoints():
                node, seq = entry.checkpoint.node_id, entry.checkpoint.seq
                witnessed[node] = max(witnessed.get(node, -1), seq)
            if all(witnessed.get(node, -1) >= seq for node, seq in grown.items()):
                break
            assert time.monotonic() < deadline, f"witnessed {witnessed}, stored {grown}"
            time.sleep(0.2)


def test_encrypt_decrypt_data_keys_and_the_encryption_context(kms: Any) -> None:
    key = kms.create_key(Description="backups")["KeyMetadata"]
    assert key["KeySpec"] == "SYMMETRIC_DEFAULT"
    assert key["KeyUsage"] == "ENCRYPT_DECRYPT"
    context = {"purpose": "backup", "host": "db-1"}
    sealed = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"payroll", EncryptionContext=context)
    blob = sealed["CiphertextBlob"]
    assert blob[:4] == b"KSG\x01"
    assert key["KeyId"].encode() in blob[:48]
    # No KeyId: the blob names its key; the context's order does not matter.
    opened = kms.decrypt(CiphertextBlob=blob, EncryptionContext=dict(reversed(context.items())))
    assert opened["Plaintext"] == b"payroll"
    assert opened["KeyId"] == key["Arn"]
    for changed in ({"purpose": "backup"}, {**context, "host": "db-2"}, {}):
        with pytest.raises(ClientError) as refused:
            kms.decrypt(CiphertextBlob=blob, EncryptionContext=changed)
        assert _code(refused) == "InvalidCiphertextException"
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(ClientError) as altered:
        kms.decrypt(CiphertextBlob=tampered, EncryptionContext=context)
    assert _code(altered) == "InvalidCiphertextException"

    data_key = kms.generate_data_key(KeyId=key["Arn"], KeySpec="AES_256", EncryptionContext=context)
    assert len(data_key["Plaintext"]) == 32
    again = kms.decrypt(CiphertextBlob=data_key["CiphertextBlob"], EncryptionContext=context)
    assert again["Plaintext"] == data_key["Plaintext"]
    without = kms.generate_data_key_without_plaintext(KeyId=key["KeyId"], NumberOfBytes=24)
    assert "Plaintext" not in without
    assert len(kms.decrypt(CiphertextBlob=without["CiphertextBlob"])["Plaintext"]) == 24

    other = kms.create_key()["KeyMetadata"]
    with pytest.raises(ClientError) as incorrect:
        kms.decrypt(CiphertextBlob=blob, EncryptionContext=context, KeyId=other["KeyId"])
    assert _code(incorrect) == "IncorrectKeyException"
    moved = kms.re_encrypt(
        CiphertextBlob=blob,
        SourceEncryptionContext=context,
        DestinationKeyId=other["KeyId"],
        DestinationEncryptionContext={"moved": "yes"},
    )
    assert moved["SourceKeyId"] == key["Arn"]
    assert moved["KeyId"] == other["Arn"]
    assert (
        kms.decrypt(CiphertextBlob=moved["CiphertextBlob"], EncryptionContext={"moved": "yes"})[
            "Plaintext"
        ]
        == b"payroll"
    )
    with pytest.raises(ClientError) as public_key:
        kms.get_public_key(KeyId=key["KeyId"])
    assert _code(public_key) == "UnsupportedOperationException"


def test_disable_enable_and_key_deletion_map_onto_the_cluster(kms: Any) -> None:
    """EnableKey/DisableKey/ScheduleKeyDeletion/CancelKeyDeletion change the key on every
    holder; a disabled key is refused with DisabledException, one pending deletion with
    KMSInvalidStateException, and a cancelled deletion leaves the key disabled (as KMS)."""
    key = kms.create_key()["KeyMetadata"]
    key_id = key["KeyId"]
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"kept")["CiphertextBlob"]
    assert kms.disable_key(KeyId=key_id)["ResponseMetadata"]["HTTPStatusCode"] == 200
    described = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert (described["KeyState"], described["Enabled"]) == ("Disabled", False)
    for attempt in (
        lambda: kms.encrypt(KeyId=key_id, Plaintext=b"x"),
        lambda: kms.decrypt(CiphertextBlob=blob),
    ):
        with pytest.raises(ClientError) as disabled:
            attempt()
        assert _code(disabled) == "DisabledException"
    kms.enable_key(KeyId=key_id)
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"kept"

    scheduled = kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert scheduled["KeyState"] == "PendingDeletion"
    assert scheduled["PendingWindowInDays"] == 7
    days = (scheduled["DeletionDate"].timestamp() - time.time()) / 86400
    assert 6.9 < days <= 7.0
    with pytest.raises(ClientError) as pending:
        kms.decrypt(CiphertextBlob=blob)
    assert _code(pending) == "KMSInvalidStateException"
    with pytest.raises(ClientError) as enable_pending:
        kms.enable_key(KeyId=key_id)
    assert _code(enable_pending) == "KMSInvalidStateException"
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingDeletion"
    assert kms.cancel_key_deletion(KeyId=key_id)["KeyId"] == key["Arn"]
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Disabled"
    with pytest.raises(ClientError) as window:
        kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=3)
    assert _code(window) == "ValidationException"


def test_aliases_names_and_listing(kms: Any) -> None:
    key = kms.create_key()["KeyMetadata"]
    alias = f"alias/app-{uuid.uuid4().hex[:8]}"
    kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    alias_arn = f"arn:aws:kms:{REGION}:{ACCOUNT}:{alias}"
    for name in (key["KeyId"], key["Arn"], alias, alias_arn):
        assert kms.describe_key(KeyId=name)["KeyMetadata"]["KeyId"] == key["KeyId"]
    listed = kms.list_aliases(KeyId=key["KeyId"])["Aliases"]
    assert listed == [{"AliasName": alias, "AliasArn": alias_arn, "TargetKeyId": key["KeyId"]}]
    with pytest.raises(ClientError) as exists:
        kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    assert _code(exists) == "AlreadyExistsException"
    with pytest.raises(ClientError) as reserved:
        kms.create_alias(AliasName="alias/aws/s3", TargetKeyId=key["KeyId"])
    assert _code(reserved) == "InvalidAliasNameException"
    assert kms.encrypt(KeyId=alias, Plaintext=b"x")["KeyId"] == key["Arn"]
    kms.delete_alias(AliasName=alias)
    with pytest.raises(ClientError) as gone:
        kms.describe_key(KeyId=alias)
    assert _code(gone) == "NotFoundException"
    ids = [
        k["KeyId"]
        for page in kms.get_paginator("list_keys").paginate(Limit=1)
        for k in page["Keys"]
    ]
    assert key["KeyId"] in ids
    assert len(ids) == len(set(ids))
    with pytest.raises(ClientError) as unknown:
        kms.describe_key(KeyId=str(uuid.uuid4()))
    assert _code(unknown) == "NotFoundException"
    with pytest.raises(ClientError) as not_served:
        kms.get_key_policy(KeyId=key["KeyId"], PolicyName="default")
    assert _code(not_served) == "UnsupportedOperationException"


def test_requests_not_signed_by_a_known_key_are_refused(gateway: DevGateway) -> None:
    wrong = _kms(gateway, secret="not-the-secret-access-key-of-this-id")
    with pytest.raises(ClientError) as bad:
        wrong.list_keys()
    assert _code(bad) == "InvalidSignatureException"
    stranger = _kms(gateway, key_id="AKIAUNKNOWNUNKNOWN00", secret="whatever-secret-0000")
    with pytest.raises(ClientError) as unknown:
        stranger.list_keys()
    assert _code(unknown) == "UnrecognizedClientException"


# -- the AWS CLI ---------------------------------------------------------------------------


def _aws(gateway: DevGateway, *args: str) -> dict[str, Any]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": tempfile.gettempdir(),
        "AWS_ACCESS_KEY_ID": gateway.access_key_id,
        "AWS_SECRET_ACCESS_KEY": gateway.secret_access_key,
        "AWS_DEFAULT_REGION": gateway.region,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }
    aws = Path(sys.executable).parent / "aws"
    done = subprocess.run(
        [str(aws), "kms", *args, "--endpoint-url", gateway.endpoint_url, "--output", "json"],
        env=env,
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()
    return dict(json.loads(done.stdout)) if done.stdout.strip() else {}


def test_aws_cli_create_sign_verify_encrypt_decrypt(gateway: DevGateway, tmp_path: Path) -> None:
    key = _aws(gateway, "create-key", "--key-spec", "ECC_SECG_P256K1", "--key-usage", "SIGN_VERIFY")
    key_id = key["KeyMetadata"]["KeyId"]
    spki = base64.b64decode(_aws(gateway, "get-public-key", "--key-id", key_id)["PublicKey"])
    public = serialization.load_der_public_key(spki)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    message = tmp_path / "msg"
    message.write_bytes(b"wire 5 to 42")
    signed = _aws(
        gateway,
        "sign",
        "--key-id",
        key_id,
        "--message",
        f"fileb://{message}",
        "--signing-algorithm",
        "ECDSA_SHA_256",
    )
    signature = base64.b64decode(signed["Signature"])
    public.verify(signature, b"wire 5 to 42", ec.ECDSA(hashes.SHA256()))
    (tmp_path / "sig").write_bytes(signature)
    verified = _aws(
        gateway,
        "verify",
        "--key-id",
        key_id,
        "--message",
        f"fileb://{message}",
        "--signature",
        f"fileb://{tmp_path / 'sig'}",
        "--signing-algorithm",
        "ECDSA_SHA_256",
    )
    assert verified["SignatureValid"] is True

    symmetric = _aws(gateway, "create-key")["KeyMetadata"]["KeyId"]
    sealed = _aws(
        gateway,
        "encrypt",
        "--key-id",
        symmetric,
        "--plaintext",
        f"fileb://{message}",
        "--encryption-context",
        "purpose=test",
    )
    (tmp_path / "blob").write_bytes(base64.b64decode(sealed["CiphertextBlob"]))
    opened = _aws(
        gateway,
        "decrypt",
        "--ciphertext-blob",
        f"fileb://{tmp_path / 'blob'}",
        "--encryption-context",
        "purpose=test",
    )
    assert base64.b64decode(opened["Plaintext"]) == b"wire 5 to 42"


# -- the AWS Encryption SDK ----------------------------------------------------------------


def test_aws_encryption_sdk_with_a_kms_keyring(kms: Any) -> None:
    import aws_encryption_sdk  # noqa: PLC0415 -- test-only dependency, loaded where used
    from aws_cryptographic_material_providers.mpl import (  # noqa: PLC0415
        AwsCryptographicMaterialProviders,
    )
    from aws_cryptographic_material_providers.mpl.config import (  # noqa: PLC0415
        MaterialProvidersConfig,
    )
    from aws_cryptographic_material_providers.mpl.models import (  # noqa: PLC0415
        CreateAwsKmsKeyringInput,
    )
    from aws_encryption_sdk.key_providers.kms import (  # noqa: PLC0415
        KMSMasterKey,
        KMSMasterKeyConfig,
    )

    arn = kms.create_key(Description="encryption sdk")["KeyMetadata"]["Arn"]
    client = aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=aws_encryption_sdk.CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
    )
    providers = AwsCryptographicMaterialProviders(config=MaterialProvidersConfig())
    keyring = providers.create_aws_kms_keyring(
        input=CreateAwsKmsKeyringInput(kms_key_id=arn, kms_client=kms)
    )
    payload = os.urandom(100_000)  # far over KMS's 4 KiB: envelope encryption under a data key
    context = {"dept": "finance"}
    message, _ = client.encrypt(source=payload, keyring=keyring, encryption_context=context)
    opened, header = client.decrypt(source=message, keyring=keyring, encryption_context=context)
    assert opened == payload
    assert header.encryption_context["dept"] == "finance"
    # The classic master-key provider reads the same message through the same gateway.
    master_key = KMSMasterKey(config=KMSMasterKeyConfig(key_id=arn, client=kms))
    assert client.decrypt(source=message, key_provider=master_key)[0] == payload


# -- access rules and approvals (a second gateway with its own configuration) --------------


def _start_gateway(
    cluster: Cluster, config: GatewayConfig, state: Path
) -> tuple[subprocess.Popen[bytes], str]:
    state.mkdir(parents=True, exist_ok=True)
    config.save(state / "config.json")
    ready = state / "ready.json"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "keyshard.cli.main",
            "gateway",
            "--profile",
            str(cluster.profile_file),
            "--config",
            str(state / "config.json"),
            "--state",
            str(state),
            "--listen",
            "127.0.0.1:0",
            "--ready-file",
            str(ready),
        ],
        stdout=subprocess.DEVNULL,
        stderr=(state / "gateway.log").open("wb"),
    )
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert process.poll() is None, (state / "gateway.log").read_text()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return process, str(json.loads(ready.read_text())["url"])


def test_access_rules_and_keys_that_need_approvals(cluster: Cluster, tmp_path: Path) -> None:
    # A cluster key with an approval policy, registered with the gateway by hand.
    approver = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    policy = ApprovalPolicy((approver,), 1, frozenset({Operation.SIGN}))
    guarded = KeyRecord(str(uuid.uuid4()), "ECC_NIST_EDWARDS25519", "SIGN_VERIFY", "", time.time())
    with Client.from_profile(cluster.profile_file) as sdk:
        sdk.create_key(guarded.cluster_name, threshold=1, policy=policy)
    Registry(tmp_path / "keys.json").add(guarded)
    sealed_key = f"xks-guarded-{uuid.uuid4().hex[:8]}"
    decrypt_policy = ApprovalPolicy((approver,), 1, frozenset({Operation.DECRYPT}))
    with Client.from_profile(cluster.profile_file) as sdk:
        sdk.create_key(sealed_key, threshold=1, policy=decrypt_policy)
    xks_access = new_xks_credentials()
    xks = XksConfig(
        "/guarded",
        (xks_access,),
        (XksKey("guarded", sealed_key, frozenset({"ENCRYPT", "DECRYPT"})),),
    )

    admin = new_access_key()
    signer = AccessKey(
        "AKIAKSSIGNERONLY0001",
        "signer-secret-for-tests",
        frozenset({"alias/payments"}),
        frozenset({"Sign", "GetPublicKey"}),
    )
    process, url = _start_gateway(
        cluster, GatewayConfig(REGION, ACCOUNT, (admin, signer), xks), tmp_path
    )
    try:
        info = DevGateway(url, REGION, admin.access_key_id, admin.secret, "")
        root = _kms(info)
        limited = _kms(info, key_id=signer.access_key_id, secret=signer.secret)
        with pytest.raises(ClientError) as approvals:
            root.sign(KeyId=guarded.key_id, Message=b"m", SigningAlgorithm="ED25519_SHA_512")
        assert _code(approvals) == "AccessDeniedException"
        assert "approval" in str(approvals.value)

        payments = root.create_key(KeySpec="ECC_NIST_EDWARDS25519", KeyUsage="SIGN_VERIFY")
        other = root.create_key(KeySpec="ECC_NIST_EDWARDS25519", KeyUsage="SIGN_VERIFY")
        pay_id = payments["KeyMetadata"]["KeyId"]
        root.create_alias(AliasName="alias/payments", TargetKeyId=pay_id)
        signature = limited.sign(
            KeyId="alias/payments", Message=b"ok", SigningAlgorithm="ED25519_SHA_512"
        )["Signature"]
        public = serialization.load_der_public_key(
            limited.get_public_key(KeyId=pay_id)["PublicKey"]
        )
        assert isinstance(public, Ed25519PublicKey)
        public.verify(signature, b"ok")
        denied = [
            lambda: limited.sign(
                KeyId=other["KeyMetadata"]["KeyId"],
                Message=b"x",
                SigningAlgorithm="ED25519_SHA_512",
            ),
            limited.create_key,
            lambda: limited.describe_key(KeyId=pay_id),
        ]
        for call in denied:
            with pytest.raises(ClientError) as refused:
                call()
            assert _code(refused) == "AccessDeniedException"

        # XKS: a key whose policy wants approvals to decrypt encrypts, but never decrypts here.
        proxy = Xks(
            DevGateway(
                url,
                REGION,
                "",
                "",
                "/guarded/kms/xks/v1",
                xks_access.access_key_id,
                xks_access.secret,
            )
        )
        status, sealed = proxy.call("/keys/guarded/encrypt", _encrypt_body(b"x", None))
        assert status == 200
        status, answer = proxy.call("/keys/guarded/decrypt", _decrypt_body(sealed, None))
        assert (status, answer["errorName"]) == (403, "AccessDeniedException")
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0


# -- the XKS proxy, driven by botocore's SigV4 signer --------------------------------------


class Xks:
    """A test client of the XKS proxy API: JSON over HTTP, signed by botocore's SigV4Auth with
    service ``kms-xks-proxy`` as AWS KMS signs it."""

    def __init__(self, gateway: DevGateway) -> None:
        self.gateway = gateway
        self.secret = gateway.xks_secret_access_key

    def call(
        self,
        path: str,
        body: dict[str, Any],
        *,
        method: str = "POST",
        secret: str | None = None,
        service: str = "kms-xks-proxy",
    ) -> tuple[int, dict[str, Any]]:
        url = self.gateway.endpoint_url + self.gateway.xks_uri_prefix + path
        data = json.dumps(body).encode()
        request = AWSRequest(method, url, data=data, headers={"Content-Type": "application/json"})
        credentials = Credentials(self.gateway.xks_access_key_id, secret or self.secret)
        SigV4Auth(credentials, service, "eu-west-1").add_auth(request)
        prepared = request.prepare()
        parts = urlsplit(url)
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
        try:
            connection.request(method, parts.path, body=data, headers=dict(prepared.headers))
            response = connection.getresponse()
            return response.status, json.loads(response.read() or b"{}")
        finally:
            connection.close()


METADATA = {
    "awsPrincipalArn": "arn:aws:iam::123456789012:user/Alice",
    "kmsKeyArn": "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    "kmsOperation": "Encrypt",
    "kmsRequestId": "4112f4d6-db54-4af4-ae30-c55a22a8dfae",
}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _encrypt_body(plaintext: bytes, aad: bytes | None, *, cdiv: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "requestMetadata": METADATA,
        "plaintext": _b64(plaintext),
        "encryptionAlgorithm": "AES_GCM",
    }
    if aad is not None:
        body["additionalAuthenticatedData"] = _b64(aad)
    if cdiv:
        body["ciphertextDataIntegrityValueAlgorithm"] = "SHA_256"
    return body


def _decrypt_body(encrypted: dict[str, Any], aad: bytes | None, **changes: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "requestMetadata": {**METADATA, "kmsOperation": "Decrypt"},
        "encryptionAlgorithm": "AES_GCM",
        **{
            k: encrypted[k]
            for k in (
                "ciphertext",
                "ciphertextMetadata",
                "initializationVector",
                "authenticationTag",
            )
        },
        **changes,
    }
    if aad is not None:
        body["additionalAuthenticatedData"] = _b64(aad)
    return body


def _flip(value: str) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[-1] ^= 1
    return _b64(bytes(raw))


def test_xks_health_metadata_encrypt_decrypt_and_cdiv(gateway: DevGateway) -> None:
    xks = Xks(gateway)
    status, health = xks.call(
        "/health", {"requestMetadata": {"kmsRequestId": "1", "kmsOperation": "KmsHealthCheck"}}
    )
    assert status == 200
    assert {d["healthStatus"] for d in health["ekmFleetDetails"]} == {"ACTIVE"}
    usages = {
        "xks-dev": ["DECRYPT", "ENCRYPT"],
        "xks-dev-encrypt-only": ["ENCRYPT"],
        "xks-dev-decrypt-only": ["DECRYPT"],
    }
    for key_id, usage in usages.items():
        assert xks.call(f"/keys/{key_id}/metadata", {"requestMetadata": METADATA}) == (
            200,
            {"keySpec": "AES_256", "keyUsage": usage, "keyStatus": "ENABLED"},
        )

    for plaintext, aad in (
        (b"Hello World!", b"project=nile,department=marketing"),
        (os.urandom(4300), None),
    ):
        status, sealed = xks.call(
            "/keys/xks-dev-encrypt-only/encrypt", _encrypt_body(plaintext, aad)
        )
        assert status == 200
        ciphertext = base64.b64decode(sealed["ciphertext"])
        metadata = base64.b64decode(sealed["ciphertextMetadata"])
        iv = base64.b64decode(sealed["initializationVector"])
        tag = base64.b64decode(sealed["authenticationTag"])
        assert len(ciphertext) == len(plaintext)  # AES-GCM: the same length
        assert len(metadata) <= 20
        assert len(iv) == 12
        assert len(tag) == 16
        cdiv = hashlib.sha256((aad or b"") + metadata + iv + ciphertext + tag).digest()
        assert base64.b64decode(sealed["ciphertextDataIntegrityValue"]) == cdiv  # Appendix C
        for key_id in ("xks-dev", "xks-dev-decrypt-only"):
            status, opened = xks.call(f"/keys/{key_id}/decrypt", _decrypt_body(sealed, aad))
            assert status == 200
            assert base64.b64decode(opened["plaintext"]) == plaintext
    # No CDIV asked, none given; every encryption uses a fresh per-message key (seed) and IV.
    _, first = xks.call("/keys/xks-dev/encrypt", _encrypt_body(b"same", None, cdiv=False))
    _, second = xks.call("/keys/xks-dev/encrypt", _encrypt_body(b"same", None, cdiv=False))
    assert "ciphertextDataIntegrityValue" not in first
    assert first["ciphertextMetadata"] != second["ciphertextMetadata"]


def test_xks_negative_cases_of_the_specification(gateway: DevGateway) -> None:
    xks = Xks(gateway)
    aad = b"project=nile"
    status, sealed = xks.call("/keys/xks-dev/encrypt", _encrypt_body(b"secret data", aad))
    assert status == 200

    def refused(path: str, body: dict[str, Any], **kw: str) -> tuple[int, str]:
        status, answer = xks.call(path, body, **kw)
        return status, str(answer["errorName"])

    decrypt = _decrypt_body(sealed, aad)
    assert refused("/keys/xks-dev/decrypt", decrypt, secret="A" * 44) == (
        401,
        "AuthenticationFailedException",
    )
    assert refused("/keys/xks-dev/decrypt", decrypt, service="kms") == (
        401,
        "AuthenticationFailedException",
    )
    assert refused("/keys/no-such-key/decrypt", decrypt) == (404, "KeyNotFoundException")
    assert refused("/keys/xks-dev-encrypt-only/decrypt", decrypt) == (
        400,
        "InvalidKeyUsageException",
    )
    assert refused("/keys/xks-dev-decrypt-only/encrypt", _encrypt_body(b"x", None)) == (
        400,
        "InvalidKeyUsageException",
    )
    bad_aad = _decrypt_body(sealed, b"project=amazon")
    no_aad = _decrypt_body(sealed, None)
    tampered_tag = _decrypt_body(sealed, aad, authenticationTag=_flip(sealed["authenticationTag"]))
    tampered_text = _decrypt_body(sealed, aad, ciphertext=_flip(sealed["ciphertext"]))
    tampered_iv = _decrypt_body(
        sealed, aad, initializationVector=_flip(sealed["initializationVector"])
    )
    tampered_seed = _decrypt_body(
        sealed, aad, ciphertextMetadata=_flip(sealed["ciphertextMetadata"])
    )
    for body in (bad_aad, no_aad, tampered_tag, tampered_text, tampered_iv, tampered_seed):
        assert refused("/keys/xks-dev/decrypt", body) == (400, "InvalidCiphertextException")
    assert refused("/keys/xks-dev/decrypt", {**decrypt, "encryptionAlgorithm": "AES_CBC"}) == (
        400,
        "ValidationException",
    )
    assert refused(
        "/keys/xks-dev/decrypt", {k: v for k, v in decrypt.items() if k != "requestMetadata"}
    ) == (
        400,
        "ValidationException",
    )
    assert refused("/keys/xks-dev/metadata", {"requestMetadata": METADATA}, method="GET")[0] == 405
    assert refused("/keys/xks-dev/rotate", {"requestMetadata": METADATA}) == (
        404,
        "InvalidUriPathException",
    )


def test_xks_concurrent_calls_each_get_their_own_key_and_answer(gateway: DevGateway) -> None:
    """Calls in flight together share PRF requests (coalesced per key) yet each gets its own
    seed, and each decrypts to its own plaintext."""
    xks = Xks(gateway)
    plaintexts = [f"message {i}".encode() for i in range(12)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=12) as pool:
        sealed = list(
            pool.map(
                lambda p: xks.call("/keys/xks-dev/encrypt", _encrypt_body(p, b"ctx")), plaintexts
            )
        )
        assert {status for status, _ in sealed} == {200}
        assert len({answer["ciphertextMetadata"] for _, answer in sealed}) == len(plaintexts)
        opened = list(
            pool.map(
                lambda s: xks.call("/keys/xks-dev/decrypt", _decrypt_body(s[1], b"ctx")), sealed
            )
        )
    assert [base64.b64decode(answer["plaintext"]) for _, answer in opened] == plaintexts


def test_an_encrypt_mode_evaluation_never_lands_on_an_existing_seed(cluster: Cluster) -> None:
    """The node hashes an encrypt-mode input into the seed: handing it the seed of an existing
    ciphertext (padded to a nonce) yields another seed and key, never that ciphertext's."""

    async def run() -> None:
        async with AsyncClient.from_profile(cluster.profile_file) as sdk:
            ((seed, key),) = await sdk.encryption_keys("xks-dev", 1)
            assert await sdk.decryption_keys("xks-dev", [seed]) == [key]
            aimed = await sdk.coordinator.prf("xks-dev", PrfMode.ENCRYPT, [seed + bytes(16)])
            assert aimed[0][0] != seed
            assert aimed[0][1] != key

    asyncio.run(run())


def test_the_gateway_log_holds_no_secret(cluster: Cluster, gateway: DevGateway) -> None:
    """Runs last in this module: everything above went through the dev gateway, whose log must
    carry operations, callers and error types only — no body, secret key or plaintext."""
    log = cluster.log_file("gateway").read_text()
    entries = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert {e.get("event") for e in entries} >= {"kms", "xks"}
    forbidden = [
        gateway.secret_access_key,
        gateway.xks_secret_access_key,
        "payroll",
        base64.b64encode(b"payroll").decode(),
        base64.b64encode(b"Hello World!").decode(),
        "Hello World",
        "secret data",
    ]
    for value in forbidden:
        assert value not in log
