"""The enclave's configuration and the ONE place where emulated and real mode differ.

Three inputs, trusted differently:

* :class:`ImageConfig` — ``enclave/image.json`` in the enclave image, written by the image builder.
  It is part of the measured image (PCR0 in the EIF; the emulated measurement of the image directory), so
  KMS releases the data key only to an enclave running with exactly these values. It holds the trust
  anchors (the attestation root the enclave pins, the clients it admits, in emulation the CA of the
  emulated KMS's TLS certificate) and the cluster table: every node id and the KMS key ARN that seals
  that node's state. Every node runs the same image.
* :class:`LaunchConfig` — the command line: mode, and in emulation the CID and socket directory. A
  Nitro EIF's command line is fixed (``--mode nitro``), the same on every node.
* the node id — named at boot by the untrusted parent over host services (``GetLaunch``), in both
  modes. The enclave accepts it only if the table lists it and then uses the table's key and region
  (:meth:`ImageConfig.node_key`); a parent can never point the enclave at a key of its choosing.

:func:`select_seams` is the single switch: transport, NSM and KMS endpoint are chosen here from
``mode`` and nowhere else (the fourth seam, the launcher, lives in the parent). The KMS endpoint's
host depends on the node's region, so :class:`Seams` resolves it once the node is known. In both
modes boto3 speaks TLS to ``kms.<region>.amazonaws.com`` through the tunnel; the KMS seam is only
which certificate authority the enclave trusts for it (AWS's, from the default bundle, or the
emulated KMS's dev CA from the measured image) and where the parent routes the bytes.
"""

from __future__ import annotations

import argparse
import enum
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from cryptography import x509

from attestation.nsm.dev import DeviceOs, DevNsm
from attestation.nsm.raw import RawNsm
from enclave.errors import ConfigError
from enclave.nsm_socket import SocketNsm
from transport.address import FIRST_ENCLAVE_CID, U32_MAX
from transport.base import Transport
from transport.unix import UnixSocketTransport
from transport.vsock import SocketFactory, VsockTransport

__all__ = [
    "IMAGE_CONFIG_PATH",
    "ImageConfig",
    "KmsRoute",
    "LaunchConfig",
    "Mode",
    "NodeKey",
    "Seams",
    "parse_launch_args",
    "select_seams",
]

#: Inside the ``enclave`` package, so the measurement (PCR0 and PCR2) covers it.
IMAGE_CONFIG_PATH = "enclave/image.json"
#: The KMS TCP port the parent's outbound proxy listens on for this enclave (vsock port).
KMS_PROXY_PORT = 8000
#: The version of ``image.json``: 2 carries the cluster table (format 1 baked one node's values).
IMAGE_FORMAT = 2
#: The CID the parent's launcher gives the enclave unless told otherwise.
DEFAULT_CID = 16
_IMAGE_KEYS = frozenset(
    {
        "format",
        "attestation_root_pem",
        "max_document_age_seconds",
        "nodes",
        "authorized_clients",
        "peer_releases",
        "kms_ca_pem",
    }
)
#: A peer release is identified by PCR0/1/2 (image, kernel, application); PCR8 (signing
#: certificate) may be pinned too. All are SHA-384 values.
_PEER_REQUIRED = frozenset({0, 1, 2})
_PEER_ALLOWED = frozenset({0, 1, 2, 8})
_PCR_LENGTH = 48
_NODE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d")
_KEY_ARN = re.compile(r"arn:aws(-[a-z]+)*:kms:[a-z]{2}(-[a-z]+)+-\d:\d{12}:key/[A-Za-z0-9-]{1,128}")


class Mode(enum.Enum):
    EMULATED = "emulated"
    NITRO = "nitro"


@dataclass(frozen=True, slots=True)
class NodeKey:
    """One row of the image's cluster table: a node id and the KMS key that seals its state.

    The region is the key ARN's own (KMS keys are regional), so the table cannot disagree with
    itself about where a node's key lives.
    """

    node_id: str
    kms_key_arn: str

    def __post_init__(self) -> None:
        if type(self.node_id) is not str or not _NODE_ID.fullmatch(self.node_id):
            raise ConfigError("node_id", "must be 1-64 of [A-Za-z0-9._-]")
        if type(self.kms_key_arn) is not str or not _KEY_ARN.fullmatch(self.kms_key_arn):
            raise ConfigError(
                f"nodes.{self.node_id}",
                "must be a KMS key ARN arn:aws:kms:<region>:<12-digit account>:key/<id>",
            )

    @property
    def region(self) -> str:
        return self.kms_key_arn.split(":")[3]


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """Trust anchors and the cluster table, baked into the measured image (format 2).

    Every node of a cluster runs this same image — one PCR0, which clients pin and peers compare —
    so nothing per-node is in it except as a row of ``nodes``: node id -> that node's KMS key ARN.
    At boot the parent names the node (:meth:`node_key`); the enclave accepts the name only if the
    table lists it and then uses the table's key and region, never a key the parent names.

    Why a lying parent gains nothing: naming another node's id makes the enclave ask KMS for *that*
    node's key, but the enclave calls KMS with the credentials its own parent relays (its own
    instance role), and each key's policy admits only its own node's role — so KMS answers
    ``AccessDenied`` and the boot fails. Even a parent holding another account's credentials would
    only obtain a data key sealed to this enclave's attested RSA key (``Recipient``), i.e. run that
    node faithfully, inside a genuine enclave, on the blobs it serves — which the owner of that
    role could do anyway. Naming an id outside the table is refused before anything else.

    Format 1 (one node's launch values and a key ARN prefix) is refused with a message saying to
    rebuild: supporting both would keep alive the per-node images that cannot form a cluster, and
    an image is rebuilt for every release anyway.

    ``peer_releases`` is an optional format-2 field, not a format 3: the field is additive, the
    image.json is always read by the code of the same release (both are in one measured image),
    and leaving it out when empty keeps every existing image's bytes, hence its PCR0, unchanged.
    """

    attestation_root_pem: bytes
    nodes: Mapping[str, str]
    max_document_age_seconds: int = 300
    #: PEM certificates of the clients the node service accepts (TLS client authentication pinned
    #: by value). Measured with the image, so a parent cannot add its own client without changing
    #: PCR0. Empty: the node service is not started.
    authorized_clients: tuple[bytes, ...] = ()
    #: Whole PCR sets of OTHER releases this node accepts as DKG/presign peers, besides its own
    #: (see :class:`~enclave.service.binding.PeerVerifier`). Measured with the image, so only the
    #: release's builder decides them. Release N+1 can list release N (known when N+1 is built);
    #: release N can never list N+1, so old nodes accept only old peers.
    peer_releases: tuple[Mapping[int, bytes], ...] = ()
    #: Emulation only: the PEM certificate of the dev CA that issued the emulated KMS's TLS
    #: certificate — the one CA the enclave then trusts for KMS. Measured with the image, so a
    #: parent cannot substitute its own KMS without changing PCR0. Absent (None) in a Nitro image,
    #: which trusts AWS's certificate through the default bundle; optional like ``peer_releases``
    #: and left out of the JSON when absent, so existing images keep their bytes.
    kms_ca_pem: bytes | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.nodes, Mapping) or not self.nodes:
            raise ConfigError("nodes", "must map at least one node id to its KMS key ARN")
        table = {node_id: self.nodes[node_id] for node_id in sorted(self.nodes)}
        for node_id, arn in table.items():
            NodeKey(node_id, arn)
        object.__setattr__(self, "nodes", MappingProxyType(table))
        if type(self.max_document_age_seconds) is not int or not (
            1 <= self.max_document_age_seconds <= 3600
        ):
            raise ConfigError("max_document_age_seconds", "must be an integer in 1..3600")
        try:
            x509.load_pem_x509_certificate(self.attestation_root_pem)
        except (ValueError, TypeError):
            raise ConfigError("attestation_root_pem", "not a PEM X.509 certificate") from None
        clients = tuple(self.authorized_clients)
        for pem in clients:
            try:
                x509.load_pem_x509_certificate(pem)
            except (ValueError, TypeError):
                raise ConfigError("authorized_clients", "not a PEM X.509 certificate") from None
        object.__setattr__(self, "authorized_clients", clients)
        object.__setattr__(self, "peer_releases", _peer_releases(self.peer_releases))
        if self.kms_ca_pem is not None:
            _check_kms_ca(self.kms_ca_pem)

    @property
    def attestation_root(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.attestation_root_pem)

    def node_key(self, node_id: str) -> NodeKey:
        """The table's row for ``node_id`` (a claim from the untrusted parent), or refuse it."""
        arn = self.nodes.get(node_id) if type(node_id) is str else None
        if arn is None:
            raise ConfigError(
                "node_id",
                f"{node_id!r} is not in the image's cluster table ({', '.join(self.nodes)})",
            )
        return NodeKey(node_id, arn)

    @classmethod
    def load(cls, image_root: Path) -> ImageConfig:
        path = image_root / IMAGE_CONFIG_PATH
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise ConfigError("image.json", f"cannot read {path}") from None
        if not isinstance(raw, dict):
            raise ConfigError("image.json", "must be a JSON object")
        if "format" not in raw and ("launch" in raw or "kms_key_arn_prefix" in raw):
            raise ConfigError(
                "format",
                "format 1 image.json (one node's launch values) is no longer accepted: rebuild the "
                "image with the cluster table (tools/image_config.py write --node ID=KEY_ARN ...)",
            )
        if raw.get("format") != IMAGE_FORMAT or type(raw.get("format")) is not int:
            raise ConfigError("format", f"must be {IMAGE_FORMAT}, got {raw.get('format')!r}")
        if set(raw) - _IMAGE_KEYS or not {"attestation_root_pem", "nodes"} <= set(raw):
            raise ConfigError("image.json", "unknown or missing fields")
        nodes = raw["nodes"]
        if not isinstance(nodes, dict) or not all(isinstance(a, str) for a in nodes.values()):
            raise ConfigError("nodes", "must map node ids to KMS key ARNs")
        root = raw["attestation_root_pem"]
        if not isinstance(root, str) or "BEGIN CERTIFICATE" not in root:
            raise ConfigError("attestation_root_pem", "must be a PEM certificate")
        clients = raw.get("authorized_clients", [])
        if not isinstance(clients, list) or not all(isinstance(c, str) for c in clients):
            raise ConfigError("authorized_clients", "must be a list of PEM certificates")
        releases = raw.get("peer_releases", [])
        if not isinstance(releases, list) or not all(isinstance(r, dict) for r in releases):
            raise ConfigError("peer_releases", "must be a list of {index: hex} PCR sets")
        parsed: list[dict[int, bytes]] = []
        for release in releases:
            try:
                parsed.append({int(i): bytes.fromhex(v) for i, v in release.items()})
            except (TypeError, ValueError):
                raise ConfigError("peer_releases", "PCR indices and hex values expected") from None
        kms_ca = raw.get("kms_ca_pem")
        if kms_ca is not None and not isinstance(kms_ca, str):
            raise ConfigError("kms_ca_pem", "must be a PEM certificate")
        return cls(
            root.encode("ascii"),
            nodes,
            raw.get("max_document_age_seconds", 300),
            tuple(c.encode("ascii") for c in clients),
            tuple(parsed),
            kms_ca_pem=None if kms_ca is None else kms_ca.encode("ascii"),
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": IMAGE_FORMAT,
                "attestation_root_pem": self.attestation_root_pem.decode("ascii"),
                "max_document_age_seconds": self.max_document_age_seconds,
                "nodes": dict(self.nodes),
                "authorized_clients": [pem.decode("ascii") for pem in self.authorized_clients],
            }
            # Absent when empty, so images that accept no other release keep their exact bytes.
            | (
                {
                    "peer_releases": [
                        {str(i): v.hex() for i, v in sorted(release.items())}
                        for release in self.peer_releases
                    ]
                }
                if self.peer_releases
                else {}
            )
            | ({} if self.kms_ca_pem is None else {"kms_ca_pem": self.kms_ca_pem.decode("ascii")}),
            indent=2,
            sort_keys=True,
        )


def _check_kms_ca(pem: bytes) -> None:
    """Exactly one PEM certificate, of a CA: what the enclave's TLS client will trust for KMS."""
    try:
        certificates = x509.load_pem_x509_certificates(pem)
    except (ValueError, TypeError):
        raise ConfigError("kms_ca_pem", "not a PEM X.509 certificate") from None
    if len(certificates) != 1:
        raise ConfigError(
            "kms_ca_pem", f"must hold exactly one certificate, not {len(certificates)}"
        )
    try:
        constraints = certificates[0].extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.value.ca:
        raise ConfigError("kms_ca_pem", "is not a CA certificate (basicConstraints cA)")


def _peer_releases(
    releases: Sequence[Mapping[int, bytes]],
) -> tuple[Mapping[int, bytes], ...]:
    frozen = []
    for release in releases:
        if not isinstance(release, Mapping) or not _PEER_REQUIRED <= set(release) <= _PEER_ALLOWED:
            raise ConfigError("peer_releases", "each set needs PCR0, 1, 2 (and at most PCR8)")
        for value in release.values():
            if type(value) is not bytes or len(value) != _PCR_LENGTH:
                raise ConfigError("peer_releases", f"PCR values must be {_PCR_LENGTH} bytes")
        frozen.append(MappingProxyType(dict(sorted(release.items()))))
    return tuple(frozen)


@dataclass(frozen=True, slots=True)
class LaunchConfig:
    """The enclave process's own parameters (command line), validated on construction.

    Only what the launcher seam decides: the mode, and in emulation the socket directory and CID
    the emulated bus needs. A Nitro EIF's command line is fixed (``--mode nitro``) and identical
    on every node; which node this is arrives at boot from the parent (``GetLaunch``).
    """

    mode: Mode
    cid: int = DEFAULT_CID
    runtime_dir: Path | None = None

    def __post_init__(self) -> None:
        if not FIRST_ENCLAVE_CID <= self.cid < U32_MAX:
            raise ConfigError("cid", f"{self.cid} is not an enclave CID")
        if (self.mode is Mode.EMULATED) != (self.runtime_dir is not None):
            raise ConfigError("runtime_dir", "required in emulated mode, refused in nitro mode")


def parse_launch_args(argv: Sequence[str]) -> LaunchConfig:
    """Parse ``--mode`` [``--cid``] [``--runtime-dir``]; anything else is refused."""
    parser = argparse.ArgumentParser(prog="python -m enclave", exit_on_error=False)
    parser.add_argument("--mode", choices=[m.value for m in Mode], required=True)
    parser.add_argument("--cid", type=int, default=DEFAULT_CID)
    parser.add_argument("--runtime-dir")
    try:
        args = parser.parse_args(list(argv))
    except (argparse.ArgumentError, SystemExit) as error:
        raise ConfigError("argv", str(error)) from None
    return LaunchConfig(
        mode=Mode(args.mode),
        cid=args.cid,
        runtime_dir=None if args.runtime_dir is None else Path(args.runtime_dir),
    )


@dataclass(frozen=True, slots=True)
class KmsRoute:
    """How boto3 inside the enclave reaches KMS through the loopback tunnel, in both modes.

    boto3 speaks HTTPS to ``kms.<region>.amazonaws.com`` through the tunnel used as an HTTP
    ``CONNECT`` proxy: TLS runs end to end between boto3 and KMS with the real host name, and the
    enclave needs no DNS, no ``/etc/hosts`` entry and no privileged port. The tunnel accepts
    ``CONNECT`` to that one host only; the parent moves the TLS bytes to wherever its route points.
    ``ca_pem`` is the one CA boto3 trusts for that certificate: None for AWS's (the default
    bundle, Nitro), the image's dev CA in emulation — so a parent that routes KMS to a server of
    its own fails the handshake inside the enclave in either mode.
    """

    public_host: str
    ca_pem: bytes | None = None

    def endpoint_url(self, tunnel_port: int) -> str:
        return f"https://{self.public_host}"

    def proxy_url(self, tunnel_port: int) -> str:
        return f"http://127.0.0.1:{tunnel_port}"

    @property
    def connect_target(self) -> tuple[str, int]:
        return (self.public_host, 443)


@dataclass(frozen=True, slots=True)
class Seams:
    """What differs between modes, as seen from inside the enclave."""

    transport: Transport
    nsm: RawNsm
    #: Nitro: AWS's public KMS, verified with the default CA bundle; emulated: the emulated KMS,
    #: verified with the dev CA measured into the image.
    public_kms: bool

    def kms_route(self, region: str, kms_ca_pem: bytes | None) -> KmsRoute:
        """The route to KMS in ``region`` — the region of this node's key, known once the parent
        has named the node (the same image serves nodes in different regions) — trusting
        ``kms_ca_pem`` (the image's) for the KMS certificate.

        Fail closed: an emulated image must carry its KMS CA (there is no plain-HTTP route any
        more), and a Nitro image must not (it would trust a dev CA for AWS's host name)."""
        if not _REGION.fullmatch(region):
            raise ConfigError("region", f"{region!r} is not an AWS region name")
        if self.public_kms and kms_ca_pem is not None:
            raise ConfigError("kms_ca_pem", "a Nitro image trusts AWS's KMS certificate only")
        if not self.public_kms and kms_ca_pem is None:
            raise ConfigError("kms_ca_pem", "an emulated image must pin the emulated KMS's CA")
        return KmsRoute(f"kms.{region}.amazonaws.com", kms_ca_pem)


def select_seams(
    config: LaunchConfig,
    *,
    nsm_device: DeviceOs | None = None,
    vsock_socket_factory: SocketFactory | None = None,
) -> Seams:
    """Choose transport, NSM and KMS endpoint for ``config.mode`` — the only mode switch.

    ``nsm_device`` and ``vsock_socket_factory`` replace the operating system at the real mode's
    system boundary (``/dev/nsm`` and ``AF_VSOCK``) so tests can drive the real-mode wiring.
    """
    if config.mode is Mode.EMULATED:
        if config.runtime_dir is None:  # pragma: no cover -- LaunchConfig refuses it
            raise ConfigError("runtime_dir", "required in emulated mode")
        unix = UnixSocketTransport(config.runtime_dir, local_cid=config.cid)
        return Seams(unix, SocketNsm(unix), public_kms=False)
    vsock = (
        VsockTransport()
        if vsock_socket_factory is None
        else VsockTransport(socket_factory=vsock_socket_factory)
    )
    return Seams(vsock, DevNsm(device=nsm_device), public_kms=True)
