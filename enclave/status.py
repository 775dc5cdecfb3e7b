"""The status (health/readiness) protocol the enclave serves on its client port.

One framed CBOR request, one framed CBOR reply, per connection (the parent's inbound proxy carries
the bytes; it may read them — everything here is public)::

    request  {"op": "status"}
    reply    {"v": 1, "state": "booting" | "ready" | "failed", "reason": text | null,
              "node_id": text, "pcrs": {int: bytes}, "sealed_version": int,
              "identity_public_key": bytes | null, "data_key_id": text | null}

``ready`` is reported only after the node state was unsealed (or sealed for the first time) under
the data key KMS released to this enclave's attestation document. ``reason`` says why a node is
``failed`` (the boot step and a public error message, e.g. KMS's AccessDeniedException text);
it never carries secret material. ``identity_public_key`` is the public half of the node identity
kept in the sealed state, so a caller can see that a restarted node recovered the same state;
``data_key_id`` is the SHA-256 of the KMS ``CiphertextBlob`` (public) naming the data key in use.

The codec is sans-I/O (bytes in, typed values out, strict: canonical CBOR through
:mod:`wire.cbor`, exactly these fields, this version); :func:`handle_status_connection` and
:func:`fetch_status` are the thin asyncio edges.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from enclave.errors import StatusProtocolError
from transport.errors import FramingError
from transport.framing import FramedStream
from wire import cbor
from wire.errors import MalformedMessageError

__all__ = [
    "CLIENT_PORT",
    "MAX_STATUS_FRAME",
    "NodeState",
    "NodeStatus",
    "decode_request",
    "decode_status",
    "encode_request",
    "encode_status",
    "fetch_status",
    "handle_status_connection",
]

#: The vsock port of the enclave's client API; the parent's inbound proxy forwards TCP to it.
CLIENT_PORT = 5000
MAX_STATUS_FRAME = 16 * 1024
PROTOCOL_VERSION = 1
_MAX_REASON = 2000


class NodeState(enum.Enum):
    BOOTING = "booting"
    READY = "ready"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """A node's public status, validated on construction."""

    state: NodeState
    node_id: str
    reason: str | None = None
    pcrs: Mapping[int, bytes] = field(default_factory=dict)
    sealed_version: int = 0
    identity_public_key: bytes | None = None
    data_key_id: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.state, NodeState):
            raise StatusProtocolError("state is not a NodeState")
        if type(self.node_id) is not str:
            raise StatusProtocolError("node_id must be text")
        if self.reason is not None and (
            type(self.reason) is not str or len(self.reason) > _MAX_REASON
        ):
            raise StatusProtocolError("reason must be text of at most 2000 characters")
        if (self.state is NodeState.FAILED) != (self.reason is not None):
            raise StatusProtocolError("a reason is given exactly when the state is failed")
        if not isinstance(self.pcrs, Mapping) or not all(
            type(k) is int and 0 <= k <= 31 and type(v) is bytes for k, v in self.pcrs.items()
        ):
            raise StatusProtocolError("pcrs must map 0..31 to bytes")
        object.__setattr__(self, "pcrs", MappingProxyType(dict(self.pcrs)))
        if type(self.sealed_version) is not int or self.sealed_version < 0:
            raise StatusProtocolError("sealed_version must be a non-negative integer")
        if self.identity_public_key is not None and type(self.identity_public_key) is not bytes:
            raise StatusProtocolError("identity_public_key must be bytes or null")
        if self.data_key_id is not None and type(self.data_key_id) is not str:
            raise StatusProtocolError("data_key_id must be text or null")

    def to_json(self) -> dict[str, Any]:
        """A JSON-friendly view (hex for bytes), for the CLI and cluster profile."""
        return {
            "state": self.state.value,
            "reason": self.reason,
            "node_id": self.node_id,
            "pcrs": {str(index): value.hex() for index, value in sorted(self.pcrs.items())},
            "sealed_version": self.sealed_version,
            "identity_public_key": (
                None if self.identity_public_key is None else self.identity_public_key.hex()
            ),
            "data_key_id": self.data_key_id,
        }


_STATUS_KEYS = frozenset(
    {
        "v",
        "state",
        "reason",
        "node_id",
        "pcrs",
        "sealed_version",
        "identity_public_key",
        "data_key_id",
    }
)


def _loads_map(
    payload: bytes, what: str, fields: frozenset[str], version: int | None = None
) -> dict[str, Any]:
    try:
        return cbor.loads_map(payload, what=what, fields=fields, version=version)
    except MalformedMessageError as error:
        raise StatusProtocolError(str(error)) from None


def encode_request() -> bytes:
    return cbor.dumps({"op": "status"})


def decode_request(payload: bytes) -> str:
    if _loads_map(payload, "status request", frozenset({"op"}))["op"] != "status":
        raise StatusProtocolError("unknown request")
    return "status"


def encode_status(status: NodeStatus) -> bytes:
    return cbor.dumps(
        {
            "v": PROTOCOL_VERSION,
            "state": status.state.value,
            "reason": status.reason,
            "node_id": status.node_id,
            "pcrs": dict(status.pcrs),
            "sealed_version": status.sealed_version,
            "identity_public_key": status.identity_public_key,
            "data_key_id": status.data_key_id,
        }
    )


def decode_status(payload: bytes) -> NodeStatus:
    value = _loads_map(payload, "status reply", _STATUS_KEYS, version=PROTOCOL_VERSION)
    try:
        state = NodeState(value["state"])
    except ValueError:
        raise StatusProtocolError(f"unknown state {value['state']!r}") from None
    if not isinstance(value["pcrs"], dict):
        raise StatusProtocolError("pcrs must be a map")
    return NodeStatus(
        state=state,
        node_id=value["node_id"],
        reason=value["reason"],
        pcrs=value["pcrs"],
        sealed_version=value["sealed_version"],
        identity_public_key=value["identity_public_key"],
        data_key_id=value["data_key_id"],
    )


async def handle_status_connection(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    current: Callable[[], NodeStatus],
) -> None:
    """Serve one status request on an accepted connection; malformed requests just close it."""
    stream = FramedStream(reader, writer, MAX_STATUS_FRAME)
    try:
        decode_request(await stream.recv())
        await stream.send(encode_status(current()))
    except (FramingError, StatusProtocolError, ConnectionError):
        pass
    finally:
        await stream.close()


async def fetch_status(host: str, port: int, *, timeout: float = 5.0) -> NodeStatus:
    """Ask a node for its status over TCP (through the parent's inbound proxy)."""

    async def exchange() -> NodeStatus:
        reader, writer = await asyncio.open_connection(host, port)
        stream = FramedStream(reader, writer, MAX_STATUS_FRAME)
        try:
            await stream.send(encode_request())
            return decode_status(await stream.recv())
        finally:
            with contextlib.suppress(ConnectionError, OSError):
                await stream.close()

    return await asyncio.wait_for(exchange(), timeout)
