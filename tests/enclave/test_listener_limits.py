"""The enclave's two listeners under hostile connections (issue 9, items 4 and 9).

The real :class:`ServiceListener` (TLS 1.3 with the listed client certificate, ``hello`` first)
serving a real :class:`NodeService`, and the real :class:`StatusListener`, each on a loopback TCP
port in this process; the legitimate client is the real :class:`NodeChannel` (TLS + attestation)
and the real :func:`fetch_status`.

* item 9 — whatever bytes a peer sends, every connection ends in one typed ``INFO`` line; nothing
  is logged at ``ERROR`` and no task exception goes unretrieved;
* item 4 — 1,000 silent or slow connections neither lock a legitimate client out (during and
  after the flood) nor hold memory: silent connections cost no TLS buffers, each listener holds a
  bounded number of connections (a new one evicts the oldest unauthenticated one) and every
  unauthenticated connection has a deadline.

No sleeps: every step awaits what it depends on (a reply, the node closing a connection, the
listener's own counters) under a bound, so a regression fails instead of hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket
import struct
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from service_fixtures import Cluster, peer_verifier

from attestation.emulated_ca import EmulatedCa
from attestation.errors import NsmError
from enclave.service.handlers import NodeService
from enclave.service.server import ConnectionLimits, ServiceListener
from enclave.status import (
    MAX_STATUS_CONNECTIONS,
    NodeState,
    NodeStatus,
    StatusListener,
    fetch_status,
)
from keyshard.client.channel import NodeChannel, NodeTrust, client_context
from keyshard.client.credentials import ClientCredentials
from keyshard.client.errors import RemoteError
from transport.framing import HEADER
from wire import cbor
from wire.errors import ErrorCode
from wire.messages import MAX_FRAME, Hello, KeyInfo, KeyList, KeyListReply, encode

NODE = "node-1"
KEY = "served"
STATUS = NodeStatus(NodeState.READY, NODE)
#: How long any single step may take before the test fails rather than hangs.
BOUND = 60.0
#: The ``event`` of the one line that ends a refused or failed connection.
END_EVENTS = frozenset(
    {
        "tls_refused",
        "connection_error",
        "connection_timeout",
        "connection_evicted",
        "connection_refused",
    }
)
#: The first bytes of a TLS record that never completes: a "slow" client.
SLOW = b"\x16\x03\x01\x02\x00\x01"
#: Frames the node cannot judge until more bytes come.
TRUNCATED = (HEADER.pack(100) + b"\x00" * 10, b"\x00\x00")


@pytest.fixture(scope="module")
def cluster(ca: EmulatedCa) -> Cluster:
    cluster = Cluster(ca)
    asyncio.run(cluster.create_key(KEY))
    return cluster


class Lines(logging.Handler):
    """What the enclave's loggers and asyncio said: the connection-ending lines (their fields)
    and any ERROR line. Only those are kept (not the records), so that what a flood leaves in
    memory is the listeners', not this handler's."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.ended: list[dict[str, Any]] = []
        self.failed: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        fields = getattr(record, "fields", {})
        if fields.get("event") in END_EVENTS:
            assert record.levelno == logging.INFO, record.getMessage()
            self.ended.append(dict(fields))
        if record.levelno >= logging.ERROR:
            self.failed.append(record.getMessage())

    def ends(self) -> list[dict[str, Any]]:
        """The fields of every connection-ending line."""
        return self.ended

    def errors(self) -> list[str]:
        return self.failed


@dataclass
class Node:
    listener: ServiceListener
    port: int
    status: StatusListener
    status_port: int
    trust: NodeTrust
    credentials: ClientCredentials

    async def channel(self) -> NodeChannel:
        return await NodeChannel.open(
            NODE, "127.0.0.1", self.port, trust=self.trust, credentials=self.credentials
        )

    async def served(self) -> None:
        """A legitimate client is served: a verified channel answers, and so does the status."""
        async with asyncio.timeout(BOUND):
            channel = await self.channel()
            assert await channel.request(KeyList()) == KeyListReply((KEY,))
            await channel.close()
            assert await fetch_status("127.0.0.1", self.status_port) == STATUS

    async def settled(self) -> None:
        """Until neither listener holds a connection (each ends on its own: a deadline, the
        peer's close)."""
        async with asyncio.timeout(BOUND):
            while self.listener.connections or self.status.connections:
                await asyncio.sleep(0)


@contextlib.asynccontextmanager
async def serving(
    service: NodeService,
    trust: NodeTrust,
    credentials: ClientCredentials,
    limits: ConnectionLimits | None = None,
    **status: Any,
) -> AsyncIterator[tuple[Node, Lines]]:
    """Both listeners on loopback ports; fails the test on anything the event loop reports (a
    task exception never retrieved, a task destroyed while pending) or any ERROR line."""
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    lines = Lines()
    loggers = [logging.getLogger(name) for name in ("enclave", "asyncio", "transport")]
    saved = [(logger, logger.level, logger.propagate) for logger in loggers]
    for logger in loggers:
        logger.addHandler(lines)
        logger.setLevel(logging.DEBUG)
        logger.propagate = False  # thousands of lines: kept here in brief, not by pytest
    listener = ServiceListener(service, [credentials.certificate_pem], limits)
    status_listener = StatusListener(lambda: STATUS, **status)
    server = await loop.create_server(listener.protocol, "127.0.0.1", 0, backlog=2048)
    status_server = await asyncio.start_server(status_listener.handle, "127.0.0.1", 0, backlog=2048)
    try:
        yield (
            Node(
                listener,
                server.sockets[0].getsockname()[1],
                status_listener,
                status_server.sockets[0].getsockname()[1],
                trust,
                credentials,
            ),
            lines,
        )
    finally:
        for each in (server, status_server):
            each.close()
        await listener.close()
        await status_listener.close()
        for each in (server, status_server):
            await each.wait_closed()
        for logger, level, propagate in saved:
            logger.removeHandler(lines)
            logger.setLevel(level)
            logger.propagate = propagate
        gc.collect()  # a task that died with an exception nobody retrieved reports it now
        await asyncio.sleep(0)
    assert reported == []
    assert lines.errors() == []


def framed(payload: bytes) -> bytes:
    return HEADER.pack(len(payload)) + payload


async def closed_by_node(reader: asyncio.StreamReader) -> None:
    """Until the node ends the connection (whatever it said before)."""
    async with asyncio.timeout(BOUND):
        with contextlib.suppress(ConnectionError):
            while await reader.read(65536):
                pass


def reset(writer: asyncio.StreamWriter) -> None:
    """Abort with a TCP reset (linger 0) rather than a clean close."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


# -- item 9: garbage ends in a typed INFO line, nothing else -------------------------------------


def _mime_megabyte() -> bytes:
    body = b"Content-Type: multipart/mixed; boundary=x\n\n" + b"--x\n\n" * ((MAX_FRAME - 64) // 5)
    return b"\xd8\x24\x7a" + len(body).to_bytes(4, "big") + body


def _garbage_frames() -> dict[str, bytes]:
    hello = cbor.loads(encode(Hello(bytes(32)), 1))
    with_tag = cbor.dumps(hello).replace(cbor.dumps(bytes(32)), b"\xd8\x25\x50" + bytes(16))
    return {
        "not-cbor": framed(b"\xff\xfe\xfd"),
        "empty": framed(b""),
        "mime-megabyte": framed(_mime_megabyte()),
        "uuid-tag-in-a-field": framed(with_tag),
        "float": framed(b"\xfb\x3f\xf0\x00\x00\x00\x00\x00\x00"),
        "undefined": framed(b"\xf7"),
        "indefinite-map": framed(b"\xbf\x61v\x01\xff"),
        "a-reply": framed(encode(KeyListReply(()), 2)),
        "unknown-op": framed(cbor.dumps({"v": 1, "id": 3, "op": "launch_missiles"})),
        "trailing-byte": framed(encode(KeyList(), 2) + b"\x00"),
        "oversize": HEADER.pack(MAX_FRAME + 1),
        "truncated-body": TRUNCATED[0],
        "truncated-header": TRUNCATED[1],
    }


def test_garbage_on_either_port_ends_in_one_typed_info_line(
    cluster: Cluster, trust: NodeTrust, credentials: ClientCredentials, tmp_path: Path
) -> None:
    """Issue 9 item 9: many kinds of garbage, before TLS, after TLS (with and without a hello),
    and on the status port, each closed with a clean end and with a reset. Each connection ends
    in exactly one INFO line naming its error type; no ERROR line, no unretrieved exception."""
    stranger = ClientCredentials.load_or_create(tmp_path / "stranger")
    frames = _garbage_frames()

    async def tls(port: int, frame: bytes, *, hello: bool, abort: bool) -> None:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_context(credentials), server_hostname=""
        )
        if hello:
            writer.write(framed(encode(Hello(os.urandom(32)), 1)))
            assert (await reader.readexactly(4))[0] == 0  # the hello reply's header
        writer.write(frame)
        await writer.drain()
        if abort:
            reset(writer)
        elif frame in TRUNCATED:  # the node waits for the rest: our close ends the frame early
            writer.close()
        else:
            await closed_by_node(reader)
            writer.close()

    async def plain(port: int, data: bytes, *, abort: bool) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(data)
        await writer.drain()
        if abort:
            reset(writer)
            return
        writer.write_eof()
        await closed_by_node(reader)
        writer.close()

    async def run() -> None:
        service = cluster.services[NODE]
        async with serving(service, trust, credentials) as (node, lines):
            count = 0
            for abort in (False, True):
                for data in (b"GET / HTTP/1.0\r\n\r\n", os.urandom(2048), b"", SLOW):
                    await plain(node.port, data, abort=abort)
                    count += 1
                for frame in frames.values():
                    for hello in (True, False):
                        await tls(node.port, frame, hello=hello, abort=abort)
                        count += 1
                    if len(frame) <= 16 * 1024 + 4:
                        await plain(node.status_port, frame, abort=abort)
                        count += 1
            reader, writer = await asyncio.open_connection(  # an unlisted certificate
                "127.0.0.1", node.port, ssl=client_context(stranger), server_hostname=""
            )
            writer.write(framed(encode(Hello(os.urandom(32)), 1)))
            with pytest.raises((OSError, EOFError)):  # TLS 1.3: refused after the client's Finished
                await reader.readexactly(4)
            writer.transport.abort()
            count += 1
            await node.settled()
            ends = lines.ends()
            assert len(ends) == count, [e for e in ends]
            assert all(type(e.get("error", "deadline")) is str for e in ends)
            await node.served()

    asyncio.run(run())


class DeadNsm:
    """An NSM device that has gone away."""

    def call(self, request: bytes) -> bytes:
        raise NsmError("device unavailable")


def test_a_hello_the_nsm_cannot_answer_is_refused_not_unretrieved(
    ca: EmulatedCa, cluster: Cluster, trust: NodeTrust, credentials: ClientCredentials
) -> None:
    """Issue 9 item 9: a hello whose document cannot be made ends the connection with an error
    reply and a typed line; it used to end the connection's task with an exception nobody
    retrieved."""
    node = cluster.nodes[NODE]
    broken = NodeService(
        identity=node.identity,
        nsm=DeadNsm(),
        store=cluster.stores[NODE],
        peers=peer_verifier(ca),
        cluster_size=len(cluster.node_ids),
    )

    async def run() -> None:
        async with serving(broken, trust, credentials) as (served, lines):
            with pytest.raises(RemoteError) as refused:
                await served.channel()
            assert refused.value.error_code is ErrorCode.ATTESTATION
            await served.settled()
            assert [e["error"] for e in lines.ends()] == ["NsmError"]

    asyncio.run(run())


# -- item 4: deadlines ----------------------------------------------------------------------------


def test_unauthenticated_connections_have_deadlines(
    cluster: Cluster, trust: NodeTrust, credentials: ClientCredentials
) -> None:
    """Issue 9 item 4: a silent connection is closed at the first-byte deadline, a slow TLS
    handshake and a TLS connection without a hello at the handshake deadline, a silent status
    caller at the status deadline; an authenticated idle channel has no deadline."""
    limits = ConnectionLimits(first_byte_timeout=0.3, handshake_timeout=0.6)

    async def run() -> None:
        service = cluster.services[NODE]
        async with serving(service, trust, credentials, limits, timeout=0.3) as (node, lines):
            channel = await node.channel()
            silent = await asyncio.open_connection("127.0.0.1", node.port)
            slow = await asyncio.open_connection("127.0.0.1", node.port)
            slow[1].write(SLOW)
            helloless = await asyncio.open_connection(
                "127.0.0.1", node.port, ssl=client_context(credentials), server_hostname=""
            )
            status = await asyncio.open_connection("127.0.0.1", node.status_port)
            for reader, _ in (silent, slow, helloless, status):
                await closed_by_node(reader)
            phases = sorted((e.get("listener"), e.get("phase")) for e in lines.ends())
            assert phases == [
                ("service", "handshake"),
                ("service", "handshake"),
                ("service", "silent"),
                ("status", None),
            ]
            assert {e["event"] for e in lines.ends()} == {"connection_timeout"}
            # the idle authenticated channel outlived every deadline
            assert await channel.request(KeyList()) == KeyListReply((KEY,))
            await channel.close()
            for _, writer in (silent, slow, helloless, status):
                writer.close()

    asyncio.run(run())


# -- item 4: caps and eviction --------------------------------------------------------------------


def test_a_full_listener_evicts_the_oldest_unauthenticated_connection(
    cluster: Cluster, trust: NodeTrust, credentials: ClientCredentials
) -> None:
    """Issue 9 item 4: past the cap a new connection evicts the oldest silent one; past the
    handshake cap, the oldest handshake; an authenticated channel is never evicted while an
    unauthenticated connection is left, and with nothing evictable a newcomer is refused."""
    limits = ConnectionLimits(
        max_connections=6, max_handshakes=2, first_byte_timeout=BOUND, handshake_timeout=BOUND
    )

    async def until(check: Callable[[], bool]) -> None:
        async with asyncio.timeout(BOUND):
            while not check():
                await asyncio.sleep(0)

    async def run() -> None:
        service = cluster.services[NODE]
        async with serving(service, trust, credentials, limits) as (node, _):
            stats = node.listener.stats
            channel = await node.channel()
            slow = []
            for _ in range(3):
                slow.append(await asyncio.open_connection("127.0.0.1", node.port))
                slow[-1][1].write(SLOW)
                await until(lambda: stats.handshake + stats.evicted == len(slow))
            await closed_by_node(slow[0][0])  # the oldest handshake made room for the third
            assert (stats.handshake, stats.evicted) == (2, 1)
            silent = [await asyncio.open_connection("127.0.0.1", node.port) for _ in range(40)]
            await until(lambda: stats.evicted == 1 + 40 - 3)
            for reader, _ in silent[:-3]:  # the oldest silent ones went first
                await closed_by_node(reader)
            assert (stats.open, stats.handshake, stats.silent) == (1, 2, 3)
            assert node.listener.connections == limits.max_connections
            assert await channel.request(KeyList()) == KeyListReply((KEY,))
            for _, writer in slow + silent:
                writer.transport.abort()
            await channel.close()
            await node.settled()

            # nothing evictable: one connection, busy with a request (parked on a blob read)
            one = ConnectionLimits(max_connections=1, max_handshakes=1)
            node.listener.limits = one
            busy = await node.channel()
            with cluster.hosts[NODE].hold("key-parked") as gate:
                parked = asyncio.create_task(busy.request(KeyInfo("parked")))
                await gate.reached.wait()
                reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
                await closed_by_node(reader)
                writer.close()
                assert stats.refused == 1
                gate.opened.set()
                with pytest.raises(RemoteError):  # no such key, answered once unparked
                    await parked
            await busy.close()

    asyncio.run(run())


# -- item 4: the flood ----------------------------------------------------------------------------


async def _flood(
    node: Node, port: int, count: int, opened: list[asyncio.StreamWriter], halfway: asyncio.Event
) -> None:
    """``count`` connections, every other one "slow" (a TLS record begun and never finished);
    neither listener holds more than its cap at any point."""
    for i in range(count):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        if i % 2:
            writer.write(SLOW)
        opened.append(writer)
        assert node.listener.connections <= node.listener.limits.max_connections
        assert node.status.connections <= MAX_STATUS_CONNECTIONS
        if i == count // 2:
            halfway.set()


async def _during(halfway: asyncio.Event, check: Callable[[], Awaitable[None]]) -> None:
    await halfway.wait()
    await check()


def _rss() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")  # pragma: no cover


@pytest.mark.slow
def test_a_flood_of_1000_silent_or_slow_connections(
    cluster: Cluster, trust: NodeTrust, credentials: ClientCredentials
) -> None:
    """Issue 9 item 4: 1,000 silent or slow connections on the service port and 1,000 on the
    status port. A legitimate client (a verified channel, a status request) is served during the
    flood and after it; neither listener ever holds more than its cap; the flood's memory stays
    bounded while it lasts and is given back once it ends (it used to cost ~300 KB per pending
    connection — TLS buffers started before the first byte — and never came back)."""
    count = 1000

    async def run() -> None:
        service = cluster.services[NODE]
        async with serving(service, trust, credentials) as (node, _):
            await node.served()  # warm every cache first
            limits = node.listener.limits
            gc.collect()
            rss = _rss()
            tracemalloc.start()
            try:
                baseline, _ = tracemalloc.get_traced_memory()
                opened: list[asyncio.StreamWriter] = []
                for port in (node.port, node.status_port):
                    halfway = asyncio.Event()
                    await asyncio.gather(
                        _flood(node, port, count, opened, halfway), _during(halfway, node.served)
                    )
                await node.served()  # after: the flood's connections are still open
                _, peak = tracemalloc.get_traced_memory()
                for writer in opened:
                    writer.transport.abort()
                opened.clear()
                await node.settled()
                gc.collect()
                after, _ = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            grown = (peak - baseline) >> 20
            kept = (after - baseline) >> 10
            print(
                f"flood: traced peak +{grown} MiB, kept {kept} KiB; RSS +{(_rss() - rss) >> 20} MiB"
            )
            assert peak - baseline < 48 << 20, f"the flood held {grown} MiB"
            assert after - baseline < 4 << 20, f"{kept} KiB not given back"
            stats = node.listener.stats
            assert stats.evicted + stats.timed_out >= count - limits.max_connections
            await node.served()

    asyncio.run(run())
