"""One reshare on one node: the MPC core's redistribution (:mod:`enclave.mpc.reshare`) driven over
envelopes the client relays, in two phases like a refresh (:mod:`enclave.service.refresh`).

A reshare moves a key from its committee (every old holder deals; party identifiers are the
recorded positions) to a new committee and/or threshold, keeping the public key; the new
committee's identifiers are its positions in ``new_nodes``. A node may be an old holder only
(it LEAVES), a new member only (it JOINS, holding no record of the key yet) or both (it STAYS).
The MPC session id is :func:`reshare_session_id`, binding the client's id, the key name, the
epoch being left, the new committee and its threshold. Phases::

    DEALT --stage--> STAGED --commit--> DONE           (new members)
    DEALT --------------------retire--> DONE           (old holders leaving)
                                                       (any error: FAILED, for good)

* deal: each old holder sends each new member, in one envelope, its commitment, the member's
  sub-share and the key's public record (:class:`ReshareRecord`: suite, policy, package, old
  committee, epoch, state). A joining node takes the record only if EVERY old holder sent the
  same one and the dealers are exactly the old committee it names;
* stage: each new member checks every dealer against the old package, computes its share of the
  new committee and SEALS it (the handler does, before answering: beside the current share for a
  staying node, as a pending record for a joining one), then sends every other participant its
  confirmation (the digest of the whole public transcript and the new package);
* commit: when every new member confirmed the same digest, a new member reseals with only its
  new share and the new committee at the next epoch; a leaving holder erases its share on the
  same evidence (:func:`enclave.mpc.reshare.reshare_retire`).

A new member confirms only after its share is sealed, so once any member has committed, every
new member has its share sealed. After a crash the new committee is finished on a **vouch** from
a committed member (:func:`reshare_vouch_body`: epoch, package and committee): a staged or
joining member commits, a leaving holder erases. When no member committed, every participant
first drops its running reshare, then the sealed leftovers are discarded; the old committee was
never touched. Either way the key is served by one committee at one epoch, never a mix.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from nacl.public import PrivateKey

from enclave.mpc.encoding import lp_join
from enclave.mpc.errors import MpcError
from enclave.mpc.identifiers import Identifier
from enclave.mpc.keys import KeyShare, PublicKeyPackage
from enclave.mpc.randomness import RandomSource
from enclave.mpc.renewal import Confirmation, DealerCommitment, Renewal, SubShare
from enclave.mpc.reshare import (
    PendingReshare,
    ReshareContext,
    reshare_commit,
    reshare_deal,
    reshare_receive,
    reshare_retire,
)
from enclave.mpc.suites import KeySuite, key_suite
from enclave.service.envelope import EnvelopeHeader, Envelopes
from enclave.service.errors import EnvelopeError, SessionError
from wire import cbor
from wire.errors import MalformedMessageError

__all__ = [
    "CONFIRM_ROUND",
    "DEAL_ROUND",
    "VOUCH_ROUND",
    "KeyReshares",
    "KeyResharing",
    "ResharePhase",
    "ReshareRecord",
    "reshare_session_id",
    "reshare_vouch_body",
    "reshare_vouch_session_id",
]

_SESSION_DOMAIN = b"keyshard/service/reshare-session/v1"
_VOUCH_SESSION_DOMAIN = b"keyshard/service/reshare-vouch-session/v1"
#: Envelope rounds (distinct from creation's 1..4, refresh's 11..13, repair's 21..22).
DEAL_ROUND = 31
CONFIRM_ROUND = 32
VOUCH_ROUND = 33
_RECORD_FIELDS = (
    "package",
    "policy",
    "suite",
    "nodes",
    "epoch",
    "state",
    "delete_at",
    "exportable",
    "imported",
)


def reshare_session_id(
    session_id: bytes, key_name: str, epoch: int, new_nodes: Sequence[str], new_threshold: int
) -> bytes:
    """The MPC session id of the reshare leaving ``epoch`` of ``key_name`` to ``new_nodes``."""
    return hashlib.sha256(
        lp_join(
            (
                _SESSION_DOMAIN,
                session_id,
                key_name.encode(),
                epoch.to_bytes(4, "big"),
                new_threshold.to_bytes(2, "big"),
                *(n.encode() for n in new_nodes),
            )
        )
    ).digest()


def reshare_vouch_session_id(key_name: str, epoch: int) -> bytes:
    """The envelope session of reshare vouches for ``epoch`` of ``key_name``."""
    return hashlib.sha256(
        lp_join((_VOUCH_SESSION_DOMAIN, key_name.encode(), epoch.to_bytes(4, "big")))
    ).digest()


def reshare_vouch_body(package: bytes, nodes: Sequence[str]) -> bytes:
    """What a committed member vouches for (the envelope header names the key and epoch)."""
    return cbor.dumps({"package": package, "nodes": list(nodes)})


def open_vouch_body(body: bytes) -> tuple[bytes, tuple[str, ...]]:
    try:
        value = cbor.loads_map(body, what="reshare vouch", fields=("package", "nodes"))
    except MalformedMessageError:
        raise EnvelopeError("a reshare vouch is malformed") from None
    nodes = value["nodes"]
    if (
        type(value["package"]) is not bytes
        or type(nodes) is not list
        or not all(type(n) is str for n in nodes)
    ):
        raise EnvelopeError("a reshare vouch is malformed")
    return value["package"], tuple(nodes)


@dataclass(frozen=True, slots=True)
class ReshareRecord:
    """What every old holder tells a new member about the key (public) — all must say the same."""

    package: bytes
    policy: bytes
    suite: str
    nodes: tuple[str, ...]
    epoch: int
    state: str
    delete_at: int
    exportable: bool = False  # custody: chosen at creation, the key's own
    imported: bool = False

    def encode(self) -> bytes:
        return cbor.dumps(
            {
                "package": self.package,
                "policy": self.policy,
                "suite": self.suite,
                "nodes": list(self.nodes),
                "epoch": self.epoch,
                "state": self.state,
                "delete_at": self.delete_at,
                "exportable": self.exportable,
                "imported": self.imported,
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> ReshareRecord:
        try:
            v = cbor.loads_map(data, what="reshare record", fields=_RECORD_FIELDS)
        except MalformedMessageError:
            raise EnvelopeError("a reshare record is malformed") from None
        types = (bytes, bytes, str, list, int, str, int, bool, bool)
        if any(type(v[f]) is not t for f, t in zip(_RECORD_FIELDS, types, strict=True)) or not all(
            type(n) is str for n in v["nodes"]
        ):
            raise EnvelopeError("a reshare record is malformed")
        return cls(
            v["package"],
            v["policy"],
            v["suite"],
            tuple(v["nodes"]),
            v["epoch"],
            v["state"],
            v["delete_at"],
            v["exportable"],
            v["imported"],
        )


class ResharePhase(enum.Enum):
    DEALT = 1
    STAGED = 2
    DONE = 3
    FAILED = 4


_NEXT = {ResharePhase.DEALT: ResharePhase.STAGED, ResharePhase.STAGED: ResharePhase.DONE}


class KeyResharing:
    """This node's part in one reshare of ``key_name`` leaving ``epoch`` (module docstring).

    ``held``: this node's share and the key's record when it is an old holder; None when it
    joins (the record then comes from the dealers, at :meth:`stage`).
    """

    def __init__(
        self,
        *,
        key_name: str,
        epoch: int,
        session_id: bytes,
        me: str,
        new_nodes: Sequence[str],
        new_threshold: int,
        box_key: PrivateKey,
        peer_box_keys: Mapping[str, bytes],
        held: tuple[KeyShare, ReshareRecord] | None,
        exported: bool = False,
    ) -> None:
        participants = {me, *peer_box_keys}
        if me in peer_box_keys or not set(new_nodes) <= participants:
            raise SessionError("a reshare's new committee is among its attested participants")
        if held is None and me not in new_nodes:
            raise SessionError("a node without the key takes part in a reshare only to join it")
        if held is not None:
            share, record = held
            if record.epoch != epoch:
                raise SessionError(f"this node holds epoch {record.epoch}, not {epoch}")
            if participants != {*record.nodes, *new_nodes}:
                raise SessionError("a reshare takes every holder of the key and the new committee")
            if Identifier.from_int(share.group, record.nodes.index(me) + 1) != share.identifier:
                raise SessionError("this node's share is not at its recorded position")
        self.key_name, self.epoch, self.session_id, self.me = key_name, epoch, session_id, me
        self.new_nodes, self.new_threshold = tuple(new_nodes), new_threshold
        self._held = held
        #: The reshare's approvals (a joining node checks them against the key's policy).
        self.approvals: tuple[bytes, ...] = ()
        #: Custody: whether any old holder (this one included) wrapped its share for an export;
        #: a joining node records it, since the key it joins has left the cluster once.
        self.exported = exported
        self._participants = tuple(sorted(participants))
        self._mpc_session = reshare_session_id(
            session_id, key_name, epoch, self.new_nodes, new_threshold
        )
        self._envelopes = Envelopes(me, box_key, peer_box_keys)
        self._own: tuple[DealerCommitment, SubShare | None] | None = None
        self._context: ReshareContext | None = None
        self._pending: PendingReshare | None = None
        self.record: ReshareRecord | None = None if held is None else held[1]
        self.phase = ResharePhase.DEALT

    @property
    def joining(self) -> bool:
        return self._held is None

    @property
    def member(self) -> bool:
        """Whether this node is in the new committee."""
        return self.me in self.new_nodes

    @contextlib.contextmanager
    def _guard(self, phase: ResharePhase, then: ResharePhase | None = None) -> Iterator[None]:
        if self.phase is not phase:
            raise SessionError(f"reshare of {self.key_name!r} is {self.phase.name.lower()}")
        self.phase = ResharePhase.FAILED
        yield
        self.phase = then or _NEXT[phase]

    def _header(self, round_: int, recipient: str = "") -> EnvelopeHeader:
        return EnvelopeHeader(self.key_name, self.session_id, round_, self.me, recipient)

    def _context_for(self, record: ReshareRecord) -> ReshareContext:
        """The MPC context from the key's public record; the suite's committee rules apply to
        the new committee."""
        suite = self.suite_of(record)
        try:
            suite.check_committee(self.new_threshold, len(self.new_nodes))
            public = PublicKeyPackage.from_bytes(record.package, suite.group)
            group = suite.group
            return ReshareContext(
                public,
                tuple(Identifier.from_int(group, i) for i in range(1, len(record.nodes) + 1)),
                tuple(Identifier.from_int(group, i) for i in range(1, len(self.new_nodes) + 1)),
                self.new_threshold,
                self._mpc_session,
            )
        except MpcError as error:
            raise SessionError(f"reshare of {self.key_name!r}: {error}") from None

    @staticmethod
    def suite_of(record: ReshareRecord) -> KeySuite:
        try:
            return key_suite(record.suite)
        except MpcError as error:
            raise SessionError(str(error)) from None

    def _new_id(self, node: str) -> Identifier:
        assert self._context is not None
        return self._context.new_parties[self.new_nodes.index(node)]

    def start(self, rng: RandomSource) -> dict[str, bytes]:
        """Deal (an old holder): to each other new member, its commitment, the member's
        sub-share and the key's record. A joining node deals nothing."""
        if self.phase is not ResharePhase.DEALT or self._context is not None:
            raise SessionError("reshare already started")
        if self._held is None:
            return {}
        share, record = self._held
        self._context = self._context_for(record)
        commitment, sub_shares = reshare_deal(self._context, share, rng)
        own = sub_shares[self._new_id(self.me)] if self.member else None
        self._own = (commitment, own)
        record_bytes = record.encode()
        return {
            node: self._envelopes.seal(
                self._header(DEAL_ROUND, node),
                cbor.dumps(
                    {
                        "c": commitment.to_bytes(),
                        "s": sub_shares[self._new_id(node)].to_bytes(),
                        "r": record_bytes,
                        "x": b"\x01" if self.exported else b"\x00",
                    }
                ),
            )
            for node in self.new_nodes
            if node != self.me
        }

    def _open_from(
        self, round_: int, inbox: Sequence[bytes], senders: Sequence[str]
    ) -> dict[str, bytes]:
        """One envelope of ``round_`` from each of ``senders`` (this node excluded), no other."""
        bodies: dict[str, bytes] = {}
        for envelope in inbox:
            sender, body = self._envelopes.open(envelope, self._header(round_))
            if sender in bodies or sender not in senders:
                raise EnvelopeError(f"an unexpected round-{round_} envelope from {sender}")
            bodies[sender] = body
        missing = [s for s in senders if s != self.me and s not in bodies]
        if missing:
            raise EnvelopeError(f"round {round_} lacks envelopes from {', '.join(missing)}")
        return bodies

    def stage(self, inbox: Sequence[bytes]) -> PendingReshare:
        """A new member: check the record (a joining node: the same from every old holder) and
        every dealer; its share of the new committee (to be sealed, not used) and confirmation."""
        if not self.member:
            raise SessionError("only a member of the new committee stages a share")
        with self._guard(ResharePhase.DEALT):
            deals: dict[str, dict[str, bytes]] = {}
            for envelope in inbox:
                sender, body = self._envelopes.open(envelope, self._header(DEAL_ROUND))
                if sender in deals:
                    raise EnvelopeError(f"a second reshare deal from {sender}")
                try:
                    deal = cbor.loads_map(body, what="reshare deal", fields=("c", "s", "r", "x"))
                    if any(type(v) is not bytes for v in deal.values()):
                        raise MalformedMessageError("reshare deal", "must hold bytes")
                except MalformedMessageError:
                    raise EnvelopeError(f"{sender}'s reshare deal is malformed") from None
                deals[sender] = deal
            record = self._agreed_record(deals)
            self.exported = self.exported or any(d["x"] != b"\x00" for d in deals.values())
            context = self._context
            if context is None:
                context = self._context = self._context_for(record)
            dealers = {node: context.dealers[i] for i, node in enumerate(record.nodes)}
            group = context.group
            commitments: dict[Identifier, DealerCommitment] = {}
            sub_shares: dict[Identifier, SubShare] = {}
            if self._own is not None and self._own[1] is not None:
                commitments[dealers[self.me]] = self._own[0]
                sub_shares[dealers[self.me]] = self._own[1]
            for sender, deal in deals.items():
                try:
                    commitments[dealers[sender]] = DealerCommitment.from_bytes(
                        deal["c"], Renewal.RESHARE, group
                    )
                    sub_shares[dealers[sender]] = SubShare.from_bytes(
                        deal["s"], Renewal.RESHARE, group
                    )
                except MpcError:
                    raise EnvelopeError(f"{sender}'s reshare deal is malformed") from None
            self._pending = reshare_receive(context, self._new_id(self.me), commitments, sub_shares)
            return self._pending
        raise AssertionError("unreachable")  # pragma: no cover

    def _agreed_record(self, deals: Mapping[str, Mapping[str, bytes]]) -> ReshareRecord:
        """The key's record: this node's own (an old holder), else the one every dealer sent —
        the same bytes from each, naming the epoch left and exactly these dealers."""
        records = {deal["r"] for deal in deals.values()}
        if self.record is not None:
            own = self.record.encode()
            records.add(own)
        if len(records) != 1:
            raise EnvelopeError("the old holders sent different records of the key")
        record = ReshareRecord.decode(records.pop())
        if record.epoch != self.epoch:
            raise EnvelopeError(f"the old holders hold epoch {record.epoch}, not {self.epoch}")
        dealers = set(deals) | ({self.me} if self._held is not None else set())
        if dealers != set(record.nodes) or set(self._participants) != {
            *record.nodes,
            *self.new_nodes,
        }:
            raise EnvelopeError("the deals do not come from exactly the key's holders")
        self.record = record
        return record

    def confirmations(self) -> dict[str, bytes]:
        """After the new share is sealed: this node's confirmation, to every other participant
        (new members commit on them, leaving holders retire on them)."""
        if self.phase is not ResharePhase.STAGED or self._pending is None:
            raise SessionError(f"reshare of {self.key_name!r} has staged no share")
        body = self._pending.confirmation.to_bytes()
        return {
            p: self._envelopes.seal(self._header(CONFIRM_ROUND, p), body)
            for p in self._participants
            if p != self.me
        }

    def _confirmations(self, inbox: Sequence[bytes]) -> dict[Identifier, Confirmation]:
        assert self._context is not None
        group = self._context.group
        confirmations = {}
        for sender, body in self._open_from(CONFIRM_ROUND, inbox, self.new_nodes).items():
            try:
                confirmation = Confirmation.from_bytes(body, Renewal.RESHARE, group)
            except MpcError:
                raise EnvelopeError(f"{sender}'s reshare confirmation is malformed") from None
            confirmations[self._new_id(sender)] = confirmation
        return confirmations

    def commit(self, inbox: Sequence[bytes]) -> KeyShare:
        """A new member: every other member confirmed this node's transcript."""
        pending, context = self._pending, self._context
        if pending is None or context is None:
            raise SessionError(f"reshare of {self.key_name!r} has staged no share")
        with self._guard(ResharePhase.STAGED):
            confirmations = self._confirmations(inbox)
            confirmations[self._new_id(self.me)] = pending.confirmation
            return reshare_commit(context, pending, confirmations)
        raise AssertionError("unreachable")  # pragma: no cover

    def retire(self, inbox: Sequence[bytes]) -> bytes:
        """A leaving holder: may its share be erased? Only on every new member's confirmation
        of one transcript (that digest is returned)."""
        if self.member or self._context is None:
            raise SessionError("only an old holder leaving the committee retires")
        with self._guard(ResharePhase.DEALT, ResharePhase.DONE):
            return reshare_retire(self._context, self._confirmations(inbox))
        raise AssertionError("unreachable")  # pragma: no cover

    def __repr__(self) -> str:
        return f"KeyResharing({self.key_name}, epoch {self.epoch}, {self.me}, {self.phase.name})"


#: Reshares a node keeps running at once (the oldest dropped first).
MAX_RESHARES = 32


class KeyReshares:
    """Running reshares, one per key: a new one replaces an unfinished one of the same key.
    Dropping a run is what makes a node unable to commit it on confirmations."""

    def __init__(self) -> None:
        self._runs: dict[str, KeyResharing] = {}

    def put(self, run: KeyResharing) -> None:
        self._runs.pop(run.key_name, None)
        self._runs[run.key_name] = run
        while len(self._runs) > MAX_RESHARES:
            del self._runs[next(iter(self._runs))]

    def get(self, key_name: str, session_id: bytes) -> KeyResharing:
        run = self._runs.get(key_name)
        if run is None or run.session_id != session_id:
            raise SessionError(f"no running reshare of {key_name!r} with this id on this node")
        return run

    def drop(self, key_name: str) -> None:
        self._runs.pop(key_name, None)
