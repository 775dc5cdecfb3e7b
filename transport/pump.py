"""Splice two byte streams together without looking at the bytes.

For code that holds asyncio streams — the enclave's loopback-to-vsock forwarder for boto3, tests.
(The parent's proxy uses :mod:`transport.relay`, the same guarantees at the protocol level, which
saves a copy and two task switches per chunk.) Properties:

* **Full duplex** — each direction runs independently.
* **Half-close** — end of stream on one side becomes ``write_eof`` on the other; the opposite
  direction keeps flowing until it ends too (a client may shut its write side and still read the
  reply).
* **Back-pressure** — after each write we ``await drain()``, which blocks while the destination's
  write buffer is above its high-water mark; the source's StreamReader stops reading from its socket
  once its own buffer is full. Memory per splice is therefore bounded by the two stream limits, the
  two write high-water marks and one chunk in flight, however slow either peer is.
* **Idle timeout** — one timer per splice (not per read), re-armed lazily from the time of the last
  chunk; when it fires both connections are aborted.
* **Counters** — bytes per direction, back-pressure waits and the peak write-buffer size, updated live
  in a :class:`SpliceStats` the caller may pass in and read while the splice runs.

Any connection error on either side aborts both connections (a proxy must not keep a dead peer's
partner waiting). The payload is never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from dataclasses import dataclass

from transport.errors import UsageError

DEFAULT_CHUNK = 256 * 1024
"""Largest read per step; large chunks amortise the per-step interpreter cost on bulk transfers."""


class SpliceEnd(enum.Enum):
    """Why a splice ended."""

    EOF = "eof"
    """Both directions reached end of stream."""
    IDLE_TIMEOUT = "idle_timeout"
    """No byte moved in either direction for ``idle_timeout`` seconds."""
    RESET = "reset"
    """A connection failed (reset, broken pipe); both were aborted."""
    FIRST_BYTE_TIMEOUT = "first_byte_timeout"
    """The connecting side sent nothing within ``first_byte_timeout`` (relays only)."""
    EVICTED = "evicted"
    """The owner evicted the connection to make room for a new one (relays only)."""


@dataclass(slots=True, eq=False)
class SpliceStats:
    """Live counters of one splice; compared and hashed by identity (callers keep sets of them)."""

    a_to_b: int = 0
    b_to_a: int = 0
    backpressure_waits: int = 0
    peak_buffered: int = 0
    end: SpliceEnd | None = None


class _Splice:
    __slots__ = ("_a", "_b", "_chunk", "_idle", "_last", "_loop", "_timed_out", "_timer", "stats")

    def __init__(
        self,
        a: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        b: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        idle_timeout: float | None,
        chunk: int,
        stats: SpliceStats,
    ) -> None:
        self._a = a
        self._b = b
        self._idle = idle_timeout
        self._chunk = chunk
        self.stats = stats
        self._loop = asyncio.get_running_loop()
        self._last = self._loop.time()
        self._timer: asyncio.TimerHandle | None = None
        self._timed_out = False

    async def run(self) -> SpliceStats:
        if self._idle is not None:
            self._timer = self._loop.call_at(self._last + self._idle, self._check_idle)
        back = asyncio.ensure_future(self._copy(self._b[0], self._a[1], forward=False))
        failed = False
        try:
            try:
                await self._copy(self._a[0], self._b[1], forward=True)
            except (ConnectionError, OSError):
                failed = True  # both connections are already aborted; ``back`` ends promptly
            try:
                await back
            except (ConnectionError, OSError):
                failed = True
        except asyncio.CancelledError:
            back.cancel()
            self._abort_both()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
                await back
            raise
        finally:
            if self._timer is not None:
                self._timer.cancel()
        if failed:
            self._abort_both()
        if self._timed_out:
            self.stats.end = SpliceEnd.IDLE_TIMEOUT
        elif failed:
            self.stats.end = SpliceEnd.RESET
        else:
            self.stats.end = SpliceEnd.EOF
        await self._close_both()
        return self.stats

    async def _copy(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, forward: bool
    ) -> None:
        stats = self.stats
        transport = writer.transport
        high_water = transport.get_write_buffer_limits()[1]
        chunk = self._chunk
        loop = self._loop
        try:
            while True:
                data = await reader.read(chunk)
                if not data:
                    break
                writer.write(data)
                self._last = loop.time()
                if forward:
                    stats.a_to_b += len(data)
                else:
                    stats.b_to_a += len(data)
                buffered = transport.get_write_buffer_size()
                stats.peak_buffered = max(stats.peak_buffered, buffered)
                if buffered > high_water:
                    stats.backpressure_waits += 1
                await writer.drain()
        except (ConnectionError, OSError):
            self._abort_both()
            raise
        if transport.is_closing():
            return
        if writer.can_write_eof():
            writer.write_eof()
        else:
            writer.close()

    def _check_idle(self) -> None:
        assert self._idle is not None  # the timer is only armed with a timeout
        deadline = self._last + self._idle
        if self._loop.time() >= deadline:
            self._timed_out = True
            self._timer = None
            self._abort_both()
        else:
            self._timer = self._loop.call_at(deadline, self._check_idle)

    def _abort_both(self) -> None:
        self._a[1].transport.abort()
        self._b[1].transport.abort()

    async def _close_both(self) -> None:
        for _, writer in (self._a, self._b):
            writer.close()
        for _, writer in (self._a, self._b):
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()


async def splice(
    a_reader: asyncio.StreamReader,
    a_writer: asyncio.StreamWriter,
    b_reader: asyncio.StreamReader,
    b_writer: asyncio.StreamWriter,
    *,
    idle_timeout: float | None,
    buffer: int = DEFAULT_CHUNK,
    stats: SpliceStats | None = None,
) -> SpliceStats:
    """Copy ``a -> b`` and ``b -> a`` until both directions end; then close both connections.

    Returns the (possibly caller-supplied) :class:`SpliceStats` with ``end`` set. Cancelling the
    caller aborts both connections and propagates the cancellation.
    """
    if buffer <= 0:
        raise UsageError("buffer must be positive")
    if idle_timeout is not None and idle_timeout <= 0:
        raise UsageError("idle_timeout must be positive or None")
    run = _Splice(
        (a_reader, a_writer), (b_reader, b_writer), idle_timeout, buffer, stats or SpliceStats()
    )
    return await run.run()
