"""Public complaints against a dealer whose share did not verify (Pedersen / GJKR style).

A party whose share from dealer ``j`` fails ``j``'s commitment broadcasts a :class:`Complaint`
that reveals the share. Every party then runs :func:`judge`: if the revealed share indeed fails
the accused's (broadcast, transcript-checked) commitment, the dealer is the culprit; if it
verifies, the complaint was false and the complainer is the culprit. Either way the session
aborts naming one party, and the same party at every honest node.

Trust assumption: the channel authenticates the dealer's private message to the complainer, but
the complaint itself is not a transferable proof that the dealer sent that share; a lying
complainer can only get *itself* named when it reveals a share that verifies, or frame a dealer
by revealing a wrong share. The enclave attestation (up to t corrupted nodes) bounds this: the
abort is safe either way, and no key is produced.
"""

from __future__ import annotations

from collections.abc import Mapping

from enclave.mpc.dkg.messages import Complaint, Round1Package, Round2Package
from enclave.mpc.dkg.params import DkgParameters
from enclave.mpc.dkg.round2 import Round2Secret
from enclave.mpc.dkg.round3 import bad_shares
from enclave.mpc.errors import InvalidParameters, InvalidShare
from enclave.mpc.identifiers import Identifier

__all__ = ["judge", "make_complaints"]


def make_complaints(
    secret: Round2Secret, received: Mapping[Identifier, Round2Package]
) -> list[Complaint]:
    """One complaint per dealer whose share to this party does not verify."""
    p = secret.params
    return [
        Complaint(p.group, p.session_id, dealer, received[dealer].share)
        for dealer in bad_shares(secret, received)
    ]


def judge(
    params: DkgParameters,
    complainer: Identifier,
    complaint: Complaint,
    round1: Mapping[Identifier, Round1Package],
) -> Identifier:
    """The party to blame for ``complaint`` (sent by ``complainer`` over an authenticated channel)."""
    params.check_member(complainer)
    params.check_member(complaint.accused)
    if complaint.session_id != params.session_id or complaint.accused == complainer:
        raise InvalidParameters("complaint is not about this session or accuses its sender")
    commitment = round1[complaint.accused].commitment
    try:
        commitment.verify_share(complainer, complaint.share, dealer=complaint.accused)
    except InvalidShare:
        return complaint.accused
    return complainer
