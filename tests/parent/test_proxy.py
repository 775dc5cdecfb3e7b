"""The parent proxy over real sockets: TCP on loopback and the Unix-socket transport."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import random
import shutil
import tempfile
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parent.errors import ConfigError
from parent.proxy import AllowList, InboundRoute, OutboundRoute, Proxy, ProxyLimits
from transport.address import PARENT_CID, VsockAddress
from transport.relay import MAX_READ, WRITE_HIGH_WATER
from transport.unix import UnixSocketTransport

ENCLAVE = 16
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _hung_up(reader: asyncio.StreamReader) -> bool:
    """True if the peer closed without sending anything (a clean EOF or a reset)."""
    try:
        return await reader.read() == b""
    except ConnectionResetError:
        return True


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def _reply_after_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Reads until the peer half-closes, then answers: proves the half-close got through."""
    data = await reader.read()
    writer.write(b"got:" + data[::-1])
    await writer.drain()
    writer.close()


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


@asynccontextmanager
async def _inbound(
    runtime: Path, handler: Handler, limits: ProxyLimits | None = None
) -> AsyncIterator[tuple[Proxy, int]]:
    enclave = UnixSocketTransport(runtime, local_cid=ENCLAVE)
    handlers: set[asyncio.Task[None]] = set()

    async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            await handler(reader, writer)
        finally:
            handlers.discard(task)

    server = await enclave.listen(VsockAddress(ENCLAVE, 5000), tracked)
    proxy = Proxy(UnixSocketTransport(runtime, local_cid=PARENT_CID), limits=limits)
    port = await proxy.add_inbound(InboundRoute("api", "127.0.0.1", 0, VsockAddress(ENCLAVE, 5000)))
    try:
        yield proxy, port
    finally:
        await proxy.close()
        server.close()
        await server.wait_closed()
        # The enclave-side handlers see the proxy's abort as end of stream and finish.
        await asyncio.gather(*handlers, return_exceptions=True)


async def _half_close_exchange(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    writer.write_eof()
    reply = await reader.read()
    writer.close()
    await writer.wait_closed()
    return reply


def test_inbound_bytes_flow_both_ways_with_half_close(runtime_dir: Path) -> None:
    payload = os.urandom(300_000)

    async def main() -> None:
        async with _inbound(runtime_dir, _reply_after_eof) as (proxy, port):
            assert await _half_close_exchange(port, payload) == b"got:" + payload[::-1]
            while proxy.metrics().completed < 1:  # the splice finishes after the client's close
                await asyncio.sleep(0)
            m = proxy.metrics()
            assert (m.accepted, m.completed, m.active) == (1, 1, 0)
            assert (m.bytes_in, m.bytes_out) == (len(payload), len(payload) + 4)

    asyncio.run(main())


@settings(max_examples=25)
@given(sizes=st.lists(st.integers(min_value=1, max_value=300_000), min_size=1, max_size=6))
def test_any_chunking_arrives_intact(sizes: list[int]) -> None:
    """Whatever the write pattern, the bytes arrive in order, complete, and are counted."""
    rng = random.Random(len(sizes))
    chunks = [rng.randbytes(n) for n in sizes]
    runtime = Path(tempfile.mkdtemp(prefix="ksh", dir="/tmp"))

    async def main() -> None:
        async with _inbound(runtime, _reply_after_eof) as (proxy, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for chunk in chunks:
                writer.write(chunk)
                await writer.drain()
            writer.write_eof()
            body = b"".join(chunks)
            assert await reader.read() == b"got:" + body[::-1]
            writer.close()
            while proxy.metrics().completed < 1:
                await asyncio.sleep(0)
            assert proxy.metrics().bytes_in == len(body)

    try:
        asyncio.run(main())
    finally:
        shutil.rmtree(runtime, ignore_errors=True)


def test_outbound_route_reaches_an_allow_listed_tcp_target(runtime_dir: Path) -> None:
    seen: list[tuple[str, str, bytes]] = []

    async def main() -> None:
        kms = await asyncio.start_server(_reply_after_eof, "127.0.0.1", 0)
        kms_port = kms.sockets[0].getsockname()[1]
        proxy = Proxy(
            UnixSocketTransport(runtime_dir, local_cid=PARENT_CID),
            allow=AllowList({("127.0.0.1", kms_port)}),
            tap=lambda route, direction, data: seen.append((route, direction, data)),
        )
        await proxy.add_outbound(OutboundRoute("kms", 8443, "127.0.0.1", kms_port))
        enclave = UnixSocketTransport(runtime_dir, local_cid=ENCLAVE)
        reader, writer = await enclave.connect(VsockAddress(PARENT_CID, 8443))
        writer.write(b"client hello")
        writer.write_eof()
        assert await reader.read() == b"got:" + b"client hello"[::-1]
        writer.close()
        await proxy.close()
        kms.close()
        await kms.wait_closed()

    asyncio.run(main())
    # The tap sees exactly the bytes the parent forwarded, each way.
    assert b"".join(d for r, way, d in seen if (r, way) == ("kms", "in")) == b"client hello"
    assert b"".join(d for r, way, d in seen if way == "out") == b"got:" + b"client hello"[::-1]


def test_allow_list_refuses_what_is_not_listed(
    runtime_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="parent.proxy")

    async def main() -> None:
        kms = await asyncio.start_server(_echo, "127.0.0.1", 0)
        kms_port = kms.sockets[0].getsockname()[1]
        allow = AllowList({("127.0.0.1", kms_port)})
        proxy = Proxy(UnixSocketTransport(runtime_dir, local_cid=PARENT_CID), allow=allow)
        # A route to an unlisted target is refused when it is added...
        with pytest.raises(ConfigError) as info:
            await proxy.add_outbound(OutboundRoute("evil", 8444, "127.0.0.1", kms_port + 1))
        assert info.value.field == "outbound.evil"
        await proxy.add_outbound(OutboundRoute("kms", 8443, "127.0.0.1", kms_port))
        enclave = UnixSocketTransport(runtime_dir, local_cid=ENCLAVE)
        # ...a port with no route has no listener: the connect is refused...
        with pytest.raises(ConnectionRefusedError):
            await enclave.connect(VsockAddress(PARENT_CID, 8444))
        # ...and a revoked target is refused per connection: closed at once, counted, logged.
        allow.revoke("127.0.0.1", kms_port)
        reader, writer = await enclave.connect(VsockAddress(PARENT_CID, 8443))
        assert await _hung_up(reader)
        writer.close()
        m = proxy.metrics("kms")
        assert (m.refused_not_allowed, m.completed, m.bytes_in) == (1, 0, 0)
        await proxy.close()
        kms.close()
        await kms.wait_closed()

    asyncio.run(main())
    assert any(
        getattr(r, "fields", None) == {"event": "refused", "route": "kms", "reason": "not_allowed"}
        for r in caplog.records
    )


def test_unreachable_enclave_counts_a_connect_failure(runtime_dir: Path) -> None:
    async def main() -> None:
        proxy = Proxy(UnixSocketTransport(runtime_dir, local_cid=PARENT_CID))
        port = await proxy.add_inbound(
            InboundRoute("api", "127.0.0.1", 0, VsockAddress(ENCLAVE, 1))
        )
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await _hung_up(reader)
        writer.close()
        assert proxy.metrics().connect_failed == 1
        await proxy.close()

    asyncio.run(main())


def test_idle_connections_are_closed(runtime_dir: Path) -> None:
    async def main() -> None:
        async with _inbound(runtime_dir, _echo, ProxyLimits(idle_timeout=0.05)) as (proxy, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"hi")
            assert await reader.readexactly(2) == b"hi"
            assert await reader.read() == b""  # then silence: the proxy hangs up
            writer.close()
            while proxy.metrics().completed < 1:
                await asyncio.sleep(0)
            assert proxy.metrics().idle_timeouts == 1

    asyncio.run(main())


def test_slow_reader_back_pressure_keeps_buffers_bounded(runtime_dir: Path) -> None:
    total = 8 << 20
    received = bytearray()

    async def slow_sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(4096):  # a reader far slower than the sender
            received.extend(data)
            await asyncio.sleep(0)
        writer.close()

    async def main() -> None:
        async with _inbound(runtime_dir, slow_sink) as (proxy, port):
            payload = os.urandom(total)
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(payload)
            writer.write_eof()
            await writer.drain()
            while proxy.metrics().completed < 1:
                await asyncio.sleep(0)
            writer.close()
            assert bytes(received) == payload
            m = proxy.metrics()
            assert m.backpressure_waits > 0  # the proxy did have to wait for the slow reader
            # Never more than the write high-water mark plus one recv buffered.
            assert 0 < m.peak_buffered <= WRITE_HIGH_WATER + MAX_READ

    asyncio.run(main())


def test_clients_vanishing_mid_stream_leave_nothing_behind(runtime_dir: Path) -> None:
    async def main() -> None:
        async with _inbound(runtime_dir, _echo) as (proxy, port):
            fds, tasks = _fds(), len(asyncio.all_tasks())
            for i in range(50):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(os.urandom(100_000))
                if i % 2:
                    await reader.readexactly(10)  # some vanish after a partial reply
                writer.transport.abort()
            while proxy.metrics().active:
                await asyncio.sleep(0)
            for _ in range(3):  # let aborted transports finish closing
                await asyncio.sleep(0)
            assert proxy.metrics().completed == 50
            assert _fds() == fds
            assert len(asyncio.all_tasks()) == tasks

    asyncio.run(main())


def test_burst_of_1000_connections_without_leaks(runtime_dir: Path) -> None:
    async def one(port: int, i: int) -> None:
        body = i.to_bytes(4, "big") * 4
        assert await _half_close_exchange(port, body) == b"got:" + body[::-1]

    async def main() -> None:
        fds_before = _fds()
        async with _inbound(runtime_dir, _reply_after_eof) as (proxy, port):
            fds, tasks = _fds(), len(asyncio.all_tasks())
            await asyncio.gather(*(one(port, i) for i in range(100)))  # warm caches first
            gc.collect()
            tracemalloc.start()
            try:
                for batch in range(1, 10):
                    await asyncio.gather(*(one(port, batch * 100 + i) for i in range(100)))
                while proxy.metrics().active:
                    await asyncio.sleep(0)
                for _ in range(3):
                    await asyncio.sleep(0)
                gc.collect()
                grown, _ = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert grown < 256 * 1024, f"{grown} bytes still allocated after 900 connections"
            m = proxy.metrics()
            assert (m.accepted, m.completed, m.refused_limit, m.connect_failed) == (
                1000,
                1000,
                0,
                0,
            )
            assert _fds() == fds
            assert len(asyncio.all_tasks()) == tasks
        assert _fds() == fds_before

    asyncio.run(main())


def test_connection_limit_refuses_the_excess_promptly(runtime_dir: Path) -> None:
    async def main() -> None:
        async with _inbound(runtime_dir, _echo, ProxyLimits(max_connections=20)) as (proxy, port):
            held = []
            for _ in range(20):  # fill the route; each is proved live by an echo
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"x")
                assert await reader.readexactly(1) == b"x"
                held.append(writer)
            refused = 0
            for _ in range(15):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                refused += await _hung_up(reader)
                writer.close()
            assert refused == 15
            m = proxy.metrics()
            assert (m.refused_limit, m.active) == (15, 20)
            for writer in held:
                writer.close()

    asyncio.run(main())


def test_close_aborts_live_connections_and_their_tasks(runtime_dir: Path) -> None:
    async def main() -> None:
        tasks = len(asyncio.all_tasks())
        async with _inbound(runtime_dir, _echo) as (proxy, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"x")
            await reader.readexactly(1)
            assert proxy.metrics().active == 1
        assert await reader.read() == b""
        writer.close()
        assert len(asyncio.all_tasks()) == tasks

    asyncio.run(main())


def test_limits_are_validated() -> None:
    with pytest.raises(ConfigError) as info:
        ProxyLimits(max_connections=0)
    assert info.value.field == "max_connections"
    with pytest.raises(ConfigError):
        ProxyLimits(idle_timeout=0)
    with pytest.raises(ConfigError):
        ProxyLimits(connect_timeout=-1)
