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
    def config_file(self) -> Path:
        return self.root / "node.json"

    def create(self) -> None:
        for directory in (self.root, self.run_dir, self.blob_dir):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)


def write_parent_config(
    layout: NodeLayout,
    *,
    node_id: str,
    enclave_cid: int,
    client_port: int,
    kms_port: int,
    access_key_id: str,
    secret_access_key: str,
    python: str,
    image_dir: Path,
    enclave_argv: list[str],
) -> Path:
    """Write ``node.json`` for the node's parent; returns its path."""
    config = {
        "node_id": node_id,
        "mode": "emulated",
        "runtime_dir": str(layout.run_dir),
        "enclave_cid": enclave_cid,
        "inbound": [
            {
                "name": "client",
                "listen_host": "127.0.0.1",
                "listen_port": client_port,
                "target_port": CLIENT_PORT,
            }
        ],
        "outbound": [
            {"name": "kms", "port": KMS_PROXY_PORT, "host": "127.0.0.1", "target_port": kms_port}
        ],
        "blob_store": {"kind": "local", "dir": str(layout.blob_dir)},
        "credentials": {
            "kind": "static",
            "access_key_id": access_key_id,
            "secret_access_key": secret_access_key,
        },
        "launcher": {
            "kind": "child",
            "python": python,
            "image_dir": str(image_dir),
            "argv": enclave_argv,
        },
    }
    layout.config_file.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return layout.config_file


def parent_command(python: str, config_file: Path) -> list[str]:
    return [python, "-m", "parent", "--config", str(config_file)]
