"""The parent's operations endpoint: ``GET /metrics``, ``/health`` and ``/ready`` over plain HTTP.

The status port speaks framed CBOR, which a load balancer or ``curl`` cannot use; this small HTTP
server is what they talk to. It listens on the parent's ``operations.listen`` address (the
Terraform modules open it to the operators' ranges only) and answers:

* ``/metrics`` — Prometheus text format (``prometheus_client``): the parent's own counters and the
  enclave's telemetry, fetched over the status protocol for each scrape;
* ``/ready`` — 200 once the enclave reports ``ready`` (it serves requests), 503 while it boots,
  has failed or does not answer, always with a reason (how long it has been booting, the boot
  failure, the probe's error): what a load balancer's target health check wants;
* ``/health`` — 200 while the node is booting or ready, 503 once the enclave reports ``failed``
  or stopped answering after it was ready: a liveness check that does not fail a slow boot.

``/ready`` and ``/health`` answer a small JSON object (``state``, ``reason``). Only ``GET`` and
``HEAD`` are served; the request line and headers are bounded (:data:`MAX_REQUEST`) and must
arrive within :data:`REQUEST_TIMEOUT` seconds; one request per connection (``Connection: close``).
Everything served is public; nothing here reaches the enclave but the probe's status request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass

from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from parent.telemetry import EnclaveProbe, NodeCollector
from wire.telemetry import NodeTelemetry, TelemetryState

__all__ = ["MAX_REQUEST", "REQUEST_TIMEOUT", "OperationsServer", "health_of", "readiness_of"]

log = logging.getLogger("parent.operations")

MAX_REQUEST = 8192
REQUEST_TIMEOUT = 5.0
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    503: "Service Unavailable",
}


@dataclass(frozen=True, slots=True)
class Verdict:
    """An HTTP status and the JSON body explaining it."""

    status: int
    state: str
    reason: str | None

    def body(self) -> bytes:
        return json.dumps({"state": self.state, "reason": self.reason}).encode() + b"\n"


def readiness_of(telemetry: NodeTelemetry | None, error: str | None) -> Verdict:
    """200 only when the enclave answered and is ready."""
    if telemetry is None:
        return Verdict(503, "unreachable", error)
    if telemetry.state is TelemetryState.READY:
        return Verdict(200, "ready", None)
    if telemetry.state is TelemetryState.BOOTING:  # the status protocol gives no reason here
        return Verdict(
            503,
            "booting",
            f"the enclave has been booting for {telemetry.uptime_s} s (attestation, KMS, "
            "unsealing): it serves no request yet",
        )
    return Verdict(503, telemetry.state.value, telemetry.reason)


def health_of(telemetry: NodeTelemetry | None, error: str | None, seen_ready: bool) -> Verdict:
    """503 once the node has failed, or when an enclave that was ready stops answering."""
    if telemetry is None:
        if seen_ready:
            return Verdict(503, "unreachable", error)
        return Verdict(200, "booting", error)
    if telemetry.state is TelemetryState.FAILED:
        return Verdict(503, "failed", telemetry.reason)
    return Verdict(200, telemetry.state.value, None)


class OperationsServer:
    """Serves the operations endpoint for one parent."""

    def __init__(self, probe: EnclaveProbe, collector: NodeCollector) -> None:
        self._probe = probe
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(collector)
        self._server: asyncio.AbstractServer | None = None
        self._seen_ready = False
        self.port: int | None = None

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._handle, host, port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.info(
            "operations endpoint listening",
            extra={"fields": {"event": "operations_listening", "listen": f"{host}:{self.port}"}},
        )
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _fetch(self) -> NodeTelemetry | None:
        telemetry = await self._probe.fetch()
        if telemetry is not None and telemetry.state is TelemetryState.READY:
            self._seen_ready = True
        return telemetry

    async def respond(self, method: str, path: str, accept: str = "") -> tuple[int, str, bytes]:
        """(status, content type, body) for one request (sans socket, for tests too). ``accept``
        picks the exposition format as ``prometheus_client`` negotiates it (text 0.0.4 unless
        the scraper asks for another)."""
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"only GET and HEAD\n"
        route = path.split("?", 1)[0]
        if route == "/metrics":
            await self._fetch()
            encoder, content_type = choose_encoder(accept)
            return 200, content_type, encoder(self._registry)
        if route == "/ready":
            verdict = readiness_of(await self._fetch(), self._probe.error)
        elif route == "/health":
            telemetry = await self._fetch()
            verdict = health_of(telemetry, self._probe.error, self._seen_ready)
        else:
            return 404, "text/plain", b"not found: /metrics, /health, /ready\n"
        return verdict.status, "application/json", verdict.body()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
                if len(head) > MAX_REQUEST:
                    raise ValueError("request too large")
                method, path, accept = _parse_head(head)
                status, content_type, body = await self.respond(method, path, accept)
                if method == "HEAD":
                    writer.write(_response(status, content_type, len(body)))
                else:
                    writer.write(_response(status, content_type, len(body)) + body)
                await writer.drain()
        except (asyncio.LimitOverrunError, asyncio.IncompleteReadError, ValueError):
            with contextlib.suppress(ConnectionError, OSError):
                writer.write(_response(400, "text/plain", 0))
        except (TimeoutError, ConnectionError, OSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()


def _parse_head(head: bytes) -> tuple[str, str, str]:
    """Method, path and Accept header of a request head (ASCII only, else ValueError)."""
    lines = head.decode("ascii").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[1].startswith("/"):
        raise ValueError("not an HTTP/1.x request line")
    accept = ""
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "accept":
            accept = value.strip()
    return parts[0], parts[1], accept


def _response(status: int, content_type: str, length: int) -> bytes:
    return (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {length}\r\n"
        "Cache-Control: no-store\r\n"
        "Connection: close\r\n\r\n"
    ).encode("ascii")
