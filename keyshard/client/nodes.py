"""Ask a cluster's nodes for their telemetry (state, release, keys, pools) over the status port.

The status port (``NodeEntry.host:port`` in a profile) answers without a client certificate and
says only public things (:mod:`wire.telemetry`), so ``keyshard node status`` works for any cluster
a profile names — a dev directory or a Terraform-rendered one — without credentials. Nothing here
is attested: the telemetry is the node's word, for operators; the attested channel is what clients
trust for keys.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from keyshard.client.profile import ClusterProfile, NodeEntry
from transport.framing import FramedStream
from wire.errors import MalformedMessageError
from wire.telemetry import (
    MAX_TELEMETRY_FRAME,
    NodeTelemetry,
    decode_telemetry,
    encode_telemetry_request,
)

__all__ = ["NodeReport", "fetch_telemetry", "release_of", "survey"]


async def fetch_telemetry(host: str, port: int, *, timeout: float = 5.0) -> NodeTelemetry:
    """One node's telemetry; raises ``OSError``/``TimeoutError``/``MalformedMessageError``."""

    async def exchange() -> NodeTelemetry:
        reader, writer = await asyncio.open_connection(host, port)
        stream = FramedStream(reader, writer, MAX_TELEMETRY_FRAME)
        try:
            await stream.send(encode_telemetry_request())
            return decode_telemetry(await stream.recv())
        finally:
            with contextlib.suppress(ConnectionError, OSError):
                await stream.close()

    async with asyncio.timeout(timeout):
        return await exchange()


def release_of(expected: Sequence[Mapping[int, bytes]], pcr0: bytes) -> int | None:
    """The 1-based index of the profile's accepted release whose PCR0 the node reports."""
    for index, pcrs in enumerate(expected, start=1):
        if pcr0 and pcrs.get(0) == pcr0:
            return index
    return None


@dataclass(frozen=True, slots=True)
class NodeReport:
    """One node as ``keyshard node status`` shows it: its telemetry, or why there is none."""

    node: NodeEntry
    telemetry: NodeTelemetry | None
    release: int | None
    error: str | None

    def to_json(self) -> dict[str, object]:
        body: dict[str, object] = {
            "node_id": self.node.node_id,
            "endpoint": f"{self.node.host}:{self.node.port}",
            "state": "unreachable" if self.telemetry is None else self.telemetry.state.value,
            "release": self.release,
            "error": self.error,
        }
        if self.telemetry is not None:
            body.update(self.telemetry.to_json())
            body["node_id"] = self.node.node_id
            body["reported_node_id"] = self.telemetry.node_id
        return body


async def survey(profile: ClusterProfile, *, timeout: float = 5.0) -> list[NodeReport]:
    """Every node of ``profile``, asked at once."""

    async def one(node: NodeEntry) -> NodeReport:
        try:
            telemetry = await fetch_telemetry(node.host, node.port, timeout=timeout)
        except (OSError, TimeoutError, EOFError, MalformedMessageError) as error:
            return NodeReport(node, None, None, type(error).__name__)
        return NodeReport(node, telemetry, release_of(profile.expected_pcrs, telemetry.pcr0), None)

    return list(await asyncio.gather(*(one(node) for node in profile.nodes)))
