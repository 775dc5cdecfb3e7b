"""The node's session tables: key creations, presigning runs and presignature pools.

Each table bounds what a client can make a node hold (memory is the only store for all of them)
and owns the rule for its entries' life; the handlers (:mod:`enclave.service.handlers`) only ask.
FROST nonces have their own table (:mod:`enclave.service.nonces`).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from enclave.mpc.ecdsa import Presignature, PresignaturePool
from enclave.mpc.errors import MpcError
from enclave.service.custody import KeyImportation
from enclave.service.dkg import KeyCreation, KeyCreationPhase
from enclave.service.errors import BusyError, NonceUnknownError, SessionError
from enclave.service.presigning import Presigning
from enclave.service.refresh import KeyRefreshing

__all__ = [
    "CREATION_TIMEOUT",
    "MAX_CREATIONS",
    "MAX_PRESIGNATURES",
    "MAX_PRESIGNATURES_PER_CLIENT",
    "MAX_PRESIGNING",
    "PRESIGNATURE_TTL",
    "KeyCreations",
    "KeyRefreshes",
    "PresignaturePools",
    "PresigningRuns",
]

#: A key creation not finished after this long is abandoned: a new KeyCreate may replace it.
CREATION_TIMEOUT = 120.0
#: At most this many key creations run at once on a node.
MAX_CREATIONS = 32
#: At most this many presigning runs are pending on a node (the oldest is dropped first).
MAX_PRESIGNING = 64
#: At most this many unused presignatures are kept per key (the oldest of the client holding the
#: most is recycled past it).
MAX_PRESIGNATURES = 1024
#: At most this many unused presignatures are kept, or being made, per key and client.
MAX_PRESIGNATURES_PER_CLIENT = 512
#: Seconds an unused presignature lives.
PRESIGNATURE_TTL = 3600.0


class KeyCreations:
    """Running DKGs by key name. A name is reserved before the node's first await on a new
    creation, so two concurrent ``key_create`` for one name cannot both start one."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._running: dict[str, tuple[float, KeyCreation | KeyImportation]] = {}
        self._reserved: set[str] = set()

    def reserve(self, name: str) -> None:
        """Claim ``name`` for a creation being set up (:meth:`start` or :meth:`release` next)."""
        now = self._clock()
        for other, (started, creation) in list(self._running.items()):
            if creation.phase is KeyCreationPhase.FAILED or now - started > CREATION_TIMEOUT:
                del self._running[other]  # failed for good, or abandoned by its coordinator
        if name in self._running or name in self._reserved:
            raise SessionError(f"key creation {name!r} is already running")
        if len(self._running) + len(self._reserved) >= MAX_CREATIONS:
            raise BusyError(f"{MAX_CREATIONS} key creations are already running")
        self._reserved.add(name)

    def release(self, name: str) -> None:
        self._reserved.discard(name)

    def start(self, name: str, creation: KeyCreation | KeyImportation) -> None:
        self._reserved.discard(name)
        self._running[name] = (self._clock(), creation)

    def get(self, name: str) -> KeyCreation | KeyImportation:
        running = self._running.get(name)
        if running is None:
            raise SessionError(f"no key creation {name!r} on this node")
        return running[1]

    def finish(self, name: str) -> None:
        self._running.pop(name, None)


#: At most this many refreshes run at once on a node (the oldest is dropped first).
MAX_REFRESHES = 32


class KeyRefreshes:
    """Running refreshes, one per key: a new one replaces an unfinished one of the same key
    (whose client gave up). Dropping a run is what makes a node unable to commit it on
    confirmations (a vouch can still finish a staged share)."""

    def __init__(self) -> None:
        self._runs: OrderedDict[str, KeyRefreshing] = OrderedDict()

    def put(self, run: KeyRefreshing) -> None:
        self._runs.pop(run.key_name, None)
        self._runs[run.key_name] = run
        while len(self._runs) > MAX_REFRESHES:
            self._runs.popitem(last=False)

    def get(self, key_name: str, session_id: bytes) -> KeyRefreshing:
        run = self._runs.get(key_name)
        if run is None or run.session_id != session_id:
            raise SessionError(f"no running refresh of {key_name!r} with this id on this node")
        return run

    def drop(self, key_name: str) -> None:
        self._runs.pop(key_name, None)


class PresigningRuns:
    """Presigning runs between their rounds, by (key, session). A run is taken out for each
    step and put back only if the step succeeded: any error forgets it for good."""

    def __init__(self) -> None:
        self._runs: OrderedDict[tuple[str, bytes], Presigning] = OrderedDict()

    def pending(self, key_name: str, client: bytes) -> int:
        """Presignatures ``client`` is having made for ``key_name``."""
        return sum(
            run.count
            for (name, _), run in self._runs.items()
            if name == key_name and run.client == client
        )

    def check_new(self, key_name: str, session_id: bytes) -> None:
        if (key_name, session_id) in self._runs:
            raise SessionError("a presigning run with this id is pending")

    def put(self, run: Presigning) -> None:
        self._runs[run.key_name, run.session_id] = run
        while len(self._runs) > MAX_PRESIGNING:
            self._runs.popitem(last=False)

    def take(self, key_name: str, session_id: bytes) -> Presigning:
        run = self._runs.pop((key_name, session_id), None)
        if run is None:
            raise SessionError("no pending presigning run with this id")
        return run

    def forget(self, key_name: str) -> None:
        """Drop every run of ``key_name`` (its shares changed, or it is gone)."""
        for slot in [s for s in self._runs if s[0] == key_name]:
            del self._runs[slot]


class PresignaturePools:
    """Finished presignatures by key, each taken out exactly once, by the client that made it.

    A presignature belongs to the authenticated client whose presigning run made it (the SHA-256
    of its TLS certificate): only that client can sign with it, and each client may hold at most
    :data:`MAX_PRESIGNATURES_PER_CLIENT` per key. When a key's pool is full, the oldest
    presignature of the client holding the most is recycled (dropped) — so a client presigning
    without end crowds out only itself, never another client's approved signing. Presignatures
    older than :data:`PRESIGNATURE_TTL` expire.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._pools: dict[str, PresignaturePool] = {}
        self._owners: dict[str, OrderedDict[bytes, tuple[bytes, float]]] = {}

    def level(self, key_name: str) -> int:
        """Unused presignatures of ``key_name``, every client's (a metric)."""
        self._expire(key_name)
        return len(self._owners.get(key_name, ()))

    def held(self, key_name: str, client: bytes) -> int:
        self._expire(key_name)
        owners = self._owners.get(key_name)
        return 0 if owners is None else sum(1 for owner, _ in owners.values() if owner == client)

    def check_room(self, key_name: str, client: bytes, adding: int, pending: int) -> None:
        """Refuse (this client only) a run that would take it over its own quota."""
        if self.held(key_name, client) + pending + adding > MAX_PRESIGNATURES_PER_CLIENT:
            raise BusyError(
                f"this client keeps or is making {MAX_PRESIGNATURES_PER_CLIENT} unused "
                f"presignatures of key {key_name!r}: sign with them first"
            )

    def add(self, key_name: str, client: bytes, presignatures: list[Presignature]) -> None:
        pool = self._pools.setdefault(key_name, PresignaturePool())
        owners = self._owners.setdefault(key_name, OrderedDict())
        now = self._clock()
        for presignature in presignatures:
            while len(owners) >= MAX_PRESIGNATURES:
                self._recycle(key_name)
            pool.add(presignature)
            owners[presignature.info.presignature_id] = (client, now)

    def take(self, key_name: str, client: bytes, presignature_id: bytes) -> Presignature:
        """Out of the pool before anything else: never used twice, and only by its owner."""
        self._expire(key_name)
        owners = self._owners.get(key_name)
        owner = None if owners is None else owners.get(presignature_id)
        if owner is None or owner[0] != client:
            raise NonceUnknownError("no unused presignature of this client with this id")
        del self._owners[key_name][presignature_id]
        try:
            return self._pools[key_name].take(presignature_id)
        except MpcError:  # pragma: no cover -- the owner table and the pool move together
            raise NonceUnknownError("no unused presignature with this id") from None

    def forget(self, key_name: str) -> None:
        """Destroy every presignature of ``key_name`` (made with shares that changed, or of a
        key that is gone): each is taken out of its pool, never usable again."""
        owners = self._owners.pop(key_name, None)
        pool = self._pools.pop(key_name, None)
        if owners and pool is not None:
            for presignature_id in owners:
                pool.take(presignature_id)

    def _drop(self, key_name: str, presignature_id: bytes) -> None:
        del self._owners[key_name][presignature_id]
        self._pools[key_name].take(presignature_id)  # taken and forgotten: never usable again

    def _recycle(self, key_name: str) -> None:
        owners = self._owners[key_name]
        counts: dict[bytes, int] = {}
        for owner, _ in owners.values():
            counts[owner] = counts.get(owner, 0) + 1
        greediest = max(counts, key=lambda c: counts[c])
        oldest = next(pid for pid, (owner, _) in owners.items() if owner == greediest)
        self._drop(key_name, oldest)

    def _expire(self, key_name: str) -> None:
        owners = self._owners.get(key_name)
        if not owners:
            return
        limit = self._clock() - PRESIGNATURE_TTL
        while owners:  # insertion order is age order: only the expired head is visited
            presignature_id, (_, made) = next(iter(owners.items()))
            if made >= limit:
                break
            self._drop(key_name, presignature_id)
