"""The node service's own metrics: requests by operation and outcome, latencies, key pool levels.

:class:`ServiceMetrics` is fed by :meth:`enclave.service.handlers.NodeService.answer` (one call per
request answered, with its reply) and read by the status protocol's ``metrics`` op
(:mod:`wire.telemetry`), which the parent turns into Prometheus metrics. It records only what the
telemetry format says is public: the operation name, the outcome (``ok`` or the wire error code),
the time taken, and per key its suite, epoch and how many FROST nonces and presignatures wait in
memory. Counters live in enclave memory and restart at zero with the enclave, as Prometheus
counters may.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from enclave.service.keystore import KeyStore
from enclave.service.nonces import FrostNonces
from enclave.service.sessions import PresignaturePools
from wire.messages import ErrorReply, Reply
from wire.telemetry import LATENCY_BOUNDS_US, MAX_KEYS, KeyStats, LatencyStats, OperationStats

__all__ = ["ServiceMetrics"]


@dataclass(slots=True)
class _Latency:
    buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BOUNDS_US) + 1))
    count: int = 0
    sum_us: int = 0


class ServiceMetrics:
    """Counters and histograms of one node service (single event loop: no locking needed)."""

    def __init__(
        self,
        keys: KeyStore,
        nonces: FrostNonces,
        pools: PresignaturePools,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keys = keys
        self._nonces = nonces
        self._pools = pools
        self.clock = clock
        self._operations: dict[tuple[str, str], int] = {}
        self._latency: dict[str, _Latency] = {}

    def observe(self, op: str, reply: Reply, seconds: float) -> None:
        """Count one answered request of operation ``op`` that took ``seconds``."""
        outcome = reply.code.value if isinstance(reply, ErrorReply) else "ok"
        self._operations[(op, outcome)] = self._operations.get((op, outcome), 0) + 1
        micros = max(0, round(seconds * 1_000_000))
        latency = self._latency.setdefault(op, _Latency())
        latency.buckets[bisect.bisect_left(LATENCY_BOUNDS_US, micros)] += 1
        latency.count += 1
        latency.sum_us += micros

    def operations(self) -> tuple[OperationStats, ...]:
        return tuple(
            OperationStats(op, outcome, count)
            for (op, outcome), count in sorted(self._operations.items())
        )

    def latency(self) -> tuple[LatencyStats, ...]:
        return tuple(
            LatencyStats(op, tuple(x.buckets), x.count, x.sum_us)
            for op, x in sorted(self._latency.items())
        )

    async def key_stats(self) -> tuple[KeyStats, ...]:
        """Every committed key's suite, epoch and in-memory pool levels (at most MAX_KEYS)."""
        stats = []
        for name in (await self._keys.names())[:MAX_KEYS]:
            key = await self._keys.stored(name)
            stats.append(
                KeyStats(
                    name,
                    key.suite.name,
                    key.epoch,
                    self._nonces.available(name),
                    self._pools.level(name),
                )
            )
        return tuple(stats)
