"""Shared pieces for the node-service unit tests: an emulated CA and NSMs issuing real documents.

Documents come from the real emulated NSM (signed by an ephemeral emulated root), so every check
below runs the real verifier; nothing is mocked.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from nacl.public import PrivateKey

from attestation.emulated_ca import EmulatedCa
from attestation.nsm.client import NsmClient
from attestation.nsm.emulated import EmulatedNsm
from attestation.roots import TrustedRoots
from attestation.verifier import AttestationVerifier
from enclave.service.binding import ChannelBinding
from enclave.service.identity import ServiceIdentity


def pcrs(tag: bytes) -> dict[int, bytes]:
    """Boot PCR0..15 derived from ``tag`` (a different tag: a different image)."""
    return {i: hashlib.sha384(tag + bytes([i])).digest() for i in range(16)}


RELEASED = pcrs(b"released image")
OTHER = pcrs(b"another image")


@dataclass
class Node:
    """One emulated enclave boot: its NSM and its per-boot service identity."""

    node_id: str
    nsm: NsmClient
    identity: ServiceIdentity

    @property
    def box_key(self) -> PrivateKey:
        return self.identity.box_key

    def document(self, nonce: bytes | None = None, binding: ChannelBinding | None = None) -> bytes:
        payload = (binding or self.identity.binding()).encode()
        return self.nsm.get_attestation_document(payload, nonce, None)


def boot(ca: EmulatedCa, node_id: str, image_pcrs: dict[int, bytes] = RELEASED) -> Node:
    now = dt.datetime.now(dt.UTC)
    return Node(
        node_id, NsmClient(EmulatedNsm(ca, image_pcrs)), ServiceIdentity.generate(node_id, now)
    )


def verifier_for(ca: EmulatedCa) -> AttestationVerifier:
    return AttestationVerifier(TrustedRoots.of([ca.root_certificate]))


def certificate_der(node: Node) -> bytes:
    return node.identity.certificate.public_bytes(serialization.Encoding.DER)
