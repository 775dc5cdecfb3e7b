"""Public parameters of one DKG session, agreed on before it starts.

Threshold convention (see ``enclave.mpc.shamir``): ``threshold`` is the polynomial degree ``t``;
any ``t + 1`` of the ``n`` participants can use the key. The ``session_id`` must be unique per
run (the caller derives it, e.g. from the request id and the participant set); every message and
every proof of possession is bound to :meth:`DkgParameters.context`, so material from one run
cannot be replayed into another.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from enclave.mpc.encoding import lp_join
from enclave.mpc.errors import InvalidParameters
from enclave.mpc.groups import Group
from enclave.mpc.identifiers import Identifier, validate_identifiers
from enclave.mpc.shamir import check_threshold

__all__ = ["MAX_SESSION_ID", "DkgParameters"]

MAX_SESSION_ID = 64


@dataclass(frozen=True, slots=True)
class DkgParameters:
    group: Group
    threshold: int
    participants: tuple[Identifier, ...]
    session_id: bytes

    def __init__(
        self,
        group: Group,
        threshold: int,
        participants: Sequence[Identifier],
        session_id: bytes,
    ) -> None:
        idents = validate_identifiers(group, participants)
        check_threshold(threshold, len(idents))
        if not 0 < len(session_id) <= MAX_SESSION_ID:
            raise InvalidParameters(f"session id must be 1..{MAX_SESSION_ID} bytes")
        object.__setattr__(self, "group", group)
        object.__setattr__(self, "threshold", threshold)
        object.__setattr__(self, "participants", idents)
        object.__setattr__(self, "session_id", bytes(session_id))

    def context(self) -> bytes:
        """Length-prefixed encoding of everything that defines the session."""
        return lp_join(
            (
                b"keyshard/dkg/v1",
                self.group.name.encode(),
                self.session_id,
                self.threshold.to_bytes(2, "big"),
                b"".join(i.to_bytes() for i in self.participants),
            )
        )

    def check_member(self, ident: Identifier) -> None:
        if ident not in self.participants:
            raise InvalidParameters(f"{int(ident)} is not a participant of this DKG")

    def check_senders(self, me: Identifier, senders: Iterable[Identifier]) -> None:
        """Messages must come from exactly every other participant."""
        expected = set(self.participants) - {me}
        got = set(senders)
        if got != expected:
            missing = sorted(int(i) for i in expected - got)
            extra = sorted(int(i) for i in got - expected)
            raise InvalidParameters(f"wrong sender set: missing {missing}, unexpected {extra}")
