"""The node service's connections over real sockets: the real :class:`ServiceListener` (TLS 1.3
with pinned client certificates, ``hello`` first, many requests in flight per connection) serving
a real :class:`NodeService` on a loopback port, and the real :class:`NodeChannel` client.

No sleeps: every test awaits the event it depends on — a reply, a request parked on a gated blob
read (:meth:`DictHost.hold`), the end of a connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
from service_fixtures import Cluster

from attestation.emulated_ca import EmulatedCa
from enclave.mpc.frost.round1 import PREPROCESSED_SESSION_ID, SigningCommitments
from enclave.service.server import ServiceListener
from keyshard.client.channel import NodeChannel, NodeTrust, client_context
from keyshard.client.credentials import ClientCredentials
from keyshard.client.errors import BindingError, ChannelError, RemoteError
from transport.errors import StreamClosedError
from transport.framing import HEADER, FramedStream
from wire.errors import ErrorCode
from wire.messages import (
    MAX_FRAME,
    ErrorReply,
    Hello,
    HelloReply,
    KeyInfo,
    KeyInfoReply,
    KeyList,
    KeyListReply,
    NonceCommit,
    NonceCommitments,
    Request,
    decode_reply,
    encode,
)

NODE = "node-1"
KEY = "served"


@pytest.fixture(scope="module")
def cluster(ca: EmulatedCa) -> Cluster:
    """Three nodes holding key ``served``; node-1 is the one behind the listener."""
    cluster = Cluster(ca)
    asyncio.run(cluster.create_key(KEY))
    return cluster


@dataclass
class Served:
    listener: ServiceListener
    port: int
    trust: NodeTrust
    credentials: ClientCredentials

    async def channel(self) -> NodeChannel:
        return await NodeChannel.open(
            NODE, "127.0.0.1", self.port, trust=self.trust, credentials=self.credentials
        )

    @contextlib.asynccontextmanager
    async def raw(self) -> AsyncIterator[FramedStream]:
        """A TLS connection with the listed certificate, speaking frames by hand."""
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", self.port, ssl=client_context(self.credentials), server_hostname=""
        )
        stream = FramedStream(reader, writer, MAX_FRAME)
        try:
            yield stream
        finally:
            await stream.close()


@contextlib.asynccontextmanager
async def serving(
    cluster: Cluster, trust: NodeTrust, credentials: ClientCredentials
) -> AsyncIterator[Served]:
    """node-1's service behind a real listener on a loopback port, listing ``credentials``.

    Whatever the event loop reports on the way (a task destroyed while pending, an exception
    never retrieved) fails the test."""
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    listener = ServiceListener(cluster.services[NODE], [credentials.certificate_pem])
    server = await loop.create_server(listener.protocol, "127.0.0.1", 0)
    try:
        yield Served(listener, server.sockets[0].getsockname()[1], trust, credentials)
    finally:
        server.close()
        await listener.close()
        await server.wait_closed()
    assert reported == []


async def close_all(channels: list[NodeChannel]) -> None:
    for channel in channels:
        await channel.close()


# -- (a) idle channels survive garbage collection -----------------------------------------------


async def open_idle(served: Served, count: int) -> list[NodeChannel]:
    """``count`` verified channels, nothing else kept: every temporary of the handshakes (hello
    replies, nonces, streams) dies with this frame."""
    return [await served.channel() for _ in range(count)]


def test_idle_authenticated_channels_survive_garbage_collection(
    cluster: Cluster, trust: NodeTrust, credentials: ClientCredentials
) -> None:
    """The regression: asyncio holds tasks weakly, and an idle connection's task waiting to read
    was referenced only by its own reader — a cycle the collector freed, dropping the channel."""

    async def run() -> None:
        async with serving(cluster, trust, credentials) as served:
            channels = await open_idle(served, 4)
            assert served.listener.connections == 4
            for _ in range(3):
                gc.collect()
            assert served.listener.connections == 4
            for channel in channels:
                assert not channel.broken
                reply = await channel.request(KeyList(), timeout=10)
                assert reply == KeyListReply((KEY,))
            await close_all(channels)

    asyncio.run(run())


# -- (b) many requests in flight on one channel -------------------------------------------------


def test_many_requests_in_flight_on_one_channel_are_matched_by_id(
    cluster: Cluster, trust: NodeTrust, credentials: ClientCredentials
) -> None:
    def expected(i: int) -> Request:
        return (
            NonceCommit(KEY, i // 4 + 1),
            KeyInfo(f"absent-{i}"),
            KeyList(),
            KeyInfo(KEY),
        )[i % 4]

    async def run() -> None:
        async with serving(cluster, trust, credentials) as served:
            channel = await served.channel()
            with cluster.hosts[NODE].hold("key-parked") as gate:
                # the first request parks inside the node (reading the blob of key "parked")
                parked = asyncio.create_task(channel.request(KeyInfo("parked")))
                await gate.reached.wait()
                replies = await asyncio.gather(
                    *(channel.request(expected(i)) for i in range(50)), return_exceptions=True
                )
                # 50 replies overtook the first request's: answers go out as they finish
                assert not parked.done()
                assert channel.in_flight == 1
                gate.opened.set()
                with pytest.raises(RemoteError) as late:
                    await parked
            assert late.value.error_code is ErrorCode.UNKNOWN_KEY
            commitments: set[bytes] = set()
            for i, reply in enumerate(replies):
                request = expected(i)
                if isinstance(request, NonceCommit):
                    assert isinstance(reply, NonceCommitments), i
                    assert len(reply.commitments) == request.count
                    for encoded in reply.commitments:
                        decoded = SigningCommitments.from_bytes(encoded)
                        assert decoded.session_id == PREPROCESSED_SESSION_ID
                    commitments.update(reply.commitments)
                elif request == KeyList():
                    assert reply == KeyListReply((KEY,)), i
                elif request == KeyInfo(KEY):
                    assert isinstance(reply, KeyInfoReply), i
                    assert (reply.identifier, reply.suite) == (1, "ed25519")
                else:  # each refusal names its own key: the reply of this very request
                    assert isinstance(reply, RemoteError), i
                    assert reply.error_code is ErrorCode.UNKNOWN_KEY
                    assert f"'absent-{i}'" in reply.message
            assert len(commitments) == sum(i // 4 + 1 for i in range(0, 50, 4))
            assert channel.in_flight == 0
            assert not channel.broken
            await channel.close()

    asyncio.run(run())


# -- (c) a malformed frame closes the connection ------------------------------------------------


@dataclass(frozen=True, slots=True)
class LaunchMissiles(Request):
    """A request type no node knows: its frame is malformed to the node."""

    OP: ClassVar[str] = "launch_missiles"


def test_a_malformed_frame_fails_the_clients_pending_requests(
    cluster: Cluster, trust: NodeTrust, credentials: ClientCredentials
) -> None:
    async def run() -> None:
        async with serving(cluster, trust, credentials) as served:
            channel, bystander = await served.channel(), await served.channel()
            with cluster.hosts[NODE].hold("key-parked") as gate:
                pending = asyncio.create_task(channel.request(KeyInfo("parked")))
                await gate.reached.wait()
                with pytest.raises(ChannelError) as malformed:
                    await channel.request(LaunchMissiles())
                with pytest.raises(ChannelError) as dropped:
                    await pending
            assert malformed.value.node_id == dropped.value.node_id == NODE
            assert channel.broken
            with pytest.raises(ChannelError):  # a broken channel refuses at once
                await channel.request(KeyList())
            # only that connection ended: another channel to the node still answers
            assert await bystander.request(KeyList()) == KeyListReply((KEY,))
            await close_all([channel, bystander])

    asyncio.run(run())


def _framed(payload: bytes) -> bytes:
    return HEADER.pack(len(payload)) + payload


@pytest.mark.parametrize(
    "frame",
    [
        _framed(b"\xff\xff"),
        _framed(b""),
        _framed(encode(KeyListReply(()), 2)),  # a valid message, but a reply
        _framed(encode(KeyList(), 2) + b"\x00"),  # a trailing byte
        HEADER.pack(MAX_FRAME + 1),  # longer than any frame may be (no body follows)
    ],
    ids=["not-cbor", "empty", "a-reply", "trailing-byte", "oversize"],
)
def test_a_malformed_frame_closes_the_connection(
    cluster: Cluster, trust: NodeTrust, credentials: ClientCredentials, frame: bytes
) -> None:
    async def run() -> None:
        async with served_raw(cluster, trust, credentials) as stream:
            await stream.send(encode(Hello(os.urandom(32)), 1))
            request_id, hello = decode_reply(await stream.recv())
            assert request_id == 1
            assert isinstance(hello, HelloReply)
            stream.writer.write(frame)
            with pytest.raises(StreamClosedError):  # closed without an answer
                await stream.recv()

    asyncio.run(run())


@contextlib.asynccontextmanager
async def served_raw(
    cluster: Cluster, trust: NodeTrust, credentials: ClientCredentials
) -> AsyncIterator[FramedStream]:
    async with serving(cluster, trust, credentials) as served, served.raw() as stream:
        yield stream


# -- (d) only listed clients -------------------------------------------------------------------


def test_an_unlisted_client_is_refused_at_the_handshake(
    cluster: Cluster, trust: NodeTrust, credentials: ClientCredentials, tmp_path: Path
) -> None:
    stranger = ClientCredentials.load_or_create(tmp_path / "stranger")
    anonymous = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    anonymous.check_hostname = False
    anonymous.verify_mode = ssl.CERT_NONE

    async def run() -> None:
        async with serving(cluster, trust, credentials) as served:
            for context in (client_context(stranger), anonymous):
                with pytest.raises(ChannelError) as refused:
                    await NodeChannel.open(
                        NODE,
                        "127.0.0.1",
                        served.port,
                        trust=trust,
                        credentials=stranger,
                        context=context,
                    )
                # refused by TLS, before any hello was answered: not an attestation failure
                assert not isinstance(refused.value, BindingError)
                assert not isinstance(refused.value, RemoteError)
            # the listed client is served as before
            channel = await served.channel()
            assert await channel.request(KeyList()) == KeyListReply((KEY,))
            await channel.close()

    asyncio.run(run())


# -- (e) hello first, and once -----------------------------------------------------------------


@pytest.mark.parametrize(
    "first", [KeyList(), KeyInfo(KEY), NonceCommit(KEY, 1)], ids=lambda r: r.OP
)
def test_hello_must_come_first(
    cluster: Cluster, trust: NodeTrust, credentials: ClientCredentials, first: Request
) -> None:
    async def run() -> None:
        async with served_raw(cluster, trust, credentials) as stream:
            await stream.send(encode(first, 77))
            request_id, reply = decode_reply(await stream.recv())
            assert request_id == 77
            assert isinstance(reply, ErrorReply)
            assert reply.code is ErrorCode.UNEXPECTED
            with pytest.raises(StreamClosedError):  # and the connection ends there
                await stream.recv()

    asyncio.run(run())


def test_hello_comes_once(
    cluster: Cluster, trust: NodeTrust, credentials: ClientCredentials
) -> None:
    async def run() -> None:
        async with serving(cluster, trust, credentials) as served:
            channel = await served.channel()
            with pytest.raises(RemoteError) as again:
                await channel.request(Hello(os.urandom(32)))
            assert again.value.error_code is ErrorCode.UNEXPECTED
            # a refused request leaves the channel usable
            assert not channel.broken
            assert await channel.request(KeyList()) == KeyListReply((KEY,))
            await channel.close()

    asyncio.run(run())


def test_the_hello_reply_binds_this_channel(
    cluster: Cluster, trust: NodeTrust, credentials: ClientCredentials
) -> None:
    """What the channel verified: node-1's fresh document, binding this boot's box key."""

    async def run() -> None:
        async with serving(cluster, trust, credentials) as served:
            channel = await served.channel()
            identity = cluster.services[NODE].identity
            assert channel.binding == identity.binding()
            await channel.close()

    asyncio.run(run())
