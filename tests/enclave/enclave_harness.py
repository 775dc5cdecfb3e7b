"""An in-process stand-in for one node's surroundings: the parent's host services and outbound
proxy, the emulated hypervisor, and the emulated KMS (over TLS, its dev CA in the image) with a key
pinned to a built image.

The real parent (``parent/``) is exercised by ``tests/cluster``; here the enclave runtime runs in the
test's own event loop so its boot steps can be driven and observed precisely. The host services
fake is the protocol's reference behaviour: a dict of blobs and static credentials.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from cryptography.hazmat.primitives import serialization

from attestation.emulated_ca import EmulatedCa
from attestation.roots import TrustedRoots
from attestation.verifier import AttestationVerifier
from enclave.config import KMS_PROXY_PORT, ImageConfig
from keyshard.dev.image import BuiltImage, build_image
from keyshard.dev.kms_keys import create_node_key, pin_node_key
from keyshard.dev.kms_server import KmsServer, start_kms_server
from keyshard.dev.kms_tls import KmsTls, issue_kms_tls, server_context
from transport.address import PARENT_CID, VsockAddress
from transport.framing import FramedStream
from transport.hostproto import (
    HOST_SERVICES_PORT,
    MAX_MESSAGE,
    Blob,
    Credentials,
    GetBlob,
    GetCredentials,
    GetLaunch,
    Launch,
    Ok,
    PutBlob,
    decode_request,
    encode_response,
)
from transport.pump import splice
from transport.unix import UnixSocketTransport

REGION = "us-east-1"
ACCOUNT = "123456789012"
ADMIN_ARN = f"arn:aws:iam::{ACCOUNT}:role/keyshard-admin"
NODE_ARN = f"arn:aws:iam::{ACCOUNT}:role/keyshard-node"
#: The role of the cluster's other node ("n2"), whose credentials the fake parent never holds.
OTHER_NODE_ARN = f"arn:aws:iam::{ACCOUNT}:role/keyshard-node-2"
ADMIN_KEY = "AKIAKEYSHARDADMIN000"
NODE_KEY = "AKIAKEYSHARDNODE0000"
SECRET = "emulated-secret-not-a-real-one"


@dataclass
class Recorder:
    """Every byte the fake parent stores or forwards."""

    stored: list[bytes] = field(default_factory=list)
    forwarded: list[bytes] = field(default_factory=list)

    def all_bytes(self) -> bytes:
        return b"".join(self.stored + self.forwarded)


class FakeParent:
    """Host services (blobs, credentials) and the KMS outbound proxy on the enclave's bus."""

    def __init__(self, transport: UnixSocketTransport, kms_port: int, node_id: str = "n1") -> None:
        self.transport = transport
        self.node_id = node_id
        self.kms_port = kms_port
        self.blobs: dict[str, bytes] = {}
        self.recorder = Recorder()
        self._servers: list[asyncio.AbstractServer] = []

    async def start(self) -> None:
        self._servers.append(
            await self.transport.listen(VsockAddress(PARENT_CID, HOST_SERVICES_PORT), self._host)
        )
        self._servers.append(
            await self.transport.listen(VsockAddress(PARENT_CID, KMS_PROXY_PORT), self._proxy)
        )

    async def close(self) -> None:
        for server in self._servers:
            server.close()
            await server.wait_closed()

    async def _host(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stream = FramedStream(reader, writer, MAX_MESSAGE)
        try:
            request = decode_request(await stream.recv())
            response: Any
            if isinstance(request, PutBlob):
                self.recorder.stored.append(request.data)
                self.blobs[request.name] = request.data
                response = Ok()
            elif isinstance(request, GetBlob):
                response = Blob(self.blobs.get(request.name))
            elif isinstance(request, GetCredentials):
                response = Credentials(NODE_KEY, SECRET, "", "2099-01-01T00:00:00Z")
            elif isinstance(request, GetLaunch):
                response = Launch(self.node_id)
            else:
                raise AssertionError(request)
            await stream.send(encode_response(response))
        finally:
            await stream.close()

    async def _proxy(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.kms_port)
        recorder = self.recorder

        async def tee(source: asyncio.StreamReader) -> asyncio.StreamReader:
            copy = asyncio.StreamReader()

            async def pump() -> None:
                while chunk := await source.read(65536):
                    recorder.forwarded.append(chunk)
                    copy.feed_data(chunk)
                copy.feed_eof()

            asyncio.get_running_loop().create_task(pump())
            return copy

        await splice(await tee(reader), writer, await tee(up_reader), up_writer, idle_timeout=30)


@dataclass
class Cloud:
    ca: EmulatedCa
    kms: KmsServer
    image: BuiltImage
    image_config: ImageConfig
    key_arn: str
    other_key_arn: str
    admin: Any
    tls: KmsTls

    def kms_client(self, access_key: str) -> Any:
        return kms_client(self.kms.endpoint_url, access_key, self.tls.ca_file)

    @property
    def kms_port(self) -> int:
        return int(self.kms.endpoint_url.rsplit(":", 1)[1])


def kms_client(endpoint: str, access_key: str, ca_file: Path) -> Any:
    return boto3.session.Session().client(
        "kms",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=access_key,
        aws_secret_access_key=SECRET,
        verify=str(ca_file),
    )


@contextmanager
def emulated_cloud(workdir: Path) -> Iterator[Cloud]:
    ca = EmulatedCa.ephemeral()
    root_pem = ca.root_certificate.public_bytes(serialization.Encoding.PEM)
    verifier = AttestationVerifier(TrustedRoots.of([ca.root_certificate]))
    tls = issue_kms_tls(workdir / "kms-tls", [REGION])
    principals = {ADMIN_KEY: ADMIN_ARN, NODE_KEY: NODE_ARN}
    with start_kms_server(verifier, principals, tls=server_context(tls)) as kms:
        # As a cluster is built: the keys, then one image listing them (and pinning the KMS's
        # dev CA), then the pinned policies.
        admin = kms_client(kms.endpoint_url, ADMIN_KEY, tls.ca_file)
        key_arn = create_node_key(admin, ADMIN_ARN, NODE_ARN, None, "n1")
        other_key_arn = create_node_key(admin, ADMIN_ARN, OTHER_NODE_ARN, None, "n2")
        image_config = ImageConfig(
            root_pem, {"n1": key_arn, "n2": other_key_arn}, kms_ca_pem=tls.ca_pem
        )
        image = build_image(workdir / "image", image_config)
        pin_node_key(admin, key_arn, ADMIN_ARN, NODE_ARN, image.measurements)
        pin_node_key(admin, other_key_arn, ADMIN_ARN, OTHER_NODE_ARN, image.measurements)
        yield Cloud(ca, kms, image, image_config, key_arn, other_key_arn, admin, tls)


@contextmanager
def short_tmpdir() -> Iterator[Path]:
    """Unix socket paths must stay under 108 bytes: pytest's tmp_path is often too long."""
    with tempfile.TemporaryDirectory(prefix="ks-", dir="/tmp") as name:
        yield Path(name)
