"""Cluster load: throughput, latency and CPU per operation on a 3-node emulated cluster.

Run: ``.venv/bin/python bench/bench_cluster_load.py [--ops frost,ecdsa,decrypt,presign,...]
[--concurrency 1,8,32] [--seconds 3]`` (``make bench`` runs it with the defaults, ~1.5 min).

Goals (issue 8 item 7), on the shared 2-core dev machine with the client on the same box:
FROST Ed25519 >= 300 signatures/s; threshold ECDSA with pooled presignatures >= 1,000
signatures/s; threshold decryption >= 300/s; ECDSA presigning >= 150/s; at concurrency 1,
p50 <= 5 ms and p99 <= 20 ms; CPU per FROST signature, summed over every process, <= 2x the
protocol math alone.

What is measured, for each (operation, concurrency N):

* N in-flight operations, as N asyncio tasks of ONE client process over ONE SDK client: the
  throughput a single client gets, not what the cluster could serve to many clients;
* every cell is bounded by time (``--seconds``) and by a count, whichever comes first; in-flight
  operations finish, nothing is cancelled (a cancelled request could desynchronise a channel);
* CPU time per operation summed over the client process and every process of the cluster (the
  descendants of this process: the emulated cloud, each node's parent and its enclave), read from
  ``/proc/<pid>/stat`` (utime + stime, all threads) before and after the cell, split by role;
* beside it, the same operation's protocol math alone, in this process, with no I/O
  (``enclave.mpc`` directly, t = 1 as on the cluster): FROST commit + sign by t+1 parties and
  aggregate; ECDSA online signing by 2t+1 parties and combine from a ready presignature;
  partial_decrypt by t+1 parties and combine; the four PresignSession steps of 2t+1 parties.

ECDSA signs from a pool presigned beforehand (the presign cells' output, topped up untimed); the
ECDSA cell times signing only and stops when the pool is empty. An enclave keeps at most 1024
unused presignatures per key, so the pool is spread over several ECDSA keys. Presigning runs
make 16 presignatures each (one run: three rounds among 2t+1 enclaves); its latency is a run's.

The batch cells (``frost-batch``, ``ecdsa-batch``) send 64 messages per request to each signer
(``sign_many``): the throughput a high-volume user gets with the batch API; ops count
signatures, latency is a whole batch's.

Timings never fail the run (exit 0): benchmarks inform. Loopback only; the cluster lives in a
temporary directory and is stopped at exit.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import math
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from enclave.mpc.decryption.combine import combine as combine_decryption  # noqa: E402
from enclave.mpc.decryption.ecies import encrypt as ecies_encrypt  # noqa: E402
from enclave.mpc.decryption.partial import partial_decrypt  # noqa: E402
from enclave.mpc.ecdsa import (  # noqa: E402
    Presignature,
    PresignContext,
    PresignSession,
    SigningRequest,
)
from enclave.mpc.ecdsa import combine as combine_ecdsa  # noqa: E402
from enclave.mpc.ecdsa import sign as sign_ecdsa_share  # noqa: E402
from enclave.mpc.frost.aggregate import aggregate  # noqa: E402
from enclave.mpc.frost.ciphersuite import FROST_ED25519_SHA512  # noqa: E402
from enclave.mpc.frost.round1 import commit  # noqa: E402
from enclave.mpc.frost.round2 import SigningPackage  # noqa: E402
from enclave.mpc.frost.round2 import sign as frost_sign  # noqa: E402
from enclave.mpc.groups import ED25519, SECP256K1, Group  # noqa: E402
from enclave.mpc.identifiers import Identifier  # noqa: E402
from enclave.mpc.keys import KeyShare, PublicKeyPackage  # noqa: E402
from enclave.mpc.shamir import split_secret  # noqa: E402
from keyshard.dev.cluster import Cluster  # noqa: E402

# isort: split
# =====================================================================================
# SDK adapter: every call into the client SDK is here and nowhere else. When the client API
# changes (keyshard.Client), edit these few functions; the rest of the file only passes their
# opaque values (client, key, ciphertext, presignature handle) around.
# =====================================================================================

from keyshard.client.sdk import AsyncClient  # noqa: E402

THRESHOLD = 1  # polynomial degree t: FROST and decryption by t+1 = 2 nodes, ECDSA by 2t+1 = 3
#: Presignatures one presigning run makes (one run = three rounds among 2t+1 enclaves).
PRESIGN_BATCH = 16


async def make_client(cluster: Cluster) -> Any:
    """One SDK client for the cluster (channels open lazily, on first use)."""
    return AsyncClient(cluster.profile(), cluster.credentials())


async def close_client(client: Any) -> None:
    await client.close()


async def create_frost_key(client: Any, name: str) -> Any:
    """An Ed25519 key (FROST signing and threshold decryption); returns what the calls below take."""
    await client.create_key(name, threshold=THRESHOLD)
    return name


async def create_ecdsa_key(client: Any, name: str) -> Any:
    await client.create_key(name, suite="ecdsa-secp256k1", threshold=THRESHOLD)
    return name


async def encrypt(client: Any, key: Any, plaintext: bytes) -> Any:
    return await client.encrypt(key, plaintext)


async def sign_frost(client: Any, key: Any, message: bytes) -> None:
    await client.sign(key, message)


async def decrypt(client: Any, key: Any, ciphertext: Any) -> bytes:
    result: bytes = await client.decrypt(key, ciphertext)
    return result


async def presign(client: Any, key: Any) -> list[Any]:
    """One presigning run of PRESIGN_BATCH presignatures pooled in the nodes' memory; returns
    the handles ``sign_ecdsa`` takes."""
    handles: list[Any] = await client.coordinator.presign(key, count=PRESIGN_BATCH)
    return handles


async def sign_ecdsa_pooled(client: Any, key: Any, message: bytes) -> None:
    """An ECDSA signature from the SDK's presignature pool (concurrent calls are coalesced)."""
    await client.sign(key, message)


async def sign_frost_batch(client: Any, key: Any, messages: list[bytes]) -> int:
    """One batch request per signer; returns how many signatures it made."""
    return len(await client.sign_many(key, messages))


async def stock_presignatures(client: Any, key: Any, count: int) -> None:
    """Fill the SDK's own presignature pool for ``key`` (untimed)."""
    await client.coordinator.stock_presignatures(key, count)


async def sign_ecdsa_batch(client: Any, key: Any, messages: list[bytes]) -> int:
    """ECDSA signatures from the SDK's pool, one batch request per presigner."""
    return len(await client.sign_many(key, messages))


from proc_cpu import ROLES, cluster_roles, cpu_by_role  # noqa: E402

# =====================================================================================
# The protocol math alone, in this process (t = 1, n = 3, as on the cluster)
# =====================================================================================


class OsRandom:
    def random_bytes(self, n: int) -> bytes:
        return secrets.token_bytes(n)


RNG = OsRandom()
N_NODES = 3


def dealer(group: Group) -> dict[Identifier, KeyShare]:
    """Trusted-dealer shares (the math after a DKG is the same; the DKG is not measured here)."""
    ids = [Identifier.from_int(group, i) for i in range(1, N_NODES + 1)]
    shares, poly = split_secret(group, group.random_scalar(RNG), THRESHOLD, ids, RNG)
    c = poly.commitments()
    public = PublicKeyPackage(group, c.constant, {i: c.evaluate(i) for i in shares}, THRESHOLD)
    return {i: KeyShare(i, s, public) for i, s in shares.items()}


def math_frost(keys: dict[Identifier, KeyShare]) -> Callable[[], object]:
    signers = sorted(keys)[: THRESHOLD + 1]
    public = keys[signers[0]].public

    def one() -> object:
        session = secrets.token_bytes(32)
        r1 = {i: commit(FROST_ED25519_SHA512, keys[i], session, RNG) for i in signers}
        package = SigningPackage(
            FROST_ED25519_SHA512, session, {i: c for i, (_, c) in r1.items()}, b"message"
        )
        shares = {i: frost_sign(package, r1[i][0], keys[i]) for i in signers}
        return aggregate(package, shares, public)

    return one


def math_decrypt(keys: dict[Identifier, KeyShare]) -> Callable[[], object]:
    nodes = sorted(keys)[: THRESHOLD + 1]
    public = keys[nodes[0]].public
    ciphertext = ecies_encrypt(public.group_public_key, b"x" * 64, RNG)  # once, as on the cluster

    def one() -> object:
        session = secrets.token_bytes(32)
        partials = {i: partial_decrypt(keys[i], ciphertext, session, RNG) for i in nodes}
        return combine_decryption(public, ciphertext, partials, session)

    return one


def math_presign(
    keys: dict[Identifier, KeyShare], made: list[dict[Identifier, Presignature]]
) -> Callable[[], object]:
    parties = sorted(keys)[: 2 * THRESHOLD + 1]
    public = keys[parties[0]].public

    def one() -> object:
        context = PresignContext.create(public, parties, secrets.token_bytes(32))
        sessions = {i: PresignSession(context, keys[i]) for i in parties}
        deals = {i: s.start(RNG) for i, s in sessions.items()}
        nonces = {
            i: s.receive_deals({j: deals[j][i] for j in parties if j != i})
            for i, s in sessions.items()
        }
        masks = {
            i: s.receive_nonce_openings({j: nonces[j] for j in parties if j != i})
            for i, s in sessions.items()
        }
        presigs = {
            i: s.receive_mask_openings({j: masks[j] for j in parties if j != i})
            for i, s in sessions.items()
        }
        made.append(presigs)  # the ECDSA math signs with these
        return presigs

    return one


def math_ecdsa(made: list[dict[Identifier, Presignature]]) -> Callable[[], object]:
    def one() -> object:
        presigs = made.pop()
        info = next(iter(presigs.values())).info
        digest = secrets.token_bytes(32)
        request = SigningRequest.create(info, digest, RNG)
        shares = {i: sign_ecdsa_share(p, request) for i, p in presigs.items()}
        return combine_ecdsa(info, request, shares)

    return one


@dataclass(frozen=True, slots=True)
class MathResult:
    ops: int
    wall_ms: float  # per operation
    cpu_ms: float  # per operation, this process


def time_math(one: Callable[[], object], seconds: float, cap: int) -> MathResult:
    one()  # warm-up (imports, tables)
    count = 0
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    deadline = start_wall + seconds
    while count < cap and time.perf_counter() < deadline:
        one()
        count += 1
    wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
    if not count:
        return MathResult(0, math.nan, math.nan)
    return MathResult(count, wall * 1000 / count, cpu * 1000 / count)


def measure_math(ops: Iterable[str], seconds: float) -> dict[str, MathResult]:
    results = {}
    ed_keys, k1_keys = dealer(ED25519), dealer(SECP256K1)
    made: list[dict[Identifier, Presignature]] = []
    wanted = {MATH_OF.get(op, op) for op in ops}
    if "frost" in wanted:
        results["frost"] = time_math(math_frost(ed_keys), seconds, 100_000)
    if "decrypt" in wanted:
        results["decrypt"] = time_math(math_decrypt(ed_keys), seconds, 100_000)
    if wanted & {"presign", "ecdsa"}:
        presigned = time_math(math_presign(k1_keys, made), seconds, 100_000)
        if "presign" in wanted:
            results["presign"] = presigned
    if "ecdsa" in wanted:
        # one presignature per signature, as on the cluster; the first goes to the warm-up
        results["ecdsa"] = time_math(math_ecdsa(made), seconds, len(made) - 1)
    return results


# =====================================================================================
# Cells: N workers over one client, bounded by time and count
# =====================================================================================


@dataclass(slots=True)
class Cell:
    op: str
    concurrency: int
    ops: int = 0
    items: int = 0  # what the operations made: 1 each, or what a batch operation reports
    wall: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    cpu: dict[str, float] = field(default_factory=dict)  # seconds, by role

    @property
    def rate(self) -> float:
        return self.ops / self.wall if self.wall else 0.0

    def percentile_ms(self, q: float) -> float:
        """Nearest-rank percentile of the successful operations' latencies."""
        if not self.latencies:
            return math.nan
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)] * 1000

    @property
    def cpu_ms_per_op(self) -> float:
        return sum(self.cpu.values()) * 1000 / self.ops if self.ops else math.nan


async def run_cell(
    cell: Cell,
    operation: Callable[[int], Awaitable[object]],
    *,
    seconds: float,
    cap: int,
    roles: Mapping[int, str],
) -> Cell:
    """Run ``operation(i)`` for i = 0..cap-1 with ``cell.concurrency`` in flight, until ``cap``
    operations have started or ``seconds`` have passed; wait for those in flight."""
    started = 0

    async def worker() -> None:
        nonlocal started
        while started < cap and time.perf_counter() < deadline:
            index, started = started, started + 1
            begin = time.perf_counter()
            try:
                done = await operation(index)
            except Exception as error:  # a harness boundary: failures are counted and shown
                cell.errors[type(error).__name__] += 1
                continue
            cell.latencies.append(time.perf_counter() - begin)
            cell.items += done if isinstance(done, int) else 1

    before = cpu_by_role(roles)
    begin = time.perf_counter()
    deadline = begin + seconds
    await asyncio.gather(*(worker() for _ in range(cell.concurrency)))
    cell.wall = time.perf_counter() - begin
    after = cpu_by_role(roles)
    cell.ops = cell.items
    cell.cpu = {role: after[role] - before[role] for role in ROLES}
    return cell


GOAL_RATE = {
    "frost": 300.0,
    "ecdsa": 1000.0,
    "decrypt": 300.0,
    "presign": 150.0,
    "frost-batch": 300.0,
    "ecdsa-batch": 1000.0,
}
#: Messages per batch request in the batch cells (the wire's MAX_BATCH).
BATCH = 64
#: The protocol math a batch cell is compared with (per signature).
MATH_OF = {"frost-batch": "frost", "ecdsa-batch": "ecdsa"}
GOAL_P50_MS, GOAL_P99_MS, GOAL_CPU_RATIO = 5.0, 20.0, 2.0
LABEL = {
    "frost": "FROST Ed25519 sign",
    "ecdsa": "ECDSA sign (pooled)",
    "decrypt": "decrypt (ECIES)",
    "presign": "ECDSA presign",
    "frost-batch": f"FROST batch of {BATCH}",
    "ecdsa-batch": f"ECDSA batch of {BATCH}",
}
OPS = tuple(LABEL)
#: An enclave keeps at most 512 unused presignatures per key and client; stay a little below.
PER_KEY_POOL = 480
#: Bound of the untimed pool top-up: below the 60 s at which presigning reopens channels.
TOP_UP_SECONDS = 45.0


def cap_for(op: str, seconds: float) -> int:
    """The count bound of a cell: twice what the goal rate would do in the time bound."""
    return max(20, math.ceil(GOAL_RATE[op] * seconds * 2))


class EcdsaPool:
    """Presignatures pooled on the nodes, spread over ECDSA keys of at most PER_KEY_POOL each."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.ready: collections.deque[tuple[Any, Any]] = collections.deque()
        self._held: dict[Any, int] = {}  # key -> presignatures held or being made

    async def ensure_room(self, count: int) -> None:
        """Create ECDSA keys (untimed) until ``count`` more presignatures fit."""
        while sum(PER_KEY_POOL - held for held in self._held.values()) < count:
            key = await create_ecdsa_key(self.client, f"bench-ecdsa-{len(self._held)}")
            self._held[key] = 0

    def _reserve(self) -> Any:
        key = min(self._held, key=self._held.__getitem__)
        if self._held[key] + PRESIGN_BATCH > PER_KEY_POOL:
            raise RuntimeError("no ECDSA key has room for another presignature")
        self._held[key] += PRESIGN_BATCH
        return key

    async def presign_one(self, _index: int) -> int:
        """One presigning run; returns how many presignatures it made."""
        key = self._reserve()
        try:
            handles = await presign(self.client, key)
        except BaseException:
            self._held[key] -= PRESIGN_BATCH
            raise
        self.ready.extend((key, handle) for handle in handles)
        return len(handles)

    async def refresh(self, run: Run) -> None:
        """Before a presigning phase (untimed): channels opened by one presigning run."""
        await self.presign_one(-1)


@dataclass(slots=True)
class Run:
    cluster: Cluster
    args: argparse.Namespace
    roles: dict[int, str]
    client: Any = None
    cells: list[Cell] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    async def fresh_client(self) -> Any:
        if self.client is not None:
            await close_client(self.client)
        self.client = await make_client(self.cluster)
        return self.client

    async def cell(
        self, op: str, conc: int, operation: Callable[[int], Awaitable[object]], cap: int
    ) -> None:
        cell = await run_cell(
            Cell(op, conc), operation, seconds=self.args.seconds, cap=cap, roles=self.roles
        )
        self.cells.append(cell)
        print(
            f"  {op:<8} c={conc:<3} {cell.ops:>5} ops in {cell.wall:5.2f} s",
            file=sys.stderr,
            flush=True,
        )


async def drive(run: Run) -> None:
    args = run.args
    ops, levels = args.ops, args.concurrency
    client = await run.fresh_client()
    key = await create_frost_key(client, "bench-ed25519")
    pool = EcdsaPool(client)
    if "presign" in ops:
        for conc in levels:
            cap = math.ceil(cap_for("presign", args.seconds) / PRESIGN_BATCH)  # runs
            await pool.ensure_room((cap + 1) * PRESIGN_BATCH)
            await pool.refresh(run)
            await run.cell("presign", conc, pool.presign_one, cap)
    if "ecdsa" in ops:
        pooled_key = await create_ecdsa_key(run.client, "bench-ecdsa-pooled")
        for conc in levels:
            count = min(args.pool, cap_for("ecdsa", args.seconds))
            begin = time.perf_counter()
            await stock_presignatures(run.client, pooled_key, count)  # untimed
            run.notes.append(
                f"ECDSA c={conc}: {count} presignatures pooled in the SDK in "
                f"{time.perf_counter() - begin:.1f} s (untimed)"
            )
            await run.cell(
                "ecdsa",
                conc,
                lambda i: sign_ecdsa_pooled(run.client, pooled_key, b"bench message %d" % i),
                count,
            )
    if "frost" in ops:
        await sign_frost(run.client, key, b"warm-up")  # untimed: the first use opens channels
        for conc in levels:
            await run.cell(
                "frost",
                conc,
                lambda i: sign_frost(run.client, key, b"bench message %d" % i),
                cap_for("frost", args.seconds),
            )
    if "frost-batch" in ops:
        for conc in levels:
            await run.cell(
                "frost-batch",
                conc,
                lambda i: sign_frost_batch(
                    run.client, key, [b"bench batch %d/%d" % (i, k) for k in range(BATCH)]
                ),
                math.ceil(cap_for("frost-batch", args.seconds) / BATCH),
            )
    if "ecdsa-batch" in ops:
        batch_key = await create_ecdsa_key(run.client, "bench-ecdsa-batch")
        for conc in levels:
            runs = math.ceil(min(args.pool, cap_for("ecdsa-batch", args.seconds)) / BATCH)
            await stock_presignatures(run.client, batch_key, runs * BATCH)  # untimed
            await run.cell(
                "ecdsa-batch",
                conc,
                lambda i: sign_ecdsa_batch(
                    run.client, batch_key, [b"bench batch %d/%d" % (i, k) for k in range(BATCH)]
                ),
                runs,
            )
    if "decrypt" in ops:
        plaintext = b"x" * 64
        ciphertext = await encrypt(run.client, key, plaintext)
        await decrypt(run.client, key, ciphertext)  # warm-up, untimed

        async def one_decryption(_index: int) -> None:
            if await decrypt(run.client, key, ciphertext) != plaintext:
                raise ValueError("decrypted to another plaintext")

        for conc in levels:
            await run.cell("decrypt", conc, one_decryption, cap_for("decrypt", args.seconds))
    await close_client(run.client)


def idle_cpu(roles: Mapping[int, str], seconds: float = 1.0) -> float:
    """CPU seconds per second the idle cluster burns (background, included in every cell)."""
    before = cpu_by_role(roles)
    time.sleep(seconds)
    after = cpu_by_role(roles)
    return sum(after[r] - before[r] for r in ROLES if r != "client") / seconds


# =====================================================================================
# Output
# =====================================================================================


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISS"


def report(run: Run, maths: Mapping[str, MathResult], idle: float, load: float) -> None:
    args = run.args
    print(
        f"Cluster load: {N_NODES}-node emulated cluster on this host ({os.cpu_count()} cores, "
        f"shared), t={THRESHOLD}: FROST and decryption by {THRESHOLD + 1} nodes, ECDSA "
        f"presign/sign by {2 * THRESHOLD + 1}."
    )
    print(
        "Concurrency N = N in-flight operations as asyncio tasks in ONE client process over ONE "
        "SDK client;"
    )
    print(
        f"each cell runs for at most {args.seconds:g} s or its count bound; CPU = "
        "client + parents + enclaves + cloud, from /proc."
    )
    print(f"1-minute load average before the run: {load:.2f} (other users share these cores).")
    print()
    header = (
        f"{'operation':<20} {'conc':>4} {'ops':>5} {'ops/s':>7} {'goal':>6} {'':4} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'c=1 goal':>9} {'':4} "
        f"{'CPU ms/op':>9} {'math ms/op':>10} {'x math':>7}  errors"
    )
    print(header)
    print("-" * len(header))
    for op in OPS:
        for cell in (c for c in run.cells if c.op == op):
            goal = GOAL_RATE[op]
            p50, p99 = cell.percentile_ms(0.50), cell.percentile_ms(0.99)
            lat_goal, lat_ok = "", ""
            if cell.concurrency == 1:
                lat_goal = f"{GOAL_P50_MS:g}/{GOAL_P99_MS:g}"
                lat_ok = verdict(p50 <= GOAL_P50_MS and p99 <= GOAL_P99_MS)
            m = maths.get(MATH_OF.get(op, op))
            math_ms = m.cpu_ms if m else math.nan
            ratio = cell.cpu_ms_per_op / math_ms
            ratio_text = f"{ratio:6.1f}x"
            if op == "frost":
                ratio_text += f" (goal <= {GOAL_CPU_RATIO:g}x: {verdict(ratio <= GOAL_CPU_RATIO)})"
            errors = ", ".join(f"{n} {name}" for name, n in cell.errors.items()) or "-"
            print(
                f"{LABEL[op]:<20} {cell.concurrency:>4} {cell.ops:>5} {cell.rate:>7.1f} "
                f"{goal:>6.0f} {verdict(cell.rate >= goal):<4} {p50:>7.1f} {p99:>7.1f} "
                f"{lat_goal:>9} {lat_ok:<4} {cell.cpu_ms_per_op:>9.2f} {math_ms:>10.3f} "
                f"{ratio_text:>7}  {errors}"
            )
    print()
    print("Protocol math alone (enclave.mpc in this process, no I/O, one core):")
    for op, m in maths.items():
        print(
            f"  {LABEL[op]:<20} {m.cpu_ms:7.3f} ms CPU/op ({1000 / m.wall_ms:8.0f} ops/s on one "
            f"core, {m.ops} ops)"
        )
    print()
    print("Where the CPU goes, ms per operation by process role (and cores kept busy):")
    head = (
        f"  {'operation':<20} {'conc':>4} {'client':>8} {'parents':>8} {'enclaves':>9} "
        f"{'cloud':>7} {'total':>8} {'cores':>6}"
    )
    print(head)
    for op in OPS:
        for cell in (c for c in run.cells if c.op == op):
            per = {r: cell.cpu[r] * 1000 / cell.ops if cell.ops else math.nan for r in ROLES}
            cores = sum(cell.cpu.values()) / cell.wall if cell.wall else math.nan
            print(
                f"  {LABEL[op]:<20} {cell.concurrency:>4} {per['client']:>8.2f} "
                f"{per['parents']:>8.2f} {per['enclaves']:>9.2f} "
                f"{per['cloud'] + per['other']:>7.2f} {cell.cpu_ms_per_op:>8.2f} {cores:>6.2f}"
            )
    print(f"  (idle cluster background: {idle * 1000:.0f} ms CPU per second, in every cell)")
    for note in run.notes:
        print(f"  {note}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--ops", default=",".join(OPS), help=f"comma-separated subset of {','.join(OPS)}"
    )
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated levels")
    parser.add_argument("--seconds", type=float, default=3.0, help="time bound of each cell")
    parser.add_argument(
        "--pool", type=int, default=400, help="presignatures pooled for each ECDSA cell"
    )
    parser.add_argument(
        "--math-seconds", type=float, default=1.0, help="time bound of each math measure"
    )
    args = parser.parse_args(argv)
    asked = set(args.ops.split(","))
    if not asked or asked - set(OPS):
        parser.error(f"--ops takes a subset of {','.join(OPS)}")
    args.ops = [op for op in OPS if op in asked]
    try:
        args.concurrency = sorted({int(level) for level in args.concurrency.split(",")})
    except ValueError:
        parser.error("--concurrency takes comma-separated integers")
    if not args.concurrency or min(args.concurrency) < 1 or args.seconds <= 0:
        parser.error("concurrency levels and --seconds must be positive")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    maths = measure_math(args.ops, args.math_seconds)  # before the cluster: nothing competes
    with (
        tempfile.TemporaryDirectory(prefix="ksb-load-", dir="/tmp") as scratch,
        Cluster(Path(scratch), N_NODES) as cluster,
    ):
        cluster.up(timeout=120)
        roles = cluster_roles(cluster)
        idle = idle_cpu(roles)
        run = Run(cluster, args, roles)
        asyncio.run(drive(run))
    report(run, maths, idle, load)
    print(f"  whole run: {time.perf_counter() - started:.0f} s")
    return 0  # timings inform; they never fail the build on a shared machine


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
