from __future__ import annotations

import asyncio
import logging
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transport.address import VsockAddress
from transport.errors import FrameTooLargeError, StreamClosedError, TruncatedFrameError
from transport.framing import FramedStream, encode_frame, read_frame, write_frame
from transport.jsonlog import JsonFormatter
from transport.unix import UnixSocketTransport


def _reader(data: bytes, *, eof: bool = True) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    return reader


@given(
    payloads=st.lists(st.binary(max_size=300), max_size=8),
    cut=st.integers(min_value=1, max_value=50),
)
def test_frames_round_trip_whatever_the_chunking(payloads: list[bytes], cut: int) -> None:
    wire = b"".join(encode_frame(p) for p in payloads)

    async def main() -> list[bytes]:
        reader = asyncio.StreamReader()
        for i in range(0, len(wire), cut):
            reader.feed_data(wire[i : i + cut])
        reader.feed_eof()
        out = [await read_frame(reader) for _ in payloads]
        with pytest.raises(StreamClosedError):
            await read_frame(reader)
        return out

    assert asyncio.run(main()) == payloads


def test_header_is_four_byte_big_endian_length() -> None:
    assert encode_frame(b"abc") == b"\x00\x00\x00\x03abc"
    assert encode_frame(b"") == b"\x00\x00\x00\x00"


def test_oversize_declared_length_is_refused_before_reading_the_body() -> None:
    async def main() -> None:
        reader = _reader(struct.pack(">I", 101), eof=False)  # no body at all: must not wait
        with pytest.raises(FrameTooLargeError) as info:
            await read_frame(reader, max_size=100)
        assert (info.value.size, info.value.limit) == (101, 100)

    asyncio.run(main())


def test_exactly_max_size_is_accepted() -> None:
    async def main() -> None:
        assert await read_frame(_reader(encode_frame(b"x" * 100, 100)), max_size=100) == b"x" * 100

    asyncio.run(main())


def test_sending_oversize_is_refused() -> None:
    with pytest.raises(FrameTooLargeError):
        encode_frame(b"x" * 11, max_size=10)


@pytest.mark.parametrize(
    ("wire", "expected", "received"),
    [(b"\x00\x00", 4, 2), (b"\x00\x00\x00\x05ab", 5, 2), (b"\x00\x00\x00\x01", 1, 0)],
)
def test_truncated_frames(wire: bytes, expected: int, received: int) -> None:
    async def main() -> None:
        with pytest.raises(TruncatedFrameError) as info:
            await read_frame(_reader(wire))
        assert (info.value.expected, info.value.received) == (expected, received)

    asyncio.run(main())


def test_oversize_frame_closes_the_connection_with_a_logged_reason(
    short_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    transport = UnixSocketTransport(short_dir)
    addr = VsockAddress(16, 5000)
    secret_marker = b"PAYLOAD-NEVER-LOGGED"

    caplog.set_level(logging.DEBUG, logger="transport")
    assert asyncio.run(_two_frames(transport, addr, secret_marker)) == b""
    records = [
        r for r in caplog.records if getattr(r, "fields", {}).get("event") == "frame_rejected"
    ]
    assert len(records) == 1
    fields = records[0].fields  # type: ignore[attr-defined]
    assert fields["error"] == "FrameTooLargeError"
    assert (fields["size"], fields["limit"]) == (65, 64)
    assert records[0].levelno == logging.WARNING
    lines = [JsonFormatter("parent").format(r) for r in caplog.records]
    assert all(secret_marker.decode() not in line for line in lines)


async def _two_frames(transport: UnixSocketTransport, addr: VsockAddress, body: bytes) -> bytes:
    seen: list[object] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stream = FramedStream(reader, writer, max_size=64)
        seen.append(await stream.recv())
        try:
            await stream.recv()
        except FrameTooLargeError as exc:
            seen.append(type(exc))

    server = await transport.listen(addr, handler)
    async with server:
        reader, writer = await transport.connect(addr)
        await write_frame(writer, b"ok", max_size=64)
        writer.write(struct.pack(">I", 65) + body)
        await writer.drain()
        rest = await reader.read()
        writer.close()
        await writer.wait_closed()
    assert seen == [b"ok", FrameTooLargeError]
    return rest
