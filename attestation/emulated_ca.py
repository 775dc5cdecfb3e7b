"""An emulated Nitro attestation PKI: a CA chain shaped like AWS's, rooted per local "cloud".

Real documents are signed by a leaf certificate issued for the enclave, under a chain that the
document carries in ``cabundle``, root first::

    root      CN=aws.nitro-enclaves                    ~30 years  CA, no path length
    regional  CN=<16 hex>.<region>.aws.nitro-enclaves  ~3 weeks   CA, pathlen 2
    zonal     CN=<16 hex>.zonal.<region>.aws...        ~6 days    CA, pathlen 1
    instance  CN=i-<17 hex>.<region>.aws...            ~1 day     CA, pathlen 0, keyCertSign only
    leaf      CN=i-<17 hex>-enc<16 hex>.<region>.aws   ~3 hours   not a CA, digitalSignature +
                                                                  nonRepudiation

All keys P-384, all signatures ecdsa-with-SHA384. The extensions below mirror what a genuine
document's certificates carry (decoded from the samples in ``tests/data/attestation``):
basicConstraints and keyUsage critical everywhere except the leaf's keyUsage; subject/authority key
identifiers on root, regional and zonal; none on instance and leaf. (The CRL distribution points of
real intermediates are left out: there is no CRL server in emulation, and the verifier does not
fetch CRLs.) A verifier that accepts AWS's chain therefore accepts this one -- but only when this
chain's root is pinned, since the root is ours, not AWS's.

The root is the trust anchor of one local cloud, so it is persisted: ``<dir>/root-ca.pem`` holds
the private key and certificate (mode 0600, created atomically with an exclusive link so concurrent
processes agree on one root), ``<dir>/root.pem`` the certificate alone for verifiers to pin. The
intermediates are regenerated in each process (verifiers pin only the root) and renewed before the
instance certificate would outlive a leaf. Time comes from an injectable clock.

Trust note: anyone who can read ``root-ca.pem`` can forge emulated documents. That is inherent to
emulation and is why emulated roots are pinned only by explicit configuration, never by default.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = [
    "LEAF_LIFETIME",
    "ROOT_BUNDLE_FILE",
    "ROOT_CERT_FILE",
    "EmulatedCa",
    "IssuedLeaf",
    "system_clock",
]

ROOT_BUNDLE_FILE = "root-ca.pem"
ROOT_CERT_FILE = "root.pem"
#: AWS leaves live about three hours.
LEAF_LIFETIME = dt.timedelta(hours=3)
_ROOT_LIFETIME = dt.timedelta(days=30 * 365)
_REGIONAL_LIFETIME = dt.timedelta(days=20)
_ZONAL_LIFETIME = dt.timedelta(days=6)
_INSTANCE_LIFETIME = dt.timedelta(days=1)
#: Certificates are backdated slightly so a verifier whose clock lags a little still accepts them.
_BACKDATE = dt.timedelta(minutes=5)

Clock = Callable[[], dt.datetime]


def system_clock() -> dt.datetime:
    """The current UTC time (the default clock)."""
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class _Authority:
    """A CA certificate with its key (never leaves this module's objects)."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def __repr__(self) -> str:
        return f"_Authority({self.certificate.subject.rfc4514_string()}, key=<redacted>)"


@dataclass(frozen=True, slots=True)
class IssuedLeaf:
    """A fresh leaf certificate (DER) and its signing key, for one attestation document."""

    certificate_der: bytes
    key: ec.EllipticCurvePrivateKey

    def __repr__(self) -> str:
        return f"IssuedLeaf({len(self.certificate_der)} bytes DER, key=<redacted>)"


def _name(common_name: str, *, localised: bool = False, state: str = "Washington") -> x509.Name:
    """Names in AWS's attribute order (instance and leaf carry L/ST too)."""
    attributes = [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Keyshard"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Emulated"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ]
    if localised:
        attributes[1:1] = [
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, state),
            x509.NameAttribute(NameOID.LOCALITY_NAME, "Seattle"),
        ]
    return x509.Name(attributes)


def _ca_key_usage(*, sign_certs_only: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not sign_certs_only,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=not sign_certs_only,
        encipher_only=False,
        decipher_only=False,
    )


def _issue(
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    issuer: _Authority | None,
    *,
    signing_key: ec.EllipticCurvePrivateKey,
    not_before: dt.datetime,
    lifetime: dt.timedelta,
    path_length: int | None,
    is_ca: bool = True,
    key_ids: bool = True,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject if issuer else subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + lifetime)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=path_length), critical=True)
    )
    if key_ids and issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    if key_ids:
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False
        )
    if is_ca:
        builder = builder.add_extension(
            _ca_key_usage(sign_certs_only=path_length == 0), critical=True
        )
    else:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=False,
        )
    return builder.sign(signing_key, hashes.SHA384())


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


def _new_root(cloud: str, now: dt.datetime) -> _Authority:
    key = _new_key()
    subject = _name(f"{cloud}.emulated.nitro-enclaves")
    certificate = _issue(
        subject,
        key.public_key(),
        None,
        signing_key=key,
        not_before=now - _BACKDATE,
        lifetime=_ROOT_LIFETIME,
        path_length=None,
    )
    return _Authority(certificate, key)


def _write_exclusive(path: Path, data: bytes, mode: int) -> bool:
    """Create ``path`` atomically with ``data`` unless it exists; True if we created it.

    The content is written and fsynced under a temporary name, then hard-linked to the final name:
    ``link`` fails if the name exists, so exactly one of several racing processes wins and nobody
    ever sees a half-written file.
    """
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        return True
    finally:
        os.unlink(temporary)


def _load_root(bundle: bytes) -> _Authority:
    key = serialization.load_pem_private_key(bundle, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP384R1):
        raise ValueError("emulated root key must be P-384")
    certificate = x509.load_pem_x509_certificate(bundle)
    if certificate.public_key() != key.public_key():
        raise ValueError("emulated root certificate does not match its key")
    return _Authority(certificate, key)


def _hex_id(length: int) -> str:
    return secrets.token_hex((length + 1) // 2)[:length]


class EmulatedCa:
    """The emulated Nitro PKI of one local cloud: a persisted root, fresh intermediates, leaves.

    Thread-safe: leaves may be issued concurrently (the emulated NSM serves several enclaves).
    """

    def __init__(
        self,
        root: _Authority,
        *,
        region: str = "local-1",
        instance_id: str | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self._root = root
        self._region = region
        self._instance_id = instance_id or f"i-{_hex_id(17)}"
        self._clock = clock
        self._lock = threading.Lock()
        self._chain: tuple[_Authority, _Authority, _Authority] = self._new_intermediates(clock())

    @classmethod
    def load_or_create(
        cls,
        directory: Path,
        *,
        cloud: str = "local",
        region: str = "local-1",
        instance_id: str | None = None,
        clock: Clock = system_clock,
    ) -> EmulatedCa:
        """The CA of the cloud persisted in ``directory``, creating its root on first use."""
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        bundle_path = directory / ROOT_BUNDLE_FILE
        if not bundle_path.exists():
            root = _new_root(cloud, clock())
            key_pem = root.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            cert_pem = root.certificate.public_bytes(serialization.Encoding.PEM)
            _write_exclusive(bundle_path, key_pem + cert_pem, 0o600)
        # Whoever won the race, everybody uses the root that is on disk.
        root = _load_root(bundle_path.read_bytes())
        cert_path = directory / ROOT_CERT_FILE
        if not cert_path.exists():
            _write_exclusive(
                cert_path, root.certificate.public_bytes(serialization.Encoding.PEM), 0o644
            )
        return cls(root, region=region, instance_id=instance_id, clock=clock)

    @classmethod
    def ephemeral(
        cls,
        *,
        cloud: str = "ephemeral",
        region: str = "local-1",
        instance_id: str | None = None,
        clock: Clock = system_clock,
    ) -> EmulatedCa:
        """A CA whose root lives only in memory (tests, one-process demos)."""
        return cls(_new_root(cloud, clock()), region=region, instance_id=instance_id, clock=clock)

    def _new_intermediates(self, now: dt.datetime) -> tuple[_Authority, _Authority, _Authority]:
        start = now - _BACKDATE
        regional_key, zonal_key, instance_key = _new_key(), _new_key(), _new_key()
        regional = _Authority(
            _issue(
                _name(f"{_hex_id(16)}.{self._region}.emulated.nitro-enclaves"),
                regional_key.public_key(),
                self._root,
                signing_key=self._root.key,
                not_before=start,
                lifetime=_REGIONAL_LIFETIME,
                path_length=2,
            ),
            regional_key,
        )
        zonal = _Authority(
            _issue(
                _name(
                    f"{_hex_id(16)}.zonal.{self._region}.emulated.nitro-enclaves",
                    localised=True,
                    state="WA",
                ),
                zonal_key.public_key(),
                regional,
                signing_key=regional.key,
                not_before=start,
                lifetime=_ZONAL_LIFETIME,
                path_length=1,
            ),
            zonal_key,
        )
        instance = _Authority(
            _issue(
                _name(
                    f"{self._instance_id}.{self._region}.emulated.nitro-enclaves", localised=True
                ),
                instance_key.public_key(),
                zonal,
                signing_key=zonal.key,
                not_before=start,
                lifetime=_INSTANCE_LIFETIME,
                path_length=0,
                key_ids=False,
            ),
            instance_key,
        )
        return regional, zonal, instance

    @property
    def instance_id(self) -> str:
        """The emulated parent instance id (``i-`` and 17 hex digits, like EC2)."""
        return self._instance_id

    @property
    def root_certificate(self) -> x509.Certificate:
        """The root certificate (public)."""
        return self._root.certificate

    @property
    def root_der(self) -> bytes:
        """The root certificate, DER."""
        return self._root.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def root_fingerprint(self) -> str:
        """SHA-256 of the root's DER, lowercase hex: what verifiers pin."""
        return hashlib.sha256(self.root_der).hexdigest()

    def cabundle(self) -> tuple[bytes, ...]:
        """The current chain as a document carries it: root, regional, zonal, instance (DER)."""
        with self._lock:
            chain = self._chain
        return self._bundle(chain)

    def _bundle(self, chain: tuple[_Authority, ...]) -> tuple[bytes, ...]:
        der = serialization.Encoding.DER
        return (self.root_der, *(a.certificate.public_bytes(der) for a in chain))

    def issue_leaf(self, module_id: str, now: dt.datetime) -> tuple[IssuedLeaf, tuple[bytes, ...]]:
        """A fresh 3-hour leaf for ``module_id`` valid from ``now``, and the chain that issued it.

        The intermediates are renewed first if the instance certificate would not cover the whole
        leaf lifetime (or an injected clock went back before it), so a chain is never shorter-lived than its leaf. ``now`` is truncated to the
        second (X.509 time resolution), so a document timestamped ``now`` lies inside the leaf.
        """
        now = now.astimezone(dt.UTC).replace(microsecond=0)
        with self._lock:
            instance_cert = self._chain[2].certificate
            if (
                instance_cert.not_valid_after_utc < now + LEAF_LIFETIME
                or instance_cert.not_valid_before_utc > now
            ):
                self._chain = self._new_intermediates(now)
            chain = self._chain
        instance = chain[2]
        key = _new_key()
        leaf = _issue(
            _name(f"{module_id}.{self._region}.emulated", localised=True),
            key.public_key(),
            instance,
            signing_key=instance.key,
            not_before=now,
            lifetime=LEAF_LIFETIME,
            path_length=None,
            is_ca=False,
            key_ids=False,
        )
        return IssuedLeaf(leaf.public_bytes(serialization.Encoding.DER), key), self._bundle(chain)
