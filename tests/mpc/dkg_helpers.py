"""In-memory DKG driver for tests: every party runs every round, messages routed by sender.

Other MPC tests use :func:`run_dkg` to obtain real key shares (no trusted dealer).
"""

from __future__ import annotations

from collections.abc import Callable

from enclave.mpc.dkg.messages import Round1Package, Round2Package, TranscriptConfirmation
from enclave.mpc.dkg.params import DkgParameters
from enclave.mpc.dkg.round1 import part1
from enclave.mpc.dkg.round2 import part2
from enclave.mpc.dkg.round3 import finalize, part3
from enclave.mpc.groups import Group
from enclave.mpc.identifiers import Identifier
from enclave.mpc.keys import KeyShare
from enclave.mpc.randomness import RandomSource

# Hooks let adversarial tests tamper with what one party sends to another:
# (sender, recipient, message) -> message actually delivered.
Round1Hook = Callable[[Identifier, Identifier, Round1Package], Round1Package]
Round2Hook = Callable[[Identifier, Identifier, Round2Package], Round2Package]


def identifiers(group: Group, n: int) -> list[Identifier]:
    return [Identifier.from_int(group, i) for i in range(1, n + 1)]


def run_dkg(
    group: Group,
    threshold: int,
    n: int,
    rng: RandomSource,
    *,
    session_id: bytes = b"test-dkg",
    round1_hook: Round1Hook | None = None,
    round2_hook: Round2Hook | None = None,
) -> dict[Identifier, KeyShare]:
    ids = identifiers(group, n)
    params = DkgParameters(group, threshold, ids, session_id)
    r1 = {i: part1(params, i, rng) for i in ids}

    def deliver1(sender: Identifier, to: Identifier) -> Round1Package:
        pkg = r1[sender][1]
        return round1_hook(sender, to, pkg) if round1_hook else pkg

    r2 = {i: part2(r1[i][0], {j: deliver1(j, i) for j in ids if j != i}) for i in ids}

    def deliver2(sender: Identifier, to: Identifier) -> Round2Package:
        pkg = r2[sender][1][to]
        return round2_hook(sender, to, pkg) if round2_hook else pkg

    r3 = {i: part3(r2[i][0], {j: deliver2(j, i) for j in ids if j != i}) for i in ids}
    confirmations: dict[Identifier, TranscriptConfirmation] = {i: r3[i][1] for i in ids}
    return {i: finalize(r3[i][0], {j: confirmations[j] for j in ids if j != i}) for i in ids}
