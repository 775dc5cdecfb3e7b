"""What a node's attestation document binds, and the one check of it (client and enclave alike).

A node answers ``Hello{nonce}`` with a fresh NSM document whose ``nonce`` is the asker's and whose
``user_data`` is the canonical CBOR map::

    {"v": 2, "node_id": text, "tls_spki_sha256": 32 bytes, "box_public_key": 32 bytes,
     "identity_public_key": 32 bytes}

``tls_spki_sha256`` ties the document to the TLS key of the node's server certificate (a parent
that terminates TLS itself cannot present a matching document: the NSM signs only what the enclave
asks, and the enclave's TLS key never leaves it). ``box_public_key`` is the node's per-boot X25519
key for end-to-end envelopes between enclaves. ``identity_public_key`` is the node's long-term
Ed25519 identity (created at its first boot, sealed with its state): it signs the node's state
statements, which peers keep as witnesses of each other's sealed state (:mod:`enclave.service.witness`),
and its endorsements as a key's mandatory participant (:mod:`enclave.service.endorsement`).
Version 2 added it; a version-1 binding is refused. :func:`check_identity_signature` is the one
check of anything that key signs.

:func:`check_binding` is the one check of a binding, run after the document's signature, chain and
policy have been verified (by :mod:`attestation`): by a client against the TLS session it holds,
and by an enclave against the peer a client relayed the document for.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from wire import cbor
from wire.checks import check_node_id
from wire.errors import MalformedMessageError, WireError

__all__ = [
    "BINDING_VERSION",
    "BindingMismatchError",
    "ChannelBinding",
    "IdentitySignatureError",
    "check_binding",
    "check_identity_signature",
    "spki_sha256",
]

BINDING_VERSION = 2
_FIELDS = frozenset({"v", "node_id", "tls_spki_sha256", "box_public_key", "identity_public_key"})


class BindingMismatchError(WireError):
    """A well-formed binding that names another node or another TLS key (``reason``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class IdentitySignatureError(WireError):
    """A signature that is not the given identity key's over the given statement."""


def check_identity_signature(identity_public_key: bytes, signature: bytes, message: bytes) -> None:
    """Raise :class:`IdentitySignatureError` unless ``signature`` is ``identity_public_key``'s
    Ed25519 signature over ``message`` (a domain-separated statement of the node's). The key
    comes from a verified document's binding (:class:`ChannelBinding`), never from the signer."""
    try:
        Ed25519PublicKey.from_public_bytes(identity_public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        raise IdentitySignatureError("the identity signature does not verify") from None


def spki_sha256(certificate_der: bytes) -> bytes:
    """SHA-256 of the certificate's DER SubjectPublicKeyInfo (what TLS proves possession of)."""
    certificate = x509.load_der_x509_certificate(certificate_der)
    spki = certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).digest()


@dataclass(frozen=True, slots=True)
class ChannelBinding:
    """The ``user_data`` of a node's service document; validated on construction."""

    node_id: str
    tls_spki_sha256: bytes
    box_public_key: bytes
    identity_public_key: bytes

    def __post_init__(self) -> None:
        check_node_id(self.node_id)
        if type(self.tls_spki_sha256) is not bytes or len(self.tls_spki_sha256) != 32:
            raise MalformedMessageError("tls_spki_sha256", "must be 32 bytes")
        if type(self.box_public_key) is not bytes or len(self.box_public_key) != 32:
            raise MalformedMessageError("box_public_key", "must be 32 bytes")
        if type(self.identity_public_key) is not bytes or len(self.identity_public_key) != 32:
            raise MalformedMessageError("identity_public_key", "must be 32 bytes")

    def encode(self) -> bytes:
        return cbor.dumps(
            {
                "v": BINDING_VERSION,
                "node_id": self.node_id,
                "tls_spki_sha256": self.tls_spki_sha256,
                "box_public_key": self.box_public_key,
                "identity_public_key": self.identity_public_key,
            }
        )

    @classmethod
    def decode(cls, data: bytes | None) -> ChannelBinding:
        if data is None:
            raise MalformedMessageError("user_data", "the document binds no channel")
        value = cbor.loads_map(data, what="user_data", fields=_FIELDS, version=BINDING_VERSION)
        return cls(
            value["node_id"],
            value["tls_spki_sha256"],
            value["box_public_key"],
            value["identity_public_key"],
        )


def check_binding(
    user_data: bytes | None, *, node_id: str, tls_certificate_der: bytes | None = None
) -> ChannelBinding:
    """The binding of a verified document, which must name ``node_id`` and, when the caller holds
    the TLS session, that session's server key (compared in constant time).

    Raises :class:`MalformedMessageError` for a malformed binding and
    :class:`BindingMismatchError` for a well-formed one that binds something else.
    """
    binding = ChannelBinding.decode(user_data)
    if binding.node_id != node_id:
        raise BindingMismatchError(f"the document names node {binding.node_id!r}")
    if tls_certificate_der is not None:
        try:
            actual = spki_sha256(tls_certificate_der)
        except ValueError:
            raise BindingMismatchError("the TLS peer certificate is malformed") from None
        if not hmac.compare_digest(actual, binding.tls_spki_sha256):
            raise BindingMismatchError("the document binds another TLS key than this session's")
    return binding
