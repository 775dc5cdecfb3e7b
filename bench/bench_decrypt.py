"""Compute time of threshold decryption and share refresh, per party, in memory.

For (t, n) = (1, 3), (2, 5), (3, 7), both groups (secp256k1, Ed25519). Timed:

* partial  — one node's ``partial_decrypt``: ``D_i = x_i·E`` plus its DLEQ proof;
* combine  — the client's ``combine`` over t + 1 partials: every proof verified, Lagrange
  interpolation in the exponent, HKDF and AES-256-GCM (once per decryption);
* refresh  — one party's whole refresh: deal, verify all n dealers and compute the new
  package (receive), check all confirmations (commit).

Issue 3 sets no numeric goal for these (its goals cover FROST, ECDSA and DKG); the table says so.
Run: ``.venv/bin/python bench/bench_decrypt.py [--rounds 20]``. Median over the rounds.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from enclave.mpc.decryption.combine import combine
from enclave.mpc.decryption.ecies import encrypt
from enclave.mpc.decryption.partial import partial_decrypt
from enclave.mpc.groups import ED25519, SECP256K1, Group
from enclave.mpc.identifiers import Identifier
from enclave.mpc.keys import KeyShare, PublicKeyPackage
from enclave.mpc.refresh import RefreshSession
from enclave.mpc.shamir import split_secret

SETTINGS = [(1, 3), (2, 5), (3, 7)]


class OsRandom:
    def random_bytes(self, n: int) -> bytes:
        return secrets.token_bytes(n)


def dealer(group: Group, t: int, n: int) -> dict[Identifier, KeyShare]:
    rng = OsRandom()
    idents = [Identifier.from_int(group, i) for i in range(1, n + 1)]
    shares, poly = split_secret(group, group.random_scalar(rng), t, idents, rng)
    c = poly.commitments()
    public = PublicKeyPackage(group, c.constant, {i: c.evaluate(i) for i in shares}, t)
    return {i: KeyShare(i, s, public) for i, s in shares.items()}


def decrypt_round(keys: dict[Identifier, KeyShare], t: int) -> tuple[float, float]:
    """(partial ms per node, combine ms) for one decryption by the first t + 1 nodes."""
    rng = OsRandom()
    public = next(iter(keys.values())).public
    ct = encrypt(public.group_public_key, secrets.token_bytes(32), rng)
    session = secrets.token_bytes(16)
    nodes = sorted(keys)[: t + 1]
    clock = time.perf_counter
    start = clock()
    partials = {i: partial_decrypt(keys[i], ct, session, rng) for i in nodes}
    partial_ms = (clock() - start) * 1000 / len(nodes)
    start = clock()
    combine(public, ct, partials, session)
    return partial_ms, (clock() - start) * 1000


def refresh_round(keys: dict[Identifier, KeyShare]) -> float:
    """ms per party for one complete refresh (all parties, messages in memory)."""
    rng = OsRandom()
    session = secrets.token_bytes(16)
    clock = time.perf_counter
    start = clock()
    sessions = {i: RefreshSession(k, session) for i, k in keys.items()}
    deals = {i: s.deal(rng) for i, s in sessions.items()}
    confirmations = {
        j: s.receive({i: d[0] for i, d in deals.items()}, {i: d[1][j] for i, d in deals.items()})
        for j, s in sessions.items()
    }
    for s in sessions.values():
        s.confirm(confirmations)
    return (clock() - start) * 1000 / len(keys)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    print(f"threshold decryption and refresh, median of {args.rounds} rounds, compute only")
    header = (
        f"{'group':<10} {'(t,n)':<7} {'partial+proof':>16} {'combine t+1':>14} "
        f"{'refresh':>14}   goal"
    )
    print(header)
    print("-" * len(header))
    for group in (SECP256K1, ED25519):
        for t, n in SETTINGS:
            keys = dealer(group, t, n)
            partial, comb, refresh = [], [], []
            for _ in range(args.rounds):
                p, c = decrypt_round(keys, t)
                partial.append(p)
                comb.append(c)
                refresh.append(refresh_round(keys))
            print(
                f"{group.name:<10} {f'({t},{n})':<7} "
                f"{statistics.median(partial):>9.3f} ms/node "
                f"{statistics.median(comb):>11.3f} ms "
                f"{statistics.median(refresh):>7.3f} ms/party   none set (issue 3)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
