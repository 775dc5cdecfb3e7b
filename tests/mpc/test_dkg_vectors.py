"""ZF ``frost`` DKG vectors: the real round functions reproduce every dealt share and key.

The vectors fix each dealer's polynomial and proof of knowledge; their proofs use ZF's challenge
``H_dkg(i || C_0 || R)``, which binds no session. The rounds therefore run here with the
:class:`~enclave.mpc.dkg.pop.ZfPop` scheme (our default, ``SessionBoundPop``, also binds the
session context and so necessarily yields other challenges); everything else is the production
code path. The session-bound default is what ``test_dkg.py`` exercises.
"""

from __future__ import annotations

import pytest

from enclave.mpc.dkg.messages import Round1Package, Round2Package, TranscriptConfirmation
from enclave.mpc.dkg.params import DkgParameters
from enclave.mpc.dkg.pop import ProofOfPossession, SessionBoundPop, ZfPop
from enclave.mpc.dkg.round1 import part1_with_polynomial
from enclave.mpc.dkg.round2 import part2
from enclave.mpc.dkg.round3 import finalize, part3
from enclave.mpc.errors import InvalidProof
from enclave.mpc.frost.ciphersuite import (
    FROST_ED25519_SHA512,
    FROST_SECP256K1_SHA256,
    FROST_SECP256K1_SHA256_TR,
    Ciphersuite,
)
from enclave.mpc.identifiers import Identifier
from enclave.mpc.shamir import Polynomial
from enclave.mpc.vss import VssCommitment

from .rng import SeededRandom
from .vectors import ZfDkgVector, zf_dkg

SESSION = b"zf-dkg-vector"


def check_zf_dkg(suite: Ciphersuite, v: ZfDkgVector) -> None:
    g = suite.group
    ids = {k: Identifier.from_int(g, k) for k in v.participants}
    params = DkgParameters(g, v.min_participants - 1, list(ids.values()), SESSION)
    pop = ZfPop(suite)
    # The vectors' round-1 packages, decoded strictly.
    packages = {}
    for k, p in v.participants.items():
        commitment = VssCommitment(g, tuple(g.decode_point(c) for c in p.vss_commitments))
        # ZF serialises the proof as a signature of the suite (x-only R for the tr suite).
        proof = ProofOfPossession(*suite.decode_signature(p.proof_of_knowledge))
        packages[ids[k]] = Round1Package(g, SESSION, commitment, proof)

    round2, outgoing = {}, {}
    for k, p in v.participants.items():
        poly = Polynomial(g, [g.decode_scalar(p.signing_key), g.decode_scalar(p.coefficient)])
        secret, own = part1_with_polynomial(params, ids[k], poly, SeededRandom(k), pop=pop)
        assert own.commitment == packages[ids[k]].commitment
        # part2 verifies every other dealer's (fixed) ZF proof of knowledge.
        others = {j: pkg for j, pkg in packages.items() if j != ids[k]}
        round2[ids[k]], outgoing[ids[k]] = part2(secret, others)
        for to, share in outgoing[ids[k]].items():
            assert share.share.to_bytes() == v.participants[int(to)].signing_shares[k]

    confirmations, pending = {}, {}
    for k, p in v.participants.items():
        me = ids[k]
        received = {
            j: Round2Package(g, SESSION, g.decode_scalar(p.signing_shares[int(j)]))
            for j in ids.values()
            if j != me
        }
        pending[me], confirmations[me] = part3(round2[me], received)
    for k, p in v.participants.items():
        me = ids[k]
        peers = {j: c for j, c in confirmations.items() if j != me}
        key = suite.post_dkg(finalize(pending[me], peers))  # BIP-341 tweak for the tr suite
        assert key.secret_share.to_bytes() == p.signing_share
        assert key.verifying_share.to_bytes() == p.verifying_share
        assert key.group_public_key.to_bytes() == v.verifying_key
        assert all(isinstance(c, TranscriptConfirmation) for c in peers.values())

    # The same proofs do not verify under the session-bound default: it binds more context.
    me = ids[1]
    poly = Polynomial(g, [g.decode_scalar(v.participants[1].signing_key)] * 2)
    secret, _ = part1_with_polynomial(params, me, poly, SeededRandom(0), pop=SessionBoundPop())
    with pytest.raises(InvalidProof) as info:
        part2(secret, {j: pkg for j, pkg in packages.items() if j != me})
    assert info.value.culprits == frozenset(j for j in ids.values() if j != me)


@pytest.mark.parametrize(
    ("suite", "group_name"),
    [
        (FROST_ED25519_SHA512, "ed25519"),
        (FROST_SECP256K1_SHA256, "secp256k1"),
        (FROST_SECP256K1_SHA256_TR, "secp256k1-tr"),
    ],
    ids=["ed25519", "secp256k1", "secp256k1-tr"],
)
def test_zf_dkg_vectors(suite: Ciphersuite, group_name: str) -> None:
    check_zf_dkg(suite, zf_dkg(group_name))
