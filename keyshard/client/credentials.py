"""The client's TLS credentials: an ECDSA P-256 key and a self-signed certificate.

Nodes pin the certificate by value (it is listed in the measured image config), so there is no CA
to compromise; the private key is written 0600 and read from a file only.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from keyshard.client.errors import CredentialsError
from wire.tls import self_signed_certificate

__all__ = ["ClientCredentials"]

CERT_FILE = "client-cert.pem"
KEY_FILE = "client-key.pem"


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    cert_path: Path
    key_path: Path

    @property
    def certificate_pem(self) -> bytes:
        try:
            return self.cert_path.read_bytes()
        except OSError as error:
            raise CredentialsError(f"cannot read {self.cert_path}: {error.strerror}") from None

    @classmethod
    def in_directory(cls, directory: Path) -> ClientCredentials:
        credentials = cls(directory / CERT_FILE, directory / KEY_FILE)
        for path in (credentials.cert_path, credentials.key_path):
            if not path.is_file():
                raise CredentialsError(f"no client credentials at {path}")
        return credentials

    @classmethod
    def load_or_create(cls, directory: Path, name: str = "keyshard-admin") -> ClientCredentials:
        """Reuse the credentials in ``directory``, or create them (key file mode 0600)."""
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        credentials = cls(directory / CERT_FILE, directory / KEY_FILE)
        if credentials.cert_path.exists() and credentials.key_path.exists():
            return credentials
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = self_signed_certificate(key, name, dt.datetime.now(dt.UTC))
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        descriptor = os.open(credentials.key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(pem)
        credentials.cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return credentials
