"""The parent's byte proxy: inbound TCP -> enclave, enclave -> allow-listed TCP. It never parses.

Everything that crosses it is either TLS (KMS, end to end from inside the enclave) or an attested
channel terminating in an enclave, so the proxy needs no insight into the bytes — and must not have
any: it is untrusted (architecture invariant 2). Its jobs are availability and containment:

* **Inbound routes** — a TCP listener (client API, peer traffic) spliced to an enclave
  ``(cid, port)`` over the transport.
* **Outbound routes** — a listener at the parent's ``(cid, port)`` spliced to a TCP ``host:port``.
  The target must be on the :class:`AllowList` when the route is added *and* when each connection
  arrives (revoking an entry refuses new connections at once: closed, logged, counted). A port with
  no route has no listener at all, so the enclave's connect is refused by the kernel.
* **Containment** — a per-route connection limit, an idle timeout, a connect timeout, and
  back-pressure (reading pauses while the other side's write buffer is full), so memory per
  connection stays bounded. On an inbound route — the first hop for anyone who can reach the host —
  a connection that sends nothing within ``first_byte_timeout`` is closed, and a new connection to a
  full route evicts the oldest one its target has not answered yet (a silent or stalled caller), so
  a flood of silent connections cannot lock clients out; only when every connection has been
  answered is the newcomer refused (accepted and closed at once, so a flood cannot fill the listen
  backlog). A client being served is never evicted by a newcomer.
* **Metrics** — :meth:`Proxy.metrics` sums finished and live connections (bytes each way,
  refusals, failures, idle timeouts, the peak write-buffer occupancy).

The bytes move through :class:`transport.relay.Relay` (protocol to protocol, no task per chunk);
each connection costs one short-lived task only while its target is being connected.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields

from parent.errors import ConfigError
from transport.address import ANY_CID, VsockAddress
from transport.base import Transport
from transport.pump import SpliceEnd
from transport.relay import Relay

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ProxyLimits:
    """Containment settings, per route."""

    max_connections: int = 256
    idle_timeout: float | None = 300.0
    connect_timeout: float = 10.0
    first_byte_timeout: float | None = 10.0
    """Inbound routes: seconds a caller has, once its target is connected, to send a first byte."""

    def __post_init__(self) -> None:
        if self.max_connections < 1:
            raise ConfigError("max_connections", "must be at least 1")
        if self.idle_timeout is not None and self.idle_timeout <= 0:
            raise ConfigError("idle_timeout", "must be positive (or null for none)")
        if self.connect_timeout <= 0:
            raise ConfigError("connect_timeout", "must be positive")
        if self.first_byte_timeout is not None and self.first_byte_timeout <= 0:
            raise ConfigError("first_byte_timeout", "must be positive (or null for none)")


@dataclass(frozen=True, slots=True)
class InboundRoute:
    """``listen_host:listen_port`` (TCP on the host) -> ``target`` (an enclave's vsock address)."""

    name: str
    listen_host: str
    listen_port: int
    target: VsockAddress


@dataclass(frozen=True, slots=True)
class OutboundRoute:
    """Enclave connects to the parent at vsock ``port`` -> TCP ``host:target_port``."""

    name: str
    port: int
    host: str
    target_port: int


class AllowList:
    """The TCP endpoints enclaves may reach (KMS, peer parents). Mutable: entries can be revoked."""

    def __init__(self, entries: set[tuple[str, int]] | None = None) -> None:
        self._entries: set[tuple[str, int]] = set(entries or ())

    def permits(self, host: str, port: int) -> bool:
        return (host.lower(), port) in self._entries

    def allow(self, host: str, port: int) -> None:
        self._entries.add((host.lower(), port))

    def revoke(self, host: str, port: int) -> None:
        self._entries.discard((host.lower(), port))

    def entries(self) -> frozenset[tuple[str, int]]:
        return frozenset(self._entries)


@dataclass(slots=True)
class ProxyMetrics:
    """Counters; ``bytes_in`` flows towards the target, ``bytes_out`` back to the connecting side."""

    accepted: int = 0
    active: int = 0
    completed: int = 0
    refused_limit: int = 0
    refused_not_allowed: int = 0
    evicted: int = 0
    connect_failed: int = 0
    idle_timeouts: int = 0
    first_byte_timeouts: int = 0
    resets: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    backpressure_waits: int = 0
    peak_buffered: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(slots=True)
class _RouteState:
    name: str
    open_target: Callable[[Relay], Awaitable[object]]
    """Connects the relay's target side (inbound: to the enclave; outbound: to TCP)."""
    check: Callable[[], str | None]
    """Returns a refusal reason, or None to proceed (evaluated per connection)."""
    inbound: bool
    """Callers are anyone who can reach the host: first-byte deadline, eviction of the silent."""
    metrics: ProxyMetrics = field(default_factory=ProxyMetrics)
    live: dict[Relay, None] = field(default_factory=dict)
    """Live connections, oldest first."""
    evicting: int = 0
    """Evicted connections still closing (live, but no longer counted against the limit)."""
    reached: bool = False
    """Whether a connection to the target ever succeeded. Until then an inbound route's connect
    failures are the enclave still booting (callers poll its status port), logged at DEBUG."""


class Proxy:
    """A set of inbound and outbound routes sharing one transport, allow-list and limits."""

    def __init__(
        self,
        transport: Transport,
        *,
        allow: AllowList | None = None,
        limits: ProxyLimits | None = None,
        outbound_cid: int = ANY_CID,
        tap: Callable[[str, str, bytes], None] | None = None,
    ) -> None:
        """``tap(route, direction, data)``, direction ``"in"`` (towards the target) or ``"out"``,
        sees every forwarded chunk — a test hook for "what does the untrusted parent see"."""
        self._transport = transport
        self.allow_list = allow if allow is not None else AllowList()
        self.limits = limits or ProxyLimits()
        self._outbound_cid = outbound_cid
        self._tap = tap
        self._servers: list[asyncio.AbstractServer] = []
        self._routes: dict[str, _RouteState] = {}
        self._idle = asyncio.Event()
        self._idle.set()

    async def add_inbound(self, route: InboundRoute) -> int:
        """Start listening; returns the bound TCP port (useful with ``listen_port=0``)."""

        async def open_target(relay: Relay) -> object:
            return await self._transport.connect_protocol(route.target, relay.target_side)

        state = self._new_route(route.name, open_target, lambda: None, inbound=True)
        server = await asyncio.get_running_loop().create_server(
            lambda: self._new_relay(state), route.listen_host, route.listen_port, backlog=1024
        )
        self._servers.append(server)
        port: int = server.sockets[0].getsockname()[1]
        log.info(
            "route up",
            extra={
                "fields": {
                    "event": "route_up",
                    "route": route.name,
                    "kind": "inbound",
                    "listen": f"{route.listen_host}:{port}",
                    "target": str(route.target),
                }
            },
        )
        return port

    async def add_outbound(self, route: OutboundRoute) -> None:
        """Listen at the parent's vsock ``route.port``; the target must be allow-listed now."""
        if not self.allow_list.permits(route.host, route.target_port):
            raise ConfigError(
                f"outbound.{route.name}", f"{route.host}:{route.target_port} is not allow-listed"
            )

        def check() -> str | None:
            if self.allow_list.permits(route.host, route.target_port):
                return None
            return "not_allowed"

        async def open_target(relay: Relay) -> object:
            loop = asyncio.get_running_loop()
            return await loop.create_connection(relay.target_side, route.host, route.target_port)

        state = self._new_route(route.name, open_target, check, inbound=False)
        server = await self._transport.listen_protocol(
            VsockAddress(self._outbound_cid, route.port), lambda: self._new_relay(state)
        )
        self._servers.append(server)
        log.info(
            "route up",
            extra={
                "fields": {
                    "event": "route_up",
                    "route": route.name,
                    "kind": "outbound",
                    "port": route.port,
                    "target": f"{route.host}:{route.target_port}",
                }
            },
        )

    def _new_route(
        self,
        name: str,
        open_target: Callable[[Relay], Awaitable[object]],
        check: Callable[[], str | None],
        *,
        inbound: bool,
    ) -> _RouteState:
        if name in self._routes:
            raise ConfigError(f"route.{name}", "duplicate route name")
        state = _RouteState(name, open_target, check, inbound)
        self._routes[name] = state
        return state

    def route_metrics(self) -> dict[str, ProxyMetrics]:
        """A snapshot per route (the parent's Prometheus metrics)."""
        return {name: self.metrics(name) for name in self._routes}

    def metrics(self, route: str | None = None) -> ProxyMetrics:
        """A snapshot: finished connections plus the live ones, for one route or all."""
        states = [self._routes[route]] if route is not None else list(self._routes.values())
        total = ProxyMetrics()
        for state in states:
            m = state.metrics
            for f in fields(ProxyMetrics):
                if f.name != "peak_buffered":
                    setattr(total, f.name, getattr(total, f.name) + getattr(m, f.name))
            total.peak_buffered = max(total.peak_buffered, m.peak_buffered)
            for relay in state.live:
                live = relay.stats
                total.bytes_in += live.a_to_b
                total.bytes_out += live.b_to_a
                total.backpressure_waits += live.backpressure_waits
                total.peak_buffered = max(total.peak_buffered, live.peak_buffered)
        return total

    # ------------------------------------------------------------------ per-connection flow ----

    def _new_relay(self, state: _RouteState) -> asyncio.Protocol:
        relay = Relay(
            idle_timeout=self.limits.idle_timeout,
            first_byte_timeout=self.limits.first_byte_timeout if state.inbound else None,
            tap=self._route_tap(state.name),
            on_accept=lambda r: self._admit(state, r),
            on_done=lambda r: self._finished(state, r),
        )
        return relay.accepting_side()

    def _route_tap(self, route: str) -> Callable[[bool, bytes], None] | None:
        tap = self._tap
        if tap is None:
            return None
        return lambda a_to_b, data: tap(route, "in" if a_to_b else "out", data)

    def _admit(self, state: _RouteState, relay: Relay) -> bool:
        m = state.metrics
        m.accepted += 1
        full = m.active - state.evicting >= self.limits.max_connections
        if full and state.inbound:
            full = not self._evict_unanswered(state)
        reason = "limit" if full else state.check()
        if reason is not None:
            if reason == "limit":
                m.refused_limit += 1
            else:
                m.refused_not_allowed += 1
            log.warning(
                "connection refused",
                extra={"fields": {"event": "refused", "route": state.name, "reason": reason}},
            )
            return False
        m.active += 1
        state.live[relay] = None
        self._idle.clear()
        timeout = self.limits.connect_timeout

        async def open_with_timeout() -> None:
            async with asyncio.timeout(timeout):
                await state.open_target(relay)
            state.reached = True

        relay.connect_target(open_with_timeout)
        return True

    def _evict_unanswered(self, state: _RouteState) -> bool:
        """Evict the oldest live connection its target has not answered; False if none."""
        for relay in state.live:
            if not relay.answered and not relay.evicted:
                relay.evict()
                state.evicting += 1
                state.metrics.evicted += 1
                log.info(
                    "connection evicted",
                    extra={"fields": {"event": "evicted", "route": state.name}},
                )
                return True
        return False

    def _finished(self, state: _RouteState, relay: Relay) -> None:
        if relay.refused:
            return
        m = state.metrics
        m.active -= 1
        if relay.evicted:
            state.evicting -= 1
        state.live.pop(relay, None)
        if not any(s.live for s in self._routes.values()):
            self._idle.set()
        if relay.connect_error is not None:
            m.connect_failed += 1
            booting = state.inbound and not state.reached
            log.log(
                logging.DEBUG if booting else logging.WARNING,
                "connect failed",
                extra={
                    "fields": {
                        "event": "connect_failed",
                        "route": state.name,
                        "error": type(relay.connect_error).__name__,
                        "target_seen": state.reached,
                    }
                },
            )
            return
        stats = relay.stats
        m.bytes_in += stats.a_to_b
        m.bytes_out += stats.b_to_a
        m.backpressure_waits += stats.backpressure_waits
        m.peak_buffered = max(m.peak_buffered, stats.peak_buffered)
        m.completed += 1
        if stats.end is SpliceEnd.IDLE_TIMEOUT:
            m.idle_timeouts += 1
        elif stats.end is SpliceEnd.FIRST_BYTE_TIMEOUT:
            m.first_byte_timeouts += 1
        elif stats.end is SpliceEnd.RESET:
            m.resets += 1
        log.debug(
            "connection closed",
            extra={
                "fields": {
                    "event": "closed",
                    "route": state.name,
                    "in": stats.a_to_b,
                    "out": stats.b_to_a,
                    "end": stats.end.value if stats.end else None,
                }
            },
        )

    async def close(self) -> None:
        """Stop listening, abort every live connection, and wait until all of them are gone."""
        for server in self._servers:
            server.close()
        for state in self._routes.values():
            for relay in list(state.live):
                relay.abort()
        for server in self._servers:
            await server.wait_closed()
        await self._idle.wait()
        self._servers.clear()

    async def __aenter__(self) -> Proxy:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
