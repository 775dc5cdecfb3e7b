"""KMS calls with ``Recipient``: boto3, the same code against AWS and the emulated KMS.

The enclave asks KMS for its data key in a form only it can open: every call passes
``Recipient={AttestationDocument, KeyEncryptionAlgorithm: RSAES_OAEP_SHA_256}`` and reads
``CiphertextForRecipient`` (CMS EnvelopedData to the RSA key bound in the document), never
``Plaintext`` — a response that carries a plaintext data key is refused.

TLS is verified inside the enclave, in both modes: against AWS's certificate through botocore's
default bundle in real mode, against exactly the image's dev CA (``kms_ca_pem``) in emulation. That
check is what keeps a parent from answering in KMS's place with a data key of its choosing (which
it could seal to the enclave's attested RSA key as well as KMS can). The enclave has no disk to hold
a CA bundle file, and botocore takes only a path: the dev CA is put in a sealed, read-only
``memfd`` and botocore is pointed at ``/proc/self/fd/<n>``.

The ``EncryptionContext`` binds the data key to the node id: KMS authenticates it with the
ciphertext, so the parent cannot hand one node another node's ``CiphertextBlob``. ``KeyId`` is passed
to ``Decrypt`` too, so a ciphertext under any other key is refused by KMS.

boto3 is synchronous; callers run these methods in a worker thread. Errors become
:class:`~enclave.errors.KmsError` with the AWS error code and message (public: they say which
condition failed, never anything secret).
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, SSLError

from enclave.errors import KmsError

__all__ = ["DataKeyResponse", "EnclaveKms", "StaticCredentials", "encryption_context"]

RECIPIENT_ALGORITHM = "RSAES_OAEP_SHA_256"


@dataclass(frozen=True, slots=True)
class StaticCredentials:
    """Temporary credentials relayed by the parent (IMDSv2 in real mode, fake in emulation)."""

    access_key_id: str
    secret_access_key: str
    session_token: str

    def __repr__(self) -> str:
        return f"StaticCredentials(access_key_id={self.access_key_id!r}, <redacted>)"


@dataclass(frozen=True, slots=True)
class DataKeyResponse:
    """What KMS returned: the public ``CiphertextBlob`` and the enclave-only envelope."""

    ciphertext_blob: bytes
    ciphertext_for_recipient: bytes
    key_id: str


def encryption_context(node_id: str) -> dict[str, str]:
    return {"keyshard:purpose": "node-sealing-key", "keyshard:node": node_id}


class EnclaveKms:
    """The two KMS calls the boot sequence makes."""

    def __init__(
        self,
        endpoint_url: str,
        region: str,
        credentials: StaticCredentials,
        *,
        proxy_url: str | None = None,
        timeout: float = 10.0,
        ca_pem: bytes | None = None,
    ) -> None:
        """``ca_pem``: the one CA trusted for the KMS certificate (emulation); None keeps
        botocore's default bundle (AWS), never the ``AWS_CA_BUNDLE`` environment."""
        self._ca_fd = None if ca_pem is None else _sealed_memfd("keyshard-kms-ca", ca_pem)
        verify: bool | str = True if self._ca_fd is None else f"/proc/self/fd/{self._ca_fd}"
        self._client: Any = boto3.session.Session().client(
            "kms",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=credentials.access_key_id,
            aws_secret_access_key=credentials.secret_access_key,
            aws_session_token=credentials.session_token or None,
            verify=verify,
            config=Config(
                connect_timeout=timeout,
                read_timeout=timeout,
                retries={"max_attempts": 2, "mode": "standard"},
                proxies={"https": proxy_url} if proxy_url is not None else None,
            ),
        )

    def generate_data_key(self, key_id: str, node_id: str, document: bytes) -> DataKeyResponse:
        response = self._call(
            "GenerateDataKey",
            KeyId=key_id,
            KeySpec="AES_256",
            EncryptionContext=encryption_context(node_id),
            Recipient=_recipient(document),
        )
        return _data_key("GenerateDataKey", response)

    def decrypt(
        self, key_id: str, node_id: str, ciphertext_blob: bytes, document: bytes
    ) -> DataKeyResponse:
        response = self._call(
            "Decrypt",
            KeyId=key_id,
            CiphertextBlob=ciphertext_blob,
            EncryptionContext=encryption_context(node_id),
            Recipient=_recipient(document),
        )
        return _data_key("Decrypt", response, ciphertext_blob)

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        method = {
            "GenerateDataKey": self._client.generate_data_key,
            "Decrypt": self._client.decrypt,
        }
        try:
            response: dict[str, Any] = method[operation](**kwargs)
        except ClientError as error:
            details = error.response.get("Error", {})
            raise KmsError(
                operation, str(details.get("Code", "Unknown")), str(details.get("Message", ""))
            ) from None
        except SSLError as error:
            # Public: the endpoint and OpenSSL's reason. Typically a parent answering for KMS.
            raise KmsError(
                operation,
                "TLSVerificationFailed",
                f"the KMS endpoint's certificate is not trusted ({error})"[:500],
            ) from None
        except BotoCoreError as error:
            raise KmsError(operation, type(error).__name__, "KMS endpoint unreachable") from None
        return response

    def close(self) -> None:
        """Close the client's connections and the CA bundle."""
        self._client.close()
        if self._ca_fd is not None:
            os.close(self._ca_fd)
            self._ca_fd = None


def _sealed_memfd(name: str, data: bytes) -> int:
    """An in-memory file holding ``data``, sealed so nothing can change it afterwards."""
    descriptor = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view) :]
        fcntl.fcntl(
            descriptor,
            fcntl.F_ADD_SEALS,
            fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL,
        )
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def _recipient(document: bytes) -> dict[str, Any]:
    return {"AttestationDocument": document, "KeyEncryptionAlgorithm": RECIPIENT_ALGORITHM}


def _data_key(
    operation: str, response: dict[str, Any], blob: bytes | None = None
) -> DataKeyResponse:
    if response.get("Plaintext"):
        raise KmsError(operation, "PlaintextReturned", "KMS answered a plaintext, refused")
    envelope = response.get("CiphertextForRecipient")
    key_id = response.get("KeyId")
    ciphertext = response.get("CiphertextBlob", blob)
    if not isinstance(envelope, bytes) or not isinstance(key_id, str):
        raise KmsError(operation, "MalformedResponse", "no CiphertextForRecipient or KeyId")
    if not isinstance(ciphertext, bytes):
        raise KmsError(operation, "MalformedResponse", "no CiphertextBlob")
    return DataKeyResponse(ciphertext, envelope, key_id)
