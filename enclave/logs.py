"""The enclave's logs: JSON lines to stderr and, through host services, to the parent.

A production Nitro enclave has no console (stderr exists only in debug mode), so the log channel
(:class:`LogChannel`) is how the enclave's events reach the host: a logging handler formats each
record in the one JSON-lines format (:mod:`transport.jsonlog`, ``source: "enclave"``) into a
bounded buffer, and one task hands batches to the parent (``PutLogs``), which re-emits them in its
own log stream. Everything the enclave logs leaves through the untrusted parent, so it is public by
construction: call sites log events, sizes, identifiers and error *types* — never key material,
plaintexts or envelopes — and values that are not JSON scalars are written as ``"<unloggable>"``.

The buffer is bounded (:data:`CHANNEL_BUFFER` lines): when the parent does not take lines (it is
restarting, or hostile), the oldest are dropped and counted, and the count travels with the next
batch. Logging never blocks or fails a request because of the channel.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading

from transport.errors import TransportError
from transport.hostclient import HostClient
from transport.hostproto import MAX_LOG_BATCH, MAX_LOG_LINE
from transport.jsonlog import JsonFormatter as _SharedJsonFormatter
from transport.jsonlog import configure_json_logging

__all__ = ["CHANNEL_BUFFER", "JsonFormatter", "LogChannel", "configure_logging"]

#: Log lines kept while the parent does not take them; older ones are dropped (and counted).
CHANNEL_BUFFER = 4096
#: Seconds between attempts while the parent does not answer (it may be restarting).
RETRY_INTERVAL = 1.0

SOURCE = "enclave"


class JsonFormatter(_SharedJsonFormatter):
    """The shared JSON-lines formatter, with ``source: "enclave"``."""

    def __init__(self, source: str = SOURCE) -> None:
        super().__init__(source)


def configure_logging(level: int = logging.INFO) -> None:
    """JSON lines to stderr (the console of a debug or emulated enclave)."""
    configure_json_logging(SOURCE, level)


class LogChannel(logging.Handler):
    """A logging handler buffering JSON lines for the parent, and the task that hands them over.

    ``emit`` may run on any thread (handlers log from ``asyncio.to_thread`` workers); it only
    appends to the buffer and wakes the sender. :meth:`run` is the sender: it sends batches of at
    most :data:`~transport.hostproto.MAX_LOG_BATCH` lines, one host-services request each, and
    puts a batch the parent did not take back at the front of the buffer.
    """

    def __init__(
        self,
        host: HostClient,
        *,
        level: int = logging.INFO,
        capacity: int = CHANNEL_BUFFER,
        retry_interval: float = RETRY_INTERVAL,
    ) -> None:
        super().__init__(level)
        self.setFormatter(JsonFormatter())
        self._host = host
        self._capacity = capacity
        self._retry = retry_interval
        self._lines: collections.deque[str] = collections.deque()
        self._lock = threading.Lock()
        self._dropped = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self.sent = 0

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._lines)

    @property
    def dropped(self) -> int:
        with self._lock:
            return self._dropped

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # a record that cannot be formatted is dropped, never raised
            line = ""
        with self._lock:
            if not line or len(line) > MAX_LOG_LINE:
                self._dropped += 1
                return
            if len(self._lines) >= self._capacity:
                self._lines.popleft()
                self._dropped += 1
            self._lines.append(line)
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closing
                loop.call_soon_threadsafe(wake.set)

    def _take(self) -> tuple[tuple[str, ...], int]:
        with self._lock:
            count = min(len(self._lines), MAX_LOG_BATCH)
            batch = tuple(self._lines.popleft() for _ in range(count))
            dropped, self._dropped = self._dropped, 0
        return batch, dropped

    def _give_back(self, batch: tuple[str, ...], dropped: int) -> None:
        with self._lock:
            room = self._capacity - len(self._lines)
            kept = batch[len(batch) - room :] if room < len(batch) else batch
            self._lines.extendleft(reversed(kept))
            self._dropped += dropped + len(batch) - len(kept)

    async def run(self) -> None:
        """Send buffered lines as they come, until cancelled."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        if self.pending:  # lines logged before the loop ran (the start of the boot)
            self._wake.set()
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while not await self.send_buffered():
                    await asyncio.sleep(self._retry)
        finally:
            self._loop = None

    async def send_buffered(self) -> bool:
        """Send everything buffered now; False if the parent did not take a batch."""
        while True:
            batch, dropped = self._take()
            if not batch and not dropped:
                return True
            try:
                await self._host.put_logs(batch, dropped)
            except (TransportError, OSError, EOFError):
                self._give_back(batch, dropped)
                return False
            self.sent += len(batch)
