"""Repair of a lost share over the network: the MPC core's repairable threshold scheme
(:mod:`enclave.mpc.repair`, with the Zcash Foundation's vectors) between attested enclaves.

A holder whose share is gone (its sealed blob deleted or corrupt, a new instance in its place)
gets the SAME share back — ``f(r)`` at its recorded position — from ``t+1`` helpers among the
key's other holders, without any node learning another's share::

    helpers:  repair_start  -> one envelope of a random delta to every other helper
    helpers:  repair_sum    -> one envelope to the target: the sum of the deltas received, and the
                               key's public record (suite, package, policy, holders, epoch, state)
    target:   repair_install  opens every helper's envelope, requires identical records from all,
                               sums, checks the result against its verification share in the
                               package, and seals it (nothing else changes anywhere)

The MPC session id binds the client's id, the key name, the epoch and the target, so values of
one repair never count in another. Every envelope is between attested peers of the same release
(box keys from verified documents). The helpers stay as they were whatever happens, and the target
seals only a share that verifies, so a crash at any step changes nothing but the target's blob.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from nacl.public import PrivateKey

from enclave.mpc.encoding import lp_join
from enclave.mpc.groups import Group
from enclave.mpc.identifiers import Identifier
from enclave.mpc.keys import KeyShare
from enclave.mpc.randomness import RandomSource
from enclave.mpc.repair import RepairStep, RepairValue, repair_step_1, repair_step_2
from enclave.service.envelope import EnvelopeHeader, Envelopes
from enclave.service.errors import EnvelopeError, SessionError
from wire import cbor
from wire.errors import MalformedMessageError

__all__ = [
    "DELTA_ROUND",
    "SIGMA_ROUND",
    "KeyRepairing",
    "RepairRecord",
    "open_sums",
    "repair_session_id",
    "sigma_values",
]

_SESSION_DOMAIN = b"keyshard/service/repair-session/v1"
DELTA_ROUND = 21
SIGMA_ROUND = 22
_RECORD_FIELDS = ("sigma", "package", "policy", "suite", "nodes", "epoch", "state", "delete_at")


def repair_session_id(session_id: bytes, key_name: str, epoch: int, target: str) -> bytes:
    return hashlib.sha256(
        lp_join(
            (
                _SESSION_DOMAIN,
                session_id,
                key_name.encode(),
                epoch.to_bytes(4, "big"),
                target.encode(),
            )
        )
    ).digest()


@dataclass(frozen=True, slots=True)
class RepairRecord:
    """What every helper tells the target about the key (public) — all must say the same."""

    package: bytes
    policy: bytes
    suite: str
    nodes: tuple[str, ...]
    epoch: int
    state: str
    delete_at: int


class RepairPhase(enum.Enum):
    DEALT = 1
    SUMMED = 2
    FAILED = 3


class KeyRepairing:
    """One helper's part in repairing ``target``'s share of ``key_name``."""

    def __init__(
        self,
        *,
        key_name: str,
        share: KeyShare,
        record: RepairRecord,
        session_id: bytes,
        me: str,
        target: str,
        helpers: Sequence[str],
        box_key: PrivateKey,
        peer_box_keys: Mapping[str, bytes],
    ) -> None:
        nodes = record.nodes
        if target not in nodes or me == target or me not in helpers or target in helpers:
            raise SessionError("a repair's target is a holder that is not one of its helpers")
        if not set(helpers) <= set(nodes) or set(peer_box_keys) != {*helpers, target} - {me}:
            raise SessionError("a repair's helpers are holders of the key, each attested")
        group = share.group
        self._ids = {node: Identifier.from_int(group, i) for i, node in enumerate(nodes, 1)}
        self.key_name, self.session_id, self.me, self.target = key_name, session_id, me, target
        self._share, self._record = share, record
        self._helpers = tuple(sorted(helpers))
        self._helper_ids = [self._ids[h] for h in self._helpers]
        self._mpc_session = repair_session_id(session_id, key_name, record.epoch, target)
        self._envelopes = Envelopes(me, box_key, peer_box_keys)
        self._own: RepairValue | None = None
        self.phase = RepairPhase.DEALT

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        if self.phase is not RepairPhase.DEALT or self._own is None:
            raise SessionError(f"repair of {self.key_name!r} is {self.phase.name.lower()}")
        self.phase = RepairPhase.FAILED
        yield
        self.phase = RepairPhase.SUMMED

    def _header(self, round_: int, recipient: str = "") -> EnvelopeHeader:
        return EnvelopeHeader(self.key_name, self.session_id, round_, self.me, recipient)

    def start(self, rng: RandomSource) -> dict[str, bytes]:
        """Step 1: ``zeta_i · x_i`` split into one random delta per helper."""
        if self._own is not None:
            raise SessionError("repair already started")
        deltas = repair_step_1(
            self._helper_ids, self._share, self._ids[self.target], self._mpc_session, rng
        )
        self._own = deltas[self._share.identifier]
        return {
            helper: self._envelopes.seal(
                self._header(DELTA_ROUND, helper), deltas[self._ids[helper]].to_bytes()
            )
            for helper in self._helpers
            if helper != self.me
        }

    def sum(self, inbox: Sequence[bytes]) -> dict[str, bytes]:
        """Step 2: the sum of every helper's delta, with the key's public record, to the target."""
        with self._guard():
            assert self._own is not None
            group = self._share.group
            deltas = {self._share.identifier: self._own}
            for envelope in inbox:
                sender, body = self._envelopes.open(envelope, self._header(DELTA_ROUND))
                if sender == self.target or self._ids[sender] in deltas:
                    raise EnvelopeError(f"an unexpected repair delta from {sender}")
                deltas[self._ids[sender]] = RepairValue.from_bytes(body, RepairStep.DELTA, group)
            sigma = repair_step_2(
                self._share.public,
                self._helper_ids,
                self._ids[self.target],
                self._mpc_session,
                deltas,
            )
            record = self._record
            body = cbor.dumps(
                {
                    "sigma": sigma.to_bytes(),
                    "package": record.package,
                    "policy": record.policy,
                    "suite": record.suite,
                    "nodes": list(record.nodes),
                    "epoch": record.epoch,
                    "state": record.state,
                    "delete_at": record.delete_at,
                }
            )
            return {self.target: self._envelopes.seal(self._header(SIGMA_ROUND, self.target), body)}
        raise AssertionError("unreachable")  # pragma: no cover


def open_sums(
    envelopes: Envelopes,
    *,
    key_name: str,
    session_id: bytes,
    me: str,
    inbox: Sequence[bytes],
    helpers: Sequence[str],
) -> tuple[RepairRecord, dict[str, bytes]]:
    """Target side: every helper's envelope opened; the one record they all sent and each
    helper's encoded sigma. Any disagreement refuses the repair."""
    header = EnvelopeHeader(key_name, session_id, SIGMA_ROUND, "", me)
    records: set[RepairRecord] = set()
    sigmas: dict[str, bytes] = {}
    for envelope in inbox:
        sender, body = envelopes.open(envelope, header)
        if sender in sigmas:
            raise EnvelopeError(f"a second repair sum from {sender}")
        try:
            value = cbor.loads_map(body, what="repair sum", fields=_RECORD_FIELDS)
            nodes = value["nodes"]
            if not isinstance(nodes, list) or not all(type(n) is str for n in nodes):
                raise MalformedMessageError("nodes", "must be node ids")
            record = RepairRecord(
                value["package"],
                value["policy"],
                value["suite"],
                tuple(nodes),
                value["epoch"],
                value["state"],
                value["delete_at"],
            )
            if type(value["sigma"]) is not bytes:
                raise MalformedMessageError("sigma", "must be bytes")
        except (MalformedMessageError, TypeError):
            raise EnvelopeError(f"{sender}'s repair sum is malformed") from None
        records.add(record)
        sigmas[sender] = value["sigma"]
    if set(sigmas) != set(helpers):
        raise EnvelopeError("a repair needs exactly one sum from every helper")
    if len(records) != 1:
        raise EnvelopeError("the helpers describe the key differently")
    return records.pop(), sigmas


def sigma_values(
    sigmas: Mapping[str, bytes], ids: Mapping[str, Identifier], group: Group
) -> dict[Identifier, RepairValue]:
    """Decode the helpers' sigmas (for :func:`enclave.mpc.repair.repair_step_3`)."""
    return {
        ids[node]: RepairValue.from_bytes(data, RepairStep.SIGMA, group)
        for node, data in sigmas.items()
    }
