"""One key creation on one node: the DKG (:class:`enclave.mpc.dkg.session.DkgSession`) driven
over envelopes the client relays.

Party identifiers are positions 1..n in the sorted list of participant node ids, so every node
derives the same mapping from the same ``KeyCreate``. The MPC core's DKG session id is not the
client's session id but :func:`dkg_session_id` — a hash binding the client's id, the key name and
the key's approval policy — so every proof of possession and the transcript confirmation commit to
the policy: a node given another policy than its peers fails the DKG at round one (its peers'
proofs do not verify under its context) and never seals a share. Each round takes exactly one envelope from
every other participant; the sender of each is the peer whose box key opened it (never a name in
the payload). Phases (one table; any error leaves the creation failed for good)::

    ROUND1 --step--> ROUND2 --step--> CONFIRM --step--> DONE        (error: --> FAILED)
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
from collections.abc import Iterator, Mapping, Sequence

from nacl.public import PrivateKey

from enclave.mpc.dkg.messages import Round1Package, Round2Package, TranscriptConfirmation
from enclave.mpc.dkg.params import DkgParameters
from enclave.mpc.dkg.session import DkgSession
from enclave.mpc.encoding import lp_join
from enclave.mpc.groups import Group
from enclave.mpc.identifiers import Identifier
from enclave.mpc.keys import KeyShare
from enclave.mpc.randomness import RandomSource
from enclave.service.envelope import EnvelopeHeader, Envelopes
from enclave.service.errors import EnvelopeError, SessionError

__all__ = ["KeyCreation", "KeyCreationPhase", "dkg_session_id"]

_CONTEXT_DOMAIN = b"keyshard/service/dkg-context/v1"


def dkg_session_id(session_id: bytes, key_name: str, suite: str, policy: bytes) -> bytes:
    """The DKG's session id: binds what the nodes must agree on beyond the MPC parameters
    (the suite too: FROST-secp256k1 and ECDSA-secp256k1 keys share a group, never a key)."""
    return hashlib.sha256(
        lp_join((_CONTEXT_DOMAIN, session_id, key_name.encode(), suite.encode(), policy))
    ).digest()


class KeyCreationPhase(enum.Enum):
    ROUND1 = 1
    ROUND2 = 2
    CONFIRM = 3
    DONE = 4
    FAILED = 5


_NEXT = {
    KeyCreationPhase.ROUND1: KeyCreationPhase.ROUND2,
    KeyCreationPhase.ROUND2: KeyCreationPhase.CONFIRM,
    KeyCreationPhase.CONFIRM: KeyCreationPhase.DONE,
}


class KeyCreation:
    def __init__(
        self,
        *,
        key_name: str,
        suite: str,
        group: Group,
        threshold: int,
        session_id: bytes,
        me: str,
        box_key: PrivateKey,
        peer_box_keys: Mapping[str, bytes],
        policy: bytes = b"",
    ) -> None:
        nodes = sorted({me, *peer_box_keys})
        if me in peer_box_keys or len(nodes) != len(peer_box_keys) + 1:
            raise SessionError("participants must be this node plus distinct peers")
        self.key_name, self.session_id, self.me = key_name, session_id, me
        self.policy, self.suite = policy, suite
        self.nodes = tuple(nodes)
        self._ids = {node: Identifier.from_int(group, index) for index, node in enumerate(nodes, 1)}
        self._group = group
        self._params = DkgParameters(
            group,
            threshold,
            list(self._ids.values()),
            dkg_session_id(session_id, key_name, suite, policy),
        )
        self._dkg = DkgSession(self._params, self._ids[me])
        self._envelopes = Envelopes(me, box_key, peer_box_keys)
        self._peers = tuple(sorted(peer_box_keys))
        self.phase = KeyCreationPhase.ROUND1
        self._started = False

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        if self.phase in (KeyCreationPhase.DONE, KeyCreationPhase.FAILED):
            raise SessionError(f"key creation {self.key_name!r} is {self.phase.name.lower()}")
        phase, self.phase = self.phase, KeyCreationPhase.FAILED
        yield
        self.phase = _NEXT[phase]

    def _header(self, round_: int, recipient: str = "") -> EnvelopeHeader:
        return EnvelopeHeader(self.key_name, self.session_id, round_, self.me, recipient)

    def _broadcast(self, round_: int, body: bytes) -> dict[str, bytes]:
        return {p: self._envelopes.seal(self._header(round_, p), body) for p in self._peers}

    def start(self, rng: RandomSource) -> dict[str, bytes]:
        """Round one's broadcast, sealed to every peer."""
        if self._started or self.phase is not KeyCreationPhase.ROUND1:
            raise SessionError("key creation already started")
        self._started = True
        try:
            package = self._dkg.begin(rng)
        except Exception:
            self.phase = KeyCreationPhase.FAILED
            raise
        return self._broadcast(1, package.to_bytes())

    def _open_all(self, round_: int, inbox: Sequence[bytes]) -> dict[Identifier, bytes]:
        bodies: dict[Identifier, bytes] = {}
        for envelope in inbox:
            sender, body = self._envelopes.open(envelope, self._header(round_))
            ident = self._ids[sender]
            if ident in bodies:
                raise EnvelopeError(f"a second round-{round_} envelope from {sender}")
            bodies[ident] = body
        missing = [p for p in self._peers if self._ids[p] not in bodies]
        if missing:
            raise EnvelopeError(f"round {round_} lacks envelopes from {', '.join(missing)}")
        return bodies

    def step(self, inbox: Sequence[bytes]) -> dict[str, bytes] | KeyShare:
        """Consume one round's envelopes; return the next outbox, or the key share at the end."""
        if not self._started:
            raise SessionError("key creation not started")
        round_ = self.phase.value  # ROUND1=1, ROUND2=2, CONFIRM=3: the round whose envelopes arrive
        with self._guard():
            group = self._group
            names = {ident: node for node, ident in self._ids.items()}
            bodies = self._open_all(round_, inbox)
            if round_ == 1:
                r1 = {i: Round1Package.from_bytes(b, group) for i, b in bodies.items()}
                outgoing = self._dkg.receive_round1(r1)
                return {
                    names[i]: self._envelopes.seal(self._header(2, names[i]), pkg.to_bytes())
                    for i, pkg in outgoing.items()
                }
            if round_ == 2:
                r2 = {i: Round2Package.from_bytes(b, group) for i, b in bodies.items()}
                confirmation = self._dkg.receive_round2(r2)
                return self._broadcast(3, confirmation.to_bytes())
            r3 = {i: TranscriptConfirmation.from_bytes(b, group) for i, b in bodies.items()}
            return self._dkg.receive_confirmations(r3)
        raise AssertionError("unreachable")  # pragma: no cover

    def __repr__(self) -> str:
        return f"KeyCreation({self.key_name}, {self.me}, {self.phase.name})"
