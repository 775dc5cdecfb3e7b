"""One party's presigning session: the round functions of ``presign.py`` behind a phase machine.

As in h11, every transition sits in one table (:data:`TRANSITIONS`); an event that the table does
not allow in the current phase is a :class:`MisuseError`, and *any* error — misuse, malformed
input, a failed check — moves the session to :attr:`Phase.FAILED` for good. A failed presigning
run is never resumed or retried with the same state; the driver starts a new session with a new
session id.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import TypeVar

from enclave.mpc.ecdsa import presign
from enclave.mpc.ecdsa.context import PresignContext
from enclave.mpc.ecdsa.messages import DealMessage, MaskOpening, NonceOpening
from enclave.mpc.ecdsa.presignature import Presignature
from enclave.mpc.errors import MisuseError
from enclave.mpc.identifiers import Identifier
from enclave.mpc.keys import KeyShare
from enclave.mpc.randomness import RandomSource

__all__ = ["TRANSITIONS", "Event", "Phase", "PresignSession"]

_T = TypeVar("_T")


class Phase(enum.Enum):
    NEW = "new"
    DEALT = "dealt"
    NONCE_OPENED = "nonce-opened"
    MASK_OPENED = "mask-opened"
    DONE = "done"
    FAILED = "failed"


class Event(enum.Enum):
    START = "start"
    DEALS = "deals"
    NONCE_OPENINGS = "nonce-openings"
    MASK_OPENINGS = "mask-openings"


TRANSITIONS: Mapping[tuple[Phase, Event], Phase] = {
    (Phase.NEW, Event.START): Phase.DEALT,
    (Phase.DEALT, Event.DEALS): Phase.NONCE_OPENED,
    (Phase.NONCE_OPENED, Event.NONCE_OPENINGS): Phase.MASK_OPENED,
    (Phase.MASK_OPENED, Event.MASK_OPENINGS): Phase.DONE,
}


class PresignSession:
    """Drives ``deal -> open_nonce -> open_mask -> finish`` for one party."""

    __slots__ = ("_context", "_key_share", "_phase", "_state")

    def __init__(self, context: PresignContext, key_share: KeyShare) -> None:
        context.others(key_share.identifier)  # this party must be in the set
        self._context = context
        self._key_share = key_share
        self._phase = Phase.NEW
        self._state: object = None

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def identifier(self) -> Identifier:
        return self._key_share.identifier

    def _step(self, event: Event, action: Callable[[], _T]) -> _T:
        target = TRANSITIONS.get((self._phase, event))
        if target is None:
            phase, self._phase, self._state = self._phase, Phase.FAILED, None
            raise MisuseError(f"event {event.value} not allowed in phase {phase.value}")
        try:
            result = action()
        except BaseException:
            self._phase = Phase.FAILED
            self._state = None
            raise
        self._phase = target
        return result

    def _take(self, kind: type[_T]) -> _T:
        state = self._state
        assert isinstance(state, kind)  # guaranteed by the transition table
        return state

    def start(self, rng: RandomSource) -> dict[Identifier, DealMessage]:
        """Round 1: the private deal messages, one per other party."""

        def action() -> dict[Identifier, DealMessage]:
            self._state, out = presign.deal(self._context, self._key_share, rng)
            return out

        return self._step(Event.START, action)

    def receive_deals(self, received: Mapping[Identifier, DealMessage]) -> NonceOpening:
        """Round 2: consume the deals from every other party; broadcast the result."""

        def action() -> NonceOpening:
            self._state, out = presign.open_nonce(self._take(presign.DealState), received)
            return out

        return self._step(Event.DEALS, action)

    def receive_nonce_openings(self, received: Mapping[Identifier, NonceOpening]) -> MaskOpening:
        """Round 3: open ``R``; broadcast ``W_i``."""

        def action() -> MaskOpening:
            self._state, out = presign.open_mask(self._take(presign.NonceState), received)
            return out

        return self._step(Event.NONCE_OPENINGS, action)

    def receive_mask_openings(self, received: Mapping[Identifier, MaskOpening]) -> Presignature:
        """Output: check ``W == w·G`` and return the presignature; the session keeps nothing."""

        def action() -> Presignature:
            result = presign.finish(self._take(presign.MaskState), received)
            self._state = None
            return result

        return self._step(Event.MASK_OPENINGS, action)

    def __repr__(self) -> str:
        return f"PresignSession(party={int(self.identifier)}, phase={self._phase.value})"
