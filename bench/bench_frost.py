"""FROST / DKG compute benchmarks (in memory, all parties in one process).

Run: ``.venv/bin/python bench/bench_frost.py``. Times are medians of repeated runs, in
milliseconds of CPU work on this machine; no I/O is involved. Goals from issue 3: FROST 2-of-3
signing under 2 ms total compute for all parties; DKG 3-of-5 under 100 ms (per party).
Threshold convention: t is the polynomial degree, so (t, n) = (1, 3) is "2-of-3".
"""

from __future__ import annotations

import hashlib
import statistics
import time
from collections.abc import Callable
from functools import partial

from enclave.mpc.dkg.params import DkgParameters
from enclave.mpc.dkg.round1 import part1
from enclave.mpc.dkg.round2 import part2
from enclave.mpc.dkg.round3 import finalize, part3
from enclave.mpc.frost import bip340
from enclave.mpc.frost.aggregate import aggregate
from enclave.mpc.frost.ciphersuite import (
    FROST_ED25519_SHA512,
    FROST_SECP256K1_SHA256,
    FROST_SECP256K1_SHA256_TR,
    Ciphersuite,
)
from enclave.mpc.frost.round1 import commit
from enclave.mpc.frost.round2 import SigningPackage, sign
from enclave.mpc.groups import SECP256K1, Group
from enclave.mpc.identifiers import Identifier
from enclave.mpc.keys import KeyShare

SIZES = [(1, 3), (2, 5), (3, 7)]
REPEAT = 15


class BenchRandom:
    """Deterministic stream (benchmark only)."""

    def __init__(self) -> None:
        self._n = 0

    def random_bytes(self, n: int) -> bytes:
        self._n += 1
        return hashlib.shake_256(self._n.to_bytes(8, "big")).digest(n)


def median_ms(fn: Callable[[], object], repeat: int = REPEAT) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def dkg(group: Group, t: int, n: int, rng: BenchRandom) -> dict[Identifier, KeyShare]:
    ids = [Identifier.from_int(group, i) for i in range(1, n + 1)]
    params = DkgParameters(group, t, ids, b"bench")
    r1 = {i: part1(params, i, rng) for i in ids}
    r2 = {i: part2(r1[i][0], {j: r1[j][1] for j in ids if j != i}) for i in ids}
    r3 = {i: part3(r2[i][0], {j: r2[j][1][i] for j in ids if j != i}) for i in ids}
    return {i: finalize(r3[i][0], {j: r3[j][1] for j in ids if j != i}) for i in ids}


def frost_round(
    suite: Ciphersuite, keys: dict[Identifier, KeyShare], t: int, rng: BenchRandom
) -> bytes:
    signers = sorted(keys)[: t + 1]
    r1 = {i: commit(suite, keys[i], b"bench", rng) for i in signers}
    package = SigningPackage(suite, b"bench", {i: c for i, (_, c) in r1.items()}, b"message")
    shares = {i: sign(package, r1[i][0], keys[i]) for i in signers}
    return aggregate(package, shares, keys[signers[0]].public)


def bip445_round(keys: dict[Identifier, KeyShare], t: int, rng: BenchRandom) -> bytes:
    signers = sorted(keys)[: t + 1]
    public = keys[signers[0]].public
    ctx_signers = bip340.SignersContext.from_public(public, signers)
    msg = b"m" * 32
    sec = {
        i: bip340.nonce_gen(
            rng, keys[i].secret_share, keys[i].verifying_share, thresh_pk=None, msg=msg
        )
        for i in signers
    }
    pub = {i: s.pubnonce for i, s in sec.items()}
    ctx = bip340.SessionContext(bip340.nonce_agg(pub), ctx_signers, (), msg)
    psigs = {i: bip340.sign(sec[i], keys[i].secret_share, i, ctx) for i in signers}
    return bip340.aggregate(psigs, pub, ctx)


def main() -> None:
    rng = BenchRandom()
    print(f"FROST / DKG compute (median of {REPEAT} runs, all parties in one process)")
    header = f"{'suite':<31}{'(t,n)':<8}{'DKG total':>12}{'DKG/party':>12}{'sign total':>12}  goal"
    print(header)
    print("-" * len(header) + "----------------------------")
    for suite in (FROST_ED25519_SHA512, FROST_SECP256K1_SHA256, FROST_SECP256K1_SHA256_TR):
        for t, n in SIZES:
            keys = dkg(suite.group, t, n, rng)
            dkg_ms = median_ms(partial(dkg, suite.group, t, n, rng), repeat=5)
            sign_ms = median_ms(partial(frost_round, suite, keys, t, rng))
            goals = []
            if (t, n) == (1, 3):
                goals.append(f"sign < 2 ms: {'OK' if sign_ms < 2 else 'MISSED'}")
            if (t, n) == (2, 5):
                goals.append(f"DKG/party < 100 ms: {'OK' if dkg_ms / n < 100 else 'MISSED'}")
            print(
                f"{suite.name:<31}{f'({t},{n})':<8}{dkg_ms:>9.2f} ms{dkg_ms / n:>9.2f} ms"
                f"{sign_ms:>9.2f} ms  {'; '.join(goals)}"
            )
    print()
    print("BIP-445 (BIP-340 output, secp256k1), signing total for t+1 signers")
    for t, n in SIZES:
        keys = dkg(SECP256K1, t, n, rng)
        ms = median_ms(partial(bip445_round, keys, t, rng))
        print(f"{'BIP-445':<31}{f'({t},{n})':<8}{ms:>9.2f} ms")


if __name__ == "__main__":
    main()
