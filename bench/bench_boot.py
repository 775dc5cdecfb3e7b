"""How long the emulated cluster takes to come up, and a node to recover after a restart.

Measured on real processes (``keyshard.dev.cluster.Cluster``): the image build and measurement,
``dev up`` for N nodes (cloud process, KMS keys, parents, enclaves attesting and unsealing), and a
single node's restart until its status is ``ready`` again (process start, RSA-2048 key generation,
attestation, KMS ``Decrypt`` with ``Recipient``, unsealing). No goal is set by the issue; the goals
below are the ones the developer experience needs (tests and the demo poll these).

Run: ``.venv/bin/python bench/bench_boot.py [--nodes 3] [--restarts 3]``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from attestation.emulated_ca import EmulatedCa
from enclave.config import ImageConfig
from keyshard.dev.cluster import Cluster
from keyshard.dev.image import build_image


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--restarts", type=int, default=3)
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="ksb-", dir="/tmp"))
    rows: list[tuple[str, float, str]] = []
    try:
        root = EmulatedCa.ephemeral().root_certificate.public_bytes(serialization.Encoding.PEM)
        start = time.perf_counter()
        probe = ImageConfig(root, {"n1": "arn:aws:kms:us-east-1:123456789012:key/probe"})
        build_image(directory / "probe-image", probe)
        rows.append(("image build + measure", time.perf_counter() - start, "< 2 s"))

        cluster = Cluster(directory / "cluster", args.nodes)
        try:
            start = time.perf_counter()
            cluster.up(timeout=180)
            rows.append(
                (f"dev up, {args.nodes} nodes ready", time.perf_counter() - start, "< 30 s")
            )
            restarts = []
            for round_ in range(args.restarts):
                index = round_ % args.nodes + 1
                start = time.perf_counter()
                cluster.restart_node(index)
                cluster.wait_ready(nodes=[index], timeout=60)
                restarts.append(time.perf_counter() - start)
            rows.append(("node restart -> ready (median)", statistics.median(restarts), "< 5 s"))
            start = time.perf_counter()
        finally:
            cluster.down()
        rows.append(("dev down", time.perf_counter() - start, "< 10 s"))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    print(f"{'measurement':<34} {'seconds':>9}  goal")
    for name, seconds, goal in rows:
        print(f"{name:<34} {seconds:>9.2f}  {goal}")


if __name__ == "__main__":
    main()
