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

    ROUND1 --step--> ROUND2 --step--> CONFIRM --step--> SEALED --commit--> DONE   (error: FAILED)

Two phases: after the third step the node seals its share as PENDING and sends each peer an
acknowledgement envelope (round 4: "I sealed exactly this public key package"); only when every
peer's acknowledgement arrives (``commit``) does the key become usable. A client that withholds a
round from one node therefore leaves no node with a usable key the others lack, and a pending key
that is never committed expires and frees its name (:mod:`enclave.service.keystore`).
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import hmac
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


def dkg_session_id(
    session_id: bytes, key_name: str, suite: str, policy: bytes, exportable: bool = False
) -> bytes:
    """The DKG's session id: binds what the nodes must agree on beyond the MPC parameters
    (the suite too: FROST-secp256k1 and ECDSA-secp256k1 keys share a group, never a key; and
    whether the key is exportable, a field only exportable keys add)."""
    fields = [_CONTEXT_DOMAIN, session_id, key_name.encode(), suite.encode(), policy]
    if exportable:
        fields.append(b"exportable")
    return hashlib.sha256(lp_join(fields)).digest()


class KeyCreationPhase(enum.Enum):
    ROUND1 = 1
    ROUND2 = 2
    CONFIRM = 3
    SEALED = 4  # this node sealed its share (pending); waiting for every peer's acknowledgement
    DONE = 5
    FAILED = 6


_NEXT = {
    KeyCreationPhase.ROUND1: KeyCreationPhase.ROUND2,
    KeyCreationPhase.ROUND2: KeyCreationPhase.CONFIRM,
    KeyCreationPhase.CONFIRM: KeyCreationPhase.SEALED,
    KeyCreationPhase.SEALED: KeyCreationPhase.DONE,
}
#: The envelope round of the sealed-share acknowledgements (second phase of key creation).
ACK_ROUND = 4
_ACK_DOMAIN = b"keyshard/service/dkg-sealed/v1"


def sealed_digest(public_key_package: bytes) -> bytes:
    """What a node acknowledges to its peers: it sealed its share of exactly this key."""
    return hashlib.sha256(lp_join((_ACK_DOMAIN, public_key_package))).digest()


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
        exportable: bool = False,
    ) -> None:
        nodes = sorted({me, *peer_box_keys})
        if me in peer_box_keys or len(nodes) != len(peer_box_keys) + 1:
            raise SessionError("participants must be this node plus distinct peers")
        self.key_name, self.session_id, self.me = key_name, session_id, me
        self.policy, self.suite, self.exportable = policy, suite, exportable
        self.nodes = tuple(nodes)
        self._ids = {node: Identifier.from_int(group, index) for index, node in enumerate(nodes, 1)}
        self._group = group
        self._params = DkgParameters(
            group,
            threshold,
            list(self._ids.values()),
            dkg_session_id(session_id, key_name, suite, policy, exportable),
        )
        self._dkg = DkgSession(self._params, self._ids[me])
        self._envelopes = Envelopes(me, box_key, peer_box_keys)
        self._peers = tuple(sorted(peer_box_keys))
        self.phase = KeyCreationPhase.ROUND1
        self._started = False
        self._sealed: bytes | None = None

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

    def acknowledge(self, public_key_package: bytes) -> dict[str, bytes]:
        """After this node sealed its share (pending): an envelope to every peer saying so."""
        if self.phase is not KeyCreationPhase.SEALED:
            raise SessionError(f"key creation {self.key_name!r} has sealed no share")
        self._sealed = sealed_digest(public_key_package)
        return self._broadcast(ACK_ROUND, self._sealed)

    def commit(self, inbox: Sequence[bytes]) -> None:
        """Every peer acknowledged sealing the same key: it may be used. Any defect fails the
        creation for good (the pending key then expires)."""
        if self.phase is not KeyCreationPhase.SEALED or self._sealed is None:
            raise SessionError(f"key creation {self.key_name!r} is not waiting for a commit")
        with self._guard():
            names = {ident: node for node, ident in self._ids.items()}
            for ident, body in self._open_all(ACK_ROUND, inbox).items():
                if not hmac.compare_digest(body, self._sealed):
                    raise EnvelopeError(f"{names[ident]} sealed another key")

    def step(self, inbox: Sequence[bytes]) -> dict[str, bytes] | KeyShare:
        """Consume one round's envelopes; return the next outbox, or the key share at the end."""
        if not self._started:
            raise SessionError("key creation not started")
        if self.phase is KeyCreationPhase.SEALED:
            raise SessionError(f"key creation {self.key_name!r} waits for a commit, not a step")
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
