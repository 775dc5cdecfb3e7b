"""``keyshard dev gateway``: the KMS gateway of a dev cluster, with a generated access key.

It writes the gateway's configuration (one access key allowed everything, mode 0600) and key
registry under ``<dir>/gateway/``, creates the cluster key behind the XKS proxy's external keys
(``xks-dev``, Ed25519) once, serving it as three external keys — ``xks-dev`` (encrypt and
decrypt), ``xks-dev-encrypt-only`` and ``xks-dev-decrypt-only`` — starts ``keyshard gateway`` in the background on a free
loopback port (plain HTTP: loopback only) with the cluster's client credentials, waits until it
listens, and writes ``<dir>/gateway.json`` — what tools and tests need to reach it::

    {"endpoint_url": "http://127.0.0.1:P", "region": "us-east-1",
     "access_key_id": "AKIA...", "secret_access_key": "...",
     "xks_uri_prefix": "/keyshard/xks/kms/xks/v1", "xks_access_key_id": "...",
     "xks_secret_access_key": "...", "xks_key_id": "xks-dev"}

``xks_uri_prefix`` is what AWS KMS's ``XksProxyUriPath`` takes.

``keyshard dev down`` stops it with the cluster. In a real deployment the gateway has its own
client certificate listed in the image; the dev image authorises one client, the admin's, which
the dev gateway therefore uses.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from keyshard.client.errors import RemoteError
from keyshard.client.sdk import Client
from keyshard.dev.cluster import ACCOUNT, REGION, Cluster, ClusterError
from keyshard.gateway.config import (
    GatewayConfig,
    XksConfig,
    XksKey,
    new_access_key,
    new_xks_credentials,
)
from wire.errors import ErrorCode

__all__ = ["GATEWAY_FILE", "XKS_KEY", "XKS_URI_PREFIX", "DevGateway", "start_gateway"]

GATEWAY_FILE = "gateway.json"
XKS_URI_PREFIX = "/keyshard/xks"
XKS_KEY = "xks-dev"


@dataclass(frozen=True, slots=True)
class DevGateway:
    endpoint_url: str
    region: str
    access_key_id: str
    secret_access_key: str
    xks_uri_prefix: str
    xks_access_key_id: str = ""
    xks_secret_access_key: str = ""
    xks_key_id: str = XKS_KEY

    def to_json(self) -> dict[str, str]:
        return {name: str(getattr(self, name)) for name in self.__dataclass_fields__}

    @classmethod
    def load(cls, path: Path) -> DevGateway:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return cls(**{k: str(raw[k]) for k in cls.__dataclass_fields__})


def start_gateway(
    cluster: Cluster,
    *,
    listen: str = "127.0.0.1:0",
    timeout: float = 30.0,
    python: str = sys.executable,
    witness_every: float | None = None,
) -> DevGateway:
    """Start the dev cluster's gateway; :class:`ClusterError` if it does not come up."""
    if not cluster.profile_file.exists():
        raise ClusterError(f"no cluster profile in {cluster.directory} (run `keyshard dev up`)")
    home = cluster.directory / "gateway"
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    access = new_access_key()
    xks_access = new_xks_credentials()
    _ensure_xks_key(cluster)
    xks = XksConfig(
        XKS_URI_PREFIX,
        (xks_access,),
        (
            XksKey(XKS_KEY, XKS_KEY, frozenset({"ENCRYPT", "DECRYPT"})),
            XksKey(f"{XKS_KEY}-encrypt-only", XKS_KEY, frozenset({"ENCRYPT"})),
            XksKey(f"{XKS_KEY}-decrypt-only", XKS_KEY, frozenset({"DECRYPT"})),
        ),
    )
    config_file = home / "config.json"
    GatewayConfig(REGION, ACCOUNT, (access,), xks).save(config_file)
    ready = home / "ready.json"
    ready.unlink(missing_ok=True)
    cluster.start_service(
        "gateway",
        [
            python,
            "-m",
            "keyshard.cli.main",
            "gateway",
            "--profile",
            str(cluster.profile_file),
            "--config",
            str(config_file),
            "--state",
            str(home),
            "--listen",
            listen,
            "--ready-file",
            str(ready),
            *([] if witness_every is None else ["--witness-every", str(witness_every)]),
        ],
    )
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if not cluster.service_alive("gateway"):
            raise ClusterError(f"the gateway exited; see {cluster.log_file('gateway')}")
        if time.monotonic() > deadline:
            raise ClusterError(f"the gateway did not listen within {timeout:.0f} s")
        time.sleep(0.05)
    url = str(json.loads(ready.read_text(encoding="utf-8"))["url"])
    info = DevGateway(
        url,
        REGION,
        access.access_key_id,
        access.secret,
        XKS_URI_PREFIX + "/kms/xks/v1",
        xks_access.access_key_id,
        xks_access.secret,
    )
    target = cluster.directory / GATEWAY_FILE
    descriptor = os.open(target.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(info.to_json(), handle, indent=2)
    target.with_suffix(".tmp").replace(target)
    return info


def _ensure_xks_key(cluster: Cluster) -> None:
    """The Ed25519 cluster key behind the dev XKS keys (created by DKG on first use)."""
    with Client.from_profile(cluster.profile_file) as client:
        try:
            client.create_key(XKS_KEY)
        except RemoteError as error:
            if error.error_code is not ErrorCode.KEY_EXISTS:
                raise ClusterError(f"cannot create the XKS key: {error}") from None
