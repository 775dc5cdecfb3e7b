"""Protocol-level relay: two asyncio transports joined directly, for the parent's proxy hot path.

:func:`transport.pump.splice` works on streams and is what most code wants. A proxy moving every
byte of a node, though, pays for the streams' extra copy and two task switches per chunk; here the
bytes go from one transport's ``data_received`` straight into the other's ``write`` with no task
in between (the measured difference is in ``bench/bench_proxy.py``). The guarantees are the same:

* **Full duplex and half-close** — ``eof_received`` on one side becomes ``write_eof`` on the other
  and keeps the first side open for the reply; both transports close once both directions ended.
* **Back-pressure** — when a destination's write buffer passes its high-water mark asyncio calls its
  ``pause_writing``, and the relay stops *reading* the source until ``resume_writing``. Memory per
  relay is bounded by the two high-water marks (:data:`WRITE_HIGH_WATER`) plus one ``recv``
  (:data:`MAX_READ`) per direction.
* **Idle timeout** — one lazily re-armed timer per relay.
* **First-byte deadline** — optionally, a connecting side that has sent nothing
  ``first_byte_timeout`` seconds after its target was connected is aborted (a silent connection
  must not hold a slot of the owner's connection limit, nor a connection at the target).
* **Eviction** — :meth:`Relay.evict` aborts both sides for an owner making room; :attr:`Relay.answered`
  says whether the target has sent anything yet (the owner evicts only unanswered relays).
* **Counters** — the same live :class:`transport.pump.SpliceStats`.
* An error on either side aborts both; the payload is never inspected or logged.

Lifecycle: the accepting side's protocol (:meth:`Relay.accepting_side`) is created by a server; the
owner then calls :meth:`Relay.connect_target` with a coroutine that opens the other side using
:meth:`Relay.target_side` as its protocol. Until the target is connected the accepted side's reading
is paused, so nothing is buffered without bound meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable

from transport.pump import SpliceEnd, SpliceStats

MAX_READ = 256 * 1024
"""Bytes asyncio's selector transports read per ``recv`` (``_SelectorSocketTransport.max_size``)."""
WRITE_HIGH_WATER = 256 * 1024
"""Write-buffer size above which the relay stops reading the source (asyncio's default is 64 KiB;
one full ``recv`` fits under this one, so a bulk transfer does not pause on every chunk)."""
SOCKET_SEND_BUFFER = 1 << 20
"""Requested ``SO_SNDBUF``: a Unix socket's default (~208 KiB) is smaller than one chunk, so each
write would otherwise be split across two event-loop turns. The kernel caps it at ``wmem_max``."""


Tap = Callable[[bool, bytes], None]
"""Observer of every forwarded chunk: ``(a_to_b, data)``. For tests that must see exactly what an
untrusted parent sees (the secrecy acceptance test); production passes none."""


class _Side(asyncio.Protocol):
    """One socket of a relay; forwards its events to the relay."""

    __slots__ = ("closed", "eof", "forward", "out", "peer", "relay", "transport")

    def __init__(self, relay: Relay, *, forward: bool) -> None:
        self.relay = relay
        self.forward = forward  # True: bytes read here flow a -> b
        self.transport: asyncio.Transport | None = None
        self.peer: _Side | None = None
        self.out: asyncio.Transport | None = None
        """The peer's transport, where bytes read here are written."""
        self.eof = False
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # stream sockets only
        self.transport = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):  # a tuning hint only
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_SEND_BUFFER)
        self.relay._side_made(self)

    def data_received(self, data: bytes) -> None:
        out = self.out
        assert out is not None  # reading starts only once the sides are linked
        out.write(data)
        relay = self.relay
        if relay.tap is not None:
            relay.tap(self.forward, data)
        relay.last_activity = relay.loop.time()
        stats = relay.stats
        if self.forward:
            stats.a_to_b += len(data)
        else:
            stats.b_to_a += len(data)
        buffered = out.get_write_buffer_size()
        stats.peak_buffered = max(stats.peak_buffered, buffered)

    def eof_received(self) -> bool:
        if not self.eof:
            self.eof = True
            self.relay._side_eof(self)
        return True  # keep the socket open: the other direction may still be flowing

    def pause_writing(self) -> None:
        # Our write buffer is full: stop reading from the side that feeds it.
        self.relay.stats.backpressure_waits += 1
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None and not self.peer.eof:
            self.peer.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.relay._side_lost(self, exc)


class Relay:
    """Joins an accepted connection (side ``a``) to a target connection (side ``b``)."""

    def __init__(
        self,
        *,
        idle_timeout: float | None,
        stats: SpliceStats | None = None,
        on_done: Callable[[Relay], None] | None = None,
        on_accept: Callable[[Relay], bool] | None = None,
        tap: Tap | None = None,
        first_byte_timeout: float | None = None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.stats = stats if stats is not None else SpliceStats()
        self.idle_timeout = idle_timeout
        self.first_byte_timeout = first_byte_timeout
        self.last_activity = self.loop.time()
        self.a = _Side(self, forward=True)
        self.b = _Side(self, forward=False)
        self._on_done = on_done
        self._on_accept = on_accept
        self.tap = tap
        self._timer: asyncio.TimerHandle | None = None
        self._first_byte_timer: asyncio.TimerHandle | None = None
        self._failed = False
        self._timed_out = False
        self._silent = False
        self.evicted = False
        """True once :meth:`evict` was called."""
        self._finished = False
        self.connect_task: asyncio.Task[None] | None = None
        self.connect_error: Exception | None = None
        """Why the target could not be reached (None if it was, or if it was never tried)."""
        self.refused = False
        """True when ``on_accept`` turned the connection away."""

    def accepting_side(self) -> asyncio.Protocol:
        return self.a

    def target_side(self) -> asyncio.Protocol:
        return self.b

    @property
    def answered(self) -> bool:
        """Whether the target has sent the connecting side anything yet."""
        return self.stats.b_to_a > 0

    # ---------------------------------------------------------------- events from the sides ----

    def _side_made(self, side: _Side) -> None:
        assert side.transport is not None  # set just before this call
        if side is self.a:
            side.transport.pause_reading()  # nothing is read until the target is connected
            if self._on_accept is not None and not self._on_accept(self):
                self.refused = True
                self._failed = True
                side.transport.abort()
            return
        # The target connected: link the two and start moving bytes.
        self.a.peer, self.b.peer = self.b, self.a
        self.a.out, self.b.out = self.b.transport, self.a.transport
        if self.a.closed:  # the client left while we were connecting
            assert self.b.transport is not None
            self.b.transport.abort()
            return
        assert self.a.transport is not None
        self.a.transport.resume_reading()
        if self.idle_timeout is not None:
            self._timer = self.loop.call_at(
                self.last_activity + self.idle_timeout, self._check_idle
            )
        if self.first_byte_timeout is not None:
            self._first_byte_timer = self.loop.call_later(
                self.first_byte_timeout, self._check_first_byte
            )

    def _side_eof(self, side: _Side) -> None:
        peer = side.peer
        if peer is None or peer.transport is None:
            return
        if peer.eof or not peer.transport.can_write_eof():
            self._close_both()
        else:
            peer.transport.write_eof()

    def _side_lost(self, side: _Side, exc: Exception | None) -> None:
        if exc is not None:
            self._failed = True
        peer = side.peer
        if peer is not None and peer.transport is not None and not peer.closed:
            if exc is not None or self._timed_out:
                peer.transport.abort()
            else:
                peer.transport.close()  # flush what is still owed to it, then close
        self._maybe_finish()

    # ----------------------------------------------------------------------------- control ----

    def connect_target(self, opener: Callable[[], Awaitable[object]]) -> None:
        """Run ``opener`` (which must use :meth:`target_side` as its protocol) in a task."""
        task = self.loop.create_task(self._connect(opener))
        self.connect_task = task
        # A done-callback, not a ``finally``: a task cancelled before its first step never runs
        # its body, and the relay must still finish.
        task.add_done_callback(self._connect_done)

    async def _connect(self, opener: Callable[[], Awaitable[object]]) -> None:
        try:
            await opener()
        except Exception as exc:
            self.connect_error = exc
            self._failed = True
            if self.a.transport is not None:
                self.a.transport.abort()

    def _connect_done(self, task: asyncio.Task[None]) -> None:
        self.connect_task = None
        if task.cancelled():
            self._failed = True
            if self.a.transport is not None:
                self.a.transport.abort()
        self._maybe_finish()

    def evict(self) -> None:
        """Abort both connections now to make room (ends as :attr:`SpliceEnd.EVICTED`)."""
        self.evicted = True
        self.abort()

    def abort(self) -> None:
        """Abort both connections now (shutdown)."""
        self._failed = True
        if self.connect_task is not None:
            self.connect_task.cancel()
        for side in (self.a, self.b):
            if side.transport is not None:
                side.transport.abort()

    def _close_both(self) -> None:
        for side in (self.a, self.b):
            if side.transport is not None:
                side.transport.close()

    def _check_idle(self) -> None:
        assert self.idle_timeout is not None  # armed only with a timeout
        deadline = self.last_activity + self.idle_timeout
        if self.loop.time() >= deadline:
            self._timer = None
            self._timed_out = True
            for side in (self.a, self.b):
                if side.transport is not None:
                    side.transport.abort()
        else:
            self._timer = self.loop.call_at(deadline, self._check_idle)

    def _check_first_byte(self) -> None:
        self._first_byte_timer = None
        if self.stats.a_to_b == 0:
            self._silent = True
            self.abort()

    def _maybe_finish(self) -> None:
        if self._finished or self.connect_task is not None:
            return
        for side in (self.a, self.b):
            if side.transport is not None and not side.closed:
                return
        self._finished = True
        for timer in (self._timer, self._first_byte_timer):
            if timer is not None:
                timer.cancel()
        if self.evicted:
            self.stats.end = SpliceEnd.EVICTED
        elif self._silent:
            self.stats.end = SpliceEnd.FIRST_BYTE_TIMEOUT
        elif self._timed_out:
            self.stats.end = SpliceEnd.IDLE_TIMEOUT
        elif self._failed:
            self.stats.end = SpliceEnd.RESET
        else:
            self.stats.end = SpliceEnd.EOF
        if self._on_done is not None:
            self._on_done(self)
