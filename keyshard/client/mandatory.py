"""A key's mandatory participants in a decryption, from the client's side (issue 11).

Each holder computes its partial decryption (or PRF partial) on its own, so the nodes cannot see
who else takes part; instead every node gives its partial only with the endorsement of this
exact request by each mandatory participant other than itself
(:mod:`enclave.service.endorsement`). The client orchestrates it in two rounds:

1. every mandatory participant is asked first (all at once): with one mandatory node it answers
   with its partial and its endorsement; with several, each answers with its endorsement only
   (no partial anywhere until all have endorsed);
2. every other chosen node (and, with several, the mandatory ones again) is asked with the
   endorsements of the mandatory participants other than itself, each with the attestation
   document of its endorser's current boot (which binds the identity key that signed it).

An unreachable mandatory participant ends the operation before anything is asked, naming it.
The combiner then checks that every mandatory participant's partial is among those combined.
A key without mandatory participants is asked in one round, as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol, TypeVar

from keyshard.client.errors import ProtocolError
from wire.messages import Endorsed, Partial, PrfPartials, Reply, Request

__all__ = ["Caller", "EndorsingReply", "endorsed_answers", "require_all"]

#: The replies that carry a mandatory participant's endorsement with its partial(s).
EndorsingReply = Partial | PrfPartials
_A = TypeVar("_A", Partial, PrfPartials)
_R = TypeVar("_R", bound=Reply)

#: Builds the request for one node from the endorsers' documents and their endorsements.
Build = Callable[[Mapping[str, bytes], Mapping[str, bytes]], Request]


class Caller(Protocol):
    """One request to one node (the coordinator's ``_call``)."""

    def __call__(self, node_id: str, request: Request, expected: type[_R]) -> Awaitable[_R]: ...


async def endorsed_answers(
    *,
    mandatory: Sequence[str],
    chosen: Sequence[str],
    build: Build,
    expected: type[_A],
    call: Caller,
    documents: Callable[[Sequence[str]], Awaitable[Mapping[str, bytes]]],
) -> dict[str, _A]:
    """Every chosen node's answer (see the module docstring); ``mandatory``: the key's
    mandatory participants (all among ``chosen``; empty for a key without any)."""
    if not mandatory:
        request = build({}, {})
        replies = await asyncio.gather(*(call(n, request, expected) for n in chosen))
        return dict(zip(chosen, replies, strict=True))
    endorsers = dict(await documents(mandatory))  # fresh enough for the peers to accept
    first = build({}, {})
    firsts = await asyncio.gather(*(call(m, first, Reply) for m in mandatory))
    answers: dict[str, _A] = {}
    endorsements: dict[str, bytes] = {}
    for node_id, reply in zip(mandatory, firsts, strict=True):
        if isinstance(reply, expected) and reply.endorsement:
            answers[node_id] = reply
            endorsements[node_id] = reply.endorsement
        elif isinstance(reply, Endorsed) and len(mandatory) > 1:
            endorsements[node_id] = reply.endorsement
        else:
            raise ProtocolError(
                f"{node_id}, a mandatory participant, answered without its endorsement",
                culprit=node_id,
            )
    rest = [n for n in chosen if n not in answers]

    def request_for(node_id: str) -> Request:
        others = [m for m in mandatory if m != node_id]
        return build({m: endorsers[m] for m in others}, {m: endorsements[m] for m in others})

    seconds = await asyncio.gather(*(call(n, request_for(n), expected) for n in rest))
    answers.update(zip(rest, seconds, strict=True))
    return {n: answers[n] for n in chosen}


def require_all(mandatory: Sequence[str], combined: Sequence[str], key_name: str) -> None:
    """The combiner's own check: every mandatory participant's partial is among ``combined``."""
    missing = [m for m in mandatory if m not in combined]
    if missing:
        raise ProtocolError(
            f"the decryption set of {key_name!r} lacks its mandatory participant(s) "
            f"{', '.join(missing)}"
        )
