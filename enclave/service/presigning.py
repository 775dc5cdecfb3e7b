"""Threshold ECDSA presigning on one node, driven over envelopes the client relays.

One :class:`Presigning` wraps the MPC core's :class:`~enclave.mpc.ecdsa.PresignSession` (DJNPO20,
three rounds among exactly ``2t + 1`` holders) the way :mod:`enclave.service.dkg` wraps the DKG:
every round's messages travel as crypto_box envelopes (:mod:`enclave.service.envelope`) — the
round-one deals are secret shares, and the openings go the same way for simplicity — and the
sender of each is the peer whose box key opened it, never a name in the payload. Envelope rounds
are :data:`ROUNDS` (101..103), disjoint from the DKG's 1..3.

Party identifiers are the key's: positions 1..n of the node ids recorded when the key was created
(:class:`~enclave.service.keystore.StoredKey.nodes`), so a node maps a peer's attested node id to
the identifier whose verifying share the MPC core checks. Any error fails the run for good (the
server forgets it); the result is a single-use :class:`~enclave.mpc.ecdsa.Presignature` that the
server keeps in memory only — never sealed, so a restart drops every presignature.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nacl.public import PrivateKey

from enclave.mpc.ecdsa import (
    DealMessage,
    MaskOpening,
    NonceOpening,
    Presignature,
    PresignContext,
    PresignSession,
)
from enclave.mpc.groups import SECP256K1
from enclave.mpc.identifiers import Identifier
from enclave.mpc.randomness import RandomSource
from enclave.service.envelope import EnvelopeHeader, Envelopes
from enclave.service.errors import EnvelopeError, PeerRefusedError, SessionError
from enclave.service.keystore import StoredKey
from wire import cbor
from wire.errors import MalformedMessageError
from wire.messages import presign_batch_session_id

__all__ = ["ROUNDS", "Presigning"]

#: Envelope round numbers of the deals, nonce openings and mask openings.
ROUNDS = (101, 102, 103)
_DECODERS: tuple[Any, ...] = (DealMessage, NonceOpening, MaskOpening)
_RECEIVERS: tuple[Any, ...] = (
    PresignSession.receive_deals,
    PresignSession.receive_nonce_openings,
    PresignSession.receive_mask_openings,
)


class Presigning:
    def __init__(
        self,
        *,
        key_name: str,
        session_id: bytes,
        me: str,
        key: StoredKey,
        box_key: PrivateKey,
        peer_box_keys: Mapping[str, bytes],
        count: int = 1,
        client: bytes = b"",
    ) -> None:
        if not key.nodes:
            raise SessionError(f"key {key_name!r} records no holders; it cannot presign")
        ids = {node: Identifier.from_int(SECP256K1, i) for i, node in enumerate(key.nodes, 1)}
        if ids.get(me) != key.share.identifier:
            raise SessionError("this node's share is not the one its key records")
        for node_id in peer_box_keys:
            if node_id not in ids:
                raise PeerRefusedError(node_id, f"does not hold key {key_name!r}")
        if me in peer_box_keys:
            raise SessionError("participants must be this node plus distinct peers")
        self.key_name, self.session_id, self.me = key_name, session_id, me
        self.count = count
        self.client = client  # the authenticated client that runs it: it owns the results
        self._names = {ids[node]: node for node in (me, *peer_box_keys)}
        self._ids = ids
        parties = sorted(self._names)
        self._sessions = [
            PresignSession(
                PresignContext.create(
                    key.share.public, parties, presign_batch_session_id(session_id, k)
                ),
                key.share,
            )
            for k in range(count)
        ]
        self._envelopes = Envelopes(me, box_key, peer_box_keys)
        self._peers = tuple(sorted(peer_box_keys))
        self._round = 0  # index into ROUNDS of the envelopes expected next

    def _header(self, round_: int, recipient: str = "") -> EnvelopeHeader:
        return EnvelopeHeader(self.key_name, self.session_id, round_, self.me, recipient)

    def _seal(self, round_: int, bodies: Mapping[str, bytes]) -> dict[str, bytes]:
        return {p: self._envelopes.seal(self._header(round_, p), b) for p, b in bodies.items()}

    def start(self, rng: RandomSource) -> dict[str, bytes]:
        """Round one: the private deals, one envelope per other participant."""
        deals = [session.start(rng) for session in self._sessions]
        bodies = {
            self._names[i]: cbor.dumps([batch[i].to_bytes() for batch in deals]) for i in deals[0]
        }
        return self._seal(ROUNDS[0], bodies)

    def _open_all(self, round_: int, inbox: Sequence[bytes]) -> dict[str, list[bytes]]:
        bodies: dict[str, list[bytes]] = {}
        for envelope in inbox:
            sender, body = self._envelopes.open(envelope, self._header(round_))
            if sender in bodies:
                raise EnvelopeError(f"a second round-{round_} envelope from {sender}")
            bodies[sender] = self._batch(sender, body)
        missing = [p for p in self._peers if p not in bodies]
        if missing:
            raise EnvelopeError(f"round {round_} lacks envelopes from {', '.join(missing)}")
        return bodies

    def _batch(self, sender: str, body: bytes) -> list[bytes]:
        try:
            items = cbor.loads(body, what="presign batch")
        except MalformedMessageError:
            raise EnvelopeError(f"envelope from {sender} holds no presigning batch") from None
        if (
            type(items) is not list
            or len(items) != len(self._sessions)
            or not all(type(item) is bytes for item in items)
        ):
            raise EnvelopeError(f"envelope from {sender} holds another batch size")
        return items

    def step(self, inbox: Sequence[bytes]) -> dict[str, bytes] | list[Presignature]:
        """Consume one round's envelopes; the next outbox, or the presignatures at the end.

        The caller forgets this object after any error (no retry of a failed run).
        """
        if self._round >= len(ROUNDS):
            raise SessionError("presigning already finished")
        index = self._round
        self._round = len(ROUNDS)  # failed until this step succeeds
        bodies = self._open_all(ROUNDS[index], inbox)
        decoder, receive = _DECODERS[index], _RECEIVERS[index]
        results = [
            receive(
                session,
                {
                    self._ids[s]: decoder.from_bytes(batch[k], SECP256K1)
                    for s, batch in bodies.items()
                },
            )
            for k, session in enumerate(self._sessions)
        ]
        if index == len(ROUNDS) - 1:
            return results  # the presignatures
        self._round = index + 1
        opening = cbor.dumps([result.to_bytes() for result in results])
        return self._seal(ROUNDS[index + 1], dict.fromkeys(self._peers, opening))

    def __repr__(self) -> str:
        return f"Presigning({self.key_name}, {self.me}, round {self._round})"
