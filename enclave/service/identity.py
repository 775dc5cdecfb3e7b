"""A node's per-boot service keys, and the TLS 1.3 mutual-authentication context built from them.

At every boot (after unsealing) the enclave creates an ECDSA P-256 TLS key with a self-signed
certificate and an X25519 box key. Neither is sealed: a restarted node proves itself again with a
fresh document binding fresh keys. The document also binds the node's long-term identity key
(:class:`~enclave.node_state.NodeIdentity`, sealed), which signs its state statements. Clients trust the TLS key only through the attestation binding
(:mod:`enclave.service.binding`), never through a CA.

The server context trusts exactly the client certificates listed in the measured image config
(``authorized_clients``) as trust anchors and requires one (``CERT_REQUIRED``): a parent cannot add
its own client without changing PCR0. Python's :mod:`ssl` loads a private key from a path only; the
enclave has no disk of its own, so the PEM is written to an anonymous ``memfd`` and never touches
a filesystem.
"""

from __future__ import annotations

import datetime as dt
import os
import ssl
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from nacl.public import PrivateKey

from enclave.node_state import NodeIdentity
from wire.binding import ChannelBinding, spki_sha256
from wire.tls import self_signed_certificate

__all__ = ["ServiceIdentity", "self_signed_certificate", "server_context"]


def _load_chain_from_memory(context: ssl.SSLContext, pem: bytes) -> None:
    """``load_cert_chain`` from memory: an anonymous memfd (RAM only, never linked into a
    filesystem) that OpenSSL opens by its ``/proc/self/fd/N`` path, closed right after."""
    descriptor = os.memfd_create("keyshard-tls", os.MFD_CLOEXEC)
    try:
        os.write(descriptor, pem)
        context.load_cert_chain(f"/proc/self/fd/{descriptor}")
    finally:
        os.close(descriptor)


@dataclass(frozen=True, slots=True, repr=False)
class ServiceIdentity:
    """The per-boot keys; ``repr`` shows public parts only."""

    node_id: str
    tls_key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    box_key: PrivateKey
    #: The long-term identity (unsealed at boot); signs state statements.
    node_identity: NodeIdentity

    @classmethod
    def generate(
        cls, node_id: str, now: dt.datetime, node_identity: NodeIdentity
    ) -> ServiceIdentity:
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = self_signed_certificate(key, node_id, now)
        return cls(node_id, key, certificate, PrivateKey.generate(), node_identity)

    @property
    def certificate_der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    def binding(self) -> ChannelBinding:
        return ChannelBinding(
            self.node_id,
            spki_sha256(self.certificate_der),
            bytes(self.box_key.public_key),
            self.node_identity.public_key,
        )

    def server_context(self, authorized_clients: Sequence[bytes]) -> ssl.SSLContext:
        return server_context(self.tls_key, self.certificate, authorized_clients)

    def __repr__(self) -> str:
        return f"ServiceIdentity({self.node_id}, <redacted>)"


def server_context(
    key: ec.EllipticCurvePrivateKey,
    certificate: x509.Certificate,
    authorized_clients: Sequence[bytes],
) -> ssl.SSLContext:
    """TLS 1.3 only, client certificate required and pinned to ``authorized_clients`` (PEMs)."""
    if not authorized_clients:
        raise ValueError("no authorised clients: the service would refuse everyone")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.maximum_version = ssl.TLSVersion.TLSv1_3
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=b"".join(authorized_clients).decode("ascii"))
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ) + certificate.public_bytes(serialization.Encoding.PEM)
    _load_chain_from_memory(context, pem)
    return context
