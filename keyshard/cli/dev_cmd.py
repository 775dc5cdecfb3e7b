"""``keyshard dev up|status|down|demo`` — the emulated local cluster.

``up`` builds and measures the enclave image, starts the emulated KMS and hypervisor, creates one KMS
key per node pinned to the image's PCRs, starts N nodes (parent + enclave) in the background and
returns once every enclave attested, obtained its data key and unsealed its state — or fails
naming the node and its reason. ``status`` asks every node over its status protocol; ``down`` stops
every process. The directory comes from ``--dir`` or ``KEYSHARD_DEV_DIR`` (default ``.keyshard/dev``).

Exit codes: 0 success; 1 local error (no cluster, bad flags, a process would not start);
2 a node or the KMS refused (a node failed to become ready).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from keyshard.cli.exit_codes import EXIT_LOCAL_ERROR, EXIT_OK, EXIT_REMOTE_ERROR
from keyshard.dev.cluster import Cluster, ClusterError, NodeView
from keyshard.dev.demo import run_demo

DEFAULT_DIR = ".keyshard/dev"
DIR_ENV = "KEYSHARD_DEV_DIR"


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = groups.add_parser(
        "dev",
        help="run an emulated local cluster (emulated KMS, NSM and enclaves)",
        description=(
            "Run a local Keyshard cluster whose enclaves are emulated: the same enclave and parent "
            "code as on AWS Nitro, with Unix sockets for vsock, an emulated NSM and CA, and an "
            "emulated KMS. Emulation is for development and tests, not a security boundary."
        ),
    )
    verbs = group.add_subparsers(dest="verb", metavar="<verb>", required=True)

    def with_dir(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--dir",
            type=Path,
            default=Path(os.environ.get(DIR_ENV, DEFAULT_DIR)),
            help=f"cluster directory (env {DIR_ENV}; default {DEFAULT_DIR})",
        )

    up = verbs.add_parser("up", help="start the emulated KMS and N nodes, wait until ready")
    with_dir(up)
    up.add_argument("--nodes", type=int, default=3, help="number of nodes (default 3)")
    up.add_argument(
        "--timeout", type=float, default=90.0, help="seconds to wait for readiness (default 90)"
    )
    up.set_defaults(handler=_up)

    status = verbs.add_parser("status", help="show each node's state and PCRs")
    with_dir(status)
    status.add_argument("--format", choices=["table", "json"], default="table")
    status.set_defaults(handler=_status)

    down = verbs.add_parser("down", help="stop every process of the cluster")
    with_dir(down)
    down.set_defaults(handler=_down)

    demo = verbs.add_parser(
        "demo",
        help="a guided tour: attestation, a 3-node cluster, threshold signing and decryption",
        description=(
            "Run the guided tour that `make demo` runs: documents verified and refused, a "
            "three-node emulated cluster that unseals only through attestation (and refuses a "
            "modified enclave), then DKG, FROST signing and threshold decryption. Everything runs "
            "in a temporary directory unless --dir is given, and is stopped at the end."
        ),
    )
    demo.add_argument("--dir", type=Path, default=None, help="keep the demo's files here")
    demo.set_defaults(handler=_demo)


def _progress(message: str) -> None:
    print(f"keyshard dev: {message}", file=sys.stderr, flush=True)


def _up(args: argparse.Namespace) -> int:
    try:
        cluster = Cluster(args.dir, args.nodes, progress=_progress)
    except ClusterError as error:
        print(f"keyshard dev up: {error}", file=sys.stderr)
        return EXIT_LOCAL_ERROR
    try:
        views = cluster.up(timeout=args.timeout)
    except ClusterError as error:
        print(f"keyshard dev up: {error}", file=sys.stderr)
        print(
            "keyshard dev up: processes left running for inspection: "
            f"`keyshard dev status --dir {args.dir}`, stop with `keyshard dev down --dir {args.dir}`",
            file=sys.stderr,
        )
        return EXIT_REMOTE_ERROR
    except (KeyboardInterrupt, OSError):
        cluster.down()
        raise
    print(_table(views))
    print(f"profile: {cluster.profile_file}")
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    try:
        views = Cluster.attach(args.dir).status()
    except ClusterError as error:
        print(f"keyshard dev status: {error}", file=sys.stderr)
        return EXIT_LOCAL_ERROR
    if args.format == "json":
        print(json.dumps([view.to_json() for view in views], indent=2))
    else:
        print(_table(views))
    return EXIT_OK if all(view.state == "ready" for view in views) else EXIT_REMOTE_ERROR


def _down(args: argparse.Namespace) -> int:
    try:
        Cluster.attach(args.dir, progress=_progress).down()
    except ClusterError as error:
        print(f"keyshard dev down: {error}", file=sys.stderr)
        return EXIT_LOCAL_ERROR
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    return run_demo(sys.stdout, args.dir)


def _table(views: list[NodeView]) -> str:
    rows = [("NODE", "ENDPOINT", "STATE", "SEALED", "PCR0", "DETAIL")]
    for view in views:
        status = view.status
        pcr0 = status.pcrs.get(0, b"").hex()[:16] if status is not None else ""
        detail = ""
        if status is not None and status.reason:
            detail = status.reason
        elif view.error:
            detail = view.error
        rows.append(
            (
                view.node_id,
                f"127.0.0.1:{view.client_port}",
                view.state,
                "" if status is None else str(status.sealed_version),
                pcr0,
                detail,
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(5)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:5], widths, strict=True))
        + ("  " + row[5] if row[5] else "")
        for row in rows
    )
