"""The KMS endpoint's answers that need no cluster: authentication comes first, then the
operation, then its fields, each failure in KMS's own error shape. (Everything that reaches the
cluster is tested against a real one in tests/cluster/test_gateway.py.)"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from keyshard.client.sdk import AsyncClient
from keyshard.gateway.config import AccessKey, ConfigError, GatewayConfig
from keyshard.gateway.kms_api import KmsEndpoint
from keyshard.gateway.operations import Gateway
from keyshard.gateway.registry import KeyRecord, Registry
from keyshard.gateway.sigv4 import SignedRequest

ADMIN = AccessKey("AKIAADMINADMINADMIN0", "admin-secret-for-tests")
READER = AccessKey(
    "AKIAREADERREADER0000", "reader-secret-for-tests", operations=frozenset({"ListKeys"})
)
KEY = KeyRecord(
    "1234abcd-12ab-34cd-56ef-1234567890ab", "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", "", 1.0
)


@pytest.fixture
def endpoint(tmp_path: Path) -> KmsEndpoint:
    registry = Registry(tmp_path / "keys.json")
    registry.add(KEY)
    config = GatewayConfig("us-east-1", "111122223333", (ADMIN, READER))
    # No request in this module reaches the cluster: a missing client would fail loudly.
    return KmsEndpoint(Gateway(config, registry, cast(AsyncClient, None)))


def _call(
    endpoint: KmsEndpoint,
    operation: str,
    body: bytes | dict[str, Any],
    *,
    key: AccessKey = ADMIN,
    target: str = "TrentService.",
    method: str = "POST",
) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = AWSRequest(
        method,
        "http://127.0.0.1:4599/",
        data=data,
        headers={"X-Amz-Target": target + operation, "Content-Type": "application/x-amz-json-1.1"},
    )
    SigV4Auth(Credentials(key.access_key_id, key.secret), "kms", "us-east-1").add_auth(request)
    prepared = request.prepare()
    headers = [*prepared.headers.items(), ("Host", urlsplit(prepared.url).netloc)]
    signed = SignedRequest(method, "/", tuple(headers), data)
    response = asyncio.run(endpoint(signed))
    return response.status, json.loads(response.body)


def _error(answer: tuple[int, dict[str, Any]]) -> tuple[int, str]:
    return answer[0], str(answer[1]["__type"])


def test_authentication_comes_before_anything(endpoint: KmsEndpoint) -> None:
    stranger = AccessKey("AKIASTRANGERSTRANGER", "stranger-secret-000")
    assert _error(_call(endpoint, "NoSuchOperation", {}, key=stranger)) == (
        400,
        "UnrecognizedClientException",
    )
    forged = AccessKey(ADMIN.access_key_id, "not-the-admin-secret")
    assert _error(_call(endpoint, "ListKeys", {}, key=forged)) == (400, "InvalidSignatureException")


def test_operations_and_bodies(endpoint: KmsEndpoint) -> None:
    assert _call(endpoint, "ListKeys", {}) == (
        200,
        {
            "Keys": [
                {
                    "KeyId": KEY.key_id,
                    "KeyArn": f"arn:aws:kms:us-east-1:111122223333:key/{KEY.key_id}",
                }
            ],
            "Truncated": False,
        },
    )
    assert _error(_call(endpoint, "Frobnicate", {})) == (400, "UnknownOperationException")
    assert _error(_call(endpoint, "ListKeys", {}, target="Other.")) == (
        400,
        "UnknownOperationException",
    )
    assert _error(_call(endpoint, "PutKeyPolicy", {"KeyId": KEY.key_id})) == (
        400,
        "UnsupportedOperationException",
    )
    assert _error(_call(endpoint, "ListKeys", b"{not json")) == (400, "SerializationException")
    assert _error(_call(endpoint, "ListKeys", b"[1]")) == (400, "SerializationException")
    assert _error(_call(endpoint, "ListKeys", {"Marker": "99"})) == (400, "InvalidMarkerException")
    assert _error(_call(endpoint, "DescribeKey", {})) == (400, "ValidationException")
    assert _error(_call(endpoint, "DescribeKey", {"KeyId": "alias/none"})) == (
        400,
        "NotFoundException",
    )
    assert _error(
        _call(
            endpoint,
            "DescribeKey",
            {"KeyId": f"arn:aws:kms:eu-west-1:111122223333:key/{KEY.key_id}"},
        )
    ) == (400, "NotFoundException")
    assert _error(_call(endpoint, "Encrypt", {"KeyId": KEY.key_id, "Plaintext": "!!"})) == (
        400,
        "ValidationException",
    )
    assert _error(_call(endpoint, "Decrypt", {"CiphertextBlob": "AAAA"})) == (
        400,
        "InvalidCiphertextException",
    )
    assert _error(
        _call(endpoint, "CreateKey", {"KeySpec": "RSA_2048", "KeyUsage": "SIGN_VERIFY"})
    ) == (400, "UnsupportedOperationException")
    assert _error(_call(endpoint, "CreateKey", {"Policy": "{}"})) == (400, "ValidationException")
    # DescribeKey asks the cluster for the key's state; the metadata around it is local
    described = endpoint._gateway.metadata(KEY, "disabled")
    assert described["EncryptionAlgorithms"] == ["SYMMETRIC_DEFAULT"]
    assert (described["KeyState"], described["Enabled"]) == ("Disabled", False)


def test_access_rules(endpoint: KmsEndpoint) -> None:
    assert _call(endpoint, "ListKeys", {}, key=READER)[0] == 200
    status, body = _call(endpoint, "DescribeKey", {"KeyId": KEY.key_id}, key=READER)
    assert (status, body["__type"]) == (400, "AccessDeniedException")
    assert "kms:DescribeKey" in body["message"]


def test_config_round_trip_and_mode(tmp_path: Path) -> None:
    config = GatewayConfig("us-east-1", "111122223333", (ADMIN, READER))
    path = tmp_path / "gateway.json"
    config.save(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert GatewayConfig.load(path) == config
    assert "admin-secret" not in repr(config)
    with pytest.raises(ConfigError, match="region"):
        GatewayConfig("nowhere", "111122223333", ())
    with pytest.raises(ConfigError, match="distinct"):
        GatewayConfig("us-east-1", "111122223333", (ADMIN, ADMIN))
    path.write_text('{"version": 2}')
    with pytest.raises(ConfigError, match="version"):
        GatewayConfig.load(path)
