"""The emulated KMS's TLS identity: a dev CA, measured into the image, and the server certificate.

A real enclave reaches ``kms.<region>.amazonaws.com`` over TLS that runs end to end through the
untrusted parent, and verifies AWS's certificate inside the enclave; a parent that answers in KMS's
place fails that check. The emulated KMS plays the same part: the enclave connects to the same host
name, and the emulated KMS presents a certificate for it issued by a dev CA whose certificate is in
the image's ``image.json`` (``kms_ca_pem``) — part of what is measured, so a different CA is a
different PCR0 and a key policy pinned to the released image refuses it.

The CA's private key exists only while the server certificate is issued: nothing can issue a second
certificate later. The certificate also names ``localhost`` and ``127.0.0.1`` so that tools on the
host (the cluster's administrator client) reach the KMS directly with the same verification.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["KmsTls", "issue_kms_tls", "kms_host", "server_context"]

_VALIDITY = dt.timedelta(days=365)
_CLOCK_SKEW = dt.timedelta(minutes=5)


def kms_host(region: str) -> str:
    """The public KMS host name of ``region``: what the enclave connects to in both modes."""
    return f"kms.{region}.amazonaws.com"


@dataclass(frozen=True, slots=True)
class KmsTls:
    """Where the emulated KMS's TLS material lives (``<dir>/ca.pem`` is public)."""

    directory: Path

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def cert_file(self) -> Path:
        return self.directory / "server.pem"

    @property
    def key_file(self) -> Path:
        return self.directory / "server-key.pem"

    @property
    def ca_pem(self) -> bytes:
        return self.ca_file.read_bytes()


def issue_kms_tls(
    directory: Path, regions: Iterable[str], *, now: dt.datetime | None = None
) -> KmsTls:
    """A fresh dev CA and a server certificate for ``kms.<region>.amazonaws.com`` of ``regions``.

    Replaces whatever ``directory`` held: each cluster gets its own CA (and so its own PCR0)."""
    issued = now or dt.datetime.now(dt.UTC)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Keyshard emulation"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Keyshard dev KMS CA"),
        ]
    )
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key(), issued)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(kms_host(r)) for r in sorted(set(regions))]
    names += [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    server_cert = (
        _builder(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Keyshard emulated KMS")]),
            ca_name,
            server_key.public_key(),
            issued,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    tls = KmsTls(directory)
    _write(tls.key_file, _private_pem(server_key), 0o600)
    _write(tls.cert_file, server_cert.public_bytes(serialization.Encoding.PEM), 0o644)
    _write(tls.ca_file, ca_cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return tls


def server_context(tls: KmsTls) -> ssl.SSLContext:
    """The emulated KMS's server-side TLS context (TLS 1.2+, as AWS KMS requires)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(tls.cert_file, tls.key_file)
    return context


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePublicKey, now: dt.datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key), critical=False)
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write atomically with ``mode`` from the start (the key is never briefly world-readable)."""
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    temporary.replace(path)
