from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from parent.config import (
    ChildSpec,
    LocalStoreSpec,
    Mode,
    NitroSpec,
    S3StoreSpec,
    load_config,
    parse_config,
)
from parent.errors import ConfigError

EMULATED: dict[str, Any] = {
    "mode": "emulated",
    "runtime_dir": "/tmp/ks-node1",
    "enclave_cid": 16,
    "inbound": [{"name": "api", "listen": "127.0.0.1:7000", "enclave_port": 5000}],
    "outbound": [{"name": "kms", "port": 8443, "target": "localhost:4566"}],
    "allow": ["LOCALHOST:4566"],
    "limits": {"max_connections": 10, "idle_timeout": None, "connect_timeout": 2},
    "blob_store": {"kind": "local", "dir": "/tmp/ks-node1/blobs"},
    "credentials": {
        "kind": "static",
        "access_key_id": "AKIDEMU",
        "secret_access_key": "not-a-secret",
        "session_token": "t",
        "expiration": "2099-01-01T00:00:00Z",
    },
    "launcher": {"kind": "child", "argv": ["python", "-m", "enclave"], "workdir": "/tmp/w"},
}
REAL: dict[str, Any] = {
    "mode": "real",
    "enclave_cid": 16,
    "node_id": "node-a",
    "inbound": [{"name": "api", "listen": "0.0.0.0:7000", "enclave_port": 5000}],
    "outbound": [{"name": "kms", "port": 8443, "target": "kms.eu-west-1.amazonaws.com:443"}],
    "allow": ["kms.eu-west-1.amazonaws.com:443"],
    "blob_store": {"kind": "s3", "bucket": "sealed", "prefix": "node-1/", "region": "eu-west-1"},
    "credentials": {"kind": "imds"},
    "launcher": {
        "kind": "nitro",
        "eif_path": "/opt/keyshard.eif",
        "cpu_count": 2,
        "memory_mib": 2048,
    },
}


def test_emulated_example() -> None:
    config = parse_config(EMULATED)
    assert config.mode is Mode.EMULATED
    assert config.inbound[0].listen_port == 7000
    assert config.outbound[0].host == "localhost"
    assert config.allow == frozenset({("localhost", 4566)})
    assert config.limits.idle_timeout is None
    assert config.blob_store == LocalStoreSpec(Path("/tmp/ks-node1/blobs"))
    assert isinstance(config.launcher, ChildSpec)
    assert "not-a-secret" not in repr(config)


def test_real_example_and_file_loading(tmp_path: Path) -> None:
    path = tmp_path / "node.json"
    path.write_text(json.dumps(REAL))
    config = load_config(path)
    assert config.mode is Mode.REAL
    assert config.node_id == "node-a"
    assert config.blob_store == S3StoreSpec("sealed", "node-1/", "eu-west-1", None)
    assert config.launcher == NitroSpec(Path("/opt/keyshard.eif"), 2, 2048, None)
    assert config.limits.max_connections == 256  # default


def _broken(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(base)
    *parents, last = path.split(".")
    node: Any = doc
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return doc


@pytest.mark.parametrize(
    ("base", "path", "value", "field"),
    [
        (EMULATED, "mode", "test", "mode"),
        (EMULATED, "runtime_dir", KeyError, "runtime_dir"),
        (EMULATED, "runtime_dir", "/tmp/" + "r" * 90, "runtime_dir"),
        (EMULATED, "enclave_cid", 3, "enclave_cid"),
        (EMULATED, "enclave_cid", "16", "enclave_cid"),
        (EMULATED, "inbound.0.listen", "7000", "inbound[0].listen"),
        (EMULATED, "inbound.0.extra", 1, "inbound[0].extra"),
        (EMULATED, "outbound.0.target", "evil.example:443", "outbound[0].target"),
        (EMULATED, "allow", [], "outbound[0].target"),
        (EMULATED, "limits.max_connections", 0, "limits.max_connections"),
        (EMULATED, "limits.first_byte_timeout", 0, "limits.first_byte_timeout"),
        (EMULATED, "blob_store.kind", "ftp", "blob_store.kind"),
        (EMULATED, "launcher.kind", "nitro", "launcher.kind"),
        (EMULATED, "launcher.argv", [], "launcher.argv"),
        (EMULATED, "launcher.env", {"A": 1}, "launcher.env"),
        (EMULATED, "surprise", True, "surprise"),
        (
            REAL,
            "credentials",
            {
                "kind": "static",
                "access_key_id": "a",
                "secret_access_key": "b",
                "session_token": "c",
                "expiration": "d",
            },
            "credentials.kind",
        ),
        (REAL, "node_id", "../a", "node_id"),
        (REAL, "node_id", 7, "node_id"),
        (REAL, "launcher.debug_mode", True, "launcher.debug_mode"),
        (REAL, "launcher.kind", "child", "launcher.kind"),
        (REAL, "launcher.memory_mib", 1, "launcher.memory_mib"),
    ],
)
def test_errors_name_the_culprit(base: dict[str, Any], path: str, value: Any, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(_broken(base, path, value))
    assert info.value.field == field


def test_runtime_dir_is_checked_against_the_paths_actually_used() -> None:
    # 85 + len("/vsock/16-5000.sock") = 104 bytes: fits, though a 10-digit CID and port would not.
    doc = copy.deepcopy(EMULATED)
    doc["runtime_dir"] = "/tmp/" + "r" * 80
    assert parse_config(doc).runtime_dir == Path(doc["runtime_dir"])
    doc["outbound"][0]["port"] = 4_000_000_000  # now a path would be 110 bytes
    with pytest.raises(ConfigError, match="sun_path") as info:
        parse_config(doc)
    assert info.value.field == "runtime_dir"


def test_duplicate_route_names() -> None:
    doc = copy.deepcopy(EMULATED)
    doc["outbound"][0]["name"] = "api"
    with pytest.raises(ConfigError, match="used twice"):
        parse_config(doc)


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(tmp_path / "bad.json")
    with pytest.raises(ConfigError, match="must be an object"):
        parse_config([])
