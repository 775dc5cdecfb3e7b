"""splice() over real Unix-socket connections (no mocked asyncio)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from transport.address import VsockAddress
from transport.errors import UsageError
from transport.pump import SpliceEnd, SpliceStats, splice
from transport.unix import UnixSocketTransport

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _pair(
    t: UnixSocketTransport, port: int
) -> tuple[Streams, Streams, asyncio.AbstractServer]:
    """A connected (client side, server side) pair of stream tuples."""
    accepted: asyncio.Queue[Streams] = asyncio.Queue()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accepted.put((reader, writer))

    server = await t.listen(VsockAddress(16, port), handler)
    client = await t.connect(VsockAddress(16, port))
    return client, await accepted.get(), server


async def _spliced(
    t: UnixSocketTransport,
    body: Callable[[Streams, Streams], Awaitable[None]],
    *,
    idle_timeout: float | None = None,
) -> SpliceStats:
    """left client <-> [splice of left server side, right client side] <-> right server side."""
    left, left_inner, s1 = await _pair(t, 1)
    right_inner, right, s2 = await _pair(t, 2)
    stats = SpliceStats()
    task = asyncio.create_task(
        splice(*left_inner, *right_inner, idle_timeout=idle_timeout, stats=stats)
    )
    await body(left, right)
    await task
    for _, w in (left, right):
        w.close()
    s1.close()
    s2.close()
    return stats


def test_full_duplex_and_counters(short_dir: Path) -> None:
    t = UnixSocketTransport(short_dir)
    up = bytes(range(256)) * 4096  # 1 MiB
    down = b"reply" * 50_000

    async def body(left: Streams, right: Streams) -> None:
        async def send(w: asyncio.StreamWriter, data: bytes) -> None:
            w.write(data)
            await w.drain()
            w.write_eof()

        got = await asyncio.gather(
            send(left[1], up), send(right[1], down), right[0].read(), left[0].read()
        )
        assert got[2] == up
        assert got[3] == down

    stats = asyncio.run(_spliced(t, body))
    assert (stats.a_to_b, stats.b_to_a, stats.end) == (len(up), len(down), SpliceEnd.EOF)


def test_half_close_client_still_receives_the_reply(short_dir: Path) -> None:
    t = UnixSocketTransport(short_dir)

    async def body(left: Streams, right: Streams) -> None:
        left[1].write(b"request")
        left[1].write_eof()  # client is done sending
        assert await right[0].read() == b"request"  # server sees EOF after the request
        right[1].write(b"response")
        right[1].write_eof()
        assert await left[0].read() == b"response"

    assert asyncio.run(_spliced(t, body)).end is SpliceEnd.EOF


def test_idle_timeout_aborts_both_sides(short_dir: Path) -> None:
    t = UnixSocketTransport(short_dir)

    async def body(left: Streams, right: Streams) -> None:
        left[1].write(b"x")
        assert await right[0].readexactly(1) == b"x"
        # Then nobody speaks: both ends must see the connection end.
        assert await left[0].read() == b""
        assert await right[0].read() == b""

    stats = asyncio.run(_spliced(t, body, idle_timeout=0.05))
    assert stats.end is SpliceEnd.IDLE_TIMEOUT
    assert stats.a_to_b == 1


def test_reset_on_one_side_ends_the_other(short_dir: Path) -> None:
    t = UnixSocketTransport(short_dir)

    async def body(left: Streams, right: Streams) -> None:
        right[1].write(b"partial")
        assert await left[0].readexactly(7) == b"partial"
        left[1].transport.abort()  # client vanishes mid-stream
        assert await right[0].read() == b""  # seen as end of the client's stream...
        right[1].write(b"more")  # ...and the next byte towards it finds the pipe broken
        await right[1].drain()

    stats = asyncio.run(_spliced(t, body))
    assert stats.end is SpliceEnd.RESET
    assert stats.b_to_a in (7, 11)


def test_cancellation_aborts_and_propagates(short_dir: Path) -> None:
    t = UnixSocketTransport(short_dir)

    async def main() -> None:
        left, left_inner, s1 = await _pair(t, 1)
        right_inner, right, s2 = await _pair(t, 2)
        task = asyncio.create_task(splice(*left_inner, *right_inner, idle_timeout=None))
        left[1].write(b"x")
        assert await right[0].readexactly(1) == b"x"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await left[0].read() == b""
        assert await right[0].read() == b""
        for _, w in (left, right):
            w.close()
        s1.close()
        s2.close()

    asyncio.run(main())


@pytest.mark.parametrize(("buffer", "idle"), [(0, None), (1, 0.0), (1, -1.0)])
def test_bad_arguments(buffer: int, idle: float | None) -> None:
    async def main() -> None:
        r = asyncio.StreamReader()
        with pytest.raises(UsageError):
            await splice(r, None, r, None, idle_timeout=idle, buffer=buffer)  # type: ignore[arg-type]

    asyncio.run(main())
