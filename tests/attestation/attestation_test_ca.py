"""A tiny P-384 CA chain shaped like AWS's (root, regional, zonal, instance, leaf), for tests.

Independent of the emulated CA proper (another module's job): tests of the verifier must not
depend on it. :class:`ChainSpec` fields let a test break exactly one property of one certificate.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from attestation.codec import encode_document
from attestation.document import AttestationPayload

T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
LEVELS = ("root", "regional", "zonal", "instance", "leaf")
DEFAULT_PATHLEN = {"root": None, "regional": 2, "zonal": 1, "instance": 0}


@dataclass(frozen=True)
class CertSpec:
    """How to issue one certificate; defaults give an AWS-shaped certificate."""

    not_before: dt.datetime = T0 - dt.timedelta(days=1)
    not_after: dt.datetime = T0 + dt.timedelta(days=1)
    ca: bool | None = True  # None: no basicConstraints at all
    path_length: int | None = None
    key_cert_sign: bool | None = True  # None: no keyUsage at all
    digital_signature: bool = True
    curve: ec.EllipticCurve = field(default_factory=ec.SECP384R1)
    extra_critical: bool = False  # add an unhandled critical extension


def default_specs() -> dict[str, CertSpec]:
    specs = {level: CertSpec(path_length=DEFAULT_PATHLEN[level]) for level in LEVELS[:-1]}
    specs["leaf"] = CertSpec(
        not_before=T0 - dt.timedelta(hours=1),
        not_after=T0 + dt.timedelta(hours=2),
        ca=False,
        key_cert_sign=False,
    )
    return specs


@dataclass(frozen=True)
class CaChain:
    keys: dict[str, ec.EllipticCurvePrivateKey]
    certs: dict[str, x509.Certificate]

    def der(self, level: str) -> bytes:
        return self.certs[level].public_bytes(Encoding.DER)

    @property
    def root(self) -> x509.Certificate:
        return self.certs["root"]

    @property
    def cabundle(self) -> tuple[bytes, ...]:
        return tuple(self.der(level) for level in LEVELS[:-1])


def _name(level: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Keyshard tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{level}.test-nitro"),
        ]
    )


def _issue(
    level: str,
    spec: CertSpec,
    key: ec.EllipticCurvePrivateKey,
    issuer_name: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(level))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(spec.not_before)
        .not_valid_after(spec.not_after)
    )
    if spec.ca is not None:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=spec.ca, path_length=spec.path_length if spec.ca else None),
            critical=True,
        )
    if spec.key_cert_sign is not None:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=spec.digital_signature,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=spec.key_cert_sign,
                crl_sign=spec.key_cert_sign,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    if spec.extra_critical:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x05\x00"),
            critical=True,
        )
    return builder.sign(issuer_key, hashes.SHA384())


def make_chain(**overrides: CertSpec) -> CaChain:
    """Issue a fresh chain; ``overrides`` replaces the spec of named levels."""
    specs = default_specs()
    specs.update(overrides)
    keys = {level: ec.generate_private_key(specs[level].curve) for level in LEVELS}
    certs: dict[str, x509.Certificate] = {}
    issuer = "root"
    for level in LEVELS:
        certs[level] = _issue(level, specs[level], keys[level], _name(issuer), keys[issuer])
        issuer = level
    return CaChain(keys=keys, certs=certs)


def with_spec(level: str, **changes: object) -> dict[str, CertSpec]:
    """``make_chain(**with_spec("zonal", ca=False))`` breaks one property of one level."""
    return {level: replace(default_specs()[level], **changes)}  # type: ignore[arg-type]


ZERO48 = b"\x00" * 48


def make_payload(chain: CaChain, **changes: object) -> AttestationPayload:
    """An AWS-shaped payload signed-for by ``chain``'s leaf; ``changes`` overrides fields."""
    fields: dict[str, object] = {
        "module_id": "i-0123456789abcdef0-enc0123456789abcdef",
        "digest": "SHA384",
        "timestamp_ms": int(T0.timestamp() * 1000),
        "pcrs": {
            i: (bytes([i + 1]) * 48 if i in (0, 1, 2, 3, 4, 8) else ZERO48) for i in range(16)
        },
        "certificate": chain.der("leaf"),
        "cabundle": chain.cabundle,
        "public_key": b"\x04" + b"\x11" * 64,
        "user_data": None,
        "nonce": b"\x22" * 20,
    }
    fields.update(changes)
    return AttestationPayload(**fields)  # type: ignore[arg-type]


def make_document(chain: CaChain, **changes: object) -> bytes:
    return encode_document(make_payload(chain, **changes), chain.keys["leaf"])
