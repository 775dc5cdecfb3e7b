"""Review finding: presigning round states are single-use, whatever API path reaches them.

``PresignSession`` moves through its phases once, but the round functions of
``enclave.mpc.ecdsa.presign`` are public API too ("or the round functions in .presign"), and their
states were plain frozen dataclasses that could be fed again:

* ``finish(mask_state, ...)`` twice returned two :class:`Presignature` objects holding the *same*
  nonce shares under the same id — two pools (or a pool and a retry) could sign two messages with
  one nonce, which reveals the key;
* ``open_nonce(deal_state, ...)`` twice (a driver "retrying" round 2 after a dropped message) let a
  corrupted dealer shift its deal by a known polynomial ``delta``: every honest party then opens
  ``w' = a·(k + delta(0))`` next to ``w = a·k``, so ``a`` and then the nonce ``k`` are public.

Each state now carries a guard shared by every copy (``copy.copy``, ``dataclasses.replace``); the
second round call on it raises :class:`MisuseError` before any arithmetic.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from enclave.mpc.ecdsa import Presignature, PresignContext
from enclave.mpc.ecdsa.presign import deal, finish, open_mask, open_nonce
from enclave.mpc.errors import InvalidParameters, MisuseError
from enclave.mpc.identifiers import Identifier

from .ecdsa_harness import deal_key, ids
from .rng import SeededRandom

SID = b"review-round-states-0001"


def _rounds() -> dict[str, Any]:
    """Run the three rounds by hand for t = 1, n = 3; keep every state and message."""
    rng = SeededRandom("review-round-states")
    _, shares = deal_key(1, 3, rng)
    parties = ids(1, 2, 3)
    context = PresignContext.create(shares[parties[0]].public, parties, SID)
    dealt = {i: deal(context, shares[i], rng) for i in parties}
    deal_states = {i: s for i, (s, _) in dealt.items()}

    def inbox(i: Identifier) -> dict[Identifier, Any]:
        return {j: out[i] for j, (_, out) in dealt.items() if j != i}

    nonce = {i: open_nonce(deal_states[i], inbox(i)) for i in parties}
    mask = {
        i: open_mask(nonce[i][0], {j: m for j, (_, m) in nonce.items() if j != i}) for i in parties
    }
    return {
        "parties": parties,
        "deal_states": deal_states,
        "deal_inbox": {i: inbox(i) for i in parties},
        "nonce": nonce,
        "mask": mask,
    }


def _others(i: Identifier, msgs: Mapping[Identifier, tuple[Any, Any]]) -> dict[Identifier, Any]:
    return {j: m for j, (_, m) in msgs.items() if j != i}


def test_finish_twice_on_one_state_is_refused() -> None:
    r = _rounds()
    me = r["parties"][0]
    state = r["mask"][me][0]
    received = _others(me, r["mask"])
    first = finish(state, received)
    assert isinstance(first, Presignature)
    with pytest.raises(MisuseError):
        finish(state, received)


def test_round_two_cannot_be_replayed_on_a_used_deal_state() -> None:
    r = _rounds()
    me = r["parties"][0]
    with pytest.raises(MisuseError):
        open_nonce(r["deal_states"][me], r["deal_inbox"][me])


def test_round_three_cannot_be_replayed_on_a_used_nonce_state() -> None:
    r = _rounds()
    me = r["parties"][0]
    with pytest.raises(MisuseError):
        open_mask(r["nonce"][me][0], _others(me, r["nonce"]))


@pytest.mark.parametrize(
    "clone",
    [copy.copy, dataclasses.replace],
    ids=["copy", "replace"],
)
def test_a_copy_of_a_used_state_is_used_too(clone: Callable[[Any], Any]) -> None:
    r = _rounds()
    me = r["parties"][0]
    state = r["mask"][me][0]
    received = _others(me, r["mask"])
    twin = clone(state)
    finish(state, received)
    with pytest.raises(MisuseError):
        finish(twin, received)


def test_a_failed_round_burns_the_state() -> None:
    """A state is spent by the attempt, not only by success: no retry with altered inputs."""
    r = _rounds()
    me = r["parties"][0]
    state = r["mask"][me][0]
    received = _others(me, r["mask"])
    incomplete = dict(list(received.items())[:1])
    with pytest.raises(InvalidParameters, match="missing"):
        finish(state, incomplete)
    with pytest.raises(MisuseError):
        finish(state, received)
