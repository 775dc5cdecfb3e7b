"""``python -m enclave --mode emulated|nitro [--cid N] [--runtime-dir DIR]``

The process boundary of the enclave: configure JSON logging (to stderr, and to the parent over the
log channel once the transport is chosen: see :mod:`enclave.logs`), read the measured image's
trust anchors and cluster table, parse the (node-independent) launch arguments, pick the mode's
seams (the one place modes differ), and run until SIGTERM or SIGINT. Exit codes: 0 after a clean
stop (whatever the boot reached — ``status`` reported it, including a node id the parent named that
the image's table does not list), 2 when the configuration is refused before anything started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence

# Before any other project import: from here on, project code resolves inside the image only.
from enclave.image import ImageOnlyFinder, image_root

ImageOnlyFinder.install()

from attestation.errors import AttestationError  # noqa: E402 -- after the import guard
from enclave.boot import EnclaveRuntime  # noqa: E402
from enclave.config import ImageConfig, parse_launch_args, select_seams  # noqa: E402
from enclave.errors import EnclaveError  # noqa: E402
from enclave.logs import LogChannel, configure_logging  # noqa: E402
from transport.hostclient import HostClient  # noqa: E402

log = logging.getLogger("enclave")

EXIT_OK = 0
EXIT_CONFIG = 2
FINAL_FLUSH_SECONDS = 2.0


async def _serve(runtime: EnclaveRuntime, channel: LogChannel) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    sender = asyncio.create_task(channel.run())
    try:
        await runtime.run(stop)
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        # The last lines ("stopped"), if the parent still listens; it is stopping us, so briefly.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(FINAL_FLUSH_SECONDS):
                await channel.send_buffered()
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    configure_logging()
    try:
        image = ImageConfig.load(image_root())
        launch = parse_launch_args(sys.argv[1:] if argv is None else argv)
        seams = select_seams(launch)
    except (EnclaveError, AttestationError) as error:
        log.error(
            "refused to start",
            extra={"fields": {"event": "config_refused", "error": str(error)}},
        )
        return EXIT_CONFIG
    channel = LogChannel(HostClient(seams.transport))
    logging.getLogger().addHandler(channel)
    log.info(
        "starting",
        extra={
            "fields": {
                "event": "starting",
                "mode": launch.mode.value,
                "cluster_nodes": len(image.nodes),
                "cid": launch.cid,
                "image_root": str(image_root()),
            }
        },
    )
    return asyncio.run(_serve(EnclaveRuntime(launch, image, seams), channel))


if __name__ == "__main__":
    sys.exit(main())
