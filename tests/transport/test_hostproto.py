from __future__ import annotations

import asyncio
from pathlib import Path

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from transport.address import VsockAddress
from transport.errors import (
    HostServiceError,
    MalformedMessageError,
    UnknownMessageTypeError,
)
from transport.framing import FramedStream
from transport.hostclient import HostClient
from transport.hostproto import (
    MAX_MESSAGE,
    MAX_NAME,
    Blob,
    BlobNames,
    Credentials,
    Error,
    ErrorCode,
    GetBlob,
    GetCredentials,
    GetLaunch,
    Launch,
    ListBlobs,
    Ok,
    PutAudit,
    PutBlob,
    Request,
    Response,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
)
from transport.unix import UnixSocketTransport

REQUESTS: list[Request] = [
    PutBlob("state", b"\x00sealed"),
    GetBlob("state"),
    ListBlobs(),
    GetCredentials(),
    GetLaunch(),
    PutAudit((b"\xa1record",), (bytes(64),), b"document"),
    PutAudit((), ()),
]
RESPONSES: list[Response] = [
    Ok(),
    Blob(b"sealed"),
    Blob(None),
    BlobNames(("a", "b")),
    Credentials("AKIA", "secret", "token", "2026-11-24T12:00:00Z"),
    Launch("node-2"),
    Error(ErrorCode.LAUNCH_UNAVAILABLE, "no node id"),
    Error(ErrorCode.BAD_NAME, "name refused"),
]


@pytest.mark.parametrize("message", REQUESTS, ids=lambda m: type(m).__name__)
def test_requests_round_trip_byte_for_byte(message: Request) -> None:
    wire = encode_request(message)
    assert decode_request(wire) == message
    assert encode_request(decode_request(wire)) == wire


@pytest.mark.parametrize("message", RESPONSES, ids=lambda m: type(m).__name__)
def test_responses_round_trip_byte_for_byte(message: Response) -> None:
    wire = encode_response(message)
    assert decode_response(wire) == message
    assert encode_response(decode_response(wire)) == wire


def test_byte_snapshots() -> None:
    """A changed snapshot is a wire-format break between enclave and parent versions."""
    assert encode_request(GetBlob("s")) == bytes.fromhex(
        "a3617601646e616d656173647479706567476574426c6f62"
    )
    assert encode_response(Ok()) == bytes.fromhex("a26176016474797065624f6b")


def test_credentials_repr_hides_secrets() -> None:
    text = repr(Credentials("AKIAEXAMPLE", "wJalrXUtnFEMI", "FwoGZXIvYXdz", "2026-11-24T12:00:00Z"))
    assert "AKIAEXAMPLE" in text
    assert "wJalrXUtnFEMI" not in text
    assert "FwoGZXIvYXdz" not in text
    assert "sealed-bytes" not in repr(PutBlob("n", b"sealed-bytes"))


def _raw(body: object) -> bytes:
    return cbor2.dumps(body, canonical=True)


@pytest.mark.parametrize(
    ("payload", "culprit"),
    [
        (_raw({"v": 1, "type": "GetBlob", "name": "a", "extra": 1}), "extra"),
        (_raw({"v": 1, "type": "GetBlob"}), "name"),
        (_raw({"v": 1, "type": "GetBlob", "name": b"a"}), "name"),
        (_raw({"v": 1, "type": "GetBlob", "name": "x" * (MAX_NAME + 1)}), "name"),
        (_raw({"v": 1, "type": "PutBlob", "name": "a", "data": "text"}), "data"),
        (_raw({"v": 2, "type": "GetBlob", "name": "a"}), "v"),
        (_raw({"v": True, "type": "GetBlob", "name": "a"}), "v"),
        (_raw({"type": "GetBlob", "name": "a"}), "v"),
        (_raw({"v": 1, "type": "GetBlob", "name": "a"}) + b"\x00", "message"),
        (_raw([1, "GetBlob"]), "message"),
        (_raw({1: 1}), "message"),
        (b"\xff", "message"),
        (b"", "message"),
        # non-canonical: keys out of order
        (cbor2.dumps({"v": 1, "type": "GetBlob", "name": "a"}), "message"),
        # duplicate key (two "name" entries): decoders that keep the last one would be fooled
        (
            bytes.fromhex("a4617601646e616d656162646e616d656173647479706567476574426c6f62"),
            "message",
        ),
        # deeply nested arrays, and a map too large to be any of ours
        (b"\x81" * 100_000 + b"\x00", "message"),
        (b"\xb8\x18" + b"\x00" * 48, "message"),
        # indefinite-length map
        (bytes.fromhex("bf617601646e616d656173647479706567476574426c6f62ff"), "message"),
        # CBOR tags are outside wire.cbor's data model: refused by the codec, whatever the tag
        (_raw({"v": 1, "type": "GetBlob", "name": cbor2.CBORTag(1, 0)}), "message"),
        (_raw({"v": 1, "type": "GetBlob", "name": cbor2.CBORTag(99, "a")}), "message"),
    ],
)
def test_malformed_requests_are_refused_with_the_culprit(payload: bytes, culprit: str) -> None:
    with pytest.raises(MalformedMessageError) as info:
        decode_request(payload)
    assert info.value.field == culprit


@pytest.mark.parametrize(
    ("payload", "seen"),
    [
        (_raw({"v": 1, "type": "Ok"}), "Ok"),  # a response is not a request
        (_raw({"v": 1, "type": "Shell", "cmd": "id"}), "Shell"),
        (_raw({"v": 1, "type": 7}), 7),
        (_raw({"v": 1}), None),
    ],
)
def test_unknown_request_types(payload: bytes, seen: object) -> None:
    with pytest.raises(UnknownMessageTypeError) as info:
        decode_request(payload)
    assert info.value.type_name == seen


def test_responses_are_checked_too() -> None:
    with pytest.raises(UnknownMessageTypeError):
        decode_response(encode_request(GetCredentials()))
    with pytest.raises(MalformedMessageError) as info:
        decode_response(_raw({"v": 1, "type": "Error", "code": "nope", "message": ""}))
    assert info.value.field == "code"
    with pytest.raises(MalformedMessageError) as info:
        decode_response(_raw({"v": 1, "type": "BlobNames", "names": "ab"}))
    assert info.value.field == "names"
    with pytest.raises(MalformedMessageError) as info:
        decode_response(_raw({"v": 1, "type": "BlobNames", "names": ["a", 1]}))
    assert info.value.field == "names"


def test_constructors_validate() -> None:
    with pytest.raises(MalformedMessageError):
        PutBlob("a", "not bytes")  # type: ignore[arg-type]
    with pytest.raises(MalformedMessageError):
        Error("bad_name", "x")  # type: ignore[arg-type]
    with pytest.raises(MalformedMessageError):
        PutAudit((b"record",), ())  # one signature per record
    with pytest.raises(MalformedMessageError):
        PutAudit((b"x" * 5000,), (bytes(64),))  # larger than any record
    with pytest.raises(UnknownMessageTypeError):
        encode_request(Ok())  # type: ignore[arg-type]
    with pytest.raises(UnknownMessageTypeError):
        encode_response(GetBlob("a"))  # type: ignore[arg-type]


@given(
    name=st.text(max_size=MAX_NAME),
    data=st.binary(max_size=512),
)
def test_put_blob_property(name: str, data: bytes) -> None:
    wire = encode_request(PutBlob(name, data))
    assert decode_request(wire) == PutBlob(name, data)


@given(st.binary(max_size=64))
def test_decoder_never_raises_anything_but_typed_errors(payload: bytes) -> None:
    try:
        message = decode_request(payload)
    except (MalformedMessageError, UnknownMessageTypeError):
        return
    assert encode_request(message) == payload  # anything accepted is exactly canonical


def test_client_against_a_tiny_server(short_dir: Path) -> None:
    transport = UnixSocketTransport(short_dir)
    addr = VsockAddress(3, 9000)
    answers: list[Response] = [
        Ok(),
        Blob(b"sealed"),
        Error(ErrorCode.STORAGE_FAILED, "disk full"),
        Blob(None),  # wrong type for ListBlobs
    ]
    seen: list[Request] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stream = FramedStream(reader, writer, MAX_MESSAGE)
        seen.append(decode_request(await stream.recv()))
        await stream.send(encode_response(answers.pop(0)))
        await stream.close()

    async def main() -> None:
        async with await transport.listen(addr, handler):
            client = HostClient(transport, addr)
            await client.put_blob("state", b"x")
            assert await client.get_blob("state") == b"sealed"
            with pytest.raises(HostServiceError) as info:
                await client.put_blob("state", b"y")
            assert (info.value.code, info.value.message) == ("storage_failed", "disk full")
            with pytest.raises(MalformedMessageError, match="expected BlobNames"):
                await client.list_blobs()

    asyncio.run(main())
    assert seen == [PutBlob("state", b"x"), GetBlob("state"), PutBlob("state", b"y"), ListBlobs()]


def test_launch_snapshot_and_strictness() -> None:
    """GetLaunch/Launch are closed types: exact bytes, no extra or mistyped field, right direction."""
    assert encode_request(GetLaunch()) == cbor2.dumps({"v": 1, "type": "GetLaunch"}, canonical=True)
    wire = encode_response(Launch("n1"))
    assert wire == cbor2.dumps({"v": 1, "type": "Launch", "node_id": "n1"}, canonical=True)
    extra = cbor2.dumps({"v": 1, "type": "Launch", "node_id": "n1", "kms": "x"}, canonical=True)
    with pytest.raises(MalformedMessageError) as info:
        decode_response(extra)
    assert info.value.field == "kms"
    typed = cbor2.dumps({"v": 1, "type": "Launch", "node_id": 7}, canonical=True)
    with pytest.raises(MalformedMessageError) as info:
        decode_response(typed)
    assert info.value.field == "node_id"
    with pytest.raises(MalformedMessageError):
        Launch("x" * (MAX_NAME + 1))
    with pytest.raises(UnknownMessageTypeError):
        decode_request(wire)  # a response is not a request
    with pytest.raises(UnknownMessageTypeError):
        decode_response(encode_request(GetLaunch()))
