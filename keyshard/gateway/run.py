"""The gateway process: load its configuration, reach the cluster, serve until told to stop.

The pieces are built here and nowhere else: the access-key table (:mod:`~.config`), the key
registry (:mod:`~.registry`), one :class:`keyshard.AsyncClient` over the cluster profile with the
gateway's own client certificate, the KMS operations (:mod:`~.operations`) and the KMS endpoint
(:mod:`~.kms_api`). SIGTERM or SIGINT stops it; ``ready_file`` (written atomically once the socket
listens) tells a launcher the URL it serves, port 0 having picked a free port.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from enclave.logs import configure_logging
from keyshard.client.sdk import AsyncClient
from keyshard.gateway.config import GatewayConfig
from keyshard.gateway.http_server import Handler, Response
from keyshard.gateway.kms_api import KmsEndpoint
from keyshard.gateway.operations import Gateway
from keyshard.gateway.registry import Registry
from keyshard.gateway.server import Listener, serve
from keyshard.gateway.sigv4 import SignedRequest
from keyshard.gateway.xks_api import XksEndpoint

__all__ = ["GatewayOptions", "route", "run_gateway", "serve_forever"]


@dataclass(frozen=True, slots=True)
class GatewayOptions:
    profile: Path
    config: Path
    state: Path
    listener: Listener
    cert: Path | None = None
    key: Path | None = None
    threshold: int | None = None
    ready_file: Path | None = None


async def run_gateway(
    options: GatewayOptions, announce: Callable[[str], None] | None = None
) -> None:
    config = GatewayConfig.load(options.config)
    registry = Registry(options.state / "keys.json")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, stop.set)

    def started(url: str) -> None:
        if options.ready_file is not None:
            temporary = options.ready_file.with_suffix(".tmp")
            temporary.write_text(json.dumps({"url": url}), encoding="utf-8")
            temporary.replace(options.ready_file)
        if announce is not None:
            announce(url)

    async with AsyncClient.from_profile(
        options.profile, cert=options.cert, key=options.key
    ) as cluster:
        gateway = Gateway(config, registry, cluster, threshold=options.threshold)
        kms = KmsEndpoint(gateway)
        xks = None if config.xks is None else XksEndpoint(config.xks, cluster)
        await serve(options.listener, route(kms, xks), started, stop)


def route(kms: Handler, xks: XksEndpoint | None) -> Handler:
    """One listener, two APIs: the XKS routes under their prefix, the KMS API at ``/``."""

    async def handler(request: SignedRequest) -> Response:
        if xks is not None and xks.serves(request.target.partition("?")[0]):
            return await xks(request)
        return await kms(request)

    return handler


def serve_forever(options: GatewayOptions, announce: Callable[[str], None] | None = None) -> None:
    """The process's whole life: JSON logs on stderr (public: no bodies, no secrets), then
    :func:`run_gateway` until SIGTERM or SIGINT."""
    configure_logging()
    asyncio.run(run_gateway(options, announce))
