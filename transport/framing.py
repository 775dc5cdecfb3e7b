"""Length-prefixed framing: a 4-byte big-endian length, then exactly that many payload bytes.

The length is checked against the limit *before* any payload byte is read, so a peer cannot make us
allocate more than ``max_size`` bytes per frame. A frame of length 0 is valid (an empty payload). The
stream must end exactly at a frame boundary: an end inside the header or body is ``TruncatedFrameError``,
an end before the first header byte is ``StreamClosedError``.

:class:`FramedStream` adds the policy the issue asks for: on an oversize or truncated frame it logs
a structured reason (sizes and the peer, never payload bytes) and closes the connection, so a
misbehaving peer cannot keep a half-parsed stream open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct

from transport.errors import (
    FrameTooLargeError,
    FramingError,
    StreamClosedError,
    TruncatedFrameError,
)

log = logging.getLogger(__name__)

HEADER = struct.Struct(">I")
MAX_FRAME = 1 << 20
"""Default maximum payload size (1 MiB)."""


async def read_frame(reader: asyncio.StreamReader, max_size: int = MAX_FRAME) -> bytes:
    """Read one frame's payload; raise a :class:`FramingError` if the stream breaks the framing."""
    try:
        header = await reader.readexactly(HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            raise StreamClosedError from None
        raise TruncatedFrameError(HEADER.size, len(exc.partial)) from None
    (size,) = HEADER.unpack(header)
    if size > max_size:
        raise FrameTooLargeError(size, max_size)
    try:
        return await reader.readexactly(size)
    except asyncio.IncompleteReadError as exc:
        raise TruncatedFrameError(size, len(exc.partial)) from None


def encode_frame(payload: bytes, max_size: int = MAX_FRAME) -> bytes:
    """The frame bytes for ``payload``; refuses payloads the peer would refuse."""
    if len(payload) > max_size:
        raise FrameTooLargeError(len(payload), max_size)
    return HEADER.pack(len(payload)) + payload


async def write_frame(
    writer: asyncio.StreamWriter, payload: bytes, max_size: int = MAX_FRAME
) -> None:
    """Write one frame and wait for the transport's buffer to drain below its high-water mark."""
    writer.write(encode_frame(payload, max_size))
    await writer.drain()


def peer_name(writer: asyncio.StreamWriter) -> str:
    """A printable peer identity for logs (address only; never data)."""
    peer = writer.get_extra_info("peername")
    return repr(peer) if peer not in (None, "", b"") else "unnamed"


class FramedStream:
    """A connection carrying frames; closes itself, with a logged reason, on any framing error."""

    __slots__ = ("_closed", "max_size", "reader", "writer")

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        max_size: int = MAX_FRAME,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.max_size = max_size
        self._closed = False

    async def recv(self) -> bytes:
        """The next payload. On a framing error the connection is closed before the error is raised."""
        try:
            return await read_frame(self.reader, self.max_size)
        except FramingError as exc:
            await self.abort(exc)
            raise

    async def send(self, payload: bytes) -> None:
        await write_frame(self.writer, payload, self.max_size)

    async def abort(self, reason: FramingError) -> None:
        """Log why the connection ends (structured, no payload) and close it."""
        fields: dict[str, object] = {"error": type(reason).__name__}
        if isinstance(reason, FrameTooLargeError):
            fields.update(size=reason.size, limit=reason.limit)
        elif isinstance(reason, TruncatedFrameError):
            fields.update(expected=reason.expected, received=reason.received)
        level = logging.DEBUG if isinstance(reason, StreamClosedError) else logging.WARNING
        log.log(
            level,
            "frame rejected",
            extra={"fields": {"event": "frame_rejected", "peer": peer_name(self.writer), **fields}},
        )
        await self.close()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.writer.close()
        # The peer may already have reset the connection; it is closed either way.
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()
