"""Running the gateway: its TLS context, its listening socket, and its cluster client.

TLS with the gateway's own certificate is the rule; plain HTTP is allowed only on a loopback
address, for development (``keyshard dev gateway``). The gateway reaches the cluster with its own
client certificate through :class:`keyshard.AsyncClient`, like any other client.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from keyshard.gateway.http_server import Handler, serve_connection

__all__ = ["Listener", "ServerError", "parse_listen", "serve"]


class ServerError(Exception):
    """The gateway cannot listen as asked (address, TLS files, plain HTTP off loopback)."""


@dataclass(frozen=True, slots=True)
class Listener:
    host: str
    port: int
    tls_cert: Path | None = None
    tls_key: Path | None = None

    def __post_init__(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ServerError("give both the TLS certificate and its key, or neither")
        if self.tls_cert is None and not _loopback(self.host):
            raise ServerError(
                f"plain HTTP is for loopback addresses only; {self.host} needs --tls-cert/--tls-key"
            )

    @property
    def scheme(self) -> str:
        return "http" if self.tls_cert is None else "https"

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.tls_cert is None or self.tls_key is None:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(self.tls_cert, self.tls_key)
        except (OSError, ssl.SSLError) as error:
            raise ServerError(f"cannot load the TLS certificate and key: {error}") from None
        return context


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6); port 0 picks a free one."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535 or not host:
        raise ServerError(f"--listen {text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


async def serve(
    listener: Listener,
    handler: Handler,
    started: Callable[[str], Awaitable[None] | None],
    stop: asyncio.Event,
    *,
    max_connections: int = 512,
) -> None:
    """Serve until ``stop`` is set; ``started`` gets the URL once the socket listens. Past
    ``max_connections`` open connections a newcomer is closed at once, so idle callers cannot
    exhaust the process (each connection also times out after 60 s of silence)."""
    tasks: set[asyncio.Task[object]] = set()

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(tasks) >= max_connections:
            writer.close()
            return
        task = asyncio.current_task()
        if task is None:  # pragma: no cover -- asyncio runs every connection in a task
            raise RuntimeError("a connection outside a task")
        tasks.add(task)
        try:
            await serve_connection(reader, writer, handler)
        finally:
            tasks.discard(task)

    server = await asyncio.start_server(
        connection, listener.host, listener.port, ssl=listener.ssl_context()
    )
    async with server:
        port = server.sockets[0].getsockname()[1]
        host = f"[{listener.host}]" if ":" in listener.host else listener.host
        result = started(f"{listener.scheme}://{host}:{port}")
        if result is not None:
            await result
        await stop.wait()
        for task in list(tasks):  # open connections end with the server, not after it
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
