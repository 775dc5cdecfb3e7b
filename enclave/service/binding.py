"""What a node's attestation document binds, and how one enclave checks another's.

A node answers a client's ``Hello{nonce}`` with a fresh NSM document whose ``nonce`` is the
client's and whose ``user_data`` is the canonical CBOR map::

    {"v": 1, "node_id": text, "tls_spki_sha256": 32 bytes, "box_public_key": 32 bytes}

``tls_spki_sha256`` ties the document to the TLS key of *this* connection's server certificate (a
parent that terminates TLS itself cannot present a matching document: the NSM signs only what the
enclave asks, and the enclave's TLS key never leaves it). ``box_public_key`` is the node's per-boot
X25519 key for end-to-end envelopes between enclaves (:mod:`enclave.service.envelope`).

:class:`PeerVerifier` is an enclave's own check of a peer's document, relayed by the untrusted
client: the chain must end at the root pinned in the enclave's measured image config, PCR0/1/2 must
equal, as a whole set, the enclave's OWN measured values or one of the ``peer_releases`` its
measured image lists (only code its builder vouched for can be a peer), the document
must be younger than the image's maximum age, and its binding must name the expected node.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from attestation.errors import AttestationError
from attestation.policy import AttestationPolicy
from attestation.verifier import AttestationVerifier
from enclave.service.errors import MalformedMessageError, PeerRefusedError
from enclave.service.messages import check_node_id

__all__ = ["BINDING_VERSION", "ChannelBinding", "PeerVerifier", "spki_sha256"]

BINDING_VERSION = 1
_KEYS = frozenset({"v", "node_id", "tls_spki_sha256", "box_public_key"})
MEASURED_PCRS = (0, 1, 2)


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

    def __post_init__(self) -> None:
        check_node_id(self.node_id)
        if type(self.tls_spki_sha256) is not bytes or len(self.tls_spki_sha256) != 32:
            raise MalformedMessageError("tls_spki_sha256", "must be 32 bytes")
        if type(self.box_public_key) is not bytes or len(self.box_public_key) != 32:
            raise MalformedMessageError("box_public_key", "must be 32 bytes")

    def encode(self) -> bytes:
        return cbor2.dumps(
            {
                "v": BINDING_VERSION,
                "node_id": self.node_id,
                "tls_spki_sha256": self.tls_spki_sha256,
                "box_public_key": self.box_public_key,
            },
            canonical=True,
        )

    @classmethod
    def decode(cls, data: bytes | None) -> ChannelBinding:
        if data is None:
            raise MalformedMessageError("user_data", "the document binds no channel")
        try:
            value = cbor2.loads(data)
        except (cbor2.CBORDecodeError, ValueError, TypeError, EOFError, RecursionError):
            raise MalformedMessageError("user_data", "not CBOR") from None
        if not isinstance(value, dict) or set(value) != _KEYS:
            raise MalformedMessageError("user_data", "missing or unknown fields")
        if cbor2.dumps(value, canonical=True) != data:
            raise MalformedMessageError("user_data", "not canonical CBOR")
        if value["v"] != BINDING_VERSION:
            raise MalformedMessageError("user_data", "unknown binding version")
        return cls(value["node_id"], value["tls_spki_sha256"], value["box_public_key"])


@dataclass(frozen=True, slots=True)
class PeerVerifier:
    """An enclave's check of a peer's (client-relayed) document; see the module docstring."""

    verifier: AttestationVerifier
    own_pcrs: Mapping[int, bytes]
    max_age: dt.timedelta
    clock: Callable[[], dt.datetime]
    #: Whole PCR sets of other releases accepted as peers (from the measured image config).
    peer_releases: tuple[Mapping[int, bytes], ...] = ()

    def __post_init__(self) -> None:
        missing = [i for i in MEASURED_PCRS if i not in self.own_pcrs]
        if missing:
            raise ValueError(f"own PCRs {missing} unknown: the node has not attested")
        if any(i not in release for release in self.peer_releases for i in MEASURED_PCRS):
            raise ValueError("every peer release must name PCR0, PCR1 and PCR2")
        object.__setattr__(self, "own_pcrs", MappingProxyType(dict(self.own_pcrs)))
        releases = tuple(MappingProxyType(dict(release)) for release in self.peer_releases)
        object.__setattr__(self, "peer_releases", releases)

    def verify(self, node_id: str, document: bytes) -> ChannelBinding:
        """Return the peer's binding, or raise :class:`PeerRefusedError` naming the peer and why."""
        now = self.clock()
        own = {i: self.own_pcrs[i] for i in MEASURED_PCRS}
        policy = AttestationPolicy(pcr_sets=(own, *self.peer_releases), max_age=self.max_age)
        try:
            verified = self.verifier.verify(document, at=now)
            policy.check(verified, now=now)
            binding = ChannelBinding.decode(verified.payload.user_data)
        except (AttestationError, MalformedMessageError) as error:
            raise PeerRefusedError(node_id, f"{type(error).__name__}: {error}") from None
        if binding.node_id != node_id:
            raise PeerRefusedError(node_id, f"its document names node {binding.node_id!r}")
        return binding
