"""One parent, assembled from its configuration: transport, proxy, host services, launcher.

Usable as a library (``keyshard dev`` builds emulated nodes with it) and by ``python -m parent``.
Start order matters: host services and the outbound routes come up *before* the enclave is launched,
because the enclave's first acts on boot are to fetch its sealed state and call KMS through them;
so does the operations endpoint (``/metrics``, ``/health``, ``/ready``), so that a load balancer
sees "not ready" for the whole boot.
Shutdown runs in reverse: stop the enclave, then the proxy, then host services.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import boto3

from parent.blobstore import BlobStore, LocalDirBlobStore, S3BlobStore
from parent.config import (
    ChildSpec,
    ImdsSpec,
    LocalStoreSpec,
    Mode,
    NitroSpec,
    ParentConfig,
    StaticCredentialsSpec,
)
from parent.credentials import CredentialsProvider, ImdsCredentials, StaticCredentials
from parent.hostservices import HostServices
from parent.launcher import (
    DEFAULT_INHERIT,
    ChildProcessLauncher,
    EnclaveExit,
    Launcher,
    LaunchInfo,
    NitroCliLauncher,
)
from parent.operations import OperationsServer
from parent.proxy import AllowList, InboundRoute, OutboundRoute, Proxy, ProxyMetrics
from parent.telemetry import EnclaveProbe, NodeCollector
from transport.address import PARENT_CID, VsockAddress
from transport.base import Transport
from transport.hostproto import Credentials
from transport.unix import UnixSocketTransport
from transport.vsock import VsockTransport

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)


def build_transport(config: ParentConfig) -> Transport:
    if config.mode is Mode.REAL:
        return VsockTransport()
    assert config.runtime_dir is not None  # parse_config requires it in emulated mode
    return UnixSocketTransport(config.runtime_dir, local_cid=PARENT_CID)


def build_store(config: ParentConfig, s3_client: S3Client | None = None) -> BlobStore:
    spec = config.blob_store
    if isinstance(spec, LocalStoreSpec):
        return LocalDirBlobStore(spec.directory)
    client = s3_client or boto3.client(
        "s3", region_name=spec.region, endpoint_url=spec.endpoint_url
    )
    return S3BlobStore(spec.bucket, spec.prefix, client)


def build_credentials(config: ParentConfig) -> CredentialsProvider | None:
    spec = config.credentials
    if isinstance(spec, ImdsSpec):
        return ImdsCredentials(spec.url)
    if isinstance(spec, StaticCredentialsSpec):
        return StaticCredentials(
            Credentials(
                spec.access_key_id, spec.secret_access_key, spec.session_token, spec.expiration
            )
        )
    return None


def build_launcher(config: ParentConfig) -> Launcher | None:
    spec = config.launcher
    if isinstance(spec, NitroSpec):
        return NitroCliLauncher(
            spec.eif_path,
            cpu_count=spec.cpu_count,
            memory_mib=spec.memory_mib,
            cid=config.enclave_cid,
            enclave_name=spec.enclave_name,
        )
    if isinstance(spec, ChildSpec):
        return ChildProcessLauncher(
            spec.argv,
            cid=config.enclave_cid,
            workdir=spec.workdir,
            env=spec.env,
            inherit=spec.inherit if spec.inherit is not None else DEFAULT_INHERIT,
            output=spec.output,
        )
    return None


class ParentNode:
    """A running parent. ``start`` brings everything up; ``close`` tears it down (idempotent)."""

    def __init__(
        self,
        config: ParentConfig,
        *,
        transport: Transport | None = None,
        store: BlobStore | None = None,
        launcher: Launcher | None = None,
        tap: Callable[[str, str, bytes], None] | None = None,
    ) -> None:
        """``tap(route, direction, data)`` sees every byte forwarded or served (see
        :mod:`parent.recorder`); ``transport``, ``store`` and ``launcher`` override the config's."""
        self.config = config
        self.transport = transport or build_transport(config)
        self.store = store or build_store(config)
        self.launcher = launcher if launcher is not None else build_launcher(config)
        self.proxy = Proxy(
            self.transport, allow=AllowList(set(config.allow)), limits=config.limits, tap=tap
        )
        self.host_services = HostServices(
            self.store, build_credentials(config), node_id=config.node_id, tap=tap
        )
        self.inbound_ports: dict[str, int] = {}
        self.operations: OperationsServer | None = None
        if config.operations is not None:
            probe = EnclaveProbe(
                self.transport, VsockAddress(config.enclave_cid, config.operations.status_port)
            )
            collector = NodeCollector(
                self.proxy.route_metrics,
                lambda: self.host_services.requests,
                self.host_services.logs.counts,
                probe,
            )
            self.operations = OperationsServer(probe, collector)
        self.operations_port: int | None = None
        self.launch_info: LaunchInfo | None = None
        self._closed = False

    async def start(self) -> None:
        try:
            await self.host_services.serve(self.transport)
            for out in self.config.outbound:
                await self.proxy.add_outbound(
                    OutboundRoute(out.name, out.port, out.host, out.target_port)
                )
            for inb in self.config.inbound:
                self.inbound_ports[inb.name] = await self.proxy.add_inbound(
                    InboundRoute(
                        inb.name,
                        inb.listen_host,
                        inb.listen_port,
                        VsockAddress(self.config.enclave_cid, inb.enclave_port),
                    )
                )
            if self.operations is not None and self.config.operations is not None:
                # Before the launch: /ready answers 503 for the whole boot, never "refused".
                spec = self.config.operations
                self.operations_port = await self.operations.start(
                    spec.listen_host, spec.listen_port
                )
            if self.launcher is not None:
                self.launch_info = await self.launcher.start()
        except BaseException:
            await self.close()
            raise

    async def wait(self) -> EnclaveExit | None:
        """Until the enclave stops; forever when this node launches none."""
        if self.launcher is None:
            await asyncio.Event().wait()
            return None
        return await self.launcher.wait()

    def metrics(self) -> ProxyMetrics:
        return self.proxy.metrics()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.launcher is not None and self.launch_info is not None:
            try:
                ended = await self.launcher.stop()
                log.info(
                    "enclave stopped",
                    extra={"fields": {"event": "enclave_stopped", "exit": ended.description}},
                )
            except Exception:  # keep tearing down the rest even if the stop failed
                log.exception(
                    "enclave stop failed", extra={"fields": {"event": "enclave_stop_failed"}}
                )
        if self.operations is not None:
            await self.operations.close()
        await self.proxy.close()
        await self.host_services.close()
