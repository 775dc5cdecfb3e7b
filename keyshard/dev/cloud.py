"""``python -m keyshard.dev.cloud --config cloud.json``: the emulated cloud of a local cluster.

One background process plays the parts of AWS a cluster needs that are not Keyshard code: the KMS
endpoint (:mod:`keyshard.dev.kms_server`, pinned to the cluster's emulated attestation root, serving
HTTPS with the certificate of :mod:`keyshard.dev.kms_tls` that enclaves verify) and,
for every node, the hypervisor's NSM (:class:`keyshard.dev.hypervisor.NsmHypervisor`) on that node's
vsock bus. It holds the emulated CA key; emulation is not a security boundary.

When both are up it writes ``ready_file`` (atomically) with the KMS port; SIGTERM stops it cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from attestation.emulated_ca import EmulatedCa
from attestation.roots import TrustedRoots
from attestation.verifier import AttestationVerifier
from keyshard.dev.hypervisor import NsmHypervisor, read_vm_spec
from keyshard.dev.kms_server import start_kms_server
from keyshard.dev.kms_tls import KmsTls, server_context
from transport.jsonlog import configure_json_logging
from transport.unix import UnixSocketTransport

__all__ = ["CloudConfig", "main"]

log = logging.getLogger("keyshard.dev.cloud")


@dataclass(frozen=True, slots=True)
class CloudConfig:
    ca_dir: Path
    region: str
    kms_port: int
    principals: dict[str, str]
    #: Per node: its runtime directory (vsock bus) and its ``vm.json`` (what the hypervisor runs).
    nodes: tuple[tuple[Path, Path], ...]
    ready_file: Path
    #: The KMS's TLS certificate and key (:class:`keyshard.dev.kms_tls.KmsTls`); TLS is not optional.
    kms_tls_dir: Path
    #: Where the emulated KMS keeps its keys across runs (:mod:`keyshard.dev.kms_state`); None:
    #: in memory only.
    kms_state_file: Path | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "ca_dir": str(self.ca_dir),
                "kms_tls_dir": str(self.kms_tls_dir),
                "region": self.region,
                "kms_port": self.kms_port,
                "principals": self.principals,
                "nodes": [[str(run), str(vm)] for run, vm in self.nodes],
                "ready_file": str(self.ready_file),
                "kms_state_file": None if self.kms_state_file is None else str(self.kms_state_file),
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str) -> CloudConfig:
        raw = json.loads(text)
        return cls(
            ca_dir=Path(raw["ca_dir"]),
            region=str(raw["region"]),
            kms_port=int(raw["kms_port"]),
            principals={str(k): str(v) for k, v in raw["principals"].items()},
            nodes=tuple((Path(run), Path(vm)) for run, vm in raw["nodes"]),
            ready_file=Path(raw["ready_file"]),
            kms_tls_dir=Path(raw["kms_tls_dir"]),
            kms_state_file=None
            if raw.get("kms_state_file") is None
            else Path(raw["kms_state_file"]),
        )


async def _run(config: CloudConfig) -> None:
    ca = EmulatedCa.load_or_create(config.ca_dir, region=config.region)
    verifier = AttestationVerifier(TrustedRoots.of([ca.root_certificate]))
    kms = start_kms_server(
        verifier,
        config.principals,
        port=config.kms_port,
        tls=server_context(KmsTls(config.kms_tls_dir)),
        state_file=config.kms_state_file,
    )
    hypervisors: list[NsmHypervisor] = []
    try:
        for run_dir, vm_file in config.nodes:
            hypervisor = NsmHypervisor(
                UnixSocketTransport(run_dir), ca, functools.partial(read_vm_spec, vm_file)
            )
            await hypervisor.start()
            hypervisors.append(hypervisor)
        port = int(kms.server.server_address[1])
        temporary = config.ready_file.with_suffix(".tmp")
        temporary.write_text(json.dumps({"kms_port": port}), encoding="utf-8")
        temporary.replace(config.ready_file)
        log.info(
            "emulated cloud ready",
            extra={"fields": {"event": "cloud_ready", "kms_port": port, "nsms": len(hypervisors)}},
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        for hypervisor in hypervisors:
            await hypervisor.close()
        await asyncio.to_thread(kms.stop)
        log.info("emulated cloud stopped", extra={"fields": {"event": "cloud_stopped"}})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m keyshard.dev.cloud")
    parser.add_argument("--config", required=True, type=Path)
    args = parser.parse_args(argv)
    configure_json_logging("cloud", logging.INFO)
    asyncio.run(_run(CloudConfig.from_json(args.config.read_text(encoding="utf-8"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
