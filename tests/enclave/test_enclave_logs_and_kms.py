"""Structured logs carry only scalars; a KMS answer carrying a plaintext data key is refused."""

from __future__ import annotations

import json
import logging

import pytest

from enclave.errors import KmsError
from enclave.kms import StaticCredentials, _data_key
from enclave.logs import JsonFormatter
from enclave.secretbytes import SecretBytes


def record(**fields: object) -> logging.LogRecord:
    entry = logging.LogRecord("enclave.boot", logging.INFO, __file__, 1, "event", None, None)
    entry.fields = fields
    return entry


def test_log_lines_are_json_and_refuse_non_scalars() -> None:
    secret = SecretBytes(b"\x11" * 32)
    line = JsonFormatter().format(record(step="kms", size=3, key=secret, raw=b"\x11" * 32))
    parsed = json.loads(line)
    assert parsed["step"] == "kms"
    assert parsed["size"] == 3
    assert parsed["key"] == "<unloggable>"
    assert parsed["raw"] == "<unloggable>"
    assert "11111111" not in line


def test_credentials_repr_hides_the_secret() -> None:
    credentials = StaticCredentials("AKIAEXAMPLE", "very-secret-key", "token-value")
    assert "very-secret-key" not in repr(credentials)
    assert "token-value" not in repr(credentials)


def test_plaintext_in_a_kms_answer_is_refused() -> None:
    with pytest.raises(KmsError) as info:
        _data_key(
            "GenerateDataKey",
            {
                "Plaintext": b"k" * 32,
                "CiphertextForRecipient": b"env",
                "KeyId": "arn",
                "CiphertextBlob": b"c",
            },
        )
    assert info.value.code == "PlaintextReturned"


def test_missing_envelope_is_refused() -> None:
    with pytest.raises(KmsError) as info:
        _data_key("Decrypt", {"KeyId": "arn"}, b"blob")
    assert info.value.code == "MalformedResponse"
