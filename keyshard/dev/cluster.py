"""The emulated cluster: ``keyshard dev up | status | down`` as a library.

Layout of a cluster directory (default ``.keyshard/dev``)::

    cluster.json            what is running: ports, pids, key ARNs (this module's state)
    client/                 the cluster's admin client TLS key (0600) and certificate; the
                            certificate is written into the image config before measuring
    profile.json            what clients use: endpoints, pinned root, expected PCRs
    ca/                     the emulated attestation root of this local cloud (root.pem is public)
    kms-tls/                the emulated KMS's TLS certificate and key, and the dev CA (ca.pem)
                            that issued it, which the image pins (a new CA every ``up``)
    image/                  the built enclave image (transport, attestation, enclave + image.json)
    cloud.json              the emulated cloud process's configuration (KMS + hypervisors)
    kms-state.json          the emulated KMS's keys and policies (0600), kept across down/up
    nodes/<i>/run/          node i's vsock bus (Unix sockets); nodes/<i>/blobs/ its sealed blobs
    nodes/<i>/node.json     node i's parent configuration; nodes/<i>/vm.json what its hypervisor runs
    pids/*.pid, logs/*.log  background processes and their logs

:meth:`Cluster.up` issues the KMS's TLS certificate, builds and measures the image (with the dev CA
that issued it), starts the emulated cloud (KMS over HTTPS and the per-node hypervisor NSMs),
creates one KMS key per node whose policy is pinned to the image's PCR0/1/2,
starts one parent per node (each launches its enclave from the image), then polls every node's
status protocol until all are ``ready`` or one has ``failed`` (it says why) or the deadline passes.
Every process runs in its own session so :meth:`Cluster.down` can stop each process group: nothing
is left behind.

Keys survive ``down``/``up``: the emulated KMS keeps its keys in ``kms-state.json``
(:mod:`keyshard.dev.kms_state`), so a later ``up`` of the same nodes reuses each node's KMS key
(its policy pinned again to the new image's measurements), and every node unseals the state it
sealed before — its threshold keys included. ``up(fresh=True)`` (``keyshard dev up --fresh``), a
different node count, or a missing KMS state starts from empty nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from cryptography.hazmat.primitives import serialization

from attestation.emulated_ca import ROOT_CERT_FILE, EmulatedCa
from attestation.measure import Measurements
from attestation.roots import certificate_fingerprint
from enclave.config import ImageConfig
from enclave.status import CLIENT_PORT, NodeState, NodeStatus, fetch_status
from keyshard.client.credentials import ClientCredentials
from keyshard.client.profile import ClusterProfile, NodeEntry
from keyshard.dev.cloud import CloudConfig
from keyshard.dev.hypervisor import VmSpec, read_vm_spec, write_vm_spec
from keyshard.dev.image import BuiltImage, build_image
from keyshard.dev.kms_keys import create_node_key, pin_node_key
from keyshard.dev.kms_state import STATE_FILE as KMS_STATE_FILE
from keyshard.dev.kms_tls import KmsTls, issue_kms_tls
from keyshard.dev.node_config import NodeLayout, parent_command, write_parent_config

__all__ = ["Cluster", "ClusterError", "NodeView"]

REGION = "us-east-1"
ACCOUNT = "123456789012"
ENCLAVE_CID = 16
ADMIN_ARN = f"arn:aws:iam::{ACCOUNT}:role/keyshard-dev-admin"
ADMIN_ACCESS_KEY = "AKIAKSDEVADMIN000000"
#: Emulated credentials: the emulated KMS maps access key ids to principals and checks no signature.
FAKE_SECRET = "emulated-not-a-secret"  # noqa: S105 -- emulation only, not a credential
STOP_GRACE = 10.0
#: Client-side services a dev cluster may run beside its nodes (started by their own verbs).
SERVICES = ("gateway",)

Progress = Callable[[str], None]


class ClusterError(Exception):
    """The cluster could not be brought up, or is not running; the message says why."""


@dataclass(frozen=True, slots=True)
class NodeView:
    """One node as ``dev status`` shows it: its process and, if reachable, its enclave's status."""

    index: int
    node_id: str
    client_port: int
    running: bool
    status: NodeStatus | None
    error: str | None = None
    operations_port: int | None = None

    @property
    def state(self) -> str:
        if self.status is not None:
            return self.status.state.value
        return "unreachable" if self.running else "stopped"

    def urls(self) -> dict[str, str | None]:
        """The parent's HTTP operations endpoint: Prometheus metrics, liveness, readiness."""
        if self.operations_port is None:
            return {"metrics_url": None, "health_url": None, "ready_url": None}
        base = f"http://127.0.0.1:{self.operations_port}"
        return {
            "metrics_url": f"{base}/metrics",
            "health_url": f"{base}/health",
            "ready_url": f"{base}/ready",
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "node_id": self.node_id,
            "endpoint": f"127.0.0.1:{self.client_port}",
            "process": "running" if self.running else "stopped",
            "state": self.state,
            "error": self.error,
            **self.urls(),
            "status": None if self.status is None else self.status.to_json(),
        }


def _log_tail(path: Path, lines: int = 6) -> str:
    """The last lines of a process's log, for an error that says WHY it exited (a CI run keeps
    the error message, not the cluster directory)."""
    try:
        tail = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return "".join(f"\n  | {line}" for line in tail)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead for our purposes
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Cluster:
    """A local emulated cluster in ``directory``; use as a context manager to always tear down."""

    def __init__(
        self,
        directory: Path,
        nodes: int = 3,
        *,
        progress: Progress | None = None,
        python: str = sys.executable,
        kms_route: Callable[[int], int] | None = None,
        record: bool = False,
    ) -> None:
        """``kms_route`` maps the emulated KMS port to the port the parents' outbound proxies
        should forward to (default: the same). Tests interpose a recording relay with it.
        ``record`` runs every parent with ``--record nodes/<i>/record`` (the parent's whole view,
        for secrecy tests; slow, never for real use)."""
        if not 1 <= nodes <= 16:
            raise ClusterError("--nodes must be between 1 and 16")
        self.directory = directory.absolute()
        self.nodes = nodes
        self._progress = progress or (lambda message: None)
        self._python = python
        self._kms_route = kms_route or (lambda port: port)
        self._record = record
        self._state: dict[str, Any] = {}
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        self.image: BuiltImage | None = None

    # -- paths --------------------------------------------------------------------------

    @property
    def state_file(self) -> Path:
        return self.directory / "cluster.json"

    @property
    def client_dir(self) -> Path:
        return self.directory / "client"

    def credentials(self) -> ClientCredentials:
        """The admin client's TLS credentials (the image authorises exactly this client)."""
        return ClientCredentials.in_directory(self.client_dir)

    @property
    def profile_file(self) -> Path:
        return self.directory / "profile.json"

    def node_layout(self, index: int) -> NodeLayout:
        return NodeLayout(self.directory / "nodes" / str(index))

    def record_dir(self, index: int) -> Path:
        """Where node ``index``'s parent records its view when the cluster runs with ``record``."""
        return self.node_layout(index).root / "record"

    def _pid_file(self, name: str) -> Path:
        return self.directory / "pids" / f"{name}.pid"

    def _log_file(self, name: str) -> Path:
        return self.directory / "logs" / f"{name}.log"

    # -- attach to a running cluster (CLI status/down) -----------------------------------

    @classmethod
    def attach(cls, directory: Path, *, progress: Progress | None = None) -> Cluster:
        state_file = directory.absolute() / "cluster.json"
        try:
            state = json.loads(state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise ClusterError(f"no cluster in {directory} (run `keyshard dev up`)") from None
        cluster = cls(directory, int(state["nodes"]), progress=progress)
        cluster._state = state
        return cluster

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    # -- up ------------------------------------------------------------------------------

    @property
    def kms_state_file(self) -> Path:
        return self.directory / KMS_STATE_FILE

    def _kept_key_arns(self, node_ids: list[str]) -> list[str] | None:
        """The KMS key ARNs of an earlier run whose keys the emulated KMS kept, for its nodes —
        the same nodes, or the first of ``node_ids`` when the cluster grew (:meth:`add_node`);
        None when there is nothing to keep."""
        if not self.kms_state_file.exists():
            return None
        try:
            previous = json.loads(self.state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        arns, kept_ids = previous.get("key_arns"), previous.get("node_ids")
        if (
            not isinstance(arns, list)
            or not isinstance(kept_ids, list)
            or kept_ids != node_ids[: len(kept_ids)]
            or len(arns) != len(kept_ids)
        ):
            return None
        return [str(arn) for arn in arns]

    @classmethod
    def add_node(
        cls, directory: Path, *, progress: Progress | None = None, timeout: float = 90.0
    ) -> tuple[Cluster, list[NodeView]]:
        """Grow the cluster in ``directory`` by one node, keeping every key.

        The image lists every node's KMS key, so a new node means a new image: the cluster is
        stopped, the new node's KMS key created, the image rebuilt and measured, every key's
        policy pinned to it, and every node started again — each existing node unseals the
        state it had (its KMS key kept, :mod:`keyshard.dev.kms_state`). Existing keys keep
        their holders; the new node takes part in keys created from now on."""
        running = cls.attach(directory, progress=progress)
        grown = cls(directory, running.nodes + 1, progress=progress)
        if grown._kept_key_arns(list(grown.node_ids)) is None:
            raise ClusterError(f"the cluster in {directory} kept no keys to grow from")
        running.down()
        return grown, grown.up(timeout=timeout)

    @property
    def node_ids(self) -> tuple[str, ...]:
        return tuple(f"node-{index}" for index in range(1, self.nodes + 1))

    def up(self, *, timeout: float = 90.0, fresh: bool = False) -> list[NodeView]:
        """Bring the cluster up; return every node's view once all are ready.

        Raises :class:`ClusterError` naming the first node that failed (with its reason) or that
        was not ready by ``timeout`` seconds; the processes stay up for inspection, ``down`` stops
        them.
        """
        if self.state_file.exists() and self._any_process_alive():
            raise ClusterError(f"a cluster is already running in {self.directory}")
        # A profile of an earlier run names endpoints that no longer exist: gone, and written
        # again only once every node is ready (a failed `up` leaves none).
        self.profile_file.unlink(missing_ok=True)
        node_ids = [f"node-{index}" for index in range(1, self.nodes + 1)]
        kept = None if fresh else self._kept_key_arns(node_ids)
        if kept is None:
            # Nothing kept: sealed state of an earlier run could never be unsealed again, so the
            # nodes start empty (the CA root is kept).
            shutil.rmtree(self.directory / "nodes", ignore_errors=True)
            self.kms_state_file.unlink(missing_ok=True)
        else:
            self._progress(f"keeping the keys of the previous run ({self.kms_state_file.name})")
        for sub in ("pids", "logs", "nodes"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        self._progress("creating the emulated attestation root")
        ca = EmulatedCa.load_or_create(self.directory / "ca", region=REGION)
        root_pem = ca.root_certificate.public_bytes(serialization.Encoding.PEM)
        credentials = ClientCredentials.load_or_create(self.client_dir)
        principals = {ADMIN_ACCESS_KEY: ADMIN_ARN}
        for index, node_id in enumerate(node_ids, start=1):
            principals[_node_access_key(index)] = _node_role(node_id)
            self.node_layout(index).create()
        self._state = {
            "nodes": self.nodes,
            "region": REGION,
            "node_ids": node_ids,
            # Each parent binds port 0 and reports what it got (start_node): a port picked here
            # and bound seconds later could meanwhile be taken by any other process.
            "client_ports": [0 for _ in node_ids],
            "service_ports": [0 for _ in node_ids],
            "operations_ports": [0 for _ in node_ids],
            "root_fingerprint": certificate_fingerprint(ca.root_der),
        }
        # The KMS's TLS identity; its CA goes into the measured image, so the enclaves trust it
        # and only it (a parent's own "KMS" fails the handshake inside the enclave).
        kms_tls = issue_kms_tls(self.kms_tls_dir, [REGION])
        self._start_cloud(principals)
        self._progress(f"emulated KMS on 127.0.0.1:{self._state['kms_port']}")
        self._state["parent_kms_port"] = self._kms_route(self._state["kms_port"])
        # Keys first (the image's cluster table lists their ARNs), then ONE image for every node,
        # then each key's policy pinned to that image's measurements — as a real cluster is built.
        admin = self.kms_client(ADMIN_ACCESS_KEY)
        key_arns = list(kept or []) + [
            create_node_key(admin, ADMIN_ARN, _node_role(node_id), None, node_id)
            for node_id in node_ids[len(kept or []) :]
        ]
        self._progress("building and measuring the enclave image (admin client certificate pinned)")
        image_config = ImageConfig(
            root_pem,
            dict(zip(node_ids, key_arns, strict=True)),
            authorized_clients=(credentials.certificate_pem,),
            kms_ca_pem=kms_tls.ca_pem,
        )
        self.image = build_image(self.directory / "image", image_config)
        measurements = self.image.measurements
        self._progress(f"image PCR0 {measurements.pcr0.hex()[:24]}... (the same for every node)")
        for index, (node_id, key_arn) in enumerate(zip(node_ids, key_arns, strict=True), start=1):
            pin_node_key(admin, key_arn, ADMIN_ARN, _node_role(node_id), measurements)
            write_vm_spec(self.node_layout(index).vm_file, VmSpec(self.image.root))
        self._state["key_arns"] = key_arns
        self._progress(f"pinned {len(key_arns)} KMS keys to the image's PCR0/1/2")
        self._save_state()
        for index in range(1, self.nodes + 1):
            self.start_node(index)
        self._progress(f"started {self.nodes} parents; waiting for enclaves to attest and unseal")
        views = self.wait_ready(timeout=timeout)
        self._write_profile(measurements, root_pem)
        self._progress(f"cluster ready; profile written to {self.profile_file}")
        return views

    @property
    def kms_tls_dir(self) -> Path:
        return self.directory / "kms-tls"

    @property
    def kms_endpoint(self) -> str:
        return f"https://127.0.0.1:{self._state['kms_port']}"

    def kms_client(self, access_key: str) -> Any:
        """boto3 against the emulated KMS, verifying its certificate against the dev CA."""
        return boto3.session.Session().client(
            "kms",
            endpoint_url=self.kms_endpoint,
            region_name=REGION,
            aws_access_key_id=access_key,
            aws_secret_access_key=FAKE_SECRET,
            verify=str(KmsTls(self.kms_tls_dir).ca_file),
        )

    def _start_cloud(self, principals: Mapping[str, str]) -> None:
        ready = self.directory / "cloud.ready"
        ready.unlink(missing_ok=True)
        config = CloudConfig(
            ca_dir=self.directory / "ca",
            region=REGION,
            kms_port=0,
            principals=dict(principals),
            nodes=tuple(
                (self.node_layout(i).run_dir, self.node_layout(i).vm_file)
                for i in range(1, self.nodes + 1)
            ),
            ready_file=ready,
            kms_tls_dir=self.kms_tls_dir,
            kms_state_file=self.kms_state_file,
        )
        config_file = self.directory / "cloud.json"
        config_file.write_text(config.to_json(), encoding="utf-8")
        self._spawn(
            "cloud", [self._python, "-m", "keyshard.dev.cloud", "--config", str(config_file)]
        )
        deadline = time.monotonic() + 30
        while not ready.exists():
            if not self._alive("cloud"):
                log = self._log_file("cloud")
                raise ClusterError(f"the emulated cloud exited; see {log}{_log_tail(log)}")
            if time.monotonic() > deadline:
                raise ClusterError("the emulated cloud did not start within 30 s")
            time.sleep(0.05)
        self._state["kms_port"] = int(json.loads(ready.read_text(encoding="utf-8"))["kms_port"])

    # -- nodes ---------------------------------------------------------------------------

    def start_node(self, index: int) -> None:
        layout = self.node_layout(index)
        node_id = self._state["node_ids"][index - 1]
        config_file = write_parent_config(
            layout,
            enclave_cid=ENCLAVE_CID,
            client_port=self._state["client_ports"][index - 1],
            service_port=self._state["service_ports"][index - 1],
            operations_port=self._operations_port(index),
            kms_port=self._state["parent_kms_port"],
            access_key_id=_node_access_key(index),
            secret_access_key=FAKE_SECRET,
            python=self._python,
            image_dir=self._image_dir(index),
            enclave_log=self._log_file(f"enclave-{index}"),
            node_id=node_id,
            enclave_argv=[
                "--mode",
                "emulated",
                "--cid",
                str(ENCLAVE_CID),
                "--runtime-dir",
                str(layout.run_dir),
            ],
        )
        ports_file = layout.run_dir / "parent-ports.json"
        ports_file.unlink(missing_ok=True)
        command = [*parent_command(self._python, config_file), "--ports-file", str(ports_file)]
        if self._record:
            command += ["--record", str(self.record_dir(index))]
        self._spawn(f"node-{index}", command)
        self._record_ports(index, self._wait_ports(index, ports_file))

    def _wait_ports(self, index: int, ports_file: Path, timeout: float = 30.0) -> dict[str, Any]:
        """The ports node ``index``'s parent bound, once it wrote them (bounded)."""
        deadline = time.monotonic() + timeout
        while not ports_file.exists():
            if not self._alive(f"node-{index}"):
                log = self._log_file(f"node-{index}")
                raise ClusterError(f"node-{index}'s parent exited; see {log}{_log_tail(log)}")
            if time.monotonic() > deadline:
                raise ClusterError(f"node-{index}'s parent did not listen within {timeout:.0f} s")
            time.sleep(0.02)
        ports: dict[str, Any] = json.loads(ports_file.read_text(encoding="utf-8"))
        return ports

    def _record_ports(self, index: int, ports: Mapping[str, Any]) -> None:
        """Keep the bound ports: a restart binds the same ones (clients' profiles name them)."""
        inbound = ports["inbound"]
        self._state["client_ports"][index - 1] = int(inbound["client"])
        self._state["service_ports"][index - 1] = int(inbound["service"])
        if ports.get("operations") is not None:
            kept = self._state.setdefault("operations_ports", [None] * self.nodes)
            kept[index - 1] = int(ports["operations"])
        self._save_state()

    def _operations_port(self, index: int) -> int | None:
        ports = self._state.get("operations_ports")
        return None if ports is None else int(ports[index - 1])

    def log_files(self, index: int) -> list[Path]:
        """Node ``index``'s logs: its parent's (JSON lines, the enclave's relayed in) first, then
        the emulated enclave's stderr (what a debug enclave's console would show)."""
        return [self._log_file(f"node-{index}"), self._log_file(f"enclave-{index}")]

    def stop_node(self, index: int) -> None:
        self._stop(f"node-{index}")
        # The parent stops its enclave; should it have died without doing so, the enclave (in its
        # own session) is found by the runtime directory in its arguments and stopped too.
        for pid in _processes_with_argument(str(self.node_layout(index).run_dir)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def restart_node(
        self, index: int, *, image_dir: Path | None = None, debug: bool = False
    ) -> None:
        """Stop node ``index`` and start it again, optionally from another image or in debug mode.

        The node's sealed blobs stay with its parent (on disk), as they would across a reboot.
        """
        self.stop_node(index)
        spec_image = image_dir if image_dir is not None else self.directory / "image"
        write_vm_spec(self.node_layout(index).vm_file, VmSpec(spec_image, debug))
        self.start_node(index)

    def _image_dir(self, index: int) -> Path:
        """The image node ``index`` runs: what its VM spec names (the launcher and the
        hypervisor must agree, as the EIF path given to nitro-cli is the image it measures)."""
        return read_vm_spec(self.node_layout(index).vm_file).image_dir

    # -- status --------------------------------------------------------------------------

    def status(self, *, timeout: float = 3.0) -> list[NodeView]:
        return asyncio.run(self._status(timeout))

    async def _status(self, timeout: float) -> list[NodeView]:
        async def one(index: int) -> NodeView:
            node_id = self._state["node_ids"][index - 1]
            port = int(self._state["client_ports"][index - 1])
            running = self._alive(f"node-{index}")
            operations = self._operations_port(index)
            try:
                status = await fetch_status("127.0.0.1", port, timeout=timeout)
            except (OSError, TimeoutError, EOFError) as error:
                error_text = type(error).__name__
                return NodeView(index, node_id, port, running, None, error_text, operations)
            except Exception as error:  # process boundary: a malformed reply is shown, not raised
                return NodeView(index, node_id, port, running, None, str(error), operations)
            return NodeView(index, node_id, port, running, status, None, operations)

        return list(await asyncio.gather(*(one(i) for i in range(1, self.nodes + 1))))

    def wait_ready(
        self, *, timeout: float = 90.0, nodes: list[int] | None = None
    ) -> list[NodeView]:
        """Poll status until the given nodes are ready; raise on a failed node or the deadline."""
        wanted = set(nodes or range(1, self.nodes + 1))
        deadline = time.monotonic() + timeout
        while True:
            views = self.status(timeout=2.0)
            for view in views:
                if view.index not in wanted:
                    continue
                if view.status is not None and view.status.state is NodeState.FAILED:
                    raise ClusterError(f"{view.node_id} failed: {view.status.reason}")
                if not view.running:
                    log = self._log_file(f"node-{view.index}")
                    raise ClusterError(f"{view.node_id}'s parent exited; see {log}{_log_tail(log)}")
            if all(
                v.status is not None and v.status.state is NodeState.READY
                for v in views
                if v.index in wanted
            ):
                return views
            if time.monotonic() > deadline:
                waiting = [v.node_id for v in views if v.index in wanted and v.state != "ready"]
                raise ClusterError(f"not ready after {timeout:.0f} s: {', '.join(waiting)}")
            time.sleep(0.1)

    def wait_state(self, index: int, state: NodeState, *, timeout: float = 60.0) -> NodeView:
        """Poll node ``index`` until it reports ``state`` (bounded)."""
        deadline = time.monotonic() + timeout
        while True:
            view = self.status(timeout=2.0)[index - 1]
            if view.status is not None and view.status.state is state:
                return view
            if time.monotonic() > deadline:
                raise ClusterError(f"node {index} is {view.state}, not {state.value}")
            time.sleep(0.1)

    # -- down ----------------------------------------------------------------------------

    def down(self) -> None:
        """Stop every process of the cluster (services such as the gateway first, then the
        nodes, then the cloud) and remove the profile (its endpoints are gone); idempotent."""
        for name in SERVICES:
            self._stop(name)
        for index in range(self.nodes, 0, -1):
            self.stop_node(index)
        self._stop("cloud")
        self._reap_stragglers()
        self.profile_file.unlink(missing_ok=True)
        self._progress("cluster stopped")

    def _reap_stragglers(self, timeout: float = STOP_GRACE) -> None:
        """Return only once no process this cluster started is left: a SIGKILLed enclave (or
        one a parent started from another ``Cluster`` object, such as the CLI's) may still be
        exiting when its group leader is reaped, and ``down`` promises "stopped", not
        "signalled". Only this interpreter's processes with an argument under the cluster
        directory are considered — a shell tailing a log there is left alone."""
        deadline = time.monotonic() + timeout
        while left := _cluster_processes(self._python, self.directory):
            for pid in left:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                raise ClusterError(f"processes of {self.directory} outlived `down`: {left}")
            time.sleep(0.05)

    def start_service(self, name: str, argv: list[str]) -> None:
        """Start a client-side service of the cluster (one of :data:`SERVICES`) in the
        background; ``down`` stops it with the rest."""
        if name not in SERVICES:
            raise ClusterError(f"unknown cluster service {name!r}")
        if self._alive(name):
            raise ClusterError(f"the {name} of {self.directory} is already running")
        self._spawn(name, argv)

    def service_alive(self, name: str) -> bool:
        return self._alive(name)

    def log_file(self, name: str) -> Path:
        return self._log_file(name)

    def pids(self) -> dict[str, int]:
        found = {}
        for pid_file in sorted((self.directory / "pids").glob("*.pid")):
            with contextlib.suppress(OSError, ValueError):
                found[pid_file.stem] = int(pid_file.read_text(encoding="ascii"))
        return found

    # -- processes -----------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = self._log_file(name).open("ab")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONUNBUFFERED": "1",
            "HOME": os.environ.get("HOME", "/"),
        }
        try:
            child = subprocess.Popen(  # noqa: S603 -- argv built here from our own paths
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                env=env,
                start_new_session=True,
            )
        finally:
            log.close()
        self._children[name] = child
        self._pid_file(name).write_text(str(child.pid), encoding="ascii")

    def _alive(self, name: str) -> bool:
        child = self._children.get(name)
        if child is not None:
            return child.poll() is None
        pid = self.pids().get(name)
        return pid is not None and _pid_alive(pid)

    def _any_process_alive(self) -> bool:
        return any(_pid_alive(pid) for pid in self.pids().values())

    def _stop(self, name: str) -> None:
        """SIGTERM the process, wait, then SIGKILL its whole process group; remove its pid file."""
        pid_file = self._pid_file(name)
        pid = self.pids().get(name)
        if pid is None:
            return
        child = self._children.pop(name, None)
        if _pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_GRACE
            while time.monotonic() < deadline:
                if child is not None and child.poll() is not None:
                    break
                if child is None and not _pid_alive(pid):
                    break
                time.sleep(0.05)
        # The session leader's group: anything it left behind (an enclave child) goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        if child is not None:
            child.wait()
        pid_file.unlink(missing_ok=True)

    # -- state and profile ---------------------------------------------------------------

    def _save_state(self) -> None:
        temporary = self.state_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(self._state, indent=2), encoding="utf-8")
        temporary.replace(self.state_file)

    def _write_profile(self, measurements: Measurements, root_pem: bytes) -> None:
        ClusterProfile(
            mode="emulated",
            region=REGION,
            kms_endpoint=self.kms_endpoint,
            root_pem=root_pem,
            root_sha256=self._state["root_fingerprint"],
            root_path=str(self.directory / "ca" / ROOT_CERT_FILE),
            expected_pcrs=({0: measurements.pcr0, 1: measurements.pcr1, 2: measurements.pcr2},),
            nodes=tuple(
                NodeEntry(node_id, "127.0.0.1", port, ENCLAVE_CID, CLIENT_PORT, arn, service)
                for node_id, port, arn, service in zip(
                    self._state["node_ids"],
                    self._state["client_ports"],
                    self._state["key_arns"],
                    self._state["service_ports"],
                    strict=True,
                )
            ),
        ).write(self.profile_file)

    def profile(self) -> ClusterProfile:
        """The profile clients use (written by :meth:`up`)."""
        return ClusterProfile.load(self.profile_file)

    def tampered_image(self, name: str = "tampered") -> Path:
        """A copy of the image with one byte changed in the enclave's code (for tests and demos)."""
        source = self.directory / "image"
        target = self.directory / name
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        victim = target / "enclave" / "status.py"
        content = bytearray(victim.read_bytes())
        position = content.index(b"The status")  # inside the module docstring: still valid code
        content[position] = ord("t")
        victim.write_bytes(bytes(content))
        return target


def _live_processes() -> Iterator[tuple[int, list[bytes]]]:
    """(pid, arguments) of every live, not zombie, process but this one (one /proc scan)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            arguments = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != b"Z" and arguments:
            yield int(entry.name), arguments


def _processes_with_argument(argument: str) -> list[int]:
    """Live processes with ``argument`` as one of their command-line arguments."""
    wanted = os.fsencode(argument)
    return [pid for pid, arguments in _live_processes() if wanted in arguments]


def _cluster_processes(python: str, directory: Path) -> list[int]:
    """Live processes running ``python`` with an argument under ``directory``."""
    under = os.fsencode(str(directory)) + b"/"
    return [
        pid
        for pid, arguments in _live_processes()
        if arguments[0] == os.fsencode(python)
        and any(a.startswith(under) or a == under[:-1] for a in arguments[1:])
    ]


def _node_role(node_id: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/keyshard-{node_id}"


def _node_access_key(index: int) -> str:
    return f"AKIAKSDEVNODE{index:07d}"


def iter_views(views: list[NodeView]) -> Iterator[dict[str, Any]]:
    for view in views:
        yield view.to_json()
