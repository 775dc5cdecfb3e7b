"""TLS conventions both ends of a node channel share: self-signed identities pinned by value.

Neither the client nor the node trusts a CA: a node's TLS key is trusted through its attestation
binding (:mod:`wire.binding`), a client's certificate by being listed in the measured image.
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["CERTIFICATE_LIFETIME", "self_signed_certificate"]

CERTIFICATE_LIFETIME = dt.timedelta(days=30)


def self_signed_certificate(
    key: ec.EllipticCurvePrivateKey, common_name: str, now: dt.datetime
) -> x509.Certificate:
    """A self-signed end-entity certificate (a TLS identity pinned by value, not by a CA)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + CERTIFICATE_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
