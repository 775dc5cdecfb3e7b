"""The gateway process: load its configuration, reach the cluster, serve until told to stop.

The pieces are built here and nowhere else: the access-key table (:mod:`~.config`), the key
registry (:mod:`~.registry`), one :class:`keyshard.AsyncClient` over the cluster profile with the
gateway's own client certificate, the KMS operations (:mod:`~.operations`) and the KMS endpoint
(:mod:`~.kms_api`), and a background round that has the nodes' audit checkpoints witnessed by
their peers every ``witness_every`` seconds (:func:`witness_checkpoints_every`). SIGTERM or SIGINT
stops it; ``ready_file`` (written atomically once the socket
listens) tells a launcher the URL it serves, port 0 having picked a free port.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from enclave.logs import configure_logging
from keyshard.client.errors import ClientError
from keyshard.client.sdk import AsyncClient
from keyshard.gateway.config import GatewayConfig
from keyshard.gateway.http_server import Handler, Response
from keyshard.gateway.kms_api import KmsEndpoint
from keyshard.gateway.operations import Gateway
from keyshard.gateway.registry import Registry
from keyshard.gateway.server import Listener, serve
from keyshard.gateway.sigv4 import SignedRequest
from keyshard.gateway.xks_api import XksEndpoint

__all__ = [
    "WITNESS_EVERY_SECONDS",
    "GatewayOptions",
    "route",
    "run_gateway",
    "serve_forever",
    "witness_checkpoints_every",
]

#: How often the gateway has the audit checkpoints witnessed unless told otherwise.
WITNESS_EVERY_SECONDS = 60.0

log = logging.getLogger(__name__)


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
    witness_every: float = WITNESS_EVERY_SECONDS


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
        witnessing = (
            asyncio.create_task(witness_checkpoints_every(cluster, options.witness_every))
            if options.witness_every > 0
            else None
        )
        try:
            await serve(options.listener, route(kms, xks), started, stop)
        finally:
            if witnessing is not None:
                witnessing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await witnessing


async def witness_checkpoints_every(cluster: AsyncClient, seconds: float) -> None:
    """Forever: every ``seconds``, hand each node's audit checkpoint to its peers.

    Why here: a stored audit log's tail is protected only up to the newest checkpoint its
    peers witnessed (:mod:`wire.checkpoints`); changes of key state witness one, but a cluster
    that only signs would otherwise need an operator's cron job. The gateway is the long-running
    client most deployments have, so it keeps the window a parent could cut unseen to about
    ``seconds``. A failed round (nodes unreachable) is logged and the next one tried."""
    while True:
        await asyncio.sleep(seconds)
        try:
            held = await cluster.witness_audit_checkpoints()
        except ClientError as error:
            log.warning(
                "audit checkpoints not witnessed",
                extra={"fields": {"event": "checkpoints_unwitnessed", "error": str(error)}},
            )
            continue
        log.debug(
            "audit checkpoints witnessed",
            extra={"fields": {"event": "checkpoints_witnessed", "records": held}},
        )


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
