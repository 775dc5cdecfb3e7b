"""The status protocol: strict codec, the readiness invariant, and the server over a socket."""

from __future__ import annotations

import asyncio
from pathlib import Path

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from enclave.errors import StatusProtocolError
from enclave.status import (
    MAX_STATUS_FRAME,
    NodeState,
    NodeStatus,
    decode_request,
    decode_status,
    encode_request,
    encode_status,
    fetch_status,
    handle_status_connection,
)
from transport.framing import encode_frame

READY = NodeStatus(
    state=NodeState.READY,
    node_id="node-1",
    pcrs={0: b"\x01" * 48, 1: b"\x02" * 48},
    sealed_version=3,
    identity_public_key=b"\x07" * 32,
    data_key_id="ab" * 32,
)


def test_roundtrip_and_snapshot() -> None:
    encoded = encode_status(READY)
    assert decode_status(encoded) == READY
    assert encode_status(decode_status(encoded)) == encoded
    assert encoded.hex().startswith("a8")  # an 8-entry canonical map
    assert decode_request(encode_request()) == "status"


def test_failed_needs_a_reason_and_only_failed_has_one() -> None:
    NodeStatus(NodeState.FAILED, "n", reason="kms: AccessDenied")
    with pytest.raises(StatusProtocolError):
        NodeStatus(NodeState.FAILED, "n")
    with pytest.raises(StatusProtocolError):
        NodeStatus(NodeState.READY, "n", reason="why")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda m: m.update(state="sleeping"),
        lambda m: m.update(v=2),
        lambda m: m.update(extra=1),
        lambda m: m.pop("pcrs"),
        lambda m: m.update(pcrs={40: b"x"}),
        lambda m: m.update(sealed_version=-1),
        lambda m: m.update(node_id=5),
    ],
)
def test_malformed_status_is_refused(mutate: object) -> None:
    message = cbor2.loads(encode_status(READY))
    mutate(message)  # type: ignore[operator]
    with pytest.raises(StatusProtocolError):
        decode_status(cbor2.dumps(message, canonical=True))


def test_non_canonical_encoding_is_refused() -> None:
    message = cbor2.loads(encode_status(READY))
    reordered = cbor2.dumps(dict(reversed(list(message.items()))))
    with pytest.raises(StatusProtocolError):
        decode_status(reordered)
    with pytest.raises(StatusProtocolError):
        decode_request(cbor2.dumps({"op": "shutdown"}))


@given(st.binary(max_size=64))
def test_arbitrary_bytes_never_escape_as_other_errors(data: bytes) -> None:
    with pytest.raises(StatusProtocolError):
        decode_status(data)


def test_server_answers_and_drops_garbage(tmp_path: Path) -> None:
    async def scenario() -> None:
        server = await asyncio.start_server(
            lambda r, w: handle_status_connection(r, w, lambda: READY), "127.0.0.1", 0
        )
        port = server.sockets[0].getsockname()[1]
        assert await fetch_status("127.0.0.1", port) == READY
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(encode_frame(b"\xff" * 10))
        await writer.drain()
        assert await reader.read() == b""  # closed without a reply
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write((MAX_STATUS_FRAME + 1).to_bytes(4, "big"))
        await writer.drain()
        assert await reader.read() == b""
        writer.close()
        server.close()
        await server.wait_closed()

    asyncio.run(scenario())
