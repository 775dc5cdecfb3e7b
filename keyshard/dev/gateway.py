"""``keyshard dev gateway``: the KMS gateway of a dev cluster, with a generated access key.

It writes the gateway's configuration (one access key allowed everything, mode 0600) and key
registry under ``<dir>/gateway/``, starts ``keyshard gateway`` in the background on a free
loopback port (plain HTTP: loopback only) with the cluster's client credentials, waits until it
listens, and writes ``<dir>/gateway.json`` — what tools and tests need to reach it::

    {"endpoint_url": "http://127.0.0.1:P", "region": "us-east-1",
     "access_key_id": "AKIA...", "secret_access_key": "...", "xks_uri_prefix": "/keyshard/xks"}

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

from keyshard.dev.cluster import ACCOUNT, REGION, Cluster, ClusterError
from keyshard.gateway.config import GatewayConfig, new_access_key

__all__ = ["GATEWAY_FILE", "XKS_URI_PREFIX", "DevGateway", "start_gateway"]

GATEWAY_FILE = "gateway.json"
XKS_URI_PREFIX = "/keyshard/xks"


@dataclass(frozen=True, slots=True)
class DevGateway:
    endpoint_url: str
    region: str
    access_key_id: str
    secret_access_key: str
    xks_uri_prefix: str

    def to_json(self) -> dict[str, str]:
        return {
            "endpoint_url": self.endpoint_url,
            "region": self.region,
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key,
            "xks_uri_prefix": self.xks_uri_prefix,
        }

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
) -> DevGateway:
    """Start the dev cluster's gateway; :class:`ClusterError` if it does not come up."""
    if not cluster.profile_file.exists():
        raise ClusterError(f"no cluster profile in {cluster.directory} (run `keyshard dev up`)")
    home = cluster.directory / "gateway"
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    access = new_access_key()
    config_file = home / "config.json"
    GatewayConfig(REGION, ACCOUNT, (access,)).save(config_file)
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
    info = DevGateway(url, REGION, access.access_key_id, access.secret, XKS_URI_PREFIX)
    target = cluster.directory / GATEWAY_FILE
    descriptor = os.open(target.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(info.to_json(), handle, indent=2)
    target.with_suffix(".tmp").replace(target)
    return info
