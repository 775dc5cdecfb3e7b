"""A DKG session for one participant: the rounds behind one phase-checked interface.

The round functions are pure; a node service wants one object per run that refuses calls out of
order and stays failed after any error (h11's state-machine discipline): a failed DKG must be
restarted with a new session id, never resumed. One transition table states the allowed order::

    START --begin--> AWAIT_ROUND1 --round1--> AWAIT_ROUND2 --round2--> AWAIT_CONFIRM
          --confirm--> DONE            (any error in any step: --> FAILED, for good)
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Iterator, Mapping

from enclave.mpc.dkg.messages import Round1Package, Round2Package, TranscriptConfirmation
from enclave.mpc.dkg.params import DkgParameters
from enclave.mpc.dkg.pop import PopScheme
from enclave.mpc.dkg.round1 import SESSION_BOUND, Round1Secret, part1
from enclave.mpc.dkg.round2 import Round2Secret, part2
from enclave.mpc.dkg.round3 import Round3Secret, finalize, part3
from enclave.mpc.errors import MisuseError
from enclave.mpc.identifiers import Identifier
from enclave.mpc.keys import KeyShare
from enclave.mpc.randomness import RandomSource

__all__ = ["DkgPhase", "DkgSession"]


class DkgPhase(enum.Enum):
    START = "start"
    AWAIT_ROUND1 = "await-round1"
    AWAIT_ROUND2 = "await-round2"
    AWAIT_CONFIRM = "await-confirm"
    DONE = "done"
    FAILED = "failed"


# (phase, step) -> phase after a successful step.
_TRANSITIONS: dict[tuple[DkgPhase, str], DkgPhase] = {
    (DkgPhase.START, "begin"): DkgPhase.AWAIT_ROUND1,
    (DkgPhase.AWAIT_ROUND1, "round1"): DkgPhase.AWAIT_ROUND2,
    (DkgPhase.AWAIT_ROUND2, "round2"): DkgPhase.AWAIT_CONFIRM,
    (DkgPhase.AWAIT_CONFIRM, "confirm"): DkgPhase.DONE,
}


class DkgSession:
    """One participant's view of one DKG run."""

    def __init__(
        self, params: DkgParameters, me: Identifier, *, pop: PopScheme = SESSION_BOUND
    ) -> None:
        params.check_member(me)
        self.params, self.me, self._pop = params, me, pop
        self.phase = DkgPhase.START
        self._r1: Round1Secret | None = None
        self._r2: Round2Secret | None = None
        self._r3: Round3Secret | None = None

    @contextlib.contextmanager
    def _transition(self, step: str) -> Iterator[None]:
        """Run one step: FAILED unless the body completes, then the table's next phase."""
        nxt = _TRANSITIONS.get((self.phase, step))
        if nxt is None:
            raise MisuseError(f"DKG step {step!r} not allowed in phase {self.phase.value}")
        self.phase = DkgPhase.FAILED  # stays so if the body raises
        yield
        self.phase = nxt

    def begin(self, rng: RandomSource) -> Round1Package:
        """Round 1: returns the package to broadcast."""
        with self._transition("begin"):
            self._r1, package = part1(self.params, self.me, rng, pop=self._pop)
        return package

    def receive_round1(
        self, packages: Mapping[Identifier, Round1Package]
    ) -> dict[Identifier, Round2Package]:
        """Round 2: checks every peer's package; returns one private package per peer."""
        with self._transition("round1"):
            assert self._r1 is not None  # guaranteed by the phase
            self._r2, outgoing = part2(self._r1, packages)
            self._r1 = None  # the polynomial is no longer needed
        return outgoing

    def receive_round2(
        self, packages: Mapping[Identifier, Round2Package]
    ) -> TranscriptConfirmation:
        """Round 3: checks every dealt share; returns the transcript digest to broadcast."""
        with self._transition("round2"):
            assert self._r2 is not None  # guaranteed by the phase
            self._r3, confirmation = part3(self._r2, packages)
            self._r2 = None
        return confirmation

    def receive_confirmations(
        self, confirmations: Mapping[Identifier, TranscriptConfirmation]
    ) -> KeyShare:
        """Final check: releases the key share only if every transcript digest agrees."""
        with self._transition("confirm"):
            assert self._r3 is not None  # guaranteed by the phase
            key = finalize(self._r3, confirmations)
            self._r3 = None
        return key

    def __repr__(self) -> str:
        return f"DkgSession({int(self.me)}, {self.phase.value})"
