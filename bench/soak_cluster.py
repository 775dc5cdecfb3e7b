"""Soak (issue 8): no channel dropped in a long run with idle and busy clients mixed.

Run: ``.venv/bin/python bench/soak_cluster.py [--minutes 10] [--busy 3] [--idle 5]
[--in-flight 4]`` (``make soak``). Its name does not match ``bench/bench_*.py`` on purpose:
``make bench`` skips it, as it runs for ``--minutes`` plus about a minute of setup.

Goal: zero dropped channels in a 10-minute soak. The node service used to let asyncio
garbage-collect the tasks of idle authenticated connections ("Task was destroyed but it is
pending"), which silently dropped channels under load; ``enclave/service/server.py`` now holds
every connection task. This run checks that from the outside, on a 3-node emulated cluster on
loopback, with one Ed25519 key (FROST signing, threshold decryption) and one ECDSA key:

* BUSY clients (one ``AsyncClient`` each) sign with FROST, sign with ECDSA (the SDK's pooled
  presignatures) and decrypt, in turn, with a fixed number of operations in flight;
* IDLE clients open a channel to every node, then repeatedly sleep a random 20-90 s and make one
  request to every node (``list_keys``), which must travel on the channels they already hold;
* the client process forces ``gc.collect()`` every few seconds, so anything held only weakly on
  the client side would go too.

A channel is DROPPED when, without this program closing it: it became ``broken``; or its client's
coordinator replaced it (``Coordinator._links`` identity changed for that node). Channels the
coordinator retires on purpose before a presigning run (their attestation document is older than
``DOCUMENT_REFRESH_SECONDS``; the replacement is opened first) are counted apart, not as drops.
Every ``ChannelError`` that reaches a caller is counted too; the goal wants both at zero.

At the end every log of the cluster (enclaves, parents, cloud) is scanned for "Task was destroyed
but it is pending" and the ``connection_error`` / ``request_failed`` events, separately for the
soak itself, the clients' closing and the cluster's stop.

Bounded: every loop stops at the deadline and at a count; in-flight operations get
``DRAIN_SECONDS`` to finish, then are cancelled. The cluster lives in a temporary directory and is
stopped at exit. Ctrl-C or SIGTERM during the soak ends it early (in-flight operations finish, the
report is printed, marked INTERRUPTED); during the cluster's start or stop it stops the cluster.
Exit 0 (the numbers inform; "GOAL MET"/"GOAL MISSED" says whether the goal held), 1 when the
cluster could not start, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import gc
import json
import math
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from keyshard.dev.cluster import Cluster, ClusterError  # noqa: E402

# isort: split
# =====================================================================================
# SDK adapter: every call into the client SDK, and every look at its internals, is here.
# =====================================================================================

from keyshard.client.errors import ChannelError  # noqa: E402
from keyshard.client.sdk import AsyncClient  # noqa: E402

THRESHOLD = 1  # t: FROST and decryption by 2 nodes, ECDSA by 3
N_NODES = 3
ED_KEY, ECDSA_KEY = "soak-ed25519", "soak-ecdsa"
PLAINTEXT = b"soak plaintext " * 4


def make_client(cluster: Cluster) -> AsyncClient:
    return AsyncClient(cluster.profile(), cluster.credentials())


def current_links(client: AsyncClient) -> dict[str, Any]:
    """node id -> the channel the coordinator would use now (what ``link`` returns unbroken)."""
    return dict(client.coordinator._links)


def is_retiring(channel: Any) -> bool:
    """Retired by the coordinator on purpose (a stale document), not dropped."""
    return bool(getattr(channel, "_retiring", False))


def failure_of(channel: Any) -> str:
    return str(getattr(channel, "_failure", None))


def watch_opens(client: AsyncClient, opened: Callable[[str, Any], None]) -> None:
    """Report every channel the client's coordinator opens (first ones and reconnections)."""
    connect = client.coordinator._connect

    async def connect_and_report(node_id: str) -> Any:
        channel = await connect(node_id)
        opened(node_id, channel)
        return channel

    client.coordinator._connect = connect_and_report


async def open_every_link(client: AsyncClient) -> None:
    for node_id in client.coordinator.node_ids:
        await client.coordinator.link(node_id)


async def create_keys(client: AsyncClient) -> bytes:
    """Both keys (a DKG each); returns a ciphertext of PLAINTEXT under the Ed25519 key."""
    await client.create_key(ED_KEY, threshold=THRESHOLD)
    await client.create_key(ECDSA_KEY, suite="ecdsa-secp256k1", threshold=THRESHOLD)
    return await client.encrypt(ED_KEY, PLAINTEXT)


async def frost_sign(client: AsyncClient, index: int, _ciphertext: bytes) -> None:
    await client.sign(ED_KEY, b"soak frost %d" % index)


async def ecdsa_sign(client: AsyncClient, index: int, _ciphertext: bytes) -> None:
    await client.sign(ECDSA_KEY, b"soak ecdsa %d" % index)


async def decrypt(client: AsyncClient, _index: int, ciphertext: bytes) -> None:
    if await client.decrypt(ED_KEY, ciphertext) != PLAINTEXT:
        raise ValueError("decrypted to another plaintext")


async def every_node_request(client: AsyncClient) -> None:
    """One request to every node (``key_list``) on the channels the client holds."""
    names = await client.list_keys()
    if not {ED_KEY, ECDSA_KEY} <= set(names):
        raise ValueError(f"list_keys answered {names}")


BUSY_OPS: dict[str, Callable[[AsyncClient, int, bytes], Awaitable[None]]] = {
    "frost-sign": frost_sign,
    "ecdsa-sign": ecdsa_sign,
    "decrypt": decrypt,
}

# =====================================================================================
# CPU time of every process, from /proc (as bench_cluster_load.py reads it)
# =====================================================================================

from proc_cpu import ROLES, cluster_roles, cpu_by_role  # noqa: E402

# =====================================================================================
# Log scan
# =====================================================================================

TASK_DESTROYED = "Task was destroyed but it is pending"
EVENTS = ("connection_error", "request_failed")
_KV_EVENT = re.compile(r"\bevent=(\w+)")


def scan_logs(directory: Path) -> collections.Counter[str]:
    """Counts of the bad signs in every log: ``<file>: <sign>``."""
    found: collections.Counter[str] = collections.Counter()
    for path in sorted(directory.glob("*.log")):
        with path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if TASK_DESTROYED in line:
                    found[f"{path.stem}: {TASK_DESTROYED}"] += 1
                event, error = None, ""
                try:
                    entry = json.loads(line)
                except ValueError:
                    match = _KV_EVENT.search(line)
                    event = match.group(1) if match else None
                else:
                    if isinstance(entry, dict):
                        event, error = entry.get("event"), str(entry.get("error", ""))
                if event in EVENTS:
                    found[f"{path.stem}: {event}" + (f" ({error})" if error else "")] += 1
    return found


# =====================================================================================
# The soak
# =====================================================================================

#: In-flight operations get this long after the deadline to finish; then they are cancelled.
DRAIN_SECONDS = 90.0
#: How often every client's channels are checked (broken? replaced?).
CHECK_SECONDS = 1.0
PROGRESS_SECONDS = 30.0


@dataclass(slots=True)
class Watched:
    """One client and every channel its coordinator ever opened."""

    name: str
    client: AsyncClient
    opened: list[tuple[str, Any]] = field(default_factory=list)
    last_seen: dict[str, Any] = field(default_factory=dict)
    closing: bool = False


@dataclass(frozen=True, slots=True)
class Drop:
    client: str
    node_id: str
    at: float  # seconds into the soak
    reason: str


@dataclass(slots=True)
class Soak:
    args: argparse.Namespace
    roles: dict[int, str]
    logs: Path
    start: float = 0.0
    deadline: float = 0.0
    watched: list[Watched] = field(default_factory=list)
    ops: collections.Counter[str] = field(default_factory=collections.Counter)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    samples: dict[str, str] = field(default_factory=dict)
    channel_errors: int = 0
    drops: list[Drop] = field(default_factory=list)
    _dropped: set[int] = field(default_factory=set)
    wakeups: int = 0
    wakeups_original: int = 0
    gc_runs: int = 0
    loop_errors: collections.Counter[str] = field(default_factory=collections.Counter)
    cancelled: int = 0
    wall: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    scans: list[tuple[str, collections.Counter[str]]] = field(default_factory=list)
    interrupted: bool = False
    _stopped: asyncio.Event = field(default_factory=asyncio.Event)

    def now(self) -> float:
        return time.monotonic() - self.start

    def running(self) -> bool:
        return time.monotonic() < self.deadline

    def stop(self) -> None:
        """Ctrl-C or SIGTERM: end the soak now, as the deadline would (sleepers wake up)."""
        self.interrupted = True
        self.deadline = min(self.deadline, time.monotonic())
        self._stopped.set()

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if the soak is stopped meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), seconds)

    def watch(self, name: str, client: AsyncClient) -> Watched:
        watched = Watched(name, client)
        watch_opens(client, lambda node_id, channel: watched.opened.append((node_id, channel)))
        self.watched.append(watched)
        return watched

    def error(self, kind: str, error: BaseException) -> None:
        label = f"{kind}: {type(error).__name__}"
        self.errors[label] += 1
        self.samples.setdefault(label, str(error)[:160])
        if isinstance(error, ChannelError):
            self.channel_errors += 1

    def _drop(self, watched: Watched, node_id: str, channel: Any, reason: str) -> None:
        if id(channel) in self._dropped:
            return
        self._dropped.add(id(channel))
        self.drops.append(Drop(watched.name, node_id, self.now(), reason))
        print(
            f"  DROP {watched.name} {node_id} at {self.now():.0f} s: {reason}",
            file=sys.stderr,
            flush=True,
        )

    def check(self, watched: Watched) -> None:
        """Record channels of ``watched`` that broke or were replaced behind the test's back."""
        if watched.closing:
            return
        for node_id, channel in watched.opened:
            if channel.broken and not is_retiring(channel):
                self._drop(watched, node_id, channel, f"broken: {failure_of(channel)}")
        links = current_links(watched.client)
        for node_id, channel in links.items():
            last = watched.last_seen.get(node_id)
            if last is not None and last is not channel and not is_retiring(last):
                self._drop(watched, node_id, last, "replaced: the coordinator reconnected")
            watched.last_seen[node_id] = channel

    def check_all(self) -> None:
        for watched in self.watched:
            self.check(watched)


async def busy_client(soak: Soak, watched: Watched, ciphertext: bytes) -> None:
    """``--in-flight`` workers, each running the next operation until the deadline or the cap."""
    started = 0
    kinds = list(BUSY_OPS)

    async def worker() -> None:
        nonlocal started
        while soak.running() and started < soak.args.max_ops:
            index, started = started, started + 1
            kind = kinds[index % len(kinds)]
            try:
                await BUSY_OPS[kind](watched.client, index, ciphertext)
            except Exception as error:  # a harness boundary: counted and shown
                soak.error(kind, error)
            else:
                soak.ops[kind] += 1

    await asyncio.gather(*(worker() for _ in range(soak.args.in_flight)))


async def idle_client(soak: Soak, watched: Watched, rng: random.Random) -> None:
    """Hold a channel to every node; wake now and then to use them all, and at the deadline."""
    try:
        await open_every_link(watched.client)
    except Exception as error:  # a harness boundary
        soak.error("idle-open", error)
        return
    originals = current_links(watched.client)
    soak.check(watched)
    low, high = soak.args.idle_seconds
    for _ in range(math.ceil(soak.args.minutes * 60 / low) + 1):  # count bound
        remaining = soak.deadline - time.monotonic()
        if remaining <= 0:
            break
        pause = rng.uniform(low, high)
        await soak.sleep(min(pause, remaining))
        soak.check(watched)  # broken while idle?
        soak.wakeups += 1
        try:
            await every_node_request(watched.client)
        except Exception as error:  # a harness boundary
            soak.error("idle-wakeup", error)
            soak.check(watched)
            continue
        soak.ops["idle-wakeup"] += 1
        soak.check(watched)
        now = current_links(watched.client)
        same = all(now.get(node_id) is channel for node_id, channel in originals.items())
        if same and not any(channel.broken for channel in originals.values()):
            soak.wakeups_original += 1
        if pause >= remaining:
            break


async def collect_garbage(soak: Soak) -> None:
    for _ in range(math.ceil(soak.args.minutes * 60 / soak.args.gc_seconds) + 1):
        remaining = soak.deadline - time.monotonic()
        if remaining <= 0:
            return
        await soak.sleep(min(soak.args.gc_seconds, remaining))
        gc.collect()
        soak.gc_runs += 1


async def monitor(soak: Soak) -> None:
    """Check every channel each second; a progress line every PROGRESS_SECONDS."""
    next_progress = PROGRESS_SECONDS
    for _ in range(math.ceil(soak.args.minutes * 60 / CHECK_SECONDS) + 1):
        if not soak.running():
            return
        await soak.sleep(CHECK_SECONDS)
        soak.check_all()
        if soak.now() >= next_progress:
            next_progress += PROGRESS_SECONDS
            print(
                f"  {soak.now():4.0f} s: {sum(soak.ops.values())} ops, "
                f"{sum(soak.errors.values())} errors, {len(soak.drops)} drops, "
                f"{soak.wakeups} idle wakeups",
                file=sys.stderr,
                flush=True,
            )


def count_loop_errors(soak: Soak) -> None:
    """Count what the client's event loop reports (e.g. a task destroyed while pending)."""
    loop = asyncio.get_running_loop()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        soak.loop_errors[str(context.get("message", "?"))[:100]] += 1
        loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


async def run_soak(cluster: Cluster, soak: Soak) -> None:
    args = soak.args
    count_loop_errors(soak)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, soak.stop)
    async with make_client(cluster) as setup:  # not watched: closed by the test before the soak
        ciphertext = await create_keys(setup)
    rng = random.Random(args.seed)
    busy = [soak.watch(f"busy-{i}", make_client(cluster)) for i in range(1, args.busy + 1)]
    idle = [soak.watch(f"idle-{i}", make_client(cluster)) for i in range(1, args.idle + 1)]
    try:
        before = cpu_by_role(soak.roles)
        soak.start = time.monotonic()
        soak.deadline = soak.start + args.minutes * 60
        tasks = [
            *(asyncio.create_task(busy_client(soak, w, ciphertext)) for w in busy),
            *(asyncio.create_task(idle_client(soak, w, random.Random(rng.random()))) for w in idle),
            asyncio.create_task(collect_garbage(soak)),
            asyncio.create_task(monitor(soak)),
        ]
        _, late = await asyncio.wait(tasks, timeout=args.minutes * 60 + DRAIN_SECONDS)
        for task in late:
            task.cancel()
        soak.cancelled = len(late)
        await asyncio.gather(*tasks, return_exceptions=True)
        soak.check_all()
        soak.wall = time.monotonic() - soak.start
        after = cpu_by_role(soak.roles)
        soak.cpu = {role: after[role] - before[role] for role in ROLES}
        soak.scans.append(("soak", scan_logs(soak.logs)))
    finally:
        for watched in soak.watched:
            watched.closing = True
        await asyncio.gather(
            *(asyncio.wait_for(w.client.close(), 30) for w in soak.watched),
            return_exceptions=True,
        )
    await asyncio.sleep(1)  # let the nodes log the closes
    gc.collect()  # what the closing left unreferenced reports to count_loop_errors, in the loop
    soak.scans.append(("clients closed", scan_logs(soak.logs)))


# =====================================================================================
# Output
# =====================================================================================


def report(soak: Soak) -> None:
    args = soak.args
    minutes = soak.wall / 60
    print(
        f"Soak: {N_NODES}-node emulated cluster on loopback ({os.cpu_count()} cores, shared), "
        f"t={THRESHOLD}; {args.busy} busy clients x {args.in_flight} in flight, {args.idle} idle "
        f"clients waking every {args.idle_seconds[0]:g}-{args.idle_seconds[1]:g} s, "
        f"gc.collect() every {args.gc_seconds:g} s."
    )
    print(f"duration: {soak.wall:.0f} s ({minutes:.1f} min; asked {args.minutes:g} min)")
    if soak.interrupted:
        print("INTERRUPTED (Ctrl-C or SIGTERM): ended early, not a full soak")
    print()
    print("operations done:")
    for kind in (*BUSY_OPS, "idle-wakeup"):
        rate = soak.ops[kind] / soak.wall if soak.wall else 0.0
        print(f"  {kind:<12} {soak.ops[kind]:>8}  ({rate:.1f}/s)")
    print("errors by type:" + ("" if soak.errors else " none"))
    for label, count in sorted(soak.errors.items()):
        print(f"  {label}: {count}  (e.g. {soak.samples[label]!r})")
    if soak.cancelled:
        print(f"  {soak.cancelled} task(s) still running {DRAIN_SECONDS:g} s after the deadline")
    print()
    opened = [(w, n, c) for w in soak.watched for n, c in w.opened]
    retired = sum(1 for _, _, c in opened if is_retiring(c))
    print(
        f"channels: {len(opened)} opened by {len(soak.watched)} clients; {retired} retired on "
        "purpose by the coordinator (stale attestation document before presigning)"
    )
    for role in ("busy", "idle"):
        count = sum(1 for w, _, _ in opened if w.name.startswith(role))
        print(f"  {role}: {count} opened")
    print(f"DROPPED CHANNELS: {len(soak.drops)} (goal: 0)")
    for drop in soak.drops[:20]:
        print(f"  {drop.client} {drop.node_id} at {drop.at:.0f} s: {drop.reason}")
    print(f"ChannelErrors reaching callers: {soak.channel_errors} (goal: 0)")
    print(
        f"idle wakeups: {soak.wakeups}; succeeded on their original channels: "
        f"{soak.wakeups_original}"
    )
    print(f"client gc.collect() runs: {soak.gc_runs}")
    print(
        "client event-loop errors: "
        + (", ".join(f"{n} x {m!r}" for m, n in soak.loop_errors.items()) or "none")
    )
    print()
    print(f"log scan (enclave-*, node-* = parents, cloud): {TASK_DESTROYED!r}, {', '.join(EVENTS)}")
    previous: collections.Counter[str] = collections.Counter()
    for phase, found in soak.scans:
        delta = found - previous
        previous = found
        shown = ", ".join(f"{k}: {n}" for k, n in sorted(delta.items())) or "none"
        print(f"  during {phase}: {shown}")
    print()
    total = sum(soak.cpu.values())
    print(
        f"CPU of the soak (client + every cluster process, from /proc): {total:.0f} s in "
        f"{soak.wall:.0f} s = {total / soak.wall if soak.wall else 0:.2f} cores; by role: "
        + ", ".join(f"{r} {soak.cpu[r]:.0f} s" for r in ROLES if soak.cpu.get(r))
    )
    met = not soak.drops and not soak.channel_errors
    during = soak.scans[0][1] if soak.scans else collections.Counter()
    destroyed = sum(n for k, n in during.items() if TASK_DESTROYED in k)
    print()
    print(
        ("GOAL MET" if met else "GOAL MISSED")
        + f": {len(soak.drops)} dropped channels, {soak.channel_errors} ChannelErrors, "
        f"{destroyed} 'Task was destroyed' lines in the cluster's logs in {minutes:.1f} min"
        + (" (INTERRUPTED: not a full soak)" if soak.interrupted else "")
    )


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the soak")
    parser.add_argument("--busy", type=int, default=3, help="busy clients")
    parser.add_argument("--idle", type=int, default=5, help="idle clients")
    parser.add_argument("--in-flight", type=int, default=4, help="operations in flight per busy")
    parser.add_argument(
        "--max-ops", type=int, default=200_000, help="count bound of each busy client"
    )
    parser.add_argument("--idle-min", type=float, default=20.0, help="shortest idle pause, s")
    parser.add_argument("--idle-max", type=float, default=90.0, help="longest idle pause, s")
    parser.add_argument("--gc-seconds", type=float, default=5.0, help="client gc.collect() period")
    parser.add_argument("--seed", type=int, default=None, help="seed of the idle pauses")
    parser.add_argument("--keep-logs", type=Path, default=None, help="copy the cluster logs here")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.gc_seconds <= 0 or not 0 < args.idle_min <= args.idle_max:
        parser.error("--minutes, --gc-seconds and the idle pauses must be positive")
    if args.busy < 0 or args.idle < 0 or args.in_flight < 1 or args.max_ops < 1:
        parser.error("client counts must be >= 0, --in-flight and --max-ops >= 1")
    args.idle_seconds = (args.idle_min, args.idle_max)
    return args


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM outside the event loop (cluster start and stop): as Ctrl-C, the cluster stops."""
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        with tempfile.TemporaryDirectory(prefix="ksb-soak-", dir="/tmp") as scratch:
            directory = Path(scratch)
            with Cluster(directory, N_NODES) as cluster:
                try:
                    cluster.up(timeout=120)
                except ClusterError as error:
                    print(f"the cluster could not start: {error}", file=sys.stderr)
                    return 1
                soak = Soak(args, cluster_roles(cluster), directory / "logs")
                try:  # in the loop, Ctrl-C and SIGTERM end the soak early (Soak.stop)
                    asyncio.run(run_soak(cluster, soak))
                finally:  # closing the loop reset SIGTERM to the default: kill, no clean-up
                    signal.signal(signal.SIGTERM, _interrupt)
            soak.scans.append(("cluster stop", scan_logs(soak.logs)))
            if args.keep_logs is not None:
                with contextlib.suppress(OSError):
                    shutil.copytree(soak.logs, args.keep_logs, dirs_exist_ok=True)
    except KeyboardInterrupt:
        print("interrupted; the cluster is stopped", file=sys.stderr)
        return 130
    report(soak)
    return 130 if soak.interrupted else 0  # the numbers inform; GOAL MET/MISSED says the rest


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
