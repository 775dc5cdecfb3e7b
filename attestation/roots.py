"""Pinned attestation roots: the trust anchor is a SHA-256 fingerprint, not a file.

A Nitro document carries its whole chain, root included, in ``cabundle``; anyone can mint a chain
that looks like AWS's. What makes a chain trustworthy is that its root is byte-for-byte a root we
pinned. By default that is only the AWS Nitro Enclaves root G1 (bundled as
``aws_nitro_root_g1.pem``, and checked against :data:`AWS_NITRO_ROOT_G1_SHA256` when loaded, so a
swapped file fails closed). Any other root — the emulated CA of a local "cloud" — must be passed
explicitly by the caller.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

__all__ = [
    "AWS_NITRO_ROOT_G1_SHA256",
    "TrustedRoots",
    "aws_nitro_root",
    "certificate_fingerprint",
    "load_pem_root",
]

#: SHA-256 of the DER of the AWS Nitro Enclaves root G1 (CN=aws.nitro-enclaves, 2019-2049).
AWS_NITRO_ROOT_G1_SHA256 = "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"
_AWS_ROOT_RESOURCE = "aws_nitro_root_g1.pem"


def certificate_fingerprint(der: bytes) -> str:
    """Lower-case hex SHA-256 of a certificate's DER encoding (the pin format)."""
    return hashlib.sha256(der).hexdigest()


@cache
def aws_nitro_root() -> x509.Certificate:
    """The bundled AWS Nitro root, refused unless its fingerprint is the pinned constant."""
    # Next to this module (package data); importlib.resources would also search test directories
    # named "attestation" that happen to be on sys.path.
    pem = Path(__file__).with_name(_AWS_ROOT_RESOURCE).read_bytes()
    root = x509.load_pem_x509_certificate(pem)
    fingerprint = certificate_fingerprint(root.public_bytes(Encoding.DER))
    if fingerprint != AWS_NITRO_ROOT_G1_SHA256:
        raise RuntimeError(
            f"bundled {_AWS_ROOT_RESOURCE} has fingerprint {fingerprint}, "
            f"expected {AWS_NITRO_ROOT_G1_SHA256}: the package is corrupted"
        )
    return root


def load_pem_root(path: str | Path) -> x509.Certificate:
    """Load one root certificate from a PEM file (for an explicitly configured root).

    Raises ``ValueError`` if the file holds no PEM certificate.
    """
    return x509.load_pem_x509_certificate(Path(path).read_bytes())


@dataclass(frozen=True, slots=True)
class TrustedRoots:
    """An immutable set of pinned roots, keyed by the SHA-256 fingerprint of their DER."""

    by_fingerprint: Mapping[str, x509.Certificate]

    @classmethod
    def of(cls, roots: Iterable[x509.Certificate]) -> TrustedRoots:
        """Pin exactly ``roots`` (at least one)."""
        pinned = {certificate_fingerprint(r.public_bytes(Encoding.DER)): r for r in roots}
        if not pinned:
            raise ValueError("at least one root must be pinned")
        return cls(by_fingerprint=MappingProxyType(pinned))

    @classmethod
    def aws(cls) -> TrustedRoots:
        """Only the AWS Nitro Enclaves root G1: the default of every verifier."""
        return cls.of([aws_nitro_root()])

    def get(self, fingerprint: str) -> x509.Certificate | None:
        """The pinned root with this fingerprint, or ``None``."""
        return self.by_fingerprint.get(fingerprint)

    def __iter__(self) -> Iterator[str]:
        return iter(self.by_fingerprint)

    def __len__(self) -> int:
        return len(self.by_fingerprint)
