"""The parent's inbound proxy under a flood of silent connections (issue 9, item 4).

The parent is the first hop: before this, 256 silent TCP connections filled a route's
connection limit and every further client was refused at once for as long as they stayed open.
Now a full route evicts the oldest connection its target has not answered yet (a client that has
been answered is never evicted by a newcomer), and a connection that sends nothing is closed at
the first-byte deadline.

Real sockets: TCP on loopback into the proxy, the Unix-socket transport to an echo "enclave".
No sleeps: each step awaits a reply or the proxy closing a connection, under a bound.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import pytest

from parent.errors import ConfigError
from parent.proxy import InboundRoute, Proxy, ProxyLimits
from transport.address import PARENT_CID, VsockAddress
from transport.unix import UnixSocketTransport

ENCLAVE = 16
BOUND = 60.0


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


@asynccontextmanager
async def _echo_route(runtime: Path, limits: ProxyLimits) -> AsyncIterator[tuple[Proxy, int]]:
    handlers: set[asyncio.Task[None]] = set()

    async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            await _echo(reader, writer)
        finally:
            handlers.discard(task)

    enclave = UnixSocketTransport(runtime, local_cid=ENCLAVE)
    server = await enclave.listen(VsockAddress(ENCLAVE, 5000), tracked)
    proxy = Proxy(UnixSocketTransport(runtime, local_cid=PARENT_CID), limits=limits)
    port = await proxy.add_inbound(InboundRoute("api", "127.0.0.1", 0, VsockAddress(ENCLAVE, 5000)))
    try:
        yield proxy, port
    finally:
        await proxy.close()
        server.close()
        await server.wait_closed()
        await asyncio.gather(*handlers, return_exceptions=True)


async def _served(port: int) -> None:
    """A legitimate client: connects, is answered, leaves."""
    async with asyncio.timeout(BOUND):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"ping")
        assert await reader.readexactly(4) == b"ping"
        writer.close()
        await writer.wait_closed()


async def _closed_by_proxy(reader: asyncio.StreamReader) -> None:
    async with asyncio.timeout(BOUND):
        with suppress(ConnectionResetError):
            assert await reader.read() == b""


def test_a_flood_of_silent_connections_does_not_lock_clients_out(runtime_dir: Path) -> None:
    """Issue 9 item 4: 1,000 silent connections against a route capped at 256. A client is served
    during and after the flood; the flood's oldest connections are the ones evicted; a client
    that was answered stays up through the whole flood."""
    limits = ProxyLimits(max_connections=256)

    async def main() -> None:
        async with _echo_route(runtime_dir, limits) as (proxy, port):
            answered = await asyncio.open_connection("127.0.0.1", port)
            answered[1].write(b"x")
            assert await answered[0].readexactly(1) == b"x"
            silent = []
            for i in range(1000):
                silent.append(await asyncio.open_connection("127.0.0.1", port))
                if i == 500:
                    await _served(port)  # during
                assert proxy.metrics().active <= limits.max_connections
            await _served(port)  # after, the flood still open
            for reader, _ in silent[:500]:  # the oldest silent ones made room
                await _closed_by_proxy(reader)
            answered[1].write(b"y")  # the answered client was never evicted
            assert await answered[0].readexactly(1) == b"y"
            m = proxy.metrics()
            assert m.refused_limit == 0
            assert m.evicted >= 1000 + 2 - limits.max_connections
            for _, writer in [*silent, answered]:
                writer.close()

    asyncio.run(main())


def test_a_silent_connection_is_closed_at_the_first_byte_deadline(runtime_dir: Path) -> None:
    """Issue 9 item 4: a client that sends nothing is closed at the first-byte deadline; one
    that has spoken outlives it."""
    limits = ProxyLimits(first_byte_timeout=0.3)

    async def main() -> None:
        async with _echo_route(runtime_dir, limits) as (proxy, port):
            talking = await asyncio.open_connection("127.0.0.1", port)
            talking[1].write(b"x")
            assert await talking[0].readexactly(1) == b"x"
            silent = await asyncio.open_connection("127.0.0.1", port)
            await _closed_by_proxy(silent[0])
            talking[1].write(b"y")  # past the deadline, still up
            assert await talking[0].readexactly(1) == b"y"
            assert proxy.metrics().first_byte_timeouts == 1
            for _, writer in (talking, silent):
                writer.close()

    asyncio.run(main())


def test_a_full_route_of_answered_clients_refuses_the_newcomer(runtime_dir: Path) -> None:
    """Issue 9 item 4: eviction only takes connections the target has not answered, so a flood
    cannot push out clients that are being served; with none of those, the newcomer is refused."""

    async def main() -> None:
        async with _echo_route(runtime_dir, ProxyLimits(max_connections=3)) as (proxy, port):
            held = []
            for _ in range(3):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"x")
                assert await reader.readexactly(1) == b"x"
                held.append((reader, writer))
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await _closed_by_proxy(reader)
            writer.close()
            m = proxy.metrics()
            assert (m.refused_limit, m.evicted, m.active) == (1, 0, 3)
            for _, each in held:
                each.close()

    asyncio.run(main())


def test_the_first_byte_deadline_is_validated() -> None:
    with pytest.raises(ConfigError) as info:
        ProxyLimits(first_byte_timeout=0)
    assert info.value.field == "first_byte_timeout"
    assert ProxyLimits(first_byte_timeout=None).first_byte_timeout is None
