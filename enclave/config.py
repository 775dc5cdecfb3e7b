"""The enclave's configuration and the ONE place where emulated and real mode differ.

Two inputs, trusted differently:

* :class:`ImageConfig` — ``enclave/image.json`` in the enclave image, written by the image builder.
  It is part of the measured image (PCR0 in the EIF; the emulated measurement of the image directory), so
  KMS releases the data key only to an enclave running with exactly these values. It holds the trust
  anchors: the attestation root the enclave pins, and the KMS key ARN prefix (account and region)
  it accepts keys from.
* :class:`LaunchConfig` — the command line: node id, KMS key id, mode, CID, runtime directory. In
  emulation it comes from the untrusted parent's launcher; in a Nitro EIF it is the image's baked-in
  command (measured). Either way it is checked against the image config: a key outside the trusted
  account/region is refused, because a parent that could point the enclave at a key *it* controls
  could decrypt the data key itself.

:func:`select_seams` is the single switch: transport, NSM and KMS endpoint are chosen here from
``mode`` and nowhere else (the fourth seam, the launcher, lives in the parent).
"""

from __future__ import annotations

import argparse
import enum
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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
    "Seams",
    "parse_launch_args",
    "select_seams",
]

#: Inside the ``enclave`` package, so the measurement (PCR0 and PCR2) covers it.
IMAGE_CONFIG_PATH = "enclave/image.json"
#: The KMS TCP port the parent's outbound proxy listens on for this enclave (vsock port).
KMS_PROXY_PORT = 8000
_LAUNCH_KEYS = frozenset({"node_id", "kms_key_id", "region", "cid"})
_NODE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d")


class Mode(enum.Enum):
    EMULATED = "emulated"
    NITRO = "nitro"


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """Trust anchors baked into the measured image."""

    kms_key_arn_prefix: str
    attestation_root_pem: bytes
    max_document_age_seconds: int = 300
    #: Launch parameters baked into the image (a Nitro EIF's command line cannot be given at run
    #: time): ``node_id``, ``kms_key_id``, ``region``, ``cid``. Command-line values take precedence.
    launch: Mapping[str, str | int] = field(default_factory=dict)
    #: PEM certificates of the clients the node service accepts (TLS client authentication pinned
    #: by value). Measured with the image, so a parent cannot add its own client without changing
    #: PCR0. Empty: the node service is not started.
    authorized_clients: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.launch, Mapping) or set(self.launch) - _LAUNCH_KEYS:
            raise ConfigError("launch", f"keys must be among {sorted(_LAUNCH_KEYS)}")
        object.__setattr__(self, "launch", MappingProxyType(dict(self.launch)))
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

    @property
    def attestation_root(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.attestation_root_pem)

    @classmethod
    def load(cls, image_root: Path) -> ImageConfig:
        path = image_root / IMAGE_CONFIG_PATH
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise ConfigError("image.json", f"cannot read {path}") from None
        if not isinstance(raw, dict) or set(raw) - {
            "kms_key_arn_prefix",
            "attestation_root_pem",
            "max_document_age_seconds",
            "launch",
            "authorized_clients",
        }:
            raise ConfigError("image.json", "unknown or missing fields")
        launch = raw.get("launch", {})
        if not isinstance(launch, dict) or not all(
            isinstance(value, str | int) for value in launch.values()
        ):
            raise ConfigError("launch", "must map names to strings or integers")
        prefix = raw.get("kms_key_arn_prefix")
        root = raw.get("attestation_root_pem")
        age = raw.get("max_document_age_seconds", 300)
        if not isinstance(prefix, str) or not prefix.startswith("arn:aws:kms:"):
            raise ConfigError("kms_key_arn_prefix", "must be a KMS ARN prefix")
        if not isinstance(root, str) or "BEGIN CERTIFICATE" not in root:
            raise ConfigError("attestation_root_pem", "must be a PEM certificate")
        if type(age) is not int or not 1 <= age <= 3600:
            raise ConfigError("max_document_age_seconds", "must be an integer in 1..3600")
        clients = raw.get("authorized_clients", [])
        if not isinstance(clients, list) or not all(isinstance(c, str) for c in clients):
            raise ConfigError("authorized_clients", "must be a list of PEM certificates")
        return cls(
            prefix, root.encode("ascii"), age, launch, tuple(c.encode("ascii") for c in clients)
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "kms_key_arn_prefix": self.kms_key_arn_prefix,
                "attestation_root_pem": self.attestation_root_pem.decode("ascii"),
                "max_document_age_seconds": self.max_document_age_seconds,
                "launch": dict(self.launch),
                "authorized_clients": [pem.decode("ascii") for pem in self.authorized_clients],
            },
            indent=2,
            sort_keys=True,
        )


@dataclass(frozen=True, slots=True)
class LaunchConfig:
    """Per-node parameters from the command line, validated on construction."""

    mode: Mode
    node_id: str
    kms_key_id: str
    region: str
    cid: int
    runtime_dir: Path | None = None

    def __post_init__(self) -> None:
        if not _NODE_ID.fullmatch(self.node_id):
            raise ConfigError("node_id", "must be 1-64 of [A-Za-z0-9._-]")
        if not _REGION.fullmatch(self.region):
            raise ConfigError("region", f"{self.region!r} is not an AWS region name")
        if not FIRST_ENCLAVE_CID <= self.cid < U32_MAX:
            raise ConfigError("cid", f"{self.cid} is not an enclave CID")
        if (self.mode is Mode.EMULATED) != (self.runtime_dir is not None):
            raise ConfigError("runtime_dir", "required in emulated mode, refused in nitro mode")

    def check_against(self, image: ImageConfig) -> None:
        """Refuse a KMS key outside the account/region the measured image trusts."""
        if not self.kms_key_id.startswith(image.kms_key_arn_prefix):
            raise ConfigError(
                "kms_key_id",
                f"{self.kms_key_id!r} is not under the trusted prefix {image.kms_key_arn_prefix!r}",
            )
        if f":{self.region}:" not in image.kms_key_arn_prefix:
            raise ConfigError("region", "differs from the trusted key prefix's region")


def parse_launch_args(
    argv: Sequence[str], defaults: Mapping[str, str | int] | None = None
) -> LaunchConfig:
    """Parse the command line; missing values come from ``defaults`` (the image's ``launch``)."""
    parser = argparse.ArgumentParser(prog="python -m enclave", exit_on_error=False)
    parser.add_argument("--mode", choices=[m.value for m in Mode], required=True)
    parser.add_argument("--node-id")
    parser.add_argument("--kms-key-id")
    parser.add_argument("--region")
    parser.add_argument("--cid", type=int)
    parser.add_argument("--runtime-dir")
    try:
        args = parser.parse_args(list(argv))
    except (argparse.ArgumentError, SystemExit) as error:
        raise ConfigError("argv", str(error)) from None
    baked = defaults or {}
    values: dict[str, str | int] = {}
    for name in ("node_id", "kms_key_id", "region", "cid"):
        value = getattr(args, name)
        if value is None:
            value = baked.get(name)
        if value is None:
            raise ConfigError(name, "required (on the command line or in the image's launch)")
        values[name] = value
    if type(values["cid"]) is not int:
        raise ConfigError("cid", "must be an integer")
    for name in ("node_id", "kms_key_id", "region"):
        if not isinstance(values[name], str):
            raise ConfigError(name, "must be text")
    return LaunchConfig(
        mode=Mode(args.mode),
        node_id=str(values["node_id"]),
        kms_key_id=str(values["kms_key_id"]),
        region=str(values["region"]),
        cid=int(values["cid"]),
        runtime_dir=None if args.runtime_dir is None else Path(args.runtime_dir),
    )


@dataclass(frozen=True, slots=True)
class KmsRoute:
    """How boto3 inside the enclave reaches KMS through the loopback tunnel.

    Emulated (``public_host`` is ``None``): plain HTTP to the tunnel, which forwards the bytes to the
    emulated KMS. Nitro: boto3 speaks HTTPS to the real ``kms.<region>.amazonaws.com`` through the
    tunnel used as an HTTP ``CONNECT`` proxy — TLS runs end to end between boto3 and KMS with the real
    host name, and the enclave needs no DNS, no ``/etc/hosts`` entry and no privileged port. The
    tunnel accepts ``CONNECT`` to that one host only.
    """

    public_host: str | None = None

    def endpoint_url(self, tunnel_port: int) -> str:
        if self.public_host is None:
            return f"http://127.0.0.1:{tunnel_port}"
        return f"https://{self.public_host}"

    def proxy_url(self, tunnel_port: int) -> str | None:
        return None if self.public_host is None else f"http://127.0.0.1:{tunnel_port}"

    @property
    def connect_target(self) -> tuple[str, int] | None:
        return None if self.public_host is None else (self.public_host, 443)


@dataclass(frozen=True, slots=True)
class Seams:
    """What differs between modes, as seen from inside the enclave."""

    transport: Transport
    nsm: RawNsm
    kms: KmsRoute


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
        return Seams(unix, SocketNsm(unix), KmsRoute())
    vsock = (
        VsockTransport()
        if vsock_socket_factory is None
        else VsockTransport(socket_factory=vsock_socket_factory)
    )
    return Seams(vsock, DevNsm(device=nsm_device), KmsRoute(f"kms.{config.region}.amazonaws.com"))
