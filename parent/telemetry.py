"""Ask the enclave for its telemetry over the status protocol, and export it for Prometheus.

:class:`EnclaveProbe` connects to the enclave's status port over the parent's transport (vsock, or
the emulated bus) — not through the inbound proxy, so the probe is not counted as client traffic —
and asks ``{"op": "metrics"}`` (:mod:`wire.telemetry`). :class:`NodeCollector` is a
``prometheus_client`` collector that renders the parent's own counters (proxy routes, host
services, the enclave log channel) and the last telemetry the probe fetched. Everything exported
is public: counts, durations, pool levels, key names and epochs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import fields

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from parent.enclavelogs import RelayCounts
from parent.proxy import ProxyMetrics
from transport.address import VsockAddress
from transport.base import Transport
from transport.framing import FramedStream
from wire.telemetry import (
    LATENCY_BOUNDS_US,
    MAX_TELEMETRY_FRAME,
    NodeTelemetry,
    TelemetryState,
    decode_telemetry,
    encode_telemetry_request,
)

__all__ = ["PROBE_TIMEOUT", "EnclaveProbe", "NodeCollector"]

#: Seconds the probe waits for the enclave's answer (a booting enclave may not listen yet).
PROBE_TIMEOUT = 3.0
_GAUGES = frozenset({"active", "peak_buffered"})


class EnclaveProbe:
    """Fetches the enclave's telemetry; remembers the last answer and the last failure."""

    def __init__(
        self, transport: Transport, address: VsockAddress, timeout: float = PROBE_TIMEOUT
    ) -> None:
        self._transport = transport
        self._address = address
        self._timeout = timeout
        self.last: NodeTelemetry | None = None
        self.error: str | None = None

    async def fetch(self) -> NodeTelemetry | None:
        """The enclave's telemetry now, or None (and :attr:`error` says why) if it did not
        answer: not listening yet (booting), stopped, or a malformed reply."""
        try:
            async with asyncio.timeout(self._timeout):
                telemetry = await self._exchange()
        except Exception as error:  # the probe's boundary: any failure is "no answer"
            self.last, self.error = None, type(error).__name__
            return None
        self.last, self.error = telemetry, None
        return telemetry

    async def _exchange(self) -> NodeTelemetry:
        reader, writer = await self._transport.connect(self._address)
        stream = FramedStream(reader, writer, MAX_TELEMETRY_FRAME)
        try:
            await stream.send(encode_telemetry_request())
            return decode_telemetry(await stream.recv())
        finally:
            with contextlib.suppress(ConnectionError, OSError):
                await stream.close()


class NodeCollector(Collector):
    """The node's metrics: the parent's own counters and the enclave's last telemetry."""

    def __init__(
        self,
        proxy: Callable[[], Mapping[str, ProxyMetrics]],
        host_requests: Callable[[], Mapping[tuple[str, str], int]],
        logs: RelayCounts,
        probe: EnclaveProbe,
    ) -> None:
        self._proxy = proxy
        self._host_requests = host_requests
        self._logs = logs
        self._probe = probe

    def collect(self) -> Iterator[Metric]:
        yield from self._parent()
        yield from self._enclave(self._probe.last)

    def _parent(self) -> Iterator[Metric]:
        routes = self._proxy()
        for f in fields(ProxyMetrics):
            name = f"keyshard_parent_proxy_{f.name}"
            doc = f"Parent proxy: {f.name.replace('_', ' ')} per route"
            family: CounterMetricFamily | GaugeMetricFamily = (
                GaugeMetricFamily(name, doc, labels=["route"])
                if f.name in _GAUGES
                else CounterMetricFamily(name, doc, labels=["route"])
            )
            for route, metrics in sorted(routes.items()):
                family.add_metric([route], getattr(metrics, f.name))
            yield family
        requests = CounterMetricFamily(
            "keyshard_parent_host_requests",
            "Host-services requests the parent answered, by type and result",
            labels=["type", "result"],
        )
        for (kind, result), count in sorted(self._host_requests().items()):
            requests.add_metric([kind, result], count)
        yield requests
        lines = CounterMetricFamily(
            "keyshard_parent_enclave_log_lines",
            "Enclave log lines through the log channel, by what became of them",
            labels=["result"],
        )
        lines.add_metric(["relayed"], self._logs.relayed)
        lines.add_metric(["malformed"], self._logs.malformed)
        lines.add_metric(["dropped_by_enclave"], self._logs.dropped_by_enclave)
        yield lines

    def _enclave(self, telemetry: NodeTelemetry | None) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "keyshard_enclave_up",
            "1 if the enclave answered the parent's telemetry request",
            value=0 if telemetry is None else 1,
        )
        state = GaugeMetricFamily(
            "keyshard_enclave_state",
            "The enclave's state (1 for the current one)",
            labels=["state"],
        )
        for candidate in TelemetryState:
            current = telemetry is not None and telemetry.state is candidate
            state.add_metric([candidate.value], 1 if current else 0)
        yield state
        if telemetry is None:
            return
        operations = CounterMetricFamily(
            "keyshard_enclave_operations",
            "Node-service requests answered by the enclave, by operation and outcome",
            labels=["operation", "outcome"],
        )
        for op in telemetry.operations:
            operations.add_metric([op.op, op.outcome], op.count)
        yield operations
        latency = HistogramMetricFamily(
            "keyshard_enclave_operation_duration_seconds",
            "Time the enclave took to answer a node-service request",
            labels=["operation"],
        )
        for entry in telemetry.latency:
            cumulative, buckets = 0, []
            for bound, count in zip(LATENCY_BOUNDS_US, entry.buckets, strict=False):
                cumulative += count
                buckets.append((repr(bound / 1_000_000), float(cumulative)))
            buckets.append(("+Inf", float(entry.count)))
            latency.add_metric([entry.op], buckets, entry.sum_us / 1_000_000)
        yield latency
        for name, doc, value in (
            (
                "keyshard_enclave_sealed_version",
                "Version of the sealed state",
                telemetry.sealed_version,
            ),
            (
                "keyshard_enclave_uptime_seconds",
                "Seconds since the enclave started",
                telemetry.uptime_s,
            ),
        ):
            yield GaugeMetricFamily(name, doc, value=value)
        if telemetry.attestation_age_s is not None:
            yield GaugeMetricFamily(
                "keyshard_enclave_attestation_age_seconds",
                "Seconds since the enclave's boot attestation (the document KMS accepted)",
                value=telemetry.attestation_age_s,
            )
        per_key = {
            "keyshard_enclave_frost_nonces": "Preprocessed FROST nonces waiting, per key",
            "keyshard_enclave_presignatures": "ECDSA presignatures waiting, per key",
            "keyshard_enclave_key_epoch": "Share epoch of each key",
        }
        families = {
            name: GaugeMetricFamily(name, doc, labels=["key"]) for name, doc in per_key.items()
        }
        for key in telemetry.keys:
            families["keyshard_enclave_frost_nonces"].add_metric([key.name], key.frost_nonces)
            families["keyshard_enclave_presignatures"].add_metric([key.name], key.presignatures)
            families["keyshard_enclave_key_epoch"].add_metric([key.name], key.epoch)
        yield from families.values()
