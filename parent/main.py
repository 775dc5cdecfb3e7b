"""``python -m parent --config node.json``: run one Keyshard parent until signalled.

Exit codes follow the project CLI: 0 after a requested shutdown, 1 for a local error (bad
configuration, a launch failure), 2 when the enclave stopped on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from parent.config import load_config
from parent.errors import ParentError
from parent.node import ParentNode
from parent.recorder import TrafficRecorder
from transport.errors import TransportError
from transport.jsonlog import configure_json_logging

EXIT_OK = 0
EXIT_LOCAL_ERROR = 1
EXIT_ENCLAVE_STOPPED = 2

log = logging.getLogger("parent")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m parent",
        description=(
            "The untrusted host side of a Keyshard node: launches the enclave (nitro-cli, or a "
            "child process in emulation), forwards its traffic (inbound TCP -> enclave, enclave -> "
            "allow-listed TCP), stores its sealed blobs and relays instance credentials. It is untrusted "
            "and holds no enclave secret: what it moves or stores is encrypted by the enclave."
        ),
        epilog=(
            "The configuration is JSON; see parent/config.py for every field and an example. "
            "Exit codes: 0 clean shutdown (SIGTERM/SIGINT), 1 local error, 2 enclave stopped."
        ),
    )
    parser.add_argument(
        "--config", type=Path, required=True, metavar="FILE", help="node configuration (JSON)"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="validate the configuration, print a summary, and exit",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log verbosity on stderr, JSON lines (default INFO)",
    )
    parser.add_argument(
        "--record",
        type=Path,
        metavar="DIR",
        help=(
            "testing aid: append every byte this parent forwards or serves to DIR/<route>-<in|out>"
            ".bin (the parent's whole view, for secrecy tests; never in production)"
        ),
    )
    parser.add_argument(
        "--ports-file",
        type=Path,
        metavar="FILE",
        help=(
            'once listening, write the bound TCP ports as JSON to FILE ({"inbound": {route: port}, '
            '"operations": port}); with port 0 in the configuration this is how a supervisor '
            "learns them without racing other processes for a port"
        ),
    )
    parser.add_argument(
        "--metrics-interval",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="log proxy metrics this often (0 disables; default 60)",
    )
    return parser


def _write_ports(path: Path, node: ParentNode) -> None:
    """Atomically (write then rename): a reader sees no file or a whole one."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(
        json.dumps({"inbound": node.inbound_ports, "operations": node.operations_port}),
        encoding="utf-8",
    )
    temporary.replace(path)


async def _run(node: ParentNode, metrics_interval: float, ports_file: Path | None = None) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await node.start()
    if ports_file is not None:
        _write_ports(ports_file, node)
    log.info(
        "parent ready",
        extra={
            "fields": {
                "event": "parent_ready",
                "inbound": json.dumps(node.inbound_ports, sort_keys=True),
                "operations_port": node.operations_port,
            }
        },
    )

    async def report() -> None:
        while metrics_interval > 0:
            await asyncio.sleep(metrics_interval)
            log.info(
                "proxy metrics", extra={"fields": {"event": "metrics", **node.metrics().as_dict()}}
            )

    reporter = asyncio.create_task(report())
    enclave = asyncio.create_task(node.wait())
    stopped = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait({enclave, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (reporter, enclave, stopped):
            task.cancel()
        await node.close()
    if enclave in done and not enclave.cancelled():
        ended = enclave.result()
        log.warning(
            "enclave ended",
            extra={
                "fields": {
                    "event": "enclave_ended",
                    "exit": ended.description if ended else "unknown",
                }
            },
        )
        return EXIT_ENCLAVE_STOPPED
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_json_logging("parent", args.log_level)
    try:
        config = load_config(args.config)
    except ParentError as exc:
        print(f"parent: invalid configuration: {exc}", file=sys.stderr)
        return EXIT_LOCAL_ERROR
    if args.check:
        print(
            json.dumps(
                {
                    "mode": config.mode.value,
                    "enclave_cid": config.enclave_cid,
                    "inbound": [
                        f"{r.listen_host}:{r.listen_port}->{r.enclave_port}" for r in config.inbound
                    ],
                    "outbound": [f"{r.port}->{r.host}:{r.target_port}" for r in config.outbound],
                    "blob_store": type(config.blob_store).__name__,
                    "launcher": type(config.launcher).__name__ if config.launcher else None,
                },
                indent=2,
            )
        )
        return EXIT_OK
    recorder = TrafficRecorder(args.record) if args.record is not None else None
    try:
        return asyncio.run(
            _run(ParentNode(config, tap=recorder), args.metrics_interval, args.ports_file)
        )
    except (ParentError, TransportError, OSError) as exc:
        # Process boundary: a launch failure, an address in use, an unusable runtime directory.
        print(f"parent: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_LOCAL_ERROR
    finally:
        if recorder is not None:
            recorder.close()
