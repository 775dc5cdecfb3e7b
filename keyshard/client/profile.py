"""The cluster profile: what a client needs to reach and trust a cluster's nodes.

``keyshard dev up`` writes it for an emulated cluster (``<dir>/profile.json``), and the
Terraform ``cluster-profile`` module renders the same format for a real one; clients load it with
:meth:`ClusterProfile.load`. It names each node's endpoint and the trust a client must pin before
talking to any of them: the attestation root (by SHA-256 fingerprint, with its PEM) and the PCR
sets of the accepted releases. :meth:`ClusterProfile.verifier` and :meth:`ClusterProfile.policy`
turn those into the attestation library's objects, so a client never assembles trust by hand.

Format (version 2)::

    {"version": 2, "mode": "emulated", "region": ..., "kms_endpoint": "https://127.0.0.1:P",
     "attestation_root": {"sha256": hex, "pem": text, "path": file},
     "expected_pcrs": [{"0": hex, "1": hex, "2": hex}, ...],
     "nodes": [{"node_id": ..., "endpoint": "127.0.0.1:P", "enclave": {"cid": 16, "port": 5000},
                "kms_key_arn": ...}]}

``expected_pcrs`` lists one WHOLE PCR set per accepted release (newest first); a document is
accepted only if every PCR of one set matches (never PCR0 of one release with PCR1 of another), so
during a rolling upgrade a client reaches nodes on either release. Version 1 (a single
``{"0": hex, ...}`` map) still loads, as a one-element list. The version was bumped rather than the
field's type changed silently: a version-1 reader given a list fails on "unknown profile version"
instead of a confusing type error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from attestation.policy import AttestationPolicy
from attestation.roots import TrustedRoots, certificate_fingerprint
from attestation.verifier import AttestationVerifier
from keyshard.client.errors import ProfileError

__all__ = ["ClusterProfile", "NodeEntry", "ProfileError"]

PROFILE_VERSION = 2
_SINGLE_SET_VERSION = 1
#: Every accepted set pins at least these (a release is identified by its code, kernel, app).
_REQUIRED_PCRS = frozenset({0, 1, 2})


@dataclass(frozen=True, slots=True)
class NodeEntry:
    node_id: str
    host: str
    port: int
    enclave_cid: int
    enclave_port: int
    kms_key_arn: str
    #: The node service's TCP endpoint port (attested TLS channel), if the node serves it.
    service_port: int | None = None


@dataclass(frozen=True, slots=True)
class ClusterProfile:
    mode: str
    region: str
    kms_endpoint: str
    root_pem: bytes
    root_sha256: str
    root_path: str
    expected_pcrs: tuple[Mapping[int, bytes], ...]
    nodes: tuple[NodeEntry, ...]

    def __post_init__(self) -> None:
        if not self.expected_pcrs:
            raise ProfileError("expected_pcrs lists no accepted release")
        for pcr_set in self.expected_pcrs:
            missing = sorted(_REQUIRED_PCRS - set(pcr_set))
            if missing:
                raise ProfileError(f"an accepted PCR set lacks PCR{missing}")
        frozen = tuple(MappingProxyType(dict(pcr_set)) for pcr_set in self.expected_pcrs)
        object.__setattr__(self, "expected_pcrs", frozen)
        try:
            root = x509.load_pem_x509_certificate(self.root_pem)
        except ValueError:
            raise ProfileError("attestation root is not a PEM certificate") from None
        actual = certificate_fingerprint(root.public_bytes(Encoding.DER))
        if actual != self.root_sha256:
            raise ProfileError(f"attestation root is {actual}, profile pins {self.root_sha256}")

    def verifier(self) -> AttestationVerifier:
        """A verifier pinned to this cluster's (emulated) attestation root only."""
        return AttestationVerifier(TrustedRoots.of([x509.load_pem_x509_certificate(self.root_pem)]))

    def policy(self, **checks: Any) -> AttestationPolicy:
        """One accepted release's PCRs as a whole set, plus any further checks (nonce, max_age...)."""
        return AttestationPolicy(pcr_sets=self.expected_pcrs, **checks)

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": PROFILE_VERSION,
                "mode": self.mode,
                "region": self.region,
                "kms_endpoint": self.kms_endpoint,
                "attestation_root": {
                    "sha256": self.root_sha256,
                    "pem": self.root_pem.decode("ascii"),
                    "path": self.root_path,
                },
                "expected_pcrs": [
                    {str(index): value.hex() for index, value in sorted(pcr_set.items())}
                    for pcr_set in self.expected_pcrs
                ],
                "nodes": [
                    {
                        "node_id": node.node_id,
                        "endpoint": f"{node.host}:{node.port}",
                        "enclave": {"cid": node.enclave_cid, "port": node.enclave_port},
                        "kms_key_arn": node.kms_key_arn,
                    }
                    | (
                        {}
                        if node.service_port is None
                        else {"service_endpoint": f"{node.host}:{node.service_port}"}
                    )
                    for node in self.nodes
                ],
            },
            indent=2,
        )

    def write(self, path: Path) -> None:
        temporary = path.with_suffix(".tmp")
        temporary.write_text(self.to_json(), encoding="utf-8")
        temporary.replace(path)

    @classmethod
    def load(cls, path: Path) -> ClusterProfile:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ProfileError(f"cannot read {path}: {type(error).__name__}") from None
        try:
            if raw["version"] not in (PROFILE_VERSION, _SINGLE_SET_VERSION):
                raise ProfileError(f"unknown profile version {raw['version']!r}")
            sets = raw["expected_pcrs"]
            if raw["version"] == _SINGLE_SET_VERSION:
                sets = [sets]
            if not isinstance(sets, list) or not all(isinstance(one, dict) for one in sets):
                raise ProfileError(f"malformed profile {path}: expected_pcrs is not a list of sets")
            root = raw["attestation_root"]
            nodes = []
            for entry in raw["nodes"]:
                host, _, port = str(entry["endpoint"]).rpartition(":")
                service = entry.get("service_endpoint")
                nodes.append(
                    NodeEntry(
                        str(entry["node_id"]),
                        host,
                        int(port),
                        int(entry["enclave"]["cid"]),
                        int(entry["enclave"]["port"]),
                        str(entry["kms_key_arn"]),
                        None if service is None else int(str(service).rpartition(":")[2]),
                    )
                )
            return cls(
                mode=str(raw["mode"]),
                region=str(raw["region"]),
                kms_endpoint=str(raw["kms_endpoint"]),
                root_pem=str(root["pem"]).encode("ascii"),
                root_sha256=str(root["sha256"]),
                root_path=str(root["path"]),
                expected_pcrs=tuple(
                    {int(index): bytes.fromhex(value) for index, value in one.items()}
                    for one in sets
                ),
                nodes=tuple(nodes),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ProfileError(
                f"malformed profile {path}: {type(error).__name__} {error}"
            ) from None
