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

The same port answers ``{"op": "metrics"}`` with the node's telemetry (:mod:`wire.telemetry`:
operations by outcome, latencies, key pool levels, sealed version, attestation age), which the
parent exports as Prometheus metrics.

The codec is sans-I/O (bytes in, typed values out, strict: canonical CBOR through
:mod:`wire.cbor`, exactly these fields, this version); :class:`StatusListener` and
:func:`fetch_status` are the thin asyncio edges.

Anyone who can reach the port may call it, so a caller gets :data:`STATUS_TIMEOUT` seconds to send
its request and take the reply, and the listener holds at most :data:`MAX_STATUS_CONNECTIONS`: a
new caller evicts the oldest (a caller that is what it claims is answered in milliseconds, so the
oldest is the one most likely stalled). Every failed connection ends in one ``INFO`` line naming
the error's type (``connection_error``, ``connection_timeout``, ``connection_evicted``).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from enclave.errors import StatusProtocolError
from transport.errors import FramingError
from transport.framing import FramedStream, write_frame
from wire import cbor
from wire.errors import MalformedMessageError
from wire.telemetry import MAX_TELEMETRY_FRAME

__all__ = [
    "CLIENT_PORT",
    "MAX_STATUS_CONNECTIONS",
    "MAX_STATUS_FRAME",
    "STATUS_TIMEOUT",
    "NodeState",
    "NodeStatus",
    "StatusListener",
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
#: Status connections held at once; a new one past this evicts the oldest.
MAX_STATUS_CONNECTIONS = 64
#: Seconds a caller has to send its request and take the reply.
STATUS_TIMEOUT = 5.0
PROTOCOL_VERSION = 1
_MAX_REASON = 2000

log = logging.getLogger("enclave.status")


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
    """The requested op: ``status`` or ``metrics`` (see :mod:`wire.telemetry`)."""
    op = _loads_map(payload, "status request", frozenset({"op"}))["op"]
    if op not in ("status", "metrics"):
        raise StatusProtocolError("unknown request")
    return str(op)


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


class StatusListener:
    """Serves the status protocol, one request per connection, each under a deadline, holding
    at most ``max_connections`` connections (a new one evicts the oldest)."""

    def __init__(
        self,
        current: Callable[[], NodeStatus],
        *,
        telemetry: Callable[[], Awaitable[bytes]] | None = None,
        max_connections: int = MAX_STATUS_CONNECTIONS,
        timeout: float = STATUS_TIMEOUT,
    ) -> None:
        """``telemetry`` answers the ``metrics`` op (encoded :mod:`wire.telemetry`); without it
        that op is refused like an unknown one."""
        self._current = current
        self._telemetry = telemetry
        self._max = max_connections
        self._timeout = timeout
        # Connection tasks, oldest first; held here too because asyncio holds them weakly.
        self._held: dict[asyncio.StreamWriter, asyncio.Task[Any] | None] = {}
        self._evicted: set[asyncio.StreamWriter] = set()

    @property
    def connections(self) -> int:
        return len(self._held)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A ``Transport.listen`` handler: serve one connection; never raises."""
        if len(self._held) >= self._max:
            oldest = next(iter(self._held))
            del self._held[oldest]
            self._evicted.add(oldest)
            oldest.transport.abort()  # its pending read ends; its handler logs the eviction
        self._held[writer] = asyncio.current_task()
        try:
            await self._serve(reader, writer)
        finally:
            self._held.pop(writer, None)
            self._evicted.discard(writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stream = FramedStream(reader, writer, MAX_STATUS_FRAME)
        clean = False
        try:
            async with asyncio.timeout(self._timeout):
                op = decode_request(await stream.recv())
                if op == "metrics":
                    if self._telemetry is None:
                        raise StatusProtocolError("unknown request")
                    await write_frame(writer, await self._telemetry(), MAX_TELEMETRY_FRAME)
                else:
                    await stream.send(encode_status(self._current()))
            clean = True
            log.debug("status served", extra={"fields": {"event": "status_served"}})
        except TimeoutError:
            _log("connection_timeout", None)
        except (FramingError, StatusProtocolError, OSError, EOFError) as error:
            evicted = writer in self._evicted
            _log("connection_evicted" if evicted else "connection_error", error)
        except Exception as error:  # process boundary of one connection: the type only
            log.error(
                "status connection failed",
                extra={"fields": {"event": "connection_failed", "error": type(error).__name__}},
            )
        finally:
            if not clean:
                writer.transport.abort()
            with contextlib.suppress(OSError):
                await stream.close()

    async def close(self) -> None:
        """Abort every connection (shutdown); their handlers end at once."""
        for writer in list(self._held):
            writer.transport.abort()


def _log(event: str, error: BaseException | None) -> None:
    fields: dict[str, object] = {"event": event, "listener": "status"}
    if error is not None and event != "connection_evicted":
        fields["error"] = type(error).__name__
    log.info("status connection ended", extra={"fields": fields})


async def handle_status_connection(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    current: Callable[[], NodeStatus],
) -> None:
    """Serve one status request on an accepted connection (a :class:`StatusListener` of its own:
    the deadline, no cap)."""
    await StatusListener(current).handle(reader, writer)


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
