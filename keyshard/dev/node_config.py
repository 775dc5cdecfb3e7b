"""One emulated node's files, and the configuration ``keyshard dev`` hands its parent.

The parent (``python -m parent --config node.json``) owns the schema; this module is the one place
``keyshard dev`` writes it, so a schema change is a change here only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from enclave.config import KMS_PROXY_PORT
from enclave.status import CLIENT_PORT
from wire.messages import SERVICE_PORT

__all__ = ["NodeLayout", "parent_command", "write_parent_config"]


@dataclass(frozen=True, slots=True)
class NodeLayout:
    """``nodes/<i>/``: the node's vsock bus, its sealed blobs, its parent and VM configuration."""

    root: Path

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def blob_dir(self) -> Path:
        return self.root / "blobs"

    @property
    def vm_file(self) -> Path:
        return self.root / "vm.json"

    @property
    def enclave_home(self) -> Path:
        """The enclave child's (empty) working directory."""
        return self.root / "enclave-home"

    @property
    def config_file(self) -> Path:
        return self.root / "node.json"

    def create(self) -> None:
        for directory in (self.root, self.run_dir, self.blob_dir):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)


def write_parent_config(
    layout: NodeLayout,
    *,
    enclave_cid: int,
    node_id: str,
    client_port: int,
    kms_port: int,
    service_port: int | None = None,
    operations_port: int | None = None,
    access_key_id: str,
    secret_access_key: str,
    python: str,
    image_dir: Path,
    enclave_argv: list[str],
    enclave_log: Path,
) -> Path:
    """Write ``node.json`` for the node's parent (schema: :mod:`parent.config`); returns its path.

    ``node_id`` goes into the parent's config, which hands it to the enclave at boot over host
    services (``GetLaunch``), exactly as on Nitro: every node runs the same image and argv.
    The enclave child starts in an empty working directory with a scrubbed environment; the only
    code it can import is the image's, put on ``PYTHONPATH`` (the launcher's "EIF path").
    """
    kms = f"127.0.0.1:{kms_port}"
    inbound = [
        {"name": "client", "listen": f"127.0.0.1:{client_port}", "enclave_port": CLIENT_PORT}
    ]
    if service_port is not None:
        # The node service: the parent forwards TLS records it cannot read.
        inbound.append(
            {"name": "service", "listen": f"127.0.0.1:{service_port}", "enclave_port": SERVICE_PORT}
        )
    config: dict[str, object] = {
        "mode": "emulated",
        "runtime_dir": str(layout.run_dir),
        "enclave_cid": enclave_cid,
        "node_id": node_id,
        "inbound": inbound,
        "outbound": [{"name": "kms", "port": KMS_PROXY_PORT, "target": kms}],
        "allow": [kms],
        "blob_store": {"kind": "local", "dir": str(layout.blob_dir)},
        "credentials": {
            "kind": "static",
            "access_key_id": access_key_id,
            "secret_access_key": secret_access_key,
            "session_token": "emulated",
            "expiration": "2099-01-01T00:00:00Z",
        },
        "launcher": {
            "kind": "child",
            "argv": [python, "-m", "enclave", *enclave_argv],
            "workdir": str(layout.enclave_home),
            "env": {"PYTHONPATH": str(image_dir)},
            "output": str(enclave_log),
        },
    }
    if operations_port is not None:
        # HTTP /metrics, /health, /ready; the parent asks the enclave's status port itself.
        config["operations"] = {
            "listen": f"127.0.0.1:{operations_port}",
            "status_port": CLIENT_PORT,
        }
    layout.config_file.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return layout.config_file


def parent_command(python: str, config_file: Path) -> list[str]:
    return [python, "-m", "parent", "--config", str(config_file)]
