"""DKG round two (FROST paper KeyGen round 1 step 5 and round 2 step 1; ZF ``dkg::part2``).

Validate before any arithmetic: the senders are exactly the other participants, each package is
for this session and group, each commitment has degree ``t`` and a non-identity constant term.
Then verify every proof of possession (all failures are named together in one
:class:`~enclave.mpc.errors.InvalidProof`), and only then evaluate the own polynomial at every
other participant to produce the private :class:`Round2Package` for each.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from enclave.mpc.dkg.messages import Round1Package, Round2Package
from enclave.mpc.dkg.params import DkgParameters
from enclave.mpc.dkg.pop import PopScheme, verify
from enclave.mpc.dkg.round1 import Round1Secret
from enclave.mpc.errors import InvalidProof, ProtocolAbort
from enclave.mpc.groups import Scalar
from enclave.mpc.identifiers import Identifier

__all__ = ["Round2Secret", "part2"]


@dataclass(frozen=True, slots=True, eq=False)
class Round2Secret:
    params: DkgParameters
    me: Identifier
    own_share: Scalar = field(repr=False)  # f_me(me)
    round1: Mapping[Identifier, Round1Package]  # every participant's package, own included
    pop: PopScheme

    def __repr__(self) -> str:
        return f"Round2Secret({int(self.me)}, <redacted>)"


def check_round1_packages(
    params: DkgParameters, me: Identifier, received: Mapping[Identifier, Round1Package]
) -> None:
    """Structural checks of the other participants' round-one packages."""
    params.check_senders(me, received.keys())
    bad = []
    for dealer, pkg in received.items():
        c = pkg.commitment
        if (
            pkg.group is not params.group
            or pkg.session_id != params.session_id
            or c.degree != params.threshold
            or any(p.is_identity() for p in c.points)
        ):
            bad.append(dealer)
    if bad:
        raise ProtocolAbort(bad, "round-1 package for another session, group or threshold")


def part2(
    secret: Round1Secret, received: Mapping[Identifier, Round1Package]
) -> tuple[Round2Secret, dict[Identifier, Round2Package]]:
    params, me = secret.params, secret.me
    check_round1_packages(params, me, received)
    culprits = []
    for dealer in sorted(received):
        pkg = received[dealer]
        try:
            verify(secret.pop, params, dealer, pkg.commitment.constant, pkg.proof)
        except InvalidProof:
            culprits.append(dealer)
    if culprits:
        raise InvalidProof(culprits, "proof of possession does not verify")
    outgoing = {
        j: Round2Package(params.group, params.session_id, secret.polynomial.evaluate(j))
        for j in params.participants
        if j != me
    }
    view = MappingProxyType({**dict(received), me: secret.package})
    state = Round2Secret(params, me, secret.polynomial.evaluate(me), view, secret.pop)
    return state, outgoing
