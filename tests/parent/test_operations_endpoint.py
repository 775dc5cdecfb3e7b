"""The parent's HTTP operations endpoint against a real status listener on the emulated vsock bus:
``/ready`` is 503 while the enclave boots and 200 once it serves; ``/health`` fails only a failed
node; ``/metrics`` is Prometheus text carrying the parent's and the enclave's counters."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from enclave.status import CLIENT_PORT, NodeState, NodeStatus, StatusListener
from parent.enclavelogs import RelayCounts
from parent.operations import OperationsServer
from parent.proxy import ProxyMetrics
from parent.telemetry import EnclaveProbe, NodeCollector
from transport.address import ANY_CID, PARENT_CID, VsockAddress
from transport.unix import UnixSocketTransport
from wire.telemetry import (
    LATENCY_BOUNDS_US,
    KeyStats,
    LatencyStats,
    NodeTelemetry,
    OperationStats,
    TelemetryState,
    decode_telemetry,
    encode_telemetry,
)

ENCLAVE_CID = 16


class FakeEnclave:
    """The enclave's side of the status port: the real listener, a state the test moves."""

    def __init__(self) -> None:
        self.state = TelemetryState.BOOTING
        self.signatures = 0

    def status(self) -> NodeStatus:
        return NodeStatus(NodeState(self.state.value), "node-1", reason=self._reason())

    def _reason(self) -> str | None:
        return "kms: AccessDeniedException" if self.state is TelemetryState.FAILED else None

    async def telemetry(self) -> bytes:
        ready = self.state is TelemetryState.READY
        buckets = [0] * (len(LATENCY_BOUNDS_US) + 1)
        buckets[2] = self.signatures
        return encode_telemetry(
            NodeTelemetry(
                state=self.state,
                node_id="node-1",
                reason=self._reason(),
                pcr0=b"\x01" * 48,
                sealed_version=3 if ready else 0,
                attestation_age_s=12 if ready else None,
                uptime_s=20,
                operations=(OperationStats("frost_sign", "ok", self.signatures),)
                if self.signatures
                else (),
                latency=(LatencyStats("frost_sign", tuple(buckets), self.signatures, 7000),)
                if self.signatures
                else (),
                keys=(KeyStats("treasury", "ed25519", 0, 61, 0),) if ready else (),
            )
        )


async def _get(port: int, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: node\r\n\r\n".encode())
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split(" ")[1]), headers, body


def test_ready_health_and_metrics_follow_the_enclave(runtime_dir: Path) -> None:
    enclave = FakeEnclave()
    answers: dict[str, tuple[int, dict[str, str], bytes]] = {}

    async def scenario() -> None:
        enclave_side = UnixSocketTransport(runtime_dir, local_cid=ENCLAVE_CID)
        parent_side = UnixSocketTransport(runtime_dir, local_cid=PARENT_CID)
        probe = EnclaveProbe(parent_side, VsockAddress(ENCLAVE_CID, CLIENT_PORT))
        collector = NodeCollector(
            lambda: {"client": ProxyMetrics(accepted=5, connect_failed=2)},
            lambda: {("PutLogs", "Ok"): 4},
            RelayCounts(relayed=9),
            probe,
        )
        server = OperationsServer(probe, collector)
        port = await server.start("127.0.0.1", 0)
        try:
            # the enclave does not listen yet: not ready, but alive (booting)
            answers["ready_unreachable"] = await _get(port, "/ready")
            answers["health_unreachable"] = await _get(port, "/health")
            listener = StatusListener(enclave.status, telemetry=enclave.telemetry)
            status_server = await enclave_side.listen(
                VsockAddress(ANY_CID, CLIENT_PORT), listener.handle
            )
            answers["ready_booting"] = await _get(port, "/ready")
            enclave.state = TelemetryState.READY
            answers["ready_ready"] = await _get(port, "/ready")
            answers["head_ready"] = await _get(port, "/ready", "HEAD")
            answers["metrics_before"] = await _get(port, "/metrics")
            enclave.signatures = 2
            answers["metrics_after"] = await _get(port, "/metrics")
            answers["missing"] = await _get(port, "/nothing")
            answers["post"] = await _get(port, "/ready", "POST")
            enclave.state = TelemetryState.FAILED
            answers["health_failed"] = await _get(port, "/health")
            answers["ready_failed"] = await _get(port, "/ready")
            status_server.close()
            await listener.close()
            await status_server.wait_closed()
        finally:
            await server.close()

    asyncio.run(scenario())
    status, _, body = answers["ready_unreachable"]
    assert status == 503
    assert json.loads(body)["state"] == "unreachable"
    assert answers["health_unreachable"][0] == 200  # a slow boot is not a dead node
    status, headers, body = answers["ready_booting"]
    verdict = json.loads(body)
    assert (status, verdict["state"]) == (503, "booting")
    assert verdict["reason"].startswith("the enclave has been booting for ")
    assert headers["Content-Type"] == "application/json"
    assert answers["ready_ready"][0] == 200
    assert answers["head_ready"][0] == 200
    assert answers["head_ready"][2] == b""
    assert answers["missing"][0] == 404
    assert answers["post"][0] == 405
    status, _, body = answers["health_failed"]
    assert (status, json.loads(body)["reason"]) == (503, "kms: AccessDeniedException")
    assert answers["ready_failed"][0] == 503

    before = _samples(answers["metrics_before"][2])
    after = _samples(answers["metrics_after"][2])
    assert answers["metrics_after"][1]["Content-Type"].startswith("text/plain; version=0.0.4")
    assert before[("keyshard_enclave_up", ())] == 1
    assert before[("keyshard_enclave_state", (("state", "ready"),))] == 1
    assert (
        "keyshard_enclave_operations_total",
        (("operation", "frost_sign"), ("outcome", "ok")),
    ) not in before
    assert (
        after[
            ("keyshard_enclave_operations_total", (("operation", "frost_sign"), ("outcome", "ok")))
        ]
        == 2
    )
    bucket = (
        "keyshard_enclave_operation_duration_seconds_bucket",
        (("le", "0.01"), ("operation", "frost_sign")),
    )
    assert after[bucket] == 2  # cumulative: both fell under 10 ms
    assert (
        after[("keyshard_enclave_operation_duration_seconds_sum", (("operation", "frost_sign"),))]
        == 0.007
    )
    assert after[("keyshard_enclave_frost_nonces", (("key", "treasury"),))] == 61
    assert after[("keyshard_enclave_sealed_version", ())] == 3
    assert after[("keyshard_enclave_attestation_age_seconds", ())] == 12
    assert after[("keyshard_parent_proxy_connect_failed_total", (("route", "client"),))] == 2
    assert (
        after[("keyshard_parent_host_requests_total", (("result", "Ok"), ("type", "PutLogs")))] == 4
    )
    assert after[("keyshard_parent_enclave_log_lines_total", (("result", "relayed"),))] == 9


def _samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_a_malformed_request_gets_400(runtime_dir: Path) -> None:
    async def scenario() -> bytes:
        probe = EnclaveProbe(
            UnixSocketTransport(runtime_dir, local_cid=PARENT_CID), VsockAddress(ENCLAVE_CID, 5000)
        )
        server = OperationsServer(probe, NodeCollector(dict, dict, RelayCounts(), probe))
        port = await server.start("127.0.0.1", 0)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"\x16\x03\x01 not http\r\n\r\n")
            await writer.drain()
            answer = await reader.read()
            writer.close()
            return answer
        finally:
            await server.close()

    assert asyncio.run(scenario()).startswith(b"HTTP/1.1 400 ")


def test_telemetry_codec_round_trips_and_refuses_extras() -> None:
    telemetry = NodeTelemetry(
        TelemetryState.READY,
        "node-2",
        pcr0=b"\x02" * 48,
        operations=(OperationStats("key_info", "unknown_key", 1),),
        keys=(KeyStats("k", "ecdsa-secp256k1", 1, 0, 12),),
    )
    assert decode_telemetry(encode_telemetry(telemetry)) == telemetry
