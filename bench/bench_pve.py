"""Cost of a share backup: PVE encryption (each enclave), verification (anyone), decryption.

Per suite: encrypt one share (what a node computes for ``backup_share``), verify it (what
``keyshard backup verify`` does per holder), decrypt it with the recovery key (restore and
reconstruct), and the proof's size. Median of ``--rounds`` runs, one CPU.
Goals (ours, for a backup ceremony that feels instant on a 16-node key): encrypt < 250 ms,
verify < 150 ms, proof < 32 KiB per share.
Run: ``.venv/bin/python bench/bench_pve.py [--rounds 20]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from enclave.mpc import pve
from enclave.mpc.groups import ED25519, SECP256K1
from enclave.mpc.identifiers import Identifier

GOALS_MS = {"encrypt": 250.0, "verify": 150.0, "decrypt": 150.0}
GOAL_BYTES = 32 * 1024


class _Random:
    def random_bytes(self, n: int) -> bytes:
        return os.urandom(n)


def _median_ms(work: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        work()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    recovery = X25519PrivateKey.generate()
    rng = _Random()
    for group in (SECP256K1, ED25519):
        share = group.random_scalar(rng)
        statement = pve.PveStatement(
            group.base_mul(share),
            Identifier.from_int(group, 1),
            recovery.public_key().public_bytes_raw(),
            b"bench",
        )
        proof = pve.encrypt(share, statement, rng)
        figures = {
            "encrypt": _median_ms(lambda: pve.encrypt(share, statement, rng), args.rounds),  # noqa: B023
            "verify": _median_ms(lambda: pve.verify(statement, proof), args.rounds),  # noqa: B023
            "decrypt": _median_ms(lambda: pve.decrypt(recovery, statement, proof), args.rounds),  # noqa: B023
        }
        size = len(proof.to_bytes())
        for name, value in figures.items():
            verdict = "ok" if value <= GOALS_MS[name] else "MISSED"
            print(
                f"{group.name:9} {name:8} {value:7.1f} ms   goal < {GOALS_MS[name]:.0f} ms  {verdict}"
            )
        verdict = "ok" if size <= GOAL_BYTES else "MISSED"
        print(f"{group.name:9} size     {size:7d} B    goal < {GOAL_BYTES} B  {verdict}")


if __name__ == "__main__":
    main()
