"""Host services end to end: the enclave's HostClient -> Unix transport -> HostServices -> store."""

from __future__ import annotations

import asyncio
import shutil
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from parent.auditstore import read_log
from parent.blobstore import LocalDirBlobStore
from parent.credentials import StaticCredentials
from parent.hostservices import HostServices
from transport.address import PARENT_CID, VsockAddress
from transport.errors import HostServiceError
from transport.framing import encode_frame, read_frame
from transport.hostclient import HostClient
from transport.hostproto import (
    HOST_SERVICES_PORT,
    Credentials,
    Error,
    ErrorCode,
    decode_response,
)
from transport.unix import UnixSocketTransport
from wire.audit import AuditChain, parse_json_lines, verify_log

CREDS = Credentials("AKIDEMU", "emulated-secret", "emulated-token", "2099-01-01T00:00:00Z")


def _run(
    runtime: Path,
    body: Callable[[HostClient, UnixSocketTransport], Awaitable[None]],
    *,
    with_credentials: bool = True,
    node_id: str | None = None,
) -> None:
    async def main() -> None:
        services = HostServices(
            LocalDirBlobStore(runtime / "blobs"),
            StaticCredentials(CREDS) if with_credentials else None,
            node_id=node_id,
        )
        await services.serve(UnixSocketTransport(runtime, local_cid=PARENT_CID))
        enclave = UnixSocketTransport(runtime, local_cid=16)
        try:
            await body(HostClient(enclave), enclave)
        finally:
            await services.close()

    asyncio.run(main())


def test_blobs_and_credentials_round_trip(runtime_dir: Path) -> None:
    async def body(client: HostClient, _: UnixSocketTransport) -> None:
        assert await client.get_blob("state") is None
        await client.put_blob("state", b"\x01sealed")
        await client.put_blob("state", b"\x02sealed")
        await client.put_blob("audit", b"")
        assert await client.get_blob("state") == b"\x02sealed"
        assert await client.list_blobs() == ("audit", "state")
        assert await client.get_credentials() == CREDS

    _run(runtime_dir, body)
    assert (runtime_dir / "blobs" / "state").read_bytes() == b"\x02sealed"


def test_refusals_are_typed_errors(runtime_dir: Path) -> None:
    async def body(client: HostClient, _: UnixSocketTransport) -> None:
        with pytest.raises(HostServiceError) as info:
            await client.put_blob("../escape", b"x")
        assert info.value.code == ErrorCode.BAD_NAME.value
        with pytest.raises(HostServiceError) as info:
            await client.get_credentials()
        assert info.value.code == ErrorCode.CREDENTIALS_UNAVAILABLE.value
        shutil.rmtree(runtime_dir / "blobs")  # the disk goes away under the store
        with pytest.raises(HostServiceError) as info:
            await client.put_blob("state", b"x")
        assert info.value.code == ErrorCode.STORAGE_FAILED.value

    _run(runtime_dir, body, with_credentials=False)
    assert not (runtime_dir / "escape").exists()


def test_malformed_request_gets_bad_request_and_a_closed_connection(runtime_dir: Path) -> None:
    async def body(_: HostClient, enclave: UnixSocketTransport) -> None:
        reader, writer = await enclave.connect(VsockAddress(PARENT_CID, HOST_SERVICES_PORT))
        writer.write(encode_frame(b"\xa1\x61x\x01"))  # {"x": 1}: no version, no type
        reply = decode_response(await read_frame(reader, 1 << 20))
        assert isinstance(reply, Error)
        assert reply.code is ErrorCode.BAD_REQUEST
        assert await reader.read() == b""
        writer.close()

    _run(runtime_dir, body)


def test_oversize_frame_closes_the_connection(runtime_dir: Path) -> None:
    async def body(_: HostClient, enclave: UnixSocketTransport) -> None:
        reader, writer = await enclave.connect(VsockAddress(PARENT_CID, HOST_SERVICES_PORT))
        writer.write(struct.pack(">I", 0xFFFFFFFF))
        assert await reader.read() == b""
        writer.close()

    _run(runtime_dir, body)


def test_launch_names_the_configured_node(runtime_dir: Path) -> None:
    async def body(client: HostClient, _: UnixSocketTransport) -> None:
        assert await client.get_launch() == "node-7"

    _run(runtime_dir, body, node_id="node-7")


def test_launch_without_node_id_is_a_typed_error(runtime_dir: Path) -> None:
    async def body(client: HostClient, _: UnixSocketTransport) -> None:
        with pytest.raises(HostServiceError) as info:
            await client.get_launch()
        assert info.value.code == ErrorCode.LAUNCH_UNAVAILABLE.value

    _run(runtime_dir, body)


def test_audit_batches_are_stored_append_only_and_bad_ones_refused(runtime_dir: Path) -> None:
    """Each ``PutAudit`` batch is a new segment (none replaced), in sequence order with the
    document beside it; a batch whose records do not decode is refused and nothing is stored."""
    key = Ed25519PrivateKey.generate()
    chain = AuditChain("node-1", key.sign)
    records = [
        chain.append(
            time_ms=1,
            client=b"",
            op="frost_sign",
            key="k",
            digest=bytes(32),
            approvers=(),
            outcome="ok",
            epoch=0,
        )
        for _ in range(3)
    ]

    async def body(client: HostClient, _: UnixSocketTransport) -> None:
        await client.put_audit(
            tuple(r.body for r in records[:2]), tuple(r.signature for r in records[:2]), b"doc"
        )
        await client.put_audit((records[2].body,), (records[2].signature,))
        with pytest.raises(HostServiceError) as refused:
            await client.put_audit((b"\xa0",), (bytes(64),))
        assert refused.value.code == "bad_request"

    _run(runtime_dir, body)
    store = LocalDirBlobStore(runtime_dir / "blobs")
    assert sorted(n for n in store.names() if n.startswith("audit-log.")) == [
        "audit-log.000000000000.jsonl",
        "audit-log.000000000002.jsonl",
    ]
    lines, document = read_log(store)
    assert document == b"doc"
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert [r.seq for r in verify_log(parse_json_lines(lines), public)] == [0, 1, 2]
