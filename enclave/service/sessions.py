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
from enclave.service.dkg import KeyCreation, KeyCreationPhase
from enclave.service.errors import BusyError, NonceUnknownError, SessionError
from enclave.service.presigning import Presigning

__all__ = [
    "CREATION_TIMEOUT",
    "MAX_CREATIONS",
    "MAX_PRESIGNATURES",
    "MAX_PRESIGNING",
    "KeyCreations",
    "PresignaturePools",
    "PresigningRuns",
]

#: A key creation not finished after this long is abandoned: a new KeyCreate may replace it.
CREATION_TIMEOUT = 120.0
#: At most this many key creations run at once on a node.
MAX_CREATIONS = 32
#: At most this many presigning runs are pending on a node (the oldest is dropped first).
MAX_PRESIGNING = 64
#: At most this many unused presignatures are kept, or being made, per key.
MAX_PRESIGNATURES = 1024


class KeyCreations:
    """Running DKGs by key name. A name is reserved before the node's first await on a new
    creation, so two concurrent ``key_create`` for one name cannot both start one."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._running: dict[str, tuple[float, KeyCreation]] = {}
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

    def start(self, name: str, creation: KeyCreation) -> None:
        self._reserved.discard(name)
        self._running[name] = (self._clock(), creation)

    def get(self, name: str) -> KeyCreation:
        running = self._running.get(name)
        if running is None:
            raise SessionError(f"no key creation {name!r} on this node")
        return running[1]

    def finish(self, name: str) -> None:
        self._running.pop(name, None)


class PresigningRuns:
    """Presigning runs between their rounds, by (key, session). A run is taken out for each
    step and put back only if the step succeeded: any error forgets it for good."""

    def __init__(self) -> None:
        self._runs: OrderedDict[tuple[str, bytes], Presigning] = OrderedDict()

    def pending(self, key_name: str) -> int:
        """Presignatures being made for ``key_name``."""
        return sum(run.count for (name, _), run in self._runs.items() if name == key_name)

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


class PresignaturePools:
    """Finished presignatures by key, each taken out exactly once."""

    def __init__(self) -> None:
        self._pools: dict[str, PresignaturePool] = {}

    def check_room(self, key_name: str, adding: int, pending: int) -> None:
        held = len(self._pools.get(key_name, ()))
        if held + pending + adding > MAX_PRESIGNATURES:
            raise BusyError(f"{MAX_PRESIGNATURES} unused presignatures are kept or being made")

    def add(self, key_name: str, presignatures: list[Presignature]) -> None:
        pool = self._pools.setdefault(key_name, PresignaturePool())
        for presignature in presignatures:
            pool.add(presignature)

    def take(self, key_name: str, presignature_id: bytes) -> Presignature:
        """Out of the pool before anything else: never used twice."""
        try:
            return self._pools.setdefault(key_name, PresignaturePool()).take(presignature_id)
        except MpcError:
            raise NonceUnknownError("no unused presignature with this id") from None
