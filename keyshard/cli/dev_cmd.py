"""``keyshard dev up|status|down|gateway|demo`` — the emulated local cluster.

``up`` builds and measures the enclave image, starts the emulated KMS and hypervisor, creates one KMS
key per node pinned to the image's PCRs, starts N nodes (parent + enclave) in the background and
returns once every enclave attested, obtained its data key and unsealed its state — or fails
naming the node and its reason. ``status`` asks every node over its status protocol; ``down`` stops
every process. The directory comes from ``--dir`` or ``KEYSHARD_DEV_DIR`` (default ``.keyshard/dev``).

Every verb needs the ``emulation`` extra (moto, werkzeug): without it the verb says, in one line,
``pip install 'keyshard[emulation]'`` (exit 1). :mod:`keyshard.dev` is imported inside the
handlers, so ``keyshard --help`` and ``keyshard dev --help`` work without the extra and stay cheap.

Exit codes: 0 success; 1 local error (no cluster, bad flags, a process would not start, the
``emulation`` extra missing); 2 a node or the KMS refused (a node failed to become ready).
"""

# ruff: noqa: PLC0415 -- handlers import their machinery themselves (keyshard.cli.main, rule 3)

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from keyshard.cli.errors import MissingExtraError
from keyshard.cli.exit_codes import EXIT_LOCAL_ERROR, EXIT_OK, EXIT_REMOTE_ERROR
from keyshard.cli.output import add_output_flags, emit, format_table

if TYPE_CHECKING:
    from keyshard.dev.cluster import NodeView

DEFAULT_DIR = ".keyshard/dev"
DIR_ENV = "KEYSHARD_DEV_DIR"

_UP_EPILOG = """\
examples:
  keyshard dev up                        three nodes in .keyshard/dev
  keyshard dev up --nodes 5 --dir /tmp/ks --timeout 180
  keyshard dev up --fresh                start over: forget the keys of the previous run
  keyshard dev up --offline node-3       node-3 booted off the network (as `dev offline node-3`)

The cluster profile (endpoints, expected PCRs, client credentials) is written to
<dir>/profile.json for 'keyshard key'. Processes stay up until 'keyshard dev down'.
Keys survive 'dev down' / 'dev up' of the same nodes: the emulated KMS keeps its keys in
<dir>/kms-state.json and each node unseals the state it sealed before.
--offline NODE: once every node is ready, NODE leaves the profile and its air-gapped side gets
<dir>/offline/NODE/ (`keyshard dev offline`); it just booted, so it serves no key until its
peers' witness reports reach it by file (`keyshard offline witness-*`). A key it must hold is
created while it is online: `dev up`, `key create`, then `dev offline NODE`.
exit codes: 0 every node ready; 1 local error; 2 a node failed to become ready (left running).
"""

_ADD_NODE_EPILOG = """\
examples:
  keyshard dev add-node                  node-4 joins a three-node cluster
  keyshard dev add-node --dir /tmp/ks

The emulated cluster restarts on the new image (a real cluster adds an instance with its own
KMS key and rolls the release the same way). The node holds no share of existing keys.
exit codes: 0 every node ready; 1 local error (no cluster kept); 2 a node failed to become ready.
"""

_STATUS_EPILOG = """\
examples:
  keyshard dev status
  keyshard dev status --format json
  keyshard dev status --field state      one line per node
  KEYSHARD_DEV_DIR=/tmp/ks keyshard dev status

fields (--field, --format json; one record per node): index, node_id, endpoint, process,
  state, error, metrics_url, health_url, ready_url (the parent's HTTP operations
  endpoint), status (status.pcrs.0, status.sealed_version, ...).
exit codes: 0 every node ready; 1 no cluster in the directory; 2 a node is not ready.
"""

_DOWN_EPILOG = """\
examples:
  keyshard dev down
  keyshard dev down --dir /tmp/ks

Idempotent: with nothing running it says so and succeeds. The profile is removed (its endpoints
are gone); the rest of the directory stays.
exit codes: 0 stopped, or nothing was running.
"""

_LOGS_EPILOG = """\
examples:
  keyshard dev logs node-2               the parent's log: JSON lines, the enclave's included
  keyshard dev logs 2 --lines 20
  keyshard dev logs node-2 | jq 'select(.source == "enclave")'

Each line is one JSON object (ts, level, source, logger, msg, and the event's fields); lines
with source "enclave" came from the enclave over its log channel, as on Nitro.
exit codes: 0 printed; 1 no cluster, or no such node.
"""

_RESTART_EPILOG = """\
examples:
  keyshard dev restart node-2
  keyshard dev restart 2 --timeout 120

Stops the node (parent and enclave) and starts it again from the same image; its sealed state
stays with its parent, so it comes back with the same identity and keys.
exit codes: 0 ready again; 1 no cluster, or no such node; 2 the node did not become ready.
"""

_GATEWAY_EPILOG = """\
examples:
  keyshard dev gateway                   then: aws kms list-keys --endpoint-url URL
  keyshard dev gateway --format json --field endpoint_url

The gateway serves AWS KMS's API over the cluster's threshold keys; boto3 and the AWS CLI
take its endpoint with endpoint_url / --endpoint-url and the access key in <dir>/gateway.json.
'keyshard dev down' stops it with the cluster.
exit codes: 0 serving; 1 no cluster, or the gateway did not start.
"""

_DEMO_EPILOG = """\
examples:
  keyshard dev demo                      everything in a temporary directory, removed at the end
  keyshard dev demo --dir /tmp/ks-demo   keep the demo's files for a look afterwards

exit codes: 0 every step behaved as described; 1 a step did not.
"""


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = groups.add_parser(
        "dev",
        help="run an emulated local cluster (emulated KMS, NSM and enclaves)",
        description=(
            "Run a local Keyshard cluster whose enclaves are emulated: the same enclave and parent\n"
            "code as on AWS Nitro, with Unix sockets for vsock, an emulated NSM and CA, and an\n"
            "emulated KMS. Emulation is for development and tests, not a security boundary.\n"
            "Needs the 'emulation' extra: pip install 'keyshard[emulation]'."
        ),
        epilog="examples:\n  keyshard dev up && keyshard dev status && keyshard dev down\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = group.add_subparsers(dest="verb", metavar="<verb>", required=True)

    def verb(name: str, help: str, description: str, epilog: str) -> argparse.ArgumentParser:
        return verbs.add_parser(
            name,
            help=help,
            description=description,
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    def with_dir(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--dir",
            type=Path,
            default=Path(os.environ.get(DIR_ENV, DEFAULT_DIR)),
            help=f"cluster directory (env {DIR_ENV}; default {DEFAULT_DIR})",
        )

    up = verb(
        "up",
        "start the emulated KMS and N nodes, wait until ready",
        "Build and measure the enclave image, start the emulated KMS and hypervisor, create one\n"
        "KMS key per node pinned to the image's PCRs, start N nodes (parent + enclave) and wait\n"
        "until every enclave attested, obtained its data key and unsealed its state.",
        _UP_EPILOG,
    )
    with_dir(up)
    up.add_argument("--nodes", type=int, default=3, help="number of nodes (default 3)")
    up.add_argument(
        "--timeout", type=float, default=90.0, help="seconds to wait for readiness (default 90)"
    )
    up.add_argument(
        "--fresh",
        action="store_true",
        help="start from empty nodes: forget the keys of the previous run (they are kept by default)",
    )
    up.add_argument(
        "--offline",
        action="append",
        default=[],
        metavar="NODE",
        help="take NODE offline once up, as `dev offline NODE` does (repeatable)",
    )
    up.set_defaults(handler=_up)

    status = verb(
        "status",
        "show each node's state and PCRs",
        "Ask every node of the cluster for its status (state, sealed version, PCRs) over its\n"
        "status protocol, and show one row per node.",
        _STATUS_EPILOG,
    )
    with_dir(status)
    add_output_flags(status)
    status.set_defaults(handler=_status)

    down = verb(
        "down",
        "stop every process of the cluster",
        "Stop every process of the cluster (nodes, hypervisor, emulated KMS). The directory and\n"
        "its files stay: the next `keyshard dev up` finds the keys again (--fresh forgets them).",
        _DOWN_EPILOG,
    )
    with_dir(down)
    down.set_defaults(handler=_down)

    gateway = verb(
        "gateway",
        "start the cluster's AWS KMS gateway, write <dir>/gateway.json",
        "Start 'keyshard gateway' for the running dev cluster in the background, on a free\n"
        "loopback port with a generated access key, and write <dir>/gateway.json (endpoint URL,\n"
        "region, access key id, secret access key, XKS URI prefix; mode 0600).",
        _GATEWAY_EPILOG,
    )
    with_dir(gateway)
    gateway.add_argument(
        "--listen", default="127.0.0.1:0", help="HOST:PORT on loopback (default: a free port)"
    )
    gateway.add_argument(
        "--witness-every",
        type=float,
        metavar="SECONDS",
        help="how often the gateway has audit checkpoints witnessed (default: the gateway's, 60)",
    )
    add_output_flags(gateway)
    gateway.set_defaults(handler=_gateway)
    add_node = verb(
        "add-node",
        "grow the cluster by one node, keeping every key",
        "Add one node to the cluster: the image (which lists every node's KMS key) is rebuilt\n"
        "and measured, every node restarted on it — each unseals what it had — and the new\n"
        "node started. Existing keys keep their holders; new keys use every node.",
        _ADD_NODE_EPILOG,
    )
    with_dir(add_node)
    add_node.add_argument(
        "--timeout", type=float, default=90.0, help="seconds to wait for readiness (default 90)"
    )
    add_node.set_defaults(handler=_add_node)
    logs = verb(
        "logs",
        "print a node's log (parent and enclave, JSON lines)",
        "Print node NODE's log: its parent's JSON lines, with the enclave's own lines relayed in\n"
        'over the log channel (source "enclave").',
        _LOGS_EPILOG,
    )
    with_dir(logs)
    logs.add_argument("node", metavar="NODE", help="node id (node-2) or index (2)")
    logs.add_argument("--lines", type=int, default=None, help="only the last N lines")
    logs.set_defaults(handler=_logs)

    restart = verb(
        "restart",
        "stop and start one node, wait until it is ready",
        "Stop node NODE (parent and enclave) and start it again; wait until it is ready.",
        _RESTART_EPILOG,
    )
    with_dir(restart)
    restart.add_argument("node", metavar="NODE", help="node id (node-2) or index (2)")
    restart.add_argument(
        "--timeout", type=float, default=90.0, help="seconds to wait for readiness (default 90)"
    )
    restart.set_defaults(handler=_restart)

    demo = verb(
        "demo",
        "a guided tour: attestation, a 3-node cluster, threshold signing and decryption",
        "Run the guided tour that `make demo` runs: documents verified and refused, a\n"
        "three-node emulated cluster that unseals only through attestation (and refuses a\n"
        "modified enclave), then DKG, FROST signing and threshold decryption. Everything runs\n"
        "in a temporary directory unless --dir is given, and is stopped at the end.",
        _DEMO_EPILOG,
    )
    demo.add_argument("--dir", type=Path, default=None, help="keep the demo's files here")
    demo.set_defaults(handler=_demo)

    offline = verb(
        "offline",
        "take a node off the network: its own profile, inbox and outbox",
        "Take a running node off the cluster's profile (online clients no longer reach it) and\n"
        "write the air-gapped side's profile, listing that node only, with inbox/ and outbox/\n"
        "directories for `keyshard offline` (README: sign with an offline holder).",
        _OFFLINE_EPILOG,
    )
    with_dir(offline)
    offline.add_argument("node", help="the node id (e.g. node-3)")
    offline.set_defaults(handler=_offline)
    online = verb(
        "online",
        "list an offline node in the cluster's profile again",
        "Bring a node taken offline back into the cluster's profile.",
        "examples:\n  keyshard dev online node-3\n",
    )
    with_dir(online)
    online.add_argument("node", help="the node id")
    online.set_defaults(handler=_online)


_OFFLINE_EPILOG = """\
examples:
  keyshard dev offline node-3
  keyshard offline commit cold --node node-3 --profile .keyshard/dev/offline/node-3/profile.json \\
      --count 16 --out cold.commitments

prints the air-gapped side's directory: profile.json, client/, inbox/, outbox/.
`keyshard dev online node-3` lists the node again; `keyshard dev up` lists every node.
"""


def _offline(args: argparse.Namespace) -> int:
    return _take_offline(args.dir, [args.node], "dev offline")


def _online(args: argparse.Namespace) -> int:
    from keyshard.client.errors import ClientError
    from keyshard.dev.offline import OfflineError, bring_online

    try:
        bring_online(args.dir, args.node)
    except (OfflineError, ClientError, OSError) as error:
        print(f"keyshard dev online: {error}", file=sys.stderr)
        return EXIT_LOCAL_ERROR
    return EXIT_OK


def _require_emulation() -> None:
    """Fail in one line, before any import of :mod:`keyshard.dev`, if the extra is missing."""
    from keyshard.dev import EMULATION_EXTRA, missing_emulation_module

    missing = missing_emulation_module()
    if missing is not None:
        raise MissingExtraError(EMULATION_EXTRA, missing)


def _progress(message: str) -> None:
    print(f"keyshard dev: {message}", file=sys.stderr, flush=True)


def _up(args: argparse.Namespace) -> int:
    _require_emulation()
    from keyshard.dev.cluster import Cluster, ClusterError

    known = {f"node-{i}" for i in range(1, args.nodes + 1)}
    offline = list(dict.fromkeys(args.offline))
    if not set(offline) <= known or len(offline) >= args.nodes:
        print(
            f"keyshard dev up: --offline takes fewer than {args.nodes} of "
            f"{', '.join(sorted(known))}",
            file=sys.stderr,
        )
        return EXIT_LOCAL_ERROR
    try:
        cluster = Cluster(args.dir, args.nodes, progress=_progress)
    except ClusterError as error:
        print(f"keyshard dev up: {error}", file=sys.stderr)
        return EXIT_LOCAL_ERROR
    try:
        views = cluster.up(timeout=args.timeout, fresh=args.fresh)
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
    return _take_offline(args.dir, offline, "dev up")


def _take_offline(directory: Path, nodes: Sequence[str], verb: str) -> int:
    """Take ``nodes`` offline (:func:`keyshard.dev.offline.take_offline`); print each one's
    air-gapped directory."""
    from keyshard.client.errors import ClientError
    from keyshard.dev.offline import OfflineError, take_offline

    for node in nodes:
        try:
            target = take_offline(directory, node)
        except (OfflineError, ClientError, OSError) as error:
            print(f"keyshard {verb}: {error}", file=sys.stderr)
            return EXIT_LOCAL_ERROR
        print(f"offline {node}: {target}" if verb == "dev up" else target)
    return EXIT_OK


def _add_node(args: argparse.Namespace) -> int:
    _require_emulation()
    from keyshard.dev.cluster import Cluster, ClusterError

    try:
        cluster, views = Cluster.add_node(args.dir, progress=_progress, timeout=args.timeout)
    except ClusterError as error:
        print(f"keyshard dev add-node: {error}", file=sys.stderr)
        return EXIT_REMOTE_ERROR if "ready" in str(error) else EXIT_LOCAL_ERROR
    print(_table(views))
    print(f"profile: {cluster.profile_file}")
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    _require_emulation()
    from keyshard.dev.cluster import Cluster, ClusterError

    try:
        views = Cluster.attach(args.dir).status()
    except ClusterError as error:
        print(f"keyshard dev status: {error}", file=sys.stderr)
        return EXIT_LOCAL_ERROR
    emit(args, [view.to_json() for view in views], lambda: _table(views))
    return EXIT_OK if all(view.state == "ready" for view in views) else EXIT_REMOTE_ERROR


def _down(args: argparse.Namespace) -> int:
    _require_emulation()
    from keyshard.dev.cluster import Cluster, ClusterError

    try:
        cluster = Cluster.attach(args.dir, progress=_progress)
    except ClusterError:
        print(f"keyshard dev down: nothing running in {args.dir}", file=sys.stderr)
        return EXIT_OK
    try:
        cluster.down()
    except ClusterError as error:  # a process that even SIGKILL did not end (stuck in the kernel)
        print(f"keyshard dev down: {error}", file=sys.stderr)
        return EXIT_LOCAL_ERROR
    return EXIT_OK


def _node_index(cluster_nodes: Sequence[str], name: str) -> int | None:
    """The 1-based index of ``name`` (a node id or an index), or None."""
    if name in cluster_nodes:
        return cluster_nodes.index(name) + 1
    if name.isascii() and name.isdigit() and 1 <= int(name) <= len(cluster_nodes):
        return int(name)
    return None


def _logs(args: argparse.Namespace) -> int:
    _require_emulation()
    from keyshard.dev.cluster import Cluster, ClusterError

    try:
        cluster = Cluster.attach(args.dir)
    except ClusterError as error:
        print(f"keyshard dev logs: {error}", file=sys.stderr)
        return EXIT_LOCAL_ERROR
    index = _node_index(cluster.node_ids, args.node)
    if index is None:
        print(f"keyshard dev logs: no node {args.node!r} in {args.dir}", file=sys.stderr)
        return EXIT_LOCAL_ERROR
    path = cluster.log_files(index)[0]
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as error:
        print(f"keyshard dev logs: {path}: {error.strerror}", file=sys.stderr)
        return EXIT_LOCAL_ERROR
    if args.lines is not None:
        lines = lines[-args.lines :] if args.lines > 0 else []
    for line in lines:
        print(line)
    return EXIT_OK


def _restart(args: argparse.Namespace) -> int:
    _require_emulation()
    from keyshard.dev.cluster import Cluster, ClusterError

    try:
        cluster = Cluster.attach(args.dir, progress=_progress)
    except ClusterError as error:
        print(f"keyshard dev restart: {error}", file=sys.stderr)
        return EXIT_LOCAL_ERROR
    index = _node_index(cluster.node_ids, args.node)
    if index is None:
        print(f"keyshard dev restart: no node {args.node!r} in {args.dir}", file=sys.stderr)
        return EXIT_LOCAL_ERROR
    cluster.restart_node(index)
    try:
        views = cluster.wait_ready(timeout=args.timeout, nodes=[index])
    except ClusterError as error:
        print(f"keyshard dev restart: {error}", file=sys.stderr)
        return EXIT_REMOTE_ERROR
    print(_table([views[index - 1]]))
    return EXIT_OK


def _gateway(args: argparse.Namespace) -> int:
    _require_emulation()
    from keyshard.dev.cluster import Cluster, ClusterError
    from keyshard.dev.gateway import GATEWAY_FILE, start_gateway

    try:
        info = start_gateway(
            Cluster.attach(args.dir, progress=_progress),
            listen=args.listen,
            witness_every=args.witness_every,
        )
    except ClusterError as error:
        print(f"keyshard dev gateway: {error}", file=sys.stderr)
        return EXIT_LOCAL_ERROR
    public = {k: v for k, v in info.to_json().items() if "secret" not in k}
    emit(
        args,
        public,
        lambda: "\n".join(
            [f"{k:22} {v}" for k, v in public.items()]
            + [f"credentials: {args.dir / GATEWAY_FILE} (secret access key inside)"]
        ),
    )
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    _require_emulation()
    from keyshard.dev.demo import run_demo

    return run_demo(sys.stdout, args.dir)


def _table(views: list[NodeView]) -> str:
    rows = [["NODE", "ENDPOINT", "STATE", "SEALED", "PCR0", "DETAIL"]]
    for view in views:
        status = view.status
        pcr0 = status.pcrs.get(0, b"").hex()[:16] if status is not None else ""
        detail = ""
        if status is not None and status.reason:
            detail = status.reason
        elif view.error:
            detail = view.error
        rows.append(
            [
                view.node_id,
                f"127.0.0.1:{view.client_port}",
                view.state,
                "" if status is None else str(status.sealed_version),
                pcr0,
                detail,
            ]
        )
    return format_table(rows)
