"""transport.relay over real Unix-socket connections (the proxy's hot path)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from pathlib import Path

from transport.address import VsockAddress
from transport.pump import SpliceEnd
from transport.relay import Relay
from transport.unix import UnixSocketTransport

FRONT = VsockAddress(16, 1)
BACK = VsockAddress(16, 2)


async def _reply_after_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    data = await reader.read()
    writer.write(b"got:" + data[::-1])
    await writer.drain()
    writer.close()


async def _serve_relay(
    t: UnixSocketTransport,
    done: list[Relay],
    *,
    admit: Callable[[Relay], bool] = lambda r: True,
    idle: float | None = None,
) -> asyncio.AbstractServer:
    def factory() -> asyncio.Protocol:
        def on_accept(relay: Relay) -> bool:
            if not admit(relay):
                return False
            relay.connect_target(lambda: t.connect_protocol(BACK, relay.target_side))
            return True

        relay = Relay(idle_timeout=idle, on_accept=on_accept, on_done=done.append)
        return relay.accepting_side()

    return await t.listen_protocol(FRONT, factory)


def test_relay_moves_bytes_with_half_close_and_counts(short_dir: Path) -> None:
    t = UnixSocketTransport(short_dir)
    payload = os.urandom(1 << 20)

    async def main() -> Relay:
        done: list[Relay] = []
        back = await t.listen(BACK, _reply_after_eof)
        front = await _serve_relay(t, done)
        reader, writer = await t.connect(FRONT)
        writer.write(payload)
        writer.write_eof()
        assert await reader.read() == b"got:" + payload[::-1]
        writer.close()
        while not done:
            await asyncio.sleep(0)
        front.close()
        back.close()
        return done[0]

    relay = asyncio.run(main())
    assert relay.stats.end is SpliceEnd.EOF
    assert (relay.stats.a_to_b, relay.stats.b_to_a) == (len(payload), len(payload) + 4)
    assert relay.connect_error is None
    assert not relay.refused


def test_refused_and_unreachable(short_dir: Path) -> None:
    t = UnixSocketTransport(short_dir)

    async def attempt(admit: Callable[[Relay], bool]) -> Relay:
        done: list[Relay] = []
        front = await _serve_relay(t, done, admit=admit)
        reader, writer = await t.connect(FRONT)
        with contextlib.suppress(ConnectionResetError):  # a hang-up may arrive as a reset
            assert await reader.read() == b""
        writer.close()
        while not done:
            await asyncio.sleep(0)
        front.close()
        await front.wait_closed()
        return done[0]

    refused = asyncio.run(attempt(lambda r: False))
    assert refused.refused
    unreachable = asyncio.run(attempt(lambda r: True))  # nothing listens on BACK
    assert isinstance(unreachable.connect_error, ConnectionRefusedError)
    assert unreachable.stats.end is SpliceEnd.RESET


def test_idle_relay_is_aborted(short_dir: Path) -> None:
    t = UnixSocketTransport(short_dir)

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data)
        writer.close()

    async def main() -> Relay:
        done: list[Relay] = []
        back = await t.listen(BACK, echo)
        front = await _serve_relay(t, done, idle=0.05)
        reader, writer = await t.connect(FRONT)
        writer.write(b"ping")
        assert await reader.readexactly(4) == b"ping"
        assert await reader.read() == b""
        writer.close()
        while not done:
            await asyncio.sleep(0)
        front.close()
        back.close()
        return done[0]

    assert asyncio.run(main()).stats.end is SpliceEnd.IDLE_TIMEOUT


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_client_leaving_while_the_target_connects(short_dir: Path) -> None:
    """The target connects after the client is gone: it is dropped, nothing leaks."""
    t = UnixSocketTransport(short_dir)

    async def main() -> Relay:
        back = await t.listen(BACK, _reply_after_eof)
        proceed = asyncio.Event()
        done: list[Relay] = []
        relays: list[Relay] = []

        def factory() -> asyncio.Protocol:
            def on_accept(relay: Relay) -> bool:
                async def slow_open() -> object:
                    await proceed.wait()
                    return await t.connect_protocol(BACK, relay.target_side)

                relay.connect_target(slow_open)
                return True

            relay = Relay(idle_timeout=None, on_accept=on_accept, on_done=done.append)
            relays.append(relay)
            return relay.accepting_side()

        front = await t.listen_protocol(FRONT, factory)
        fds = _fds()
        _, writer = await t.connect(FRONT)
        writer.write(b"never delivered")
        while not relays or relays[0].connect_task is None:
            await asyncio.sleep(0)
        writer.transport.abort()  # the client gives up while we connect
        proceed.set()
        while not done:
            await asyncio.sleep(0)
        for _ in range(3):
            await asyncio.sleep(0)
        assert _fds() == fds
        front.close()
        back.close()
        return done[0]

    relay = asyncio.run(main())
    # What the client sent before leaving is still delivered (as TCP would), then all is closed.
    assert relay.stats.a_to_b in (0, len(b"never delivered"))
    assert relay.stats.end is not None


def test_abort_during_connect_finishes_the_relay(short_dir: Path) -> None:
    t = UnixSocketTransport(short_dir)

    async def main() -> Relay:
        done: list[Relay] = []
        relays: list[Relay] = []

        def factory() -> asyncio.Protocol:
            def on_accept(relay: Relay) -> bool:
                relay.connect_target(lambda: asyncio.Event().wait())  # never connects
                return True

            relay = Relay(idle_timeout=None, on_accept=on_accept, on_done=done.append)
            relays.append(relay)
            return relay.accepting_side()

        front = await t.listen_protocol(FRONT, factory)
        reader, writer = await t.connect(FRONT)
        while not relays or relays[0].connect_task is None:
            await asyncio.sleep(0)
        relays[0].abort()  # what Proxy.close() does
        assert await reader.read() == b""
        while not done:
            await asyncio.sleep(0)
        writer.close()
        front.close()
        return done[0]

    relay = asyncio.run(main())
    assert relay.stats.end is SpliceEnd.RESET
