"""One proactive refresh on one node: the MPC core's refresh (:mod:`enclave.mpc.refresh`) driven
over envelopes the client relays, in two phases like key creation (:mod:`enclave.service.dkg`).

Every holder of the key takes part (a holder left out would keep a share of the old polynomial
that fits nobody's new one); party identifiers are the key's recorded positions. The MPC session
id is :func:`refresh_session_id`, binding the client's id, the key name and the epoch being left,
so an envelope or confirmation of one refresh never counts in another. Phases::

    DEALT --stage--> STAGED --commit--> DONE           (any error: FAILED, for good)

* deal: each node sends each peer, in one envelope, its zero-sharing commitment and the peer's
  sub-share;
* stage: each node checks every dealer, computes its next-epoch share and SEALS it beside the
  current one (the handler does, before answering), then sends every peer its confirmation (a
  digest of the whole public transcript and the new public key package);
* commit: when every peer confirmed the same digest, the node reseals with only the new share at
  the next epoch; the old share and every nonce and presignature made with it are destroyed.

A node answers its confirmation only after its next share is sealed, and commits only on every
peer's confirmation, so once any node has committed, every node has the next share sealed. A node
that crashed while staged cannot open the confirmations again (its box key died with its boot):
it commits on a **vouch** instead — an envelope from a peer that committed, saying "I am at epoch
e+1 with this public key package" (:func:`vouch_digest`); equal packages mean equal transcripts.
Until then it serves the old epoch, and clients use one epoch only (the highest with t+1
holders). When no node committed, the staged share can be dropped only after every holder has
dropped its running refresh (so no node can commit it any more): see ``refresh_abandon``.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
from collections.abc import Iterator, Mapping, Sequence

from nacl.public import PrivateKey

from enclave.mpc.encoding import lp_join
from enclave.mpc.identifiers import Identifier
from enclave.mpc.keys import KeyShare
from enclave.mpc.randomness import RandomSource
from enclave.mpc.refresh import PendingRefresh, refresh_commit, refresh_deal, refresh_receive
from enclave.mpc.renewal import Confirmation, DealerCommitment, Renewal, SubShare
from enclave.service.envelope import EnvelopeHeader, Envelopes
from enclave.service.errors import EnvelopeError, SessionError
from wire import cbor
from wire.errors import MalformedMessageError

__all__ = [
    "CONFIRM_ROUND",
    "DEAL_ROUND",
    "VOUCH_ROUND",
    "KeyRefreshing",
    "RefreshPhase",
    "refresh_session_id",
    "vouch_digest",
    "vouch_session_id",
]

_SESSION_DOMAIN = b"keyshard/service/refresh-session/v1"
_VOUCH_DOMAIN = b"keyshard/service/refresh-vouch/v1"
_VOUCH_SESSION_DOMAIN = b"keyshard/service/refresh-vouch-session/v1"
#: Envelope rounds (distinct from key creation's 1..4).
DEAL_ROUND = 11
CONFIRM_ROUND = 12
VOUCH_ROUND = 13


def refresh_session_id(session_id: bytes, key_name: str, epoch: int) -> bytes:
    """The MPC session id of the refresh leaving ``epoch`` of ``key_name``."""
    return hashlib.sha256(
        lp_join((_SESSION_DOMAIN, session_id, key_name.encode(), epoch.to_bytes(4, "big")))
    ).digest()


def vouch_session_id(key_name: str, epoch: int) -> bytes:
    """The envelope session of vouches for ``epoch`` of ``key_name`` (one per epoch)."""
    return hashlib.sha256(
        lp_join((_VOUCH_SESSION_DOMAIN, key_name.encode(), epoch.to_bytes(4, "big")))
    ).digest()


def vouch_digest(key_name: str, epoch: int, public_key_package: bytes) -> bytes:
    """What a committed node vouches for: it holds ``epoch`` of the key with this package."""
    return hashlib.sha256(
        lp_join((_VOUCH_DOMAIN, key_name.encode(), epoch.to_bytes(4, "big"), public_key_package))
    ).digest()


class RefreshPhase(enum.Enum):
    DEALT = 1
    STAGED = 2
    DONE = 3
    FAILED = 4


_NEXT = {RefreshPhase.DEALT: RefreshPhase.STAGED, RefreshPhase.STAGED: RefreshPhase.DONE}


class KeyRefreshing:
    """This node's part in one refresh of ``key_name`` at ``epoch`` (see the module docstring)."""

    def __init__(
        self,
        *,
        key_name: str,
        epoch: int,
        share: KeyShare,
        nodes: Sequence[str],
        session_id: bytes,
        me: str,
        box_key: PrivateKey,
        peer_box_keys: Mapping[str, bytes],
    ) -> None:
        if set(nodes) != {me, *peer_box_keys} or me in peer_box_keys:
            raise SessionError("a refresh takes exactly every holder of the key")
        group = share.group
        self._ids = {node: Identifier.from_int(group, i) for i, node in enumerate(nodes, 1)}
        if self._ids[me] != share.identifier:
            raise SessionError("this node's share is not at its recorded position")
        self.key_name, self.epoch, self.session_id, self.me = key_name, epoch, session_id, me
        self._share = share
        self._mpc_session = refresh_session_id(session_id, key_name, epoch)
        self._envelopes = Envelopes(me, box_key, peer_box_keys)
        self._peers = tuple(sorted(peer_box_keys))
        self._own: tuple[DealerCommitment, SubShare] | None = None
        self._pending: PendingRefresh | None = None
        self.phase = RefreshPhase.DEALT

    @contextlib.contextmanager
    def _guard(self, phase: RefreshPhase) -> Iterator[None]:
        if self.phase is not phase:
            raise SessionError(f"refresh of {self.key_name!r} is {self.phase.name.lower()}")
        self.phase = RefreshPhase.FAILED
        yield
        self.phase = _NEXT[phase]

    def _header(self, round_: int, recipient: str = "") -> EnvelopeHeader:
        return EnvelopeHeader(self.key_name, self.session_id, round_, self.me, recipient)

    def start(self, rng: RandomSource) -> dict[str, bytes]:
        """Deal: to each peer, an envelope with this node's commitment and the peer's sub-share."""
        if self._own is not None:
            raise SessionError("refresh already started")
        commitment, sub_shares = refresh_deal(self._share, self._mpc_session, rng)
        self._own = (commitment, sub_shares[self._share.identifier])
        return {
            peer: self._envelopes.seal(
                self._header(DEAL_ROUND, peer),
                cbor.dumps(
                    {"c": commitment.to_bytes(), "s": sub_shares[self._ids[peer]].to_bytes()}
                ),
            )
            for peer in self._peers
        }

    def _open_all(self, round_: int, inbox: Sequence[bytes]) -> dict[Identifier, bytes]:
        bodies: dict[Identifier, bytes] = {}
        for envelope in inbox:
            sender, body = self._envelopes.open(envelope, self._header(round_))
            if self._ids[sender] in bodies:
                raise EnvelopeError(f"a second round-{round_} envelope from {sender}")
            bodies[self._ids[sender]] = body
        missing = [p for p in self._peers if self._ids[p] not in bodies]
        if missing:
            raise EnvelopeError(f"round {round_} lacks envelopes from {', '.join(missing)}")
        return bodies

    def stage(self, inbox: Sequence[bytes]) -> PendingRefresh:
        """Check every dealer; the next share (to be sealed, not used) and its confirmation."""
        if self._own is None:
            raise SessionError("refresh not started")
        with self._guard(RefreshPhase.DEALT):
            group = self._share.group
            commitments = {self._share.identifier: self._own[0]}
            sub_shares = {self._share.identifier: self._own[1]}
            for ident, body in self._open_all(DEAL_ROUND, inbox).items():
                try:
                    deal = cbor.loads_map(body, what="refresh deal", fields=("c", "s"))
                    if type(deal["c"]) is not bytes or type(deal["s"]) is not bytes:
                        raise MalformedMessageError("refresh deal", "must hold bytes")
                except MalformedMessageError:
                    raise EnvelopeError("a refresh deal is malformed") from None
                commitments[ident] = DealerCommitment.from_bytes(deal["c"], Renewal.REFRESH, group)
                sub_shares[ident] = SubShare.from_bytes(deal["s"], Renewal.REFRESH, group)
            self._pending = refresh_receive(self._share, self._mpc_session, commitments, sub_shares)
            return self._pending
        raise AssertionError("unreachable")  # pragma: no cover

    def confirmations(self) -> dict[str, bytes]:
        """After the next share is sealed: this node's confirmation, to every peer."""
        if self.phase is not RefreshPhase.STAGED or self._pending is None:
            raise SessionError(f"refresh of {self.key_name!r} has staged no share")
        body = self._pending.confirmation.to_bytes()
        return {p: self._envelopes.seal(self._header(CONFIRM_ROUND, p), body) for p in self._peers}

    def commit(self, inbox: Sequence[bytes]) -> KeyShare:
        """Every peer confirmed this node's transcript: the next share may replace the old."""
        pending = self._pending
        if pending is None:
            raise SessionError(f"refresh of {self.key_name!r} has staged no share")
        with self._guard(RefreshPhase.STAGED):
            group = self._share.group
            confirmations = {self._share.identifier: pending.confirmation}
            for ident, body in self._open_all(CONFIRM_ROUND, inbox).items():
                confirmations[ident] = Confirmation.from_bytes(body, Renewal.REFRESH, group)
            return refresh_commit(pending, confirmations)
        raise AssertionError("unreachable")  # pragma: no cover

    def __repr__(self) -> str:
        return f"KeyRefreshing({self.key_name}, epoch {self.epoch}, {self.me}, {self.phase.name})"
