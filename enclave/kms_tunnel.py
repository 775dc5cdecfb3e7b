"""The enclave's only way to KMS: a loopback TCP listener tunnelled over the transport.

An enclave has no network interface. boto3 connects to ``127.0.0.1:<port>`` inside the enclave; each
accepted connection is spliced, byte for byte, onto a transport connection to the parent's outbound
proxy (``(PARENT_CID, KMS_PROXY_PORT)``), which forwards it to the one KMS endpoint on its allow-list.
In both modes the bytes are TLS end to end between boto3 and KMS (AWS, or the emulated KMS with a
certificate from the dev CA measured into the image); the parent sees ciphertext only, and boto3
verifies the certificate here, inside the enclave.

boto3 uses the tunnel as an HTTPS proxy: each connection starts with
``CONNECT kms.<region>.amazonaws.com:443 HTTP/1.1``; the tunnel accepts exactly that target (any other
is answered ``403`` and closed), answers ``200`` once the parent's route is connected, and from then
on splices the TLS bytes. The preamble is parsed here, inside the enclave; the parent still sees
only opaque bytes (TLS).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from transport.address import PARENT_CID, VsockAddress
from transport.base import Transport
from transport.pump import splice

__all__ = ["KmsTunnel"]

log = logging.getLogger("enclave.kms_tunnel")

_PREAMBLE_TIMEOUT = 10.0


class KmsTunnel:
    """Listen on loopback; forward each connection to ``upstream`` over the transport."""

    def __init__(
        self,
        transport: Transport,
        upstream: VsockAddress,
        *,
        listen_port: int = 0,
        idle_timeout: float = 60.0,
        connect_target: tuple[str, int] | None = None,
    ) -> None:
        if upstream.cid != PARENT_CID:
            log.warning("event=kms_tunnel_unusual_upstream upstream=%s", upstream)
        self._transport = transport
        self._upstream = upstream
        self._listen_port = listen_port
        self._idle_timeout = idle_timeout
        self._connect_target = connect_target
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the tunnel is not started")
        sockname = self._server.sockets[0].getsockname()
        return int(sockname[1])

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self._listen_port)
        return self.port

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            if self._connect_target is not None and not await self._accept_connect(reader, writer):
                writer.close()
                return
            try:
                up_reader, up_writer = await self._transport.connect(self._upstream)
            except OSError as error:
                log.warning(
                    "event=kms_tunnel_connect_failed upstream=%s error=%s",
                    self._upstream,
                    type(error).__name__,
                )
                if self._connect_target is not None:
                    writer.write(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
                writer.close()
                return
            if self._connect_target is not None:
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await writer.drain()
            await splice(reader, writer, up_reader, up_writer, idle_timeout=self._idle_timeout)
        except (ConnectionError, OSError):
            writer.close()
        finally:
            if task is not None:
                self._tasks.discard(task)

    async def _accept_connect(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Read an HTTP CONNECT preamble; True if it names the one allowed target."""
        try:
            preamble = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _PREAMBLE_TIMEOUT)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            return False
        request_line = preamble.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split(" ")
        assert self._connect_target is not None  # checked by the caller
        host, port = self._connect_target
        if len(parts) == 3 and parts[0] == "CONNECT" and parts[2].startswith("HTTP/1."):
            target_host, _, target_port = parts[1].rpartition(":")
            if target_host.lower() == host.lower() and target_port == str(port):
                return True
        log.warning("event=kms_tunnel_refused_connect request=%r", request_line[:200])
        writer.write(b"HTTP/1.1 403 Forbidden\r\n\r\n")
        return False

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
