"""Real mode assembled end to end through fakes at the system boundaries only.

AF_VSOCK sockets come from an injected constructor that carries bytes over Unix sockets, nitro-cli
is the fake script on PATH (see test_parent_launcher.py), S3 is moto. Everything else — config parsing,
ParentNode, proxy, host services, the enclave's HostClient — is the production code.
"""

from __future__ import annotations

import asyncio
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from test_parent_launcher import ENCLAVE_ID, FAKE_NITRO

from parent.blobstore import S3BlobStore
from parent.config import parse_config
from parent.credentials import ImdsCredentials
from parent.launcher import NitroCliLauncher
from parent.node import ParentNode, build_credentials, build_launcher, build_transport
from transport.address import ANY_CID, PARENT_CID, VsockAddress
from transport.hostclient import HostClient
from transport.vsock import VsockTransport


def _vsock_over_unix(root: Path) -> Any:
    def path(address: tuple[int, int]) -> str:
        cid, port = address
        return os.fspath(root / f"{PARENT_CID if cid == ANY_CID else cid}-{port}")

    def factory(family: int, type_: int) -> socket.socket:
        assert family == socket.AF_VSOCK

        class FakeVsock(socket.socket):
            def bind(self, address: Any) -> None:
                super().bind(path(address))

            def connect(self, address: Any) -> None:
                super().connect(path(address))

        return FakeVsock(socket.AF_UNIX, type_)

    return factory


@pytest.fixture
def nitro_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "nitro-cli"
    script.write_text(FAKE_NITRO)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return bindir


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="sealed")
        yield client


def _real_config(tmp_path: Path, kms_port: int) -> dict[str, Any]:
    (tmp_path / "keyshard.eif").write_bytes(b"EIF")
    return {
        "mode": "real",
        "enclave_cid": 16,
        "inbound": [{"name": "api", "listen": "127.0.0.1:0", "enclave_port": 5000}],
        "outbound": [{"name": "kms", "port": 8443, "target": f"127.0.0.1:{kms_port}"}],
        "allow": [f"127.0.0.1:{kms_port}"],
        "blob_store": {"kind": "s3", "bucket": "sealed", "prefix": "node-1"},
        "credentials": {"kind": "imds", "url": "http://127.0.0.1:9"},
        "launcher": {
            "kind": "nitro",
            "eif_path": str(tmp_path / "keyshard.eif"),
            "cpu_count": 2,
            "memory_mib": 512,
        },
    }


def test_real_mode_picks_the_real_seams(tmp_path: Path) -> None:
    config = parse_config(_real_config(tmp_path, 443))
    assert isinstance(build_transport(config), VsockTransport)
    assert isinstance(build_credentials(config), ImdsCredentials)
    launcher = build_launcher(config)
    assert isinstance(launcher, NitroCliLauncher)
    assert "--debug-mode" not in launcher.run_argv()


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


def test_real_mode_node_through_boundary_fakes(
    tmp_path: Path, nitro_on_path: Path, s3: Any
) -> None:
    vsock_dir = tmp_path / "v"
    vsock_dir.mkdir()
    factory = _vsock_over_unix(vsock_dir)

    async def main() -> None:
        kms = await asyncio.start_server(_echo, "127.0.0.1", 0)  # stands in for the KMS endpoint
        config = parse_config(_real_config(tmp_path, kms.sockets[0].getsockname()[1]))
        enclave = VsockTransport(socket_factory=factory)
        api = await enclave.listen(VsockAddress(16, 5000), _echo)
        node = ParentNode(
            config,
            transport=VsockTransport(socket_factory=factory),
            store=S3BlobStore("sealed", "node-1", s3),
        )
        await node.start()
        try:
            assert node.launch_info is not None
            assert (node.launch_info.enclave_id, node.launch_info.cid) == (ENCLAVE_ID, 16)
            # enclave -> parent host services -> S3
            client = HostClient(enclave)
            await client.put_blob("state", b"sealed-v1")
            assert await client.get_blob("state") == b"sealed-v1"
            # enclave -> parent outbound route -> "KMS"
            reader, writer = await enclave.connect(VsockAddress(PARENT_CID, 8443))
            writer.write(b"tls client hello")
            assert await reader.readexactly(16) == b"tls client hello"
            writer.close()
            # client -> parent inbound route -> enclave
            reader, writer = await asyncio.open_connection("127.0.0.1", node.inbound_ports["api"])
            writer.write(b"sign this")
            assert await reader.readexactly(9) == b"sign this"
            writer.close()
        finally:
            await node.close()
            api.close()
            kms.close()

    asyncio.run(main())
    body = s3.get_object(Bucket="sealed", Key="node-1/state")["Body"].read()
    assert body == b"sealed-v1"
    calls = (nitro_on_path / "argv.jsonl").read_text()
    assert '"terminate-enclave"' in calls
    assert "--debug-mode" not in calls
