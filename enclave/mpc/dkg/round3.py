"""DKG round three (FROST paper KeyGen round 2 steps 2-4; ZF ``dkg::part3``) and the final
transcript equality check.

:func:`part3` verifies every received share against its dealer's commitment
(``s_ji * G == sum_k C_jk * i^k``; all failures named in one
:class:`~enclave.mpc.errors.InvalidShare`), then derives the signing share ``s_i = sum_j s_ji``,
the group key ``Y = sum_j C_j0`` and every verification share ``Y_k = sum_j f_j(k) * G``. It also
hashes this party's view of round one (every dealer's commitment, in identifier order)
and broadcasts the digest.

:func:`finalize` compares the digests of all parties. A dealer that sent different commitments
to different peers (equivocation on the "broadcast") splits the views; the key is then refused
with :class:`~enclave.mpc.errors.InconsistentTranscript`, naming the parties whose view differs
from the majority view (or, without a strict majority, from this party's view). Only when every
view agrees is the :class:`~enclave.mpc.keys.KeyShare` released.
"""

from __future__ import annotations

import hmac
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from enclave.mpc.dkg.messages import Round2Package, TranscriptConfirmation
from enclave.mpc.dkg.params import DkgParameters
from enclave.mpc.dkg.round2 import Round2Secret
from enclave.mpc.errors import InconsistentTranscript, InvalidShare, ProtocolAbort
from enclave.mpc.identifiers import Identifier
from enclave.mpc.keys import KeyShare, PublicKeyPackage
from enclave.mpc.transcript import Transcript
from enclave.mpc.vss import VssCommitment

__all__ = ["Round3Secret", "finalize", "part3", "transcript_digest"]


@dataclass(frozen=True, slots=True, eq=False)
class Round3Secret:
    params: DkgParameters
    me: Identifier
    key_share: KeyShare = field(repr=False)
    digest: bytes

    def __repr__(self) -> str:
        return f"Round3Secret({int(self.me)}, <redacted>)"


def transcript_digest(secret: Round2Secret) -> bytes:
    """Hash of this party's view of every dealer's commitment, bound to the session context.

    The commitments alone determine the key and every verification share; proofs of possession
    were each verified locally and are not part of what the parties must agree on.
    """
    t = Transcript(b"keyshard/dkg/transcript", secret.params.group, secret.params.context())
    for dealer in secret.params.participants:
        pkg = secret.round1[dealer]
        t.append(b"dealer", dealer.to_bytes())
        t.append(b"commitment", pkg.commitment.to_bytes())
    return t.digest()


def bad_shares(
    secret: Round2Secret, received: Mapping[Identifier, Round2Package]
) -> list[Identifier]:
    """The dealers whose share fails their own commitment (used by part3 and complaints)."""
    bad = []
    for dealer in sorted(received):
        try:
            secret.round1[dealer].commitment.verify_share(
                secret.me, received[dealer].share, dealer=dealer
            )
        except InvalidShare:
            bad.append(dealer)
    return bad


def part3(
    secret: Round2Secret, received: Mapping[Identifier, Round2Package]
) -> tuple[Round3Secret, TranscriptConfirmation]:
    params, me = secret.params, secret.me
    params.check_senders(me, received.keys())
    wrong_session = [
        j
        for j, pkg in received.items()
        if pkg.group is not params.group or pkg.session_id != params.session_id
    ]
    if wrong_session:
        raise ProtocolAbort(wrong_session, "round-2 package for another session or group")
    culprits = bad_shares(secret, received)
    if culprits:
        raise InvalidShare(culprits, "dealt share does not match the dealer's commitment")

    signing_share = secret.own_share
    for dealer in sorted(received):
        signing_share = signing_share + received[dealer].share
    total = VssCommitment.sum(
        params.group, [secret.round1[j].commitment for j in params.participants]
    )
    public = PublicKeyPackage(
        params.group,
        total.constant,
        {j: total.evaluate(j) for j in params.participants},
        params.threshold,
    )
    key_share = KeyShare(me, signing_share, public)
    digest = transcript_digest(secret)
    confirmation = TranscriptConfirmation(params.group, params.session_id, digest)
    return Round3Secret(params, me, key_share, digest), confirmation


def finalize(
    secret: Round3Secret, received: Mapping[Identifier, TranscriptConfirmation]
) -> KeyShare:
    """Release the key share only if every party's transcript digest equals this party's."""
    params, me = secret.params, secret.me
    params.check_senders(me, received.keys())
    wrong_session = [
        j
        for j, msg in received.items()
        if msg.group is not params.group or msg.session_id != params.session_id
    ]
    if wrong_session:
        raise ProtocolAbort(wrong_session, "confirmation for another session or group")
    views = {j: msg.digest for j, msg in received.items()}
    views[me] = secret.digest
    if all(hmac.compare_digest(d, secret.digest) for d in views.values()):
        return secret.key_share
    counts = Counter(views.values())
    reference, count = counts.most_common(1)[0]
    if count * 2 <= len(views):
        reference = secret.digest
    divergent = [j for j, d in views.items() if d != reference]
    raise InconsistentTranscript(divergent, "parties saw different DKG transcripts")
