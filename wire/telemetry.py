"""A node's telemetry: what the enclave reports about itself for metrics and ``node status``.

Asked over the status protocol (the enclave's status port, framed CBOR, one request per connection)
with ``{"op": "metrics"}``; the reply is one canonical CBOR map::

    {"v": 1, "state": "booting" | "ready" | "failed", "reason": text | null, "node_id": text,
     "pcr0": bytes, "sealed_version": int, "attestation_age_s": int | null, "uptime_s": int,
     "operations": [{"op": text, "outcome": text, "count": int}, ...],
     "latency": [{"op": text, "buckets": [int, ...], "count": int, "sum_us": int}, ...],
     "keys": [{"name": text, "suite": text, "epoch": int, "frost_nonces": int,
               "presignatures": int}, ...]}

``outcome`` is ``ok`` or a wire error code. A latency entry counts the requests of one operation
whose handling took at most each bound of :data:`LATENCY_BOUNDS_US` (one count per bound, not
cumulative; the last entry counts the slower ones), in microseconds since CBOR here carries no
floats. Everything in it is public (the status port is reachable by the operators' and clients'
ranges): counts, durations, key names and epochs, pool levels — never a share, a nonce or a
digest. The parent turns it into Prometheus metrics; ``keyshard node status`` prints it.

Sans-I/O: encoders and strict decoders only (exactly these fields, this version, bounded sizes).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from wire import cbor
from wire.errors import MalformedMessageError

__all__ = [
    "LATENCY_BOUNDS_US",
    "MAX_TELEMETRY_FRAME",
    "KeyStats",
    "LatencyStats",
    "NodeTelemetry",
    "OperationStats",
    "TelemetryState",
    "decode_telemetry",
    "decode_telemetry_request",
    "encode_telemetry",
    "encode_telemetry_request",
]

VERSION = 1
OP = "metrics"
#: Upper bounds (microseconds) of the latency buckets; a last bucket counts what is slower.
LATENCY_BOUNDS_US = (
    1_000,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
)
#: Largest telemetry reply (keys are capped at :data:`MAX_KEYS` to stay under it).
MAX_TELEMETRY_FRAME = 512 * 1024
MAX_KEYS = 1024
MAX_ENTRIES = 512
_MAX_TEXT = 2000


class TelemetryState(enum.Enum):
    BOOTING = "booting"
    READY = "ready"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class OperationStats:
    op: str
    outcome: str
    count: int


@dataclass(frozen=True, slots=True)
class LatencyStats:
    op: str
    buckets: tuple[int, ...]
    count: int
    sum_us: int


@dataclass(frozen=True, slots=True)
class KeyStats:
    name: str
    suite: str
    epoch: int
    frost_nonces: int
    presignatures: int


@dataclass(frozen=True, slots=True)
class NodeTelemetry:
    state: TelemetryState
    node_id: str
    reason: str | None = None
    pcr0: bytes = b""
    sealed_version: int = 0
    attestation_age_s: int | None = None
    uptime_s: int = 0
    operations: tuple[OperationStats, ...] = ()
    latency: tuple[LatencyStats, ...] = ()
    keys: tuple[KeyStats, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """A JSON view (hex for bytes), for the CLI."""
        return {
            "state": self.state.value,
            "reason": self.reason,
            "node_id": self.node_id,
            "pcr0": self.pcr0.hex(),
            "sealed_version": self.sealed_version,
            "attestation_age_s": self.attestation_age_s,
            "uptime_s": self.uptime_s,
            "operations": [
                {"op": o.op, "outcome": o.outcome, "count": o.count} for o in self.operations
            ],
            "keys": [
                {
                    "name": k.name,
                    "suite": k.suite,
                    "epoch": k.epoch,
                    "frost_nonces": k.frost_nonces,
                    "presignatures": k.presignatures,
                }
                for k in self.keys
            ],
        }


def encode_telemetry_request() -> bytes:
    return cbor.dumps({"op": OP})


def decode_telemetry_request(payload: bytes) -> None:
    """Accept exactly ``{"op": "metrics"}``."""
    if cbor.loads_map(payload, what="telemetry request", fields=("op",))["op"] != OP:
        raise MalformedMessageError("telemetry request", "unknown op")


def encode_telemetry(telemetry: NodeTelemetry) -> bytes:
    return cbor.dumps(
        {
            "v": VERSION,
            "state": telemetry.state.value,
            "reason": telemetry.reason,
            "node_id": telemetry.node_id,
            "pcr0": telemetry.pcr0,
            "sealed_version": telemetry.sealed_version,
            "attestation_age_s": telemetry.attestation_age_s,
            "uptime_s": telemetry.uptime_s,
            "operations": [
                {"op": o.op, "outcome": o.outcome, "count": o.count} for o in telemetry.operations
            ],
            "latency": [
                {"op": x.op, "buckets": list(x.buckets), "count": x.count, "sum_us": x.sum_us}
                for x in telemetry.latency
            ],
            "keys": [
                {
                    "name": k.name,
                    "suite": k.suite,
                    "epoch": k.epoch,
                    "frost_nonces": k.frost_nonces,
                    "presignatures": k.presignatures,
                }
                for k in telemetry.keys[:MAX_KEYS]
            ],
        }
    )


_WHAT = "telemetry"
_FIELDS = (
    "v",
    "state",
    "reason",
    "node_id",
    "pcr0",
    "sealed_version",
    "attestation_age_s",
    "uptime_s",
    "operations",
    "latency",
    "keys",
)


def _refuse(reason: str) -> MalformedMessageError:
    return MalformedMessageError(_WHAT, reason)


def _text(value: object, name: str) -> str:
    if type(value) is not str or len(value) > _MAX_TEXT:
        raise _refuse(f"{name} must be text")
    return value


def _count(value: object, name: str) -> int:
    if type(value) is not int or value < 0:
        raise _refuse(f"{name} must be a non-negative integer")
    return value


def _maps(value: object, name: str, fields: tuple[str, ...], limit: int) -> list[dict[str, Any]]:
    if type(value) is not list or len(value) > limit:
        raise _refuse(f"{name} must be an array of at most {limit}")
    for item in value:
        if type(item) is not dict or set(item) != set(fields):
            raise _refuse(f"{name} entries must have exactly {', '.join(fields)}")
    return value


def decode_telemetry(payload: bytes) -> NodeTelemetry:
    """Parse a telemetry reply; raises :class:`MalformedMessageError` on anything else."""
    body = cbor.loads_map(payload, what=_WHAT, fields=_FIELDS, version=VERSION)
    try:
        state = TelemetryState(body["state"])
    except ValueError:
        raise _refuse("unknown state") from None
    reason = None if body["reason"] is None else _text(body["reason"], "reason")
    if type(body["pcr0"]) is not bytes or len(body["pcr0"]) > 64:
        raise _refuse("pcr0 must be at most 64 bytes")
    age = body["attestation_age_s"]
    latency = []
    for item in _maps(
        body["latency"], "latency", ("op", "buckets", "count", "sum_us"), MAX_ENTRIES
    ):
        buckets = item["buckets"]
        if type(buckets) is not list or len(buckets) != len(LATENCY_BOUNDS_US) + 1:
            raise _refuse("latency buckets must match the bounds")
        latency.append(
            LatencyStats(
                _text(item["op"], "op"),
                tuple(_count(b, "bucket") for b in buckets),
                _count(item["count"], "count"),
                _count(item["sum_us"], "sum_us"),
            )
        )
    return NodeTelemetry(
        state=state,
        node_id=_text(body["node_id"], "node_id"),
        reason=reason,
        pcr0=body["pcr0"],
        sealed_version=_count(body["sealed_version"], "sealed_version"),
        attestation_age_s=None if age is None else _count(age, "attestation_age_s"),
        uptime_s=_count(body["uptime_s"], "uptime_s"),
        operations=tuple(
            OperationStats(
                _text(o["op"], "op"), _text(o["outcome"], "outcome"), _count(o["count"], "count")
            )
            for o in _maps(
                body["operations"], "operations", ("op", "outcome", "count"), MAX_ENTRIES
            )
        ),
        latency=tuple(latency),
        keys=tuple(
            KeyStats(
                _text(k["name"], "name"),
                _text(k["suite"], "suite"),
                _count(k["epoch"], "epoch"),
                _count(k["frost_nonces"], "frost_nonces"),
                _count(k["presignatures"], "presignatures"),
            )
            for k in _maps(
                body["keys"],
                "keys",
                ("name", "suite", "epoch", "frost_nonces", "presignatures"),
                MAX_KEYS,
            )
        ),
    )
